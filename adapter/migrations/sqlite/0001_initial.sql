-- Initial schema of the adapter's store (SQLite flavour).
--
-- Kept in lockstep with ../postgres/0001_initial.sql: same tables, columns, constraints and
-- indexes. Type mapping: BLOB <-> BYTEA, UUID stored as a 16-byte BLOB <-> UUID,
-- timestamps as TEXT in fixed-width UTC RFC 3339 with 6 fractional digits
-- ("2025-01-31T12:00:00.000000Z", so text order = time order) <-> TIMESTAMPTZ,
-- INTEGER <-> INTEGER/BIGINT, booleans as INTEGER 0/1 <-> BOOLEAN, JSON as TEXT <-> JSONB.

-- Local card registry. The PAN is held only encrypted (pan_ciphertext under data key
-- pan_key_id) and looked up by its keyed HMAC fingerprint, which is unique.
CREATE TABLE cards (
    card_id          TEXT    NOT NULL PRIMARY KEY,
    pan_fingerprint  BLOB    NOT NULL,
    pan_ciphertext   BLOB    NOT NULL,
    pan_key_id       TEXT    NOT NULL,
    pan_last4        TEXT    NOT NULL,
    expiry_yymm      TEXT    NOT NULL,
    status           TEXT    NOT NULL,
    cardholder_phone TEXT,
    cardholder_email TEXT,
    product_category TEXT,
    updated_at       TEXT    NOT NULL,
    CONSTRAINT cards_pan_fingerprint_key UNIQUE (pan_fingerprint)
);

-- Failed CVC attempts per card within a lockout window that starts at the first failure.
-- A row whose window has passed counts as zero; the next failure restarts the window.
CREATE TABLE cvc_attempts (
    card_id           TEXT    NOT NULL PRIMARY KEY,
    failures          INTEGER NOT NULL CHECK (failures >= 0),
    window_started_at TEXT    NOT NULL
);

-- Audit trail of card-verification and CVC decisions. Never holds PAN, CVC, expiry or OTP.
CREATE TABLE decisions (
    id                 BLOB    NOT NULL PRIMARY KEY,
    decided_at         TEXT    NOT NULL,
    correlation_id     TEXT    NOT NULL,
    operation          TEXT    NOT NULL,
    tokenization_id    TEXT,
    card_id            TEXT,
    pan_last4          TEXT,
    token_requestor_id TEXT,
    wallet             TEXT,
    tsp                TEXT,
    decision           TEXT    NOT NULL,
    reason             TEXT    NOT NULL,
    card_status        TEXT    NOT NULL,
    cvc_result         TEXT    NOT NULL,
    stand_in           INTEGER NOT NULL CHECK (stand_in IN (0, 1)),
    latency_ms         INTEGER NOT NULL
);
CREATE INDEX decisions_card_id_decided_at_idx ON decisions (card_id, decided_at);
-- Newest decisions across cards (stand-ins have no card).
CREATE INDEX decisions_decided_at_idx ON decisions (decided_at);

-- Mirror of each token's current state, as told by TMP's token-status events. status_at is
-- the occurred_at of the event that set status: older events never overwrite it.
CREATE TABLE tokens (
    token_id           TEXT    NOT NULL PRIMARY KEY,
    card_id            TEXT    NOT NULL,
    tsp                TEXT    NOT NULL,
    token_requestor_id TEXT    NOT NULL,
    wallet             TEXT    NOT NULL,
    status             TEXT    NOT NULL,
    token_last4        TEXT,
    status_at          TEXT    NOT NULL,
    updated_at         TEXT    NOT NULL
);
CREATE INDEX tokens_card_id_idx ON tokens (card_id);

-- History of every token-status event received (deduplicated by TMP's event id), including
-- the ones that arrived out of order and did not change the mirror.
CREATE TABLE token_events (
    event_id           TEXT    NOT NULL PRIMARY KEY,
    token_id           TEXT    NOT NULL,
    card_id            TEXT    NOT NULL,
    tsp                TEXT    NOT NULL,
    token_requestor_id TEXT    NOT NULL,
    wallet             TEXT    NOT NULL,
    status             TEXT    NOT NULL,
    previous_status    TEXT,
    reason             TEXT,
    token_last4        TEXT,
    occurred_at        TEXT    NOT NULL,
    received_at        TEXT    NOT NULL
);
CREATE INDEX token_events_token_id_idx ON token_events (token_id, occurred_at);

-- User notifications received from TMP. An OTP is held only encrypted (otp_ciphertext under
-- otp_key_id) and erased once delivered or expired.
CREATE TABLE notifications (
    notification_id    TEXT    NOT NULL PRIMARY KEY,
    notification_type  TEXT    NOT NULL,
    card_id            TEXT    NOT NULL,
    token_id           TEXT,
    token_requestor_id TEXT,
    channel            TEXT,
    otp_ciphertext     BLOB,
    otp_key_id         TEXT,
    expires_at         TEXT,
    occurred_at        TEXT    NOT NULL,
    received_at        TEXT    NOT NULL
);
-- Finds the OTPs still held, for erasure at expiry.
CREATE INDEX notifications_otp_expires_at_idx ON notifications (expires_at)
    WHERE otp_ciphertext IS NOT NULL;

-- Transactional outbox: messages written in the same transaction as the state change that
-- caused them, delivered by the relay in seq order per ordering_key (FIFO), with retries
-- (attempts, next_attempt_at, last_error) and a lease so one relay replica works a row at a time.
CREATE TABLE outbox (
    seq             INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    id              BLOB    NOT NULL,
    destination     TEXT    NOT NULL,
    ordering_key    TEXT    NOT NULL,
    event_type      TEXT    NOT NULL,
    payload         TEXT    NOT NULL,
    created_at      TEXT    NOT NULL,
    not_after       TEXT,
    status          TEXT    NOT NULL DEFAULT 'pending'
                            CHECK (status IN ('pending', 'delivered', 'dead')),
    attempts        INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at TEXT    NOT NULL,
    lease_owner     TEXT,
    lease_until     TEXT,
    last_error      TEXT,
    delivered_at    TEXT,
    CONSTRAINT outbox_id_key UNIQUE (id)
);
CREATE INDEX outbox_ordering_key_seq_idx ON outbox (ordering_key, seq);
CREATE INDEX outbox_status_next_attempt_at_idx ON outbox (status, next_attempt_at);

-- Stored responses to idempotent requests, keyed per route (scope) and Idempotency-Key;
-- written in the same transaction as the request's effect. Purged by age.
CREATE TABLE idempotency (
    scope           TEXT    NOT NULL,
    idempotency_key TEXT    NOT NULL,
    request_hash    BLOB    NOT NULL,
    response_status INTEGER NOT NULL CHECK (response_status BETWEEN 100 AND 599),
    response_body   BLOB    NOT NULL,
    created_at      TEXT    NOT NULL,
    PRIMARY KEY (scope, idempotency_key)
);
CREATE INDEX idempotency_created_at_idx ON idempotency (created_at);

-- webhook-ids of signed requests already accepted (replay protection). Ids older than the
-- signature tolerance are purged: such a request would be rejected on its timestamp anyway.
CREATE TABLE seen_request_ids (
    request_id TEXT NOT NULL PRIMARY KEY,
    seen_at    TEXT NOT NULL
);
CREATE INDEX seen_request_ids_seen_at_idx ON seen_request_ids (seen_at);
