-- Workspaces, second step (issue 15): a workspace, no longer a user, owns devices, API keys,
-- messages, usage, the address book, templates, schedules and webhooks. Every owned row
-- moves into its owner's personal workspace: the owner column is renamed and, for an
-- account made after the first step (whose personal workspace has its own id), rewritten.
-- Tenancy is in the schema: a row that names another owned row (a message's device, a
-- schedule's template, a group's member, a delivery's endpoint…) does so by
-- (workspace_id, id), so it can never name another workspace's row.

-- The owner triggers of 20261206000510 go (foreign keys and a new trigger replace them,
-- below), and nothing may point at users any more while owners are rewritten.
DROP TRIGGER contact_group_members_same_owner ON contact_group_members;
DROP FUNCTION ender_same_owner_member();
DROP TRIGGER scheduled_sends_same_owner ON scheduled_sends;
DROP FUNCTION ender_same_owner_schedule();

ALTER TABLE api_keys DROP CONSTRAINT api_keys_user_id_fkey;
ALTER TABLE api_keys RENAME COLUMN user_id TO workspace_id;
ALTER TABLE devices DROP CONSTRAINT devices_user_id_fkey;
ALTER TABLE devices RENAME COLUMN user_id TO workspace_id;
ALTER TABLE messages DROP CONSTRAINT messages_user_id_fkey;
ALTER TABLE messages RENAME COLUMN user_id TO workspace_id;
ALTER TABLE idempotency_keys DROP CONSTRAINT idempotency_keys_user_id_fkey;
ALTER TABLE idempotency_keys RENAME COLUMN user_id TO workspace_id;
ALTER TABLE sms_usage DROP CONSTRAINT sms_usage_user_id_fkey;
ALTER TABLE sms_usage RENAME COLUMN user_id TO workspace_id;
ALTER TABLE dispatch_rotation DROP CONSTRAINT dispatch_rotation_user_id_fkey;
ALTER TABLE dispatch_rotation RENAME COLUMN user_id TO workspace_id;
ALTER TABLE contacts DROP CONSTRAINT contacts_user_id_fkey;
ALTER TABLE contacts RENAME COLUMN user_id TO workspace_id;
ALTER TABLE contact_groups DROP CONSTRAINT contact_groups_user_id_fkey;
ALTER TABLE contact_groups RENAME COLUMN user_id TO workspace_id;
ALTER TABLE contact_imports DROP CONSTRAINT contact_imports_user_id_fkey;
ALTER TABLE contact_imports RENAME COLUMN user_id TO workspace_id;
ALTER TABLE message_templates DROP CONSTRAINT message_templates_user_id_fkey;
ALTER TABLE message_templates RENAME COLUMN user_id TO workspace_id;
ALTER TABLE scheduled_sends DROP CONSTRAINT scheduled_sends_user_id_fkey;
ALTER TABLE scheduled_sends RENAME COLUMN user_id TO workspace_id;
ALTER TABLE webhook_endpoints DROP CONSTRAINT webhook_endpoints_user_id_fkey;
ALTER TABLE webhook_endpoints RENAME COLUMN user_id TO workspace_id;
ALTER TABLE webhook_deliveries DROP CONSTRAINT webhook_deliveries_user_id_fkey;
ALTER TABLE webhook_deliveries RENAME COLUMN user_id TO workspace_id;

-- Accounts made after the first step: their personal workspace has a fresh id.
UPDATE api_keys o SET workspace_id = w.id FROM workspaces w
    WHERE w.personal_user_id = o.workspace_id AND w.id <> o.workspace_id;
UPDATE devices o SET workspace_id = w.id FROM workspaces w
    WHERE w.personal_user_id = o.workspace_id AND w.id <> o.workspace_id;
UPDATE messages o SET workspace_id = w.id FROM workspaces w
    WHERE w.personal_user_id = o.workspace_id AND w.id <> o.workspace_id;
UPDATE idempotency_keys o SET workspace_id = w.id FROM workspaces w
    WHERE w.personal_user_id = o.workspace_id AND w.id <> o.workspace_id;
UPDATE sms_usage o SET workspace_id = w.id FROM workspaces w
    WHERE w.personal_user_id = o.workspace_id AND w.id <> o.workspace_id;
UPDATE dispatch_rotation o SET workspace_id = w.id FROM workspaces w
    WHERE w.personal_user_id = o.workspace_id AND w.id <> o.workspace_id;
UPDATE contacts o SET workspace_id = w.id FROM workspaces w
    WHERE w.personal_user_id = o.workspace_id AND w.id <> o.workspace_id;
UPDATE contact_groups o SET workspace_id = w.id FROM workspaces w
    WHERE w.personal_user_id = o.workspace_id AND w.id <> o.workspace_id;
UPDATE contact_imports o SET workspace_id = w.id FROM workspaces w
    WHERE w.personal_user_id = o.workspace_id AND w.id <> o.workspace_id;
UPDATE message_templates o SET workspace_id = w.id FROM workspaces w
    WHERE w.personal_user_id = o.workspace_id AND w.id <> o.workspace_id;
UPDATE scheduled_sends o SET workspace_id = w.id FROM workspaces w
    WHERE w.personal_user_id = o.workspace_id AND w.id <> o.workspace_id;
UPDATE webhook_endpoints o SET workspace_id = w.id FROM workspaces w
    WHERE w.personal_user_id = o.workspace_id AND w.id <> o.workspace_id;
UPDATE webhook_deliveries o SET workspace_id = w.id FROM workspaces w
    WHERE w.personal_user_id = o.workspace_id AND w.id <> o.workspace_id;

ALTER TABLE api_keys ADD CONSTRAINT api_keys_workspace_id_fkey
    FOREIGN KEY (workspace_id) REFERENCES workspaces (id) ON DELETE CASCADE;
ALTER TABLE devices ADD CONSTRAINT devices_workspace_id_fkey
    FOREIGN KEY (workspace_id) REFERENCES workspaces (id) ON DELETE CASCADE;
ALTER TABLE messages ADD CONSTRAINT messages_workspace_id_fkey
    FOREIGN KEY (workspace_id) REFERENCES workspaces (id) ON DELETE CASCADE;
ALTER TABLE idempotency_keys ADD CONSTRAINT idempotency_keys_workspace_id_fkey
    FOREIGN KEY (workspace_id) REFERENCES workspaces (id) ON DELETE CASCADE;
ALTER TABLE sms_usage ADD CONSTRAINT sms_usage_workspace_id_fkey
    FOREIGN KEY (workspace_id) REFERENCES workspaces (id) ON DELETE CASCADE;
ALTER TABLE dispatch_rotation ADD CONSTRAINT dispatch_rotation_workspace_id_fkey
    FOREIGN KEY (workspace_id) REFERENCES workspaces (id) ON DELETE CASCADE;
ALTER TABLE contacts ADD CONSTRAINT contacts_workspace_id_fkey
    FOREIGN KEY (workspace_id) REFERENCES workspaces (id) ON DELETE CASCADE;
ALTER TABLE contact_groups ADD CONSTRAINT contact_groups_workspace_id_fkey
    FOREIGN KEY (workspace_id) REFERENCES workspaces (id) ON DELETE CASCADE;
ALTER TABLE contact_imports ADD CONSTRAINT contact_imports_workspace_id_fkey
    FOREIGN KEY (workspace_id) REFERENCES workspaces (id) ON DELETE CASCADE;
ALTER TABLE message_templates ADD CONSTRAINT message_templates_workspace_id_fkey
    FOREIGN KEY (workspace_id) REFERENCES workspaces (id) ON DELETE CASCADE;
ALTER TABLE scheduled_sends ADD CONSTRAINT scheduled_sends_workspace_id_fkey
    FOREIGN KEY (workspace_id) REFERENCES workspaces (id) ON DELETE CASCADE;
ALTER TABLE webhook_endpoints ADD CONSTRAINT webhook_endpoints_workspace_id_fkey
    FOREIGN KEY (workspace_id) REFERENCES workspaces (id) ON DELETE CASCADE;
ALTER TABLE webhook_deliveries ADD CONSTRAINT webhook_deliveries_workspace_id_fkey
    FOREIGN KEY (workspace_id) REFERENCES workspaces (id) ON DELETE CASCADE;

-- An API key belongs to the workspace; who made it is kept (for the audit trail and the
-- keys page), and outlives the maker's membership.
ALTER TABLE api_keys ADD COLUMN created_by uuid REFERENCES users (id) ON DELETE SET NULL;
UPDATE api_keys k SET created_by = w.personal_user_id FROM workspaces w WHERE w.id = k.workspace_id;

-- Owned rows that other owned rows name, by (workspace_id, id).
ALTER TABLE devices ADD CONSTRAINT devices_workspace_id_id_key UNIQUE (workspace_id, id);
ALTER TABLE contacts ADD CONSTRAINT contacts_workspace_id_id_key UNIQUE (workspace_id, id);
ALTER TABLE contact_groups ADD CONSTRAINT contact_groups_workspace_id_id_key UNIQUE (workspace_id, id);
ALTER TABLE message_templates ADD CONSTRAINT message_templates_workspace_id_id_key UNIQUE (workspace_id, id);
ALTER TABLE webhook_endpoints ADD CONSTRAINT webhook_endpoints_workspace_id_id_key UNIQUE (workspace_id, id);

-- A message's device, asked for or assigned, is one of its workspace's devices; deleting
-- the device clears only the device column.
ALTER TABLE messages DROP CONSTRAINT messages_device_id_fkey,
    ADD CONSTRAINT messages_device_fkey FOREIGN KEY (workspace_id, device_id)
        REFERENCES devices (workspace_id, id) ON DELETE SET NULL (device_id);
ALTER TABLE messages DROP CONSTRAINT messages_requested_device_id_fkey,
    ADD CONSTRAINT messages_requested_device_fkey FOREIGN KEY (workspace_id, requested_device_id)
        REFERENCES devices (workspace_id, id) ON DELETE SET NULL (requested_device_id);

-- A group's members are contacts of the group's workspace (this replaces a trigger).
ALTER TABLE contact_group_members ADD COLUMN workspace_id uuid;
UPDATE contact_group_members m SET workspace_id = g.workspace_id FROM contact_groups g WHERE g.id = m.group_id;
ALTER TABLE contact_group_members ALTER COLUMN workspace_id SET NOT NULL,
    DROP CONSTRAINT contact_group_members_group_id_fkey,
    DROP CONSTRAINT contact_group_members_contact_id_fkey,
    ADD CONSTRAINT contact_group_members_group_fkey FOREIGN KEY (workspace_id, group_id)
        REFERENCES contact_groups (workspace_id, id) ON DELETE CASCADE,
    ADD CONSTRAINT contact_group_members_contact_fkey FOREIGN KEY (workspace_id, contact_id)
        REFERENCES contacts (workspace_id, id) ON DELETE CASCADE;

ALTER TABLE contact_imports DROP CONSTRAINT contact_imports_group_id_fkey,
    ADD CONSTRAINT contact_imports_group_fkey FOREIGN KEY (workspace_id, group_id)
        REFERENCES contact_groups (workspace_id, id) ON DELETE SET NULL (group_id);

-- A schedule's template and device by (workspace_id, id); its groups are an array, which a
-- foreign key cannot cover, so the trigger stays for them alone.
ALTER TABLE scheduled_sends DROP CONSTRAINT scheduled_sends_template_id_fkey,
    ADD CONSTRAINT scheduled_sends_template_fkey FOREIGN KEY (workspace_id, template_id)
        REFERENCES message_templates (workspace_id, id) ON DELETE RESTRICT;
ALTER TABLE scheduled_sends DROP CONSTRAINT scheduled_sends_device_id_fkey,
    ADD CONSTRAINT scheduled_sends_device_fkey FOREIGN KEY (workspace_id, device_id)
        REFERENCES devices (workspace_id, id) ON DELETE SET NULL (device_id);
CREATE FUNCTION ender_same_workspace_schedule() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- a deleted group may stay listed (it then contributes nobody); another workspace's may not
    IF EXISTS (SELECT 1 FROM contact_groups cg
               WHERE cg.id = ANY (NEW.group_ids) AND cg.workspace_id <> NEW.workspace_id) THEN
        RAISE EXCEPTION 'a schedule''s groups must belong to its workspace'
            USING ERRCODE = 'check_violation', CONSTRAINT = 'scheduled_sends_same_workspace';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER scheduled_sends_same_workspace
    BEFORE INSERT OR UPDATE OF workspace_id, group_ids ON scheduled_sends
    FOR EACH ROW EXECUTE FUNCTION ender_same_workspace_schedule();

ALTER TABLE webhook_deliveries DROP CONSTRAINT webhook_deliveries_endpoint_id_fkey,
    ADD CONSTRAINT webhook_deliveries_endpoint_fkey FOREIGN KEY (workspace_id, endpoint_id)
        REFERENCES webhook_endpoints (workspace_id, id) ON DELETE CASCADE;

-- Names that said "user".
ALTER INDEX api_keys_user_id RENAME TO api_keys_workspace;
ALTER INDEX devices_user_id RENAME TO devices_workspace;
ALTER INDEX messages_user_created RENAME TO messages_workspace_created;
ALTER INDEX messages_user_direction_created RENAME TO messages_workspace_direction_created;
ALTER INDEX messages_user_sent_at RENAME TO messages_workspace_sent_at;
ALTER INDEX messages_user_delivered_at RENAME TO messages_workspace_delivered_at;
ALTER INDEX contact_groups_user_name RENAME TO contact_groups_workspace_name;
ALTER INDEX contacts_user_name RENAME TO contacts_workspace_name;
ALTER INDEX contact_imports_user RENAME TO contact_imports_workspace;
ALTER INDEX message_templates_user_name RENAME TO message_templates_workspace_name;
ALTER INDEX scheduled_sends_user RENAME TO scheduled_sends_workspace;
ALTER INDEX webhook_endpoints_user RENAME TO webhook_endpoints_workspace;
ALTER TABLE contacts RENAME CONSTRAINT contacts_user_id_phone_number_key TO contacts_workspace_id_phone_number_key;

-- The webhook claim shares delivery slots between workspaces, as it did between users.
DROP FUNCTION webhook_claim(bigint, float8, int, bigint, uuid[], bigint);
CREATE FUNCTION webhook_claim(p_cap bigint, p_lease_secs float8, p_threshold int, p_limit bigint, p_finished uuid[],
                              p_workspace_cap bigint)
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
    -- Each locked endpoint's free slots and its workspace's (what the workspace has in
    -- flight on all its endpoints, across workers; a workspace has at most
    -- ENDER_MAX_WEBHOOKS endpoints, so this is a few index lookups), then the oldest due
    -- deliveries of each, taken round-robin between workspaces.
    RETURN QUERY
    WITH room AS (
        SELECT e.id, e.workspace_id,
               greatest(0, CASE WHEN e.consecutive_failures >= p_threshold THEN 1 ELSE p_cap END
                           - (SELECT count(*) FROM webhook_deliveries f
                              WHERE f.endpoint_id = e.id AND f.status = 'delivering'
                                AND f.id <> ALL (p_finished))) AS free
        FROM webhook_endpoints e WHERE e.id = ANY (locked)),
    workspace_room AS (
        SELECT u.workspace_id,
               CASE WHEN p_cap * (SELECT count(*) FROM webhook_endpoints ue WHERE ue.workspace_id = u.workspace_id)
                         <= p_workspace_cap
                    -- all the workspace's endpoints at their own cap stay within its share
                    THEN p_workspace_cap
                    ELSE greatest(0, p_workspace_cap
                                     - (SELECT count(*) FROM webhook_endpoints ue
                                        JOIN webhook_deliveries f ON f.endpoint_id = ue.id
                                        WHERE ue.workspace_id = u.workspace_id AND f.status = 'delivering'
                                          AND f.id <> ALL (p_finished)))
               END AS free
        FROM (SELECT DISTINCT room.workspace_id FROM room) u),
    candidates AS (
        SELECT p.id, p.next_attempt_at, u.free AS workspace_free,
               row_number() OVER (PARTITION BY r.workspace_id ORDER BY p.next_attempt_at, p.id) AS workspace_rank
        FROM room r JOIN workspace_room u ON u.workspace_id = r.workspace_id
        CROSS JOIN LATERAL (
            SELECT d.id, d.next_attempt_at FROM webhook_deliveries d
            WHERE d.endpoint_id = r.id AND d.status = 'pending' AND d.next_attempt_at <= now()
            ORDER BY d.next_attempt_at LIMIT least(r.free, u.free, p_limit)
            FOR UPDATE SKIP LOCKED) p
        WHERE u.free > 0),
    picked AS (
        SELECT c.id FROM candidates c WHERE c.workspace_rank <= c.workspace_free
        ORDER BY c.workspace_rank, c.next_attempt_at
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
