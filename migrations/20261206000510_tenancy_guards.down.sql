DROP TRIGGER scheduled_sends_same_owner ON scheduled_sends;
DROP FUNCTION ender_same_owner_schedule();
DROP TRIGGER contact_group_members_same_owner ON contact_group_members;
DROP FUNCTION ender_same_owner_member();
