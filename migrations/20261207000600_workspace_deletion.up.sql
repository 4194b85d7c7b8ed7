-- Deleting a workspace (issue 15): the owner's delete marks it, cancels its queued
-- messages (their webhooks still go out), removes its members, devices and keys at once;
-- the housekeeping purge removes the rest once those last webhooks are delivered.
ALTER TABLE workspaces ADD COLUMN deleted_at timestamptz;
