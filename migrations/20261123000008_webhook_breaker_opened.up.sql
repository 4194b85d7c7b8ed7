-- How many times in a row an endpoint's circuit breaker has opened since its last success.
-- The first pause is 30 s and each failed probe doubles it (up to 10 minutes). The pause
-- used to be derived from the failure count, so when the attempts in flight at the moment
-- the breaker tripped (up to the per-endpoint cap) all failed, its very first pause could
-- be the 10-minute maximum.
ALTER TABLE webhook_endpoints ADD COLUMN breaker_opened int NOT NULL DEFAULT 0;
