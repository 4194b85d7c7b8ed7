//! Delivering webhooks. Deliveries are rows written with the change they report (which
//! sends `NOTIFY ender_webhooks` when their endpoint is idle); this engine wakes on that
//! notification, every second, and every millisecond or few while deliveries flow. It
//! claims due deliveries under a lease in one call of `webhook_claim` (a worker killed
//! mid-delivery is replaced within 20 s, and a retry carries the same `webhook-id` and
//! bytes) with at most a few requests in flight per endpoint, and sends each on its own
//! task, so one slow receiver never holds up another. Outcomes are written in batches (one
//! statement records every attempt that finished meanwhile), with the next try scheduled
//! in Postgres. Receivers are reached only at public addresses (checked on the resolved
//! address at connect time) unless an administrator allowed a range.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use ender_core::bus::WEBHOOKS;
use ender_core::mail::{Mail, Mailer};
use ender_core::secret::Keyring;
use ender_core::webhook::endpoint::{
    BREAKER_THRESHOLD, SigningSecret, check_url, is_internal, signing_secrets,
};
use ender_core::webhook::sign;
use rand::Rng;
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Delivery settings, from flags and the environment.
#[derive(clap::Args, Debug, Clone)]
pub struct WebhookConfig {
    /// Seconds to wait before each attempt after the first (the first is immediate); ±20%
    /// jitter. Their count is the number of retries.
    #[arg(
        long,
        env = "ENDER_WEBHOOK_RETRY_SECS",
        value_delimiter = ',',
        default_value = "5,300,1800,7200,18000,36000,36000"
    )]
    pub webhook_retry_secs: Vec<u64>,

    /// How long a receiver has to answer.
    #[arg(long, env = "ENDER_WEBHOOK_TIMEOUT_SECS", default_value_t = 15)]
    pub webhook_timeout_secs: u64,

    /// Deliveries in flight at once per endpoint (across all workers).
    #[arg(long, env = "ENDER_WEBHOOK_CONCURRENCY", default_value_t = 64)]
    pub webhook_concurrency: i64,

    /// Deliveries in flight at once per workspace, on all its endpoints and across all
    /// workers, so that one tenant with slow receivers cannot hold every slot. Claims also
    /// take due deliveries round-robin between workspaces.
    #[arg(long, env = "ENDER_WEBHOOK_WORKSPACE_CONCURRENCY", default_value_t = 128)]
    pub webhook_workspace_concurrency: i64,

    /// Deliveries one worker process has in flight at most.
    #[arg(long, env = "ENDER_WEBHOOK_MAX_IN_FLIGHT", default_value_t = 512)]
    pub webhook_max_in_flight: usize,

    /// An endpoint failing without a single success for this many hours is disabled and its
    /// owner told by mail; events meanwhile are kept for "re-enable and replay".
    #[arg(long, env = "ENDER_WEBHOOK_DISABLE_AFTER_HOURS", default_value_t = 120)]
    pub webhook_disable_after_hours: u64,

    /// Days the delivery log (every attempt, finished and held deliveries) is kept.
    #[arg(long, env = "ENDER_WEBHOOK_RETENTION_DAYS", default_value_t = 30)]
    pub webhook_retention_days: u32,

    /// While deliveries flow, milliseconds between claims made without being woken (events
    /// for a busy endpoint do not notify; see `endpoint::enqueue`). Claims that find
    /// nothing double the wait, up to `BUSY_POLL_MAX`.
    #[arg(long, env = "ENDER_WEBHOOK_BUSY_POLL_MS", default_value_t = 1, hide = true)]
    pub webhook_busy_poll_ms: u64,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        Self {
            webhook_retry_secs: vec![5, 300, 1800, 7200, 18000, 36000, 36000],
            webhook_timeout_secs: 15,
            webhook_concurrency: 64,
            webhook_workspace_concurrency: 128,
            webhook_max_in_flight: 512,
            webhook_disable_after_hours: 120,
            webhook_retention_days: 30,
            webhook_busy_poll_ms: 1,
        }
    }
}

/// How a worker tells owners that Ender disabled their endpoint.
#[derive(Debug, Clone)]
pub struct OwnerNotices {
    pub mailer: Mailer,
    /// Base of the link to the endpoint's page.
    pub public_url: String,
}

/// Largest body sent; bigger events are dropped with the reason recorded.
const MAX_BODY: usize = 256 * 1024;
/// Largest part of a response kept in the attempt log (never more is read).
const MAX_RESPONSE: usize = 16 * 1024;
/// How long the outcome writer gathers outcomes before recording them.
const RECORD_GATHER: Duration = Duration::from_millis(10);
/// Outcomes recorded in one transaction at most.
const MAX_BATCH: usize = 512;
/// How long after the last claimed delivery the engine counts as busy.
const BUSY_FOR: Duration = Duration::from_secs(2);
/// Longest wait between claims while busy (several workers polling an endpoint that
/// trickles would otherwise make mostly empty claims).
const BUSY_POLL_MAX: Duration = Duration::from_millis(4);

/// Refuses to connect to internal addresses unless allowed (stops DNS rebinding: the
/// check is on the address actually used).
struct GuardedResolver {
    allowed: Vec<ipnet::IpNet>,
    /// Names answered without asking DNS (tests stand in a DNS answer with it).
    hosts: HashMap<String, Vec<std::net::IpAddr>>,
}

/// Resolves `host` and keeps the addresses a webhook may connect to.
pub async fn resolve_allowed(host: &str, allowed: &[ipnet::IpNet]) -> Result<Vec<SocketAddr>, String> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, 0))
        .await
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .collect();
    keep_allowed(host, addrs, allowed)
}

fn keep_allowed(
    host: &str,
    addrs: Vec<SocketAddr>,
    allowed: &[ipnet::IpNet],
) -> Result<Vec<SocketAddr>, String> {
    let ok: Vec<SocketAddr> = addrs
        .into_iter()
        .filter(|a| !is_internal(a.ip()) || allowed.iter().any(|n| n.contains(&a.ip())))
        .collect();
    if ok.is_empty() {
        return Err(format!(
            "blocked: {host} resolves only to private or local addresses"
        ));
    }
    Ok(ok)
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allowed = self.allowed.clone();
        let host = name.as_str().to_owned();
        let fixed = self.hosts.get(&host).cloned();
        Box::pin(async move {
            let ok = match fixed {
                Some(ips) => keep_allowed(
                    &host,
                    ips.into_iter().map(|ip| SocketAddr::new(ip, 0)).collect(),
                    &allowed,
                )?,
                None => resolve_allowed(&host, &allowed).await?,
            };
            Ok(Box::new(ok.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// An endpoint's signing secrets as last loaded, valid while `changed_at` matches.
struct CachedSecrets {
    changed_at: DateTime<Utc>,
    secrets: Vec<SigningSecret>,
}

pub struct Deliverer {
    pool: PgPool,
    keyring: Arc<Keyring>,
    cfg: WebhookConfig,
    allowed: Vec<ipnet::IpNet>,
    http: reqwest::Client,
    notices: Option<OwnerNotices>,
    secrets: Mutex<HashMap<Uuid, CachedSecrets>>,
    /// Deliveries whose request is over and whose outcome is not recorded yet: they are
    /// still `delivering` in the database but hold no slot of their endpoint's cap.
    finished: Mutex<HashSet<Uuid>>,
    /// Wakes the claim loop: new deliveries, or a slot freed.
    wake: Notify,
}

/// One attempt as the API reports it.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub id: i64,
    pub delivery_status: String,
    pub response_status: Option<i32>,
    pub duration_ms: i32,
    pub error: String,
}

struct Due {
    id: Uuid,
    endpoint_id: Uuid,
    url: String,
    event: String,
    body: Vec<u8>,
    attempts: i32,
    secrets_changed_at: DateTime<Utc>,
}

/// What became of one attempt.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Next {
    Succeeded,
    /// Try again after this many seconds.
    Retry(f64),
    /// Out of retries.
    Failed,
    /// Never sendable (too big).
    Dropped,
    /// 410: the endpoint is disabled.
    Gone,
}

struct Outcome {
    delivery: Uuid,
    endpoint: Uuid,
    /// The claim's attempt number: a result for a delivery another worker has since taken
    /// over (its lease ran out) is logged but does not change the delivery.
    attempt: i32,
    headers: String,
    status: Option<u16>,
    response: String,
    duration_ms: i32,
    error: String,
    next: Next,
}

impl Outcome {
    fn delivery_status(&self) -> &'static str {
        match self.next {
            Next::Succeeded => "succeeded",
            Next::Retry(_) => "pending",
            Next::Failed | Next::Gone => "failed",
            Next::Dropped => "dropped",
        }
    }

    /// Counts against the endpoint's health (a too-big event is not the receiver's fault).
    fn is_failure(&self) -> bool {
        matches!(self.next, Next::Retry(_) | Next::Failed | Next::Gone)
    }

    fn summary(&self) -> String {
        match (self.status, self.error.is_empty()) {
            (Some(s), true) => format!("HTTP {s}"),
            (Some(s), false) => format!("HTTP {s}: {}", self.error),
            (None, _) => self.error.clone(),
        }
    }
}

impl Deliverer {
    pub fn new(
        pool: PgPool,
        keyring: Arc<Keyring>,
        cfg: WebhookConfig,
        allowed: Vec<ipnet::IpNet>,
        notices: Option<OwnerNotices>,
    ) -> anyhow::Result<Self> {
        let http = Self::client(&cfg, &allowed, HashMap::new())?;
        Ok(Self {
            pool,
            keyring,
            cfg,
            allowed,
            http,
            notices,
            secrets: Mutex::default(),
            finished: Mutex::default(),
            wake: Notify::new(),
        })
    }

    fn client(
        cfg: &WebhookConfig,
        allowed: &[ipnet::IpNet],
        hosts: HashMap<String, Vec<std::net::IpAddr>>,
    ) -> anyhow::Result<reqwest::Client> {
        Ok(reqwest::Client::builder()
            .user_agent(concat!("Ender/", env!("CARGO_PKG_VERSION")))
            .timeout(Duration::from_secs(cfg.webhook_timeout_secs.max(1)))
            .redirect(reqwest::redirect::Policy::none())
            // A proxy from HTTP(S)_PROXY or ALL_PROXY would resolve the receiver's name
            // itself, out of the guard's sight: webhooks always connect directly.
            .no_proxy()
            .dns_resolver(GuardedResolver {
                allowed: allowed.to_vec(),
                hosts,
            })
            .build()?)
    }

    /// Answers these names with these addresses instead of asking DNS; the addresses are
    /// checked like any DNS answer. For tests that need a name resolving somewhere.
    #[doc(hidden)]
    pub fn with_static_hosts(
        mut self,
        hosts: HashMap<String, Vec<std::net::IpAddr>>,
    ) -> anyhow::Result<Self> {
        self.http = Self::client(&self.cfg, &self.allowed, hosts)?;
        Ok(self)
    }

    /// Seconds a claim holds a delivery: the receiver's timeout and a margin to record it.
    fn lease_secs(&self) -> f64 {
        self.cfg.webhook_timeout_secs.max(1) as f64 + 3.0
    }

    /// Delivers until `shutdown`; deliveries in flight then finish (within the timeout)
    /// and are recorded before it returns.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let (results, outcomes) = mpsc::unbounded_channel();
        let writer = tokio::spawn(self.clone().write_outcomes(outcomes));
        let listener = tokio::spawn(self.clone().listen(shutdown.clone()));
        let mut tasks = tokio::task::JoinSet::new();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut busy_until = Instant::now();
        let fastest = Duration::from_millis(self.cfg.webhook_busy_poll_ms.max(1));
        let mut busy_poll = fastest;
        // When the next claim is due without a wake-up (kept across the loop's turns, so
        // finishing requests do not put it off).
        let mut next_poll = tokio::time::Instant::now();
        loop {
            let busy = Instant::now() < busy_until;
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = self.wake.notified() => {}
                Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
                () = tokio::time::sleep_until(next_poll), if busy => {}
                _ = tick.tick() => {
                    if let Err(e) = self.recover_leases().await {
                        tracing::warn!(error = %e, "taking over expired webhook leases failed");
                    }
                }
            }
            let max_in_flight = self.cfg.webhook_max_in_flight.max(1);
            while tasks.len() < max_in_flight {
                let room = max_in_flight - tasks.len();
                let due = match self.claim(room).await {
                    Ok(due) => due,
                    Err(e) => {
                        tracing::warn!(error = %e, "claiming webhook deliveries failed");
                        break;
                    }
                };
                let claimed = due.len();
                if claimed > 0 {
                    busy_until = Instant::now() + BUSY_FOR;
                    busy_poll = fastest;
                } else {
                    busy_poll = (busy_poll * 2).min(BUSY_POLL_MAX.max(fastest));
                }
                next_poll = tokio::time::Instant::now() + busy_poll;
                for d in due {
                    let me = self.clone();
                    let results = results.clone();
                    tasks.spawn(async move {
                        let outcome = me.attempt(d).await;
                        if let Ok(mut f) = me.finished.lock() {
                            f.insert(outcome.delivery);
                        }
                        let _ = results.send(outcome);
                    });
                }
                if claimed < room {
                    break;
                }
            }
        }
        while tasks.join_next().await.is_some() {}
        drop(results);
        let _ = writer.await;
        listener.abort();
    }

    async fn listen(self: Arc<Self>, shutdown: CancellationToken) {
        loop {
            let result: sqlx::Result<()> = async {
                let mut listener = PgListener::connect_with(&self.pool).await?;
                listener.listen(WEBHOOKS).await?;
                // Anything that arrived while not listening is found now.
                self.wake.notify_one();
                loop {
                    tokio::select! {
                        () = shutdown.cancelled() => return Ok(()),
                        n = listener.recv() => { n?; }
                    }
                    self.wake.notify_one();
                }
            }
            .await;
            if shutdown.is_cancelled() {
                return;
            }
            if let Err(e) = result {
                tracing::warn!(error = %e, "listening for webhook deliveries failed; retrying");
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }

    /// Returns deliveries whose worker died (lease over) to the queue.
    pub async fn recover_leases(&self) -> sqlx::Result<u64> {
        let done = sqlx::query!(
            "UPDATE webhook_deliveries SET status = 'pending', lease_expires_at = NULL, updated_at = now()
             WHERE status = 'delivering' AND lease_expires_at < now()"
        )
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// Claims up to `limit` due deliveries, in one call of `webhook_claim` (see its
    /// migration): endpoints with pending deliveries are locked (skipping those another
    /// worker is claiming for), then each one's free slots are counted on a snapshot taken
    /// after the locks, so the per-endpoint cap holds across workers, and its oldest due
    /// deliveries are taken. A delivery whose request is over holds no slot while its
    /// outcome waits to be recorded. An endpoint whose breaker is open is skipped without
    /// touching its deliveries' attempts; a failing one gets one probe at a time. Due
    /// deliveries are taken round-robin between workspaces, none beyond its share.
    async fn claim(&self, limit: usize) -> sqlx::Result<Vec<Due>> {
        let finished: Vec<Uuid> = self
            .finished
            .lock()
            .map(|f| f.iter().copied().collect())
            .unwrap_or_default();
        sqlx::query_as!(
            Due,
            r#"SELECT id AS "id!", endpoint_id AS "endpoint_id!", url AS "url!", event AS "event!", body AS "body!",
                      attempts AS "attempts!", secrets_changed_at AS "secrets_changed_at!"
               FROM webhook_claim($1, $2, $3, $4, $5, $6)"#,
            self.cfg.webhook_concurrency.max(1),
            self.lease_secs(),
            BREAKER_THRESHOLD,
            i64::try_from(limit).unwrap_or(i64::MAX),
            &finished,
            self.cfg.webhook_workspace_concurrency.max(1)
        )
        .fetch_all(&self.pool)
        .await
    }

    /// Claims everything due once and sends it, waiting for the outcomes to be recorded;
    /// returns how many were attempted. (The running engine does this continuously.)
    pub async fn pass(self: &Arc<Self>) -> sqlx::Result<usize> {
        self.recover_leases().await?;
        let due = self.claim(self.cfg.webhook_max_in_flight.max(1)).await?;
        let n = due.len();
        let mut tasks = tokio::task::JoinSet::new();
        for d in due {
            let me = self.clone();
            tasks.spawn(async move { me.attempt(d).await });
        }
        let mut outcomes = Vec::with_capacity(n);
        while let Some(o) = tasks.join_next().await {
            if let Ok(o) = o {
                outcomes.push(o);
            }
        }
        self.record(&outcomes).await?;
        Ok(n)
    }

    /// Sends one delivery now, whatever its state (a test event, or a retry by hand), and
    /// returns the attempt it made; `None` when it is being sent right now.
    pub async fn deliver_now(&self, delivery: Uuid) -> sqlx::Result<Option<Attempt>> {
        let due = sqlx::query_as!(
            Due,
            r#"WITH claimed AS (
                   UPDATE webhook_deliveries SET status = 'delivering', attempts = attempts + 1,
                          lease_expires_at = now() + make_interval(secs => $2), updated_at = now()
                   WHERE id = $1 AND status <> 'delivering'
                   RETURNING id, endpoint_id, event, body, attempts)
               SELECT c.id AS "id!", c.endpoint_id AS "endpoint_id!", e.url AS "url!", c.event AS "event!",
                      c.body AS "body!", c.attempts AS "attempts!", e.secrets_changed_at AS "secrets_changed_at!"
               FROM claimed c JOIN webhook_endpoints e ON e.id = c.endpoint_id"#,
            delivery,
            self.lease_secs()
        )
        .fetch_optional(&self.pool)
        .await?;
        let Some(due) = due else { return Ok(None) };
        let outcome = self.attempt(due).await;
        self.record(std::slice::from_ref(&outcome)).await?;
        sqlx::query_as!(
            Attempt,
            r#"SELECT a.id, d.status AS delivery_status, a.response_status, a.duration_ms, a.error
               FROM webhook_attempts a JOIN webhook_deliveries d ON d.id = a.delivery_id
               WHERE a.delivery_id = $1 ORDER BY a.id DESC LIMIT 1"#,
            delivery
        )
        .fetch_optional(&self.pool)
        .await
    }

    /// The endpoint's signing secrets, from the cache while they have not changed. An
    /// endpoint is never sent an unsigned delivery: without a secret the attempt fails.
    async fn secrets_for(&self, endpoint: Uuid, changed_at: DateTime<Utc>) -> Result<Vec<String>, String> {
        let now = Utc::now();
        let live = |list: &[SigningSecret]| -> Vec<String> {
            list.iter()
                .filter(|s| s.expires_at.is_none_or(|t| t > now))
                .map(|s| s.secret.clone())
                .collect()
        };
        if let Ok(cache) = self.secrets.lock()
            && let Some(c) = cache.get(&endpoint)
            && c.changed_at == changed_at
        {
            let out = live(&c.secrets);
            if !out.is_empty() {
                return Ok(out);
            }
        }
        let loaded = match self.pool.acquire().await {
            Ok(mut conn) => signing_secrets(&mut conn, &self.keyring, endpoint).await,
            Err(e) => Err(e.into()),
        };
        match loaded {
            Ok(list) => {
                let out = live(&list);
                if let Ok(mut cache) = self.secrets.lock() {
                    if cache.len() > 10_000 {
                        cache.clear();
                    }
                    cache.insert(
                        endpoint,
                        CachedSecrets {
                            changed_at,
                            secrets: list,
                        },
                    );
                }
                if out.is_empty() {
                    Err("The endpoint has no signing secret; rotate its secret.".to_owned())
                } else {
                    Ok(out)
                }
            }
            Err(e) => {
                tracing::error!(endpoint.id = %endpoint, error = %e, "loading a webhook secret failed");
                Err("The signing secret could not be opened (check ENDER_SECRET_KEYS); not sent.".to_owned())
            }
        }
    }

    /// Signs and sends one delivery, and decides what comes next.
    async fn attempt(&self, mut d: Due) -> Outcome {
        let started = Instant::now();
        let webhook_id = format!("msg_{}", d.id.simple());
        let ts = Utc::now().timestamp();
        let unreadable = match ender_core::secret::at_rest::open_payload(d.id, std::mem::take(&mut d.body)) {
            Ok(body) => {
                d.body = body;
                None
            }
            Err(e) => {
                tracing::error!(webhook.delivery = %d.id, error = %e, "a webhook payload could not be opened");
                Some("The event could not be decrypted (check ENDER_SECRET_KEYS); not sent.".to_owned())
            }
        };
        let (status, response, error, retry_after) = if let Some(error) = unreadable {
            (None, String::new(), error, None)
        } else if d.body.len() > MAX_BODY {
            (
                None,
                String::new(),
                format!("The event is larger than {MAX_BODY} bytes; it was not sent."),
                None,
            )
        } else if let Err(e) = check_url(&d.url, &self.allowed) {
            (None, String::new(), format!("blocked: {}", e.message), None)
        } else {
            let secrets = match self.secrets_for(d.endpoint_id, d.secrets_changed_at).await {
                Ok(s) => s,
                Err(error) => {
                    let headers = HeaderSet {
                        webhook_id: &webhook_id,
                        ts,
                        standard: "",
                        vendel: "",
                    }
                    .to_json();
                    let sent = Sent {
                        status: None,
                        response: String::new(),
                        error,
                        retry_after: None,
                        dropped: false,
                    };
                    return self.outcome(&d.id, d.endpoint_id, d.attempts, &d.event, headers, started, sent);
                }
            };
            let sigs = sign(&secrets, &webhook_id, ts, &d.body);
            let headers = HeaderSet {
                webhook_id: &webhook_id,
                ts,
                standard: &sigs.standard,
                vendel: &sigs.vendel,
            };
            let result = self.send(&d.url, &headers, d.body).await;
            let headers = headers.to_json();
            return self.outcome(
                &d.id,
                d.endpoint_id,
                d.attempts,
                &d.event,
                headers,
                started,
                result,
            );
        };
        let headers = HeaderSet {
            webhook_id: &webhook_id,
            ts,
            standard: "",
            vendel: "",
        }
        .to_json();
        self.outcome(
            &d.id,
            d.endpoint_id,
            d.attempts,
            &d.event,
            headers,
            started,
            Sent {
                status,
                response,
                error,
                retry_after,
                dropped: d.body.len() > MAX_BODY,
            },
        )
    }

    async fn send(&self, url: &str, h: &HeaderSet<'_>, body: Vec<u8>) -> Sent {
        let mut req = self
            .http
            .post(url)
            .header("content-type", "application/json")
            .header("webhook-id", h.webhook_id)
            .header("webhook-timestamp", h.ts.to_string())
            .header("webhook-signature", h.standard)
            .body(body);
        if !h.vendel.is_empty() {
            req = req.header("x-webhook-signature", h.vendel);
        }
        match req.send().await {
            Ok(mut res) => {
                let status = res.status().as_u16();
                let retry_after = res
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok());
                let mut body = Vec::new();
                while body.len() < MAX_RESPONSE {
                    match res.chunk().await {
                        Ok(Some(chunk)) => {
                            body.extend_from_slice(&chunk[..chunk.len().min(MAX_RESPONSE - body.len())]);
                        }
                        _ => break,
                    }
                }
                let mut error = String::new();
                if (300..400).contains(&status) {
                    error = "The receiver redirected; redirects are not followed.".to_owned();
                }
                if let Some(secs) = retry_after {
                    error = format!("{error} Retry-After: {secs} s").trim().to_owned();
                }
                Sent {
                    status: Some(status),
                    response: String::from_utf8_lossy(&body).into_owned(),
                    error,
                    retry_after,
                    dropped: false,
                }
            }
            Err(e) => Sent {
                status: None,
                response: String::new(),
                error: if e.is_timeout() {
                    "The receiver did not answer in time.".to_owned()
                } else {
                    chain(&e)
                },
                retry_after: None,
                dropped: false,
            },
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn outcome(
        &self,
        delivery: &Uuid,
        endpoint: Uuid,
        attempt: i32,
        event: &str,
        headers: String,
        started: Instant,
        sent: Sent,
    ) -> Outcome {
        let success = sent.status.is_some_and(|s| (200..300).contains(&s));
        let next = if success {
            Next::Succeeded
        } else if sent.dropped {
            Next::Dropped
        } else if sent.status == Some(410) {
            Next::Gone
        } else if event == "test" {
            // A test is sent on request and reported at once; it is not retried.
            Next::Failed
        } else {
            match usize::try_from(attempt - 1)
                .ok()
                .and_then(|i| self.cfg.webhook_retry_secs.get(i))
            {
                None => Next::Failed,
                Some(&base) => {
                    let wait = match sent.retry_after {
                        Some(h) if matches!(sent.status, Some(429 | 503)) => {
                            h.clamp(base, base.saturating_mul(4))
                        }
                        _ => base,
                    };
                    let jitter = rand::rng().random_range(0.8..1.2);
                    Next::Retry((wait as f64 * jitter).max(0.0))
                }
            }
        };
        Outcome {
            delivery: *delivery,
            endpoint,
            attempt,
            headers,
            status: sent.status,
            response: sent.response,
            duration_ms: i32::try_from(started.elapsed().as_millis()).unwrap_or(i32::MAX),
            error: sent.error,
            next,
        }
    }

    /// Records outcomes as they arrive, all that are waiting in one transaction, then frees
    /// their slots. A database outage is retried: the deliveries stay leased meanwhile (and
    /// are sent again by whoever takes them over if it lasts past the lease).
    async fn write_outcomes(self: Arc<Self>, mut outcomes: mpsc::UnboundedReceiver<Outcome>) {
        let mut batch = Vec::new();
        while let Some(first) = outcomes.recv().await {
            batch.push(first);
            // A finished request already freed its slot, so waiting a moment costs no
            // delivery any time, and records the outcomes of a busy stream in fewer
            // statements.
            tokio::time::sleep(RECORD_GATHER).await;
            while batch.len() < MAX_BATCH {
                match outcomes.try_recv() {
                    Ok(o) => batch.push(o),
                    Err(_) => break,
                }
            }
            let mut wait = Duration::from_millis(200);
            while let Err(e) = self.record(&batch).await {
                tracing::warn!(error = %e, "recording webhook attempts failed; retrying");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(5));
            }
            if let Ok(mut f) = self.finished.lock() {
                for o in &batch {
                    f.remove(&o.delivery);
                }
            }
            batch.clear();
            self.wake.notify_one();
        }
    }

    /// Writes attempts, delivery states, endpoint health and hourly counters for a batch:
    /// one statement when every endpoint in it is healthy (the usual case), a transaction
    /// with that statement and the failing endpoints' health otherwise.
    async fn record(&self, batch: &[Outcome]) -> sqlx::Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        // Health per endpoint, in the order the outcomes arrived.
        let mut health: Vec<Health> = Vec::new();
        for o in batch {
            let h = match health.iter_mut().find(|h| h.endpoint == o.endpoint) {
                Some(h) => h,
                None => {
                    health.push(Health::new(o.endpoint));
                    health.last_mut().expect("just pushed")
                }
            };
            if o.next == Next::Succeeded {
                h.succeeded += 1;
                h.reset = true;
                h.failures_after = 0;
            } else if o.is_failure() {
                h.failed += 1;
                h.failures_after += 1;
                h.last_failure = o.summary();
                h.gone |= o.next == Next::Gone;
            }
        }
        let failing = health.iter().any(Health::failing);
        let tx = if failing {
            Some(self.pool.begin().await?)
        } else {
            None
        };
        let ids: Vec<Uuid> = batch.iter().map(|o| o.delivery).collect();
        let outcomes = sqlx::query!(
            "WITH attempts AS (
                 INSERT INTO webhook_attempts (delivery_id, endpoint_id, request_headers, response_status, response_body,
                                               duration_ms, error)
                 SELECT u.delivery_id, u.endpoint_id, u.headers::jsonb, u.status, u.response, u.duration_ms, u.error
                 FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::int[], $5::text[], $6::int[], $7::text[])
                      AS u(delivery_id, endpoint_id, headers, status, response, duration_ms, error)),
             deliveries AS (
                 UPDATE webhook_deliveries d SET status = u.status, last_status = u.last_status, last_error = u.error,
                        lease_expires_at = NULL,
                        next_attempt_at = CASE WHEN u.wait IS NULL THEN d.next_attempt_at
                                               ELSE now() + make_interval(secs => u.wait) END,
                        delivered_at = CASE WHEN u.status = 'succeeded' THEN now() ELSE d.delivered_at END,
                        updated_at = now()
                 FROM UNNEST($1::uuid[], $8::int[], $9::text[], $4::int[], $7::text[], $10::float8[])
                      AS u(id, attempt, status, last_status, error, wait)
                 WHERE d.id = u.id AND d.status = 'delivering' AND d.attempts = u.attempt),
             recovered AS (
                 UPDATE webhook_endpoints SET consecutive_failures = 0, failing_since = NULL, breaker_open_until = NULL,
                        breaker_opened = 0
                 WHERE id = ANY ($11) AND (consecutive_failures <> 0 OR failing_since IS NOT NULL
                                           OR breaker_open_until IS NOT NULL))
             INSERT INTO webhook_endpoint_stats AS s (endpoint_id, hour, succeeded, failed)
             SELECT u.endpoint_id, date_trunc('hour', now()), u.succeeded, u.failed
             FROM UNNEST($12::uuid[], $13::bigint[], $14::bigint[]) AS u(endpoint_id, succeeded, failed)
             JOIN webhook_endpoints e ON e.id = u.endpoint_id
             ON CONFLICT (endpoint_id, hour) DO UPDATE
             SET succeeded = s.succeeded + excluded.succeeded, failed = s.failed + excluded.failed",
            &ids,
            &batch.iter().map(|o| o.endpoint).collect::<Vec<_>>(),
            &batch.iter().map(|o| o.headers.clone()).collect::<Vec<_>>(),
            &batch.iter().map(|o| o.status.map(i32::from)).collect::<Vec<_>>() as &[Option<i32>],
            &batch
                .iter()
                .map(|o| o.response.replace('\0', ""))
                .collect::<Vec<_>>(),
            &batch.iter().map(|o| o.duration_ms).collect::<Vec<_>>(),
            &batch.iter().map(|o| o.error.clone()).collect::<Vec<_>>(),
            &batch.iter().map(|o| o.attempt).collect::<Vec<_>>(),
            &batch
                .iter()
                .map(|o| o.delivery_status().to_owned())
                .collect::<Vec<_>>(),
            &batch
                .iter()
                .map(|o| match o.next {
                    Next::Retry(s) => Some(s),
                    _ => None,
                })
                .collect::<Vec<_>>() as &[Option<f64>],
            &health
                .iter()
                .filter(|h| h.reset && !h.failing())
                .map(|h| h.endpoint)
                .collect::<Vec<_>>(),
            &health.iter().map(|h| h.endpoint).collect::<Vec<_>>(),
            &health.iter().map(|h| h.succeeded).collect::<Vec<_>>(),
            &health.iter().map(|h| h.failed).collect::<Vec<_>>()
        );
        let Some(mut tx) = tx else {
            outcomes.execute(&self.pool).await?;
            return Ok(());
        };
        outcomes.execute(&mut *tx).await?;

        let mut disabled = Vec::new();
        for h in health.iter().filter(|h| h.failing()) {
            let failing_since = sqlx::query_scalar!(
                // At the threshold the breaker opens for 30 s (afresh after a success in the
                // batch); failures of requests sent before it opened leave it as it is; a
                // probe that fails once the pause is over doubles the pause, up to 10 min.
                "UPDATE webhook_endpoints SET
                            consecutive_failures = CASE WHEN $2 THEN 0 ELSE consecutive_failures END + $3,
                            failing_since = CASE WHEN $2 THEN now() ELSE coalesce(failing_since, now()) END,
                            last_failure_at = now(), last_failure = $4,
                            breaker_open_until = CASE
                                WHEN CASE WHEN $2 THEN 0 ELSE consecutive_failures END + $3 < $5
                                THEN CASE WHEN $2 THEN NULL ELSE breaker_open_until END
                                WHEN $2 OR breaker_open_until IS NULL THEN now() + interval '30 seconds'
                                WHEN breaker_open_until > now() THEN breaker_open_until
                                ELSE now() + make_interval(secs => least(600, 30 * power(2, breaker_opened))) END,
                            breaker_opened = CASE
                                WHEN CASE WHEN $2 THEN 0 ELSE consecutive_failures END + $3 < $5
                                THEN CASE WHEN $2 THEN 0 ELSE breaker_opened END
                                WHEN $2 OR breaker_open_until IS NULL THEN 1
                                WHEN breaker_open_until > now() THEN breaker_opened
                                ELSE breaker_opened + 1 END
                     WHERE id = $1 AND active
                     RETURNING failing_since",
                h.endpoint,
                h.reset,
                h.failures_after,
                h.last_failure.chars().take(500).collect::<String>(),
                BREAKER_THRESHOLD
            )
            .fetch_optional(&mut *tx)
            .await?
            .flatten();
            let window = chrono::Duration::hours(
                i64::try_from(self.cfg.webhook_disable_after_hours).unwrap_or(i64::MAX / 4_000_000),
            );
            if h.gone {
                let reason = "The receiver answered 410 Gone.".to_owned();
                if self.disable(&mut tx, h.endpoint, &reason).await? {
                    disabled.push((h.endpoint, reason));
                }
            } else if let Some(since) = failing_since
                && Utc::now() - since >= window
            {
                let reason = format!(
                    "Every delivery failed for {} hours (last: {}).",
                    self.cfg.webhook_disable_after_hours,
                    h.last_failure.chars().take(200).collect::<String>()
                );
                if self.disable(&mut tx, h.endpoint, &reason).await? {
                    disabled.push((h.endpoint, reason));
                }
            }
        }
        tx.commit().await?;
        for (endpoint, reason) in disabled {
            self.tell_owner(endpoint, &reason).await;
        }
        Ok(())
    }

    /// Disables an endpoint on Ender's initiative: what is queued for it is held, and so is
    /// every new event, until its owner re-enables it.
    async fn disable(&self, tx: &mut sqlx::PgConnection, endpoint: Uuid, reason: &str) -> sqlx::Result<bool> {
        let done = sqlx::query!(
            "UPDATE webhook_endpoints SET active = false, disabled_reason = $2, disabled_at = now(), updated_at = now()
             WHERE id = $1 AND active",
            endpoint,
            reason
        )
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        sqlx::query!(
            "UPDATE webhook_deliveries SET status = 'held', updated_at = now() WHERE endpoint_id = $1 AND status = 'pending'",
            endpoint
        )
        .execute(&mut *tx)
        .await?;
        tracing::warn!(endpoint.id = %endpoint, reason, "webhook endpoint disabled");
        Ok(true)
    }

    /// Mails the workspace's owners and administrators (who may re-enable the endpoint).
    async fn tell_owner(&self, endpoint: Uuid, reason: &str) {
        let Some(notices) = &self.notices else { return };
        let rows = sqlx::query!(
            "SELECT u.email, e.url FROM webhook_endpoints e
             JOIN workspace_members m ON m.workspace_id = e.workspace_id AND m.role IN ('owner', 'admin')
             JOIN users u ON u.id = m.user_id
             WHERE e.id = $1 ORDER BY m.created_at",
            endpoint
        )
        .fetch_all(&self.pool)
        .await;
        let Ok(rows) = rows else { return };
        let link = format!("{}/webhooks/{endpoint}", notices.public_url.trim_end_matches('/'));
        for row in rows {
            let mail = Mail {
                to: row.email,
                subject: "Ender stopped sending to one of your webhooks".to_owned(),
                text: format!(
                    "Ender disabled your webhook endpoint\n\n  {url}\n\n{reason}\n\n\
                     Events since then are kept. When the receiver works again, open\n\n  {link}\n\n\
                     and choose \"Re-enable and replay\": Ender sends everything it missed.\n",
                    url = row.url
                ),
            };
            if let Err(e) = notices.mailer.send(&mail).await {
                tracing::warn!(endpoint.id = %endpoint, error = %e, "mailing the owner of a disabled webhook failed");
            }
        }
    }
}

struct Sent {
    status: Option<u16>,
    response: String,
    error: String,
    retry_after: Option<u64>,
    dropped: bool,
}

struct HeaderSet<'a> {
    webhook_id: &'a str,
    ts: i64,
    standard: &'a str,
    vendel: &'a str,
}

impl HeaderSet<'_> {
    /// The request headers as the attempt log shows them.
    fn to_json(&self) -> String {
        let mut h = serde_json::json!({
            "content-type": "application/json",
            "user-agent": concat!("Ender/", env!("CARGO_PKG_VERSION")),
            "webhook-id": self.webhook_id,
            "webhook-timestamp": self.ts.to_string(),
        });
        if !self.standard.is_empty() {
            h["webhook-signature"] = self.standard.into();
        }
        if !self.vendel.is_empty() {
            h["x-webhook-signature"] = self.vendel.into();
        }
        h.to_string()
    }
}

struct Health {
    endpoint: Uuid,
    succeeded: i64,
    failed: i64,
    /// A success came in this batch: the failure count restarts from it.
    reset: bool,
    failures_after: i32,
    last_failure: String,
    gone: bool,
}

impl Health {
    /// Failures came after the batch's last success (or a 410): the endpoint's failure
    /// count, breaker and perhaps its active flag change.
    fn failing(&self) -> bool {
        self.failures_after > 0 || self.gone
    }

    fn new(endpoint: Uuid) -> Self {
        Self {
            endpoint,
            succeeded: 0,
            failed: 0,
            reset: false,
            failures_after: 0,
            last_failure: String::new(),
            gone: false,
        }
    }
}

/// An error with its causes, so the attempt log says why (e.g. which address was blocked).
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    const CHILD: &str = "ENDER_TEST_PROXY_CHILD";

    /// The proxy variables are read when a client is built and are process-wide, so the
    /// check runs in a child process of this test binary with them set, and this process
    /// plays the proxy: it counts connections and answers 502 to any.
    #[test]
    fn the_client_ignores_proxy_variables() {
        if std::env::var_os(CHILD).is_some() {
            return tokio::runtime::Runtime::new()
                .unwrap()
                .block_on(through_the_client());
        }
        let proxy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let proxy_url = format!("http://{}", proxy.local_addr().unwrap());
        let connections = Arc::new(AtomicUsize::new(0));
        let counted = connections.clone();
        std::thread::spawn(move || {
            for stream in proxy.incoming() {
                let Ok(mut stream) = stream else { continue };
                counted.fetch_add(1, Ordering::SeqCst);
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf);
                let _ = stream
                    .write_all(b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            }
        });
        let mut child = std::process::Command::new(std::env::current_exe().unwrap());
        child
            .args([
                "--exact",
                "webhooks::tests::the_client_ignores_proxy_variables",
                "--test-threads=1",
            ])
            .env(CHILD, "1")
            .env_remove("NO_PROXY")
            .env_remove("no_proxy")
            .env_remove("REQUEST_METHOD");
        for var in [
            "HTTP_PROXY",
            "HTTPS_PROXY",
            "ALL_PROXY",
            "http_proxy",
            "https_proxy",
            "all_proxy",
        ] {
            child.env(var, &proxy_url);
        }
        let out = child.output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("1 passed"),
            "the child check failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            connections.load(Ordering::SeqCst),
            0,
            "nothing went through the proxy"
        );
    }

    /// In the child: a delivery reaches the receiver directly, and a name resolving to a
    /// private address is still refused by the guard (a proxy would have answered both).
    async fn through_the_client() {
        let receiver = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = receiver.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = receiver.accept().await {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf).await;
                let _ = stream
                    .write_all(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                    .await;
            }
        });
        let hosts = HashMap::from([
            (
                "hooks.example.com".to_owned(),
                vec![std::net::IpAddr::from([127, 0, 0, 1])],
            ),
            (
                "inside.example.com".to_owned(),
                vec![std::net::IpAddr::from([10, 0, 0, 1])],
            ),
        ]);
        let loopback: Vec<ipnet::IpNet> = vec!["127.0.0.0/8".parse().unwrap()];
        let cfg = WebhookConfig {
            webhook_timeout_secs: 5,
            ..WebhookConfig::default()
        };
        let http = Deliverer::client(&cfg, &loopback, hosts).unwrap();
        let res = http
            .post(format!("http://hooks.example.com:{port}/hook"))
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(
            res.status().as_u16(),
            204,
            "answered by the receiver, not a proxy"
        );
        let refused = http
            .post(format!("http://inside.example.com:{port}/hook"))
            .body("{}")
            .send()
            .await
            .unwrap_err();
        assert!(chain(&refused).contains("blocked"), "{}", chain(&refused));
    }
}
