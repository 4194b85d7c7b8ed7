//! Ender's background worker: apalis queues on Postgres and the periodic jobs that feed
//! them. The `ender-worker` binary runs it alone; `ender-web` embeds it by default.

pub mod dispatcher;
pub mod fcm;
pub mod jobs;
pub mod scheduled_sends;
mod scheduler;
pub mod webhooks;

use std::time::Duration;

use apalis::prelude::*;
use apalis_postgres::{Config, PostgresStorage};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

pub use scheduler::{Schedule, fire_due};

/// Worker settings, from flags and the environment.
#[derive(clap::Args, Debug, Clone)]
pub struct WorkerConfig {
    /// A name unique among running workers (default: host name and process id).
    #[arg(long = "worker-name", env = "ENDER_WORKER_NAME")]
    pub name: Option<String>,

    /// How often expired sessions, tokens and counters are purged, in seconds.
    #[arg(long, env = "ENDER_PURGE_EVERY_SECS", default_value_t = 600)]
    pub purge_every_secs: u64,

    /// Days a finished message (sent, delivered, failed, canceled, expired or received) is
    /// kept, body and history included; 0 keeps messages for ever.
    #[arg(long, env = "ENDER_MESSAGE_RETENTION_DAYS", default_value_t = 0)]
    pub message_retention_days: u32,

    #[command(flatten)]
    pub sms: ender_core::config::SmsConfig,

    #[command(flatten)]
    pub fcm: fcm::FcmConfig,

    #[command(flatten)]
    pub webhooks: webhooks::WebhookConfig,

    #[command(flatten)]
    pub secrets: ender_core::config::SecretConfig,

    #[command(flatten)]
    pub storage: ender_core::config::StorageConfig,

    /// Days a finished export is kept in the store before it is deleted.
    #[arg(long, env = "ENDER_EXPORT_KEEP_DAYS", default_value_t = 7)]
    pub export_keep_days: u32,
}

impl WorkerConfig {
    fn worker_name(&self) -> String {
        self.name.clone().unwrap_or_else(|| {
            let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
            let host = host.trim();
            format!(
                "{}-{}",
                if host.is_empty() { "ender" } else { host },
                std::process::id()
            )
        })
    }

    /// The periodic schedules this worker feeds.
    fn schedules(&self) -> Vec<Schedule> {
        vec![Schedule {
            name: jobs::purge_expired::SCHEDULE,
            every: Duration::from_secs(self.purge_every_secs.max(1)),
            queue: jobs::purge_expired::QUEUE,
        }]
    }
}

/// Writes this worker's heartbeat every few seconds for the admin Health page.
async fn heartbeat(pool: PgPool, name: String, shutdown: CancellationToken) {
    let started = chrono::Utc::now();
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default();
    let pid = i32::try_from(std::process::id()).unwrap_or(0);
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(
        ender_core::admin::health::BEAT_SECS,
    ));
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let beat = async {
            let mut conn = pool.acquire().await?;
            ender_core::admin::health::beat(&mut conn, &name, env!("CARGO_PKG_VERSION"), &host, pid, started)
                .await
        };
        if let Err(e) = beat.await {
            tracing::debug!(error = %e, "writing the worker heartbeat failed");
        }
    }
}

/// Runs the queues and the scheduler until `shutdown` is cancelled. A failing database
/// restarts the workers with backoff instead of ending the process. `data_dir` holds the
/// local object store (when no bucket is configured) and temporary files.
pub async fn run(
    pool: PgPool,
    cfg: WorkerConfig,
    keyring: std::sync::Arc<ender_core::secret::Keyring>,
    notices: Option<webhooks::OwnerNotices>,
    data_dir: std::path::PathBuf,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let name = cfg.worker_name();
    tracing::info!(worker.name = %name, "worker starting");
    let exports = jobs::exports::Exports {
        store: ender_core::store::Store::from_config(&cfg.storage, &data_dir)?,
        tmp_dir: data_dir.join("tmp"),
        keep_days: i64::from(cfg.export_keep_days.max(1)),
        notices: notices.clone(),
    };
    let billing = cfg.sms.billing.enabled.then(|| jobs::renewals::Billing {
        currency: cfg.sms.billing.currency.clone(),
        notices: notices.clone(),
        grace_days: cfg.sms.billing.grace_days,
    });
    let scheduler = tokio::spawn(scheduler::run(
        pool.clone(),
        cfg.schedules(),
        name.clone(),
        billing.as_ref().map(|b| b.grace_days),
        exports.store.clone(),
        shutdown.clone(),
    ));
    tokio::spawn(heartbeat(pool.clone(), name.clone(), shutdown.clone()));
    let fcm = fcm::Fcm::from_config(&cfg.fcm)?.map(std::sync::Arc::new);
    if fcm.is_none() {
        tracing::info!(
            "no FCM service account configured: Android devices are woken by streams and polling only"
        );
    }
    {
        // Secrets stored before they were bound to their endpoint (review I9), and bodies
        // stored before they were sealed, or sealed before sealing was turned off (L7).
        let (pool, keyring) = (pool.clone(), keyring.clone());
        tokio::spawn(async move {
            match ender_core::webhook::endpoint::bind_legacy_secrets(&pool, &keyring).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(secrets = n, "webhook secrets re-sealed, bound to their endpoint"),
                Err(e) => {
                    tracing::warn!(error = %e, "webhook secrets could not be re-sealed; the next start tries again")
                }
            }
            match ender_core::secret::at_rest::convert_stored(&pool, ender_core::secret::at_rest::sealing())
                .await
            {
                Ok(c) if c == Default::default() => {}
                Ok(c) => tracing::info!(
                    sealed = ender_core::secret::at_rest::sealing(),
                    messages = c.messages,
                    templates = c.templates,
                    schedules = c.schedules,
                    webhook_payloads = c.webhook_payloads,
                    unreadable = c.unreadable,
                    "stored bodies brought to the ENDER_SEAL_BODIES setting"
                ),
                Err(e) => {
                    tracing::warn!(error = %e, "stored bodies could not be converted; the next start tries again")
                }
            }
        });
    }
    let deliverer = std::sync::Arc::new(webhooks::Deliverer::new(
        pool.clone(),
        keyring,
        cfg.webhooks.clone(),
        cfg.secrets.webhook_allow.clone(),
        notices,
    )?);
    let webhook_loop = tokio::spawn(deliverer.run(shutdown.clone()));
    let dispatcher = tokio::spawn(dispatcher::run(
        pool.clone(),
        cfg.sms.clone(),
        fcm,
        shutdown.clone(),
    ));
    let scheduled = tokio::spawn(scheduled_sends::run(
        pool.clone(),
        cfg.sms.clone(),
        shutdown.clone(),
    ));

    let mut backoff = Duration::from_secs(1);
    while !shutdown.is_cancelled() {
        let started = std::time::Instant::now();
        let retention = jobs::purge_expired::Retention {
            webhook_days: i64::from(cfg.webhooks.webhook_retention_days),
            message_days: i64::from(cfg.message_retention_days),
        };
        let monitor = monitor(&pool, &name, retention, billing.clone(), exports.clone());
        let signal = {
            let shutdown = shutdown.clone();
            async move {
                shutdown.cancelled().await;
                Ok(())
            }
        };
        match monitor.run_with_signal(signal).await {
            Ok(()) if shutdown.is_cancelled() => break,
            Ok(()) => tracing::warn!("the job workers stopped; restarting them"),
            Err(e) => tracing::warn!(error = %e, "the job workers failed; restarting them"),
        }
        if started.elapsed() > Duration::from_secs(60) {
            backoff = Duration::from_secs(1);
        }
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
    let _ = scheduler.await;
    let _ = dispatcher.await;
    let _ = scheduled.await;
    let _ = webhook_loop.await;
    tracing::info!(worker.name = %name, "worker stopped");
    Ok(())
}

/// The apalis monitor with one worker per queue.
fn monitor(
    pool: &PgPool,
    name: &str,
    retention: jobs::purge_expired::Retention,
    billing: Option<jobs::renewals::Billing>,
    exports: jobs::exports::Exports,
) -> Monitor {
    let maintenance = {
        let pool = pool.clone();
        let name = format!("{name}-maintenance");
        move |_restarts: usize| {
            let backend = PostgresStorage::<jobs::purge_expired::PurgeExpired>::new(&pool)
                .with_config(queue_config(jobs::purge_expired::QUEUE))
                .with_pubsub()
                .poll_with_interval(Duration::from_secs(2));
            WorkerBuilder::new(name.clone())
                .backend(backend)
                .data(pool.clone())
                .data(retention)
                .catch_panic()
                .enable_tracing()
                .build(jobs::purge_expired::handle)
        }
    };
    let exporter = {
        let pool = pool.clone();
        let name = format!("{name}-exports");
        move |_restarts: usize| {
            // Polls, like the billing queues: an export starting two seconds late is fine,
            // a listening connection held for it in every worker is not.
            let backend = PostgresStorage::<ender_core::export::ExportJob>::new(&pool)
                .with_config(queue_config(jobs::exports::QUEUE))
                .poll_with_interval(Duration::from_secs(2));
            WorkerBuilder::new(name.clone())
                .backend(backend)
                .data(pool.clone())
                .data(exports.clone())
                .catch_panic()
                .enable_tracing()
                .build(jobs::exports::handle)
        }
    };
    let mut monitor = Monitor::new().register(maintenance).register(exporter);
    // The billing queues poll (no listening connection each): a renewal or a mail a
    // couple of seconds late is fine, a connection held per queue per worker is not.
    if let Some(billing) = billing {
        /// A polling worker of one billing queue, with the pool and the billing settings.
        macro_rules! billing_worker {
            ($job:ty, $queue:expr, $suffix:literal, $handle:expr) => {{
                let (p, n, b) = (pool.clone(), format!("{name}-{}", $suffix), billing.clone());
                move |_restarts: usize| {
                    let backend = PostgresStorage::<$job>::new(&p)
                        .with_config(queue_config($queue))
                        .poll_with_interval(Duration::from_secs(2));
                    WorkerBuilder::new(n.clone())
                        .backend(backend)
                        .data(p.clone())
                        .data(b.clone())
                        .catch_panic()
                        .enable_tracing()
                        .build($handle)
                }
            }};
        }
        monitor = monitor
            .register(billing_worker!(
                jobs::renewals::RenewalJob,
                jobs::renewals::QUEUE,
                "billing",
                jobs::renewals::handle
            ))
            .register(billing_worker!(
                jobs::usage_warnings::UsageWarning,
                jobs::usage_warnings::QUEUE,
                "billing-mail",
                jobs::usage_warnings::handle
            ));
    }
    monitor
        // Restarts are ours (the loop in `run`), with backoff.
        .should_restart(|_, _| false)
        .with_terminator(tokio::time::sleep(Duration::from_secs(20)))
}

/// Queue settings: named queue, fast orphan recovery (a dead worker's job is picked up
/// again within seconds, not minutes).
pub fn queue_config(queue: &str) -> Config {
    Config::default()
        .queue(queue)
        .heartbeat_interval(Duration::from_secs(5))
        .missed_heartbeats(3)
        .batch_size(10)
}
