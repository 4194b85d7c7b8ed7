//! Rate-limit counters, periodic-job claims and the purge of expired rows.

use chrono::{Duration, Utc};
use ender_core::ratelimit::{self, Limit};
use ender_core::testing::test_db;
use ender_core::{cron, maintenance};

#[tokio::test]
async fn rate_limits_count_atomically_under_concurrency() {
    let db = test_db().await;
    let limit = Limit::per_minute(25);
    let mut tasks = Vec::new();
    for _ in 0..40 {
        let pool = db.pool.clone();
        tasks.push(tokio::spawn(async move {
            let mut conn = pool.acquire().await.unwrap();
            ratelimit::allow(&mut conn, "k", limit).await.unwrap()
        }));
    }
    let mut allowed = 0;
    for t in tasks {
        allowed += usize::from(t.await.unwrap());
    }
    // A window boundary may fall inside the burst, so allow for two windows.
    assert!((25..=40).contains(&allowed), "{allowed}");
    let mut conn = db.pool.acquire().await.unwrap();
    let total: i64 = sqlx::query_scalar("SELECT sum(hits)::bigint FROM rate_limits WHERE key = 'k'")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(total, 40);
    assert_eq!(ratelimit::current(&mut conn, "other", limit).await.unwrap(), 0);
}

#[tokio::test]
async fn each_tick_is_claimed_once() {
    let db = test_db().await;
    let at = cron::last_boundary(Utc::now(), std::time::Duration::from_secs(60));
    let mut claims = 0;
    for worker in ["a", "b", "c"] {
        let mut conn = db.pool.acquire().await.unwrap();
        claims += usize::from(cron::claim_tick(&mut conn, "s", at, worker).await.unwrap());
    }
    assert_eq!(claims, 1);
    let mut conn = db.pool.acquire().await.unwrap();
    assert!(
        cron::claim_tick(&mut conn, "s", at + Duration::minutes(1), "a")
            .await
            .unwrap()
    );
    assert!(cron::claim_tick(&mut conn, "other", at, "a").await.unwrap());
}

#[tokio::test]
async fn purge_removes_only_what_has_expired() {
    let db = test_db().await;
    let mut conn = db.pool.acquire().await.unwrap();
    let past = Utc::now() - Duration::minutes(1);
    let future = Utc::now() + Duration::hours(1);
    ender_core::session::repo::save(&mut conn, "old", &serde_json::json!({}), past, None)
        .await
        .unwrap();
    ender_core::session::repo::save(&mut conn, "live", &serde_json::json!({}), future, None)
        .await
        .unwrap();
    sqlx::query("INSERT INTO setup_tokens (token_hash, expires_at) VALUES ('\\x01', $1), ('\\x02', $2)")
        .bind(past)
        .bind(future)
        .execute(&mut *conn)
        .await
        .unwrap();
    sqlx::query("INSERT INTO rate_limits (key, window_start, hits) VALUES ('a', now() - interval '2 days', 3), ('b', now(), 1)")
        .execute(&mut *conn)
        .await
        .unwrap();
    // Webhook history: a 10-day-old and a fresh delivery, each with an attempt; kept 7 days.
    let user = ender_core::testing::create_workspace(&db.pool, "purge@example.org").await;
    sqlx::query(
        "INSERT INTO webhook_endpoints (id, workspace_id, url, events) VALUES ('00000000-0000-7000-8000-000000000001', $1, 'https://example.com/h', '{sms_sent}');
         ",
    )
    .bind(user.0)
    .execute(&mut *conn)
    .await
    .unwrap();
    for (id, age) in [
        ("00000000-0000-7000-8000-00000000000a", 10),
        ("00000000-0000-7000-8000-00000000000b", 0),
    ] {
        sqlx::query(
            "INSERT INTO webhook_deliveries (id, endpoint_id, workspace_id, event, body, status, created_at, updated_at)
             VALUES ($1::uuid, '00000000-0000-7000-8000-000000000001', $2, 'sms_sent', '\\x7b7d', 'succeeded',
                     now() - make_interval(days => $3), now() - make_interval(days => $3));
             ",
        )
        .bind(id)
        .bind(user.0)
        .bind(age)
        .execute(&mut *conn)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO webhook_attempts (delivery_id, endpoint_id, created_at)
             VALUES ($1::uuid, '00000000-0000-7000-8000-000000000001', now() - make_interval(days => $2))",
        )
        .bind(id)
        .bind(age)
        .execute(&mut *conn)
        .await
        .unwrap();
    }
    // API keys: revoked or expired for longer than the purge keeps them, or not.
    for (name, revoked_days, expired_days) in [
        ("revoked long ago", Some(maintenance::DEAD_KEY_DAYS + 1), None),
        ("expired long ago", None, Some(maintenance::DEAD_KEY_DAYS + 1)),
        ("revoked yesterday", Some(1), None),
        ("expired yesterday", None, Some(1)),
        ("active", None, None),
    ] {
        sqlx::query(
            "INSERT INTO api_keys (id, workspace_id, name, prefix, key_hash, revoked_at, expires_at)
             VALUES (gen_random_uuid(), $1, $2, 'vk_test', sha256($2::bytea),
                     now() - make_interval(days => $3), now() - make_interval(days => $4))",
        )
        .bind(user.0)
        .bind(name)
        .bind(revoked_days)
        .bind(expired_days)
        .execute(&mut *conn)
        .await
        .unwrap();
    }
    let report = maintenance::purge_expired(&mut conn, 7, 0).await.unwrap();
    assert_eq!(
        (
            report.sessions,
            report.setup_tokens,
            report.rate_limits,
            report.webhook_attempts,
            report.api_keys
        ),
        (1, 1, 1, 1, 2)
    );
    let keys: Vec<String> = sqlx::query_scalar("SELECT name FROM api_keys ORDER BY name")
        .fetch_all(&mut *conn)
        .await
        .unwrap();
    assert_eq!(keys, ["active", "expired yesterday", "revoked yesterday"]);
    let left: Vec<uuid::Uuid> = sqlx::query_scalar("SELECT id FROM webhook_deliveries")
        .fetch_all(&mut *conn)
        .await
        .unwrap();
    assert_eq!(
        left,
        [uuid::Uuid::parse_str("00000000-0000-7000-8000-00000000000b").unwrap()]
    );
    let again = maintenance::purge_expired(&mut conn, 7, 0).await.unwrap();
    assert_eq!(again, maintenance::PurgeReport::default(), "idempotent");
    assert!(
        ender_core::session::repo::load(&mut conn, "live")
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn message_retention_removes_only_old_finished_messages_and_not_the_quota() {
    let db = test_db().await;
    let user = ender_core::testing::create_workspace(&db.pool, "retention@example.org").await;
    let mut conn = db.pool.acquire().await.unwrap();
    for (label, status, days) in [
        ("old delivered", "delivered", 40),
        ("old failed", "failed", 40),
        ("old received", "received", 40),
        ("old pending", "pending", 40),
        ("new delivered", "delivered", 5),
    ] {
        let direction = if status == "received" {
            "incoming"
        } else {
            "outgoing"
        };
        let id: uuid::Uuid = sqlx::query_scalar(
            "INSERT INTO messages (id, workspace_id, direction, body, encoding, segments, status, created_at)
             VALUES (gen_random_uuid(), $1, $2, $3, 'gsm7', 1, $4, now() - make_interval(days => $5))
             RETURNING id",
        )
        .bind(user.0)
        .bind(direction)
        .bind(label)
        .bind(status)
        .bind(days)
        .fetch_one(&mut *conn)
        .await
        .unwrap();
        sqlx::query("INSERT INTO message_events (message_id, status) VALUES ($1, $2)")
            .bind(id)
            .bind(status)
            .execute(&mut *conn)
            .await
            .unwrap();
    }
    sqlx::query(
        "INSERT INTO sms_usage (workspace_id, month, sent) VALUES ($1, date_trunc('month', now())::date, 4)",
    )
    .bind(user.0)
    .execute(&mut *conn)
    .await
    .unwrap();
    // Off by default: nothing goes.
    assert_eq!(
        maintenance::purge_expired(&mut conn, 7, 0)
            .await
            .unwrap()
            .messages,
        0
    );
    let report = maintenance::purge_expired(&mut conn, 7, 30).await.unwrap();
    assert_eq!(report.messages, 3);
    let mut left: Vec<String> = sqlx::query_scalar("SELECT body FROM messages")
        .fetch_all(&mut *conn)
        .await
        .unwrap();
    left.sort();
    assert_eq!(left, ["new delivered", "old pending"]);
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM message_events")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(events, 2, "their history went with them");
    let used: i32 = sqlx::query_scalar("SELECT sent FROM sms_usage WHERE workspace_id = $1")
        .bind(user.0)
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(used, 4, "the month's usage is kept");
    assert_eq!(
        maintenance::purge_expired(&mut conn, 7, 30)
            .await
            .unwrap()
            .messages,
        0
    );
}
