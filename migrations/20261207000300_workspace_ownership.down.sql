-- Back to users as owners. A workspace's rows go to the account it was made for, or, for a
-- shared workspace, to its longest-standing owner (a shared workspace whose rows clash
-- with that owner's own, a contact with the same number say, stops the migration).

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
               CASE WHEN p_cap * (SELECT count(*) FROM webhook_endpoints ue WHERE ue.user_id = u.user_id) <= p_user_cap
                    -- all the owner's endpoints at their own cap stay within the owner's share
                    THEN p_user_cap
                    ELSE greatest(0, p_user_cap
                                     - (SELECT count(*) FROM webhook_endpoints ue
                                        JOIN webhook_deliveries f ON f.endpoint_id = ue.id
                                        WHERE ue.user_id = u.user_id AND f.status = 'delivering'
                                          AND f.id <> ALL (p_finished)))
               END AS free
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


ALTER TABLE contacts RENAME CONSTRAINT contacts_workspace_id_phone_number_key TO contacts_user_id_phone_number_key;
ALTER INDEX api_keys_workspace RENAME TO api_keys_user_id;
ALTER INDEX devices_workspace RENAME TO devices_user_id;
ALTER INDEX messages_workspace_created RENAME TO messages_user_created;
ALTER INDEX messages_workspace_direction_created RENAME TO messages_user_direction_created;
ALTER INDEX messages_workspace_sent_at RENAME TO messages_user_sent_at;
ALTER INDEX messages_workspace_delivered_at RENAME TO messages_user_delivered_at;
ALTER INDEX contact_groups_workspace_name RENAME TO contact_groups_user_name;
ALTER INDEX contacts_workspace_name RENAME TO contacts_user_name;
ALTER INDEX contact_imports_workspace RENAME TO contact_imports_user;
ALTER INDEX message_templates_workspace_name RENAME TO message_templates_user_name;
ALTER INDEX scheduled_sends_workspace RENAME TO scheduled_sends_user;
ALTER INDEX webhook_endpoints_workspace RENAME TO webhook_endpoints_user;

ALTER TABLE webhook_deliveries DROP CONSTRAINT webhook_deliveries_endpoint_fkey,
    ADD CONSTRAINT webhook_deliveries_endpoint_id_fkey FOREIGN KEY (endpoint_id)
        REFERENCES webhook_endpoints (id) ON DELETE CASCADE;

DROP TRIGGER scheduled_sends_same_workspace ON scheduled_sends;
DROP FUNCTION ender_same_workspace_schedule();
ALTER TABLE scheduled_sends DROP CONSTRAINT scheduled_sends_template_fkey,
    ADD CONSTRAINT scheduled_sends_template_id_fkey FOREIGN KEY (template_id)
        REFERENCES message_templates (id) ON DELETE RESTRICT;
ALTER TABLE scheduled_sends DROP CONSTRAINT scheduled_sends_device_fkey,
    ADD CONSTRAINT scheduled_sends_device_id_fkey FOREIGN KEY (device_id)
        REFERENCES devices (id) ON DELETE SET NULL;

ALTER TABLE contact_imports DROP CONSTRAINT contact_imports_group_fkey,
    ADD CONSTRAINT contact_imports_group_id_fkey FOREIGN KEY (group_id)
        REFERENCES contact_groups (id) ON DELETE SET NULL;

ALTER TABLE contact_group_members DROP CONSTRAINT contact_group_members_group_fkey,
    DROP CONSTRAINT contact_group_members_contact_fkey,
    ADD CONSTRAINT contact_group_members_group_id_fkey FOREIGN KEY (group_id)
        REFERENCES contact_groups (id) ON DELETE CASCADE,
    ADD CONSTRAINT contact_group_members_contact_id_fkey FOREIGN KEY (contact_id)
        REFERENCES contacts (id) ON DELETE CASCADE,
    DROP COLUMN workspace_id;

ALTER TABLE messages DROP CONSTRAINT messages_device_fkey,
    ADD CONSTRAINT messages_device_id_fkey FOREIGN KEY (device_id) REFERENCES devices (id) ON DELETE SET NULL;
ALTER TABLE messages DROP CONSTRAINT messages_requested_device_fkey,
    ADD CONSTRAINT messages_requested_device_id_fkey FOREIGN KEY (requested_device_id)
        REFERENCES devices (id) ON DELETE SET NULL;

ALTER TABLE devices DROP CONSTRAINT devices_workspace_id_id_key;
ALTER TABLE contacts DROP CONSTRAINT contacts_workspace_id_id_key;
ALTER TABLE contact_groups DROP CONSTRAINT contact_groups_workspace_id_id_key;
ALTER TABLE message_templates DROP CONSTRAINT message_templates_workspace_id_id_key;
ALTER TABLE webhook_endpoints DROP CONSTRAINT webhook_endpoints_workspace_id_id_key;

ALTER TABLE api_keys DROP COLUMN created_by;

ALTER TABLE api_keys DROP CONSTRAINT api_keys_workspace_id_fkey;
ALTER TABLE devices DROP CONSTRAINT devices_workspace_id_fkey;
ALTER TABLE messages DROP CONSTRAINT messages_workspace_id_fkey;
ALTER TABLE idempotency_keys DROP CONSTRAINT idempotency_keys_workspace_id_fkey;
ALTER TABLE sms_usage DROP CONSTRAINT sms_usage_workspace_id_fkey;
ALTER TABLE dispatch_rotation DROP CONSTRAINT dispatch_rotation_workspace_id_fkey;
ALTER TABLE contacts DROP CONSTRAINT contacts_workspace_id_fkey;
ALTER TABLE contact_groups DROP CONSTRAINT contact_groups_workspace_id_fkey;
ALTER TABLE contact_imports DROP CONSTRAINT contact_imports_workspace_id_fkey;
ALTER TABLE message_templates DROP CONSTRAINT message_templates_workspace_id_fkey;
ALTER TABLE scheduled_sends DROP CONSTRAINT scheduled_sends_workspace_id_fkey;
ALTER TABLE webhook_endpoints DROP CONSTRAINT webhook_endpoints_workspace_id_fkey;
ALTER TABLE webhook_deliveries DROP CONSTRAINT webhook_deliveries_workspace_id_fkey;

CREATE TEMPORARY TABLE workspace_owner ON COMMIT DROP AS
SELECT w.id AS workspace_id,
       coalesce(w.personal_user_id,
                (SELECT m.user_id FROM workspace_members m
                 WHERE m.workspace_id = w.id AND m.role = 'owner'
                 ORDER BY m.created_at, m.user_id LIMIT 1)) AS user_id
FROM workspaces w;

UPDATE api_keys o SET workspace_id = w.user_id FROM workspace_owner w
    WHERE w.workspace_id = o.workspace_id AND w.user_id <> o.workspace_id;
UPDATE devices o SET workspace_id = w.user_id FROM workspace_owner w
    WHERE w.workspace_id = o.workspace_id AND w.user_id <> o.workspace_id;
UPDATE messages o SET workspace_id = w.user_id FROM workspace_owner w
    WHERE w.workspace_id = o.workspace_id AND w.user_id <> o.workspace_id;
UPDATE idempotency_keys o SET workspace_id = w.user_id FROM workspace_owner w
    WHERE w.workspace_id = o.workspace_id AND w.user_id <> o.workspace_id;
UPDATE sms_usage o SET workspace_id = w.user_id FROM workspace_owner w
    WHERE w.workspace_id = o.workspace_id AND w.user_id <> o.workspace_id;
UPDATE dispatch_rotation o SET workspace_id = w.user_id FROM workspace_owner w
    WHERE w.workspace_id = o.workspace_id AND w.user_id <> o.workspace_id;
UPDATE contacts o SET workspace_id = w.user_id FROM workspace_owner w
    WHERE w.workspace_id = o.workspace_id AND w.user_id <> o.workspace_id;
UPDATE contact_groups o SET workspace_id = w.user_id FROM workspace_owner w
    WHERE w.workspace_id = o.workspace_id AND w.user_id <> o.workspace_id;
UPDATE contact_imports o SET workspace_id = w.user_id FROM workspace_owner w
    WHERE w.workspace_id = o.workspace_id AND w.user_id <> o.workspace_id;
UPDATE message_templates o SET workspace_id = w.user_id FROM workspace_owner w
    WHERE w.workspace_id = o.workspace_id AND w.user_id <> o.workspace_id;
UPDATE scheduled_sends o SET workspace_id = w.user_id FROM workspace_owner w
    WHERE w.workspace_id = o.workspace_id AND w.user_id <> o.workspace_id;
UPDATE webhook_endpoints o SET workspace_id = w.user_id FROM workspace_owner w
    WHERE w.workspace_id = o.workspace_id AND w.user_id <> o.workspace_id;
UPDATE webhook_deliveries o SET workspace_id = w.user_id FROM workspace_owner w
    WHERE w.workspace_id = o.workspace_id AND w.user_id <> o.workspace_id;

ALTER TABLE api_keys RENAME COLUMN workspace_id TO user_id;
ALTER TABLE api_keys ADD CONSTRAINT api_keys_user_id_fkey
    FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE;
ALTER TABLE devices RENAME COLUMN workspace_id TO user_id;
ALTER TABLE devices ADD CONSTRAINT devices_user_id_fkey
    FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE;
ALTER TABLE messages RENAME COLUMN workspace_id TO user_id;
ALTER TABLE messages ADD CONSTRAINT messages_user_id_fkey
    FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE;
ALTER TABLE idempotency_keys RENAME COLUMN workspace_id TO user_id;
ALTER TABLE idempotency_keys ADD CONSTRAINT idempotency_keys_user_id_fkey
    FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE;
ALTER TABLE sms_usage RENAME COLUMN workspace_id TO user_id;
ALTER TABLE sms_usage ADD CONSTRAINT sms_usage_user_id_fkey
    FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE;
ALTER TABLE dispatch_rotation RENAME COLUMN workspace_id TO user_id;
ALTER TABLE dispatch_rotation ADD CONSTRAINT dispatch_rotation_user_id_fkey
    FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE;
ALTER TABLE contacts RENAME COLUMN workspace_id TO user_id;
ALTER TABLE contacts ADD CONSTRAINT contacts_user_id_fkey
    FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE;
ALTER TABLE contact_groups RENAME COLUMN workspace_id TO user_id;
ALTER TABLE contact_groups ADD CONSTRAINT contact_groups_user_id_fkey
    FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE;
ALTER TABLE contact_imports RENAME COLUMN workspace_id TO user_id;
ALTER TABLE contact_imports ADD CONSTRAINT contact_imports_user_id_fkey
    FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE;
ALTER TABLE message_templates RENAME COLUMN workspace_id TO user_id;
ALTER TABLE message_templates ADD CONSTRAINT message_templates_user_id_fkey
    FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE;
ALTER TABLE scheduled_sends RENAME COLUMN workspace_id TO user_id;
ALTER TABLE scheduled_sends ADD CONSTRAINT scheduled_sends_user_id_fkey
    FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE;
ALTER TABLE webhook_endpoints RENAME COLUMN workspace_id TO user_id;
ALTER TABLE webhook_endpoints ADD CONSTRAINT webhook_endpoints_user_id_fkey
    FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE;
ALTER TABLE webhook_deliveries RENAME COLUMN workspace_id TO user_id;
ALTER TABLE webhook_deliveries ADD CONSTRAINT webhook_deliveries_user_id_fkey
    FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE;

-- The triggers of 20261206000510 come back.
CREATE FUNCTION ender_same_owner_member() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (SELECT user_id FROM contact_groups WHERE id = NEW.group_id)
       IS DISTINCT FROM (SELECT user_id FROM contacts WHERE id = NEW.contact_id) THEN
        RAISE EXCEPTION 'a group member must belong to the group''s owner'
            USING ERRCODE = 'check_violation', CONSTRAINT = 'contact_group_members_same_owner';
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER contact_group_members_same_owner
    BEFORE INSERT OR UPDATE ON contact_group_members
    FOR EACH ROW EXECUTE FUNCTION ender_same_owner_member();

CREATE FUNCTION ender_same_owner_schedule() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.template_id IS NOT NULL
       AND (SELECT user_id FROM message_templates WHERE id = NEW.template_id) IS DISTINCT FROM NEW.user_id THEN
        RAISE EXCEPTION 'a schedule''s template must belong to its owner'
            USING ERRCODE = 'check_violation', CONSTRAINT = 'scheduled_sends_same_owner';
    END IF;
    IF NEW.device_id IS NOT NULL
       AND (SELECT user_id FROM devices WHERE id = NEW.device_id) IS DISTINCT FROM NEW.user_id THEN
        RAISE EXCEPTION 'a schedule''s device must belong to its owner'
            USING ERRCODE = 'check_violation', CONSTRAINT = 'scheduled_sends_same_owner';
    END IF;
    -- a deleted group may stay listed (it then contributes nobody); another user's may not
    IF EXISTS (SELECT 1 FROM contact_groups cg WHERE cg.id = ANY (NEW.group_ids) AND cg.user_id <> NEW.user_id) THEN
        RAISE EXCEPTION 'a schedule''s groups must belong to its owner'
            USING ERRCODE = 'check_violation', CONSTRAINT = 'scheduled_sends_same_owner';
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER scheduled_sends_same_owner
    BEFORE INSERT OR UPDATE OF user_id, template_id, device_id, group_ids ON scheduled_sends
    FOR EACH ROW EXECUTE FUNCTION ender_same_owner_schedule();
