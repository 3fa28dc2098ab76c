-- The velocity limits' count: each tokenization of a card and of a device, once per tokenization
-- id, written under a lock per card / device in the transaction that counts the earlier ones —
-- so tokenizations arriving together are counted one after another, never all against the same
-- count. Rows older than the velocity window are purged by housekeeping.
CREATE TABLE tokenization_attempts (
    kind             TEXT    NOT NULL,
    subject          TEXT    NOT NULL,
    tokenization_id  TEXT    NOT NULL,
    at               TEXT NOT NULL,
    PRIMARY KEY (kind, subject, tokenization_id)
);
CREATE INDEX tokenization_attempts_subject_at_idx ON tokenization_attempts (kind, subject, at);
CREATE INDEX tokenization_attempts_at_idx ON tokenization_attempts (at);

-- What the decision audit already counted (0009) carries on across the upgrade.
INSERT INTO tokenization_attempts (kind, subject, tokenization_id, at)
SELECT 'card', card_id, tokenization_id, MIN(decided_at) FROM decisions
 WHERE operation = 'verify_card' AND card_id IS NOT NULL AND tokenization_id IS NOT NULL
 GROUP BY card_id, tokenization_id;
INSERT INTO tokenization_attempts (kind, subject, tokenization_id, at)
SELECT 'device', device_id, tokenization_id, MIN(decided_at) FROM decisions
 WHERE operation = 'verify_card' AND device_id IS NOT NULL AND tokenization_id IS NOT NULL
 GROUP BY device_id, tokenization_id;
