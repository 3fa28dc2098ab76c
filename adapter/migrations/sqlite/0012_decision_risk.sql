-- The tokenization's risk context as TMP sent it (the wallet's recommendation reasons, the
-- card number's source, the network's score): audited with the decision.
ALTER TABLE decisions ADD COLUMN recommendation_reasons TEXT;
ALTER TABLE decisions ADD COLUMN pan_source TEXT;
ALTER TABLE decisions ADD COLUMN network_score INTEGER;
