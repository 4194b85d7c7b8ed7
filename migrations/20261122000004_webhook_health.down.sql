ALTER TABLE devices DROP COLUMN announced_online;
DROP TABLE webhook_endpoint_stats;
ALTER TABLE webhook_endpoints DROP COLUMN secrets_changed_at;
ALTER TABLE webhook_endpoints DROP COLUMN last_failure;
ALTER TABLE webhook_endpoints DROP COLUMN last_failure_at;
ALTER TABLE webhook_endpoints DROP COLUMN disabled_at;
DROP INDEX webhook_deliveries_inflight;
DELETE FROM webhook_deliveries WHERE status = 'held';
ALTER TABLE webhook_deliveries DROP CONSTRAINT webhook_deliveries_status_check;
ALTER TABLE webhook_deliveries ADD CONSTRAINT webhook_deliveries_status_check
    CHECK (status IN ('pending', 'delivering', 'succeeded', 'failed', 'dropped'));
