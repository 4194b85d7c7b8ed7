//! Exports of a workspace's message history (CSV or JSON Lines, with filters), made by the
//! worker as jobs on the `ender.exports` queue and kept in the object store for a week.
//!
//! A request inserts the export's row and its job in one transaction. The worker claims
//! the row, writes the file to a local temporary file page by page (bounded memory, its
//! progress on the row), then stores it whole: a download is offered only once the object
//! is complete, so a killed worker never leaves a half file behind, and the job (picked up
//! again as an orphan) starts the file over. A store that cannot be reached is tried again
//! later with backoff; the row says so meanwhile.

use apalis_core::task::builder::TaskBuilder;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::FieldError;
use crate::account::UserId;
use crate::contact::export::{guard_formula, push_csv_record};
use crate::secret::at_rest::{self, Column};
use crate::workspace::WorkspaceId;

pub const QUEUE: &str = "ender.exports";

/// Messages read per page while writing a file.
pub const PAGE_ROWS: i64 = 5_000;

/// Exports waiting or running per workspace at most.
pub const MAX_OPEN: i64 = 3;

/// Tries before a store failure fails the export.
pub const MAX_ATTEMPTS: i32 = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Csv,
    Jsonl,
}

impl Format {
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "csv" => Some(Self::Csv),
            "jsonl" | "ndjson" | "json" => Some(Self::Jsonl),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Csv => "csv",
            Self::Jsonl => "jsonl",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Self::Csv => "text/csv; charset=utf-8",
            Self::Jsonl => "application/x-ndjson",
        }
    }

    fn kind(self) -> &'static str {
        match self {
            Self::Csv => "messages_csv",
            Self::Jsonl => "messages_jsonl",
        }
    }

    fn from_kind(kind: &str) -> Self {
        if kind == "messages_jsonl" {
            Self::Jsonl
        } else {
            Self::Csv
        }
    }
}

pub const DIRECTIONS: &[&str] = &["outgoing", "incoming"];
pub const STATUSES: &[&str] = &[
    "pending",
    "assigned",
    "sending",
    "sent",
    "delivered",
    "failed",
    "canceled",
    "expired",
    "received",
];

/// Which messages an export holds: sent or received from `since` through `until` (whole
/// UTC days), of one direction, status and device when given.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageFilter {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<NaiveDate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<NaiveDate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<Uuid>,
}

impl MessageFilter {
    /// Reads a filter from the fields of a form or a JSON body (empty: no condition).
    pub fn parse(
        since: &str,
        until: &str,
        direction: &str,
        status: &str,
        device: &str,
    ) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let date = |field: &'static str, raw: &str, errors: &mut Vec<FieldError>| {
            let raw = raw.trim();
            if raw.is_empty() {
                return None;
            }
            NaiveDate::parse_from_str(raw, "%Y-%m-%d").map_or_else(
                |_| {
                    errors.push(FieldError::new(field, "Use a date such as 2026-01-31."));
                    None
                },
                Some,
            )
        };
        let since = date("since", since, &mut errors);
        let until = date("until", until, &mut errors);
        if let (Some(s), Some(u)) = (since, until)
            && s > u
        {
            errors.push(FieldError::new("until", "The end date is before the start date."));
        }
        let choice = |field: &'static str, raw: &str, options: &[&str], errors: &mut Vec<FieldError>| {
            let raw = raw.trim().to_ascii_lowercase();
            if raw.is_empty() || raw == "all" {
                None
            } else if options.contains(&raw.as_str()) {
                Some(raw)
            } else {
                errors.push(FieldError::new(
                    field,
                    format!("Use one of: {}.", options.join(", ")),
                ));
                None
            }
        };
        let direction = choice("direction", direction, DIRECTIONS, &mut errors);
        let status = choice("status", status, STATUSES, &mut errors);
        let device = match device.trim() {
            "" | "all" => None,
            raw => match raw.parse::<Uuid>() {
                Ok(id) => Some(id),
                Err(_) => {
                    errors.push(FieldError::new(
                        "device",
                        "Choose one of the workspace's devices.",
                    ));
                    None
                }
            },
        };
        if errors.is_empty() {
            Ok(Self {
                since,
                until,
                direction,
                status,
                device,
            })
        } else {
            Err(errors)
        }
    }

    fn bounds(&self) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
        let start = |d: NaiveDate| d.and_hms_opt(0, 0, 0).map(|t| t.and_utc());
        (
            self.since.and_then(start),
            self.until.and_then(|d| d.succ_opt()).and_then(start),
        )
    }

    /// The filter in words, for the page.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        match (self.since, self.until) {
            (Some(s), Some(u)) => parts.push(format!("{s} to {u}")),
            (Some(s), None) => parts.push(format!("since {s}")),
            (None, Some(u)) => parts.push(format!("until {u}")),
            (None, None) => {}
        }
        if let Some(d) = &self.direction {
            parts.push(d.clone());
        }
        if let Some(s) = &self.status {
            parts.push(s.clone());
        }
        if self.device.is_some() {
            parts.push("one device".to_owned());
        }
        if parts.is_empty() {
            "all messages".to_owned()
        } else {
            parts.join(", ")
        }
    }
}

/// An export as its row holds it.
#[derive(Debug, Clone, Serialize)]
pub struct Export {
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub requested_by: Option<Uuid>,
    pub format: Format,
    pub filter: MessageFilter,
    /// `queued`, `running`, `done`, `failed` or `expired`.
    pub status: String,
    pub rows_done: i64,
    pub rows_total: Option<i64>,
    pub attempts: i32,
    pub size_bytes: Option<i64>,
    pub error: String,
    pub object_key: Option<String>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
}

impl Export {
    /// The name a download is saved as.
    pub fn filename(&self) -> String {
        format!(
            "messages-{}.{}",
            self.created_at.format("%Y-%m-%d-%H%M%S"),
            self.format.as_str()
        )
    }

    /// Where the finished file is kept in the object store.
    pub fn key(&self) -> String {
        format!(
            "exports/{}/{}.{}",
            self.workspace_id,
            self.id,
            self.format.as_str()
        )
    }

    pub fn is_open(&self) -> bool {
        matches!(self.status.as_str(), "queued" | "running")
    }

    /// Whether the file can be downloaded now.
    pub fn downloadable(&self) -> bool {
        self.status == "done" && self.object_key.is_some()
    }
}

struct Row {
    id: Uuid,
    workspace_id: Uuid,
    requested_by: Option<Uuid>,
    kind: String,
    filters: serde_json::Value,
    status: String,
    rows_done: i64,
    rows_total: Option<i64>,
    attempts: i32,
    size_bytes: Option<i64>,
    error: String,
    object_key: Option<String>,
    created_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
    expires_at: Option<DateTime<Utc>>,
}

impl From<Row> for Export {
    fn from(r: Row) -> Self {
        Self {
            id: r.id,
            workspace_id: r.workspace_id,
            requested_by: r.requested_by,
            format: Format::from_kind(&r.kind),
            filter: serde_json::from_value(r.filters).unwrap_or_default(),
            status: r.status,
            rows_done: r.rows_done,
            rows_total: r.rows_total,
            attempts: r.attempts,
            size_bytes: r.size_bytes,
            error: r.error,
            object_key: r.object_key,
            created_at: r.created_at,
            finished_at: r.finished_at,
            expires_at: r.expires_at,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("{MAX_OPEN} exports are already being made for this workspace: wait for one to finish.")]
    TooMany,
    #[error("Choose one of the workspace's devices.")]
    UnknownDevice,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// The job: which export to make.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExportJob {
    pub id: Uuid,
}

async fn push_job(conn: &mut PgConnection, id: Uuid, delay: Option<std::time::Duration>) -> sqlx::Result<()> {
    let body = serde_json::to_vec(&ExportJob { id }).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    let mut task = TaskBuilder::new(body);
    if let Some(delay) = delay {
        task = task.run_after(delay);
    }
    apalis_postgres::queries::push_tasks(conn, QUEUE, vec![task.build()])
        .await
        .map_err(|e| sqlx::Error::Protocol(e.to_string()))
}

/// Asks for an export of the workspace's messages: its row and its job, together.
pub async fn request(
    pool: &PgPool,
    ws: WorkspaceId,
    by: Option<UserId>,
    format: Format,
    filter: &MessageFilter,
) -> Result<Export, RequestError> {
    let mut tx = pool.begin().await?;
    // One request at a time per workspace, so the count below holds.
    sqlx::query!("SELECT id FROM workspaces WHERE id = $1 FOR UPDATE", ws.0)
        .fetch_one(&mut *tx)
        .await?;
    let open = sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM exports WHERE workspace_id = $1 AND status IN ('queued', 'running')"#,
        ws.0
    )
    .fetch_one(&mut *tx)
    .await?;
    if open >= MAX_OPEN {
        return Err(RequestError::TooMany);
    }
    if let Some(device) = filter.device {
        let known = sqlx::query_scalar!(
            r#"SELECT EXISTS (SELECT 1 FROM devices WHERE id = $1 AND workspace_id = $2) AS "known!""#,
            device,
            ws.0
        )
        .fetch_one(&mut *tx)
        .await?;
        if !known {
            return Err(RequestError::UnknownDevice);
        }
    }
    let id = Uuid::now_v7();
    let filters = serde_json::to_value(filter).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    let row = sqlx::query_as!(
        Row,
        "INSERT INTO exports (id, workspace_id, requested_by, kind, filters)
         VALUES ($1, $2, $3, $4, $5)
         RETURNING id, workspace_id, requested_by, kind, filters, status, rows_done, rows_total, attempts,
                   size_bytes, error, object_key, created_at, finished_at, expires_at",
        id,
        ws.0,
        by.map(|u| u.0),
        format.kind(),
        filters
    )
    .fetch_one(&mut *tx)
    .await?;
    push_job(&mut tx, id, None).await?;
    tx.commit().await?;
    Ok(row.into())
}

/// The workspace's export `id` (another workspace's is `None`).
pub async fn get(conn: &mut PgConnection, ws: WorkspaceId, id: Uuid) -> sqlx::Result<Option<Export>> {
    let row = sqlx::query_as!(
        Row,
        "SELECT id, workspace_id, requested_by, kind, filters, status, rows_done, rows_total, attempts,
                size_bytes, error, object_key, created_at, finished_at, expires_at
         FROM exports WHERE id = $1 AND workspace_id = $2",
        id,
        ws.0
    )
    .fetch_optional(conn)
    .await?;
    Ok(row.map(Into::into))
}

/// The workspace's newest exports.
pub async fn list(conn: &mut PgConnection, ws: WorkspaceId, limit: i64) -> sqlx::Result<Vec<Export>> {
    let rows = sqlx::query_as!(
        Row,
        "SELECT id, workspace_id, requested_by, kind, filters, status, rows_done, rows_total, attempts,
                size_bytes, error, object_key, created_at, finished_at, expires_at
         FROM exports WHERE workspace_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2",
        ws.0,
        limit
    )
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(Into::into).collect())
}

/// Takes the export for making it (again, when a worker died at it): `None` when it is
/// finished, failed, expired or gone. Counts the attempt and starts the progress over.
pub async fn claim(pool: &PgPool, id: Uuid) -> sqlx::Result<Option<Export>> {
    let row = sqlx::query_as!(
        Row,
        "UPDATE exports SET status = 'running', attempts = attempts + 1, started_at = now(), rows_done = 0
         WHERE id = $1 AND status IN ('queued', 'running')
         RETURNING id, workspace_id, requested_by, kind, filters, status, rows_done, rows_total, attempts,
                   size_bytes, error, object_key, created_at, finished_at, expires_at",
        id
    )
    .fetch_optional(pool)
    .await?;
    Ok(row.map(Into::into))
}

/// How many messages the export will hold.
pub async fn count(pool: &PgPool, e: &Export) -> sqlx::Result<i64> {
    let (start, end) = e.filter.bounds();
    let n = sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM messages
           WHERE workspace_id = $1
             AND created_at >= coalesce($2, '-infinity'::timestamptz) AND created_at < coalesce($3, 'infinity'::timestamptz)
             AND ($4::text IS NULL OR direction = $4) AND ($5::text IS NULL OR status = $5)
             AND ($6::uuid IS NULL OR device_id = $6)"#,
        e.workspace_id,
        start,
        end,
        e.filter.direction,
        e.filter.status,
        e.filter.device
    )
    .fetch_one(pool)
    .await?;
    sqlx::query!("UPDATE exports SET rows_total = $2 WHERE id = $1", e.id, n)
        .execute(pool)
        .await?;
    Ok(n)
}

/// Writes progress (rows written so far).
pub async fn progress(pool: &PgPool, id: Uuid, rows_done: i64) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE exports SET rows_done = $2 WHERE id = $1 AND status = 'running'",
        id,
        rows_done
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// Marks the export made: its object, its size, and until when it is kept.
pub async fn finish(pool: &PgPool, id: Uuid, key: &str, size: u64, keep_days: i64) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "UPDATE exports SET status = 'done', object_key = $2, size_bytes = $3, error = '', finished_at = now(),
                            expires_at = now() + make_interval(days => $4)
         WHERE id = $1 AND status = 'running'",
        id,
        key,
        i64::try_from(size).unwrap_or(i64::MAX),
        i32::try_from(keep_days).unwrap_or(7)
    )
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Gives up on the export with the reason shown on the page.
pub async fn fail(pool: &PgPool, id: Uuid, reason: &str) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE exports SET status = 'failed', error = $2, finished_at = now() WHERE id = $1 AND status = 'running'",
        id,
        reason
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// Puts the export back in the queue to be tried after `delay`, saying why on the page.
pub async fn retry_later(
    pool: &PgPool,
    id: Uuid,
    reason: &str,
    delay: std::time::Duration,
) -> sqlx::Result<()> {
    let mut tx = pool.begin().await?;
    let moved = sqlx::query!(
        "UPDATE exports SET status = 'queued', error = $2, rows_done = 0 WHERE id = $1 AND status = 'running'",
        id,
        reason
    )
    .execute(&mut *tx)
    .await?;
    if moved.rows_affected() == 1 {
        push_job(&mut tx, id, Some(delay)).await?;
    }
    tx.commit().await
}

/// The wait before try `attempt + 1` after a store failure: 30 s, 1, 2, 4 min…
pub fn backoff(attempt: i32) -> std::time::Duration {
    std::time::Duration::from_secs(30u64 << attempt.clamp(1, 8).saturating_sub(1))
}

/// Finished exports past their keeping time, to delete from the store (at most `limit`).
pub async fn expired(pool: &PgPool, limit: i64) -> sqlx::Result<Vec<(Uuid, String)>> {
    let rows = sqlx::query!(
        r#"SELECT id, object_key AS "key!" FROM exports
           WHERE status = 'done' AND expires_at <= now() AND object_key IS NOT NULL
           ORDER BY expires_at LIMIT $1"#,
        limit
    )
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|r| (r.id, r.key)).collect())
}

/// Marks an export whose file was deleted.
pub async fn mark_expired(pool: &PgPool, id: Uuid) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE exports SET status = 'expired', object_key = NULL WHERE id = $1 AND status = 'done'",
        id
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// One message as exported.
#[derive(Debug, Serialize)]
struct Line {
    id: Uuid,
    created_at: String,
    direction: String,
    from: String,
    to: String,
    body: String,
    status: String,
    segments: i32,
    encoding: String,
    device_id: String,
    device_name: String,
    batch_id: String,
    error_message: String,
    sent_at: String,
    delivered_at: String,
    received_at: String,
}

const CSV_HEADER: [&str; 16] = [
    "id",
    "created_at",
    "direction",
    "from",
    "to",
    "body",
    "status",
    "segments",
    "encoding",
    "device_id",
    "device_name",
    "batch_id",
    "error_message",
    "sent_at",
    "delivered_at",
    "received_at",
];

fn time(t: Option<DateTime<Utc>>) -> String {
    t.map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_default()
}

impl Line {
    fn push(&self, format: Format, out: &mut Vec<u8>) -> anyhow::Result<()> {
        match format {
            Format::Jsonl => {
                serde_json::to_writer(&mut *out, self)?;
                out.push(b'\n');
            }
            Format::Csv => {
                let id = self.id.to_string();
                let segments = self.segments.to_string();
                push_csv_record(
                    out,
                    &[
                        &id,
                        &self.created_at,
                        &self.direction,
                        &self.from,
                        &self.to,
                        &guard_formula(&self.body),
                        &self.status,
                        &segments,
                        &self.encoding,
                        &self.device_id,
                        &guard_formula(&self.device_name),
                        &self.batch_id,
                        &guard_formula(&self.error_message),
                        &self.sent_at,
                        &self.delivered_at,
                        &self.received_at,
                    ],
                );
            }
        }
        Ok(())
    }
}

/// Writes the export's messages, oldest first, to `out` a page at a time, calling
/// `on_page` with the rows written so far after each page. Returns how many were written.
pub async fn write_messages<W, F, Fut>(
    pool: &PgPool,
    e: &Export,
    out: &mut W,
    mut on_page: F,
) -> anyhow::Result<i64>
where
    W: tokio::io::AsyncWrite + Unpin,
    F: FnMut(i64) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    use tokio::io::AsyncWriteExt;
    let (start, end) = e.filter.bounds();
    let mut buf = Vec::with_capacity(1 << 20);
    if e.format == Format::Csv {
        // UTF-8 with a BOM so spreadsheets read it right.
        buf.extend_from_slice(b"\xEF\xBB\xBF");
        push_csv_record(&mut buf, &CSV_HEADER);
    }
    // Messages are younger than 1970.
    let mut after = (DateTime::<Utc>::UNIX_EPOCH, Uuid::nil());
    let mut written = 0i64;
    loop {
        let rows = sqlx::query!(
            r#"SELECT m.id, m.created_at, m.direction, m.from_number, m.recipient, m.body, m.body_sealed,
                      m.status, m.segments, m.encoding, m.device_id, d.name AS "device_name?", m.batch_id,
                      m.error_message, m.sent_at, m.delivered_at, m.received_at
               FROM messages m LEFT JOIN devices d ON d.id = m.device_id
               WHERE m.workspace_id = $1 AND (m.created_at, m.id) > ($2, $3)
                 AND m.created_at >= coalesce($4, '-infinity'::timestamptz)
                 AND m.created_at < coalesce($5, 'infinity'::timestamptz)
                 AND ($6::text IS NULL OR m.direction = $6) AND ($7::text IS NULL OR m.status = $7)
                 AND ($8::uuid IS NULL OR m.device_id = $8)
               ORDER BY m.created_at, m.id LIMIT $9"#,
            e.workspace_id,
            after.0,
            after.1,
            start,
            end,
            e.filter.direction,
            e.filter.status,
            e.filter.device,
            PAGE_ROWS
        )
        .fetch_all(pool)
        .await?;
        let Some(last) = rows.last() else { break };
        after = (last.created_at, last.id);
        let page = rows.len();
        for r in rows {
            let body = at_rest::open_text(Column::MessageBody, r.id, r.body, r.body_sealed.as_deref())?;
            let line = Line {
                id: r.id,
                created_at: time(Some(r.created_at)),
                direction: r.direction,
                from: r.from_number,
                to: r.recipient,
                body,
                status: r.status,
                segments: r.segments,
                encoding: r.encoding,
                device_id: r.device_id.map(|d| d.to_string()).unwrap_or_default(),
                device_name: r.device_name.unwrap_or_default(),
                batch_id: r.batch_id.map(|b| b.to_string()).unwrap_or_default(),
                error_message: r.error_message,
                sent_at: time(r.sent_at),
                delivered_at: time(r.delivered_at),
                received_at: time(r.received_at),
            };
            line.push(e.format, &mut buf)?;
        }
        out.write_all(&buf).await?;
        buf.clear();
        written += page as i64;
        on_page(written).await?;
        if (page as i64) < PAGE_ROWS {
            break;
        }
    }
    if !buf.is_empty() {
        out.write_all(&buf).await?;
    }
    out.flush().await?;
    Ok(written)
}

/// The workspace's newest `limit` messages in the shape of Vendel's `GET /api/user/export`
/// (`to`, `from_number`, `message_type`…), newest first.
pub async fn vendel_messages(
    pool: &PgPool,
    ws: WorkspaceId,
    limit: i64,
) -> anyhow::Result<Vec<serde_json::Value>> {
    let rows = sqlx::query!(
        "SELECT id, created_at, direction, from_number, recipient, body, body_sealed, status, batch_id,
                error_message, sent_at, delivered_at
         FROM messages WHERE workspace_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2",
        ws.0,
        limit
    )
    .fetch_all(pool)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let body = at_rest::open_text(Column::MessageBody, r.id, r.body, r.body_sealed.as_deref())?;
        out.push(serde_json::json!({
            "id": r.id, "created": time(Some(r.created_at)), "to": r.recipient,
            "from_number": r.from_number, "body": body, "status": r.status,
            "message_type": r.direction, "batch_id": r.batch_id.map(|b| b.to_string()).unwrap_or_default(),
            "error_message": r.error_message, "sent_at": time(r.sent_at), "delivered_at": time(r.delivered_at),
        }));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_read_forms_and_refuse_bad_values() {
        let f = MessageFilter::parse("2026-01-01", "2026-01-31", "outgoing", "", "").unwrap();
        assert_eq!(f.direction.as_deref(), Some("outgoing"));
        assert_eq!(f.describe(), "2026-01-01 to 2026-01-31, outgoing");
        let (start, end) = f.bounds();
        assert_eq!(start.unwrap().to_rfc3339(), "2026-01-01T00:00:00+00:00");
        assert_eq!(end.unwrap().to_rfc3339(), "2026-02-01T00:00:00+00:00");
        assert_eq!(
            MessageFilter::parse("", "", "all", "all", "").unwrap(),
            MessageFilter::default()
        );
        let errors = MessageFilter::parse("31/01/2026", "2025-01-01", "sideways", "lost", "x").unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field).collect();
        assert_eq!(fields, ["since", "direction", "status", "device"]);
        let errors = MessageFilter::parse("2026-02-01", "2026-01-01", "", "", "").unwrap_err();
        assert_eq!(errors[0].field, "until");
    }

    #[test]
    fn backoff_doubles_from_thirty_seconds() {
        assert_eq!(backoff(1).as_secs(), 30);
        assert_eq!(backoff(2).as_secs(), 60);
        assert_eq!(backoff(4).as_secs(), 240);
        assert_eq!(backoff(100).as_secs(), 30 << 7);
    }
}
