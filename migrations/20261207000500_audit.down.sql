DROP TABLE audit_events;
DROP FUNCTION ender_audit_append_only();
