//! Workspaces as an operator sees them: every one with its plan, this period's sends, its
//! devices and queue; one in detail; and what an operator may do to one (give it another
//! plan, credit or debit its balance, pause and resume its sending, delete it).

use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::{PgConnection, PgPool};

use super::audit::{self, Target, kind};
use super::{Admin, AdminError};
use crate::FieldError;
use crate::billing::PlanId;
use crate::billing::ledger::{self, Kind, LedgerError, Refs};
use crate::workspace::WorkspaceId;

/// One row of the list.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Row {
    pub id: WorkspaceId,
    pub name: String,
    pub personal: bool,
    pub plan: Option<String>,
    pub members: i64,
    /// SMS counted in the newest usage period.
    pub sent_this_period: i32,
    pub devices_online: i64,
    pub devices: i64,
    /// Messages waiting, handed to a device, or being sent.
    pub queued: i64,
    pub last_send_at: Option<DateTime<Utc>>,
    pub balance_cents: i64,
    pub paused: bool,
    pub created_at: DateTime<Utc>,
}

/// A page of workspaces whose name contains `q`, newest first, after the workspace `after`
/// (the newest page without it), and the id to continue after when more remain.
pub async fn list(
    pool: &PgPool,
    q: &str,
    after: Option<WorkspaceId>,
    limit: i64,
) -> sqlx::Result<(Vec<Row>, Option<WorkspaceId>)> {
    rows(pool, q, after, None, limit).await
}

async fn rows(
    pool: &PgPool,
    q: &str,
    after: Option<WorkspaceId>,
    only: Option<WorkspaceId>,
    limit: i64,
) -> sqlx::Result<(Vec<Row>, Option<WorkspaceId>)> {
    let q = q.trim().to_lowercase();
    let mut rows = sqlx::query_as!(
        Row,
        r#"SELECT w.id AS "id: WorkspaceId", w.name, w.personal_user_id IS NOT NULL AS "personal!",
                  p.name AS "plan?",
                  (SELECT count(*) FROM workspace_members m WHERE m.workspace_id = w.id) AS "members!",
                  coalesce((SELECT u.sent FROM sms_usage u WHERE u.workspace_id = w.id ORDER BY u.month DESC LIMIT 1), 0) AS "sent_this_period!",
                  (SELECT count(*) FROM devices d WHERE d.workspace_id = w.id
                     AND (d.stream_until > now() OR d.last_seen_at > now() - interval '90 seconds')) AS "devices_online!",
                  (SELECT count(*) FROM devices d WHERE d.workspace_id = w.id) AS "devices!",
                  (SELECT count(*) FROM messages m WHERE m.workspace_id = w.id
                     AND m.status IN ('pending', 'assigned', 'sending')) AS "queued!",
                  (SELECT max(m.created_at) FROM messages m WHERE m.workspace_id = w.id AND m.direction = 'outgoing') AS "last_send_at?",
                  w.balance_cents, w.sending_paused_at IS NOT NULL AS "paused!", w.created_at
           FROM workspaces w
           LEFT JOIN plans p ON p.id = coalesce(w.plan_id, (SELECT d.id FROM plans d WHERE d.is_default))
           WHERE w.deleted_at IS NULL AND w.id < $1 AND ($2 = '' OR lower(w.name) LIKE '%' || $2 || '%')
             AND ($4::uuid IS NULL OR w.id = $4)
           ORDER BY w.id DESC LIMIT $3"#,
        after.map_or(uuid::Uuid::max(), |a| a.0),
        q.replace(['%', '_', '\\'], ""),
        limit + 1,
        only.map(|o| o.0)
    )
    .fetch_all(pool)
    .await?;
    let next = if rows.len() as i64 > limit {
        rows.truncate(usize::try_from(limit).unwrap_or(0));
        rows.last().map(|r| r.id)
    } else {
        None
    };
    Ok((rows, next))
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct DeviceRow {
    pub id: crate::device::DeviceId,
    pub name: String,
    pub enabled: bool,
    pub online: bool,
    pub last_seen_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct WebhookRow {
    /// The receiver's host only: a path or query may carry the receiver's own token.
    pub url: String,
    pub active: bool,
    pub consecutive_failures: i32,
    pub breaker_open: bool,
    pub failing_since: Option<DateTime<Utc>>,
    pub waiting: i64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct MemberRow {
    pub user_id: crate::account::UserId,
    pub email: String,
    pub role: String,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Detail {
    pub row: Row,
    pub plan_id: Option<PlanId>,
    pub paused_reason: String,
    pub paused_at: Option<DateTime<Utc>>,
    pub members: Vec<MemberRow>,
    pub devices: Vec<DeviceRow>,
    pub webhooks: Vec<WebhookRow>,
    pub ledger: Vec<ledger::Entry>,
    pub billing: Vec<crate::billing::subscriptions::Event>,
}

pub async fn detail(pool: &PgPool, id: WorkspaceId) -> Result<Detail, AdminError> {
    let row = sqlx::query!(
        r#"SELECT plan_id AS "plan_id: PlanId", sending_paused_reason, sending_paused_at
           FROM workspaces WHERE id = $1 AND deleted_at IS NULL"#,
        id as WorkspaceId
    )
    .fetch_optional(pool)
    .await?
    .ok_or(AdminError::NotFound)?;
    let found = rows(pool, "", None, Some(id), 1)
        .await?
        .0
        .pop()
        .ok_or(AdminError::NotFound)?;
    let members = sqlx::query_as!(
        MemberRow,
        r#"SELECT u.id AS "user_id: crate::account::UserId", u.email, m.role
           FROM workspace_members m JOIN users u ON u.id = m.user_id
           WHERE m.workspace_id = $1 ORDER BY m.role = 'owner' DESC, lower(u.email)"#,
        id as WorkspaceId
    )
    .fetch_all(pool)
    .await?;
    let devices = sqlx::query_as!(
        DeviceRow,
        r#"SELECT id AS "id: crate::device::DeviceId", name, enabled,
                  coalesce(stream_until > now() OR last_seen_at > now() - interval '90 seconds', false) AS "online!",
                  last_seen_at
           FROM devices WHERE workspace_id = $1 ORDER BY lower(name), id"#,
        id as WorkspaceId
    )
    .fetch_all(pool)
    .await?;
    let webhooks = sqlx::query_as!(
        WebhookRow,
        r#"SELECT e.url, e.active, e.consecutive_failures,
                  coalesce(e.breaker_open_until > now(), false) AS "breaker_open!", e.failing_since,
                  (SELECT count(*) FROM webhook_deliveries d WHERE d.endpoint_id = e.id AND d.status IN ('pending', 'delivering')) AS "waiting!"
           FROM webhook_endpoints e WHERE e.workspace_id = $1 ORDER BY e.created_at"#,
        id as WorkspaceId
    )
    .fetch_all(pool)
    .await?
    .into_iter()
    .map(|mut w| {
        w.url = url::Url::parse(&w.url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_default();
        w
    })
    .collect();
    Ok(Detail {
        row: found,
        plan_id: row.plan_id,
        paused_reason: row.sending_paused_reason,
        paused_at: row.sending_paused_at,
        members,
        devices,
        webhooks,
        ledger: ledger::history(pool, id, 20).await?,
        billing: crate::billing::subscriptions::history(pool, id, 20).await?,
    })
}

struct Locked {
    name: String,
    personal: bool,
    plan_id: Option<PlanId>,
    paused: bool,
}

async fn lock(conn: &mut PgConnection, id: WorkspaceId) -> Result<Locked, AdminError> {
    sqlx::query_as!(
        Locked,
        r#"SELECT name, personal_user_id IS NOT NULL AS "personal!", plan_id AS "plan_id: PlanId", sending_paused_at IS NOT NULL AS "paused!"
           FROM workspaces WHERE id = $1 AND deleted_at IS NULL FOR NO KEY UPDATE"#,
        id as WorkspaceId
    )
    .fetch_optional(conn)
    .await?
    .ok_or(AdminError::NotFound)
}

fn target(id: WorkspaceId, name: &str) -> Target {
    Target::new("workspace", id, name)
}

/// Pauses or resumes the workspace's sending. While paused, new sends are refused (the
/// API answers 403) and queued messages wait; its devices keep reporting.
pub async fn set_paused(
    pool: &PgPool,
    admin: &Admin,
    id: WorkspaceId,
    paused: bool,
    reason: &str,
) -> Result<(), AdminError> {
    let reason = reason.trim();
    if reason.chars().count() > 200 || reason.chars().any(char::is_control) {
        return Err(FieldError::new("reason", "Use one line of at most 200 characters.").into());
    }
    let mut tx = pool.begin().await?;
    let w = lock(&mut tx, id).await?;
    if w.paused == paused {
        tx.commit().await?;
        return Ok(());
    }
    sqlx::query!(
        "UPDATE workspaces SET sending_paused_at = CASE WHEN $2 THEN now() END,
                               sending_paused_reason = CASE WHEN $2 THEN $3 ELSE '' END
         WHERE id = $1",
        id as WorkspaceId,
        paused,
        reason
    )
    .execute(&mut *tx)
    .await?;
    audit::record(
        &mut *tx,
        admin,
        if paused {
            kind::WORKSPACE_PAUSED
        } else {
            kind::WORKSPACE_RESUMED
        },
        &target(id, &w.name),
        json!({ "paused": !paused }),
        json!({ "paused": paused, "reason": reason }),
    )
    .await?;
    if !paused {
        // Wake the dispatchers: what waited may go now.
        crate::bus::wake_dispatch(&mut tx, id).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Moves the balance by `amount_cents` (credit positive, debit negative) with the reason
/// in the ledger. A debit past zero is refused.
pub async fn adjust_balance(
    pool: &PgPool,
    admin: &Admin,
    id: WorkspaceId,
    amount_cents: i64,
    reason: &str,
    currency: &str,
) -> Result<i64, AdminError> {
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(
            FieldError::new("reason", "Say why: the reason goes into the workspace's ledger.").into(),
        );
    }
    if reason.chars().count() > 200 || reason.chars().any(char::is_control) {
        return Err(FieldError::new("reason", "Use one line of at most 200 characters.").into());
    }
    let mut tx = pool.begin().await?;
    let w = lock(&mut tx, id).await?;
    let after = match ledger::post(
        &mut tx,
        id,
        Kind::Adjustment,
        amount_cents,
        reason,
        Refs {
            actor: admin.id,
            ..Refs::default()
        },
    )
    .await
    {
        Ok(after) => after,
        Err(LedgerError::Insufficient { have, .. }) => {
            return Err(FieldError::new(
                "amount",
                format!(
                    "The balance is {}: a debit cannot take it below zero.",
                    crate::billing::format_cents(have, currency)
                ),
            )
            .into());
        }
        Err(LedgerError::BadAmount) => {
            return Err(FieldError::new(
                "amount",
                "Enter an amount other than zero, within the top-up limits.",
            )
            .into());
        }
        Err(LedgerError::NotFound) => return Err(AdminError::NotFound),
        Err(LedgerError::Database(e)) => return Err(e.into()),
    };
    audit::record(
        &mut *tx,
        admin,
        kind::WORKSPACE_BALANCE_ADJUSTED,
        &target(id, &w.name),
        json!({ "balance_cents": after - amount_cents }),
        json!({ "balance_cents": after, "amount_cents": amount_cents, "reason": reason }),
    )
    .await?;
    tx.commit().await?;
    Ok(after)
}

/// Gives the workspace `plan` at no charge, from now. A live subscription ends (without a
/// refund: the operator may credit the balance), so no renewal charges for the old plan
/// later; the workspace keeps the plan, with free monthly periods, until it subscribes to
/// another or an operator changes it again. A retired plan may be given too.
pub async fn change_plan(
    pool: &PgPool,
    admin: &Admin,
    id: WorkspaceId,
    plan: PlanId,
) -> Result<(), AdminError> {
    let mut tx = pool.begin().await?;
    let w = lock(&mut tx, id).await?;
    let target_plan = crate::billing::plans::get(&mut tx, plan)
        .await?
        .ok_or_else(|| AdminError::Invalid(FieldError::new("plan", "Choose a plan.")))?;
    let before = match w.plan_id {
        Some(p) => crate::billing::plans::get(&mut tx, p).await?.map(|p| p.name),
        None => crate::billing::plans::default_plan(&mut tx)
            .await?
            .map(|p| p.name),
    };
    let ended = sqlx::query_scalar!(
        r#"UPDATE subscriptions SET status = 'canceled', ended_at = now(), updated_at = now()
           WHERE workspace_id = $1 AND status IN ('active', 'past_due')
           RETURNING id AS "id: crate::billing::SubscriptionId""#,
        id as WorkspaceId
    )
    .fetch_optional(&mut *tx)
    .await?;
    sqlx::query!(
        "UPDATE workspaces SET plan_id = $2, period_anchor = now() WHERE id = $1",
        id as WorkspaceId,
        plan as PlanId
    )
    .execute(&mut *tx)
    .await?;
    crate::billing::subscriptions::record(
        &mut tx,
        id,
        "plan_changed_by_admin",
        ended,
        Some(plan),
        &format!("An administrator changed the plan to {}.", target_plan.name),
        admin.id,
    )
    .await?;
    audit::record(
        &mut *tx,
        admin,
        kind::WORKSPACE_PLAN_CHANGED,
        &target(id, &w.name),
        json!({ "plan": before, "subscription_ended": ended.is_some() }),
        json!({ "plan": target_plan.name }),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// What deleting a workspace does, for the confirmation.
pub const DELETE_DOES: &str = "Its queued messages are cancelled (webhooks hear sms_failed), its devices and API keys are removed, its schedules stop and every member loses access.";

/// Deletes a shared workspace as its owner would. A personal workspace goes only with its
/// person's account.
pub async fn delete(pool: &PgPool, admin: &Admin, id: WorkspaceId) -> Result<(), AdminError> {
    let mut tx = pool.begin().await?;
    let w = lock(&mut tx, id).await?;
    if w.personal {
        return Err(AdminError::Refused(
            "A personal workspace goes with its person's account: delete the account instead.".into(),
        ));
    }
    let done = crate::workspace::delete::tear_down(&mut tx, id).await?;
    audit::record(
        &mut *tx,
        admin,
        kind::WORKSPACE_DELETED,
        &target(id, &w.name),
        json!({ "name": w.name }),
        json!({ "messages_cancelled": done.messages_cancelled, "members_removed": done.members_removed }),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}
