//! The delivery log as an endpoint's owner reads it: deliveries newest first, a page at a
//! time, and one delivery with its body and every attempt. Every query is scoped by the
//! owner, so another workspace's ids are "not found".

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use super::endpoint::EndpointError;
use crate::workspace::WorkspaceId;

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    Pending,
    Delivering,
    Succeeded,
    Failed,
    Dropped,
    /// Recorded while Ender had the endpoint disabled; sent by "re-enable and replay".
    Held,
}

impl DeliveryStatus {
    pub const ALL: [Self; 6] = [
        Self::Pending,
        Self::Delivering,
        Self::Succeeded,
        Self::Failed,
        Self::Dropped,
        Self::Held,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivering => "delivering",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Dropped => "dropped",
            Self::Held => "held",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw)
    }
}

/// One event for one endpoint, without its body.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub id: Uuid,
    pub endpoint_id: Uuid,
    pub event: String,
    pub message_id: String,
    pub status: String,
    pub attempts: i32,
    /// When a pending delivery goes next (meaningless in the other states).
    pub next_attempt_at: DateTime<Utc>,
    pub last_status: Option<i32>,
    pub last_error: String,
    pub delivered_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl Delivery {
    pub fn is_pending(&self) -> bool {
        self.status == DeliveryStatus::Pending.as_str()
    }
}

/// One HTTP attempt, as recorded (the response body is truncated when stored).
#[derive(Debug, Clone)]
pub struct AttemptLog {
    pub id: i64,
    pub request_headers: serde_json::Value,
    pub response_status: Option<i32>,
    pub response_body: String,
    pub duration_ms: i32,
    pub error: String,
    pub created_at: DateTime<Utc>,
}

/// A delivery with the exact bytes it sends and its attempts, oldest first.
#[derive(Debug, Clone)]
pub struct DeliveryDetail {
    pub delivery: Delivery,
    pub body: Vec<u8>,
    pub attempts: Vec<AttemptLog>,
}

/// Which deliveries of an endpoint to list.
#[derive(Debug, Clone, Copy)]
pub struct PageQuery {
    pub status: Option<DeliveryStatus>,
    /// Only deliveries older than this one (the last id of the previous page).
    pub before: Option<Uuid>,
    pub limit: i64,
}

/// Deliveries of the owner's endpoint, newest first. A `before` id that is not one of the
/// endpoint's deliveries gives an empty page.
pub async fn page(
    pool: &PgPool,
    workspace: WorkspaceId,
    endpoint: Uuid,
    q: PageQuery,
) -> Result<Vec<Delivery>, EndpointError> {
    super::endpoint::find(pool, workspace, endpoint).await?;
    Ok(sqlx::query_as!(
        Delivery,
        r#"SELECT d.id, d.endpoint_id, d.event, d.message_id, d.status, d.attempts, d.next_attempt_at,
                  d.last_status, d.last_error, d.delivered_at, d.created_at
           FROM webhook_deliveries d
           WHERE d.endpoint_id = $1 AND d.workspace_id = $2
             AND ($3::text IS NULL OR d.status = $3)
             AND ($4::uuid IS NULL OR (d.created_at, d.id) < (SELECT c.created_at, c.id FROM webhook_deliveries c
                                                              WHERE c.id = $4 AND c.endpoint_id = $1))
           ORDER BY d.created_at DESC, d.id DESC
           LIMIT $5"#,
        endpoint,
        workspace as WorkspaceId,
        q.status.map(DeliveryStatus::as_str),
        q.before,
        q.limit.clamp(1, 500)
    )
    .fetch_all(pool)
    .await?)
}

/// One delivery of the owner's endpoint, with its body and all its attempts.
pub async fn find(
    pool: &PgPool,
    workspace: WorkspaceId,
    endpoint: Uuid,
    delivery: Uuid,
) -> Result<DeliveryDetail, EndpointError> {
    let row = sqlx::query!(
        r#"SELECT id, endpoint_id, event, message_id, status, attempts, next_attempt_at, last_status, last_error,
                  delivered_at, created_at, body
           FROM webhook_deliveries WHERE id = $1 AND endpoint_id = $2 AND workspace_id = $3"#,
        delivery,
        endpoint,
        workspace as WorkspaceId
    )
    .fetch_optional(pool)
    .await?
    .ok_or(EndpointError::NotFound)?;
    let attempts = sqlx::query_as!(
        AttemptLog,
        "SELECT id, request_headers, response_status, response_body, duration_ms, error, created_at
         FROM webhook_attempts WHERE delivery_id = $1 ORDER BY id",
        delivery
    )
    .fetch_all(pool)
    .await?;
    Ok(DeliveryDetail {
        delivery: Delivery {
            id: row.id,
            endpoint_id: row.endpoint_id,
            event: row.event,
            message_id: row.message_id,
            status: row.status,
            attempts: row.attempts,
            next_attempt_at: row.next_attempt_at,
            last_status: row.last_status,
            last_error: row.last_error,
            delivered_at: row.delivered_at,
            created_at: row.created_at,
        },
        body: crate::secret::at_rest::open_payload(row.id, row.body)?,
        attempts,
    })
}

/// Attempts that succeeded and failed over the last 24 hours.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DayStats {
    pub succeeded: i64,
    pub failed: i64,
}

impl DayStats {
    /// The endpoint's figures among the rows of [`super::endpoint::day_stats`].
    pub fn of(rows: &[(Uuid, i64, i64)], endpoint: Uuid) -> Self {
        rows.iter()
            .find(|r| r.0 == endpoint)
            .map(|r| Self {
                succeeded: r.1,
                failed: r.2,
            })
            .unwrap_or_default()
    }

    /// Share of attempts that succeeded, 0..=1; `None` without any attempt.
    pub fn success_rate(self) -> Option<f64> {
        let total = self.succeeded + self.failed;
        (total > 0).then(|| self.succeeded as f64 / total as f64)
    }
}
