-- The tokenization that created the token, as TMP's token events name it: the token's history
-- links to the issuer's decision (decisions.tokenization_id) through it.
ALTER TABLE token_events ADD COLUMN tokenization_id TEXT;
