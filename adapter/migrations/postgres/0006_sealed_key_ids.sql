-- Which data key sealed what: the outbox row's card data gets its key id in a column of its
-- own (until now only inside the payload), and every sealed column's key id is indexed, so
-- that a reload can tell in one index probe whether a data key it would drop still seals
-- anything, and `tmp-adapter keys reseal` finds what is not under the active key.
ALTER TABLE outbox ADD COLUMN sealed_key_id TEXT;
UPDATE outbox SET sealed_key_id = payload #>> '{sealed,keyId}';
CREATE INDEX outbox_sealed_key_id_idx ON outbox (sealed_key_id) WHERE sealed_key_id IS NOT NULL;
CREATE INDEX cards_pan_key_id_idx ON cards (pan_key_id);
CREATE INDEX notifications_otp_key_id_idx ON notifications (otp_key_id) WHERE otp_key_id IS NOT NULL;
