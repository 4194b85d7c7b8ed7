//! Accepting sends through the group-commit batcher.

use ender_core::config::SmsConfig;
use ender_core::sms::batch::Batcher;
use ender_core::sms::send::{SendError, SendRequest, validate};
use ender_core::testing::test_db;

#[tokio::test]
async fn batched_sends_of_several_users_respect_each_quota_exactly() {
    let db = test_db().await;
    let cfg = SmsConfig {
        max_sms_per_month: 5,
        ..SmsConfig::default()
    };
    let (a, b) = (
        ender_core::testing::create_workspace(&db.pool, "a@example.org").await,
        ender_core::testing::create_workspace(&db.pool, "b@example.org").await,
    );
    let batcher = Batcher::start(db.pool.clone(), cfg.clone());
    let mut tasks = Vec::new();
    for (who, n) in [(a, 10), (b, 3)] {
        for i in 0..n {
            let (batcher, pool, cfg) = (batcher.clone(), db.pool.clone(), cfg.clone());
            tasks.push(tokio::spawn(async move {
                let req = SendRequest {
                    recipients: vec![format!("+1555400{i:04}")],
                    body: "batched".into(),
                    ..Default::default()
                };
                let v = validate(&pool, &cfg, who, &req).await.unwrap();
                (who, batcher.submit(who, v).await)
            }));
        }
    }
    let (mut ok_a, mut ok_b, mut refused) = (0, 0, 0);
    for t in tasks {
        match t.await.unwrap() {
            (who, Ok(res)) => {
                assert_eq!(res.recipients_count, 1);
                if who == a { ok_a += 1 } else { ok_b += 1 }
            }
            (_, Err(SendError::Quota(q))) => {
                assert_eq!((q.limit, q.available), (5, 0));
                refused += 1;
            }
            (_, Err(e)) => panic!("{e}"),
        }
    }
    assert_eq!((ok_a, ok_b, refused), (5, 3, 5));
    let usage: Vec<i32> = sqlx::query_scalar("SELECT sent FROM sms_usage ORDER BY sent")
        .fetch_all(&db.pool)
        .await
        .unwrap();
    assert_eq!(usage, [3, 5]);
    let messages: i64 = sqlx::query_scalar("SELECT count(*) FROM messages")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM message_events")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!((messages, events), (8, 8));
}
