//! Fires workspaces' scheduled sends. Every worker process runs this loop; the claim in
//! [`ender_core::schedule::run::fire_due`] makes each due time fire once however many run.

use std::time::Duration;

use chrono::Utc;
use ender_core::config::SmsConfig;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

/// How often due schedules are looked for; a schedule fires at most this long after its
/// due time while workers run.
const POLL: Duration = Duration::from_secs(1);
/// Schedules fired per look before yielding to the next tick.
const PER_TICK: usize = 50;

pub(crate) async fn run(pool: PgPool, cfg: SmsConfig, shutdown: CancellationToken) {
    let mut ticker = tokio::time::interval(POLL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        match ender_core::schedule::run::fire_due(&pool, &cfg, Utc::now(), PER_TICK).await {
            Ok(fired) if fired.len() == PER_TICK => ticker.reset_immediately(),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "firing scheduled sends failed"),
        }
    }
}
