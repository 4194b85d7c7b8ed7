DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM messages WHERE body_sealed IS NOT NULL)
       OR EXISTS (SELECT 1 FROM message_templates WHERE body_sealed IS NOT NULL)
       OR EXISTS (SELECT 1 FROM scheduled_sends WHERE body_sealed IS NOT NULL)
       OR EXISTS (SELECT 1 FROM webhook_deliveries WHERE substring(body FROM 1 FOR 1) = '\x00'::bytea) THEN
        RAISE EXCEPTION 'bodies are sealed: start ender-worker once with ENDER_SEAL_BODIES=false to open them, then migrate down';
    END IF;
END
$$;
ALTER TABLE scheduled_sends DROP CONSTRAINT scheduled_sends_content;
ALTER TABLE scheduled_sends DROP COLUMN body_sealed;
ALTER TABLE scheduled_sends ADD CONSTRAINT scheduled_sends_check2 CHECK (body <> '' OR template_id IS NOT NULL);
ALTER TABLE message_templates DROP COLUMN body_sealed;
ALTER TABLE messages DROP COLUMN body_sealed;
