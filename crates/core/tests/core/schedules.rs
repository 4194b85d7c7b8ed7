//! Scheduled sends fired with a controlled clock: once per due time, across workers,
//! after downtime, over DST changes, and when a send is refused.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use ender_core::config::SmsConfig;
use ender_core::contact::{ContactInput, repo as contacts};
use ender_core::schedule::run::fire_due;
use ender_core::schedule::{ScheduleForm, ScheduleInput, repo};
use ender_core::template::{TemplateInput, repo as templates};
use ender_core::testing::{create_workspace, test_db};
use ender_core::workspace::WorkspaceId;
use sqlx::PgPool;

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().to_utc()
}

async fn with_device(pool: &PgPool, user: WorkspaceId) {
    let input = ender_core::device::DeviceInput::parse("Phone", "android", "").unwrap();
    ender_core::device::create(pool, user, &input, 10).await.unwrap();
}

fn daily(cron: &str, tz: &str, body: &str, recipients: &[&str]) -> ScheduleForm {
    ScheduleForm {
        kind: "recurring".into(),
        cron_expression: cron.into(),
        timezone: tz.into(),
        recipients: recipients.iter().map(|r| (*r).to_owned()).collect(),
        body: body.into(),
        ..ScheduleForm::default()
    }
}

async fn bodies(pool: &PgPool) -> Vec<(String, String)> {
    ender_core::testing::message_texts(pool)
        .await
        .into_iter()
        .map(|(_, to, body)| (to, body))
        .collect()
}

async fn run_count(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM schedule_runs")
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_daily_template_to_a_group_reaches_each_contact_once_a_day_by_name() {
    let db = test_db().await;
    let user = create_workspace(&db.pool, "clinic@example.org").await;
    with_device(&db.pool, user).await;
    let group = contacts::create_group(&db.pool, user, "Patients", 500)
        .await
        .unwrap();
    for (name, phone) in [("Ana", "+447700900001"), ("Ben", "+447700900002")] {
        let input = ContactInput::parse(name, phone, "", vec![group.id]).unwrap();
        contacts::create(&db.pool, user, &input, 200_000).await.unwrap();
    }
    let template = templates::create(
        &db.pool,
        user,
        &TemplateInput::parse("Reminder", "Hi {{name}}, your visit is {{when}}.").unwrap(),
        500,
    )
    .await
    .unwrap();
    let mut vars = BTreeMap::new();
    vars.insert("when".to_owned(), "today".to_owned());
    let form = ScheduleForm {
        kind: "recurring".into(),
        cron_expression: "0 9 * * *".into(),
        timezone: "Europe/London".into(),
        group_ids: vec![group.id.to_string()],
        template_id: template.id.to_string(),
        variables: vars,
        ..ScheduleForm::default()
    };
    let created_at = at("2026-11-22T12:00:00Z");
    let input = ScheduleInput::parse(&form, created_at).unwrap();
    let s = repo::create(&db.pool, user, &input, 10, created_at)
        .await
        .unwrap();
    // 09:00 in London is 09:00 UTC in winter.
    assert_eq!(
        s.upcoming(created_at, 3),
        [
            at("2026-11-23T09:00:00Z"),
            at("2026-11-24T09:00:00Z"),
            at("2026-11-25T09:00:00Z")
        ]
    );
    let cfg = SmsConfig::default();
    // Before the due time nothing fires; then each day fires once however often the
    // workers look.
    assert!(
        fire_due(&db.pool, &cfg, at("2026-11-23T08:59:59Z"), 10)
            .await
            .unwrap()
            .is_empty()
    );
    for day in 23..=25 {
        for second in [0, 1, 30] {
            let now = at(&format!("2026-11-{day}T09:00:{second:02}Z"));
            let fired = fire_due(&db.pool, &cfg, now, 10).await.unwrap();
            assert_eq!(fired.len(), usize::from(second == 0), "day {day} second {second}");
        }
    }
    let got = bodies(&db.pool).await;
    assert_eq!(got.len(), 6);
    assert_eq!(
        got.iter()
            .filter(|(_, b)| b == "Hi Ana, your visit is today.")
            .count(),
        3
    );
    assert_eq!(
        got.iter()
            .filter(|(_, b)| b == "Hi Ben, your visit is today.")
            .count(),
        3
    );
    let runs = repo::runs(&db.pool, user, s.id, 10).await.unwrap();
    assert_eq!(runs.len(), 3);
    assert!(
        runs.iter()
            .all(|r| r.messages == 2 && !r.late && r.error.is_empty())
    );
    // A contact added to the group later is included from the next run on.
    let input = ContactInput::parse("Cy", "+447700900003", "", vec![group.id]).unwrap();
    contacts::create(&db.pool, user, &input, 200_000).await.unwrap();
    fire_due(&db.pool, &cfg, at("2026-11-26T09:00:00Z"), 10)
        .await
        .unwrap();
    assert!(
        bodies(&db.pool)
            .await
            .iter()
            .any(|(_, b)| b == "Hi Cy, your visit is today.")
    );
}

#[tokio::test]
async fn after_downtime_a_missed_run_fires_once_and_is_marked_late() {
    let db = test_db().await;
    let user = create_workspace(&db.pool, "late@example.org").await;
    with_device(&db.pool, user).await;
    let t0 = at("2026-11-22T12:00:00Z");
    let input = ScheduleInput::parse(&daily("*/5 * * * *", "UTC", "tick", &["+15550001111"]), t0).unwrap();
    let s = repo::create(&db.pool, user, &input, 10, t0).await.unwrap();
    // The workers were down for an hour: twelve due times passed.
    let back = at("2026-11-22T13:02:10Z");
    let fired = fire_due(&db.pool, &SmsConfig::default(), back, 10).await.unwrap();
    assert_eq!(fired.len(), 1);
    assert!(fired[0].late);
    assert_eq!(fired[0].due_at, at("2026-11-22T12:05:00Z"));
    let again = fire_due(&db.pool, &SmsConfig::default(), back, 10).await.unwrap();
    assert!(again.is_empty());
    let s = repo::find(&db.pool, user, s.id).await.unwrap().unwrap();
    assert_eq!(s.next_run_at, Some(at("2026-11-22T13:05:00Z")));
    assert_eq!(bodies(&db.pool).await.len(), 1);
}

#[tokio::test]
async fn concurrent_workers_fire_each_due_time_exactly_once() {
    let db = test_db().await;
    let user = create_workspace(&db.pool, "race@example.org").await;
    with_device(&db.pool, user).await;
    let t0 = at("2026-11-22T12:00:00Z");
    for i in 0..20 {
        let input = ScheduleInput::parse(
            &daily("* * * * *", "UTC", &format!("s{i}"), &["+15550002222"]),
            t0,
        )
        .unwrap();
        repo::create(&db.pool, user, &input, 100, t0).await.unwrap();
    }
    let cfg = SmsConfig::default();
    for minute in 1..=3 {
        let now = t0 + Duration::minutes(minute) + Duration::milliseconds(300);
        let mut tasks = Vec::new();
        for _ in 0..4 {
            let (pool, cfg) = (db.pool.clone(), cfg.clone());
            tasks.push(tokio::spawn(async move {
                fire_due(&pool, &cfg, now, 100).await.unwrap().len()
            }));
        }
        let mut total = 0;
        for t in tasks {
            total += t.await.unwrap();
        }
        assert_eq!(total, 20, "minute {minute}");
    }
    assert_eq!(run_count(&db.pool).await, 60);
    assert_eq!(bodies(&db.pool).await.len(), 60);
}

#[tokio::test]
async fn dst_days_fire_once_at_a_real_time() {
    let db = test_db().await;
    let user = create_workspace(&db.pool, "dst@example.org").await;
    with_device(&db.pool, user).await;
    let t0 = at("2026-03-28T12:00:00Z");
    // 01:30 does not exist in London on 29 March 2026 (01:00 GMT → 02:00 BST).
    let input = ScheduleInput::parse(
        &daily("30 1 * * *", "Europe/London", "gap", &["+15550003333"]),
        t0,
    )
    .unwrap();
    let s = repo::create(&db.pool, user, &input, 10, t0).await.unwrap();
    assert_eq!(
        s.next_run_at,
        Some(at("2026-03-29T01:00:00Z")),
        "02:00 BST, the next valid minute"
    );
    let cfg = SmsConfig::default();
    assert_eq!(
        fire_due(&db.pool, &cfg, at("2026-03-29T01:00:05Z"), 10)
            .await
            .unwrap()
            .len(),
        1
    );
    let s = repo::find(&db.pool, user, s.id).await.unwrap().unwrap();
    assert_eq!(
        s.next_run_at,
        Some(at("2026-03-30T00:30:00Z")),
        "01:30 BST the day after"
    );
    assert!(repo::delete(&db.pool, user, s.id).await.unwrap());

    // 01:30 exists twice on 25 October 2026 (02:00 BST → 01:00 GMT): it fires once.
    let t1 = at("2026-10-24T12:00:00Z");
    let input = ScheduleInput::parse(
        &daily("30 1 * * *", "Europe/London", "overlap", &["+15550004444"]),
        t1,
    )
    .unwrap();
    let s = repo::create(&db.pool, user, &input, 10, t1).await.unwrap();
    assert_eq!(
        s.next_run_at,
        Some(at("2026-10-25T00:30:00Z")),
        "the first 01:30 (BST)"
    );
    assert_eq!(
        fire_due(&db.pool, &cfg, at("2026-10-25T00:30:01Z"), 10)
            .await
            .unwrap()
            .len(),
        1
    );
    let s = repo::find(&db.pool, user, s.id).await.unwrap().unwrap();
    assert_eq!(
        s.next_run_at,
        Some(at("2026-10-26T01:30:00Z")),
        "not the second 01:30 (GMT)"
    );
    assert!(
        fire_due(&db.pool, &cfg, at("2026-10-25T01:30:01Z"), 10)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn a_refused_send_is_recorded_and_retried_only_at_the_next_run() {
    let db = test_db().await;
    let user = create_workspace(&db.pool, "quota@example.org").await;
    let t0 = at("2026-11-22T12:00:00Z");
    let input = ScheduleInput::parse(&daily("0 * * * *", "UTC", "hourly", &["+15550005555"]), t0).unwrap();
    let s = repo::create(&db.pool, user, &input, 10, t0).await.unwrap();
    let cfg = SmsConfig::default();
    // No device at all: the run is recorded with the reason, and the schedule waits for
    // its next due time rather than trying every minute.
    let fired = fire_due(&db.pool, &cfg, at("2026-11-22T13:00:01Z"), 10)
        .await
        .unwrap();
    assert_eq!(fired.len(), 1);
    assert!(fired[0].error.contains("No enabled device"), "{}", fired[0].error);
    assert!(
        fire_due(&db.pool, &cfg, at("2026-11-22T13:01:01Z"), 10)
            .await
            .unwrap()
            .is_empty()
    );
    with_device(&db.pool, user).await;
    // The monthly allowance is used up: recorded, nothing sent, nothing counted.
    let tight = SmsConfig {
        max_sms_per_month: 0,
        ..SmsConfig::default()
    };
    let fired = fire_due(&db.pool, &tight, at("2026-11-22T14:00:01Z"), 10)
        .await
        .unwrap();
    assert!(fired[0].error.contains("quota"), "{}", fired[0].error);
    assert_eq!(bodies(&db.pool).await.len(), 0);
    // With room again, the next run sends.
    let fired = fire_due(&db.pool, &cfg, at("2026-11-22T15:00:01Z"), 10)
        .await
        .unwrap();
    assert_eq!((fired[0].messages, fired[0].error.as_str()), (1, ""));
    let runs = repo::runs(&db.pool, user, s.id, 10).await.unwrap();
    assert_eq!(runs.len(), 3);
}

#[tokio::test]
async fn a_one_time_send_fires_once_and_completes_and_paused_ones_wait() {
    let db = test_db().await;
    let user = create_workspace(&db.pool, "once@example.org").await;
    with_device(&db.pool, user).await;
    let t0 = at("2026-11-22T12:00:00Z");
    let form = ScheduleForm {
        kind: "once".into(),
        run_at: "2026-11-22T14:30".into(),
        timezone: "America/Sao_Paulo".into(),
        recipients: vec!["+5511999990000".into()],
        body: "once".into(),
        ..ScheduleForm::default()
    };
    let input = ScheduleInput::parse(&form, t0).unwrap();
    let s = repo::create(&db.pool, user, &input, 10, t0).await.unwrap();
    assert_eq!(
        s.next_run_at,
        Some(at("2026-11-22T17:30:00Z")),
        "São Paulo is UTC−3"
    );
    repo::pause(&db.pool, user, s.id).await.unwrap();
    let cfg = SmsConfig::default();
    assert!(
        fire_due(&db.pool, &cfg, at("2026-11-22T17:31:00Z"), 10)
            .await
            .unwrap()
            .is_empty()
    );
    // Resumed after its time: it fires at once, late.
    repo::resume(&db.pool, user, s.id, at("2026-11-22T18:00:00Z"))
        .await
        .unwrap();
    let fired = fire_due(&db.pool, &cfg, at("2026-11-22T18:00:01Z"), 10)
        .await
        .unwrap();
    assert_eq!(fired.len(), 1);
    assert!(fired[0].late);
    let s = repo::find(&db.pool, user, s.id).await.unwrap().unwrap();
    assert_eq!(s.status, ender_core::schedule::Status::Completed);
    assert!(
        fire_due(&db.pool, &cfg, at("2026-11-23T18:00:01Z"), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(repo::resume(&db.pool, user, s.id, t0).await.is_err());
}

#[tokio::test]
async fn the_open_schedule_limit_holds_under_concurrent_creation() {
    let db = test_db().await;
    let user = create_workspace(&db.pool, "limit@example.org").await;
    let t0 = Utc::now();
    let mut tasks = Vec::new();
    for i in 0..6 {
        let pool = db.pool.clone();
        tasks.push(tokio::spawn(async move {
            let input = ScheduleInput::parse(
                &daily("0 9 * * *", "UTC", &format!("n{i}"), &["+15550006666"]),
                t0,
            )
            .unwrap();
            repo::create(&pool, user, &input, 3, t0).await.is_ok()
        }));
    }
    let mut ok = 0;
    for t in tasks {
        ok += usize::from(t.await.unwrap());
    }
    assert_eq!(ok, 3);
    let other = create_workspace(&db.pool, "other@example.org").await;
    let (mine, _) = repo::list(&db.pool, user, 0, 50).await.unwrap();
    assert!(repo::find(&db.pool, other, mine[0].id).await.unwrap().is_none());
    assert!(!repo::delete(&db.pool, other, mine[0].id).await.unwrap());
}

#[tokio::test]
async fn reviving_a_completed_send_needs_room_under_the_limit() {
    let db = test_db().await;
    let user = create_workspace(&db.pool, "revive@example.org").await;
    with_device(&db.pool, user).await;
    let t0 = at("2026-11-22T12:00:00Z");
    let once = |at: &str| ScheduleForm {
        kind: "once".into(),
        run_at: at.into(),
        timezone: "UTC".into(),
        recipients: vec!["+15550007777".into()],
        body: "once".into(),
        ..ScheduleForm::default()
    };
    let done = repo::create(
        &db.pool,
        user,
        &ScheduleInput::parse(&once("2026-11-22T13:00"), t0).unwrap(),
        1,
        t0,
    )
    .await
    .unwrap();
    fire_due(&db.pool, &SmsConfig::default(), at("2026-11-22T13:00:01Z"), 10)
        .await
        .unwrap();
    // The completed send no longer counts, so another fits under a limit of one.
    let t1 = at("2026-11-22T14:00:00Z");
    repo::create(
        &db.pool,
        user,
        &ScheduleInput::parse(&daily("0 9 * * *", "UTC", "d", &["+15550007777"]), t1).unwrap(),
        1,
        t1,
    )
    .await
    .unwrap();
    // Giving the completed one a new time would make two open: refused.
    let again = ScheduleInput::parse(&once("2026-11-23T13:00"), t1).unwrap();
    assert!(matches!(
        repo::update(&db.pool, user, done.id, &again, 1, t1).await,
        Err(ender_core::schedule::ScheduleError::Limit { limit: 1, used: 1 })
    ));
    let revived = repo::update(&db.pool, user, done.id, &again, 2, t1)
        .await
        .unwrap();
    assert_eq!(revived.status, ender_core::schedule::Status::Active);
}
