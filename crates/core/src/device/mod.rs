//! Devices: the Android phones and modems that send a workspace's SMS. Each has a secret key
//! (`dk_…`, stored hashed), pacing limits, an enabled flag and a reachability state.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use crate::FieldError;
use crate::crypto::{key_hint, new_key, token_digest};
use crate::sms::phone::PhoneNumber;
use crate::workspace::WorkspaceId;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, sqlx::Type, serde::Serialize, serde::Deserialize)]
#[sqlx(transparent)]
#[serde(transparent)]
pub struct DeviceId(pub Uuid);

impl std::fmt::Display for DeviceId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::str::FromStr for DeviceId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(Self)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceKind {
    Android,
    Modem,
}

impl DeviceKind {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "android" => Some(Self::Android),
            "modem" => Some(Self::Modem),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Android => "android",
            Self::Modem => "modem",
        }
    }

    /// Pacing defaults. Android allows about 30 SMS per 30 minutes before it asks the
    /// owner; one a minute never trips it. Modems have no such guard; carriers still
    /// flag bursts, so they get a modest rate too.
    pub fn default_limits(self) -> (i32, i32) {
        match self {
            Self::Android => (1, 500),
            Self::Modem => (6, 2000),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Device {
    pub id: DeviceId,
    pub workspace_id: WorkspaceId,
    pub name: String,
    pub kind: String,
    pub phone_number: String,
    pub key_prefix: String,
    pub has_fcm_token: bool,
    pub enabled: bool,
    pub per_minute_limit: i32,
    pub per_day_limit: i32,
    pub last_seen_at: Option<DateTime<Utc>>,
    pub stream_until: Option<DateTime<Utc>>,
    /// Radio state a modem reported last (signal, operator, registration), and when.
    pub signal_dbm: Option<i32>,
    pub network_operator: String,
    pub registration: String,
    pub status_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Device {
    /// Reachable the way dispatch sees it: holds a stream open now, or has an FCM token and
    /// was seen within `window_secs`, or polled within the last 90 seconds.
    pub fn is_online(&self, window_secs: i64) -> bool {
        let now = Utc::now();
        let seen_within = |secs: i64| {
            self.last_seen_at
                .is_some_and(|s| s > now - chrono::Duration::seconds(secs))
        };
        self.stream_until.is_some_and(|u| u > now)
            || (self.has_fcm_token && seen_within(window_secs))
            || seen_within(90)
    }
}

pub struct NewDevice {
    pub device: Device,
    pub secret: String,
}

#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error(transparent)]
    Invalid(#[from] FieldError),
    #[error("This workspace can register at most {0} devices.")]
    TooMany(i64),
    #[error("Device not found.")]
    NotFound,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// What a person types to add or edit a device.
pub struct DeviceInput {
    pub name: String,
    pub kind: DeviceKind,
    pub phone_number: String,
}

impl DeviceInput {
    pub fn parse(name: &str, kind: &str, phone: &str) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let name = parse_name(name).map_err(|e| errors.push(e)).ok();
        let kind = DeviceKind::parse(kind);
        if kind.is_none() {
            errors.push(FieldError::new("kind", "Choose Android phone or modem."));
        }
        let phone = phone.trim();
        let phone_number = if phone.is_empty() {
            Some(String::new())
        } else {
            PhoneNumber::parse(phone)
                .map(|p| p.as_str().to_owned())
                .map_err(|_| {
                    errors.push(FieldError::new(
                        "phone_number",
                        "Use the international format, e.g. +15551234567.",
                    ))
                })
                .ok()
        };
        match (name, kind, phone_number) {
            (Some(name), Some(kind), Some(phone_number)) if errors.is_empty() => Ok(Self {
                name,
                kind,
                phone_number,
            }),
            _ => Err(errors),
        }
    }
}

pub fn parse_name(raw: &str) -> Result<String, FieldError> {
    let name = raw.trim();
    if name.is_empty() {
        return Err(FieldError::new("name", "Give the device a name."));
    }
    if name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(FieldError::new(
            "name",
            "Use at most 100 characters, without control characters.",
        ));
    }
    Ok(name.to_owned())
}

pub async fn create(
    pool: &PgPool,
    workspace: WorkspaceId,
    input: &DeviceInput,
    max_devices: i64,
) -> Result<NewDevice, DeviceError> {
    let mut tx = pool.begin().await?;
    crate::workspace::repo::lock(&mut tx, workspace).await?;
    let count = sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM devices WHERE workspace_id = $1"#,
        workspace as WorkspaceId
    )
    .fetch_one(&mut *tx)
    .await?;
    if count >= max_devices {
        return Err(DeviceError::TooMany(max_devices));
    }
    let secret = new_key("dk_");
    let (per_minute, per_day) = input.kind.default_limits();
    let device = sqlx::query_as!(
        Device,
        r#"INSERT INTO devices (id, workspace_id, name, kind, phone_number, key_prefix, key_hash, per_minute_limit, per_day_limit)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
           RETURNING id AS "id: DeviceId", workspace_id AS "workspace_id: WorkspaceId", name, kind, phone_number, key_prefix,
                     coalesce(fcm_token, '') <> '' AS "has_fcm_token!", enabled, per_minute_limit, per_day_limit,
                     last_seen_at, stream_until, signal_dbm, network_operator, registration, status_at, created_at, updated_at"#,
        Uuid::now_v7(),
        workspace as WorkspaceId,
        input.name,
        input.kind.as_str(),
        input.phone_number,
        key_hint(&secret),
        &token_digest(&secret),
        per_minute,
        per_day
    )
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(NewDevice { device, secret })
}

pub async fn list(pool: &PgPool, workspace: WorkspaceId) -> sqlx::Result<Vec<Device>> {
    sqlx::query_as!(
        Device,
        r#"SELECT id AS "id: DeviceId", workspace_id AS "workspace_id: WorkspaceId", name, kind, phone_number, key_prefix,
                  coalesce(fcm_token, '') <> '' AS "has_fcm_token!", enabled, per_minute_limit, per_day_limit,
                  last_seen_at, stream_until, signal_dbm, network_operator, registration, status_at, created_at, updated_at
           FROM devices WHERE workspace_id = $1 ORDER BY created_at DESC, id DESC"#,
        workspace as WorkspaceId
    )
    .fetch_all(pool)
    .await
}

/// The owner's device (another workspace's is "not found").
pub async fn find(pool: &PgPool, workspace: WorkspaceId, id: DeviceId) -> Result<Device, DeviceError> {
    find_any(pool, id)
        .await?
        .filter(|d| d.workspace_id == workspace)
        .ok_or(DeviceError::NotFound)
}

/// A device whoever owns it.
pub async fn find_any(pool: &PgPool, id: DeviceId) -> sqlx::Result<Option<Device>> {
    sqlx::query_as!(
        Device,
        r#"SELECT id AS "id: DeviceId", workspace_id AS "workspace_id: WorkspaceId", name, kind, phone_number, key_prefix,
                  coalesce(fcm_token, '') <> '' AS "has_fcm_token!", enabled, per_minute_limit, per_day_limit,
                  last_seen_at, stream_until, signal_dbm, network_operator, registration, status_at, created_at, updated_at
           FROM devices WHERE id = $1"#,
        id as DeviceId
    )
    .fetch_optional(pool)
    .await
}

/// The device holding this key, marked as seen now.
pub async fn authenticate(pool: &PgPool, secret: &str) -> sqlx::Result<Option<Device>> {
    if !secret.starts_with("dk_") || secret.len() > 100 {
        return Ok(None);
    }
    sqlx::query_as!(
        Device,
        r#"UPDATE devices SET last_seen_at = now() WHERE key_hash = $1
           RETURNING id AS "id: DeviceId", workspace_id AS "workspace_id: WorkspaceId", name, kind, phone_number, key_prefix,
                     coalesce(fcm_token, '') <> '' AS "has_fcm_token!", enabled, per_minute_limit, per_day_limit,
                     last_seen_at, stream_until, signal_dbm, network_operator, registration, status_at, created_at, updated_at"#,
        &token_digest(secret)
    )
    .fetch_optional(pool)
    .await
}

pub async fn update(
    pool: &PgPool,
    workspace: WorkspaceId,
    id: DeviceId,
    name: &str,
    phone: &str,
) -> Result<(), DeviceError> {
    let name = parse_name(name)?;
    let phone = if phone.trim().is_empty() {
        String::new()
    } else {
        PhoneNumber::parse(phone)
            .map_err(|_| FieldError::new("phone_number", "Use the international format, e.g. +15551234567."))?
            .as_str()
            .to_owned()
    };
    let done = sqlx::query!(
        "UPDATE devices SET name = $3, phone_number = $4, updated_at = now() WHERE id = $1 AND workspace_id = $2",
        id as DeviceId,
        workspace as WorkspaceId,
        name,
        phone
    )
    .execute(pool)
    .await?;
    found(done.rows_affected())
}

pub async fn set_pacing(
    pool: &PgPool,
    workspace: WorkspaceId,
    id: DeviceId,
    per_minute: i32,
    per_day: i32,
) -> Result<(), DeviceError> {
    if !(1..=600).contains(&per_minute) {
        return Err(FieldError::new("per_minute_limit", "Between 1 and 600 per minute.").into());
    }
    if !(1..=100_000).contains(&per_day) || per_day < per_minute {
        return Err(FieldError::new(
            "per_day_limit",
            "Between the per-minute limit and 100,000 per day.",
        )
        .into());
    }
    let done = sqlx::query!(
        "UPDATE devices SET per_minute_limit = $3, per_day_limit = $4, updated_at = now() WHERE id = $1 AND workspace_id = $2",
        id as DeviceId,
        workspace as WorkspaceId,
        per_minute,
        per_day
    )
    .execute(pool)
    .await?;
    found(done.rows_affected())
}

/// Enables or disables a device. A disabled device's unclaimed messages go back to the queue.
pub async fn set_enabled(
    pool: &PgPool,
    workspace: WorkspaceId,
    id: DeviceId,
    enabled: bool,
) -> Result<(), DeviceError> {
    let mut tx = pool.begin().await?;
    let done = sqlx::query!(
        "UPDATE devices SET enabled = $3, updated_at = now() WHERE id = $1 AND workspace_id = $2",
        id as DeviceId,
        workspace as WorkspaceId,
        enabled
    )
    .execute(&mut *tx)
    .await?;
    found(done.rows_affected())?;
    if !enabled {
        crate::sms::repo::requeue_device(&mut tx, id, "assigned", "The device was disabled.").await?;
    }
    tx.commit().await?;
    Ok(())
}

/// A new key; the old one stops working at once.
pub async fn rotate_key(pool: &PgPool, workspace: WorkspaceId, id: DeviceId) -> Result<String, DeviceError> {
    let secret = new_key("dk_");
    let done = sqlx::query!(
        "UPDATE devices SET key_hash = $3, key_prefix = $4, fcm_token = NULL, updated_at = now() WHERE id = $1 AND workspace_id = $2",
        id as DeviceId,
        workspace as WorkspaceId,
        &token_digest(&secret),
        key_hint(&secret)
    )
    .execute(pool)
    .await?;
    found(done.rows_affected())?;
    Ok(secret)
}

/// Deletes a device; messages it had not sent yet go back to the pending queue.
pub async fn delete(pool: &PgPool, workspace: WorkspaceId, id: DeviceId) -> Result<(), DeviceError> {
    let mut tx = pool.begin().await?;
    sqlx::query!(
        "SELECT id FROM devices WHERE id = $1 AND workspace_id = $2 FOR UPDATE",
        id as DeviceId,
        workspace as WorkspaceId
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(DeviceError::NotFound)?;
    crate::sms::repo::requeue_device(&mut tx, id, "all", "The device was deleted.").await?;
    sqlx::query!("DELETE FROM devices WHERE id = $1", id as DeviceId)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// Stores (or with "" clears) the device's FCM token.
pub async fn set_fcm_token(pool: &PgPool, id: DeviceId, token: &str) -> sqlx::Result<()> {
    let token = token.trim();
    sqlx::query!(
        "UPDATE devices SET fcm_token = NULLIF($2, ''), last_seen_at = now(), updated_at = now() WHERE id = $1",
        id as DeviceId,
        token
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// Keeps a device counted as holding its stream until `until` (refreshed while it does).
pub async fn stream_alive(pool: &PgPool, id: DeviceId, until: DateTime<Utc>) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE devices SET stream_until = $2, last_seen_at = now() WHERE id = $1",
        id as DeviceId,
        until
    )
    .execute(pool)
    .await?;
    Ok(())
}

pub async fn stream_closed(pool: &PgPool, id: DeviceId) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE devices SET stream_until = NULL WHERE id = $1",
        id as DeviceId
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// Counts for the integration API (`GET /api/devices`): one page, newest first.
pub async fn page(
    pool: &PgPool,
    workspace: WorkspaceId,
    kind: Option<&str>,
    limit: i64,
    offset: i64,
) -> sqlx::Result<(Vec<Device>, i64)> {
    let items = sqlx::query_as!(
        Device,
        r#"SELECT id AS "id: DeviceId", workspace_id AS "workspace_id: WorkspaceId", name, kind, phone_number, key_prefix,
                  coalesce(fcm_token, '') <> '' AS "has_fcm_token!", enabled, per_minute_limit, per_day_limit,
                  last_seen_at, stream_until, signal_dbm, network_operator, registration, status_at, created_at, updated_at
           FROM devices WHERE workspace_id = $1 AND ($2::text IS NULL OR kind = $2)
           ORDER BY created_at DESC, id DESC LIMIT $3 OFFSET $4"#,
        workspace as WorkspaceId,
        kind,
        limit,
        offset
    )
    .fetch_all(pool)
    .await?;
    let total = sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM devices WHERE workspace_id = $1 AND ($2::text IS NULL OR kind = $2)"#,
        workspace as WorkspaceId,
        kind
    )
    .fetch_one(pool)
    .await?;
    Ok((items, total))
}

pub async fn count(pool: &PgPool, workspace: WorkspaceId) -> sqlx::Result<i64> {
    sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM devices WHERE workspace_id = $1"#,
        workspace as WorkspaceId
    )
    .fetch_one(pool)
    .await
}

fn found(rows: u64) -> Result<(), DeviceError> {
    if rows == 0 {
        Err(DeviceError::NotFound)
    } else {
        Ok(())
    }
}

/// Announces devices whose reachability changed since it was last announced (all devices,
/// or only `only`): flips `announced_online` and queues their owners' `device_online` /
/// `device_offline` webhooks in the same transaction, so each change is announced once even
/// with several workers. Reachable means what [`Device::is_online`] says. Returns how many
/// changes were announced.
pub async fn announce_presence(
    pool: &PgPool,
    window_secs: i64,
    only: Option<DeviceId>,
) -> sqlx::Result<usize> {
    use crate::webhook::{Event, Payload, endpoint};
    let mut tx = pool.begin().await?;
    let changed = sqlx::query!(
        r#"UPDATE devices d SET announced_online = x.online
           FROM (SELECT c.id, c.online
                 FROM (SELECT id, announced_online,
                              coalesce(stream_until > now(), false)
                              OR (coalesce(fcm_token, '') <> '' AND coalesce(last_seen_at > now() - make_interval(secs => $1), false))
                              OR coalesce(last_seen_at > now() - interval '90 seconds', false) AS online
                       FROM devices WHERE $2::uuid IS NULL OR id = $2) c
                 -- only rows whose state changed are locked (a sweep touches nothing else)
                 WHERE c.announced_online <> c.online) x
           WHERE d.id = x.id AND d.announced_online <> x.online
           RETURNING d.id AS "id: DeviceId", d.workspace_id AS "workspace_id: WorkspaceId", d.name, x.online AS "online!""#,
        window_secs as f64,
        only.map(|d| d.0)
    )
    .fetch_all(&mut *tx)
    .await?;
    for d in &changed {
        let event = if d.online {
            Event::DeviceOnline
        } else {
            Event::DeviceOffline
        };
        let payload = Payload::new(event, "", chrono::Utc::now())
            .with("device_id", d.id.to_string())
            .with("device_name", d.name.clone());
        endpoint::enqueue(&mut tx, d.workspace_id, event, Some(d.id), &payload, None).await?;
    }
    tx.commit().await?;
    Ok(changed.len())
}

/// How a modem is registered on the network, as it reports it.
pub const REGISTRATIONS: [&str; 6] = [
    "home",
    "roaming",
    "searching",
    "denied",
    "not_registered",
    "unknown",
];

/// A modem's report about its radio.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RadioStatus {
    /// Received signal strength in dBm (−113 … −51 from `AT+CSQ`), when known.
    pub signal_dbm: Option<i32>,
    pub operator: String,
    /// One of [`REGISTRATIONS`].
    pub registration: String,
}

impl RadioStatus {
    pub fn parse(signal_dbm: Option<i64>, operator: &str, registration: &str) -> Result<Self, FieldError> {
        let signal_dbm = match signal_dbm {
            None => None,
            Some(d) if (-150..=0).contains(&d) => Some(d as i32),
            Some(_) => {
                return Err(FieldError::new(
                    "signal_dbm",
                    "signal_dbm must be between -150 and 0.",
                ));
            }
        };
        let operator = operator.trim();
        if operator.chars().count() > 64 || operator.chars().any(char::is_control) {
            return Err(FieldError::new(
                "operator",
                "operator must be at most 64 characters, without control characters.",
            ));
        }
        let registration = match registration.trim() {
            "" => "unknown",
            r => REGISTRATIONS.into_iter().find(|k| *k == r).ok_or_else(|| {
                FieldError::new(
                    "registration",
                    format!("registration must be one of: {}.", REGISTRATIONS.join(", ")),
                )
            })?,
        };
        Ok(Self {
            signal_dbm,
            operator: operator.to_owned(),
            registration: registration.to_owned(),
        })
    }
}

/// Records a modem's radio report; it also counts as contact.
pub async fn record_status(pool: &PgPool, id: DeviceId, status: &RadioStatus) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE devices SET signal_dbm = $2, network_operator = $3, registration = $4, status_at = now(),
                last_seen_at = now()
         WHERE id = $1",
        id as DeviceId,
        status.signal_dbm,
        status.operator,
        status.registration
    )
    .execute(pool)
    .await?;
    Ok(())
}
