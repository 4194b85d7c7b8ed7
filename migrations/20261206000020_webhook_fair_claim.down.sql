-- Back to the claim without a per-user share.
DROP FUNCTION webhook_claim(bigint, float8, int, bigint, uuid[], bigint);
CREATE FUNCTION webhook_claim(p_cap bigint, p_lease_secs float8, p_threshold int, p_limit bigint, p_finished uuid[])
RETURNS TABLE (id uuid, endpoint_id uuid, url text, event text, body bytea, attempts int,
               secrets_changed_at timestamptz)
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
DECLARE
    locked uuid[];
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);
    -- Endpoints with pending deliveries, found by a loose index scan (one seek each,
    -- whatever the backlog), locked unless another worker is claiming for them; an endpoint
    -- whose breaker is open is skipped without touching its deliveries.
    SELECT array_agg(l.id) INTO locked FROM (
        WITH RECURSIVE busy_endpoints(endpoint_id) AS (
            (SELECT d.endpoint_id FROM webhook_deliveries d WHERE d.status = 'pending'
             ORDER BY d.endpoint_id LIMIT 1)
            UNION ALL
            SELECT (SELECT d.endpoint_id FROM webhook_deliveries d
                    WHERE d.status = 'pending' AND d.endpoint_id > b.endpoint_id
                    ORDER BY d.endpoint_id LIMIT 1)
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
                           - (SELECT count(*) FROM webhook_deliveries f
                              WHERE f.endpoint_id = e.id AND f.status = 'delivering'
                                AND f.id <> ALL (p_finished))) AS free
        FROM webhook_endpoints e WHERE e.id = ANY (locked)),
    picked AS (
        SELECT p.id FROM room r CROSS JOIN LATERAL (
            SELECT d.id FROM webhook_deliveries d
            WHERE d.endpoint_id = r.id AND d.status = 'pending' AND d.next_attempt_at <= now()
            ORDER BY d.next_attempt_at LIMIT r.free
            FOR UPDATE SKIP LOCKED) p
        LIMIT p_limit),
    claimed AS (
        UPDATE webhook_deliveries d SET status = 'delivering', attempts = d.attempts + 1,
               lease_expires_at = now() + make_interval(secs => p_lease_secs), updated_at = now()
        -- By primary key: joined with `picked` (estimated at p_limit rows) the planner
        -- would rather read the whole table, history included.
        WHERE d.id = ANY (ARRAY(SELECT picked.id FROM picked))
        RETURNING d.id, d.endpoint_id, d.event, d.body, d.attempts)
    SELECT c.id, c.endpoint_id, e.url, c.event, c.body, c.attempts, e.secrets_changed_at
    FROM claimed c JOIN webhook_endpoints e ON e.id = c.endpoint_id;
END
$$;
