//! Removes expired sessions, used or expired tokens, old rate-limit windows and old
//! history (webhook attempts, finished imports, schedule runs, long-dead API keys). Idempotent:
//! running it twice removes nothing more.

use apalis::prelude::{BoxDynError, Data};
use chrono::{DateTime, Utc};
use sqlx::PgPool;

pub const QUEUE: &str = "ender.maintenance";
pub const SCHEDULE: &str = "purge_expired";

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct PurgeExpired {
    pub fire_at: DateTime<Utc>,
}

/// How long history is kept.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    pub webhook_days: i64,
    /// 0: messages are kept.
    pub message_days: i64,
}

pub async fn handle(
    job: PurgeExpired,
    pool: Data<PgPool>,
    retention: Data<Retention>,
) -> Result<(), BoxDynError> {
    let mut conn = pool.acquire().await?;
    let report =
        ender_core::maintenance::purge_expired(&mut conn, retention.webhook_days, retention.message_days)
            .await?;
    tracing::info!(
        fire_at = %job.fire_at,
        sessions = report.sessions,
        email_tokens = report.email_tokens,
        setup_tokens = report.setup_tokens,
        rate_limits = report.rate_limits,
        finished_jobs = report.finished_jobs,
        webhook_attempts = report.webhook_attempts,
        contact_imports = report.contact_imports,
        schedule_runs = report.schedule_runs,
        api_keys = report.api_keys,
        messages = report.messages,
        "purged expired rows"
    );
    Ok(())
}
