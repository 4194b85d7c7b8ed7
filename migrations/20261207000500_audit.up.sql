-- The audit trail of a workspace (issue 15): who did what, append-only. The actor is kept
-- as it was at the time (name or address, or the API key's name) beside its id, which has
-- no foreign key so that deleting an account or a key changes nothing here. Rows go only
-- with their workspace.
CREATE TABLE audit_events (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    workspace_id uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    actor_user   uuid,
    actor_key    uuid,
    actor        text NOT NULL,
    action       text NOT NULL,
    subject      text NOT NULL DEFAULT '',
    detail       jsonb NOT NULL DEFAULT '{}',
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_events_workspace ON audit_events (workspace_id, id DESC);

CREATE FUNCTION ender_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- A workspace being deleted takes its trail with it (its row is gone by the time the
    -- cascade reaches here); nothing else may change or remove an entry.
    IF TG_OP = 'DELETE' AND NOT EXISTS (SELECT 1 FROM workspaces WHERE id = OLD.workspace_id) THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'the audit trail is append-only'
        USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION ender_audit_append_only();
