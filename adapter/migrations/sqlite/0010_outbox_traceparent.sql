-- The W3C traceparent of the request that queued a message (version 00 text, 55 characters):
-- the relay sends it on, so a delivery made later still belongs to the trace that caused it.
-- Rows queued before this migration have none and start a trace of their own.
ALTER TABLE outbox ADD COLUMN traceparent TEXT;
