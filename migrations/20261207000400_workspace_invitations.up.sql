-- Invitations to a workspace (issue 15): an invitation may name a workspace and the role
-- its invitee gets there. Accepted with an existing account (whose address must be the
-- invited one) or by signing up through the link, which works under ENDER_SIGNUP=invite
-- as any invitation does. Without a workspace it is an invitation to make an account, as
-- before.
ALTER TABLE invitations
    ADD COLUMN workspace_id uuid REFERENCES workspaces (id) ON DELETE CASCADE,
    ADD COLUMN role text CHECK (role IN ('owner', 'admin', 'member', 'viewer')),
    ADD CONSTRAINT invitations_workspace_role CHECK ((workspace_id IS NULL) = (role IS NULL));
CREATE INDEX invitations_workspace ON invitations (workspace_id, created_at DESC) WHERE workspace_id IS NOT NULL;
