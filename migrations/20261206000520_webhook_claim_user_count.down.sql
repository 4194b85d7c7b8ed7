-- Back to the fair-share claim of 20261206000020, which always counts the owner's deliveries in flight.
DROP FUNCTION webhook_claim(bigint, float8, int, bigint, uuid[], bigint);
CREATE FUNCTION webhook_claim(p_cap bigint, p_lease_secs float8, p_threshold int, p_limit bigint, p_finished uuid[],
                              p_user_cap bigint)
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
    -- Each locked endpoint's free slots and its owner's (what the owner has in flight on
    -- all their endpoints, across workers; an owner has at most ENDER_MAX_WEBHOOKS
    -- endpoints, so this is a few index lookups), then the oldest due deliveries of each,
    -- taken round-robin between owners: every owner's first, then every owner's second…
    RETURN QUERY
    WITH room AS (
        SELECT e.id, e.user_id,
               greatest(0, CASE WHEN e.consecutive_failures >= p_threshold THEN 1 ELSE p_cap END
                           - (SELECT count(*) FROM webhook_deliveries f
                              WHERE f.endpoint_id = e.id AND f.status = 'delivering'
                                AND f.id <> ALL (p_finished))) AS free
        FROM webhook_endpoints e WHERE e.id = ANY (locked)),
    user_room AS (
        SELECT u.user_id,
               greatest(0, p_user_cap
                           - (SELECT count(*) FROM webhook_endpoints ue
                              JOIN webhook_deliveries f ON f.endpoint_id = ue.id
                              WHERE ue.user_id = u.user_id AND f.status = 'delivering'
                                AND f.id <> ALL (p_finished))) AS free
        FROM (SELECT DISTINCT room.user_id FROM room) u),
    candidates AS (
        SELECT p.id, p.next_attempt_at, u.free AS user_free,
               row_number() OVER (PARTITION BY r.user_id ORDER BY p.next_attempt_at, p.id) AS user_rank
        FROM room r JOIN user_room u ON u.user_id = r.user_id
        CROSS JOIN LATERAL (
            SELECT d.id, d.next_attempt_at FROM webhook_deliveries d
            WHERE d.endpoint_id = r.id AND d.status = 'pending' AND d.next_attempt_at <= now()
            ORDER BY d.next_attempt_at LIMIT least(r.free, u.free, p_limit)
            FOR UPDATE SKIP LOCKED) p
        WHERE u.free > 0),
    picked AS (
        SELECT c.id FROM candidates c WHERE c.user_rank <= c.user_free
        ORDER BY c.user_rank, c.next_attempt_at
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
