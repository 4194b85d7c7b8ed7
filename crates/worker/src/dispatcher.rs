//! The dispatcher: wakes on `NOTIFY ender_dispatch` (sent in the same transaction as new
//! or re-queued messages) and sweeps every couple of seconds, running the watchdog and a
//! dispatch pass for every workspace with due pending messages. Pending rows are the durable
//! queue: a dispatcher that was down finds them on its first sweep. Any number of workers
//! may run this at once (passes are serialised per workspace in the database).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use ender_core::bus::DISPATCH;
use ender_core::config::SmsConfig;
use ender_core::device::announce_presence;
use ender_core::sms::dispatch::{Assignment, dispatch_workspace, watchdog};
use ender_core::workspace::WorkspaceId;
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::{Mutex, Notify};
use tokio_util::sync::CancellationToken;

use crate::fcm::Fcm;

/// How often the watchdog sweeps when nothing wakes the dispatcher.
pub const SWEEP_EVERY: Duration = Duration::from_secs(2);

pub async fn run(pool: PgPool, cfg: SmsConfig, fcm: Option<Arc<Fcm>>, shutdown: CancellationToken) {
    let due: Arc<Mutex<BTreeSet<uuid::Uuid>>> = Arc::default();
    let wake = Arc::new(Notify::new());
    tokio::spawn(listen(pool.clone(), due.clone(), wake.clone(), shutdown.clone()));
    let mut sweep = tokio::time::interval(SWEEP_EVERY);
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = wake.notified() => {}
            _ = sweep.tick() => {
                // Devices that became reachable or unreachable without a stream (FCM, polling).
                if let Err(e) = announce_presence(&pool, cfg.device_seen_window_secs, None).await {
                    tracing::warn!(error = %e, "announcing device presence failed");
                }
                match watchdog(&pool, &cfg).await {
                    Ok(report) => {
                        if report.leases_expired + report.claims_timed_out + report.expired > 0 {
                            tracing::info!(
                                leases_expired = report.leases_expired,
                                claims_timed_out = report.claims_timed_out,
                                expired = report.expired,
                                failed = report.failed,
                                "watchdog resolved overdue messages"
                            );
                        }
                        due.lock().await.extend(report.workspaces_to_dispatch.iter().map(|u| u.0));
                    }
                    Err(e) => tracing::warn!(error = %e, "watchdog pass failed"),
                }
            }
        }
        let workspaces: Vec<uuid::Uuid> = std::mem::take(&mut *due.lock().await).into_iter().collect();
        for workspace in workspaces {
            match dispatch_workspace(&pool, &cfg, WorkspaceId(workspace)).await {
                Ok(assignments) => wake_devices(&pool, fcm.as_deref(), &assignments).await,
                Err(e) => {
                    tracing::warn!(workspace.id = %workspace, error = %e, "dispatch pass failed; retrying on the next sweep");
                }
            }
        }
    }
}

async fn listen(
    pool: PgPool,
    due: Arc<Mutex<BTreeSet<uuid::Uuid>>>,
    wake: Arc<Notify>,
    shutdown: CancellationToken,
) {
    loop {
        let result: sqlx::Result<()> = async {
            let mut listener = PgListener::connect_with(&pool).await?;
            listener.listen(DISPATCH).await?;
            loop {
                let n = tokio::select! {
                    () = shutdown.cancelled() => return Ok(()),
                    n = listener.recv() => n?,
                };
                if let Ok(workspace) = n.payload().parse::<uuid::Uuid>() {
                    due.lock().await.insert(workspace);
                    wake.notify_one();
                }
            }
        }
        .await;
        if shutdown.is_cancelled() {
            return;
        }
        if let Err(e) = result {
            tracing::warn!(error = %e, "dispatch listener lost its connection; reconnecting");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Tickles Android devices through FCM (stream-holding devices hear the bus instead).
async fn wake_devices(pool: &PgPool, fcm: Option<&Fcm>, assignments: &[Assignment]) {
    let Some(fcm) = fcm else { return };
    for a in assignments {
        if let Err(e) = fcm.tickle_device(pool, a.device_id).await {
            tracing::warn!(device.id = %a.device_id, error = %format!("{e:#}"), "FCM wake-up failed");
        }
    }
}
