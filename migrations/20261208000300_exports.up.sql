-- Exports of a workspace's messages, made by the worker (queue ender.exports) and kept in
-- the object store until expires_at.
CREATE TABLE exports (
    id           uuid PRIMARY KEY,
    workspace_id uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    requested_by uuid REFERENCES users (id) ON DELETE SET NULL,
    kind         text NOT NULL CHECK (kind IN ('messages_csv', 'messages_jsonl')),
    filters      jsonb NOT NULL DEFAULT '{}',
    status       text NOT NULL DEFAULT 'queued'
                 CHECK (status IN ('queued', 'running', 'done', 'failed', 'expired')),
    rows_done    bigint NOT NULL DEFAULT 0,
    rows_total   bigint,
    attempts     integer NOT NULL DEFAULT 0,
    object_key   text,
    size_bytes   bigint,
    error        text NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL DEFAULT now(),
    started_at   timestamptz,
    finished_at  timestamptz,
    expires_at   timestamptz
);
CREATE INDEX exports_workspace ON exports (workspace_id, created_at DESC, id DESC);
CREATE INDEX exports_expiry ON exports (expires_at) WHERE status = 'done';
