//! SQL for messages and their events.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};

use super::model::{BatchId, Message, MessageEvent, MessageFilter, MessageId, StoredMessage};
use crate::device::DeviceId;
use crate::workspace::WorkspaceId;

/// Records one event per message.
pub async fn record_events(
    conn: &mut PgConnection,
    ids: &[MessageId],
    status: &str,
    detail: &str,
    device: Option<DeviceId>,
) -> sqlx::Result<()> {
    let ids: Vec<uuid::Uuid> = ids.iter().map(|i| i.0).collect();
    sqlx::query!(
        "INSERT INTO message_events (message_id, status, detail, device_id) SELECT unnest($1::uuid[]), $2, $3, $4",
        &ids,
        status,
        detail,
        device as Option<DeviceId>
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Puts a device's unfinished messages back in the queue (`which`: "assigned" for only
/// unclaimed ones, "all" for claimed ones too), so they are dispatched elsewhere.
pub async fn requeue_device(
    conn: &mut PgConnection,
    device: DeviceId,
    which: &str,
    why: &str,
) -> sqlx::Result<()> {
    let rows = sqlx::query!(
        r#"UPDATE messages SET status = 'pending', device_id = NULL, prefer_device_id = NULL, avoid_device_id = $1,
                  lease_expires_at = NULL, next_attempt_at = now(), updated_at = now(),
                  requested_device_id = CASE WHEN requested_device_id = $1 THEN NULL ELSE requested_device_id END
           WHERE device_id = $1 AND (status = 'assigned' OR ($2 = 'all' AND status = 'sending'))
           RETURNING id AS "id: MessageId", workspace_id AS "workspace_id: WorkspaceId""#,
        device as DeviceId,
        which
    )
    .fetch_all(&mut *conn)
    .await?;
    let ids: Vec<MessageId> = rows.iter().map(|r| r.id).collect();
    record_events(conn, &ids, "pending", why, Some(device)).await?;
    let mut workspaces: Vec<WorkspaceId> = rows.iter().map(|r| r.workspace_id).collect();
    workspaces.sort_by_key(|u| u.0);
    workspaces.dedup();
    for workspace in workspaces {
        crate::bus::wake_dispatch(conn, workspace).await?;
    }
    Ok(())
}

/// The owner's message.
pub async fn find(pool: &PgPool, workspace: WorkspaceId, id: MessageId) -> sqlx::Result<Option<Message>> {
    sqlx::query_as!(
        StoredMessage,
        r#"SELECT id AS "id: MessageId", workspace_id AS "workspace_id: WorkspaceId", batch_id AS "batch_id: BatchId", direction,
                  recipient, from_number, body, body_sealed, encoding, segments, status, error_message,
                  coalesce(device_id, requested_device_id) AS "device_id: DeviceId", attempts, sent_at, delivered_at, received_at, created_at, updated_at
           FROM messages WHERE id = $1 AND workspace_id = $2"#,
        id as MessageId,
        workspace as WorkspaceId
    )
    .fetch_optional(pool)
    .await?
    .map(StoredMessage::open)
    .transpose()
}

/// One page of a batch's messages, newest first.
pub async fn batch_page(
    pool: &PgPool,
    workspace: WorkspaceId,
    batch: BatchId,
    limit: i64,
    offset: i64,
) -> sqlx::Result<Vec<Message>> {
    sqlx::query_as!(
        StoredMessage,
        r#"SELECT id AS "id: MessageId", workspace_id AS "workspace_id: WorkspaceId", batch_id AS "batch_id: BatchId", direction,
                  recipient, from_number, body, body_sealed, encoding, segments, status, error_message,
                  coalesce(device_id, requested_device_id) AS "device_id: DeviceId", attempts, sent_at, delivered_at, received_at, created_at, updated_at
           FROM messages WHERE batch_id = $1 AND workspace_id = $2 ORDER BY created_at DESC, id DESC LIMIT $3 OFFSET $4"#,
        batch as BatchId,
        workspace as WorkspaceId,
        limit,
        offset
    )
    .fetch_all(pool)
    .await?
    .into_iter()
    .map(StoredMessage::open)
    .collect()
}

/// How many of a batch's messages are in each status, over the whole batch (sorted by
/// status). Empty when the batch is unknown or another workspace's.
pub async fn batch_counts(
    pool: &PgPool,
    workspace: WorkspaceId,
    batch: BatchId,
) -> sqlx::Result<Vec<(String, i64)>> {
    let rows = sqlx::query!(
        r#"SELECT status, count(*) AS "n!" FROM messages WHERE batch_id = $1 AND workspace_id = $2
           GROUP BY status ORDER BY status"#,
        batch as BatchId,
        workspace as WorkspaceId
    )
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|r| (r.status, r.n)).collect())
}

pub async fn events(pool: &PgPool, id: MessageId) -> sqlx::Result<Vec<MessageEvent>> {
    sqlx::query_as!(
        MessageEvent,
        r#"SELECT status, detail, device_id AS "device_id: DeviceId", created_at
           FROM message_events WHERE message_id = $1 ORDER BY id"#,
        id as MessageId
    )
    .fetch_all(pool)
    .await
}

/// One page of the workspace's messages (newest first) and the total under the same filters.
pub async fn page(
    pool: &PgPool,
    workspace: WorkspaceId,
    f: &MessageFilter,
    limit: i64,
    offset: i64,
) -> sqlx::Result<(Vec<Message>, i64)> {
    let items = sqlx::query_as!(
        StoredMessage,
        r#"SELECT id AS "id: MessageId", workspace_id AS "workspace_id: WorkspaceId", batch_id AS "batch_id: BatchId", direction,
                  recipient, from_number, body, body_sealed, encoding, segments, status, error_message,
                  coalesce(device_id, requested_device_id) AS "device_id: DeviceId", attempts, sent_at, delivered_at, received_at, created_at, updated_at
           FROM messages
           WHERE workspace_id = $1 AND ($2::text IS NULL OR status = $2) AND ($3::text IS NULL OR direction = $3)
             AND ($4::uuid IS NULL OR coalesce(device_id, requested_device_id) = $4) AND ($5::uuid IS NULL OR batch_id = $5)
             AND ($6::text IS NULL OR recipient = $6)
             AND ($7::timestamptz IS NULL OR created_at >= $7) AND ($8::timestamptz IS NULL OR created_at <= $8)
           ORDER BY created_at DESC, id DESC LIMIT $9 OFFSET $10"#,
        workspace as WorkspaceId,
        f.status,
        f.direction,
        f.device_id.map(|d| d.0),
        f.batch_id.map(|b| b.0),
        f.recipient,
        f.from,
        f.to,
        limit,
        offset
    )
    .fetch_all(pool)
    .await?
    .into_iter()
    .map(StoredMessage::open)
    .collect::<sqlx::Result<Vec<_>>>()?;
    let total = sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM messages
           WHERE workspace_id = $1 AND ($2::text IS NULL OR status = $2) AND ($3::text IS NULL OR direction = $3)
             AND ($4::uuid IS NULL OR coalesce(device_id, requested_device_id) = $4) AND ($5::uuid IS NULL OR batch_id = $5)
             AND ($6::text IS NULL OR recipient = $6)
             AND ($7::timestamptz IS NULL OR created_at >= $7) AND ($8::timestamptz IS NULL OR created_at <= $8)"#,
        workspace as WorkspaceId,
        f.status,
        f.direction,
        f.device_id.map(|d| d.0),
        f.batch_id.map(|b| b.0),
        f.recipient,
        f.from,
        f.to
    )
    .fetch_one(pool)
    .await?;
    Ok((items, total))
}

/// Keyset page for the dashboard: messages older than `before` (created_at, id), newest
/// first, optionally only one status, one counterpart number (recipient or sender) or one
/// device.
pub async fn page_before(
    pool: &PgPool,
    workspace: WorkspaceId,
    direction: &str,
    filter: &PageFilter,
    before: Option<(DateTime<Utc>, MessageId)>,
    limit: i64,
) -> sqlx::Result<Vec<Message>> {
    let (before_at, before_id) = match before {
        Some((at, id)) => (Some(at), Some(id.0)),
        None => (None, None),
    };
    sqlx::query_as!(
        StoredMessage,
        r#"SELECT id AS "id: MessageId", workspace_id AS "workspace_id: WorkspaceId", batch_id AS "batch_id: BatchId", direction,
                  recipient, from_number, body, body_sealed, encoding, segments, status, error_message,
                  coalesce(device_id, requested_device_id) AS "device_id: DeviceId", attempts, sent_at, delivered_at,
                  received_at, created_at, updated_at
           FROM messages
           WHERE workspace_id = $1 AND direction = $2 AND ($3::text IS NULL OR status = $3)
             AND ($4::timestamptz IS NULL OR (created_at, id) < ($4, $5::uuid))
             AND ($7::text IS NULL OR (CASE WHEN direction = 'incoming' THEN from_number ELSE recipient END) = $7)
             AND ($8::uuid IS NULL OR coalesce(device_id, requested_device_id) = $8)
           ORDER BY created_at DESC, id DESC LIMIT $6"#,
        workspace as WorkspaceId,
        direction,
        filter.status.as_deref(),
        before_at,
        before_id,
        limit,
        filter.party.as_deref(),
        filter.device.map(|d| d.0)
    )
    .fetch_all(pool)
    .await?
    .into_iter()
    .map(StoredMessage::open)
    .collect()
}

/// Messages deleted per statement when a conversation goes, so no statement holds many
/// row locks for long.
const DELETE_BATCH: i64 = 5_000;

/// A number as the audit trail keeps it: only its last four digits, so the record of an
/// erasure does not keep what was erased.
pub fn masked_number(number: &str) -> String {
    let digits: Vec<char> = number.chars().filter(char::is_ascii_digit).collect();
    let tail: String = digits[digits.len().saturating_sub(4)..].iter().collect();
    format!("…{tail}")
}

/// Deletes the workspace's conversation with `number`: every message sent to it or
/// received from it, in batches, and writes `actor`'s audit entry with the last batch.
/// Returns how many messages went. (The month's usage is counted apart and stays.)
pub async fn delete_conversation(
    pool: &PgPool,
    workspace: WorkspaceId,
    number: &str,
    actor: crate::workspace::audit::Actor,
) -> sqlx::Result<u64> {
    let mut total = 0;
    loop {
        let mut tx = pool.begin().await?;
        let n = sqlx::query!(
            "DELETE FROM messages WHERE id IN (
                 SELECT id FROM messages
                 WHERE workspace_id = $1
                   AND (CASE WHEN direction = 'incoming' THEN from_number ELSE recipient END) = $2
                 LIMIT $3 FOR UPDATE)",
            workspace as WorkspaceId,
            number,
            DELETE_BATCH
        )
        .execute(&mut *tx)
        .await?
        .rows_affected();
        total += n;
        if n < DELETE_BATCH as u64 {
            crate::workspace::audit::record(
                &mut *tx,
                workspace,
                actor,
                crate::workspace::audit::kind::CONVERSATION_DELETED,
                &masked_number(number),
                serde_json::json!({ "messages": total }),
            )
            .await?;
            tx.commit().await?;
            return Ok(total);
        }
        tx.commit().await?;
    }
}

/// Filters of the dashboard's message list.
#[derive(Debug, Clone, Default)]
pub struct PageFilter {
    pub status: Option<String>,
    pub party: Option<String>,
    pub device: Option<DeviceId>,
}

/// Today's figures for the dashboard (UTC day).
#[derive(Debug, Clone, Default)]
pub struct Stats {
    pub sent_today: i64,
    pub delivered_today: i64,
    pub failed_today: i64,
    pub pending: i64,
    pub received_today: i64,
}

impl Stats {
    /// Delivered as a share of what was sent today, in whole percent (None before any send).
    pub fn delivered_percent(&self) -> Option<i64> {
        (self.sent_today > 0).then(|| (self.delivered_today * 100) / self.sent_today)
    }
}

pub async fn stats(pool: &PgPool, workspace: WorkspaceId) -> sqlx::Result<Stats> {
    let r = sqlx::query!(
        r#"SELECT
             count(*) FILTER (WHERE direction = 'outgoing' AND sent_at >= date_trunc('day', now())) AS "sent!",
             count(*) FILTER (WHERE status = 'delivered' AND delivered_at >= date_trunc('day', now())) AS "delivered!",
             count(*) FILTER (WHERE status IN ('failed', 'expired') AND updated_at >= date_trunc('day', now())) AS "failed!",
             count(*) FILTER (WHERE status IN ('pending', 'assigned', 'sending')) AS "pending!",
             count(*) FILTER (WHERE direction = 'incoming' AND created_at >= date_trunc('day', now())) AS "received!"
           FROM messages
           WHERE workspace_id = $1 AND (created_at >= date_trunc('day', now()) - interval '1 day'
                                   OR status IN ('pending', 'assigned', 'sending'))"#,
        workspace as WorkspaceId
    )
    .fetch_one(pool)
    .await?;
    Ok(Stats {
        sent_today: r.sent,
        delivered_today: r.delivered,
        failed_today: r.failed,
        pending: r.pending,
        received_today: r.received,
    })
}

/// Sent and delivered per UTC day for the last `days` days, oldest first (zeros included).
pub async fn daily(
    pool: &PgPool,
    workspace: WorkspaceId,
    days: i32,
) -> sqlx::Result<Vec<(chrono::NaiveDate, i64, i64)>> {
    let rows = sqlx::query!(
        r#"SELECT d::date AS "day!",
                  (SELECT count(*) FROM messages m WHERE m.workspace_id = $1 AND m.direction = 'outgoing'
                     AND m.sent_at >= d AND m.sent_at < d + interval '1 day') AS "sent!",
                  (SELECT count(*) FROM messages m WHERE m.workspace_id = $1 AND m.status = 'delivered'
                     AND m.delivered_at >= d AND m.delivered_at < d + interval '1 day') AS "delivered!"
           FROM generate_series(date_trunc('day', now()) - make_interval(days => $2 - 1), date_trunc('day', now()), interval '1 day') d"#,
        workspace as WorkspaceId,
        days
    )
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|r| (r.day, r.sent, r.delivered)).collect())
}
