//! Plans (seeded; administered in the admin console) and the limits a workspace has now.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};

use super::{Cycle, PlanId, period_containing};
use crate::config::SmsConfig;
use crate::quota::{Allowance, month_bounds_at};
use crate::workspace::WorkspaceId;

/// The name of the one plan there is with billing off.
pub const SELF_HOSTED: &str = "Self-hosted";

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Plan {
    pub id: PlanId,
    pub slug: String,
    pub name: String,
    pub max_sms_per_month: i32,
    pub max_devices: i32,
    pub max_schedules: i32,
    pub max_webhooks: i32,
    pub max_api_keys: i32,
    pub max_members: i32,
    pub price_monthly_cents: i64,
    pub price_yearly_cents: i64,
    pub public: bool,
    pub is_default: bool,
    /// Retired by an administrator: nobody may choose it; subscribers keep it until renewal.
    pub retired: bool,
}

impl Plan {
    pub fn price(&self, cycle: Cycle) -> i64 {
        match cycle {
            Cycle::Monthly => self.price_monthly_cents,
            Cycle::Yearly => self.price_yearly_cents,
        }
    }

    pub fn is_free(&self) -> bool {
        self.price_monthly_cents == 0 && self.price_yearly_cents == 0
    }
}

macro_rules! select_plans {
    ($tail:literal $(, $arg:expr)*) => {
        sqlx::query_as!(
            Plan,
            r#"SELECT id AS "id: PlanId", slug, name, max_sms_per_month, max_devices, max_schedules,
                      max_webhooks, max_api_keys, max_members, price_monthly_cents, price_yearly_cents,
                      public, is_default, retired_at IS NOT NULL AS "retired!"
               FROM plans "# + $tail
            $(, $arg)*
        )
    };
}

/// The plans anyone may choose, cheapest first.
pub async fn public(pool: &PgPool) -> sqlx::Result<Vec<Plan>> {
    select_plans!("WHERE public AND retired_at IS NULL ORDER BY sort, price_monthly_cents, name")
        .fetch_all(pool)
        .await
}

/// Every plan, retired ones too, in the order the console shows them.
pub async fn all(pool: &PgPool) -> sqlx::Result<Vec<Plan>> {
    select_plans!("ORDER BY retired_at IS NOT NULL, sort, price_monthly_cents, name")
        .fetch_all(pool)
        .await
}

pub async fn get(conn: &mut PgConnection, id: PlanId) -> sqlx::Result<Option<Plan>> {
    select_plans!("WHERE id = $1", id as PlanId)
        .fetch_optional(conn)
        .await
}

/// A plan, its row locked until the transaction ends (to change it).
pub async fn get_for_update(conn: &mut PgConnection, id: PlanId) -> sqlx::Result<Option<Plan>> {
    select_plans!("WHERE id = $1 FOR UPDATE", id as PlanId)
        .fetch_optional(conn)
        .await
}

/// The plan of new workspaces and of lapsed subscriptions.
pub async fn default_plan(conn: &mut PgConnection) -> sqlx::Result<Option<Plan>> {
    select_plans!("WHERE is_default").fetch_optional(conn).await
}

/// What a workspace may hold and send now, and the period its SMS allowance counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// The plan's name ("Self-hosted" with billing off).
    pub plan: String,
    pub plan_id: Option<PlanId>,
    pub sms: i32,
    pub devices: i64,
    pub schedules: i64,
    pub webhooks: i64,
    pub api_keys: i64,
    pub members: i64,
    pub period_start: DateTime<Utc>,
    pub period_end: DateTime<Utc>,
}

impl Limits {
    /// The server's own limits, counted per calendar month: the plan of every workspace
    /// with billing off.
    pub fn self_hosted(cfg: &SmsConfig, now: DateTime<Utc>) -> Self {
        let (start, next) = month_bounds_at(now);
        let midnight = |d: chrono::NaiveDate| d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc();
        Self {
            plan: SELF_HOSTED.to_owned(),
            plan_id: None,
            sms: cfg.max_sms_per_month,
            devices: cfg.max_devices,
            schedules: cfg.max_schedules,
            webhooks: cfg.limits.max_webhooks,
            api_keys: cfg.max_api_keys,
            members: cfg.limits.max_members_per_workspace,
            period_start: midnight(start),
            period_end: midnight(next),
        }
    }

    pub fn allowance(&self) -> Allowance {
        Allowance {
            limit: self.sms,
            period: self.period_start.date_naive(),
        }
    }
}

/// The limits of `workspace` at `now`: its plan's (or the default plan's) when billing is
/// on, counted over its billing period (its subscription's, or months from its
/// `period_anchor`); the server's own, per calendar month, when billing is off.
pub async fn limits(
    conn: &mut PgConnection,
    workspace: WorkspaceId,
    cfg: &SmsConfig,
    now: DateTime<Utc>,
) -> sqlx::Result<Limits> {
    if !cfg.billing.enabled {
        return Ok(Limits::self_hosted(cfg, now));
    }
    let row = sqlx::query!(
        r#"SELECT w.period_anchor, s.current_period_start AS "sub_start?", s.cycle AS "cycle?",
                  p.id AS "plan_id?: PlanId", p.name AS "plan?", p.max_sms_per_month AS "sms?",
                  p.max_devices AS "devices?", p.max_schedules AS "schedules?",
                  p.max_webhooks AS "webhooks?", p.max_api_keys AS "api_keys?", p.max_members AS "members?"
           FROM workspaces w
           LEFT JOIN subscriptions s ON s.workspace_id = w.id AND s.status IN ('active', 'past_due')
           LEFT JOIN plans p ON p.id = COALESCE(w.plan_id, (SELECT d.id FROM plans d WHERE d.is_default))
           WHERE w.id = $1"#,
        workspace as WorkspaceId
    )
    .fetch_optional(conn)
    .await?;
    let Some(r) = row else {
        return Ok(Limits::self_hosted(cfg, now));
    };
    let (anchor, months) = match (r.sub_start, r.cycle.as_deref().and_then(Cycle::parse)) {
        (Some(start), Some(cycle)) => (start, cycle.months()),
        _ => (r.period_anchor, 1),
    };
    let (period_start, period_end) = period_containing(anchor, months, now);
    // Without a default plan (an administrator removed it), the server's own limits apply.
    let fallback = Limits::self_hosted(cfg, now);
    Ok(Limits {
        plan: r.plan.unwrap_or(fallback.plan),
        plan_id: r.plan_id,
        sms: r.sms.unwrap_or(fallback.sms),
        devices: r.devices.map_or(fallback.devices, i64::from),
        schedules: r.schedules.map_or(fallback.schedules, i64::from),
        webhooks: r.webhooks.map_or(fallback.webhooks, i64::from),
        api_keys: r.api_keys.map_or(fallback.api_keys, i64::from),
        members: r.members.map_or(fallback.members, i64::from),
        period_start,
        period_end,
    })
}

/// The SMS allowance of `workspace` now; no query with billing off.
pub async fn allowance(
    conn: &mut PgConnection,
    workspace: WorkspaceId,
    cfg: &SmsConfig,
) -> sqlx::Result<Allowance> {
    Ok(limits(conn, workspace, cfg, Utc::now()).await?.allowance())
}
