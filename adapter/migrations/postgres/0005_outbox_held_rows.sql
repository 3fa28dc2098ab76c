-- A row whose delivery failed for good (a permanent refusal, the retry schedule exhausted) is
-- *held*: it stays pending, so it remains its card's head and the card's later messages wait
-- behind it, and the relay no longer claims it until an operator retries or skips it. Dead
-- letters let later messages overtake; a card's events must never arrive out of order.
ALTER TABLE outbox ADD COLUMN held_at TIMESTAMPTZ;
