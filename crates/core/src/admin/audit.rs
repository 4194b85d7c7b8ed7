//! The administrators' audit log: every action taken in the console or with the admin
//! CLI, with who, when, on what, and the values before and after. Append-only (migration
//! `20261208000100_admin`). Entries are written in the transaction of the action they
//! record, so one is never missing or left without its action.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{PgExecutor, PgPool};

use super::Admin;

/// Kinds of entry, as stored and shown.
pub mod kind {
    pub const USER_SUSPENDED: &str = "user.suspended";
    pub const USER_UNSUSPENDED: &str = "user.unsuspended";
    pub const USER_PROMOTED: &str = "user.promoted";
    pub const USER_DEMOTED: &str = "user.demoted";
    pub const USER_VERIFIED: &str = "user.verified";
    pub const USER_VERIFICATION_SENT: &str = "user.verification_sent";
    pub const USER_PASSWORD_RESET_SENT: &str = "user.password_reset_sent";
    pub const USER_SIGNED_OUT: &str = "user.signed_out";
    pub const USER_DELETED: &str = "user.deleted";
    pub const WORKSPACE_PLAN_CHANGED: &str = "workspace.plan_changed";
    pub const WORKSPACE_BALANCE_ADJUSTED: &str = "workspace.balance_adjusted";
    pub const WORKSPACE_PAUSED: &str = "workspace.sending_paused";
    pub const WORKSPACE_RESUMED: &str = "workspace.sending_resumed";
    pub const WORKSPACE_DELETED: &str = "workspace.deleted";
    pub const PLAN_CREATED: &str = "plan.created";
    pub const PLAN_CHANGED: &str = "plan.changed";
    pub const PLAN_RETIRED: &str = "plan.retired";
    pub const PLAN_RESTORED: &str = "plan.restored";
    pub const PLAN_MOVED: &str = "plan.moved";
    pub const PROMO_CREATED: &str = "promo.created";
    pub const SETTINGS_CHANGED: &str = "settings.changed";
}

/// What an action was taken on.
#[derive(Debug, Clone, Default)]
pub struct Target {
    pub kind: &'static str,
    pub id: String,
    /// How it reads to a person (an address, a workspace's name).
    pub label: String,
}

impl Target {
    pub fn new(kind: &'static str, id: impl ToString, label: impl Into<String>) -> Self {
        Self {
            kind,
            id: id.to_string(),
            label: label.into(),
        }
    }
}

pub async fn record<'e>(
    conn: impl PgExecutor<'e>,
    actor: &Admin,
    action: &str,
    target: &Target,
    before: Value,
    after: Value,
) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO admin_audit (actor_id, actor, action, target_kind, target_id, target, before, after)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        actor.id.map(|u| u.0),
        actor.label,
        action,
        target.kind,
        target.id,
        target.label,
        before,
        after
    )
    .execute(conn)
    .await?;
    Ok(())
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Entry {
    pub id: i64,
    pub actor: String,
    pub action: String,
    pub target_kind: String,
    pub target_id: String,
    pub target: String,
    pub before: Value,
    pub after: Value,
    pub created_at: DateTime<Utc>,
}

/// Entries newest first: `limit` of them older than `before` (the newest without it),
/// of actions starting with `action` when it is not empty, and whether older ones remain.
pub async fn page(
    pool: &PgPool,
    action: &str,
    before: Option<i64>,
    limit: i64,
) -> sqlx::Result<(Vec<Entry>, bool)> {
    let mut rows = sqlx::query_as!(
        Entry,
        "SELECT id, actor, action, target_kind, target_id, target, before, after, created_at
         FROM admin_audit
         WHERE id < $1 AND ($2 = '' OR action LIKE $2 || '%')
         ORDER BY id DESC LIMIT $3",
        before.unwrap_or(i64::MAX),
        action,
        limit + 1
    )
    .fetch_all(pool)
    .await?;
    let more = rows.len() as i64 > limit;
    rows.truncate(usize::try_from(limit).unwrap_or(0));
    Ok((rows, more))
}
