-- Deliveries waiting to be sent, or being sent, in a small table of their own. The queue
-- used to be `webhook_deliveries` itself, the delivery log that is kept for 30 days: every
-- claim and every outcome wrote a new version of a log row (with its body) and of up to
-- four of its indexes, and the claim's scans walked partial indexes over the whole log,
-- which collected dead entries faster than autovacuum visits a big table. Statements got
-- 20-40% slower beside a month of history.
--
-- Now a delivery has a row here exactly while its log status is `pending`: it is written
-- with the delivery, a claim leases it (`lease_expires_at` set: "delivering" in the log),
-- a retry returns it with its next time, and the final outcome deletes it. The log row is
-- written when the event is created and once per outcome (an update that touches no
-- indexed column, so it can stay on its page).

CREATE TABLE webhook_queue (
    delivery_id      uuid PRIMARY KEY REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    endpoint_id      uuid NOT NULL,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    -- Set while a worker holds the delivery; a worker that dies lets it run out and
    -- another takes the delivery over.
    lease_expires_at timestamptz,
    -- Attempts started, counting the one in flight.
    attempts         integer NOT NULL DEFAULT 0
) WITH (
    -- Small and churned: vacuumed after a few thousand dead rows, not a share of its size.
    autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 5000,
    autovacuum_vacuum_insert_scale_factor = 0,
    autovacuum_vacuum_insert_threshold = 5000,
    autovacuum_vacuum_cost_delay = 0
);
CREATE INDEX webhook_queue_due ON webhook_queue (endpoint_id, next_attempt_at) WHERE lease_expires_at IS NULL;
CREATE INDEX webhook_queue_inflight ON webhook_queue (endpoint_id) WHERE lease_expires_at IS NOT NULL;
CREATE INDEX webhook_queue_leases ON webhook_queue (lease_expires_at) WHERE lease_expires_at IS NOT NULL;

INSERT INTO webhook_queue (delivery_id, endpoint_id, next_attempt_at, lease_expires_at, attempts)
SELECT id, endpoint_id, next_attempt_at, CASE WHEN status = 'delivering' THEN lease_expires_at END, attempts
FROM webhook_deliveries WHERE status IN ('pending', 'delivering');
UPDATE webhook_deliveries SET status = 'pending' WHERE status = 'delivering';

DROP INDEX webhook_deliveries_due;
DROP INDEX webhook_deliveries_leases;
DROP INDEX webhook_deliveries_inflight;
ALTER TABLE webhook_deliveries DROP COLUMN lease_expires_at;
-- Room on each page for the outcome's new row version.
ALTER TABLE webhook_deliveries SET (fillfactor = 85);

-- The claim (see 20261123000007_webhook_claim) on the queue.
CREATE OR REPLACE FUNCTION webhook_claim(p_cap bigint, p_lease_secs float8, p_threshold int, p_limit bigint, p_finished uuid[])
RETURNS TABLE (id uuid, endpoint_id uuid, url text, event text, body bytea, attempts int,
               secrets_changed_at timestamptz)
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
DECLARE
    locked uuid[];
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);
    -- Endpoints with waiting deliveries, found by a loose index scan (one seek each,
    -- whatever the backlog), locked unless another worker is claiming for them; an endpoint
    -- whose breaker is open is skipped without touching its deliveries.
    SELECT array_agg(l.id) INTO locked FROM (
        WITH RECURSIVE busy_endpoints(endpoint_id) AS (
            (SELECT q.endpoint_id FROM webhook_queue q WHERE q.lease_expires_at IS NULL
             ORDER BY q.endpoint_id LIMIT 1)
            UNION ALL
            SELECT (SELECT q.endpoint_id FROM webhook_queue q
                    WHERE q.lease_expires_at IS NULL AND q.endpoint_id > b.endpoint_id
                    ORDER BY q.endpoint_id LIMIT 1)
            FROM busy_endpoints b WHERE b.endpoint_id IS NOT NULL)
        SELECT e.id FROM webhook_endpoints e
        WHERE e.id IN (SELECT b.endpoint_id FROM busy_endpoints b WHERE b.endpoint_id IS NOT NULL)
          AND e.active AND (e.breaker_open_until IS NULL OR e.breaker_open_until <= now())
        FOR NO KEY UPDATE OF e SKIP LOCKED) l;
    IF locked IS NULL THEN
        RETURN;
    END IF;
    -- Each locked endpoint's free slots, then its oldest due deliveries.
    RETURN QUERY
    WITH room AS (
        SELECT e.id,
               greatest(0, CASE WHEN e.consecutive_failures >= p_threshold THEN 1 ELSE p_cap END
                           - (SELECT count(*) FROM webhook_queue f
                              WHERE f.endpoint_id = e.id AND f.lease_expires_at IS NOT NULL
                                AND f.delivery_id <> ALL (p_finished))) AS free
        FROM webhook_endpoints e WHERE e.id = ANY (locked)),
    picked AS (
        SELECT p.delivery_id FROM room r CROSS JOIN LATERAL (
            SELECT q.delivery_id FROM webhook_queue q
            WHERE q.endpoint_id = r.id AND q.lease_expires_at IS NULL AND q.next_attempt_at <= now()
            ORDER BY q.next_attempt_at LIMIT r.free
            FOR UPDATE SKIP LOCKED) p
        LIMIT p_limit),
    claimed AS (
        UPDATE webhook_queue q SET lease_expires_at = now() + make_interval(secs => p_lease_secs),
               attempts = q.attempts + 1
        WHERE q.delivery_id = ANY (ARRAY(SELECT picked.delivery_id FROM picked))
        RETURNING q.delivery_id, q.endpoint_id, q.attempts)
    SELECT c.delivery_id, c.endpoint_id, e.url, d.event, d.body, c.attempts, e.secrets_changed_at
    FROM claimed c JOIN webhook_deliveries d ON d.id = c.delivery_id JOIN webhook_endpoints e ON e.id = c.endpoint_id;
END
$$;
