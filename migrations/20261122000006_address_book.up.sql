-- The address book (contacts, groups), message templates, CSV/vCard imports with their
-- progress, and scheduled sends with their run history.

CREATE TABLE contact_groups (
    id         uuid PRIMARY KEY,
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name       text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
-- names are unique per user whatever their case ("Staff" and "staff" are one group)
CREATE UNIQUE INDEX contact_groups_user_name ON contact_groups (user_id, lower(name));

CREATE TABLE contacts (
    id           uuid PRIMARY KEY,
    user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         text NOT NULL DEFAULT '',
    -- E.164
    phone_number text NOT NULL,
    notes        text NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (user_id, phone_number)
);
CREATE INDEX contacts_user_name ON contacts (user_id, lower(name), id);

CREATE TABLE contact_group_members (
    group_id   uuid NOT NULL REFERENCES contact_groups (id) ON DELETE CASCADE,
    contact_id uuid NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    PRIMARY KEY (group_id, contact_id)
);
CREATE INDEX contact_group_members_contact ON contact_group_members (contact_id);

-- An uploaded CSV or vCard file, kept until its import finishes (and a day after, for the
-- error report). The web process that starts an import works through it in chunks and
-- moves `heartbeat_at`; a stale heartbeat lets another request resume it from `processed`.
CREATE TABLE contact_imports (
    id             uuid PRIMARY KEY,
    user_id        uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    file_name      text NOT NULL,
    format         text NOT NULL CHECK (format IN ('csv', 'vcard')),
    content        text NOT NULL,
    encoding       text NOT NULL DEFAULT 'UTF-8',
    delimiter      text NOT NULL DEFAULT ',',
    has_header     boolean NOT NULL DEFAULT true,
    -- column indexes chosen by the user: {"name":0,"phone":1,"notes":null,"groups":null}
    mapping        jsonb NOT NULL DEFAULT '{}',
    default_country text NOT NULL DEFAULT '',
    -- what to do with a number that is already a contact
    on_duplicate   text NOT NULL DEFAULT 'update' CHECK (on_duplicate IN ('update', 'skip')),
    group_id       uuid REFERENCES contact_groups (id) ON DELETE SET NULL,
    status         text NOT NULL DEFAULT 'preview' CHECK (status IN ('preview', 'running', 'done', 'failed')),
    total_rows     integer NOT NULL DEFAULT 0,
    processed      integer NOT NULL DEFAULT 0,
    created        integer NOT NULL DEFAULT 0,
    updated        integer NOT NULL DEFAULT 0,
    skipped        integer NOT NULL DEFAULT 0,
    failed         integer NOT NULL DEFAULT 0,
    -- per-row problems: [{"line":3,"value":"abc","message":"…"}]
    errors         jsonb NOT NULL DEFAULT '[]',
    error_message  text NOT NULL DEFAULT '',
    heartbeat_at   timestamptz,
    created_at     timestamptz NOT NULL DEFAULT now(),
    finished_at    timestamptz
);
CREATE INDEX contact_imports_user ON contact_imports (user_id, created_at DESC);

CREATE TABLE message_templates (
    id         uuid PRIMARY KEY,
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name       text NOT NULL,
    body       text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX message_templates_user_name ON message_templates (user_id, lower(name));

CREATE TABLE scheduled_sends (
    id           uuid PRIMARY KEY,
    user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         text NOT NULL DEFAULT '',
    kind         text NOT NULL CHECK (kind IN ('once', 'recurring')),
    -- once: the wall-clock time as entered, in `timezone`
    local_time   timestamp,
    -- recurring: a 5-field cron expression evaluated on the wall clock of `timezone`
    cron_expr    text NOT NULL DEFAULT '',
    timezone     text NOT NULL DEFAULT 'UTC',
    recipients   text[] NOT NULL DEFAULT '{}',
    group_ids    uuid[] NOT NULL DEFAULT '{}',
    body         text NOT NULL DEFAULT '',
    -- a template is used as it reads at each run; it cannot be deleted while used here
    template_id  uuid REFERENCES message_templates (id) ON DELETE RESTRICT,
    variables    jsonb NOT NULL DEFAULT '{}',
    device_id    uuid REFERENCES devices (id) ON DELETE SET NULL,
    status       text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'paused', 'completed')),
    -- the next due time; the worker that fires it moves it on in the same transaction
    next_run_at  timestamptz,
    last_run_at  timestamptz,
    run_count    integer NOT NULL DEFAULT 0,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CHECK ((kind = 'once') = (local_time IS NOT NULL)),
    CHECK (kind = 'once' OR cron_expr <> ''),
    CHECK (body <> '' OR template_id IS NOT NULL)
);
CREATE INDEX scheduled_sends_user ON scheduled_sends (user_id, created_at DESC);
CREATE INDEX scheduled_sends_due ON scheduled_sends (next_run_at) WHERE status = 'active';

-- One row per fired due time: the primary key is what makes each due time fire once.
CREATE TABLE schedule_runs (
    schedule_id uuid NOT NULL REFERENCES scheduled_sends (id) ON DELETE CASCADE,
    due_at      timestamptz NOT NULL,
    ran_at      timestamptz NOT NULL DEFAULT now(),
    -- fired well after its due time (the workers were down)
    late        boolean NOT NULL DEFAULT false,
    messages    integer NOT NULL DEFAULT 0,
    batch_id    uuid,
    error       text NOT NULL DEFAULT '',
    PRIMARY KEY (schedule_id, due_at)
);
CREATE INDEX schedule_runs_recent ON schedule_runs (schedule_id, ran_at DESC);
