//! Subscriptions, paid from the balance. A workspace has at most one live subscription
//! (`active` or `past_due`). Decisions, written down in `docs/billing.md`:
//!
//! - **Upgrade** (a dearer plan, or monthly to yearly) takes effect at once: the unused
//!   part of the current period is refunded to the balance pro rata (to the second,
//!   rounded down), the new plan's full price is charged, and a new period starts now.
//! - **Downgrade** (a cheaper plan, or yearly to monthly) waits for the end of the
//!   period; choosing the free default plan is cancelling at period end.
//! - **Cancel now** ends the paid plan at once, without refund; **cancel at period end**
//!   keeps it to the end of the period already paid.
//! - **Renewal** charges the next period at the end of the current one. Without the
//!   money the subscription is `past_due` and keeps its plan for the grace period; a
//!   top-up or promo credit in that time renews it, otherwise it becomes `expired` and
//!   the workspace falls back to the default plan.
//!
//! Every change is written to the workspace's billing history. Functions take `now`, so
//! tests move the clock.

use chrono::{DateTime, Duration, Utc};
use sqlx::{PgConnection, PgPool};

use super::ledger::{self, Kind, LedgerError, Refs};
use super::plans::{self, Plan};
use super::{Cycle, PlanId, SubscriptionId, add_months};
use crate::account::UserId;
use crate::workspace::WorkspaceId;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Active,
    PastDue,
    Canceled,
    Expired,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::PastDue => "past_due",
            Self::Canceled => "canceled",
            Self::Expired => "expired",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "active" => Self::Active,
            "past_due" => Self::PastDue,
            "canceled" => Self::Canceled,
            _ => Self::Expired,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Subscription {
    pub id: SubscriptionId,
    pub workspace_id: WorkspaceId,
    pub plan_id: PlanId,
    pub plan_name: String,
    pub cycle: Cycle,
    pub status: Status,
    pub price_cents: i64,
    pub current_period_start: DateTime<Utc>,
    pub current_period_end: DateTime<Utc>,
    pub cancel_at_period_end: bool,
    pub next_plan_id: Option<PlanId>,
    pub next_plan_name: Option<String>,
    pub next_cycle: Option<Cycle>,
    pub past_due_since: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
}

/// Why a change was refused; the texts are sentences for the page and the API.
#[derive(Debug, thiserror::Error)]
pub enum SubscriptionError {
    #[error("Plan not found.")]
    PlanNotFound,
    #[error("Plan not available.")]
    PlanNotAvailable,
    #[error("Already subscribed to this plan.")]
    AlreadyOnPlan,
    #[error("Insufficient balance: need {need}, have {have}.")]
    Insufficient { need: String, have: String },
    #[error("Subscription not found.")]
    NotFound,
    #[error("Already canceled.")]
    AlreadyCanceled,
    #[error("The subscription is past due: top up the balance to renew it.")]
    PastDue,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

struct Row {
    id: SubscriptionId,
    workspace_id: WorkspaceId,
    plan_id: PlanId,
    plan_name: String,
    cycle: String,
    status: String,
    price_cents: i64,
    current_period_start: DateTime<Utc>,
    current_period_end: DateTime<Utc>,
    cancel_at_period_end: bool,
    next_plan_id: Option<PlanId>,
    next_plan_name: Option<String>,
    next_cycle: Option<String>,
    past_due_since: Option<DateTime<Utc>>,
    ended_at: Option<DateTime<Utc>>,
}

impl Subscription {
    /// A cancellation or a plan change waits for the end of the period.
    pub fn has_pending_change(&self) -> bool {
        self.cancel_at_period_end || self.next_plan_id.is_some() || self.next_cycle.is_some()
    }

    /// Moving from `from` (this subscription's plan) to `target` on `cycle` is an upgrade,
    /// which starts at once: a dearer plan, or the same plan from monthly to yearly.
    /// Anything else waits for the end of the period.
    pub fn is_upgrade(&self, from: &Plan, target: &Plan, cycle: Cycle) -> bool {
        target.price_monthly_cents > from.price_monthly_cents
            || (target.id == from.id && cycle == Cycle::Yearly && self.cycle == Cycle::Monthly)
    }

    /// The part of this period's price not yet used at `now` (to the second, rounded
    /// down): what an upgrade gives back.
    pub fn unused_cents(&self, now: DateTime<Utc>) -> i64 {
        let total = (self.current_period_end - self.current_period_start)
            .num_seconds()
            .max(1);
        let left = (self.current_period_end - now).num_seconds().clamp(0, total);
        i64::try_from(i128::from(self.price_cents) * i128::from(left) / i128::from(total)).unwrap_or(0)
    }
}

impl From<Row> for Subscription {
    fn from(r: Row) -> Self {
        Self {
            id: r.id,
            workspace_id: r.workspace_id,
            plan_id: r.plan_id,
            plan_name: r.plan_name,
            cycle: Cycle::parse(&r.cycle).unwrap_or(Cycle::Monthly),
            status: Status::parse(&r.status),
            price_cents: r.price_cents,
            current_period_start: r.current_period_start,
            current_period_end: r.current_period_end,
            cancel_at_period_end: r.cancel_at_period_end,
            next_plan_id: r.next_plan_id,
            next_plan_name: r.next_plan_name,
            next_cycle: r.next_cycle.as_deref().and_then(Cycle::parse),
            past_due_since: r.past_due_since,
            ended_at: r.ended_at,
        }
    }
}

macro_rules! select_subscriptions {
    ($tail:literal $(, $arg:expr)*) => {
        sqlx::query_as!(
            Row,
            r#"SELECT s.id AS "id: SubscriptionId", s.workspace_id AS "workspace_id: WorkspaceId",
                      s.plan_id AS "plan_id: PlanId", p.name AS plan_name, s.cycle, s.status, s.price_cents,
                      s.current_period_start, s.current_period_end, s.cancel_at_period_end,
                      s.next_plan_id AS "next_plan_id: PlanId", n.name AS "next_plan_name?", s.next_cycle,
                      s.past_due_since, s.ended_at
               FROM subscriptions s JOIN plans p ON p.id = s.plan_id
               LEFT JOIN plans n ON n.id = s.next_plan_id "# + $tail
            $(, $arg)*
        )
    };
}

/// The live subscription of `workspace`, if any.
pub async fn current(conn: &mut PgConnection, workspace: WorkspaceId) -> sqlx::Result<Option<Subscription>> {
    Ok(select_subscriptions!(
        "WHERE s.workspace_id = $1 AND s.status IN ('active', 'past_due')",
        workspace as WorkspaceId
    )
    .fetch_optional(conn)
    .await?
    .map(Into::into))
}

/// One subscription of `workspace`, live or ended (another workspace's reads as none).
pub async fn get(
    pool: &PgPool,
    workspace: WorkspaceId,
    id: SubscriptionId,
) -> sqlx::Result<Option<Subscription>> {
    Ok(select_subscriptions!(
        "WHERE s.workspace_id = $1 AND s.id = $2",
        workspace as WorkspaceId,
        id as SubscriptionId
    )
    .fetch_optional(pool)
    .await?
    .map(Into::into))
}

/// Locks the workspace's row, then its live subscription. Every change of a subscription
/// takes the workspace first (as the balance's updates do), so two changes of one
/// workspace queue instead of both starting a subscription, and no two lock in opposite
/// orders.
async fn lock_current(conn: &mut PgConnection, workspace: WorkspaceId) -> sqlx::Result<Option<Subscription>> {
    lock_workspace(conn, workspace).await?;
    Ok(select_subscriptions!(
        "WHERE s.workspace_id = $1 AND s.status IN ('active', 'past_due') FOR UPDATE OF s",
        workspace as WorkspaceId
    )
    .fetch_optional(conn)
    .await?
    .map(Into::into))
}

async fn lock_workspace(conn: &mut PgConnection, workspace: WorkspaceId) -> sqlx::Result<()> {
    sqlx::query!(
        "SELECT id FROM workspaces WHERE id = $1 FOR NO KEY UPDATE",
        workspace as WorkspaceId
    )
    .fetch_optional(conn)
    .await?;
    Ok(())
}

/// Writes a line of the workspace's billing history.
pub async fn record(
    conn: &mut PgConnection,
    workspace: WorkspaceId,
    kind: &str,
    subscription: Option<SubscriptionId>,
    plan: Option<PlanId>,
    detail: &str,
    actor: Option<UserId>,
) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO billing_events (workspace_id, kind, subscription_id, plan_id, detail, actor_user)
         VALUES ($1, $2, $3, $4, $5, $6)",
        workspace as WorkspaceId,
        kind,
        subscription.map(|s| s.0),
        plan.map(|p| p.0),
        detail,
        actor.map(|u| u.0)
    )
    .execute(conn)
    .await?;
    Ok(())
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Event {
    pub kind: String,
    pub detail: String,
    pub created_at: DateTime<Utc>,
}

/// The latest `limit` lines of the billing history of `workspace`, newest first.
pub async fn history(pool: &PgPool, workspace: WorkspaceId, limit: i64) -> sqlx::Result<Vec<Event>> {
    sqlx::query_as!(
        Event,
        "SELECT kind, detail, created_at FROM billing_events WHERE workspace_id = $1 ORDER BY id DESC LIMIT $2",
        workspace as WorkspaceId,
        limit
    )
    .fetch_all(pool)
    .await
}

/// What `upgrade` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The plan changed now (a new period started, paid from the balance).
    Started(Subscription),
    /// The plan changes at the end of the current period.
    Scheduled(Subscription),
    /// Without a subscription, the workspace moved to this free plan.
    FreePlan(String),
}

impl Change {
    pub fn subscription(&self) -> Option<&Subscription> {
        match self {
            Self::Started(s) | Self::Scheduled(s) => Some(s),
            Self::FreePlan(_) => None,
        }
    }
}

fn insufficient(need: i64, have: i64, currency: &str) -> SubscriptionError {
    SubscriptionError::Insufficient {
        need: super::format_cents(need, currency),
        have: super::format_cents(have, currency),
    }
}

async fn set_workspace_plan(
    conn: &mut PgConnection,
    workspace: WorkspaceId,
    plan: Option<PlanId>,
    anchor: Option<DateTime<Utc>>,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE workspaces SET plan_id = $2, period_anchor = COALESCE($3, period_anchor) WHERE id = $1",
        workspace as WorkspaceId,
        plan.map(|p| p.0),
        anchor
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Moves `workspace` to `plan` on `cycle` (see the module's rules), paying from the balance.
pub async fn upgrade(
    pool: &PgPool,
    workspace: WorkspaceId,
    actor: Option<UserId>,
    plan: PlanId,
    cycle: Cycle,
    currency: &str,
    now: DateTime<Utc>,
) -> Result<Change, SubscriptionError> {
    let mut tx = pool.begin().await?;
    let target = plans::get(&mut tx, plan)
        .await?
        .ok_or(SubscriptionError::PlanNotFound)?;
    if target.retired || (!target.public && !target.is_default) {
        return Err(SubscriptionError::PlanNotAvailable);
    }
    let live = lock_current(&mut tx, workspace).await?;
    let change = match live {
        None if target.is_free() => {
            // Already on a free plan: the default one, or the same one.
            let on = sqlx::query_scalar!(
                r#"SELECT COALESCE(w.plan_id, (SELECT id FROM plans WHERE is_default)) AS "p: PlanId"
                   FROM workspaces w WHERE w.id = $1"#,
                workspace as WorkspaceId
            )
            .fetch_one(&mut *tx)
            .await?;
            if on == Some(target.id) {
                return Err(SubscriptionError::AlreadyOnPlan);
            }
            set_workspace_plan(
                &mut tx,
                workspace,
                (!target.is_default).then_some(target.id),
                Some(now),
            )
            .await?;
            record(
                &mut tx,
                workspace,
                "plan_changed",
                None,
                Some(target.id),
                &format!("Now on {}", target.name),
                actor,
            )
            .await?;
            tx.commit().await?;
            return Ok(Change::FreePlan(target.name));
        }
        None => Change::Started(start(&mut tx, workspace, actor, &target, cycle, currency, now, None).await?),
        Some(s) if s.status == Status::PastDue => return Err(SubscriptionError::PastDue),
        Some(s) if s.plan_id == target.id && s.cycle == cycle => {
            if s.has_pending_change() {
                // Choosing the plan one has again undoes a pending cancellation or change.
                sqlx::query!(
                    "UPDATE subscriptions SET cancel_at_period_end = false, next_plan_id = NULL, next_cycle = NULL,
                            updated_at = now() WHERE id = $1",
                    s.id as SubscriptionId
                )
                .execute(&mut *tx)
                .await?;
                record(
                    &mut tx,
                    workspace,
                    "change_undone",
                    Some(s.id),
                    Some(s.plan_id),
                    &format!("Staying on {}", s.plan_name),
                    actor,
                )
                .await?;
                let s = current(&mut tx, workspace)
                    .await?
                    .ok_or(SubscriptionError::NotFound)?;
                tx.commit().await?;
                return Ok(Change::Scheduled(s));
            }
            return Err(SubscriptionError::AlreadyOnPlan);
        }
        Some(s) => {
            let from = plans::get(&mut tx, s.plan_id)
                .await?
                .ok_or(SubscriptionError::PlanNotFound)?;
            if s.is_upgrade(&from, &target, cycle) {
                // The unused part of this period comes back, then the new plan starts now.
                let refund = s.unused_cents(now);
                sqlx::query!(
                    "UPDATE subscriptions SET status = 'canceled', ended_at = $2, updated_at = now() WHERE id = $1",
                    s.id as SubscriptionId,
                    now
                )
                .execute(&mut *tx)
                .await?;
                if refund > 0 {
                    ledger::post(
                        &mut tx,
                        workspace,
                        Kind::Refund,
                        refund,
                        &format!("Unused part of {} ({})", s.plan_name, s.cycle.as_str()),
                        Refs {
                            subscription: Some(s.id),
                            actor,
                            ..Refs::default()
                        },
                    )
                    .await
                    .map_err(ledger_error(currency))?;
                }
                Change::Started(
                    start(&mut tx, workspace, actor, &target, cycle, currency, now, Some(&s)).await?,
                )
            } else if target.is_free() {
                schedule_cancel(&mut tx, workspace, &s, actor).await?;
                Change::Scheduled(
                    current(&mut tx, workspace)
                        .await?
                        .ok_or(SubscriptionError::NotFound)?,
                )
            } else {
                sqlx::query!(
                    "UPDATE subscriptions SET next_plan_id = $2, next_cycle = $3, cancel_at_period_end = false,
                            updated_at = now() WHERE id = $1",
                    s.id as SubscriptionId,
                    target.id as PlanId,
                    cycle.as_str()
                )
                .execute(&mut *tx)
                .await?;
                record(
                    &mut tx,
                    workspace,
                    "change_scheduled",
                    Some(s.id),
                    Some(target.id),
                    &format!(
                        "{} ({}) from {}",
                        target.name,
                        cycle.as_str(),
                        s.current_period_end.format("%Y-%m-%d")
                    ),
                    actor,
                )
                .await?;
                Change::Scheduled(
                    current(&mut tx, workspace)
                        .await?
                        .ok_or(SubscriptionError::NotFound)?,
                )
            }
        }
    };
    tx.commit().await?;
    Ok(change)
}

fn ledger_error(currency: &str) -> impl Fn(LedgerError) -> SubscriptionError + '_ {
    move |e| match e {
        LedgerError::Insufficient { need, have } => insufficient(need, have, currency),
        LedgerError::Database(e) => SubscriptionError::Database(e),
        LedgerError::NotFound | LedgerError::BadAmount => SubscriptionError::NotFound,
    }
}

/// Charges the first period of `plan` and makes the subscription.
#[allow(clippy::too_many_arguments)]
async fn start(
    conn: &mut PgConnection,
    workspace: WorkspaceId,
    actor: Option<UserId>,
    plan: &Plan,
    cycle: Cycle,
    currency: &str,
    now: DateTime<Utc>,
    replacing: Option<&Subscription>,
) -> Result<Subscription, SubscriptionError> {
    let price = plan.price(cycle);
    let id = SubscriptionId(uuid::Uuid::new_v4());
    let end = add_months(now, cycle.months());
    sqlx::query!(
        "INSERT INTO subscriptions (id, workspace_id, plan_id, cycle, status, price_cents, current_period_start, current_period_end)
         VALUES ($1, $2, $3, $4, 'active', $5, $6, $7)",
        id as SubscriptionId,
        workspace as WorkspaceId,
        plan.id as PlanId,
        cycle.as_str(),
        price,
        now,
        end
    )
    .execute(&mut *conn)
    .await?;
    if price > 0 {
        ledger::post(
            conn,
            workspace,
            Kind::Subscription,
            -price,
            &format!(
                "{} ({}) until {}",
                plan.name,
                cycle.as_str(),
                end.format("%Y-%m-%d")
            ),
            Refs {
                subscription: Some(id),
                actor,
                ..Refs::default()
            },
        )
        .await
        .map_err(ledger_error(currency))?;
    }
    set_workspace_plan(conn, workspace, Some(plan.id), None).await?;
    let detail = match replacing {
        Some(old) => format!("{} ({}) replaces {}", plan.name, cycle.as_str(), old.plan_name),
        None => format!("{} ({})", plan.name, cycle.as_str()),
    };
    record(
        conn,
        workspace,
        if replacing.is_some() {
            "upgraded"
        } else {
            "subscribed"
        },
        Some(id),
        Some(plan.id),
        &detail,
        actor,
    )
    .await?;
    current(conn, workspace).await?.ok_or(SubscriptionError::NotFound)
}

async fn schedule_cancel(
    conn: &mut PgConnection,
    workspace: WorkspaceId,
    s: &Subscription,
    actor: Option<UserId>,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE subscriptions SET cancel_at_period_end = true, next_plan_id = NULL, next_cycle = NULL,
                updated_at = now() WHERE id = $1",
        s.id as SubscriptionId
    )
    .execute(&mut *conn)
    .await?;
    record(
        conn,
        workspace,
        "cancel_scheduled",
        Some(s.id),
        Some(s.plan_id),
        &format!(
            "{} ends on {}",
            s.plan_name,
            s.current_period_end.format("%Y-%m-%d")
        ),
        actor,
    )
    .await
}

/// Ends the paid plan now (`immediate`, no refund) or at the end of the period.
pub async fn cancel(
    pool: &PgPool,
    workspace: WorkspaceId,
    actor: Option<UserId>,
    immediate: bool,
    now: DateTime<Utc>,
) -> Result<Subscription, SubscriptionError> {
    let mut tx = pool.begin().await?;
    let s = lock_current(&mut tx, workspace)
        .await?
        .ok_or(SubscriptionError::NotFound)?;
    if immediate || s.status == Status::PastDue {
        end(&mut tx, &s, Status::Canceled, now, actor, "Canceled now").await?;
    } else if s.cancel_at_period_end {
        return Err(SubscriptionError::AlreadyCanceled);
    } else {
        schedule_cancel(&mut tx, workspace, &s, actor).await?;
    }
    let after = select_subscriptions!("WHERE s.id = $1", s.id as SubscriptionId)
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(after.into())
}

/// Ends `s` in `status` and puts its workspace back on the default plan.
async fn end(
    conn: &mut PgConnection,
    s: &Subscription,
    status: Status,
    at: DateTime<Utc>,
    actor: Option<UserId>,
    detail: &str,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE subscriptions SET status = $2, ended_at = $3, updated_at = now() WHERE id = $1",
        s.id as SubscriptionId,
        status.as_str(),
        at
    )
    .execute(&mut *conn)
    .await?;
    set_workspace_plan(conn, s.workspace_id, None, Some(at)).await?;
    record(
        conn,
        s.workspace_id,
        status.as_str(),
        Some(s.id),
        Some(s.plan_id),
        &format!("{}: {detail}", s.plan_name),
        actor,
    )
    .await
}

/// Which step of a subscription's life a renewal job carries out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// The period ended: renew, switch to the scheduled plan, or end.
    Renew,
    /// The grace period of a past-due subscription ended.
    GraceEnd,
}

impl Step {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Renew => "renew",
            Self::GraceEnd => "grace_end",
        }
    }
}

/// A renewal job's subject: one step of one period of one subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Due {
    pub subscription: SubscriptionId,
    pub period_end: DateTime<Utc>,
    pub step: Step,
}

/// The steps due at `now` that no worker has claimed yet. Each is claimed inside `tx`
/// (commit it with the job), so one period is enqueued once however many schedulers run.
pub async fn claim_due(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
    grace_days: i64,
    limit: i64,
) -> sqlx::Result<Vec<Due>> {
    let grace = Duration::days(grace_days.max(0));
    let rows = sqlx::query!(
        r#"WITH due AS (
               SELECT s.id, s.current_period_end,
                      CASE WHEN s.status = 'active' THEN 'renew' ELSE 'grace_end' END AS "step!"
               FROM subscriptions s
               WHERE ((s.status = 'active' AND s.current_period_end <= $1)
                      OR (s.status = 'past_due' AND s.past_due_since + $2::interval <= $1))
                 -- steps claimed already (their jobs queued) do not hold back the others
                 AND NOT EXISTS (
                     SELECT 1 FROM renewal_claims c
                     WHERE c.subscription_id = s.id AND c.period_end = s.current_period_end
                       AND c.step = CASE WHEN s.status = 'active' THEN 'renew' ELSE 'grace_end' END)
               ORDER BY s.current_period_end LIMIT $3)
           INSERT INTO renewal_claims (subscription_id, period_end, step)
           SELECT id, current_period_end, "step!" FROM due
           ON CONFLICT DO NOTHING
           RETURNING subscription_id AS "subscription: SubscriptionId", period_end, step"#,
        now,
        sqlx::postgres::types::PgInterval::try_from(grace).unwrap_or_default(),
        limit
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| Due {
            subscription: r.subscription,
            period_end: r.period_end,
            step: if r.step == "renew" {
                Step::Renew
            } else {
                Step::GraceEnd
            },
        })
        .collect())
}

/// What a renewal step did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Renewal {
    /// Paid for the next period (possibly on the scheduled plan).
    Renewed(Subscription),
    /// Could not be paid: `past_due`, with the plan kept for the grace period.
    PastDue(Subscription),
    /// Ended as scheduled (`canceled`) or after the grace period (`expired`).
    Ended(Subscription),
    /// Nothing to do: another run did this step, or the subscription changed since.
    Stale,
}

/// Carries out `due` at `now`. Idempotent: a step whose period has moved on, or whose
/// subscription is no longer in the state it was claimed in, does nothing.
pub async fn run_due(pool: &PgPool, due: Due, currency: &str, now: DateTime<Utc>) -> sqlx::Result<Renewal> {
    let mut tx = pool.begin().await?;
    let owner = sqlx::query_scalar!(
        r#"SELECT workspace_id AS "w: WorkspaceId" FROM subscriptions WHERE id = $1"#,
        due.subscription as SubscriptionId
    )
    .fetch_optional(&mut *tx)
    .await?;
    let Some(owner) = owner else {
        return Ok(Renewal::Stale);
    };
    lock_workspace(&mut tx, owner).await?;
    let s: Option<Subscription> = select_subscriptions!(
        "WHERE s.id = $1 FOR UPDATE OF s",
        due.subscription as SubscriptionId
    )
    .fetch_optional(&mut *tx)
    .await?
    .map(Into::into);
    let Some(s) = s else { return Ok(Renewal::Stale) };
    if s.current_period_end != due.period_end {
        return Ok(Renewal::Stale);
    }
    // A retired plan keeps its subscribers until renewal, and renews no more.
    let renews_on_retired = sqlx::query_scalar!(
        r#"SELECT retired_at IS NOT NULL AS "r!" FROM plans WHERE id = $1"#,
        s.next_plan_id.unwrap_or(s.plan_id) as PlanId
    )
    .fetch_one(&mut *tx)
    .await?;
    let outcome = match (s.status, due.step) {
        (Status::Active, Step::Renew) if renews_on_retired => {
            end(
                &mut tx,
                &s,
                Status::Canceled,
                s.current_period_end,
                None,
                "Ended at the end of the period: its plan was retired",
            )
            .await?;
            Renewal::Ended(reload(&mut tx, s.id).await?)
        }
        (Status::Active, Step::Renew) if s.cancel_at_period_end => {
            end(
                &mut tx,
                &s,
                Status::Canceled,
                s.current_period_end,
                None,
                "Canceled at the end of the period",
            )
            .await?;
            Renewal::Ended(reload(&mut tx, s.id).await?)
        }
        (Status::Active, Step::Renew) => renew(&mut tx, &s, currency, now).await?,
        (Status::PastDue, Step::GraceEnd) => match renew(&mut tx, &s, currency, now).await? {
            Renewal::PastDue(s) => {
                end(
                    &mut tx,
                    &s,
                    Status::Expired,
                    now,
                    None,
                    "Expired: the renewal was not paid in the grace period",
                )
                .await?;
                Renewal::Ended(reload(&mut tx, s.id).await?)
            }
            other => other,
        },
        _ => Renewal::Stale,
    };
    tx.commit().await?;
    Ok(outcome)
}

async fn reload(conn: &mut PgConnection, id: SubscriptionId) -> sqlx::Result<Subscription> {
    Ok(select_subscriptions!("WHERE s.id = $1", id as SubscriptionId)
        .fetch_one(conn)
        .await?
        .into())
}

/// Charges the next period of `s` (on its scheduled plan and cycle, if any). The period
/// runs on from the end of the last one, so a renewal late by its grace days buys no time.
async fn renew(
    conn: &mut PgConnection,
    s: &Subscription,
    currency: &str,
    now: DateTime<Utc>,
) -> sqlx::Result<Renewal> {
    let plan_id = s.next_plan_id.unwrap_or(s.plan_id);
    let cycle = s.next_cycle.unwrap_or(s.cycle);
    let Some(plan) = plans::get(conn, plan_id).await? else {
        end(conn, s, Status::Canceled, now, None, "The plan no longer exists").await?;
        return Ok(Renewal::Ended(reload(conn, s.id).await?));
    };
    if plan.is_free() {
        end(
            conn,
            s,
            Status::Canceled,
            s.current_period_end,
            None,
            "Moved to a free plan",
        )
        .await?;
        return Ok(Renewal::Ended(reload(conn, s.id).await?));
    }
    let price = plan.price(cycle);
    let start = s.current_period_end;
    let end_at = add_months(start, cycle.months());
    let mut sp = sqlx::Connection::begin(&mut *conn).await?;
    let charged = ledger::post(
        &mut sp,
        s.workspace_id,
        Kind::Subscription,
        -price,
        &format!(
            "{} ({}) until {}",
            plan.name,
            cycle.as_str(),
            end_at.format("%Y-%m-%d")
        ),
        Refs {
            subscription: Some(s.id),
            ..Refs::default()
        },
    )
    .await;
    match charged {
        Ok(_) => sp.commit().await?,
        Err(LedgerError::Database(e)) => return Err(e),
        Err(LedgerError::Insufficient { need, have }) => {
            sp.rollback().await?;
            if s.status == Status::Active {
                sqlx::query!(
                    "UPDATE subscriptions SET status = 'past_due', past_due_since = $2, updated_at = now() WHERE id = $1",
                    s.id as SubscriptionId,
                    now
                )
                .execute(&mut *conn)
                .await?;
                record(
                    conn,
                    s.workspace_id,
                    "past_due",
                    Some(s.id),
                    Some(plan.id),
                    &format!(
                        "Renewal of {} needs {}, the balance is {}",
                        plan.name,
                        super::format_cents(need, currency),
                        super::format_cents(have, currency)
                    ),
                    None,
                )
                .await?;
            }
            return Ok(Renewal::PastDue(reload(conn, s.id).await?));
        }
        Err(LedgerError::NotFound | LedgerError::BadAmount) => {
            sp.rollback().await?;
            return Ok(Renewal::Stale);
        }
    }
    sqlx::query!(
        "UPDATE subscriptions SET status = 'active', plan_id = $2, cycle = $3, price_cents = $4,
                current_period_start = $5, current_period_end = $6, next_plan_id = NULL, next_cycle = NULL,
                past_due_since = NULL, updated_at = now()
         WHERE id = $1",
        s.id as SubscriptionId,
        plan.id as PlanId,
        cycle.as_str(),
        price,
        start,
        end_at
    )
    .execute(&mut *conn)
    .await?;
    set_workspace_plan(conn, s.workspace_id, Some(plan.id), None).await?;
    record(
        conn,
        s.workspace_id,
        "renewed",
        Some(s.id),
        Some(plan.id),
        &format!(
            "{} ({}) until {}",
            plan.name,
            cycle.as_str(),
            end_at.format("%Y-%m-%d")
        ),
        None,
    )
    .await?;
    Ok(Renewal::Renewed(reload(conn, s.id).await?))
}

/// After money came in: renews the workspace's past-due subscription if it can now be paid.
pub async fn retry_past_due(
    pool: &PgPool,
    workspace: WorkspaceId,
    currency: &str,
    now: DateTime<Utc>,
) -> sqlx::Result<Option<Renewal>> {
    let mut tx = pool.begin().await?;
    let Some(s) = lock_current(&mut tx, workspace).await? else {
        return Ok(None);
    };
    if s.status != Status::PastDue {
        return Ok(None);
    }
    let outcome = renew(&mut tx, &s, currency, now).await?;
    tx.commit().await?;
    Ok(Some(outcome))
}
