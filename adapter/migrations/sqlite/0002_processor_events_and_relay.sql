-- Processor ingest and the outbox relay (SQLite flavour; lockstep with ../postgres/).

-- Card events received from the processor at POST /processor/v1/events, deduplicated by the
-- processor's event id: the same id with the same body (body_hash = SHA-256 of the event's
-- canonical JSON) is accepted again without effect; with another body it is refused.
CREATE TABLE processor_events (
    event_id    TEXT        NOT NULL PRIMARY KEY,
    body_hash   BLOB        NOT NULL,
    card_id     TEXT        NOT NULL,
    event_type  TEXT        NOT NULL,
    occurred_at TEXT        NOT NULL,
    received_at TEXT        NOT NULL
);
CREATE INDEX processor_events_card_id_idx ON processor_events (card_id, occurred_at);

-- The correlation id of the request that queued the message, sent as X-Correlation-Id.
ALTER TABLE outbox ADD COLUMN correlation_id TEXT;

-- The relay's claim looks for the oldest pending row of each ordering key.
CREATE INDEX outbox_pending_ordering_key_seq_idx ON outbox (ordering_key, seq) WHERE status = 'pending';
-- Replay by time range.
CREATE INDEX outbox_created_at_idx ON outbox (created_at);
