-- Who caused a token's change and its coded reason, as TMP's token event says (both optional
-- on the wire), and whether the event changed the mirror's status when it arrived — decided
-- in the transaction that stored it and kept, so the token's history shows it as it was.
ALTER TABLE token_events ADD COLUMN initiator TEXT;
ALTER TABLE token_events ADD COLUMN reason_code TEXT;
ALTER TABLE token_events ADD COLUMN applied INTEGER NOT NULL DEFAULT 0 CHECK (applied IN (0, 1));
-- Events stored before: applied unless one that happened later had arrived before it (the
-- mirror's `status_at <=` rule, replayed in arrival order).
UPDATE token_events SET applied = CASE WHEN EXISTS (
    SELECT 1 FROM token_events AS earlier
     WHERE earlier.token_id = token_events.token_id
       AND earlier.received_at < token_events.received_at
       AND earlier.occurred_at > token_events.occurred_at
) THEN 0 ELSE 1 END;
