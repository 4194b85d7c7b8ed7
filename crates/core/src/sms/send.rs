//! Accepting a send: recipients, body, device and quota checked in that order; every
//! message of the request, its first event and the dispatcher's wake-up written in one
//! transaction; an `Idempotency-Key` replays the first answer.

use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::body::{BodyError, Encoding, SmsBody};
use super::model::{BatchId, MessageId};
use super::phone::PhoneNumber;
use crate::config::SmsConfig;
use crate::contact::GroupId;
use crate::device::DeviceId;
use crate::quota::{self, ConsumeError, QuotaExceeded};
use crate::secret::at_rest::{self, Column};
use crate::workspace::WorkspaceId;

/// What a caller asks to send.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SendRequest {
    #[serde(default)]
    pub recipients: Vec<String>,
    #[serde(default)]
    pub body: String,
    #[serde(default)]
    pub device_id: Option<String>,
    #[serde(default)]
    pub group_ids: Vec<String>,
    /// Ender's addition: give up (status `expired`) if not sent by then (RFC 3339).
    #[serde(default)]
    pub valid_until: Option<String>,
}

/// The answer, in the shape Vendel clients read (plus `segments` and `encoding`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SendResponse {
    pub batch_id: String,
    pub message_ids: Vec<String>,
    pub recipients_count: usize,
    pub status: String,
    pub segments: i32,
    pub encoding: String,
}

#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("At least one recipient required.")]
    NoRecipients,
    #[error("Invalid phone number: {0}. Must be E.164 format (e.g. +1234567890).")]
    InvalidNumber(String),
    #[error("Too many recipients: at most {0} per request.")]
    TooManyRecipients(usize),
    #[error(transparent)]
    Body(#[from] BodyError),
    #[error("Template_id required.")]
    TemplateIdRequired,
    #[error("Template not found.")]
    TemplateNotFound,
    #[error("Template does not belong to user.")]
    TemplateNotOwned,
    #[error("No enabled device to send from: add a device or enable one.")]
    NoDevice,
    #[error("Missing variable: {0}.")]
    MissingVariable(String),
    #[error("Interpolated message for {recipient} exceeds 1600 character limit ({chars} chars).")]
    InterpolatedTooLong { recipient: String, chars: usize },
    #[error("Device not found: {0}.")]
    DeviceNotFound(String),
    #[error("Device does not belong to user.")]
    DeviceNotOwned,
    #[error("Invalid valid_until: use a future RFC 3339 time (e.g. 2026-12-01T09:00:00Z).")]
    ValidUntil,
    #[error(transparent)]
    Quota(#[from] QuotaExceeded),
    #[error("This Idempotency-Key was already used with a different request.")]
    IdempotencyMismatch,
    #[error(
        "Sending is paused for this workspace by the server's administrator. Messages already queued wait until it resumes."
    )]
    Paused,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

impl SendError {
    /// A name for the kind of refusal, for logs: the messages themselves can carry a
    /// recipient's number, which never goes into a log line.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::NoRecipients => "no_recipients",
            Self::InvalidNumber(_) => "invalid_number",
            Self::TooManyRecipients(_) => "too_many_recipients",
            Self::Body(_) => "invalid_body",
            Self::TemplateIdRequired => "template_id_required",
            Self::TemplateNotFound | Self::TemplateNotOwned => "template_not_found",
            Self::NoDevice => "no_device",
            Self::MissingVariable(_) => "missing_variable",
            Self::InterpolatedTooLong { .. } => "interpolated_too_long",
            Self::DeviceNotFound(_) | Self::DeviceNotOwned => "device_not_found",
            Self::ValidUntil => "invalid_valid_until",
            Self::Quota(_) => "quota_exceeded",
            Self::IdempotencyMismatch => "idempotency_mismatch",
            Self::Paused => "sending_paused",
            Self::Database(_) => "database",
        }
    }
}

impl From<ConsumeError> for SendError {
    fn from(e: ConsumeError) -> Self {
        match e {
            ConsumeError::Exceeded(q) => Self::Quota(q),
            ConsumeError::Database(d) => Self::Database(d),
        }
    }
}

/// A client's `Idempotency-Key` and a digest of the request it came with.
#[derive(Debug, Clone)]
pub struct Idempotency {
    pub key: String,
    pub request_hash: Vec<u8>,
}

/// The outcome of [`send`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sent {
    Accepted(SendResponse),
    /// The same key and request within 24 hours: the stored answer, nothing sent again.
    Replayed(serde_json::Value),
}

/// Listed numbers as E.164, de-duplicated in first-seen order.
fn parse_numbers(raw: &[String]) -> Result<Vec<PhoneNumber>, SendError> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for r in raw {
        let phone = PhoneNumber::parse(r).map_err(|_| SendError::InvalidNumber(r.trim().to_owned()))?;
        if seen.insert(phone.clone()) {
            out.push(phone);
        }
    }
    Ok(out)
}

/// Most recipients one send may reach once its groups are expanded (the numbers listed in
/// the request stay within `ENDER_MAX_RECIPIENTS`).
pub const MAX_EXPANDED_RECIPIENTS: usize = 100_000;

/// The request's numbers followed by the numbers of the caller's contacts in `group_ids`,
/// de-duplicated in first-seen order. Ids that are not the caller's groups (or not ids)
/// add nothing. At most `max` numbers may be listed; groups may take the total up to
/// [`MAX_EXPANDED_RECIPIENTS`], so a school can reach all its parents in one send.
pub async fn collect_recipients(
    pool: &PgPool,
    workspace: WorkspaceId,
    raw: &[String],
    group_ids: &[String],
    max: usize,
) -> Result<Vec<String>, SendError> {
    if raw.iter().all(|r| r.trim().is_empty()) && group_ids.is_empty() {
        return Err(SendError::NoRecipients);
    }
    let mut out: Vec<String> = parse_numbers(raw)?
        .into_iter()
        .map(PhoneNumber::into_string)
        .collect();
    if out.len() > max {
        return Err(SendError::TooManyRecipients(max));
    }
    let groups: Vec<GroupId> = group_ids.iter().filter_map(|g| g.parse().ok()).collect();
    if !groups.is_empty() {
        let mut conn = pool.acquire().await?;
        let members = crate::contact::repo::numbers_in_groups(&mut conn, workspace, &groups).await?;
        let mut seen: std::collections::HashSet<String> = out.iter().cloned().collect();
        for number in members {
            if seen.insert(number.clone()) {
                out.push(number);
            }
        }
    }
    if out.is_empty() {
        return Err(SendError::NoRecipients);
    }
    let cap = max.max(MAX_EXPANDED_RECIPIENTS);
    if out.len() > cap {
        return Err(SendError::TooManyRecipients(cap));
    }
    Ok(out)
}

/// A request that passed every check but the quota.
#[derive(Debug, Clone)]
pub struct Validated {
    recipients: Vec<String>,
    body: Bodies,
    device: Option<DeviceId>,
    valid_until: Option<chrono::DateTime<chrono::Utc>>,
}

/// One text for every recipient, or one each (a template filled per recipient).
#[derive(Debug, Clone)]
enum Bodies {
    Shared(SmsBody),
    Each(Vec<SmsBody>),
}

impl Validated {
    pub fn count(&self) -> usize {
        self.recipients.len()
    }

    fn body(&self, i: usize) -> &SmsBody {
        match &self.body {
            Bodies::Shared(b) => b,
            Bodies::Each(all) => &all[i],
        }
    }

    /// The most segments any recipient's text takes, and whether any needs UCS-2.
    fn widest(&self) -> (i32, Encoding) {
        match &self.body {
            Bodies::Shared(b) => (b.segments, b.encoding),
            Bodies::Each(all) => {
                let segments = all.iter().map(|b| b.segments).max().unwrap_or(0);
                let ucs2 = all.iter().any(|b| b.encoding == Encoding::Ucs2);
                (segments, if ucs2 { Encoding::Ucs2 } else { Encoding::Gsm7 })
            }
        }
    }
}

/// Checks a request in the contract's order: recipients, body, device (then `valid_until`).
pub async fn validate(
    pool: &PgPool,
    cfg: &SmsConfig,
    workspace: WorkspaceId,
    req: &SendRequest,
) -> Result<Validated, SendError> {
    let recipients = collect_recipients(
        pool,
        workspace,
        &req.recipients,
        &req.group_ids,
        cfg.max_recipients,
    )
    .await?;
    let body = SmsBody::parse(&req.body)?;
    finish(
        pool,
        workspace,
        recipients,
        Bodies::Shared(body),
        req.device_id.as_deref(),
        req.valid_until.as_deref(),
    )
    .await
}

/// The device and expiry checks every kind of send ends with.
async fn finish(
    pool: &PgPool,
    workspace: WorkspaceId,
    recipients: Vec<String>,
    body: Bodies,
    device: Option<&str>,
    valid_until: Option<&str>,
) -> Result<Validated, SendError> {
    let device = match device.map(str::trim).filter(|d| !d.is_empty()) {
        Some(raw) => Some(check_device(pool, workspace, raw).await?),
        None => None,
    };
    let valid_until = match valid_until.map(str::trim).filter(|v| !v.is_empty()) {
        None => None,
        Some(raw) => {
            let t = chrono::DateTime::parse_from_rfc3339(raw)
                .map_err(|_| SendError::ValidUntil)?
                .to_utc();
            if t <= chrono::Utc::now() {
                return Err(SendError::ValidUntil);
            }
            Some(t)
        }
    };
    Ok(Validated {
        recipients,
        body,
        device,
        valid_until,
    })
}

/// What a caller asks to send with a template (`POST /api/sms/send-template`).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct TemplateSendRequest {
    #[serde(default)]
    pub recipients: Vec<String>,
    #[serde(default)]
    pub template_id: String,
    #[serde(default)]
    pub variables: std::collections::HashMap<String, String>,
    #[serde(default)]
    pub device_id: Option<String>,
    #[serde(default)]
    pub group_ids: Vec<String>,
    #[serde(default)]
    pub valid_until: Option<String>,
}

/// Checks a template request: recipients, the template, each recipient's filled text
/// (`name` and `phone` come from the caller's contact with that number, over the given
/// variables), then device and `valid_until`.
pub async fn validate_template(
    pool: &PgPool,
    cfg: &SmsConfig,
    workspace: WorkspaceId,
    req: &TemplateSendRequest,
) -> Result<Validated, SendError> {
    let recipients = collect_recipients(
        pool,
        workspace,
        &req.recipients,
        &req.group_ids,
        cfg.max_recipients,
    )
    .await?;
    let template = crate::template::repo::for_send(pool, workspace, &req.template_id).await?;
    let bodies = render_each(pool, workspace, &template, &recipients, &req.variables).await?;
    finish(
        pool,
        workspace,
        recipients,
        Bodies::Each(bodies),
        req.device_id.as_deref(),
        req.valid_until.as_deref(),
    )
    .await
}

/// Fills the template for each recipient.
pub(crate) async fn render_each(
    pool: &PgPool,
    workspace: WorkspaceId,
    template: &crate::template::text::TemplateText,
    recipients: &[String],
    variables: &std::collections::HashMap<String, String>,
) -> Result<Vec<SmsBody>, SendError> {
    let uses_contact = template.variables().iter().any(|v| *v == "name" || *v == "phone");
    let names = if uses_contact {
        let mut conn = pool.acquire().await?;
        crate::contact::repo::names_by_number(&mut conn, workspace, recipients).await?
    } else {
        std::collections::HashMap::new()
    };
    let mut bodies = Vec::with_capacity(recipients.len());
    for recipient in recipients {
        let contact_name = names.get(recipient);
        let text = template
            .render(|var| match var {
                "name" if contact_name.is_some() => contact_name.map(String::as_str),
                "phone" if contact_name.is_some() => Some(recipient.as_str()),
                other => variables.get(other).map(String::as_str),
            })
            .map_err(|missing| SendError::MissingVariable(missing.0))?;
        let body = SmsBody::parse(&text).map_err(|e| match e {
            BodyError::TooLong => SendError::InterpolatedTooLong {
                recipient: recipient.clone(),
                chars: super::body::clean(&text).chars().count(),
            },
            other => SendError::Body(other),
        })?;
        bodies.push(body);
    }
    Ok(bodies)
}

/// Ids for an accepted request and its answer.
pub(crate) fn accept(v: &Validated) -> (Vec<MessageId>, Option<BatchId>, SendResponse) {
    let count = v.count();
    let batch = (count > 1).then(|| BatchId(Uuid::now_v7()));
    let ids: Vec<MessageId> = (0..count).map(|_| MessageId(Uuid::now_v7())).collect();
    let (segments, encoding) = v.widest();
    let response = SendResponse {
        batch_id: batch.map(|b| b.to_string()).unwrap_or_default(),
        message_ids: ids.iter().map(ToString::to_string).collect(),
        recipients_count: count,
        status: "accepted".to_owned(),
        segments,
        encoding: match encoding {
            Encoding::Gsm7 => "gsm7",
            Encoding::Ucs2 => "ucs2",
        }
        .to_owned(),
    };
    (ids, batch, response)
}

/// Writes the messages of accepted requests (any workspaces) with their first events in one
/// statement, and with `wake` asks the dispatchers of those workspaces to run at commit.
pub(crate) async fn insert_accepted(
    conn: &mut PgConnection,
    accepted: &[(WorkspaceId, &Validated, &[MessageId], Option<BatchId>)],
    wake: bool,
) -> sqlx::Result<()> {
    let n: usize = accepted.iter().map(|a| a.2.len()).sum();
    let (mut ids, mut workspaces, mut batches, mut recipients, mut bodies) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut sealed, mut encodings, mut segments, mut devices, mut valid) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for (workspace, v, msg_ids, batch) in accepted {
        for (i, (id, recipient)) in msg_ids.iter().zip(&v.recipients).enumerate() {
            let body = v.body(i);
            ids.push(id.0);
            workspaces.push(workspace.0);
            batches.push(batch.map(|b| b.0));
            recipients.push(recipient.clone());
            let (text, seal) = at_rest::store_text(Column::MessageBody, id.0, body.as_str())?;
            bodies.push(text);
            sealed.push(seal);
            encodings.push(body.encoding.as_str().to_owned());
            segments.push(body.segments);
            devices.push(v.device.map(|d| d.0));
            valid.push(v.valid_until);
        }
    }
    // Messages and their first events in one statement.
    sqlx::query!(
        "WITH m AS (
             INSERT INTO messages (id, workspace_id, batch_id, direction, recipient, body, body_sealed, encoding, segments,
                                   status, requested_device_id, valid_until)
             SELECT id, workspace_id, batch_id, 'outgoing', recipient, body, NULLIF(sealed, ''::bytea), encoding, segments,
                    'pending', device, valid_until
             FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::text[], $7::int[], $8::uuid[],
                         $9::timestamptz[], $10::bytea[])
                  AS t(id, workspace_id, batch_id, recipient, body, encoding, segments, device, valid_until, sealed)
             RETURNING id)
         INSERT INTO message_events (message_id, status, detail) SELECT id, 'pending', 'Accepted.' FROM m",
        &ids,
        &workspaces,
        &batches as &[Option<Uuid>],
        &recipients,
        &bodies,
        &encodings,
        &segments,
        &devices as &[Option<Uuid>],
        &valid as &[Option<chrono::DateTime<chrono::Utc>>],
        &sealed
    )
    .execute(&mut *conn)
    .await?;
    if !wake {
        return Ok(());
    }
    let mut woken: Vec<WorkspaceId> = accepted.iter().map(|a| a.0).collect();
    woken.sort_by_key(|u| u.0);
    woken.dedup();
    for workspace in woken {
        crate::bus::wake_dispatch(conn, workspace).await?;
    }
    Ok(())
}

/// Accepts one request on its own transaction (the path for `Idempotency-Key` requests;
/// others usually go through [`super::batch::Batcher`]).
pub async fn send(
    pool: &PgPool,
    cfg: &SmsConfig,
    workspace: WorkspaceId,
    req: &SendRequest,
    idempotency: Option<&Idempotency>,
) -> Result<Sent, SendError> {
    // A retry of a request that already succeeded gets its answer, whatever changed since
    // (a deleted device, a passed valid_until).
    if let Some(idem) = idempotency
        && let Some(stored) = completed_idempotent(pool, workspace, idem).await?
    {
        return Ok(Sent::Replayed(stored));
    }
    let v = validate(pool, cfg, workspace, req).await?;
    commit_one(pool, cfg, workspace, &v, idempotency).await
}

/// [`send`] for a template request.
pub async fn send_template(
    pool: &PgPool,
    cfg: &SmsConfig,
    workspace: WorkspaceId,
    req: &TemplateSendRequest,
    idempotency: Option<&Idempotency>,
) -> Result<Sent, SendError> {
    if let Some(idem) = idempotency
        && let Some(stored) = completed_idempotent(pool, workspace, idem).await?
    {
        return Ok(Sent::Replayed(stored));
    }
    let v = validate_template(pool, cfg, workspace, req).await?;
    commit_one(pool, cfg, workspace, &v, idempotency).await
}

/// Writes one validated request on its own transaction, counted against the quota.
pub async fn commit_one(
    pool: &PgPool,
    cfg: &SmsConfig,
    workspace: WorkspaceId,
    v: &Validated,
    idempotency: Option<&Idempotency>,
) -> Result<Sent, SendError> {
    let mut tx = pool.begin().await?;
    if let Some(idem) = idempotency
        && let Some(stored) = claim_idempotency(&mut tx, workspace, idem).await?
    {
        return Ok(Sent::Replayed(stored));
    }
    if !paused_of(&mut tx, &[workspace.0]).await?.is_empty() {
        return Err(SendError::Paused);
    }
    let (ids, batch, response) = accept(v);
    insert_accepted(&mut tx, &[(workspace, v, &ids, batch)], true).await?;
    if let Some(idem) = idempotency {
        store_idempotent_response(&mut tx, workspace, idem, &response).await?;
    }
    // Last, so the usage row stays locked only for the commit.
    let allowance = crate::billing::plans::allowance(&mut tx, workspace, cfg).await?;
    let n = i32::try_from(v.count()).unwrap_or(i32::MAX);
    let total = quota::consume(&mut tx, workspace, n, allowance).await?;
    if cfg.billing.enabled {
        quota::note_crossing(&mut tx, workspace, allowance, total - n, total).await?;
    }
    tx.commit().await?;
    Ok(Sent::Accepted(response))
}

/// Which of `workspaces` an administrator has paused the sending of.
pub(crate) async fn paused_of(
    conn: &mut PgConnection,
    workspaces: &[uuid::Uuid],
) -> sqlx::Result<Vec<uuid::Uuid>> {
    sqlx::query_scalar!(
        "SELECT id FROM workspaces WHERE id = ANY($1) AND sending_paused_at IS NOT NULL",
        workspaces
    )
    .fetch_all(conn)
    .await
}

async fn check_device(pool: &PgPool, workspace: WorkspaceId, raw: &str) -> Result<DeviceId, SendError> {
    let not_found = || SendError::DeviceNotFound(raw.to_owned());
    let id: DeviceId = raw.parse().map_err(|_| not_found())?;
    let owner = sqlx::query_scalar!(
        r#"SELECT workspace_id AS "workspace_id: WorkspaceId" FROM devices WHERE id = $1"#,
        id as DeviceId
    )
    .fetch_optional(pool)
    .await?
    .ok_or_else(not_found)?;
    if owner != workspace {
        return Err(SendError::DeviceNotOwned);
    }
    Ok(id)
}

/// The stored answer of a completed request under this key (24 h), if any.
async fn completed_idempotent(
    pool: &PgPool,
    workspace: WorkspaceId,
    idem: &Idempotency,
) -> Result<Option<serde_json::Value>, SendError> {
    let stored = sqlx::query!(
        "SELECT request_hash, response FROM idempotency_keys
         WHERE workspace_id = $1 AND key = $2 AND status_code <> 0 AND created_at >= now() - interval '24 hours'",
        workspace as WorkspaceId,
        idem.key
    )
    .fetch_optional(pool)
    .await?;
    match stored {
        None => Ok(None),
        Some(s) if s.request_hash == idem.request_hash => Ok(Some(s.response)),
        Some(_) => Err(SendError::IdempotencyMismatch),
    }
}

/// Takes the key for this request, or returns the answer stored under it. A concurrent
/// request with the same key waits here until the first one commits or rolls back.
async fn claim_idempotency(
    conn: &mut PgConnection,
    workspace: WorkspaceId,
    idem: &Idempotency,
) -> Result<Option<serde_json::Value>, SendError> {
    sqlx::query!(
        "DELETE FROM idempotency_keys WHERE workspace_id = $1 AND key = $2 AND created_at < now() - interval '24 hours'",
        workspace as WorkspaceId,
        idem.key
    )
    .execute(&mut *conn)
    .await?;
    let inserted = sqlx::query!(
        "INSERT INTO idempotency_keys (workspace_id, key, request_hash, status_code, response)
         VALUES ($1, $2, $3, 0, '{}') ON CONFLICT DO NOTHING",
        workspace as WorkspaceId,
        idem.key,
        idem.request_hash
    )
    .execute(&mut *conn)
    .await?;
    if inserted.rows_affected() == 1 {
        return Ok(None);
    }
    let stored = sqlx::query!(
        "SELECT request_hash, response FROM idempotency_keys WHERE workspace_id = $1 AND key = $2",
        workspace as WorkspaceId,
        idem.key
    )
    .fetch_one(&mut *conn)
    .await?;
    if stored.request_hash != idem.request_hash {
        return Err(SendError::IdempotencyMismatch);
    }
    Ok(Some(stored.response))
}

async fn store_idempotent_response(
    conn: &mut PgConnection,
    workspace: WorkspaceId,
    idem: &Idempotency,
    response: &SendResponse,
) -> sqlx::Result<()> {
    let json = serde_json::to_value(response).unwrap_or_default();
    sqlx::query!(
        "UPDATE idempotency_keys SET status_code = 200, response = $3 WHERE workspace_id = $1 AND key = $2",
        workspace as WorkspaceId,
        idem.key,
        json
    )
    .execute(conn)
    .await?;
    Ok(())
}
