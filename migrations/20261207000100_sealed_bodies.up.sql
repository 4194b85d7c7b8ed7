-- Bodies at rest are sealed with the keyring, bound to their row
-- (crates/core/src/secret/at_rest.rs). A row written before keeps its plaintext in `body`
-- and NULL here until the worker re-seals it; a sealed row has '' in `body`.
ALTER TABLE messages ADD COLUMN body_sealed bytea;
ALTER TABLE message_templates ADD COLUMN body_sealed bytea;
-- A scheduled send's own text (one using a template has none).
ALTER TABLE scheduled_sends ADD COLUMN body_sealed bytea;
ALTER TABLE scheduled_sends DROP CONSTRAINT scheduled_sends_check2;
ALTER TABLE scheduled_sends ADD CONSTRAINT scheduled_sends_content
    CHECK (body <> '' OR body_sealed IS NOT NULL OR template_id IS NOT NULL);
-- webhook_deliveries.body holds a sealed payload behind a 0x00 byte, or JSON from before.
