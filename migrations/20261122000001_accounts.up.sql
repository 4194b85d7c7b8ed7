-- Accounts, sign-in identities, one-time tokens, sessions, rate-limit counters and
-- the claim table that makes periodic jobs fire once with several workers.

CREATE TABLE users (
    id                uuid PRIMARY KEY,
    email             text NOT NULL,
    -- lower-cased copy used for look-ups and uniqueness
    email_normalized  text NOT NULL UNIQUE,
    full_name         text NOT NULL DEFAULT '',
    -- NULL for accounts that only ever signed in through an OAuth provider
    password_hash     text,
    email_verified_at timestamptz,
    is_admin          boolean NOT NULL DEFAULT false,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE oauth_identities (
    provider   text NOT NULL,
    subject    text NOT NULL,
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (provider, subject)
);
CREATE INDEX oauth_identities_user_id ON oauth_identities (user_id);

-- Single-use tokens sent by mail; only a SHA-256 of the token is stored.
CREATE TABLE email_tokens (
    token_hash bytea PRIMARY KEY,
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose    text NOT NULL CHECK (purpose IN ('verify_email', 'reset_password')),
    expires_at timestamptz NOT NULL,
    used_at    timestamptz,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX email_tokens_user_id ON email_tokens (user_id);
CREATE INDEX email_tokens_expires_at ON email_tokens (expires_at);

-- Tokens for the one-time administrator setup link printed at start.
CREATE TABLE setup_tokens (
    token_hash bytea PRIMARY KEY,
    expires_at timestamptz NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE sessions (
    id          text PRIMARY KEY,
    data        jsonb NOT NULL,
    expiry_date timestamptz NOT NULL,
    -- set while a user is signed in, so account deletion and password changes end sessions
    user_id     uuid REFERENCES users (id) ON DELETE CASCADE
);
CREATE INDEX sessions_expiry_date ON sessions (expiry_date);
CREATE INDEX sessions_user_id ON sessions (user_id) WHERE user_id IS NOT NULL;

-- Fixed-window counters shared by every web process.
CREATE TABLE rate_limits (
    key          text NOT NULL,
    window_start timestamptz NOT NULL,
    hits         integer NOT NULL,
    PRIMARY KEY (key, window_start)
);
CREATE INDEX rate_limits_window_start ON rate_limits (window_start);

-- A periodic job fires once per (schedule, fire_at), however many workers run.
CREATE TABLE cron_ticks (
    schedule   text NOT NULL,
    fire_at    timestamptz NOT NULL,
    claimed_by text NOT NULL,
    PRIMARY KEY (schedule, fire_at)
);
