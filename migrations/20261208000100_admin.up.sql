-- The admin console (issue 17): suspended people, workspaces whose sending an operator
-- paused, retired plans, instance settings kept in the database, worker heartbeats for the
-- health page, and the administrators' own append-only audit log.

ALTER TABLE users ADD COLUMN suspended_at timestamptz, ADD COLUMN last_sign_in_at timestamptz;
-- The people list pages newest first by (created_at, id).
CREATE INDEX users_created ON users (created_at DESC, id DESC);
CREATE INDEX users_admins ON users (id) WHERE is_admin;
-- Searching by any part of an address or a name at 100,000 accounts and more.
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE INDEX users_search ON users USING gin ((email_normalized || ' ' || lower(full_name)) gin_trgm_ops);

-- Sending paused by an administrator: sends are refused and queued messages wait.
ALTER TABLE workspaces ADD COLUMN sending_paused_at timestamptz,
    ADD COLUMN sending_paused_reason text NOT NULL DEFAULT '';

-- A retired plan cannot be chosen any more; its subscribers keep it until renewal.
ALTER TABLE plans ADD COLUMN retired_at timestamptz;

-- Instance settings edited on the Settings page. A secret is sealed with the keyring
-- (`sealed`, `value` empty); everything else is plain text in `value`.
CREATE TABLE instance_settings (
    key        text PRIMARY KEY,
    value      text NOT NULL DEFAULT '',
    sealed     bytea,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Each worker process writes its row every few seconds.
CREATE TABLE worker_heartbeats (
    name       text PRIMARY KEY,
    version    text NOT NULL,
    host       text NOT NULL DEFAULT '',
    pid        integer NOT NULL DEFAULT 0,
    started_at timestamptz NOT NULL DEFAULT now(),
    beat_at    timestamptz NOT NULL DEFAULT now()
);

-- Every action of an administrator: who, when, on what, and the values before and after.
-- The actor and target are kept as text too, so the entry still reads after they are gone.
CREATE TABLE admin_audit (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    actor_id    uuid,
    actor       text NOT NULL,
    action      text NOT NULL,
    target_kind text NOT NULL DEFAULT '',
    target_id   text NOT NULL DEFAULT '',
    target      text NOT NULL DEFAULT '',
    before      jsonb NOT NULL DEFAULT '{}',
    after       jsonb NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION ender_admin_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the admin audit log is append-only'
        USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER admin_audit_append_only BEFORE UPDATE OR DELETE ON admin_audit
    FOR EACH ROW EXECUTE FUNCTION ender_admin_audit_append_only();
