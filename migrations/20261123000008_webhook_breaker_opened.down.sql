ALTER TABLE webhook_endpoints DROP COLUMN breaker_opened;
