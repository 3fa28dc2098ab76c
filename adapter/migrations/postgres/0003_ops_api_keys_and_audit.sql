-- The ops API: scoped API keys and the audit trail of operator writes (PostgreSQL flavour; lockstep
-- with ../sqlite/).

-- API keys of the ops listener. The key itself (`tmpk_<id>_<secret>`) is printed once by
-- `tmp-adapter apikey create` and never stored: only the SHA-256 digest of the whole key.
-- `scopes` is a space-separated list (`tokens:read tokens:write provisioning audit:read
-- outbox:admin`). `rate_limit_per_minute` overrides ops.rate_limit.requests_per_minute.
CREATE TABLE api_keys (
    id                    TEXT    NOT NULL PRIMARY KEY,
    name                  TEXT    NOT NULL,
    secret_digest         BYTEA   NOT NULL,
    scopes                TEXT    NOT NULL,
    rate_limit_per_minute INTEGER,
    created_at            TIMESTAMPTZ NOT NULL,
    revoked_at            TIMESTAMPTZ
);

-- Every write through the ops API (token actions, push provisioning, outbox administration)
-- and every key created or revoked: who, what, on what, why, when, and how it ended. Never card
-- data: a card is named by its card id.
CREATE TABLE ops_audit (
    id             UUID    NOT NULL PRIMARY KEY,
    at             TIMESTAMPTZ NOT NULL,
    actor          TEXT    NOT NULL,
    action         TEXT    NOT NULL,
    target         TEXT,
    card_id        TEXT,
    reason         TEXT,
    outcome        TEXT    NOT NULL,
    status         INTEGER NOT NULL,
    correlation_id TEXT    NOT NULL
);
CREATE INDEX ops_audit_at_idx ON ops_audit (at);
CREATE INDEX ops_audit_card_id_at_idx ON ops_audit (card_id, at);
