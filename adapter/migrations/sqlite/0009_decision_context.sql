-- The tokenization's context as TMP sent it (device, token type): audited with the decision,
-- and the per-device velocity limit counts a device's tokenizations through the index.
ALTER TABLE decisions ADD COLUMN device_id TEXT;
ALTER TABLE decisions ADD COLUMN device_type TEXT;
ALTER TABLE decisions ADD COLUMN token_type TEXT;
CREATE INDEX decisions_device_id_decided_at_idx ON decisions (device_id, decided_at);
