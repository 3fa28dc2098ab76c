-- What came of asking the issuer's fraud engine (the processor bridge's decision hook):
-- ANSWERED, TIMEOUT, INVALID or FAILED (NULL: not asked), and what it answered.
ALTER TABLE decisions ADD COLUMN hook_outcome TEXT;
ALTER TABLE decisions ADD COLUMN hook_decision TEXT;
ALTER TABLE decisions ADD COLUMN hook_reason TEXT;
