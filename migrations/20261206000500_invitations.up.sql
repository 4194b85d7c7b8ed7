-- Invitations to create an account (ENDER_SIGNUP=invite). Only a SHA-256 of the mailed
-- token is stored. The invitation names the address it was mailed to; accepting it makes
-- an account with that address, verified, since the link reached it.
CREATE TABLE invitations (
    id               uuid PRIMARY KEY,
    token_hash       bytea NOT NULL UNIQUE,
    email            text NOT NULL,
    -- NULL when it came from the server's operator (`ender-web admin invite`)
    invited_by       uuid REFERENCES users (id) ON DELETE CASCADE,
    created_at       timestamptz NOT NULL DEFAULT now(),
    expires_at       timestamptz NOT NULL,
    accepted_at      timestamptz,
    accepted_by      uuid REFERENCES users (id) ON DELETE SET NULL,
    revoked_at       timestamptz
);
CREATE INDEX invitations_invited_by ON invitations (invited_by, created_at DESC);
