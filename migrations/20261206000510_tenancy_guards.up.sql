-- Defence in depth for tenancy (review I5): the application checks that a group member,
-- a schedule's template, device and groups belong to the same user as the row that names
-- them; these triggers refuse a mismatch even if a code path forgot to check.
-- (messages.device_id is set only by dispatch, which picks among the devices of the
-- message's own user in the same query, and it is the send path's hot spot: not guarded.)

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
