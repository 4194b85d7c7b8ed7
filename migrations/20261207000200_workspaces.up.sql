-- Workspaces (issue 15, first step): a team of users with roles. Every user has a personal
-- workspace, made with the account. An existing user's personal workspace takes the
-- user's own id, so that the next step, which moves ownership of devices, keys, messages
-- and the rest from users to workspaces, can keep each owned row's owner id as it is.

CREATE TABLE workspaces (
    id               uuid PRIMARY KEY,
    name             text NOT NULL CHECK (length(name) BETWEEN 1 AND 80),
    -- the user this workspace was made for at sign-up; NULL for a shared workspace
    personal_user_id uuid UNIQUE REFERENCES users (id) ON DELETE CASCADE,
    created_at       timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE workspace_members (
    workspace_id uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role         text NOT NULL CHECK (role IN ('owner', 'admin', 'member', 'viewer')),
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, user_id)
);
CREATE INDEX workspace_members_user ON workspace_members (user_id, workspace_id);

INSERT INTO workspaces (id, name, personal_user_id, created_at)
SELECT id,
       left(CASE WHEN btrim(full_name) = '' THEN email ELSE btrim(full_name) END || '''s workspace', 80),
       id,
       created_at
FROM users;

INSERT INTO workspace_members (workspace_id, user_id, role, created_at)
SELECT id, id, 'owner', created_at FROM users;
