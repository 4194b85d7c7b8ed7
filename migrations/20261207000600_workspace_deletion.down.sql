DELETE FROM workspaces WHERE deleted_at IS NOT NULL;
ALTER TABLE workspaces DROP COLUMN deleted_at;
