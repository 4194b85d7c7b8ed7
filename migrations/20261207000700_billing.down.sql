DROP INDEX sms_usage_unmailed;
ALTER TABLE sms_usage DROP COLUMN warned_percent, DROP COLUMN mailed_percent;
DROP TABLE billing_events;
DROP TABLE ledger_entries;
DROP FUNCTION ender_ledger_append_only();
DROP TABLE promo_redemptions;
DROP TABLE promo_codes;
DROP TABLE payments;
DROP TABLE renewal_claims;
DROP TABLE subscriptions;
ALTER TABLE workspaces DROP CONSTRAINT workspaces_balance_not_negative,
    DROP COLUMN period_anchor, DROP COLUMN balance_cents, DROP COLUMN plan_id;
DROP TABLE plans;
