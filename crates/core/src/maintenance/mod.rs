//! Housekeeping: removing rows whose time has passed.

use sqlx::PgConnection;

/// Days a revoked or expired API key stays listed (as revoked or expired) before the
/// purge removes it.
pub const DEAD_KEY_DAYS: i32 = 30;

/// How many rows one purge removed, per table.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PurgeReport {
    pub sessions: u64,
    pub email_tokens: u64,
    pub setup_tokens: u64,
    pub rate_limits: u64,
    /// Old claims of periodic ticks and of subscription renewal steps.
    pub cron_ticks: u64,
    pub finished_jobs: u64,
    pub webhook_attempts: u64,
    pub contact_imports: u64,
    pub schedule_runs: u64,
    pub api_keys: u64,
    pub messages: u64,
    pub workspaces: u64,
}

/// Messages removed per statement by the message retention, so one purge never holds
/// locks on a whole table.
const MESSAGE_BATCH: i64 = 5_000;

/// Deletes expired sessions and tokens, finished rate-limit windows, old cron claims and
/// week-old finished jobs.
/// Safe to run from several workers at once.
/// Webhook history older than `webhook_retention_days` goes too (every attempt, and
/// deliveries that are finished or were held that long for a disabled endpoint).
/// Finished contact imports (with their uploaded files) go after a day, schedule run
/// history after a year. API keys revoked or expired for [`DEAD_KEY_DAYS`] go as well,
/// so rotating a key again and again cannot grow the table without end. With
/// `message_retention_days` above 0, finished messages older than that go with their
/// history, in batches (rows another transaction holds are left for the next run); the
/// monthly usage counters are kept apart, so the quota is not affected.
pub async fn purge_expired(
    conn: &mut PgConnection,
    webhook_retention_days: i64,
    message_retention_days: i64,
) -> sqlx::Result<PurgeReport> {
    let keep = webhook_retention_days.max(1) as f64;
    let sessions = sqlx::query!("DELETE FROM sessions WHERE expiry_date <= now()")
        .execute(&mut *conn)
        .await?
        .rows_affected();
    // Used tokens are kept a day so a second click can say "already used".
    let email_tokens = sqlx::query!(
        "DELETE FROM email_tokens WHERE expires_at <= now() OR used_at <= now() - interval '1 day'"
    )
    .execute(&mut *conn)
    .await?
    .rows_affected();
    let setup_tokens = sqlx::query!("DELETE FROM setup_tokens WHERE expires_at <= now()")
        .execute(&mut *conn)
        .await?
        .rows_affected();
    let rate_limits = sqlx::query!("DELETE FROM rate_limits WHERE window_start < now() - interval '1 day'")
        .execute(&mut *conn)
        .await?
        .rows_affected();
    let cron_ticks = sqlx::query!("DELETE FROM cron_ticks WHERE fire_at < now() - interval '7 days'")
        .execute(&mut *conn)
        .await?
        .rows_affected()
        // Claims of subscription renewal steps: their periods have long moved on.
        + sqlx::query!("DELETE FROM renewal_claims WHERE claimed_at < now() - interval '90 days'")
            .execute(&mut *conn)
            .await?
            .rows_affected();
    // apalis never removes finished jobs itself; a week of history is kept for inspection.
    let finished_jobs = sqlx::query!(
        "DELETE FROM apalis.jobs WHERE status IN ('Done', 'Killed') AND done_at < now() - interval '7 days'"
    )
    .execute(&mut *conn)
    .await?
    .rows_affected();
    let webhook_attempts = sqlx::query!(
        "DELETE FROM webhook_attempts WHERE created_at < now() - make_interval(days => $1::float8::int)",
        keep
    )
    .execute(&mut *conn)
    .await?
    .rows_affected();
    sqlx::query!(
        "DELETE FROM webhook_deliveries
         WHERE status IN ('succeeded', 'failed', 'dropped', 'held')
           AND updated_at < now() - make_interval(days => $1::float8::int)",
        keep
    )
    .execute(&mut *conn)
    .await?;
    sqlx::query!(
        "DELETE FROM webhook_endpoint_stats WHERE hour < now() - make_interval(days => $1::float8::int)",
        keep
    )
    .execute(&mut *conn)
    .await?;
    let contact_imports = sqlx::query!(
        "DELETE FROM contact_imports
         WHERE (status IN ('done', 'failed') AND finished_at < now() - interval '1 day')
            OR (status = 'preview' AND created_at < now() - interval '1 day')"
    )
    .execute(&mut *conn)
    .await?
    .rows_affected();
    let schedule_runs = sqlx::query!("DELETE FROM schedule_runs WHERE ran_at < now() - interval '365 days'")
        .execute(&mut *conn)
        .await?
        .rows_affected();
    let api_keys = sqlx::query!(
        "DELETE FROM api_keys
         WHERE revoked_at < now() - make_interval(days => $1)
            OR expires_at < now() - make_interval(days => $1)",
        DEAD_KEY_DAYS
    )
    .execute(&mut *conn)
    .await?
    .rows_affected();
    let mut messages = 0;
    if message_retention_days > 0 {
        loop {
            let removed = sqlx::query!(
                "DELETE FROM messages WHERE id IN (
                     SELECT id FROM messages
                     WHERE created_at < now() - make_interval(days => $1::bigint::int)
                       AND status IN ('sent', 'delivered', 'failed', 'canceled', 'expired', 'received')
                     LIMIT $2 FOR UPDATE SKIP LOCKED)",
                message_retention_days,
                MESSAGE_BATCH
            )
            .execute(&mut *conn)
            .await?
            .rows_affected();
            messages += removed;
            if removed < MESSAGE_BATCH as u64 {
                break;
            }
        }
    }
    // Deleted workspaces go, with all they still hold, once their last webhooks are out
    // (or a day after the deletion, delivered or not).
    let workspaces = sqlx::query!(
        "DELETE FROM workspaces w WHERE w.deleted_at IS NOT NULL
           AND (w.deleted_at < now() - interval '1 day'
                OR NOT EXISTS (SELECT 1 FROM webhook_deliveries d
                               WHERE d.workspace_id = w.id AND d.status IN ('pending', 'delivering')))"
    )
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok(PurgeReport {
        workspaces,
        api_keys,
        messages,
        contact_imports,
        schedule_runs,
        sessions,
        email_tokens,
        setup_tokens,
        rate_limits,
        cron_ticks,
        finished_jobs,
        webhook_attempts,
    })
}
