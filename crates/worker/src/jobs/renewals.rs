//! Subscription renewals (billing on). The scheduler claims each due step of each
//! subscription (a period's renewal, or the end of a past-due grace period) with the job
//! that carries it out, in one transaction, so every step is enqueued once however many
//! workers run; the job is idempotent besides. Owners are mailed when a renewal could not
//! be paid and when the subscription expires.

use apalis::prelude::{BoxDynError, Data, TaskBuilder};
use chrono::{DateTime, Utc};
use ender_core::billing::subscriptions::{self, Due, Renewal, Status, Subscription};
use ender_core::mail::Mail;
use sqlx::PgPool;

use crate::webhooks::OwnerNotices;

pub const QUEUE: &str = "ender.billing";

/// Claims at most this many due steps per pass.
const CLAIM_BATCH: i64 = 500;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct RenewalJob {
    pub due: Due,
}

/// Billing settings the job needs.
#[derive(Debug, Clone)]
pub struct Billing {
    pub currency: String,
    pub notices: Option<OwnerNotices>,
    pub grace_days: i64,
}

/// Enqueues a job for every step due at `now` not enqueued yet. Returns how many.
pub async fn enqueue_due(pool: &PgPool, now: DateTime<Utc>, grace_days: i64) -> anyhow::Result<usize> {
    let mut tx = pool.begin().await?;
    let due = subscriptions::claim_due(&mut tx, now, grace_days, CLAIM_BATCH).await?;
    if due.is_empty() {
        return Ok(0);
    }
    let mut tasks = Vec::with_capacity(due.len());
    for d in &due {
        tasks.push(TaskBuilder::new(serde_json::to_vec(&RenewalJob { due: *d })?).build());
    }
    apalis_postgres::queries::push_tasks(&mut *tx, QUEUE, tasks).await?;
    tx.commit().await?;
    tracing::info!(steps = due.len(), "subscription renewals enqueued");
    Ok(due.len())
}

pub async fn handle(job: RenewalJob, pool: Data<PgPool>, billing: Data<Billing>) -> Result<(), BoxDynError> {
    let outcome = match subscriptions::run_due(&pool, job.due, &billing.currency, Utc::now()).await {
        Ok(o) => o,
        Err(e) => {
            // Let the next pass claim the step again rather than lose it.
            let _ = sqlx::query!(
                "DELETE FROM renewal_claims WHERE subscription_id = $1 AND period_end = $2 AND step = $3",
                job.due.subscription.0,
                job.due.period_end,
                job.due.step.as_str()
            )
            .execute(&*pool)
            .await;
            return Err(e.into());
        }
    };
    match &outcome {
        Renewal::Renewed(s) => {
            tracing::info!(subscription.id = %s.id, plan = %s.plan_name, "subscription renewed")
        }
        Renewal::PastDue(s) => {
            tracing::info!(subscription.id = %s.id, "subscription past due");
            tell_owners(&pool, &billing, s, past_due_mail(s, billing.grace_days)).await;
        }
        Renewal::Ended(s) => {
            tracing::info!(subscription.id = %s.id, status = s.status.as_str(), "subscription ended");
            if s.status == Status::Expired {
                tell_owners(&pool, &billing, s, expired_mail(s)).await;
            }
        }
        Renewal::Stale => {}
    }
    Ok(())
}

fn past_due_mail(s: &Subscription, grace_days: i64) -> (String, String) {
    (
        format!("Your {} plan could not be renewed", s.plan_name),
        format!(
            "The renewal of {plan} for your workspace could not be paid from its balance.\n\n\
             The workspace keeps {plan} for {grace_days} more days. Top up the balance on the\n\
             Billing page before then and the plan renews at once; otherwise the workspace\n\
             moves to the free plan.\n",
            plan = s.plan_name
        ),
    )
}

fn expired_mail(s: &Subscription) -> (String, String) {
    (
        format!("Your {} plan has expired", s.plan_name),
        format!(
            "The renewal of {plan} was not paid in the grace period, so your workspace is now on\n\
             the free plan and its limits. Choose a plan again on the Billing page at any time.\n",
            plan = s.plan_name
        ),
    )
}

/// Mails the workspace's owners (who manage billing).
async fn tell_owners(pool: &PgPool, billing: &Billing, s: &Subscription, (subject, text): (String, String)) {
    let Some(notices) = &billing.notices else { return };
    let Ok(owners) = sqlx::query_scalar!(
        "SELECT u.email FROM workspace_members m JOIN users u ON u.id = m.user_id
         WHERE m.workspace_id = $1 AND m.role = 'owner' ORDER BY m.created_at",
        s.workspace_id.0
    )
    .fetch_all(pool)
    .await
    else {
        return;
    };
    let link = format!("{}/billing", notices.public_url.trim_end_matches('/'));
    for to in owners {
        let mail = Mail {
            to,
            subject: subject.clone(),
            text: format!("{text}\n  {link}\n"),
        };
        if let Err(e) = notices.mailer.send(&mail).await {
            tracing::warn!(subscription.id = %s.id, error = %e, "mailing a billing notice failed");
        }
    }
}
