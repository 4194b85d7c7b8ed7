//! Feeds periodic jobs into their queues. Every worker process runs this loop; a claim row
//! per (schedule, fire time), inserted in the same transaction as the job, makes each tick
//! enqueue exactly once however many workers run.

use std::time::Duration;

use apalis::prelude::TaskBuilder;
use chrono::Utc;
use ender_core::cron::{claim_tick, last_boundary};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

/// A job to enqueue every `every`, on wall-clock boundaries.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub name: &'static str,
    pub every: Duration,
    pub queue: &'static str,
}

/// `store`: where exports are kept (expired ones are deleted once a minute). `renewals`:
/// with billing on, the grace days of past-due subscriptions; each tick then also enqueues
/// the subscription renewals that are due and the usage warnings to mail.
pub(crate) async fn run(
    pool: PgPool,
    schedules: Vec<Schedule>,
    worker: String,
    renewals: Option<i64>,
    store: ender_core::store::Store,
    shutdown: CancellationToken,
) {
    let mut ticker = tokio::time::interval(Duration::from_secs(5));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut ticks = 0u64;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        // Once a minute: exports past their keeping time leave the store.
        if ticks.is_multiple_of(12)
            && let Err(e) = crate::jobs::exports::sweep_expired(&pool, &store).await
        {
            tracing::warn!(error = %e, "deleting expired exports failed");
        }
        ticks += 1;
        for schedule in &schedules {
            if let Err(e) = fire_due(&pool, schedule, &worker).await {
                tracing::warn!(schedule = schedule.name, error = %e, "enqueueing a periodic job failed");
            }
        }
        if let Some(grace_days) = renewals {
            if let Err(e) = crate::jobs::renewals::enqueue_due(&pool, Utc::now(), grace_days).await {
                tracing::warn!(error = %e, "enqueueing subscription renewals failed");
            }
            if let Err(e) = crate::jobs::usage_warnings::enqueue(&pool).await {
                tracing::warn!(error = %e, "enqueueing usage warnings failed");
            }
        }
    }
}

/// Enqueues the schedule's current tick unless some worker already did. Returns whether
/// this call enqueued it.
pub async fn fire_due(pool: &PgPool, schedule: &Schedule, worker: &str) -> anyhow::Result<bool> {
    let fire_at = last_boundary(Utc::now(), schedule.every);
    let mut tx = pool.begin().await?;
    if !claim_tick(&mut tx, schedule.name, fire_at, worker).await? {
        return Ok(false);
    }
    let args = serde_json::json!({ "fire_at": fire_at });
    let task = TaskBuilder::new(serde_json::to_vec(&args)?).build();
    apalis_postgres::queries::push_tasks(&mut *tx, schedule.queue, vec![task]).await?;
    tx.commit().await?;
    tracing::debug!(schedule = schedule.name, "periodic job enqueued");
    Ok(true)
}
