-- Webhook signing secrets sealed with their endpoint's id as associated data (review I9):
-- a ciphertext copied to another endpoint's row no longer opens. Rows sealed before this
-- are `bound = false` until the worker re-seals them at start.
ALTER TABLE webhook_secrets ADD COLUMN bound boolean NOT NULL DEFAULT false;
