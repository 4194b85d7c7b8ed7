-- Mail the server could not send, for the Health page: when, what (the subject) and why.
-- The recipient is not kept. Rows older than 30 days are removed as new ones arrive.
CREATE TABLE mail_failures (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT now(),
    subject text NOT NULL,
    error text NOT NULL
);
CREATE INDEX mail_failures_at ON mail_failures (at DESC);
