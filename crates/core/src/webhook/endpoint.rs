//! Webhook endpoints: validated URLs and event lists, secrets sealed at rest (shown to the
//! owner on demand, rotated with an overlap), and the fan-out that writes one delivery per
//! matching endpoint inside the transaction of the change it reports.

use std::net::IpAddr;

use chrono::{DateTime, Duration, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::payload::{Event, Payload};
use super::sign::new_secret;
use crate::FieldError;
use crate::device::DeviceId;
use crate::secret::at_rest;
use crate::secret::{Keyring, Sealed};
use crate::workspace::WorkspaceId;

#[derive(Debug, Clone)]
pub struct Endpoint {
    pub id: Uuid,
    pub workspace_id: WorkspaceId,
    pub url: String,
    pub description: String,
    pub events: Vec<String>,
    pub device_id: Option<Uuid>,
    pub include_body: bool,
    pub active: bool,
    pub disabled_reason: String,
    /// When Ender disabled it (failing too long, or 410); events since are held for replay.
    pub disabled_at: Option<DateTime<Utc>>,
    pub failing_since: Option<DateTime<Utc>>,
    pub consecutive_failures: i32,
    pub breaker_open_until: Option<DateTime<Utc>>,
    pub last_failure_at: Option<DateTime<Utc>>,
    pub last_failure: String,
    pub created_at: DateTime<Utc>,
}

/// The circuit breaker as people see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Breaker {
    Closed,
    /// Deliveries wait until the given time.
    Open,
    /// Failing: one probe at a time.
    HalfOpen,
}

impl Breaker {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
        }
    }
}

/// Failures in a row after which an endpoint's breaker opens: its deliveries wait (without
/// using attempts) 30 s, doubling up to 10 min, then one probe goes; a success closes it.
pub const BREAKER_THRESHOLD: i32 = 5;

impl Endpoint {
    pub fn breaker(&self) -> Breaker {
        if self.breaker_open_until.is_some_and(|t| t > Utc::now()) {
            Breaker::Open
        } else if self.consecutive_failures >= BREAKER_THRESHOLD {
            Breaker::HalfOpen
        } else {
            Breaker::Closed
        }
    }
}

/// What a person or the API submits for an endpoint.
#[derive(Debug, Clone)]
pub struct EndpointInput {
    pub url: String,
    pub events: Vec<String>,
    pub description: String,
    pub device_id: Option<DeviceId>,
    pub include_body: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    #[error(transparent)]
    Invalid(#[from] FieldError),
    #[error("This workspace can keep at most {0} webhook endpoints.")]
    TooMany(i64),
    #[error("Webhook endpoint not found.")]
    NotFound,
    #[error("the secret store failed: {0}")]
    Secret(#[from] crate::secret::SecretError),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Addresses no webhook may reach unless an administrator allows them: everything that is
/// not globally routable unicast (see [`is_global`]).
pub fn is_internal(ip: IpAddr) -> bool {
    !is_global(ip)
}

/// Whether `ip` is a globally routable unicast address, the only kind a webhook may reach
/// by default. An allow-list rather than a list of private ranges, so that a range nobody
/// thought of (or a new special-purpose one) stays refused: for IPv4 everything except the
/// IANA special-purpose ranges (RFC 6890 and its updates), for IPv6 only global unicast
/// `2000::/3` minus its special-purpose blocks. Addresses that carry an IPv4 address and
/// reach it through a translator or a tunnel (IPv4-mapped, NAT64, 6to4, Teredo) are global
/// only when that IPv4 address is.
pub fn is_global(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_global_v4(v4),
        IpAddr::V6(v6) => is_global_v6(v6),
    }
}

fn is_global_v4(v4: std::net::Ipv4Addr) -> bool {
    let o = v4.octets();
    let special = o[0] == 0 // "this network", 0/8
        || o[0] == 10
        || (o[0] == 100 && (64..128).contains(&o[1])) // carrier-grade NAT, 100.64/10
        || o[0] == 127
        || (o[0] == 169 && o[1] == 254) // link-local, cloud metadata
        || (o[0] == 172 && (16..32).contains(&o[1]))
        || (o[0] == 192 && o[1] == 0 && o[2] == 0) // IETF protocol assignments, 192.0.0/24
        || (o[0] == 192 && o[1] == 0 && o[2] == 2) // documentation, TEST-NET-1
        || (o[0] == 192 && o[1] == 88 && o[2] == 99) // 6to4 relay anycast (deprecated)
        || (o[0] == 192 && o[1] == 168)
        || (o[0] == 198 && (o[1] == 18 || o[1] == 19)) // benchmarking, 198.18/15
        || (o[0] == 198 && o[1] == 51 && o[2] == 100) // documentation, TEST-NET-2
        || (o[0] == 203 && o[1] == 0 && o[2] == 113) // documentation, TEST-NET-3
        || o[0] >= 224; // multicast 224/4, reserved 240/4 and broadcast
    !special
}

fn is_global_v6(v6: std::net::Ipv6Addr) -> bool {
    let s = v6.segments();
    let b = v6.octets();
    let v4_at = |i: usize| std::net::Ipv4Addr::new(b[i], b[i + 1], b[i + 2], b[i + 3]);
    let low_v4 = || v4_at(12);
    // IPv4-mapped ::ffff:a.b.c.d: the socket reaches a.b.c.d.
    if let Some(v4) = v6.to_ipv4_mapped() {
        return is_global_v4(v4);
    }
    // NAT64, well-known prefix 64:ff9b::/96 (RFC 6052).
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return is_global_v4(low_v4());
    }
    // NAT64, local-use prefix 64:ff9b:1::/48 (RFC 8215). The operator picks where the IPv4
    // address sits; only the /96 layout with the bits between zero is unambiguous (every
    // other layout would then carry an address in 0/8, which is never routed).
    if s[..3] == [0x64, 0xff9b, 1] {
        return s[3..6] == [0, 0, 0] && is_global_v4(low_v4());
    }
    // Outside 2000::/3 nothing is global unicast: ::/128, ::1, IPv4-compatible ::/96,
    // discard 100::/64, ULA fc00::/7, site-local fec0::/10, link-local fe80::/10, multicast.
    if (s[0] & 0xe000) != 0x2000 {
        return false;
    }
    // Teredo 2001::/32: a tunnel to the client at the inverted last 32 bits, through the
    // server at bits 32–63; both must be global.
    if s[0] == 0x2001 && s[1] == 0 {
        let client = std::net::Ipv4Addr::from(!u32::from(low_v4()));
        return is_global_v4(v4_at(4)) && is_global_v4(client);
    }
    // 6to4 2002::/16: a tunnel to the IPv4 address in bits 16–47.
    if s[0] == 0x2002 {
        return is_global_v4(v4_at(2));
    }
    // The IETF protocol assignments 2001::/23 (benchmarking, ORCHID…), and documentation
    // 2001:db8::/32 and 3fff::/20.
    let special = (s[0] == 0x2001 && (s[1] < 0x200 || s[1] == 0xdb8)) || (s[0] == 0x3fff && s[1] < 0x1000);
    !special
}

/// Checks a URL for an endpoint: http or https, a host, no credentials, and — when the host
/// is an IP address — not an internal one unless `allowed` says so. Names are checked again
/// against their resolved addresses when connecting.
pub fn check_url(raw: &str, allowed: &[ipnet::IpNet]) -> Result<url::Url, FieldError> {
    let bad = |m: &str| FieldError::new("url", m);
    let raw = raw.trim();
    if raw.len() > 2048 {
        return Err(bad("Use at most 2,048 characters."));
    }
    let url =
        url::Url::parse(raw).map_err(|_| bad("Enter a full URL, like https://example.com/hooks/ender."))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("Only http:// and https:// URLs can receive webhooks."));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad(
            "Remove the user name and password from the URL; verify the signature instead.",
        ));
    }
    let ip = match url.host() {
        None => return Err(bad("The URL needs a host name.")),
        Some(url::Host::Ipv4(v4)) => Some(IpAddr::V4(v4)),
        Some(url::Host::Ipv6(v6)) => Some(IpAddr::V6(v6)),
        Some(url::Host::Domain(d)) if d.eq_ignore_ascii_case("localhost") || d.ends_with(".localhost") => {
            Some(IpAddr::from([127, 0, 0, 1]))
        }
        Some(url::Host::Domain(_)) => None,
    };
    if let Some(ip) = ip
        && is_internal(ip)
        && !allowed.iter().any(|n| n.contains(&ip))
    {
        return Err(bad(
            "This is a private or local address. An administrator can allow it (ENDER_WEBHOOK_ALLOW).",
        ));
    }
    Ok(url)
}

impl EndpointInput {
    pub fn parse(
        url: &str,
        events: &[String],
        description: &str,
        device_id: Option<&str>,
        include_body: bool,
        allowed: &[ipnet::IpNet],
    ) -> Result<Self, FieldError> {
        let url = check_url(url, allowed)?;
        let mut names: Vec<String> = Vec::new();
        for e in events.iter().map(|e| e.trim()).filter(|e| !e.is_empty()) {
            let event =
                Event::parse(e).ok_or_else(|| FieldError::new("events", format!("Unknown event: {e}.")))?;
            if !names.iter().any(|n| n == event.as_str()) {
                names.push(event.as_str().to_owned());
            }
        }
        if names.is_empty() {
            return Err(FieldError::new("events", "Choose at least one event."));
        }
        let description = description.trim();
        if description.chars().count() > 200 || description.chars().any(char::is_control) {
            return Err(FieldError::new(
                "description",
                "Use at most 200 characters, without control characters.",
            ));
        }
        let device_id = match device_id.map(str::trim).filter(|d| !d.is_empty()) {
            None => None,
            Some(d) => Some(
                d.parse()
                    .map_err(|_| FieldError::new("device_id", "Choose one of your devices."))?,
            ),
        };
        Ok(Self {
            url: url.to_string(),
            events: names,
            description: description.to_owned(),
            device_id,
            include_body,
        })
    }
}

async fn check_device(
    conn: &mut PgConnection,
    workspace: WorkspaceId,
    device: Option<DeviceId>,
) -> Result<(), EndpointError> {
    let Some(device) = device else { return Ok(()) };
    let mine = sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM devices WHERE id = $1 AND workspace_id = $2) AS "e!""#,
        device as DeviceId,
        workspace as WorkspaceId
    )
    .fetch_one(conn)
    .await?;
    if mine {
        Ok(())
    } else {
        Err(FieldError::new("device_id", "Choose one of your devices.").into())
    }
}

/// What a signing secret is bound to when sealed: its endpoint (review I9), so a
/// ciphertext copied onto another endpoint's row does not open there.
fn secret_context(endpoint: Uuid) -> Vec<u8> {
    let mut context = b"webhook_secrets.endpoint_id:".to_vec();
    context.extend_from_slice(endpoint.as_bytes());
    context
}

async fn store_secret(
    conn: &mut PgConnection,
    keyring: &Keyring,
    endpoint: Uuid,
    secret: &str,
) -> Result<(), EndpointError> {
    let sealed = keyring.seal_bound(secret.as_bytes(), &secret_context(endpoint))?;
    sqlx::query!(
        "INSERT INTO webhook_secrets (id, endpoint_id, key_version, nonce, ciphertext, bound)
         VALUES ($1, $2, $3, $4, $5, true)",
        Uuid::now_v7(),
        endpoint,
        sealed.key_version,
        sealed.nonce,
        sealed.ciphertext
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Creates an endpoint with a fresh `whsec_…` secret, unless the workspace already keeps
/// `max_endpoints` (each endpoint multiplies every event); returns it with the secret.
pub async fn create(
    pool: &PgPool,
    keyring: &Keyring,
    workspace: WorkspaceId,
    input: &EndpointInput,
    max_endpoints: i64,
) -> Result<(Endpoint, String), EndpointError> {
    let mut tx = pool.begin().await?;
    // Serialises this workspace's creations so two at once cannot both pass the limit.
    crate::workspace::repo::lock(&mut tx, workspace).await?;
    if count(&mut tx, workspace).await? >= max_endpoints {
        return Err(EndpointError::TooMany(max_endpoints));
    }
    check_device(&mut tx, workspace, input.device_id).await?;
    let endpoint = sqlx::query_as!(
        Endpoint,
        r#"INSERT INTO webhook_endpoints (id, workspace_id, url, description, events, device_id, include_body)
           VALUES ($1, $2, $3, $4, $5, $6, $7)
           RETURNING id, workspace_id AS "workspace_id: WorkspaceId", url, description, events, device_id, include_body, active,
                     disabled_reason, disabled_at, failing_since, consecutive_failures, breaker_open_until,
                     last_failure_at, last_failure, created_at"#,
        Uuid::now_v7(),
        workspace as WorkspaceId,
        input.url,
        input.description,
        &input.events,
        input.device_id.map(|d| d.0),
        input.include_body
    )
    .fetch_one(&mut *tx)
    .await?;
    let secret = new_secret();
    store_secret(&mut tx, keyring, endpoint.id, &secret).await?;
    tx.commit().await?;
    Ok((endpoint, secret))
}

pub async fn list(pool: &PgPool, workspace: WorkspaceId) -> sqlx::Result<Vec<Endpoint>> {
    sqlx::query_as!(
        Endpoint,
        r#"SELECT id, workspace_id AS "workspace_id: WorkspaceId", url, description, events, device_id, include_body, active,
                  disabled_reason, disabled_at, failing_since, consecutive_failures, breaker_open_until,
                  last_failure_at, last_failure, created_at
           FROM webhook_endpoints WHERE workspace_id = $1 ORDER BY created_at DESC"#,
        workspace as WorkspaceId
    )
    .fetch_all(pool)
    .await
}

/// One page of the workspace's endpoints, newest first, and how many they have in all.
pub async fn page(
    pool: &PgPool,
    workspace: WorkspaceId,
    limit: i64,
    offset: i64,
) -> sqlx::Result<(Vec<Endpoint>, i64)> {
    let items = sqlx::query_as!(
        Endpoint,
        r#"SELECT id, workspace_id AS "workspace_id: WorkspaceId", url, description, events, device_id, include_body, active,
                  disabled_reason, disabled_at, failing_since, consecutive_failures, breaker_open_until,
                  last_failure_at, last_failure, created_at
           FROM webhook_endpoints WHERE workspace_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3"#,
        workspace as WorkspaceId,
        limit,
        offset
    )
    .fetch_all(pool)
    .await?;
    let mut conn = pool.acquire().await?;
    let total = count(&mut conn, workspace).await?;
    Ok((items, total))
}

/// How many endpoints the workspace keeps (what the limit counts).
pub async fn count(conn: &mut PgConnection, workspace: WorkspaceId) -> sqlx::Result<i64> {
    sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM webhook_endpoints WHERE workspace_id = $1"#,
        workspace as WorkspaceId
    )
    .fetch_one(conn)
    .await
}

/// The owner's endpoint (another workspace's is "not found").
pub async fn find(pool: &PgPool, workspace: WorkspaceId, id: Uuid) -> Result<Endpoint, EndpointError> {
    sqlx::query_as!(
        Endpoint,
        r#"SELECT id, workspace_id AS "workspace_id: WorkspaceId", url, description, events, device_id, include_body, active,
                  disabled_reason, disabled_at, failing_since, consecutive_failures, breaker_open_until,
                  last_failure_at, last_failure, created_at
           FROM webhook_endpoints WHERE id = $1 AND workspace_id = $2"#,
        id,
        workspace as WorkspaceId
    )
    .fetch_optional(pool)
    .await?
    .ok_or(EndpointError::NotFound)
}

pub async fn update(
    pool: &PgPool,
    workspace: WorkspaceId,
    id: Uuid,
    input: &EndpointInput,
    active: bool,
) -> Result<(), EndpointError> {
    let mut tx = pool.begin().await?;
    check_device(&mut tx, workspace, input.device_id).await?;
    let done = sqlx::query!(
        "UPDATE webhook_endpoints SET url = $3, description = $4, events = $5, device_id = $6, include_body = $7,
                active = $8, disabled_reason = CASE WHEN $8 THEN '' ELSE disabled_reason END,
                disabled_at = CASE WHEN $8 THEN NULL ELSE disabled_at END,
                failing_since = CASE WHEN $8 THEN NULL ELSE failing_since END,
                consecutive_failures = CASE WHEN $8 THEN 0 ELSE consecutive_failures END,
                breaker_open_until = CASE WHEN $8 THEN NULL ELSE breaker_open_until END,
                breaker_opened = CASE WHEN $8 THEN 0 ELSE breaker_opened END, updated_at = now()
         WHERE id = $1 AND workspace_id = $2",
        id,
        workspace as WorkspaceId,
        input.url,
        input.description,
        &input.events,
        input.device_id.map(|d| d.0),
        input.include_body,
        active
    )
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() == 0 {
        return Err(EndpointError::NotFound);
    }
    if active {
        // Turned on by an edit rather than "re-enable and replay": what was held while Ender
        // had it disabled is kept as failed, so "replay failed since…" can still send it.
        sqlx::query!(
            "UPDATE webhook_deliveries SET status = 'failed', last_error = 'Not sent: the endpoint was disabled.',
                    updated_at = now()
             WHERE endpoint_id = $1 AND status = 'held'",
            id
        )
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

pub async fn delete(pool: &PgPool, workspace: WorkspaceId, id: Uuid) -> Result<(), EndpointError> {
    let done = sqlx::query!(
        "DELETE FROM webhook_endpoints WHERE id = $1 AND workspace_id = $2",
        id,
        workspace as WorkspaceId
    )
    .execute(pool)
    .await?;
    if done.rows_affected() == 0 {
        Err(EndpointError::NotFound)
    } else {
        Ok(())
    }
}

/// A signing secret and when it stops signing (`None`: the current one).
#[derive(Debug, Clone)]
pub struct SigningSecret {
    pub secret: String,
    pub expires_at: Option<DateTime<Utc>>,
}

/// The secrets that sign now, newest first (a superseded one until its overlap ends).
pub async fn signing_secrets(
    conn: &mut PgConnection,
    keyring: &Keyring,
    endpoint: Uuid,
) -> Result<Vec<SigningSecret>, EndpointError> {
    let rows = sqlx::query!(
        "SELECT key_version, nonce, ciphertext, expires_at, bound FROM webhook_secrets
         WHERE endpoint_id = $1 AND (expires_at IS NULL OR expires_at > now()) ORDER BY created_at DESC",
        endpoint
    )
    .fetch_all(conn)
    .await?;
    let context = secret_context(endpoint);
    rows.into_iter()
        .map(|r| {
            let sealed = Sealed {
                key_version: r.key_version,
                nonce: r.nonce,
                ciphertext: r.ciphertext,
            };
            // Rows sealed before secrets were bound open without a context until the worker
            // re-seals them ([`bind_legacy_secrets`]).
            let plain = if r.bound {
                keyring.open_bound(&sealed, &context)?
            } else {
                keyring.open(&sealed)?
            };
            Ok(SigningSecret {
                secret: String::from_utf8_lossy(&plain).into_owned(),
                expires_at: r.expires_at,
            })
        })
        .collect()
}

/// The secrets that sign now, newest first.
pub async fn live_secrets(
    conn: &mut PgConnection,
    keyring: &Keyring,
    endpoint: Uuid,
) -> Result<Vec<String>, EndpointError> {
    Ok(signing_secrets(conn, keyring, endpoint)
        .await?
        .into_iter()
        .map(|s| s.secret)
        .collect())
}

/// The current secret, for its owner.
pub async fn reveal_secret(
    pool: &PgPool,
    keyring: &Keyring,
    workspace: WorkspaceId,
    id: Uuid,
) -> Result<String, EndpointError> {
    find(pool, workspace, id).await?;
    let mut conn = pool.acquire().await?;
    live_secrets(&mut conn, keyring, id)
        .await?
        .into_iter()
        .next()
        .ok_or(EndpointError::NotFound)
}

/// A new secret; the previous ones keep signing for `overlap` (zero revokes them at once).
pub async fn rotate_secret(
    pool: &PgPool,
    keyring: &Keyring,
    workspace: WorkspaceId,
    id: Uuid,
    overlap: Duration,
) -> Result<String, EndpointError> {
    let mut tx = pool.begin().await?;
    sqlx::query!(
        "UPDATE webhook_endpoints SET secrets_changed_at = now() WHERE id = $1 AND workspace_id = $2 RETURNING id",
        id,
        workspace as WorkspaceId
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(EndpointError::NotFound)?;
    sqlx::query!(
        "UPDATE webhook_secrets SET expires_at = least(coalesce(expires_at, 'infinity'), $2) WHERE endpoint_id = $1",
        id,
        Utc::now() + overlap
    )
    .execute(&mut *tx)
    .await?;
    let secret = new_secret();
    store_secret(&mut tx, keyring, id, &secret).await?;
    tx.commit().await?;
    Ok(secret)
}

/// Writes one pending delivery per active endpoint of `workspace` subscribed to `event` (and to
/// `device`, when the endpoint filters by device), inside the caller's transaction, and
/// wakes the delivery workers when it commits if the endpoint was idle (busy workers
/// poll). The body goes out with the message text only to endpoints that asked for it. An endpoint Ender disabled gets the event held, for
/// "re-enable and replay"; one its owner paused gets nothing.
pub async fn enqueue(
    conn: &mut PgConnection,
    workspace: WorkspaceId,
    event: Event,
    device: Option<DeviceId>,
    payload: &Payload,
    text: Option<&str>,
) -> sqlx::Result<u64> {
    let without = payload.to_bytes();
    let with = match text {
        Some(t) => payload.clone().with("body", t).to_bytes(),
        None => without.clone(),
    };
    let message_id = payload
        .fields
        .get("message_id")
        .and_then(|v| v.as_str())
        .unwrap_or("")
        .to_owned();
    // The endpoints first, so each delivery's payload is sealed for its own row. A plain
    // read: a row lock here would make this statement write (and, run on its own, commit
    // and flush) for every event (measured, bench/README.md). The insert below joins the
    // endpoint again, so one deleted in between is skipped, as the single statement this
    // used to be skipped it.
    let targets = sqlx::query!(
        "SELECT e.id, e.include_body, e.active FROM webhook_endpoints e
         WHERE e.workspace_id = $1 AND (e.active OR e.disabled_at IS NOT NULL) AND $2 = ANY (e.events)
           AND (e.device_id IS NULL OR e.device_id = $3)",
        workspace as WorkspaceId,
        event.as_str(),
        device.map(|d| d.0)
    )
    .fetch_all(&mut *conn)
    .await?;
    if targets.is_empty() {
        return Ok(0);
    }
    // One insert per endpoint (an event usually has one or two): with plain values its
    // plan is cached; arrays of rows made PostgreSQL plan the statement afresh for every
    // event, about a quarter of a millisecond each (measured, bench/README.md).
    let mut written = 0;
    for t in &targets {
        // Random ids, as gen_random_uuid() gave: time-ordered ones make concurrent claims
        // contend at the right-hand edge of the primary key (measured; bench/README.md).
        let id = Uuid::new_v4();
        let payload = if t.include_body { &with } else { &without };
        let body = at_rest::store_payload(id, payload)?;
        let status = if t.active { "pending" } else { "held" };
        let row = sqlx::query!(
            r#"WITH written AS (
                   INSERT INTO webhook_deliveries (id, endpoint_id, workspace_id, event, message_id, body, status)
                   SELECT $4, e.id, $1, $2, $3, $6, $7 FROM webhook_endpoints e WHERE e.id = $5
                   RETURNING id, endpoint_id, status)
               SELECT (SELECT count(*) FROM written) AS "n!",
                      -- Only an idle endpoint needs a wake-up: one with a delivery in flight or
                      -- due is being worked on, and its worker claims again as slots free up.
                      -- (NOTIFY serialises committing transactions, so it is kept for idle times.)
                      -- Each check is an index scan that stops at the first row it finds, so it
                      -- costs the same whatever the backlog.
                      (SELECT count(*) FROM (SELECT pg_notify($8, '')
                                             WHERE EXISTS (
                                                 SELECT 1 FROM written w WHERE w.status = 'pending'
                                                   AND (SELECT 1 FROM webhook_deliveries d
                                                        WHERE d.endpoint_id = w.endpoint_id AND d.status = 'delivering'
                                                        LIMIT 1) IS NULL
                                                   AND (SELECT 1 FROM webhook_deliveries d
                                                        WHERE d.endpoint_id = w.endpoint_id AND d.status = 'pending'
                                                          AND d.next_attempt_at <= now() AND d.id <> w.id
                                                        ORDER BY d.next_attempt_at LIMIT 1) IS NULL)) n)
                      AS "woke!""#,
            workspace as WorkspaceId,
            event.as_str(),
            message_id,
            id,
            t.id,
            body,
            status,
            crate::bus::WEBHOOKS
        )
        .fetch_one(&mut *conn)
        .await?;
        written += u64::try_from(row.n).unwrap_or(0);
    }
    Ok(written)
}

/// Re-enables an endpoint Ender (or its owner) disabled and queues again, at once, what it
/// missed: the events held while it was disabled and the deliveries that failed since it
/// started failing. Returns how many deliveries were queued.
pub async fn reenable_and_replay(
    pool: &PgPool,
    workspace: WorkspaceId,
    id: Uuid,
) -> Result<u64, EndpointError> {
    let mut tx = pool.begin().await?;
    let since = sqlx::query_scalar!(
        r#"SELECT coalesce(failing_since, disabled_at, now()) AS "since!" FROM webhook_endpoints
           WHERE id = $1 AND workspace_id = $2 FOR UPDATE"#,
        id,
        workspace as WorkspaceId
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(EndpointError::NotFound)?;
    sqlx::query!(
        "UPDATE webhook_endpoints SET active = true, disabled_reason = '', disabled_at = NULL, failing_since = NULL,
                consecutive_failures = 0, breaker_open_until = NULL, breaker_opened = 0, updated_at = now()
         WHERE id = $1",
        id
    )
    .execute(&mut *tx)
    .await?;
    let n = requeue(&mut tx, id, since, true).await?;
    tx.commit().await?;
    Ok(n)
}

/// Queues again, at once and with a fresh retry schedule, every delivery of the endpoint
/// that failed and was created, or gave up, at or after `since`. Returns how many.
pub async fn replay_failed(
    pool: &PgPool,
    workspace: WorkspaceId,
    id: Uuid,
    since: DateTime<Utc>,
) -> Result<u64, EndpointError> {
    let mut tx = pool.begin().await?;
    find_in(&mut tx, workspace, id).await?;
    let n = requeue(&mut tx, id, since, false).await?;
    tx.commit().await?;
    Ok(n)
}

async fn find_in(conn: &mut PgConnection, workspace: WorkspaceId, id: Uuid) -> Result<(), EndpointError> {
    sqlx::query_scalar!(
        "SELECT id FROM webhook_endpoints WHERE id = $1 AND workspace_id = $2",
        id,
        workspace as WorkspaceId
    )
    .fetch_optional(conn)
    .await?
    .ok_or(EndpointError::NotFound)
    .map(|_| ())
}

async fn requeue(
    conn: &mut PgConnection,
    endpoint: Uuid,
    since: DateTime<Utc>,
    held_too: bool,
) -> sqlx::Result<u64> {
    let n = sqlx::query!(
        r#"WITH queued AS (
               UPDATE webhook_deliveries SET status = 'pending', attempts = 0, next_attempt_at = now(),
                      lease_expires_at = NULL, updated_at = now()
               WHERE endpoint_id = $1 AND event <> 'test'
                 AND ((status = 'failed' AND (created_at >= $2 OR updated_at >= $2)) OR ($3 AND status = 'held'))
               RETURNING 1)
           SELECT (SELECT count(*) FROM queued) AS "n!",
                  (SELECT count(*) FROM (SELECT pg_notify($4, '') WHERE EXISTS (SELECT 1 FROM queued)) w) AS "woke!""#,
        endpoint,
        since,
        held_too,
        crate::bus::WEBHOOKS
    )
    .fetch_one(conn)
    .await?;
    Ok(u64::try_from(n.n).unwrap_or(0))
}

/// Records a `test` event for the owner's endpoint (also a paused or disabled one), not
/// yet sent: the caller sends it at once. Returns the delivery's id.
pub async fn create_test_delivery(
    pool: &PgPool,
    workspace: WorkspaceId,
    id: Uuid,
) -> Result<Uuid, EndpointError> {
    let message_id = format!("test_{}", Uuid::now_v7().simple());
    let body = Payload::new(Event::Test, &message_id, Utc::now())
        .with("from", "+15550000000")
        .with("body", "This is a test event from Ender.")
        .to_bytes();
    let delivery = Uuid::now_v7();
    let body = at_rest::store_payload(delivery, &body)?;
    // Written as failed so no worker claims it before the caller sends it.
    sqlx::query_scalar!(
        "INSERT INTO webhook_deliveries (id, endpoint_id, workspace_id, event, message_id, body, status)
         SELECT $1, e.id, e.workspace_id, 'test', $4, $5, 'failed' FROM webhook_endpoints e
         WHERE e.id = $2 AND e.workspace_id = $3
         RETURNING id",
        delivery,
        id,
        workspace as WorkspaceId,
        message_id,
        body
    )
    .fetch_optional(pool)
    .await?
    .ok_or(EndpointError::NotFound)
}

/// Successful and failed attempts per endpoint of `workspace` over the last 24 hours.
pub async fn day_stats(pool: &PgPool, workspace: WorkspaceId) -> sqlx::Result<Vec<(Uuid, i64, i64)>> {
    let rows = sqlx::query!(
        r#"SELECT s.endpoint_id, sum(s.succeeded)::bigint AS "succeeded!", sum(s.failed)::bigint AS "failed!"
           FROM webhook_endpoint_stats s JOIN webhook_endpoints e ON e.id = s.endpoint_id
           WHERE e.workspace_id = $1 AND s.hour > now() - interval '24 hours'
           GROUP BY s.endpoint_id"#,
        workspace as WorkspaceId
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.endpoint_id, r.succeeded, r.failed))
        .collect())
}

/// Re-seals the signing secrets stored before they were bound to their endpoint, with the
/// current key and their endpoint as context; returns how many. Idempotent and safe from several processes at once (rows are claimed with
/// `SKIP LOCKED`); a row that cannot be opened is left as it is and reported in the log.
pub async fn bind_legacy_secrets(pool: &PgPool, keyring: &Keyring) -> sqlx::Result<u64> {
    let mut done = 0;
    let mut after = Uuid::nil();
    loop {
        let mut tx = pool.begin().await?;
        let rows = sqlx::query!(
            "SELECT id, endpoint_id, key_version, nonce, ciphertext FROM webhook_secrets
             WHERE NOT bound AND id > $1 ORDER BY id LIMIT 200 FOR UPDATE SKIP LOCKED",
            after
        )
        .fetch_all(&mut *tx)
        .await?;
        let Some(last) = rows.last() else {
            break;
        };
        after = last.id;
        for r in rows {
            let legacy = Sealed {
                key_version: r.key_version,
                nonce: r.nonce,
                ciphertext: r.ciphertext,
            };
            let bound = keyring
                .open(&legacy)
                .and_then(|plain| keyring.seal_bound(&plain, &secret_context(r.endpoint_id)));
            match bound {
                Ok(sealed) => {
                    sqlx::query!(
                        "UPDATE webhook_secrets SET key_version = $2, nonce = $3, ciphertext = $4, bound = true
                         WHERE id = $1",
                        r.id,
                        sealed.key_version,
                        sealed.nonce,
                        sealed.ciphertext
                    )
                    .execute(&mut *tx)
                    .await?;
                    done += 1;
                }
                Err(e) => {
                    tracing::error!(webhook.endpoint = %r.endpoint_id, error = %e, "a webhook secret could not be re-sealed");
                }
            }
        }
        tx.commit().await?;
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses_are_recognised() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "::1",
            "fd00:ec2::254",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(is_internal(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["93.184.216.34", "8.8.8.8", "2606:4700::1111"] {
            assert!(!is_internal(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn only_globally_routable_addresses_are_external() {
        for ip in [
            // IPv4 special-purpose ranges.
            "198.18.0.1",
            "198.19.255.254",
            "192.0.2.10",
            "198.51.100.7",
            "203.0.113.99",
            "192.0.0.9",
            "192.88.99.1",
            "240.0.0.1",
            "255.255.255.255",
            "0.1.2.3",
            // IPv6 outside global unicast.
            "::",
            "::7f00:1",         // IPv4-compatible ::127.0.0.1
            "::808:808",        // IPv4-compatible, even of a public address (deprecated)
            "fec0::1",          // site-local
            "100::1",           // discard
            "ff02::1",          // multicast
            "fc00::1",          // unique local
            "::ffff:0:808:808", // IPv4-translated (SIIT)
            "4000::1",          // unassigned, outside 2000::/3
            // Special blocks inside 2000::/3.
            "2001:db8::1",
            "2001:2::1",  // benchmarking
            "2001:10::1", // ORCHID
            "2001:20::1", // ORCHIDv2
            "2001:1ff::1",
            "3fff::1", // documentation (RFC 9637)
            // Embedded IPv4 addresses that are not global.
            "64:ff9b::a9fe:a9fe",                   // NAT64 of 169.254.169.254
            "64:ff9b::7f00:1",                      // NAT64 of 127.0.0.1
            "64:ff9b::c612:1",                      // NAT64 of 198.18.0.1
            "64:ff9b:1::a00:1",                     // local-use NAT64 of 10.0.0.1
            "64:ff9b:1:ff::808:808",                // local-use NAT64, ambiguous layout
            "2002:7f00:1::1",                       // 6to4 of 127.0.0.1
            "2002:a9fe:a9fe::1",                    // 6to4 of 169.254.169.254
            "2002:c000:0201::1",                    // 6to4 of 192.0.2.1
            "2001:0:4136:e378:8000:63bf:f5ff:fffe", // Teredo, client 10.0.0.1
            "2001:0:0a00:0001:8000:63bf:f7f7:f7f7", // Teredo, server 10.0.0.1
            "2001:0:4136:e378:8000:63bf:3fff:fdd2", // Teredo, client 192.0.2.45 (RFC 4380)
            "::ffff:198.18.0.1",
            "::ffff:100.64.0.1",
        ] {
            let parsed: IpAddr = ip.parse().unwrap();
            assert!(!is_global(parsed), "{ip} is not global");
            assert!(is_internal(parsed), "{ip}");
        }
        for ip in [
            "1.1.1.1",
            "198.17.255.255",
            "198.20.0.1",
            "192.0.3.1",
            "203.0.114.1",
            "100.63.255.255",
            "100.128.0.1",
            "223.255.255.254",
            "2001:4860:4860::8888",
            "2a00:1450:4001::1",
            "2001:200::1",  // just past 2001::/23
            "3fff:1000::1", // just past 3fff::/20
            // Embedded IPv4 addresses that are global.
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",                     // NAT64 of 8.8.8.8
            "64:ff9b:1::808:808",                   // local-use NAT64 of 8.8.8.8, /96 layout
            "2002:808:808::1",                      // 6to4 of 8.8.8.8
            "2001:0:4136:e378:8000:63bf:f7f7:f7f7", // Teredo, server 65.54.227.120, client 8.8.8.8
        ] {
            let parsed: IpAddr = ip.parse().unwrap();
            assert!(is_global(parsed), "{ip} is global");
        }
    }

    #[test]
    fn urls_are_checked() {
        assert!(check_url("https://hooks.example.com/ender", &[]).is_ok());
        for bad in [
            "ftp://example.com",
            "example.com",
            "https://user:pw@example.com",
            "http://127.0.0.1:8000/",
            "http://localhost/x",
            "http://[::1]/",
            "http://169.254.169.254/latest",
            "http://198.18.0.1/",
            "http://[64:ff9b::a9fe:a9fe]/",
            "http://[2002:a9fe:a9fe::1]/",
            "http://[::ffff:10.0.0.1]/",
            "http://[fec0::1]/",
        ] {
            assert!(check_url(bad, &[]).is_err(), "{bad}");
        }
        let lan: Vec<ipnet::IpNet> = vec!["192.168.0.0/16".parse().unwrap()];
        assert!(check_url("http://192.168.1.20:9000/hook", &lan).is_ok());
        assert!(check_url("http://[64:ff9b::808:808]/hook", &[]).is_ok());
        let bench: Vec<ipnet::IpNet> = vec!["198.18.0.0/15".parse().unwrap()];
        assert!(
            check_url("http://198.18.3.4/hook", &bench).is_ok(),
            "the allow-list still opens a range"
        );
    }
}
