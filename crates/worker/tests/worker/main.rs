//! ender-worker's integration tests: the periodic scheduler and the queue, on real PostgreSQL.

#![allow(
    clippy::unwrap_used,
    reason = "a test should fail loudly on any unexpected error"
)]

mod delivery;
mod exports;
mod fcm;
mod renewals;
mod scheduled_sends;
mod webhooks;

use std::time::Duration;

use chrono::Utc;
use ender_core::testing::test_db;
use ender_worker::{Schedule, WorkerConfig, fire_due, jobs};
use tokio_util::sync::CancellationToken;

/// Worker settings for a test: defaults, no FCM, the local store in `ENDER_DATA_DIR`.
pub fn config(name: &str) -> WorkerConfig {
    WorkerConfig {
        name: Some(name.to_owned()),
        purge_every_secs: 3600,
        message_retention_days: 0,
        sms: ender_core::config::SmsConfig::default(),
        fcm: ender_worker::fcm::FcmConfig {
            fcm_service_account: None,
            fcm_url: "http://127.0.0.1:9".to_owned(),
            fcm_token_url: None,
        },
        webhooks: ender_worker::webhooks::WebhookConfig::default(),
        secrets: ender_core::config::SecretConfig::default(),
        storage: ender_core::config::StorageConfig::default(),
        export_keep_days: 7,
    }
}

#[tokio::test]
async fn two_workers_enqueue_each_periodic_tick_once() {
    let db = test_db().await;
    let schedule = Schedule {
        name: jobs::purge_expired::SCHEDULE,
        every: Duration::from_secs(3600),
        queue: jobs::purge_expired::QUEUE,
    };
    let (a, b) = tokio::join!(
        fire_due(&db.pool, &schedule, "worker-a"),
        fire_due(&db.pool, &schedule, "worker-b")
    );
    assert_eq!(u8::from(a.unwrap()) + u8::from(b.unwrap()), 1);
    assert!(!fire_due(&db.pool, &schedule, "worker-c").await.unwrap());
    let jobs: i64 = sqlx::query_scalar("SELECT count(*) FROM apalis.jobs WHERE job_type = $1")
        .bind(jobs::purge_expired::QUEUE)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(jobs, 1);
}

#[tokio::test]
async fn running_workers_purge_expired_rows_and_stop_on_request() {
    let db = test_db().await;
    let mut conn = db.pool.acquire().await.unwrap();
    ender_core::session::repo::save(
        &mut conn,
        "expired",
        &serde_json::json!({}),
        Utc::now() - chrono::Duration::minutes(5),
        None,
    )
    .await
    .unwrap();
    let shutdown = CancellationToken::new();
    let keyring = std::sync::Arc::new(
        ender_core::secret::Keyring::parse(&ender_core::secret::Keyring::generate_entry(1)).unwrap(),
    );
    let cfg = |name: &str| WorkerConfig {
        purge_every_secs: 1,
        webhooks: ender_worker::webhooks::WebhookConfig {
            webhook_retry_secs: vec![5],
            webhook_timeout_secs: 5,
            webhook_concurrency: 4,
            ..Default::default()
        },
        ..config(name)
    };
    let one = tokio::spawn(ender_worker::run(
        db.pool.clone(),
        cfg("one"),
        keyring.clone(),
        None,
        std::env::temp_dir(),
        shutdown.clone(),
    ));
    let two = tokio::spawn(ender_worker::run(
        db.pool.clone(),
        cfg("two"),
        keyring.clone(),
        None,
        std::env::temp_dir(),
        shutdown.clone(),
    ));

    let mut purged = false;
    for _ in 0..200 {
        let left: i64 = sqlx::query_scalar("SELECT count(*) FROM sessions")
            .fetch_one(&db.pool)
            .await
            .unwrap();
        if left == 0 {
            purged = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(purged, "the expired session was not purged within 20 s");
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(30), async {
        one.await.unwrap().unwrap();
        two.await.unwrap().unwrap();
    })
    .await
    .expect("workers stop after shutdown");

    // Every tick was enqueued once, however many workers ran.
    let duplicates: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT job FROM apalis.jobs WHERE job_type = $1 GROUP BY job HAVING count(*) > 1) d",
    )
    .bind(jobs::purge_expired::QUEUE)
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(duplicates, 0);
}
