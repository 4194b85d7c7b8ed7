-- Integration keys, devices, messages with their event history, idempotent requests,
-- monthly usage and the per-user device rotation.

CREATE TABLE api_keys (
    id           uuid PRIMARY KEY,
    user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         text NOT NULL,
    -- the first characters of the key, shown so people can tell keys apart
    prefix       text NOT NULL,
    -- SHA-256 of the whole key; the key itself is shown once and never stored
    key_hash     bytea NOT NULL UNIQUE,
    expires_at   timestamptz,
    last_used_at timestamptz,
    revoked_at   timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX api_keys_user_id ON api_keys (user_id, created_at DESC);

CREATE TABLE devices (
    id                uuid PRIMARY KEY,
    user_id           uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name              text NOT NULL,
    kind              text NOT NULL CHECK (kind IN ('android', 'modem')),
    phone_number      text NOT NULL DEFAULT '',
    key_prefix        text NOT NULL,
    key_hash          bytea NOT NULL UNIQUE,
    fcm_token         text,
    enabled           boolean NOT NULL DEFAULT true,
    per_minute_limit  integer NOT NULL CHECK (per_minute_limit > 0),
    per_day_limit     integer NOT NULL CHECK (per_day_limit > 0),
    last_seen_at      timestamptz,
    -- a web process holding this device's event stream keeps pushing this forward
    stream_until      timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX devices_user_id ON devices (user_id, created_at DESC);

CREATE TABLE messages (
    id                  uuid PRIMARY KEY,
    user_id             uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    batch_id            uuid,
    direction           text NOT NULL CHECK (direction IN ('outgoing', 'incoming')),
    recipient           text NOT NULL DEFAULT '',
    from_number         text NOT NULL DEFAULT '',
    body                text NOT NULL,
    encoding            text NOT NULL CHECK (encoding IN ('gsm7', 'ucs2')),
    segments            integer NOT NULL,
    status              text NOT NULL CHECK (status IN
                        ('pending', 'assigned', 'sending', 'sent', 'delivered', 'failed', 'canceled', 'expired', 'received')),
    error_message       text NOT NULL DEFAULT '',
    -- the device asked for by the sender (never changed by failover)
    requested_device_id uuid REFERENCES devices (id) ON DELETE SET NULL,
    -- the device currently or last responsible
    device_id           uuid REFERENCES devices (id) ON DELETE SET NULL,
    attempts            integer NOT NULL DEFAULT 0,
    assigned_at         timestamptz,
    lease_expires_at    timestamptz,
    next_attempt_at     timestamptz NOT NULL DEFAULT now(),
    valid_until         timestamptz,
    sent_at             timestamptz,
    delivered_at        timestamptz,
    received_at         timestamptz,
    -- identifies an incoming SMS reported twice by a device
    dedupe_key          text UNIQUE,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX messages_user_created ON messages (user_id, created_at DESC, id DESC);
CREATE INDEX messages_batch ON messages (batch_id) WHERE batch_id IS NOT NULL;
CREATE INDEX messages_user_direction_created ON messages (user_id, direction, created_at DESC, id DESC);
CREATE INDEX messages_user_sent_at ON messages (user_id, sent_at) WHERE sent_at IS NOT NULL;
CREATE INDEX messages_user_delivered_at ON messages (user_id, delivered_at) WHERE delivered_at IS NOT NULL;
CREATE INDEX messages_pending ON messages (user_id, next_attempt_at) WHERE status = 'pending';
CREATE INDEX messages_device_open ON messages (device_id, status) WHERE status IN ('assigned', 'sending');
CREATE INDEX messages_leases ON messages (lease_expires_at) WHERE status = 'sending';
CREATE INDEX messages_device_assigned_at ON messages (device_id, assigned_at) WHERE assigned_at IS NOT NULL;
CREATE INDEX messages_valid_until ON messages (valid_until) WHERE valid_until IS NOT NULL AND status IN ('pending', 'assigned');

CREATE TABLE message_events (
    id          bigserial PRIMARY KEY,
    message_id  uuid NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    status      text NOT NULL,
    detail      text NOT NULL DEFAULT '',
    device_id   uuid,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX message_events_message ON message_events (message_id, id);

-- A repeated request with the same Idempotency-Key returns the first answer.
CREATE TABLE idempotency_keys (
    user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    key          text NOT NULL,
    request_hash bytea NOT NULL,
    status_code  integer NOT NULL,
    response     jsonb NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, key)
);
CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);

-- Messages counted against the monthly allowance, per calendar month (UTC).
CREATE TABLE sms_usage (
    user_id  uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    month    date NOT NULL,
    sent     integer NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, month)
);

-- Where each user's device rotation stands, so it continues across requests.
CREATE TABLE dispatch_rotation (
    user_id        uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    last_device_id uuid
);

-- Dispatch hints: after a lease expires the message goes back to the same device when it
-- can (it may have sent it already); after a failure it avoids the device that failed.
ALTER TABLE messages ADD COLUMN prefer_device_id uuid, ADD COLUMN avoid_device_id uuid;
