-- Secrets re-sealed bound cannot be opened by the code before this migration: rotate each
-- endpoint's secret after going back.
ALTER TABLE webhook_secrets DROP COLUMN bound;
