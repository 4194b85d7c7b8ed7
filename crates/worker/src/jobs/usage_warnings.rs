//! Usage warnings (billing on): a send that takes a workspace past 80% or 100% of its
//! period's SMS raises the usage row's `warned_percent`; the scheduler claims each raised
//! row once (moving `mailed_percent` up with the job in one transaction) and the job mails
//! the workspace's owners.

use apalis::prelude::{BoxDynError, Data, TaskBuilder};
use chrono::NaiveDate;
use ender_core::mail::Mail;
use sqlx::PgPool;

use super::renewals::Billing;

pub const QUEUE: &str = "ender.billing-mail";

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct UsageWarning {
    pub workspace: uuid::Uuid,
    pub period: NaiveDate,
    pub percent: i16,
    pub sent: i32,
}

/// Enqueues a mail for every usage row whose warning is not mailed yet. Returns how many.
pub async fn enqueue(pool: &PgPool) -> anyhow::Result<usize> {
    let mut tx = pool.begin().await?;
    let rows = sqlx::query!(
        "WITH due AS (
             SELECT workspace_id, month FROM sms_usage WHERE warned_percent > mailed_percent
             LIMIT 500 FOR UPDATE SKIP LOCKED)
         UPDATE sms_usage u SET mailed_percent = u.warned_percent FROM due
         WHERE u.workspace_id = due.workspace_id AND u.month = due.month
         RETURNING u.workspace_id, u.month, u.warned_percent, u.sent"
    )
    .fetch_all(&mut *tx)
    .await?;
    if rows.is_empty() {
        return Ok(0);
    }
    let mut tasks = Vec::with_capacity(rows.len());
    for r in &rows {
        let job = UsageWarning {
            workspace: r.workspace_id,
            period: r.month,
            percent: r.warned_percent,
            sent: r.sent,
        };
        tasks.push(TaskBuilder::new(serde_json::to_vec(&job)?).build());
    }
    apalis_postgres::queries::push_tasks(&mut *tx, QUEUE, tasks).await?;
    tx.commit().await?;
    Ok(rows.len())
}

pub async fn handle(
    job: UsageWarning,
    pool: Data<PgPool>,
    billing: Data<Billing>,
) -> Result<(), BoxDynError> {
    let Some(notices) = &billing.notices else {
        return Ok(());
    };
    let owners = sqlx::query!(
        "SELECT u.email, w.name FROM workspace_members m JOIN users u ON u.id = m.user_id
         JOIN workspaces w ON w.id = m.workspace_id
         WHERE m.workspace_id = $1 AND m.role = 'owner' AND w.deleted_at IS NULL ORDER BY m.created_at",
        job.workspace
    )
    .fetch_all(&*pool)
    .await?;
    let link = format!("{}/billing", notices.public_url.trim_end_matches('/'));
    for o in owners {
        let (subject, text) = if job.percent >= 100 {
            (
                format!("{} has used all its SMS for this period", o.name),
                format!(
                    "Your workspace {name} has sent all the SMS its plan allows this period ({sent}).\n\
                     Further sends are refused until the period renews, unless you choose a bigger plan:\n\n  {link}\n",
                    name = o.name,
                    sent = job.sent
                ),
            )
        } else {
            (
                format!("{} has used {}% of its SMS for this period", o.name, job.percent),
                format!(
                    "Your workspace {name} has sent {sent} SMS this period, {percent}% of what its plan allows.\n\
                     When the allowance is used up, sends are refused until the period renews. Plans:\n\n  {link}\n",
                    name = o.name,
                    sent = job.sent,
                    percent = job.percent
                ),
            )
        };
        let mail = Mail {
            to: o.email,
            subject,
            text,
        };
        if let Err(e) = notices.mailer.send(&mail).await {
            tracing::warn!(workspace.id = %job.workspace, error = %e, "mailing a usage warning failed");
        }
    }
    Ok(())
}
