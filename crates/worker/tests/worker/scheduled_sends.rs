//! Scheduled sends fired by real `ender-worker` processes: two at once, one killed and
//! restarted, and every due time still fires exactly once.

use std::time::Duration;

use chrono::Utc;
use ender_core::schedule::{ScheduleForm, ScheduleInput, repo};
use ender_core::testing::{create_workspace, test_db};

fn once_in(secs: i64, n: usize) -> ScheduleForm {
    let at = Utc::now() + chrono::Duration::seconds(secs);
    ScheduleForm {
        kind: "once".into(),
        run_at: at.format("%Y-%m-%dT%H:%M:%S").to_string(),
        timezone: "UTC".into(),
        recipients: vec![format!("+1555777{n:04}")],
        body: format!("once {n}"),
        ..ScheduleForm::default()
    }
}

async fn count(pool: &sqlx::PgPool, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

async fn wait_for(pool: &sqlx::PgPool, sql: &'static str, want: i64, secs: u64) {
    for _ in 0..secs * 10 {
        if count(pool, sql).await >= want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{sql}: wanted {want}, have {}", count(pool, sql).await);
}

#[tokio::test]
async fn two_worker_processes_fire_each_due_schedule_exactly_once() {
    let db = test_db().await;
    let user = create_workspace(&db.pool, "sched@example.org").await;
    let device = ender_core::device::DeviceInput::parse("Phone", "android", "").unwrap();
    ender_core::device::create(&db.pool, user, &device, 10)
        .await
        .unwrap();
    let now = Utc::now();
    for n in 0..20 {
        let input = ScheduleInput::parse(&once_in(3, n), now).unwrap();
        repo::create(&db.pool, user, &input, 1000, now).await.unwrap();
    }
    // Recurring schedules whose due time passed during "downtime": each fires once, late.
    for n in 0..10 {
        let form = ScheduleForm {
            kind: "recurring".into(),
            cron_expression: "0 0 1 1 *".into(),
            recipients: vec![format!("+1555888{n:04}")],
            body: format!("yearly {n}"),
            ..ScheduleForm::default()
        };
        let s = repo::create(
            &db.pool,
            user,
            &ScheduleInput::parse(&form, now).unwrap(),
            1000,
            now,
        )
        .await
        .unwrap();
        sqlx::query("UPDATE scheduled_sends SET next_run_at = now() - interval '3 days' WHERE id = $1")
            .bind(s.id.0)
            .execute(&db.pool)
            .await
            .unwrap();
    }
    let data = tempfile::tempdir().unwrap();
    let start = |name: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_ender-worker"))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DATABASE_URL", db.url())
            .env("ENDER_DATA_DIR", data.path())
            .env("ENDER_SECRET_KEYS", ender_core::testing::TEST_SECRET_KEYS)
            .env("ENDER_WORKER_NAME", name)
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    let (mut a, mut b) = (start("a"), start("b"));
    wait_for(&db.pool, "SELECT count(*) FROM schedule_runs", 30, 60).await;
    // One worker dies hard; a new one takes its place; more schedules fall due.
    a.kill().unwrap();
    a.wait().unwrap();
    let mut a2 = start("a2");
    let now = Utc::now();
    for n in 20..40 {
        let input = ScheduleInput::parse(&once_in(2, n), now).unwrap();
        repo::create(&db.pool, user, &input, 1000, now).await.unwrap();
    }
    wait_for(&db.pool, "SELECT count(*) FROM schedule_runs", 50, 60).await;
    // Give any double-firing a chance to show before counting.
    tokio::time::sleep(Duration::from_secs(3)).await;
    for child in [&mut b, &mut a2] {
        child.kill().unwrap();
        child.wait().unwrap();
    }
    assert_eq!(count(&db.pool, "SELECT count(*) FROM schedule_runs").await, 50);
    assert_eq!(count(&db.pool, "SELECT count(*) FROM messages").await, 50);
    let texts: std::collections::HashSet<String> = ender_core::testing::message_texts(&db.pool)
        .await
        .into_iter()
        .map(|(_, _, body)| body)
        .collect();
    assert_eq!(texts.len(), 50);
    assert_eq!(
        count(&db.pool, "SELECT count(*) FROM schedule_runs WHERE late").await,
        10
    );
    assert_eq!(
        count(&db.pool, "SELECT count(*) FROM schedule_runs WHERE error <> ''").await,
        0
    );
    assert_eq!(
        count(
            &db.pool,
            "SELECT count(*) FROM scheduled_sends WHERE kind = 'once' AND status = 'completed'"
        )
        .await,
        40
    );
    assert_eq!(
        count(
            &db.pool,
            "SELECT count(*) FROM scheduled_sends WHERE kind = 'recurring' AND next_run_at > now()"
        )
        .await,
        10
    );
}
