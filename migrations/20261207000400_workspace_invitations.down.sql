DELETE FROM invitations WHERE workspace_id IS NOT NULL;
DROP INDEX invitations_workspace;
ALTER TABLE invitations DROP CONSTRAINT invitations_workspace_role, DROP COLUMN role, DROP COLUMN workspace_id;
