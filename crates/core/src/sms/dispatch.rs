//! Moving messages between people, devices and time: choosing a device for each pending
//! message, device claims (leases), status reports, incoming messages, and the watchdog
//! that resolves whatever waits past its deadline.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use super::body::SmsBody;
use super::model::{MessageId, Status};
use super::repo::record_events;
use crate::bus::{self, BusEvent};
use crate::config::SmsConfig;
use crate::device::{Device, DeviceId};
use crate::secret::at_rest::{self, Column};
use crate::webhook::endpoint as webhook;
use crate::webhook::{Event, Payload};
use crate::workspace::WorkspaceId;

/// Messages given to one device by a dispatch pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    pub device_id: DeviceId,
    pub messages: Vec<MessageId>,
}

struct Candidate {
    id: DeviceId,
    capacity: i64,
}

/// Assigns `workspace`'s due pending messages to reachable, enabled devices with pacing room:
/// the requested device if any, else the device that held an expired lease, else the next
/// device in the workspace's rotation (skipping the one that just failed when another can take
/// it). Passes for one workspace run one at a time; messages are locked with SKIP LOCKED.
pub async fn dispatch_workspace(
    pool: &PgPool,
    cfg: &SmsConfig,
    workspace: WorkspaceId,
) -> sqlx::Result<Vec<Assignment>> {
    // Without a reachable device, or with sending paused, there is nothing to do: skip the
    // locks (and the commit).
    let reachable = sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM devices d WHERE d.workspace_id = $1 AND d.enabled
             AND (d.stream_until > now()
                  OR (coalesce(d.fcm_token, '') <> '' AND d.last_seen_at > now() - make_interval(secs => $2))
                  OR d.last_seen_at > now() - interval '90 seconds'))
             -- a workspace whose sending an administrator paused keeps its queue waiting
             AND NOT EXISTS (SELECT 1 FROM workspaces w WHERE w.id = $1 AND w.sending_paused_at IS NOT NULL) AS "e!""#,
        workspace as WorkspaceId,
        cfg.device_seen_window_secs as f64
    )
    .fetch_one(pool)
    .await?;
    if !reachable {
        return Ok(Vec::new());
    }
    let mut tx = pool.begin().await?;
    sqlx::query!(
        "INSERT INTO dispatch_rotation (workspace_id) VALUES ($1) ON CONFLICT DO NOTHING",
        workspace as WorkspaceId
    )
    .execute(&mut *tx)
    .await?;
    let last = sqlx::query_scalar!(
        r#"SELECT last_device_id AS "d: DeviceId" FROM dispatch_rotation WHERE workspace_id = $1 FOR UPDATE"#,
        workspace as WorkspaceId
    )
    .fetch_one(&mut *tx)
    .await?;
    let mut devices: Vec<Candidate> = sqlx::query!(
        r#"SELECT d.id AS "id: DeviceId",
                  least(d.per_minute_limit - (SELECT count(*) FROM messages m WHERE m.device_id = d.id AND m.assigned_at > now() - interval '1 minute'),
                        d.per_day_limit - (SELECT count(*) FROM messages m WHERE m.device_id = d.id AND m.assigned_at > now() - interval '1 day'))
                  AS "capacity!"
           FROM devices d
           WHERE d.workspace_id = $1 AND d.enabled
             AND (d.stream_until > now()
                  OR (coalesce(d.fcm_token, '') <> '' AND d.last_seen_at > now() - make_interval(secs => $2))
                  OR d.last_seen_at > now() - interval '90 seconds')
           ORDER BY d.id"#,
        workspace as WorkspaceId,
        cfg.device_seen_window_secs as f64
    )
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .map(|r| Candidate {
        id: r.id,
        capacity: r.capacity,
    })
    .collect();
    if devices.is_empty() {
        tx.commit().await?;
        return Ok(Vec::new());
    }
    let pending = sqlx::query!(
        r#"SELECT id AS "id: MessageId", requested_device_id AS "requested: DeviceId",
                  prefer_device_id AS "prefer: DeviceId", avoid_device_id AS "avoid: DeviceId"
           FROM messages
           WHERE workspace_id = $1 AND status = 'pending' AND next_attempt_at <= now()
             AND (valid_until IS NULL OR valid_until > now())
           ORDER BY next_attempt_at, id
           LIMIT 1000
           FOR UPDATE SKIP LOCKED"#,
        workspace as WorkspaceId
    )
    .fetch_all(&mut *tx)
    .await?;

    let mut rotation_at = last.and_then(|l| devices.iter().position(|d| d.id == l));
    let mut chosen: HashMap<DeviceId, Vec<MessageId>> = HashMap::new();
    for m in pending {
        // A lease re-offer is the same SMS going back to the same device: it does not
        // count against pacing again.
        if let Some(i) = m.prefer.and_then(|p| devices.iter().position(|d| d.id == p)) {
            chosen.entry(devices[i].id).or_default().push(m.id);
            continue;
        }
        let pick = if let Some(req) = m.requested {
            devices.iter().position(|d| d.id == req && d.capacity > 0)
        } else {
            let n = devices.len();
            let start = rotation_at.map_or(0, |i| i + 1);
            let order = (0..n).map(|k| (start + k) % n);
            let with_room: Vec<usize> = order.filter(|&i| devices[i].capacity > 0).collect();
            let i = with_room
                .iter()
                .copied()
                .find(|&i| Some(devices[i].id) != m.avoid)
                .or_else(|| with_room.first().copied());
            if i.is_some() {
                rotation_at = i;
            }
            i
        };
        if let Some(i) = pick {
            devices[i].capacity -= 1;
            chosen.entry(devices[i].id).or_default().push(m.id);
        }
    }
    let mut assignments: Vec<Assignment> = chosen
        .into_iter()
        .map(|(device_id, messages)| Assignment { device_id, messages })
        .collect();
    assignments.sort_by_key(|a| a.device_id.0);
    for a in &assignments {
        let ids: Vec<Uuid> = a.messages.iter().map(|m| m.0).collect();
        sqlx::query!(
            "UPDATE messages SET status = 'assigned', device_id = $2, assigned_at = now(),
                    lease_expires_at = now() + make_interval(secs => $3), prefer_device_id = NULL, updated_at = now()
             WHERE id = ANY($1)",
            &ids,
            a.device_id as DeviceId,
            cfg.claim_timeout_secs as f64
        )
        .execute(&mut *tx)
        .await?;
        record_events(&mut tx, &a.messages, "assigned", "", Some(a.device_id)).await?;
        bus::publish(
            &mut tx,
            &BusEvent::Assigned {
                workspace_id: workspace,
                device_id: a.device_id,
            },
        )
        .await?;
    }
    if let Some(i) = rotation_at {
        sqlx::query!(
            "UPDATE dispatch_rotation SET last_device_id = $2 WHERE workspace_id = $1",
            workspace as WorkspaceId,
            devices[i].id as DeviceId
        )
        .execute(&mut *tx)
        .await?;
    }
    if !assignments.is_empty() {
        bus::publish(
            &mut tx,
            &BusEvent::Messages {
                workspace_id: workspace,
            },
        )
        .await?;
    }
    tx.commit().await?;
    Ok(assignments)
}

/// A message handed to a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    pub id: MessageId,
    pub recipient: String,
    pub body: String,
}

impl Claimed {
    fn open(id: MessageId, recipient: String, body: String, sealed: Option<Vec<u8>>) -> sqlx::Result<Self> {
        Ok(Self {
            body: message_body(id, body, sealed)?,
            id,
            recipient,
        })
    }
}

/// A message's body from its row (sealed, or plaintext from before sealing).
pub(crate) fn message_body(id: MessageId, body: String, sealed: Option<Vec<u8>>) -> sqlx::Result<String> {
    at_rest::open_text(Column::MessageBody, id.0, body, sealed.as_deref())
}

/// The device takes up to `cfg.claim_batch` of its assigned messages, oldest first: each
/// moves to `sending` with a lease. Unreported ones come back after the lease.
pub async fn claim(pool: &PgPool, cfg: &SmsConfig, device: &Device) -> sqlx::Result<Vec<Claimed>> {
    let mut tx = pool.begin().await?;
    let mut rows = sqlx::query!(
        r#"UPDATE messages m SET status = 'sending', attempts = m.attempts + 1,
                  lease_expires_at = now() + make_interval(secs => $3), updated_at = now()
           FROM (SELECT id FROM messages WHERE device_id = $1 AND status = 'assigned'
                 ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED) c
           WHERE m.id = c.id
           RETURNING m.id AS "id: MessageId", m.recipient, m.body, m.body_sealed"#,
        device.id as DeviceId,
        cfg.claim_batch,
        cfg.lease_secs as f64
    )
    .fetch_all(&mut *tx)
    .await?;
    rows.sort_by_key(|r| r.id);
    let ids: Vec<MessageId> = rows.iter().map(|r| r.id).collect();
    if !ids.is_empty() {
        record_events(
            &mut tx,
            &ids,
            "sending",
            "Claimed by the device.",
            Some(device.id),
        )
        .await?;
        bus::publish(
            &mut tx,
            &BusEvent::Messages {
                workspace_id: device.workspace_id,
            },
        )
        .await?;
    }
    tx.commit().await?;
    rows.into_iter()
        .map(|r| Claimed::open(r.id, r.recipient, r.body, r.body_sealed))
        .collect()
}

/// Messages a device holds under a lease, for streams that push them again on reconnect.
pub async fn sending_for_device(pool: &PgPool, device: DeviceId) -> sqlx::Result<Vec<Claimed>> {
    sqlx::query!(
        r#"SELECT id AS "id: MessageId", recipient, body, body_sealed FROM messages
           WHERE device_id = $1 AND status = 'sending' ORDER BY id LIMIT 500"#,
        device as DeviceId
    )
    .fetch_all(pool)
    .await?
    .into_iter()
    .map(|r| Claimed::open(r.id, r.recipient, r.body, r.body_sealed))
    .collect()
}

/// What a device can report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Report {
    Sent,
    Delivered,
    Failed,
}

impl Report {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "sent" => Some(Self::Sent),
            "delivered" => Some(Self::Delivered),
            "failed" => Some(Self::Failed),
            _ => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("Message not found: {0}.")]
    NotFound(String),
    #[error("Message does not belong to this device.")]
    NotThisDevice,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Errors after which trying again cannot help (the number or the content is refused).
pub fn is_permanent_failure(error: &str) -> bool {
    let e = error.to_ascii_lowercase();
    [
        "invalid",
        "blocked",
        "not allowed",
        "never_allowed",
        "barred",
        "unknown subscriber",
        "no such number",
    ]
    .iter()
    .any(|k| e.contains(k))
}

/// Applies a device's report. Idempotent and monotonic: a repeat, or a report that would
/// move a message backwards (a late `sent` after `delivered`), changes nothing. A device
/// may report on any message it was ever given (a late report after failover counts).
pub async fn report(
    pool: &PgPool,
    cfg: &SmsConfig,
    device: &Device,
    message_id: &str,
    report: Report,
    error: &str,
) -> Result<Status, ReportError> {
    let not_found = || ReportError::NotFound(message_id.to_owned());
    let id: MessageId = message_id.parse().map_err(|_| not_found())?;
    let mut tx = pool.begin().await?;
    let m = sqlx::query!(
        r#"SELECT workspace_id AS "workspace_id: WorkspaceId", status, attempts, device_id AS "device_id: DeviceId"
           FROM messages WHERE id = $1 AND direction = 'outgoing' FOR UPDATE"#,
        id as MessageId
    )
    .fetch_optional(&mut *tx)
    .await?
    .filter(|m| m.workspace_id == device.workspace_id)
    .ok_or_else(not_found)?;
    if m.device_id != Some(device.id) {
        let was_given = sqlx::query_scalar!(
            r#"SELECT EXISTS (SELECT 1 FROM message_events WHERE message_id = $1 AND device_id = $2) AS "e!""#,
            id as MessageId,
            device.id as DeviceId
        )
        .fetch_one(&mut *tx)
        .await?;
        if !was_given {
            return Err(ReportError::NotThisDevice);
        }
    }
    let current = Status::parse(&m.status).unwrap_or(Status::Pending);
    let error = error.trim();
    let open = matches!(current, Status::Pending | Status::Assigned | Status::Sending);
    let next = match report {
        Report::Sent if open => Some((Status::Sent, String::new())),
        Report::Delivered if open || current == Status::Sent => Some((Status::Delivered, String::new())),
        Report::Failed if current == Status::Sent => {
            Some((Status::Failed, fallback(error, "Delivery failed.")))
        }
        Report::Failed if open => {
            let reason = fallback(error, "The device could not send the message.");
            let permanent = is_permanent_failure(&reason);
            match cfg.backoff_after(m.attempts.max(1)) {
                Some(wait) if !permanent && m.attempts < cfg.max_attempts() => {
                    sqlx::query!(
                        "UPDATE messages SET status = 'pending', error_message = $2, avoid_device_id = $3,
                                prefer_device_id = NULL, lease_expires_at = NULL,
                                next_attempt_at = now() + make_interval(secs => $4), updated_at = now()
                         WHERE id = $1",
                        id as MessageId,
                        reason,
                        device.id as DeviceId,
                        wait as f64
                    )
                    .execute(&mut *tx)
                    .await?;
                    record_events(
                        &mut tx,
                        &[id],
                        "pending",
                        &format!("Failed ({reason}); retry in {wait} s."),
                        Some(device.id),
                    )
                    .await?;
                    bus::publish(
                        &mut tx,
                        &BusEvent::Messages {
                            workspace_id: m.workspace_id,
                        },
                    )
                    .await?;
                    tx.commit().await?;
                    return Ok(Status::Pending);
                }
                _ => Some((Status::Failed, reason)),
            }
        }
        _ => None,
    };
    let Some((status, reason)) = next else {
        tx.commit().await?;
        return Ok(current);
    };
    let row = sqlx::query!(
        "UPDATE messages SET status = $2, error_message = $3, device_id = $4, lease_expires_at = NULL,
                sent_at = CASE WHEN $2 IN ('sent', 'delivered') THEN coalesce(sent_at, now()) ELSE sent_at END,
                delivered_at = CASE WHEN $2 = 'delivered' THEN coalesce(delivered_at, now()) ELSE delivered_at END,
                updated_at = now()
         WHERE id = $1
         RETURNING recipient, body, body_sealed, sent_at, delivered_at",
        id as MessageId,
        status.as_str(),
        reason,
        device.id as DeviceId
    )
    .fetch_one(&mut *tx)
    .await?;
    let event = match status {
        Status::Sent => Event::SmsSent,
        Status::Delivered => Event::SmsDelivered,
        _ => Event::SmsFailed,
    };
    let payload = Payload::new(event, &id.to_string(), Utc::now())
        .with("to", row.recipient)
        .with("status", status.as_str())
        .with("error_message", reason.clone())
        .with_time("sent_at", row.sent_at)
        .with_time("delivered_at", row.delivered_at);
    webhook::enqueue(
        &mut tx,
        m.workspace_id,
        event,
        Some(device.id),
        &payload,
        Some(&message_body(id, row.body, row.body_sealed)?),
    )
    .await?;
    record_events(&mut tx, &[id], status.as_str(), &reason, Some(device.id)).await?;
    bus::publish(
        &mut tx,
        &BusEvent::Messages {
            workspace_id: m.workspace_id,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(status)
}

fn fallback(error: &str, default: &str) -> String {
    let e: String = error.chars().filter(|c| !c.is_control()).take(500).collect();
    if e.trim().is_empty() {
        default.to_owned()
    } else {
        e.trim().to_owned()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum IncomingError {
    #[error("Invalid from_number.")]
    From,
    #[error(transparent)]
    Body(#[from] super::body::BodyError),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// The de-duplication key of an incoming SMS: a blind index (keyed HMAC) of the device,
/// the sender, the body and the second it was received, so the stored key does not give
/// the body away.
pub fn incoming_key(device: DeviceId, from: &str, body: &str, received_at: DateTime<Utc>) -> String {
    at_rest::blind_index(&[
        device.to_string().as_bytes(),
        from.as_bytes(),
        body.as_bytes(),
        received_at.timestamp().to_string().as_bytes(),
    ])
}

/// Stores an SMS the device received. The same (device, sender, body, time) reported
/// again is the same message.
pub async fn incoming(
    pool: &PgPool,
    device: &Device,
    from: &str,
    body: &str,
    received_at: DateTime<Utc>,
) -> Result<MessageId, IncomingError> {
    let from = from.trim();
    if from.is_empty() || from.chars().count() > 64 || from.chars().any(char::is_control) {
        return Err(IncomingError::From);
    }
    let body = SmsBody::parse_received(body)?;
    let key = incoming_key(device.id, from, body.as_str(), received_at);
    let id = MessageId(Uuid::now_v7());
    let (text, sealed) = at_rest::store_text(Column::MessageBody, id.0, body.as_str())?;
    let mut tx = pool.begin().await?;
    let inserted = sqlx::query_scalar!(
        r#"INSERT INTO messages (id, workspace_id, direction, recipient, from_number, body, body_sealed, encoding, segments,
                                 status, device_id, received_at, dedupe_key)
           VALUES ($1, $2, 'incoming', $3, $4, $5, NULLIF($11, ''::bytea), $6, $7, 'received', $8, $9, $10)
           ON CONFLICT (dedupe_key) DO NOTHING
           RETURNING id AS "id: MessageId""#,
        id as MessageId,
        device.workspace_id as WorkspaceId,
        device.phone_number,
        from,
        text,
        body.encoding.as_str(),
        body.segments,
        device.id as DeviceId,
        received_at,
        key,
        sealed
    )
    .fetch_optional(&mut *tx)
    .await?;
    let id = match inserted {
        Some(id) => {
            record_events(&mut tx, &[id], "received", "", Some(device.id)).await?;
            let payload = Payload::new(Event::SmsReceived, &id.to_string(), received_at).with("from", from);
            webhook::enqueue(
                &mut tx,
                device.workspace_id,
                Event::SmsReceived,
                Some(device.id),
                &payload,
                Some(body.as_str()),
            )
            .await?;
            bus::publish(
                &mut tx,
                &BusEvent::Messages {
                    workspace_id: device.workspace_id,
                },
            )
            .await?;
            id
        }
        None => {
            sqlx::query_scalar!(
                r#"SELECT id AS "id: MessageId" FROM messages WHERE dedupe_key = $1"#,
                key
            )
            .fetch_one(&mut *tx)
            .await?
        }
    };
    tx.commit().await?;
    Ok(id)
}

/// What one watchdog pass resolved.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct WatchdogReport {
    pub leases_expired: usize,
    pub claims_timed_out: usize,
    pub expired: usize,
    pub failed: usize,
    pub workspaces_to_dispatch: Vec<WorkspaceId>,
}

/// Resolves everything past its deadline: unreported leases go back to the queue (the same
/// device first) or fail after the last attempt; assigned messages never claimed go back to
/// the queue (another device first); messages past `valid_until` expire. Returns the workspaces
/// with due pending messages, for a dispatch pass each. Safe with several workers.
pub async fn watchdog(pool: &PgPool, cfg: &SmsConfig) -> sqlx::Result<WatchdogReport> {
    let mut report = WatchdogReport::default();
    let mut tx = pool.begin().await?;
    let leases = sqlx::query!(
        r#"UPDATE messages m SET
                  status = CASE WHEN m.attempts >= $1 THEN 'failed' ELSE 'pending' END,
                  error_message = CASE WHEN m.attempts >= $1
                                       THEN 'No report from the device after ' || m.attempts || ' attempts.'
                                       ELSE m.error_message END,
                  prefer_device_id = m.device_id, lease_expires_at = NULL, next_attempt_at = now(), updated_at = now()
           FROM (SELECT id FROM messages WHERE status = 'sending' AND lease_expires_at < now()
                 LIMIT 1000 FOR UPDATE SKIP LOCKED) x
           WHERE m.id = x.id
           RETURNING m.id AS "id: MessageId", m.status, m.workspace_id AS "workspace_id: WorkspaceId", m.device_id AS "device_id: DeviceId",
                     m.recipient, m.body, m.body_sealed, m.error_message, m.sent_at"#,
        cfg.max_attempts()
    )
    .fetch_all(&mut *tx)
    .await?;
    for l in &leases {
        let detail = if l.status == "failed" {
            "No report from the device; giving up."
        } else {
            "No report before the lease ended; offering again."
        };
        record_events(&mut tx, &[l.id], &l.status, detail, l.device_id).await?;
        if l.status == "failed" {
            let payload = Payload::new(Event::SmsFailed, &l.id.to_string(), Utc::now())
                .with("to", l.recipient.clone())
                .with("status", "failed")
                .with("error_message", l.error_message.clone())
                .with_time("sent_at", l.sent_at);
            webhook::enqueue(
                &mut tx,
                l.workspace_id,
                Event::SmsFailed,
                l.device_id,
                &payload,
                Some(&message_body(l.id, l.body.clone(), l.body_sealed.clone())?),
            )
            .await?;
        }
    }
    report.leases_expired = leases.len();
    report.failed = leases.iter().filter(|l| l.status == "failed").count();

    let unclaimed = sqlx::query!(
        r#"UPDATE messages m SET status = 'pending', avoid_device_id = m.device_id, prefer_device_id = NULL,
                  lease_expires_at = NULL, next_attempt_at = now(), updated_at = now()
           FROM (SELECT id FROM messages WHERE status = 'assigned' AND lease_expires_at < now()
                 LIMIT 1000 FOR UPDATE SKIP LOCKED) x
           WHERE m.id = x.id
           RETURNING m.id AS "id: MessageId", m.workspace_id AS "workspace_id: WorkspaceId", m.device_id AS "device_id: DeviceId""#
    )
    .fetch_all(&mut *tx)
    .await?;
    for u in &unclaimed {
        record_events(
            &mut tx,
            &[u.id],
            "pending",
            "The device did not collect the message; dispatching again.",
            u.device_id,
        )
        .await?;
    }
    report.claims_timed_out = unclaimed.len();

    let expired = sqlx::query!(
        r#"UPDATE messages m SET status = 'expired', error_message = 'Not sent before it expired.',
                  lease_expires_at = NULL, updated_at = now()
           FROM (SELECT id FROM messages WHERE status IN ('pending', 'assigned') AND valid_until < now()
                 LIMIT 1000 FOR UPDATE SKIP LOCKED) x
           WHERE m.id = x.id
           RETURNING m.id AS "id: MessageId", m.workspace_id AS "workspace_id: WorkspaceId", m.recipient, m.body, m.body_sealed,
                     coalesce(m.device_id, m.requested_device_id) AS "device_id: DeviceId""#
    )
    .fetch_all(&mut *tx)
    .await?;
    let expired_ids: Vec<MessageId> = expired.iter().map(|e| e.id).collect();
    for e in &expired {
        let payload = Payload::new(Event::SmsExpired, &e.id.to_string(), Utc::now())
            .with("to", e.recipient.clone())
            .with("status", "expired")
            .with("error_message", "Not sent before it expired.");
        webhook::enqueue(
            &mut tx,
            e.workspace_id,
            Event::SmsExpired,
            e.device_id,
            &payload,
            Some(&message_body(e.id, e.body.clone(), e.body_sealed.clone())?),
        )
        .await?;
    }
    record_events(
        &mut tx,
        &expired_ids,
        "expired",
        "Not sent before it expired.",
        None,
    )
    .await?;
    report.expired = expired.len();

    let mut touched: Vec<WorkspaceId> = leases
        .iter()
        .map(|l| l.workspace_id)
        .chain(unclaimed.iter().map(|u| u.workspace_id))
        .chain(expired.iter().map(|e| e.workspace_id))
        .collect();
    touched.sort_by_key(|u| u.0);
    touched.dedup();
    for workspace in &touched {
        bus::publish(
            &mut tx,
            &BusEvent::Messages {
                workspace_id: *workspace,
            },
        )
        .await?;
    }
    tx.commit().await?;

    // The distinct workspaces with due messages, one index seek per workspace (a loose index scan on
    // `messages_pending`), so a large backlog of one workspace costs nothing here.
    report.workspaces_to_dispatch = sqlx::query_scalar!(
        r#"WITH RECURSIVE u AS (
               (SELECT workspace_id FROM messages WHERE status = 'pending' AND next_attempt_at <= now()
                ORDER BY workspace_id LIMIT 1)
               UNION ALL
               SELECT (SELECT m.workspace_id FROM messages m
                       WHERE m.status = 'pending' AND m.next_attempt_at <= now() AND m.workspace_id > u.workspace_id
                       ORDER BY m.workspace_id LIMIT 1)
               FROM u WHERE u.workspace_id IS NOT NULL)
           SELECT workspace_id AS "u!: WorkspaceId" FROM u WHERE workspace_id IS NOT NULL"#
    )
    .fetch_all(pool)
    .await?;
    Ok(report)
}
