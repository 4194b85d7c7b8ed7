//! Subscription renewals as jobs: each due step enqueued once across schedulers, and
//! running workers turn an unpaid renewal into `past_due` with a mail to the owners.

use std::time::Duration;

use chrono::Utc;
use ender_core::billing::ledger::{self, Kind, Refs};
use ender_core::billing::{Cycle, PlanId, subscriptions};
use ender_core::config::{BillingConfig, SmsConfig};
use ender_core::mail::Mailer;
use ender_core::testing::{create_user, test_db};
use ender_core::workspace::{WorkspaceId, repo};
use ender_worker::WorkerConfig;
use ender_worker::jobs::renewals;
use ender_worker::webhooks::OwnerNotices;
use tokio_util::sync::CancellationToken;

async fn subscribed(
    pool: &sqlx::PgPool,
    email: &str,
    credit: i64,
    started: chrono::DateTime<Utc>,
) -> WorkspaceId {
    let user = create_user(pool, email).await;
    let mut conn = pool.acquire().await.unwrap();
    let ws = repo::personal(&mut conn, user).await.unwrap().unwrap().id;
    ledger::post(&mut conn, ws, Kind::Adjustment, credit, "credit", Refs::default())
        .await
        .unwrap();
    drop(conn);
    let hobby: uuid::Uuid = sqlx::query_scalar("SELECT id FROM plans WHERE slug = 'hobby'")
        .fetch_one(pool)
        .await
        .unwrap();
    subscriptions::upgrade(pool, ws, None, PlanId(hobby), Cycle::Monthly, "usd", started)
        .await
        .unwrap();
    ws
}

#[tokio::test]
async fn two_schedulers_enqueue_each_due_renewal_once() {
    let db = test_db().await;
    subscribed(
        &db.pool,
        "a@example.org",
        99,
        Utc::now() - chrono::Duration::days(40),
    )
    .await;
    subscribed(
        &db.pool,
        "b@example.org",
        99,
        Utc::now() - chrono::Duration::days(40),
    )
    .await;
    subscribed(&db.pool, "later@example.org", 99, Utc::now()).await;
    let now = Utc::now();
    let (a, b) = tokio::join!(
        renewals::enqueue_due(&db.pool, now, 3),
        renewals::enqueue_due(&db.pool, now, 3)
    );
    assert_eq!(a.unwrap() + b.unwrap(), 2, "the two due subscriptions, once each");
    assert_eq!(renewals::enqueue_due(&db.pool, now, 3).await.unwrap(), 0);
    let queued: i64 = sqlx::query_scalar("SELECT count(*) FROM apalis.jobs WHERE job_type = $1")
        .bind(renewals::QUEUE)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(queued, 2);
}

#[tokio::test]
async fn running_workers_mark_an_unpaid_renewal_past_due_and_mail_the_owner() {
    let db = test_db().await;
    let ws = subscribed(
        &db.pool,
        "owner@example.org",
        99,
        Utc::now() - chrono::Duration::days(40),
    )
    .await;
    let paid = subscribed(
        &db.pool,
        "rich@example.org",
        1000,
        Utc::now() - chrono::Duration::days(40),
    )
    .await;
    // A free workspace that has just sent 40 of its 50 SMS: 80% crossed.
    let busy_user = create_user(&db.pool, "busy@example.org").await;
    let mut conn = db.pool.acquire().await.unwrap();
    let busy = repo::personal(&mut conn, busy_user).await.unwrap().unwrap().id;
    let on = SmsConfig {
        billing: BillingConfig {
            enabled: true,
            ..BillingConfig::default()
        },
        ..SmsConfig::default()
    };
    let allowance = ender_core::billing::plans::allowance(&mut conn, busy, &on)
        .await
        .unwrap();
    assert_eq!(allowance.limit, 50);
    let total = ender_core::quota::consume(&mut conn, busy, 40, allowance)
        .await
        .unwrap();
    ender_core::quota::note_crossing(&mut conn, busy, allowance, 0, total)
        .await
        .unwrap();
    drop(conn);
    let mail_dir = tempfile::tempdir().unwrap();
    let shutdown = CancellationToken::new();
    let keyring = std::sync::Arc::new(
        ender_core::secret::Keyring::parse(&ender_core::secret::Keyring::generate_entry(1)).unwrap(),
    );
    let cfg = |name: &str| WorkerConfig {
        sms: SmsConfig {
            billing: BillingConfig {
                enabled: true,
                ..BillingConfig::default()
            },
            ..SmsConfig::default()
        },
        ..crate::config(name)
    };
    let notices = OwnerNotices {
        mailer: Mailer::files(mail_dir.path()),
        public_url: "https://sms.example.org".to_owned(),
    };
    let workers: Vec<_> = ["one", "two"]
        .into_iter()
        .map(|name| {
            tokio::spawn(ender_worker::run(
                db.pool.clone(),
                cfg(name),
                keyring.clone(),
                Some(notices.clone()),
                std::env::temp_dir(),
                shutdown.clone(),
            ))
        })
        .collect();
    let mut states = (String::new(), String::new());
    for _ in 0..300 {
        let status = |w: WorkspaceId| {
            let pool = db.pool.clone();
            async move {
                sqlx::query_scalar::<_, String>("SELECT status FROM subscriptions WHERE workspace_id = $1 ORDER BY created_at DESC LIMIT 1")
                    .bind(w.0)
                    .fetch_one(&pool)
                    .await
                    .unwrap()
            }
        };
        let renewed: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM billing_events WHERE workspace_id = $1 AND kind = 'renewed'",
        )
        .bind(paid.0)
        .fetch_one(&db.pool)
        .await
        .unwrap();
        states = (status(ws).await, status(paid).await);
        if states.0 == "past_due" && renewed > 0 && std::fs::read_dir(mail_dir.path()).unwrap().count() > 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(states.0, "past_due");
    assert_eq!(states.1, "active");
    shutdown.cancel();
    for w in workers {
        tokio::time::timeout(Duration::from_secs(30), w)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }
    let mails: Vec<String> = std::fs::read_dir(mail_dir.path())
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    assert_eq!(mails.len(), 2, "one mail to each owner concerned: {mails:?}");
    let renewal = mails.iter().find(|m| m.contains("could not be renewed")).unwrap();
    assert!(renewal.contains("owner@example.org") && renewal.contains("https://sms.example.org/billing"));
    let usage = mails.iter().find(|m| m.contains("80%")).unwrap();
    assert!(usage.contains("busy@example.org") && usage.contains("40 SMS"));
    let mailed: i16 = sqlx::query_scalar("SELECT mailed_percent FROM sms_usage WHERE workspace_id = $1")
        .bind(busy.0)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(mailed, 80, "the warning is mailed once");
    // The paid one was charged once for its new period.
    let charges: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM ledger_entries WHERE workspace_id = $1 AND kind = 'subscription'",
    )
    .bind(paid.0)
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(charges, 2);
}
