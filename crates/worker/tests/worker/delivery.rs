//! The delivery engine under failure: the retry schedule followed end to end (the clock is
//! moved by shifting the scheduled time in the database), a worker process killed with
//! `kill -9` while retries are pending and requests in flight, two engines sharing the
//! queue, a request's slot freed before its outcome is recorded, a slow endpoint beside a
//! healthy one, auto-disable with replay, and a host name that resolves to loopback at
//! connect time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use chrono::Utc;
use ender_core::mail::Mailer;
use ender_core::secret::Keyring;
use ender_core::testing::{TestDb, test_db};
use ender_core::webhook::endpoint::{self, EndpointInput};
use ender_core::webhook::{Event, Payload};
use ender_core::workspace::WorkspaceId;
use ender_worker::webhooks::{Deliverer, OwnerNotices, WebhookConfig};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// How a receiver path answers.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Mode {
    Ok,
    Fail,
    /// Never answers.
    Hang,
    /// Never answers every tenth request; answers the others at once.
    HangOneInTen,
    /// Fails the first request of each webhook-id, never answers the later ones.
    FailFirstThenHang,
}

#[derive(Default)]
struct Seen {
    /// (path, webhook-id, answered status or 0 for no answer)
    requests: Vec<(String, String, u16)>,
    in_flight: HashMap<String, usize>,
    max_in_flight: HashMap<String, usize>,
    modes: HashMap<String, Mode>,
    counts: HashMap<String, usize>,
    /// Extra time each answer takes.
    delay: Duration,
}

#[derive(Clone, Default)]
struct Hub(Arc<Mutex<Seen>>);

impl Hub {
    fn set(&self, path: &str, mode: Mode) {
        self.0.lock().unwrap().modes.insert(path.to_owned(), mode);
    }

    /// Successful receipts per webhook-id on `path`.
    fn delivered(&self, path: &str) -> HashMap<String, usize> {
        let mut out = HashMap::new();
        for (p, id, status) in &self.0.lock().unwrap().requests {
            if p == path && *status == 200 {
                *out.entry(id.clone()).or_default() += 1;
            }
        }
        out
    }

    fn requests(&self, path: &str) -> usize {
        self.0
            .lock()
            .unwrap()
            .requests
            .iter()
            .filter(|r| r.0 == path)
            .count()
    }
}

struct InFlight(Hub, String);

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Ok(mut s) = self.0.0.lock()
            && let Some(n) = s.in_flight.get_mut(&self.1)
        {
            *n -= 1;
        }
    }
}

async fn answer(
    State(hub): State<Hub>,
    Path(path): Path<String>,
    headers: HeaderMap,
    _body: Bytes,
) -> Response {
    let id = headers
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let (mode, nth, delay, seen_before) = {
        let mut s = hub.0.lock().unwrap();
        let seen_before = s.requests.iter().any(|r| r.1 == id);
        let n = s.in_flight.entry(path.clone()).or_default();
        *n += 1;
        let now = *n;
        let max = s.max_in_flight.entry(path.clone()).or_default();
        *max = (*max).max(now);
        let count = s.counts.entry(path.clone()).or_default();
        *count += 1;
        let nth = *count;
        (
            s.modes.get(&path).copied().unwrap_or(Mode::Ok),
            nth,
            s.delay,
            seen_before,
        )
    };
    let _guard = InFlight(hub.clone(), path.clone());
    let hang = mode == Mode::Hang
        || (mode == Mode::HangOneInTen && nth % 10 == 0)
        || (mode == Mode::FailFirstThenHang && seen_before);
    if hang {
        hub.0.lock().unwrap().requests.push((path.clone(), id.clone(), 0));
        std::future::pending::<()>().await;
    }
    tokio::time::sleep(delay).await;
    let status = if matches!(mode, Mode::Fail | Mode::FailFirstThenHang) {
        500
    } else {
        200
    };
    hub.0.lock().unwrap().requests.push((path, id, status));
    StatusCode::from_u16(status).unwrap().into_response()
}

async fn hub() -> (Hub, String) {
    let hub = Hub::default();
    let app = Router::new()
        .route("/{path}", post(answer))
        .with_state(hub.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (hub, base)
}

fn loopback() -> Vec<ipnet::IpNet> {
    vec!["127.0.0.0/8".parse().unwrap()]
}

fn config(retry: Vec<u64>, concurrency: i64) -> WebhookConfig {
    WebhookConfig {
        webhook_retry_secs: retry,
        webhook_timeout_secs: 2,
        webhook_concurrency: concurrency,
        ..WebhookConfig::default()
    }
}

async fn add_endpoint(db: &TestDb, keyring: &Keyring, user: WorkspaceId, url: &str) -> Uuid {
    let input = EndpointInput::parse(url, &["sms_sent".to_owned()], "", None, false, &loopback()).unwrap();
    endpoint::create(&db.pool, keyring, user, &input, i64::MAX)
        .await
        .unwrap()
        .0
        .id
}

async fn events(db: &TestDb, user: WorkspaceId, n: usize) {
    for i in 0..n {
        let mut tx = db.pool.begin().await.unwrap();
        let payload = Payload::new(Event::SmsSent, &format!("m-{i}"), Utc::now()).with("status", "sent");
        endpoint::enqueue(&mut tx, user, Event::SmsSent, None, &payload, None)
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }
}

async fn count(db: &TestDb, sql: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_one(&db.pool)
        .await
        .unwrap()
}

/// Polls `sql` (a count) until it reaches `n`, for at most `secs`.
async fn wait_count(db: &TestDb, sql: &str, n: i64, secs: u64) {
    let until = std::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let got = count(db, sql).await;
        if got >= n {
            return;
        }
        assert!(
            std::time::Instant::now() < until,
            "{sql}: {got} < {n} after {secs} s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_retry_schedule_is_followed_until_it_runs_out() {
    let (hub, base) = hub().await;
    hub.set("down", Mode::Fail);
    let db = test_db().await;
    let keyring = Arc::new(Keyring::parse(&Keyring::generate_entry(1)).unwrap());
    let user = ender_core::testing::create_workspace(&db.pool, "schedule@example.org").await;
    let ep = add_endpoint(&db, &keyring, user, &format!("{base}/down")).await;
    events(&db, user, 1).await;
    // The default schedule: immediately, then 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h.
    let schedule = WebhookConfig::default().webhook_retry_secs;
    let d = Arc::new(
        Deliverer::new(
            db.pool.clone(),
            keyring,
            config(schedule.clone(), 4),
            loopback(),
            None,
        )
        .unwrap(),
    );
    for (i, base_wait) in schedule.iter().enumerate() {
        assert_eq!(d.pass().await.unwrap(), 1, "attempt {}", i + 1);
        let (status, attempts, wait): (String, i32, f64) = sqlx::query_as(
            "SELECT status, attempts, extract(epoch FROM next_attempt_at - updated_at)::float8 FROM webhook_deliveries",
        )
        .fetch_one(&db.pool)
        .await
        .unwrap();
        assert_eq!((status.as_str(), attempts), ("pending", i as i32 + 1));
        let base_wait = *base_wait as f64;
        assert!(
            wait >= base_wait * 0.8 - 0.01 && wait <= base_wait * 1.2 + 0.01,
            "retry {} waits {wait} s, scheduled {base_wait} s ±20%",
            i + 1
        );
        // Nothing is due before its time.
        assert_eq!(d.pass().await.unwrap(), 0);
        // Move the clock to the scheduled time (past the breaker's pause too).
        sqlx::query("UPDATE webhook_deliveries SET next_attempt_at = now()")
            .execute(&db.pool)
            .await
            .unwrap();
        sqlx::query("UPDATE webhook_endpoints SET breaker_open_until = NULL")
            .execute(&db.pool)
            .await
            .unwrap();
    }
    assert_eq!(d.pass().await.unwrap(), 1, "the last retry");
    let status: String = sqlx::query_scalar("SELECT status FROM webhook_deliveries")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(status, "failed");
    assert_eq!(d.pass().await.unwrap(), 0);
    // One delivery, eight attempts, all with the same webhook-id.
    let ids: std::collections::HashSet<String> = hub
        .0
        .lock()
        .unwrap()
        .requests
        .iter()
        .map(|r| r.1.clone())
        .collect();
    assert_eq!((hub.requests("down"), ids.len()), (schedule.len() + 1, 1));
    assert_eq!(
        count(
            &db,
            &format!("SELECT count(*) FROM webhook_attempts WHERE endpoint_id = '{ep}'")
        )
        .await,
        schedule.len() as i64 + 1
    );
}

#[tokio::test]
async fn a_worker_killed_mid_delivery_loses_nothing() {
    let (hub, base) = hub().await;
    let db = test_db().await;
    // The workers open the payloads this process sealed: the same keys.
    let keys = ender_core::testing::TEST_SECRET_KEYS;
    let keyring = Keyring::parse(keys).unwrap();
    let user = ender_core::testing::create_workspace(&db.pool, "crash@example.org").await;
    // Five endpoints with four events each (fewer failures in a row than open a breaker).
    let paths = ["h1", "h2", "h3", "h4", "h5"];
    for p in paths {
        hub.set(p, Mode::FailFirstThenHang);
        add_endpoint(&db, &keyring, user, &format!("{base}/{p}")).await;
    }
    events(&db, user, 4).await;
    let data = tempfile::tempdir().unwrap();
    let start = |name: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_ender-worker"))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DATABASE_URL", db.url())
            .env("ENDER_DATA_DIR", data.path())
            .env("ENDER_SECRET_KEYS", keys)
            .env("ENDER_WEBHOOK_ALLOW", "127.0.0.0/8")
            .env("ENDER_WEBHOOK_RETRY_SECS", "1,1,1,1,1,1,1,1,1,1,1,1")
            .env("ENDER_WEBHOOK_TIMEOUT_SECS", "2")
            .env("ENDER_WORKER_NAME", name)
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut first = start("first");
    // Every event failed once; the retries hang at the receiver, in flight when the worker
    // dies, and those not yet due wait for theirs.
    wait_count(&db, "SELECT count(*) FROM webhook_attempts", 20, 30).await;
    wait_count(
        &db,
        "SELECT count(*) FROM webhook_deliveries WHERE status = 'delivering'",
        1,
        30,
    )
    .await;
    for _ in 0..600 {
        if hub.0.lock().unwrap().requests.iter().any(|r| r.2 == 0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();
    let in_flight: Vec<String> = sqlx::query_scalar(
        "SELECT 'msg_' || replace(id::text, '-', '') FROM webhook_deliveries WHERE status = 'delivering'",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert!(!in_flight.is_empty());
    for p in paths {
        hub.set(p, Mode::Ok);
    }
    let mut second = start("second");
    // Pending retries continue, and in-flight ones are taken over when their lease ends
    // (timeout 2 s + 3 s).
    wait_count(
        &db,
        "SELECT count(*) FROM webhook_deliveries WHERE status = 'succeeded'",
        20,
        60,
    )
    .await;
    second.kill().unwrap();
    second.wait().unwrap();
    for p in paths {
        let delivered = hub.delivered(p);
        assert_eq!(delivered.len(), 4, "every event arrived at {p}");
        for (id, n) in &delivered {
            assert_eq!(*n, 1, "{id} arrived {n} times");
        }
    }
    // The in-flight ones (claimed; most already hanging at the receiver, some killed before
    // their request left) went out again with the same webhook-id.
    let requests = hub.0.lock().unwrap().requests.clone();
    assert!(
        in_flight
            .iter()
            .any(|id| requests.iter().any(|r| &r.1 == id && r.2 == 0)),
        "a request was hanging at the receiver when the worker died"
    );
    for id in &in_flight {
        assert!(
            requests.iter().any(|r| &r.1 == id && r.2 == 200),
            "{id} was retried"
        );
    }
}

#[tokio::test]
async fn two_engines_deliver_each_event_once_within_the_per_endpoint_cap() {
    let (hub, base) = hub().await;
    hub.0.lock().unwrap().delay = Duration::from_millis(5);
    let db = test_db().await;
    let keyring = Arc::new(Keyring::parse(&Keyring::generate_entry(1)).unwrap());
    let user = ender_core::testing::create_workspace(&db.pool, "pair@example.org").await;
    add_endpoint(&db, &keyring, user, &format!("{base}/a")).await;
    add_endpoint(&db, &keyring, user, &format!("{base}/b")).await;
    let shutdown = CancellationToken::new();
    let mut engines = Vec::new();
    for _ in 0..2 {
        let pool = ender_core::db::pool_options(4)
            .connect_with(db.connect_options())
            .await
            .unwrap();
        let d =
            Arc::new(Deliverer::new(pool, keyring.clone(), config(vec![1], 3), loopback(), None).unwrap());
        engines.push(tokio::spawn(d.run(shutdown.clone())));
    }
    events(&db, user, 150).await;
    wait_count(
        &db,
        "SELECT count(*) FROM webhook_deliveries WHERE status = 'succeeded'",
        300,
        60,
    )
    .await;
    shutdown.cancel();
    for e in engines {
        e.await.unwrap();
    }
    for path in ["a", "b"] {
        let delivered = hub.delivered(path);
        assert_eq!(delivered.len(), 150);
        assert!(
            delivered.values().all(|n| *n == 1),
            "an event arrived twice at {path}"
        );
        let max = hub.0.lock().unwrap().max_in_flight[path];
        assert!(max <= 3, "{max} requests at once to {path}, cap 3");
    }
    assert_eq!(count(&db, "SELECT count(*) FROM webhook_attempts").await, 300);
}

#[tokio::test]
async fn a_finished_request_frees_its_slot_before_its_outcome_is_recorded() {
    let (hub, base) = hub().await;
    let db = test_db().await;
    let keyring = Arc::new(Keyring::parse(&Keyring::generate_entry(1)).unwrap());
    let user = ender_core::testing::create_workspace(&db.pool, "slots@example.org").await;
    add_endpoint(&db, &keyring, user, &format!("{base}/one")).await;
    events(&db, user, 5).await;
    // Nothing can be recorded while this lock is held (the attempt log takes no inserts).
    let mut blocker = db.pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE webhook_attempts IN SHARE MODE")
        .execute(&mut *blocker)
        .await
        .unwrap();
    let shutdown = CancellationToken::new();
    // One request at a time; the lease (timeout 2 s + 3 s) outlasts the wait below.
    let d = Arc::new(Deliverer::new(db.pool.clone(), keyring, config(vec![1], 1), loopback(), None).unwrap());
    let engine = tokio::spawn(d.run(shutdown.clone()));
    // Each answered request frees the endpoint's only slot for the next delivery, though
    // none of their outcomes is written yet.
    let until = std::time::Instant::now() + Duration::from_secs(4);
    while hub.delivered("one").len() < 5 {
        assert!(
            std::time::Instant::now() < until,
            "{} of 5 sent while the outcomes could not be recorded",
            hub.delivered("one").len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(count(&db, "SELECT count(*) FROM webhook_attempts").await, 0);
    assert_eq!(hub.0.lock().unwrap().max_in_flight["one"], 1);
    blocker.commit().await.unwrap();
    wait_count(
        &db,
        "SELECT count(*) FROM webhook_deliveries WHERE status = 'succeeded' AND attempts = 1",
        5,
        20,
    )
    .await;
    shutdown.cancel();
    engine.await.unwrap();
    assert!(hub.delivered("one").values().all(|n| *n == 1));
    assert_eq!(count(&db, "SELECT count(*) FROM webhook_attempts").await, 5);
}

#[tokio::test]
async fn a_slow_endpoint_never_holds_up_a_healthy_one() {
    let (hub, base) = hub().await;
    hub.set("slow", Mode::HangOneInTen);
    let db = test_db().await;
    let keyring = Arc::new(Keyring::parse(&Keyring::generate_entry(1)).unwrap());
    let user = ender_core::testing::create_workspace(&db.pool, "isolation@example.org").await;
    let fast = add_endpoint(&db, &keyring, user, &format!("{base}/fast")).await;
    let slow = add_endpoint(&db, &keyring, user, &format!("{base}/slow")).await;
    let shutdown = CancellationToken::new();
    let cfg = WebhookConfig {
        webhook_timeout_secs: 5,
        ..config(vec![1], 4)
    };
    let d = Arc::new(Deliverer::new(db.pool.clone(), keyring, cfg, loopback(), None).unwrap());
    let engine = tokio::spawn(d.run(shutdown.clone()));
    events(&db, user, 100).await;
    wait_count(
        &db,
        &format!(
            "SELECT count(*) FROM webhook_deliveries WHERE endpoint_id = '{fast}' AND status = 'succeeded'"
        ),
        100,
        30,
    )
    .await;
    // Every healthy delivery is done while the slow endpoint's hung requests have not even
    // timed out (5 s): nothing of the healthy one waited for them.
    let timed_out = count(
        &db,
        &format!("SELECT count(*) FROM webhook_attempts WHERE endpoint_id = '{slow}' AND error LIKE '%did not answer%'"),
    )
    .await;
    assert_eq!(timed_out, 0);
    assert!(
        hub.requests("slow") >= 4,
        "the slow endpoint was being served too"
    );
    // And the slow endpoint gets through as well, its timeouts retried.
    hub.set("slow", Mode::Ok);
    wait_count(
        &db,
        &format!(
            "SELECT count(*) FROM webhook_deliveries WHERE endpoint_id = '{slow}' AND status = 'succeeded'"
        ),
        100,
        60,
    )
    .await;
    shutdown.cancel();
    engine.await.unwrap();
}

#[tokio::test]
async fn an_endpoint_failing_for_days_is_disabled_its_owner_told_and_replay_sends_everything() {
    let (hub, base) = hub().await;
    hub.set("dead", Mode::Fail);
    let db = test_db().await;
    let keyring = Arc::new(Keyring::parse(&Keyring::generate_entry(1)).unwrap());
    let user = ender_core::testing::create_workspace(&db.pool, "owner@example.org").await;
    let ep = add_endpoint(&db, &keyring, user, &format!("{base}/dead")).await;
    let mail = tempfile::tempdir().unwrap();
    let notices = OwnerNotices {
        mailer: Mailer::files(mail.path()),
        public_url: "https://ender.example.org".to_owned(),
    };
    let d = Arc::new(
        Deliverer::new(
            db.pool.clone(),
            keyring,
            config(vec![3600; 8], 4),
            loopback(),
            Some(notices),
        )
        .unwrap(),
    );
    events(&db, user, 1).await;
    d.pass().await.unwrap();
    // Failing for just under five days: still on.
    sqlx::query("UPDATE webhook_endpoints SET failing_since = now() - interval '119 hours', breaker_open_until = NULL")
        .execute(&db.pool)
        .await
        .unwrap();
    events(&db, user, 1).await;
    d.pass().await.unwrap();
    assert_eq!(
        count(&db, "SELECT count(*) FROM webhook_endpoints WHERE active").await,
        1
    );
    // Past the window: the next failure disables it, and what waits is held.
    sqlx::query("UPDATE webhook_endpoints SET failing_since = now() - interval '121 hours', breaker_open_until = NULL")
        .execute(&db.pool)
        .await
        .unwrap();
    events(&db, user, 1).await;
    d.pass().await.unwrap();
    let (active, reason, disabled): (bool, String, bool) =
        sqlx::query_as("SELECT active, disabled_reason, disabled_at IS NOT NULL FROM webhook_endpoints")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert!(!active && disabled);
    assert!(reason.contains("120 hours"), "{reason}");
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM webhook_deliveries WHERE status = 'held'"
        )
        .await,
        3
    );
    let mails: Vec<String> = std::fs::read_dir(mail.path())
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    assert_eq!(mails.len(), 1);
    assert!(mails[0].contains("owner@example.org"));
    assert!(mails[0].contains(&format!("https://ender.example.org/webhooks/{ep}")));
    // New events are held too, and nothing is sent while disabled.
    events(&db, user, 1).await;
    let sent = hub.requests("dead");
    assert_eq!(d.pass().await.unwrap(), 0);
    assert_eq!(hub.requests("dead"), sent);
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM webhook_deliveries WHERE status = 'held'"
        )
        .await,
        4
    );
    // The receiver is fixed; one action re-enables and sends everything it missed.
    hub.set("dead", Mode::Ok);
    let queued = endpoint::reenable_and_replay(&db.pool, user, ep).await.unwrap();
    assert_eq!(queued, 4);
    d.pass().await.unwrap();
    assert_eq!(hub.delivered("dead").len(), 4);
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM webhook_endpoints WHERE active AND failing_since IS NULL"
        )
        .await,
        1
    );
    // "Replay failed since" takes deliveries that gave up since then, even if their event
    // is older (the one whose failures started a streak).
    sqlx::query(
        "UPDATE webhook_deliveries SET status = 'failed', created_at = now() - interval '2 days',
                updated_at = now() - interval '1 hour' WHERE id = (SELECT id FROM webhook_deliveries LIMIT 1)",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    let since = Utc::now() - chrono::Duration::hours(2);
    assert_eq!(
        endpoint::replay_failed(&db.pool, user, ep, since).await.unwrap(),
        1
    );
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM webhook_deliveries WHERE status = 'pending'"
        )
        .await,
        1
    );
    // Another user cannot re-enable or replay it.
    let other = ender_core::testing::create_workspace(&db.pool, "other@example.org").await;
    assert!(endpoint::reenable_and_replay(&db.pool, other, ep).await.is_err());
    assert!(
        endpoint::replay_failed(&db.pool, other, ep, Utc::now())
            .await
            .is_err()
    );
}

#[tokio::test]
async fn a_name_resolving_to_loopback_is_refused_when_connecting() {
    let (hub, base) = hub().await;
    let port = base.rsplit(':').next().unwrap().to_owned();
    let db = test_db().await;
    let keyring = Arc::new(Keyring::parse(&Keyring::generate_entry(1)).unwrap());
    let user = ender_core::testing::create_workspace(&db.pool, "rebind@example.org").await;
    // A public-looking name passes the URL check; its DNS answer is 127.0.0.1.
    let input = EndpointInput::parse(
        &format!("http://hooks.rebind.test:{port}/hook"),
        &["sms_sent".to_owned()],
        "",
        None,
        false,
        &[],
    )
    .unwrap();
    endpoint::create(&db.pool, &keyring, user, &input, i64::MAX)
        .await
        .unwrap();
    let hosts = HashMap::from([(
        "hooks.rebind.test".to_owned(),
        vec![std::net::IpAddr::from([127, 0, 0, 1])],
    )]);
    let d = Arc::new(
        Deliverer::new(
            db.pool.clone(),
            keyring.clone(),
            config(vec![], 4),
            Vec::new(),
            None,
        )
        .unwrap()
        .with_static_hosts(hosts.clone())
        .unwrap(),
    );
    events(&db, user, 1).await;
    d.pass().await.unwrap();
    let error: String = sqlx::query_scalar("SELECT error FROM webhook_attempts")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert!(error.contains("blocked"), "{error}");
    assert_eq!(hub.requests("hook"), 0, "nothing reached the receiver");
    // Allowed by an administrator, the same name connects.
    let d = Arc::new(
        Deliverer::new(db.pool.clone(), keyring, config(vec![], 4), loopback(), None)
            .unwrap()
            .with_static_hosts(hosts)
            .unwrap(),
    );
    events(&db, user, 1).await;
    d.pass().await.unwrap();
    assert_eq!(hub.delivered("hook").len(), 1);
}

#[tokio::test]
async fn a_payload_that_does_not_decrypt_is_not_sent_and_says_why() {
    let (hub, base) = hub().await;
    let db = test_db().await;
    let keyring = Arc::new(Keyring::parse(&Keyring::generate_entry(1)).unwrap());
    let user = ender_core::testing::create_workspace(&db.pool, "sealed@example.org").await;
    add_endpoint(&db, &keyring, user, &format!("{base}/hook")).await;
    events(&db, user, 2).await;
    // One payload damaged at rest (a sealed envelope whose ciphertext no key opens), the
    // other left as it was sealed.
    sqlx::query(
        "UPDATE webhook_deliveries
         SET body = '\\x00'::bytea || int4send(1) || decode(repeat('00', 12), 'hex') || decode(repeat('de', 32), 'hex')
         WHERE id = (SELECT id FROM webhook_deliveries ORDER BY id LIMIT 1)",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    let d = Arc::new(Deliverer::new(db.pool.clone(), keyring, config(vec![], 4), loopback(), None).unwrap());
    d.pass().await.unwrap();
    wait_count(
        &db,
        "SELECT count(*) FROM webhook_deliveries WHERE status IN ('succeeded', 'failed')",
        2,
        10,
    )
    .await;
    let (status, error): (String, String) = sqlx::query_as(
        "SELECT d.status, a.error FROM webhook_deliveries d JOIN webhook_attempts a ON a.delivery_id = d.id
         WHERE d.id = (SELECT id FROM webhook_deliveries ORDER BY id LIMIT 1)",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(status, "failed");
    assert_eq!(
        error,
        "The event could not be decrypted (check ENDER_SECRET_KEYS); not sent."
    );
    assert_eq!(
        hub.requests("hook"),
        1,
        "only the readable event reached the receiver"
    );
    assert_eq!(hub.delivered("hook").len(), 1);
}
