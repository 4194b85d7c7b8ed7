-- Billing (issue 16): plans with limits and prices, a prepaid balance kept as an
-- append-only ledger, payments through providers (idempotent by the provider's
-- transaction id), subscriptions renewed by jobs, promo codes, and the billing history
-- of each workspace. With billing off (the default) none of it is read: every workspace
-- has the "Self-hosted" plan whose limits come from the server's settings.

CREATE TABLE plans (
    id                    uuid PRIMARY KEY,
    slug                  text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9][a-z0-9-]{0,39}$'),
    name                  text NOT NULL CHECK (length(name) BETWEEN 1 AND 60),
    max_sms_per_month     integer NOT NULL CHECK (max_sms_per_month >= 0),
    max_devices           integer NOT NULL CHECK (max_devices >= 0),
    max_schedules         integer NOT NULL CHECK (max_schedules >= 0),
    max_webhooks          integer NOT NULL CHECK (max_webhooks >= 0),
    max_api_keys          integer NOT NULL CHECK (max_api_keys >= 0),
    max_members           integer NOT NULL CHECK (max_members >= 1),
    price_monthly_cents   bigint NOT NULL CHECK (price_monthly_cents >= 0),
    price_yearly_cents    bigint NOT NULL CHECK (price_yearly_cents >= 0),
    public                boolean NOT NULL DEFAULT true,
    is_default            boolean NOT NULL DEFAULT false,
    sort                  integer NOT NULL DEFAULT 0,
    created_at            timestamptz NOT NULL DEFAULT now(),
    -- the plan new workspaces get, and the one a lapsed subscription falls back to, is free
    CHECK (NOT is_default OR (price_monthly_cents = 0 AND price_yearly_cents = 0))
);
-- One default plan at most.
CREATE UNIQUE INDEX plans_one_default ON plans (is_default) WHERE is_default;

INSERT INTO plans (id, slug, name, max_sms_per_month, max_devices, max_schedules, max_webhooks,
                   max_api_keys, max_members, price_monthly_cents, price_yearly_cents,
                   public, is_default, sort)
VALUES ('00000000-0000-4000-8000-00000000f001', 'free',  'Free',     50,  1,   1,  1,  1,  2,   0,    0, true, true,  0),
       ('00000000-0000-4000-8000-00000000f002', 'hobby', 'Hobby',   500,  3,  10,  5,  5,  5,  99,  999, true, false, 1),
       ('00000000-0000-4000-8000-00000000f003', 'pro',   'Pro',    5000, 10, 100, 20, 20, 20, 299, 2999, true, false, 2);

-- The workspace's plan (NULL: the default plan), its balance, and the start of its
-- current free period (periods without a subscription run monthly from here).
ALTER TABLE workspaces
    ADD COLUMN plan_id uuid REFERENCES plans (id),
    ADD COLUMN balance_cents bigint NOT NULL DEFAULT 0,
    ADD COLUMN period_anchor timestamptz,
    ADD CONSTRAINT workspaces_balance_not_negative CHECK (balance_cents >= 0);
UPDATE workspaces SET period_anchor = created_at;
ALTER TABLE workspaces ALTER COLUMN period_anchor SET NOT NULL,
    ALTER COLUMN period_anchor SET DEFAULT now();

CREATE TABLE subscriptions (
    id                   uuid PRIMARY KEY,
    workspace_id         uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    plan_id              uuid NOT NULL REFERENCES plans (id),
    cycle                text NOT NULL CHECK (cycle IN ('monthly', 'yearly')),
    status               text NOT NULL CHECK (status IN ('active', 'past_due', 'canceled', 'expired')),
    -- the price each period is charged, fixed when the subscription started
    price_cents          bigint NOT NULL CHECK (price_cents >= 0),
    current_period_start timestamptz NOT NULL,
    current_period_end   timestamptz NOT NULL CHECK (current_period_end > current_period_start),
    cancel_at_period_end boolean NOT NULL DEFAULT false,
    -- a change waiting for the end of the period (a cheaper plan, or a shorter cycle)
    next_plan_id         uuid REFERENCES plans (id),
    next_cycle           text CHECK (next_cycle IN ('monthly', 'yearly')),
    past_due_since       timestamptz,
    ended_at             timestamptz,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    UNIQUE (workspace_id, id)
);
-- One live subscription per workspace.
CREATE UNIQUE INDEX subscriptions_one_live ON subscriptions (workspace_id)
    WHERE status IN ('active', 'past_due');
CREATE INDEX subscriptions_due ON subscriptions (current_period_end)
    WHERE status IN ('active', 'past_due');

-- A renewal job enqueued for one period of one subscription: the scheduler inserts the
-- row with the job, so every period is enqueued once however many workers run.
CREATE TABLE renewal_claims (
    subscription_id uuid NOT NULL REFERENCES subscriptions (id) ON DELETE CASCADE,
    period_end      timestamptz NOT NULL,
    step            text NOT NULL CHECK (step IN ('renew', 'grace_end')),
    claimed_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (subscription_id, period_end, step)
);

-- A top-up through a provider. Made 'pending' when the checkout starts; its provider's
-- callback completes it once. A verified callback that names no known payment is kept as
-- 'unmatched' (no workspace) for the administrator.
CREATE TABLE payments (
    id              uuid PRIMARY KEY,
    workspace_id    uuid REFERENCES workspaces (id) ON DELETE SET NULL,
    created_by      uuid REFERENCES users (id) ON DELETE SET NULL,
    provider        text NOT NULL CHECK (provider IN ('stripe', 'qvapay')),
    -- the provider's id of the checkout (Stripe's session, QvaPay's invoice)
    checkout_ref    text,
    -- the provider's id of the money movement; unique, so a replay credits nothing
    provider_tx_id  text,
    amount_cents    bigint NOT NULL CHECK (amount_cents > 0),
    currency        text NOT NULL CHECK (currency ~ '^[a-z]{3}$'),
    status          text NOT NULL CHECK (status IN ('pending', 'completed', 'failed', 'unmatched')),
    detail          text NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL DEFAULT now(),
    completed_at    timestamptz,
    UNIQUE (provider, provider_tx_id),
    UNIQUE (workspace_id, id)
);
CREATE INDEX payments_workspace ON payments (workspace_id, created_at DESC);
CREATE INDEX payments_unmatched ON payments (created_at DESC) WHERE status = 'unmatched';

CREATE TABLE promo_codes (
    id                uuid PRIMARY KEY,
    -- kept upper-case; looked up case-insensitively
    code              text NOT NULL CHECK (code ~ '^[A-Z0-9][A-Z0-9_-]{1,39}$'),
    credit_cents      bigint NOT NULL CHECK (credit_cents > 0),
    valid_from        timestamptz NOT NULL DEFAULT now(),
    valid_until       timestamptz,
    max_redemptions   integer CHECK (max_redemptions > 0),
    max_per_workspace integer NOT NULL DEFAULT 1 CHECK (max_per_workspace > 0),
    redeemed          integer NOT NULL DEFAULT 0 CHECK (redeemed >= 0),
    active            boolean NOT NULL DEFAULT true,
    created_at        timestamptz NOT NULL DEFAULT now(),
    CHECK (max_redemptions IS NULL OR redeemed <= max_redemptions),
    CHECK (valid_until IS NULL OR valid_until > valid_from)
);
CREATE UNIQUE INDEX promo_codes_code ON promo_codes (code);

CREATE TABLE promo_redemptions (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    promo_id     uuid NOT NULL REFERENCES promo_codes (id) ON DELETE CASCADE,
    workspace_id uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    user_id      uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX promo_redemptions_workspace ON promo_redemptions (promo_id, workspace_id);

-- Every movement of a workspace's balance, in integer cents (credits positive). The
-- balance is the sum of these; `balance_cents` on the workspace is kept equal to it in the
-- same transaction and can never go negative.
CREATE TABLE ledger_entries (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    workspace_id        uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    kind                text NOT NULL CHECK (kind IN ('topup', 'promo', 'subscription', 'refund', 'adjustment')),
    amount_cents        bigint NOT NULL CHECK (amount_cents <> 0),
    balance_after_cents bigint NOT NULL CHECK (balance_after_cents >= 0),
    description         text NOT NULL DEFAULT '',
    payment_id          uuid REFERENCES payments (id),
    subscription_id     uuid REFERENCES subscriptions (id) ON DELETE SET NULL,
    actor_user          uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at          timestamptz NOT NULL DEFAULT now(),
    CHECK (kind NOT IN ('topup', 'promo') OR amount_cents > 0),
    CHECK (kind <> 'subscription' OR amount_cents < 0)
);
CREATE INDEX ledger_entries_workspace ON ledger_entries (workspace_id, id DESC);
-- A payment credits the balance once.
CREATE UNIQUE INDEX ledger_entries_one_per_payment ON ledger_entries (payment_id) WHERE payment_id IS NOT NULL;

CREATE FUNCTION ender_ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- A deleted workspace takes its ledger with it (its row is gone by the time the
    -- cascade reaches here); a deleted account or subscription only loses the link.
    IF TG_OP = 'DELETE' AND NOT EXISTS (SELECT 1 FROM workspaces WHERE id = OLD.workspace_id) THEN
        RETURN OLD;
    END IF;
    IF TG_OP = 'UPDATE'
       AND (NEW.id, NEW.workspace_id, NEW.kind, NEW.amount_cents, NEW.balance_after_cents,
            NEW.description, NEW.payment_id, NEW.created_at)
           IS NOT DISTINCT FROM
           (OLD.id, OLD.workspace_id, OLD.kind, OLD.amount_cents, OLD.balance_after_cents,
            OLD.description, OLD.payment_id, OLD.created_at)
       AND (NEW.actor_user IS NULL OR NEW.actor_user = OLD.actor_user)
       AND (NEW.subscription_id IS NULL OR NEW.subscription_id = OLD.subscription_id) THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'the ledger is append-only'
        USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER ledger_entries_append_only BEFORE UPDATE OR DELETE ON ledger_entries
    FOR EACH ROW EXECUTE FUNCTION ender_ledger_append_only();

-- What happened to a workspace's plan and subscription, for its billing history.
CREATE TABLE billing_events (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    workspace_id    uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    kind            text NOT NULL,
    subscription_id uuid REFERENCES subscriptions (id) ON DELETE SET NULL,
    plan_id         uuid REFERENCES plans (id),
    detail          text NOT NULL DEFAULT '',
    actor_user      uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX billing_events_workspace ON billing_events (workspace_id, id DESC);

-- Usage warnings (80 and 100 per cent of a period's SMS): the send that crosses a
-- threshold raises `warned_percent` in its own transaction; the worker claims the rows
-- whose warning is not mailed yet (`mailed_percent` behind), once, and mails the owners.
ALTER TABLE sms_usage ADD COLUMN warned_percent smallint NOT NULL DEFAULT 0,
    ADD COLUMN mailed_percent smallint NOT NULL DEFAULT 0;
CREATE INDEX sms_usage_unmailed ON sms_usage (workspace_id) WHERE warned_percent > mailed_percent;
