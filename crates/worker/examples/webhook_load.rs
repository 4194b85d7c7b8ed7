//! Webhook delivery load generator for `bench/webhook-*.sh` (not part of Ender).
//!
//! One process that runs the receivers on 127.0.0.1 (each answers 200 at once; a "flaky"
//! one never answers a given fraction of requests), connects to the PostgreSQL of a
//! running ender-web (`DATABASE_URL`), creates one user and one endpoint per receiver
//! through `ender_core::webhook::endpoint::create` (the ender-web under test must share
//! `ENDER_SECRET_KEYS` and allow `127.0.0.1/32`), and then writes `sms_sent` events
//! open-loop: each event is one call of `endpoint::enqueue` (which notifies
//! `ender_webhooks`), sent at its scheduled time whether or not earlier ones committed.
//! Each endpoint belongs to its own user, so an event makes exactly one delivery.
//!
//! `enqueue` is a read of the endpoints and one insert, so by default they run on their
//! own and the insert commits by itself: in Ender they are statements inside the
//! transaction of the change that raised the event (a message marked sent, say), whose
//! BEGIN and COMMIT that change pays for anyway.
//! `--transaction` wraps each event in BEGIN … COMMIT of its own, two more round trips.
//!
//! Latency is event (commit returned to the generator) → request handled by the receiver,
//! per message id, measured on one monotonic clock. Prints `RESULT …` lines.
//!
//! ```sh
//! cargo build --release --example webhook_load -p ender-worker
//! DATABASE_URL=… ENDER_SECRET_KEYS=… webhook_load --rate 1000 --seconds 20
//! webhook_load --rate 500 --flaky-endpoints 1 --flaky-fraction 0.1 --seconds 30
//! webhook_load --idle-first 5            # first event after 10 s idle, 5 times
//! ```

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use chrono::Utc;
use clap::Parser;
use ender_core::account::UserId;
use ender_core::secret::Keyring;
use ender_core::webhook::endpoint::{self, EndpointInput};
use ender_core::webhook::{Event, Payload};
use ender_core::workspace::WorkspaceId;
use rand::Rng;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tokio::time::Instant;
use uuid::Uuid;

#[derive(Parser, Debug)]
#[command(about = "Open-loop webhook delivery load against a running ender-web")]
struct Args {
    /// The ender-web's database (its private cluster's socket).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: String,
    /// The same keys the ender-web under test uses (endpoint secrets are sealed with them).
    #[arg(long, env = "ENDER_SECRET_KEYS", hide_env_values = true)]
    secret_keys: String,
    /// Events per second offered to each healthy endpoint.
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,
    /// Seconds of measured load (after the warm-up).
    #[arg(long, default_value_t = 20.0)]
    seconds: f64,
    /// Seconds of load at the same rate before measuring (not counted).
    #[arg(long, default_value_t = 3.0)]
    warmup: f64,
    /// Healthy endpoints (each its own user, receiver and port).
    #[arg(long, default_value_t = 1)]
    endpoints: usize,
    /// Endpoints whose receiver never answers `--flaky-fraction` of the requests.
    #[arg(long, default_value_t = 0)]
    flaky_endpoints: usize,
    #[arg(long, default_value_t = 0.1)]
    flaky_fraction: f64,
    /// Events per second offered to each flaky endpoint (default: `--rate`).
    #[arg(long)]
    flaky_rate: Option<f64>,
    /// Longest wait after the load for the healthy endpoints' last deliveries.
    #[arg(long, default_value_t = 15.0)]
    drain: f64,
    /// Instead of load: N times, wait `--idle-secs` without any event, then send one and
    /// time it.
    #[arg(long)]
    idle_first: Option<usize>,
    #[arg(long, default_value_t = 10.0)]
    idle_secs: f64,
    /// Instead of load: queue N deliveries while the endpoint's breaker holds them, release
    /// them at once and time how fast the engine drains the backlog (its ceiling without
    /// the cost of producing events).
    #[arg(long)]
    backlog: Option<u64>,
    /// Connections of the generator's pool (events in flight at most).
    #[arg(long, default_value_t = 32)]
    connections: u32,
    /// Written with `start` when the measured window begins and `stop` when it ends, so a
    /// script can sample CPU over exactly that window.
    #[arg(long)]
    mark_file: Option<PathBuf>,
    /// Each event in a transaction of its own (BEGIN, enqueue, COMMIT) instead of the
    /// enqueue statement alone.
    #[arg(long)]
    transaction: bool,
    /// Label in the RESULT lines.
    #[arg(long, default_value = "run")]
    label: String,
}

/// What one receiver saw.
struct Receiver {
    name: String,
    flaky: f64,
    /// Answered requests: message id and when the receiver handled it.
    arrivals: Mutex<Vec<(u64, Instant)>>,
    /// Requests left without an answer.
    hung: AtomicU64,
    /// Requests whose body had no parsable message id.
    unknown: AtomicU64,
}

async fn receive(State(r): State<Arc<Receiver>>, body: Bytes) -> StatusCode {
    let now = Instant::now();
    let id = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("message_id").and_then(|m| m.as_str()).map(str::to_owned))
        .and_then(|m| m.rsplit('-').next().and_then(|n| n.parse::<u64>().ok()));
    let Some(id) = id else {
        r.unknown.fetch_add(1, Ordering::Relaxed);
        return StatusCode::OK;
    };
    if r.flaky > 0.0 && rand::rng().random::<f64>() < r.flaky {
        r.hung.fetch_add(1, Ordering::Relaxed);
        // Never answer: Ender's timeout (15 s by default) ends the request.
        tokio::time::sleep(Duration::from_secs(3600)).await;
        return StatusCode::OK;
    }
    r.arrivals.lock().expect("arrivals").push((id, now));
    StatusCode::OK
}

async fn start_receiver(name: String, flaky: f64) -> anyhow::Result<(Arc<Receiver>, String)> {
    let r = Arc::new(Receiver {
        name,
        flaky,
        arrivals: Mutex::new(Vec::with_capacity(1 << 16)),
        hung: AtomicU64::new(0),
        unknown: AtomicU64::new(0),
    });
    let app = Router::new().route("/hook", post(receive)).with_state(r.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hook", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((r, url))
}

/// One endpoint under load: its workspace, receiver and the events sent to it.
struct Target {
    workspace: WorkspaceId,
    receiver: Arc<Receiver>,
    rate: f64,
    /// Message number → (scheduled, committed); index = message number.
    events: Mutex<Vec<Option<(Instant, Instant)>>>,
    failed: AtomicU64,
}

async fn create_target(
    pool: &PgPool,
    keyring: &Keyring,
    label: &str,
    name: String,
    flaky: f64,
    rate: f64,
) -> anyhow::Result<Arc<Target>> {
    let (receiver, url) = start_receiver(name.clone(), flaky).await?;
    let user = UserId(Uuid::now_v7());
    let email = format!("{label}-{name}-{}@bench.example", user.0.simple());
    sqlx::query(
        "INSERT INTO users (id, email, email_normalized, full_name, password_hash, email_verified_at)
         VALUES ($1, $2, $2, 'Bench', NULL, now())",
    )
    .bind(user.0)
    .bind(&email)
    .execute(pool)
    .await
    .context("creating the bench user")?;
    // Its personal workspace, with the user's id (as the migration gives existing accounts).
    sqlx::query(
        "WITH w AS (INSERT INTO workspaces (id, name, personal_user_id) VALUES ($1, 'Bench', $1) RETURNING id)
         INSERT INTO workspace_members (workspace_id, user_id, role) SELECT id, id, 'owner' FROM w",
    )
    .bind(user.0)
    .execute(pool)
    .await
    .context("creating the bench workspace")?;
    let workspace = WorkspaceId(user.0);
    let allowed: Vec<ipnet::IpNet> = vec!["127.0.0.1/32".parse()?];
    let input = EndpointInput::parse(&url, &["sms_sent".to_owned()], &name, None, false, &allowed)
        .map_err(|e| anyhow::anyhow!("endpoint input: {}", e.message))?;
    endpoint::create(pool, keyring, workspace, &input, i64::MAX)
        .await
        .context("creating the endpoint")?;
    Ok(Arc::new(Target {
        workspace,
        receiver,
        rate,
        events: Mutex::new(Vec::new()),
        failed: AtomicU64::new(0),
    }))
}

/// One event: enqueues an `sms_sent` delivery and commits (in a transaction of its own
/// when `transaction`).
async fn send_event(
    pool: &PgPool,
    t: &Target,
    label: &str,
    n: u64,
    transaction: bool,
) -> anyhow::Result<Instant> {
    let message_id = format!("{label}-{n}");
    let payload = Payload::new(Event::SmsSent, &message_id, Utc::now())
        .with("to", "+15550001111")
        .with("device_id", "00000000-0000-0000-0000-000000000000");
    let written = if transaction {
        let mut tx = pool.begin().await?;
        let written = endpoint::enqueue(&mut tx, t.workspace, Event::SmsSent, None, &payload, None).await?;
        tx.commit().await?;
        written
    } else {
        let mut conn = pool.acquire().await?;
        endpoint::enqueue(&mut conn, t.workspace, Event::SmsSent, None, &payload, None).await?
    };
    let at = Instant::now();
    anyhow::ensure!(written == 1, "enqueue wrote {written} deliveries, expected 1");
    Ok(at)
}

fn record(t: &Target, n: u64, scheduled: Instant, committed: Instant) {
    let mut ev = t.events.lock().expect("events");
    let i = usize::try_from(n).unwrap_or(usize::MAX);
    if ev.len() <= i {
        ev.resize(i + 1, None);
    }
    ev[i] = Some((scheduled, committed));
}

/// Sends events to `t` at its rate from `t0` until `end`, each on its own task.
async fn generate(pool: PgPool, t: Arc<Target>, label: String, t0: Instant, end: Instant, transaction: bool) {
    let period = Duration::from_secs_f64(1.0 / t.rate);
    let mut n: u64 = 0;
    loop {
        let at = t0 + period.mul_f64(n as f64);
        if at >= end {
            break;
        }
        tokio::time::sleep_until(at).await;
        let pool = pool.clone();
        let t2 = t.clone();
        let label = label.clone();
        tokio::spawn(async move {
            match send_event(&pool, &t2, &label, n, transaction).await {
                Ok(committed) => record(&t2, n, at, committed),
                Err(e) => {
                    if t2.failed.fetch_add(1, Ordering::Relaxed) == 0 {
                        eprintln!("event {n} for {} failed: {e:#}", t2.receiver.name);
                    }
                }
            }
        });
        n += 1;
    }
}

/// Width of the slices of the measured window in the timeline line.
const TIMELINE_SECS: f64 = 5.0;

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// CPU time (ticks) of the generator's own PostgreSQL backends, so a script can take the
/// load generator's share out of PostgreSQL's CPU.
async fn generator_backends(pool: &PgPool) -> Vec<i32> {
    sqlx::query_scalar("SELECT pid FROM pg_stat_activity WHERE application_name = 'webhook_load'")
        .fetch_all(pool)
        .await
        .unwrap_or_default()
}

fn cpu_ticks(pids: &[i32]) -> u64 {
    pids.iter()
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/stat")).ok())
        .filter_map(|raw| {
            let rest: Vec<&str> = raw[raw.rfind(')')? + 2..].split_whitespace().collect();
            Some(rest.get(11)?.parse::<u64>().ok()? + rest.get(12)?.parse::<u64>().ok()?)
        })
        .sum()
}

fn own_cpu_secs() -> f64 {
    let ticks = cpu_ticks(&[i32::try_from(std::process::id()).unwrap_or(0)]);
    ticks as f64 / 100.0
}

fn mark(file: &Option<PathBuf>, what: &str) {
    if let Some(f) = file {
        use std::io::Write;
        if let Ok(mut out) = std::fs::OpenOptions::new().create(true).append(true).open(f) {
            let _ = writeln!(out, "{what}");
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let keyring = Keyring::parse(&args.secret_keys).map_err(|e| anyhow::anyhow!("ENDER_SECRET_KEYS: {e}"))?;
    ender_core::secret::at_rest::install(&keyring, true);
    let options: PgConnectOptions = args
        .database_url
        .parse::<PgConnectOptions>()
        .context("DATABASE_URL")?
        .application_name("webhook_load");
    let pool = PgPoolOptions::new()
        .max_connections(args.connections)
        .min_connections(args.connections)
        .idle_timeout(None)
        .max_lifetime(None)
        .acquire_timeout(Duration::from_secs(30))
        .connect_with(options)
        .await
        .context("connecting to DATABASE_URL")?;
    // Open every connection now, so none is opened during the measurement.
    let mut held = Vec::new();
    for _ in 0..args.connections {
        held.push(pool.acquire().await?);
    }
    drop(held);

    if let Some(rounds) = args.idle_first {
        return idle_first(&args, &pool, &keyring, rounds).await;
    }
    if let Some(n) = args.backlog {
        return backlog(&args, &pool, &keyring, n).await;
    }

    let mut targets = Vec::new();
    for i in 0..args.endpoints {
        targets.push(
            create_target(
                &pool,
                &keyring,
                &args.label,
                format!("healthy{i}"),
                0.0,
                args.rate,
            )
            .await?,
        );
    }
    let flaky_rate = args.flaky_rate.unwrap_or(args.rate);
    for i in 0..args.flaky_endpoints {
        targets.push(
            create_target(
                &pool,
                &keyring,
                &args.label,
                format!("flaky{i}"),
                args.flaky_fraction,
                flaky_rate,
            )
            .await?,
        );
    }
    let backends = generator_backends(&pool).await;

    let t0 = Instant::now() + Duration::from_millis(100);
    let w0 = t0 + Duration::from_secs_f64(args.warmup);
    let w1 = w0 + Duration::from_secs_f64(args.seconds);
    eprintln!(
        "webhook_load {}: {} healthy endpoint(s) at {}/s, {} flaky at {}/s ({}% unanswered), {} s warm-up + {} s",
        args.label,
        args.endpoints,
        args.rate,
        args.flaky_endpoints,
        flaky_rate,
        args.flaky_fraction * 100.0,
        args.warmup,
        args.seconds
    );
    let gens: Vec<_> = targets
        .iter()
        .map(|t| {
            tokio::spawn(generate(
                pool.clone(),
                t.clone(),
                args.label.clone(),
                t0,
                w1,
                args.transaction,
            ))
        })
        .collect();
    tokio::time::sleep_until(w0).await;
    mark(&args.mark_file, "start");
    let gen_pg0 = cpu_ticks(&backends);
    let own0 = own_cpu_secs();
    tokio::time::sleep_until(w1).await;
    mark(&args.mark_file, "stop");
    let gen_pg1 = cpu_ticks(&backends);
    let own1 = own_cpu_secs();
    for g in gens {
        let _ = g.await;
    }

    // Drain: until every measured event of the healthy endpoints arrived (or the limit).
    let drain_end = Instant::now() + Duration::from_secs_f64(args.drain);
    loop {
        let missing: usize = targets
            .iter()
            .filter(|t| t.receiver.flaky == 0.0)
            .map(|t| {
                let ev = t.events.lock().expect("events");
                let arr = t.receiver.arrivals.lock().expect("arrivals");
                let mut seen = vec![false; ev.len()];
                for (id, _) in arr.iter() {
                    if let Some(s) = seen.get_mut(usize::try_from(*id).unwrap_or(usize::MAX)) {
                        *s = true;
                    }
                }
                ev.iter().zip(seen).filter(|(e, s)| e.is_some() && !s).count()
            })
            .sum();
        if missing == 0 || Instant::now() >= drain_end {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Let in-flight duplicates (if any) show up.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let window = args.seconds;
    let mut delivered_in_window = 0u64;
    for t in &targets {
        let ev = t.events.lock().expect("events").clone();
        let arr = t.receiver.arrivals.lock().expect("arrivals").clone();
        delivered_in_window += arr.iter().filter(|(_, at)| *at >= w0 && *at < w1).count() as u64;
        let mut first: HashMap<u64, Instant> = HashMap::with_capacity(arr.len());
        let mut duplicates = 0u64;
        for (id, at) in &arr {
            match first.get_mut(id) {
                Some(f) => {
                    duplicates += 1;
                    if *at < *f {
                        *f = *at;
                    }
                }
                None => {
                    first.insert(*id, *at);
                }
            }
        }
        // The measured events: scheduled inside the window.
        let mut lat = Vec::new();
        let mut lag = Vec::new();
        // Latencies per TIMELINE_SECS of the window (by scheduled time), to see whether the
        // tail is steady or comes in bursts (autovacuum, checkpoints).
        let mut timeline: Vec<Vec<f64>> = vec![Vec::new(); (window / TIMELINE_SECS).ceil().max(1.0) as usize];
        let (mut committed, mut lost, mut early) = (0u64, 0u64, 0u64);
        for (n, e) in ev.iter().enumerate() {
            let Some((scheduled, commit)) = e else { continue };
            if *scheduled < w0 || *scheduled >= w1 {
                continue;
            }
            committed += 1;
            lag.push(commit.duration_since(*scheduled).as_secs_f64() * 1000.0);
            match first.get(&(n as u64)) {
                Some(at) => {
                    if at < commit {
                        early += 1; // delivered before the commit reply reached the generator
                    }
                    let ms = at.saturating_duration_since(*commit).as_secs_f64() * 1000.0;
                    lat.push(ms);
                    let slot = (scheduled.duration_since(w0).as_secs_f64() / TIMELINE_SECS) as usize;
                    if let Some(b) = timeline.get_mut(slot) {
                        b.push(ms);
                    }
                }
                None => lost += 1,
            }
        }
        for b in &mut timeline {
            b.sort_by(f64::total_cmp);
        }
        let per_slot = |p: f64| {
            timeline
                .iter()
                .map(|b| format!("{:.1}", pct(b, p)))
                .collect::<Vec<_>>()
                .join(",")
        };
        println!(
            "RESULT webhook-load-timeline: label={} endpoint={} every_s={TIMELINE_SECS} p50_ms={} p99_ms={}",
            args.label,
            t.receiver.name,
            per_slot(50.0),
            per_slot(99.0)
        );
        let offered = (t.rate * window).round() as u64;
        lat.sort_by(f64::total_cmp);
        lag.sort_by(f64::total_cmp);
        let kind = if t.receiver.flaky > 0.0 {
            "flaky"
        } else {
            "healthy"
        };
        println!(
            "RESULT webhook-load: label={} endpoint={} kind={kind} rate={} seconds={window} offered={offered} \
             committed={committed} commit_rate={:.0}/s delivered={} lost={lost} duplicates={duplicates} \
             p50_ms={:.2} p95_ms={:.2} p99_ms={:.2} max_ms={:.2} commit_lag_p50_ms={:.2} commit_lag_p99_ms={:.2} \
             early={early} hung={} enqueue_errors={}",
            args.label,
            t.receiver.name,
            t.rate,
            committed as f64 / window,
            lat.len(),
            pct(&lat, 50.0),
            pct(&lat, 95.0),
            pct(&lat, 99.0),
            lat.last().copied().unwrap_or(f64::NAN),
            pct(&lag, 50.0),
            pct(&lag, 99.0),
            t.receiver.hung.load(Ordering::Relaxed),
            t.failed.load(Ordering::Relaxed),
        );
    }
    println!(
        "RESULT webhook-load-window: label={} seconds={window} delivered_in_window={delivered_in_window} \
         generator_cpu_cores={:.3} generator_pg_backend_cpu_cores={:.3} generator_pg_backends={} event_transaction={}",
        args.label,
        (own1 - own0) / window,
        (gen_pg1.saturating_sub(gen_pg0)) as f64 / 100.0 / window,
        backends.len(),
        args.transaction
    );
    pool.close().await;
    Ok(())
}

/// Queues `n` deliveries behind an open breaker, releases them and times the drain.
async fn backlog(args: &Args, pool: &PgPool, keyring: &Keyring, n: u64) -> anyhow::Result<()> {
    let t = create_target(pool, keyring, &args.label, "backlog".to_owned(), 0.0, 1.0).await?;
    sqlx::query(
        "UPDATE webhook_endpoints SET breaker_open_until = now() + interval '1 hour' WHERE workspace_id = $1",
    )
    .bind(t.workspace.0)
    .execute(pool)
    .await?;
    let chunk = 500;
    let mut next = 0u64;
    while next < n {
        let mut tx = pool.begin().await?;
        for i in next..(next + chunk).min(n) {
            let message_id = format!("{}-{i}", args.label);
            let payload = Payload::new(Event::SmsSent, &message_id, Utc::now()).with("to", "+15550001111");
            endpoint::enqueue(&mut tx, t.workspace, Event::SmsSent, None, &payload, None).await?;
        }
        tx.commit().await?;
        next = (next + chunk).min(n);
    }
    sqlx::query("VACUUM ANALYZE webhook_deliveries")
        .execute(pool)
        .await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let backends = generator_backends(pool).await;
    let pg0 = cpu_ticks(&backends);
    let own0 = own_cpu_secs();
    mark(&args.mark_file, "start");
    let released = Instant::now();
    sqlx::query(
        "WITH o AS (UPDATE webhook_endpoints SET breaker_open_until = NULL WHERE workspace_id = $1 RETURNING 1)
         SELECT pg_notify('ender_webhooks', '') FROM o",
    )
    .bind(t.workspace.0)
    .execute(pool)
    .await?;
    let deadline = released + Duration::from_secs_f64(args.seconds.max(1.0) * 10.0);
    loop {
        let got = t.receiver.arrivals.lock().expect("arrivals").len() as u64;
        if got >= n || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let done = Instant::now();
    mark(&args.mark_file, "stop");
    let pg1 = cpu_ticks(&backends);
    let own1 = own_cpu_secs();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let arr = t.receiver.arrivals.lock().expect("arrivals").clone();
    let mut ids: Vec<u64> = arr.iter().map(|(id, _)| *id).collect();
    ids.sort_unstable();
    ids.dedup();
    let secs = done.duration_since(released).as_secs_f64();
    println!(
        "RESULT webhook-backlog: label={} queued={n} delivered={} duplicates={} seconds={secs:.2} rate={:.0}/s",
        args.label,
        ids.len(),
        arr.len() - ids.len(),
        ids.len() as f64 / secs
    );
    println!(
        "RESULT webhook-load-window: label={} seconds={secs:.2} delivered_in_window={} generator_cpu_cores={:.3} \
         generator_pg_backend_cpu_cores={:.3} generator_pg_backends={}",
        args.label,
        arr.len(),
        (own1 - own0) / secs,
        (pg1.saturating_sub(pg0)) as f64 / 100.0 / secs,
        backends.len()
    );
    pool.close().await;
    Ok(())
}

/// The first event after an idle period, `rounds` times.
async fn idle_first(args: &Args, pool: &PgPool, keyring: &Keyring, rounds: usize) -> anyhow::Result<()> {
    let t = create_target(pool, keyring, &args.label, "idle".to_owned(), 0.0, 1.0).await?;
    // A few events first, as on a server that has been running (connections open).
    for n in 0..20u64 {
        let committed = send_event(pool, &t, &args.label, n, args.transaction).await?;
        record(&t, n, committed, committed);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut lat = Vec::new();
    for round in 0..rounds {
        tokio::time::sleep(Duration::from_secs_f64(args.idle_secs)).await;
        let n = 1000 + round as u64;
        let committed = send_event(pool, &t, &args.label, n, args.transaction).await?;
        let deadline = committed + Duration::from_secs(5);
        let arrived = loop {
            let found = t
                .receiver
                .arrivals
                .lock()
                .expect("arrivals")
                .iter()
                .find(|(id, _)| *id == n)
                .map(|(_, at)| *at);
            if let Some(at) = found {
                break Some(at);
            }
            if Instant::now() >= deadline {
                break None;
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        };
        match arrived {
            Some(at) => {
                let ms = at.saturating_duration_since(committed).as_secs_f64() * 1000.0;
                println!(
                    "RESULT webhook-idle-round: label={} round={} idle_s={} latency_ms={ms:.2}",
                    args.label,
                    round + 1,
                    args.idle_secs
                );
                lat.push(ms);
            }
            None => println!(
                "RESULT webhook-idle-round: label={} round={} idle_s={} latency_ms=lost",
                args.label,
                round + 1,
                args.idle_secs
            ),
        }
    }
    let mut sorted = lat.clone();
    sorted.sort_by(f64::total_cmp);
    println!(
        "RESULT webhook-idle: label={} rounds={rounds} delivered={} idle_s={} min_ms={:.2} median_ms={:.2} max_ms={:.2}",
        args.label,
        lat.len(),
        args.idle_secs,
        sorted.first().copied().unwrap_or(f64::NAN),
        pct(&sorted, 50.0),
        sorted.last().copied().unwrap_or(f64::NAN),
    );
    pool.close().await;
    Ok(())
}
