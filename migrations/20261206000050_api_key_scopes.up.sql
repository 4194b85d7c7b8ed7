-- What each integration key may do. Keys made before scopes existed keep every scope, so
-- they work as they did; new keys get the Vendel SDKs' set unless their maker chooses.
ALTER TABLE api_keys ADD COLUMN scopes text[] NOT NULL DEFAULT '{send,read,contacts,webhooks,keys}';
ALTER TABLE api_keys ALTER COLUMN scopes SET DEFAULT '{send,read,contacts}';
ALTER TABLE api_keys ADD CONSTRAINT api_keys_scopes_known
    CHECK (cardinality(scopes) > 0 AND scopes <@ '{send,read,contacts,webhooks,keys}'::text[]);
