-- What the delivery engine and the webhook pages need beyond the first webhook tables:
-- deliveries held for an endpoint Ender disabled (released by "re-enable and replay"),
-- hourly success counters for the health column, the last failure, and the presence state
-- of devices so `device_online` / `device_offline` are announced once per change.

ALTER TABLE webhook_deliveries DROP CONSTRAINT webhook_deliveries_status_check;
ALTER TABLE webhook_deliveries ADD CONSTRAINT webhook_deliveries_status_check
    CHECK (status IN ('pending', 'delivering', 'succeeded', 'failed', 'dropped', 'held'));
CREATE INDEX webhook_deliveries_inflight ON webhook_deliveries (endpoint_id) WHERE status = 'delivering';

-- Set when Ender disabled the endpoint (it kept failing, or answered 410): events keep
-- being recorded as held until the owner re-enables it. NULL when the owner paused it.
ALTER TABLE webhook_endpoints ADD COLUMN disabled_at timestamptz;
ALTER TABLE webhook_endpoints ADD COLUMN last_failure_at timestamptz;
ALTER TABLE webhook_endpoints ADD COLUMN last_failure text NOT NULL DEFAULT '';
-- Bumped whenever the signing secrets change, so workers reload their cached secrets.
ALTER TABLE webhook_endpoints ADD COLUMN secrets_changed_at timestamptz NOT NULL DEFAULT now();

CREATE TABLE webhook_endpoint_stats (
    endpoint_id uuid NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    hour        timestamptz NOT NULL,
    succeeded   bigint NOT NULL DEFAULT 0,
    failed      bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (endpoint_id, hour)
);

ALTER TABLE devices ADD COLUMN announced_online boolean NOT NULL DEFAULT false;
