//! Delivering webhooks. Deliveries are rows written with the change they report; this loop
//! claims due ones under a lease (a worker killed mid-delivery is replaced within 20 s, and
//! a retry carries the same `webhook-id` and bytes), at most a few in flight per endpoint so
//! one slow receiver never holds up another, signs and sends each, records the attempt, and
//! schedules the next try in Postgres. Receivers are reached only at public addresses (checked
//! on the resolved address at connect time) unless an administrator allowed a range.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use ender_core::secret::Keyring;
use ender_core::webhook::endpoint::{check_url, is_internal, live_secrets};
use ender_core::webhook::sign;
use rand::Rng;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

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

    /// Deliveries in flight at once per endpoint.
    #[arg(long, env = "ENDER_WEBHOOK_CONCURRENCY", default_value_t = 4)]
    pub webhook_concurrency: i64,
}

/// Failures in a row after which an endpoint's breaker opens: its deliveries wait (without
/// using attempts) 30 s, doubling up to 10 min, then one probe goes; a success closes it.
pub const BREAKER_THRESHOLD: i32 = 5;

/// Largest body sent; bigger events are dropped with the reason recorded.
const MAX_BODY: usize = 256 * 1024;
/// Largest part of a response kept in the attempt log (never more is read).
const MAX_RESPONSE: usize = 16 * 1024;

/// Refuses to connect to internal addresses unless allowed (stops DNS rebinding: the
/// check is on the address actually used).
struct GuardedResolver {
    allowed: Vec<ipnet::IpNet>,
}

/// Resolves `host` and keeps the addresses a webhook may connect to.
pub async fn resolve_allowed(host: &str, allowed: &[ipnet::IpNet]) -> Result<Vec<SocketAddr>, String> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, 0))
        .await
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .collect();
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
        Box::pin(async move {
            let ok = resolve_allowed(&host, &allowed).await?;
            Ok(Box::new(ok.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

pub struct Deliverer {
    pool: PgPool,
    keyring: Arc<Keyring>,
    cfg: WebhookConfig,
    allowed: Vec<ipnet::IpNet>,
    http: reqwest::Client,
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
    id: uuid::Uuid,
    endpoint_id: uuid::Uuid,
    url: String,
    body: Vec<u8>,
    attempts: i32,
}

impl Deliverer {
    pub fn new(
        pool: PgPool,
        keyring: Arc<Keyring>,
        cfg: WebhookConfig,
        allowed: Vec<ipnet::IpNet>,
    ) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("Ender/", env!("CARGO_PKG_VERSION")))
            .timeout(Duration::from_secs(cfg.webhook_timeout_secs.max(1)))
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(GuardedResolver {
                allowed: allowed.clone(),
            })
            .build()?;
        Ok(Self {
            pool,
            keyring,
            cfg,
            allowed,
            http,
        })
    }

    /// Delivers until `shutdown`, polling every 200 ms.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            if let Err(e) = self.pass().await {
                tracing::warn!(error = %e, "webhook delivery pass failed");
            }
        }
    }

    /// Takes over deliveries whose worker died, claims due ones and sends them; returns how
    /// many were attempted.
    pub async fn pass(self: &Arc<Self>) -> sqlx::Result<usize> {
        sqlx::query!(
            "UPDATE webhook_deliveries SET status = 'pending', lease_expires_at = NULL, updated_at = now()
             WHERE status = 'delivering' AND lease_expires_at < now()"
        )
        .execute(&self.pool)
        .await?;
        let lease = self.cfg.webhook_timeout_secs as f64 + 5.0;
        let due = sqlx::query_as!(
            Due,
            r#"WITH busy AS (
                   SELECT endpoint_id, count(*) AS n FROM webhook_deliveries WHERE status = 'delivering' GROUP BY endpoint_id),
               candidates AS (
                   SELECT d.id, row_number() OVER (PARTITION BY d.endpoint_id ORDER BY d.next_attempt_at, d.id)
                              + coalesce(b.n, 0) AS rank,
                          -- a failing endpoint gets one probe at a time (half-open breaker)
                          CASE WHEN e.consecutive_failures >= $3::int THEN 1::bigint ELSE $1::bigint END AS cap
                   FROM webhook_deliveries d
                   JOIN webhook_endpoints e ON e.id = d.endpoint_id
                   LEFT JOIN busy b ON b.endpoint_id = d.endpoint_id
                   WHERE d.status = 'pending' AND d.next_attempt_at <= now()
                     AND (e.breaker_open_until IS NULL OR e.breaker_open_until <= now())),
               claimed AS (
                   UPDATE webhook_deliveries d SET status = 'delivering', attempts = d.attempts + 1,
                          lease_expires_at = now() + make_interval(secs => $2), updated_at = now()
                   FROM candidates c
                   WHERE d.id = c.id AND c.rank <= c.cap AND d.status = 'pending'
                   RETURNING d.id, d.endpoint_id, d.body, d.attempts)
               SELECT c.id AS "id!", c.endpoint_id AS "endpoint_id!", e.url AS "url!", c.body AS "body!", c.attempts AS "attempts!"
               FROM claimed c JOIN webhook_endpoints e ON e.id = c.endpoint_id"#,
            self.cfg.webhook_concurrency.max(1),
            lease,
            BREAKER_THRESHOLD
        )
        .fetch_all(&self.pool)
        .await?;
        let n = due.len();
        let mut tasks = tokio::task::JoinSet::new();
        for d in due {
            let me = self.clone();
            tasks.spawn(async move {
                if let Err(e) = me.deliver(d).await {
                    tracing::warn!(error = %e, "recording a webhook attempt failed");
                }
            });
        }
        while tasks.join_next().await.is_some() {}
        Ok(n)
    }

    /// Sends one delivery now, whatever its state (a test event, or a retry by hand), and
    /// returns the attempt it made.
    pub async fn deliver_now(&self, delivery: uuid::Uuid) -> sqlx::Result<Option<Attempt>> {
        let lease = self.cfg.webhook_timeout_secs as f64 + 5.0;
        let due = sqlx::query_as!(
            Due,
            r#"WITH claimed AS (
                   UPDATE webhook_deliveries SET status = 'delivering', attempts = attempts + 1,
                          lease_expires_at = now() + make_interval(secs => $2), updated_at = now()
                   WHERE id = $1 AND status <> 'delivering'
                   RETURNING id, endpoint_id, body, attempts)
               SELECT c.id AS "id!", c.endpoint_id AS "endpoint_id!", e.url AS "url!", c.body AS "body!", c.attempts AS "attempts!"
               FROM claimed c JOIN webhook_endpoints e ON e.id = c.endpoint_id"#,
            delivery,
            lease
        )
        .fetch_optional(&self.pool)
        .await?;
        let Some(due) = due else { return Ok(None) };
        self.deliver(due).await?;
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

    async fn deliver(&self, d: Due) -> sqlx::Result<()> {
        let started = Instant::now();
        let mut conn = self.pool.acquire().await?;
        let secrets = live_secrets(&mut conn, &self.keyring, d.endpoint_id)
            .await
            .unwrap_or_default();
        drop(conn);
        let webhook_id = format!("msg_{}", d.id.simple());
        let ts = Utc::now().timestamp();
        let sigs = sign(&secrets, &webhook_id, ts, &d.body);
        let headers = serde_json::json!({
            "content-type": "application/json",
            "webhook-id": webhook_id,
            "webhook-timestamp": ts.to_string(),
        });
        let (status, response, error) = if d.body.len() > MAX_BODY {
            (
                None,
                String::new(),
                format!("The event is larger than {MAX_BODY} bytes; it was not sent."),
            )
        } else if let Err(e) = check_url(&d.url, &self.allowed) {
            (None, String::new(), format!("blocked: {}", e.message))
        } else {
            let mut req = self
                .http
                .post(&d.url)
                .header("content-type", "application/json")
                .header("webhook-id", &webhook_id)
                .header("webhook-timestamp", ts.to_string())
                .header("webhook-signature", &sigs.standard)
                .body(d.body.clone());
            if !sigs.vendel.is_empty() {
                req = req.header("x-webhook-signature", &sigs.vendel);
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
                                body.extend_from_slice(&chunk[..chunk.len().min(MAX_RESPONSE - body.len())])
                            }
                            _ => break,
                        }
                    }
                    let mut err = String::new();
                    if (300..400).contains(&status) {
                        err = "The receiver redirected; redirects are not followed.".to_owned();
                    }
                    if let Some(secs) = retry_after {
                        err = format!("{err} Retry-After: {secs} s").trim().to_owned();
                    }
                    (Some(status), String::from_utf8_lossy(&body).into_owned(), err)
                }
                Err(e) => {
                    let what = if e.is_timeout() {
                        "The receiver did not answer in time.".to_owned()
                    } else {
                        chain(&e)
                    };
                    (None, String::new(), what)
                }
            }
        };
        let duration_ms = i32::try_from(started.elapsed().as_millis()).unwrap_or(i32::MAX);
        let mut tx = self.pool.begin().await?;
        sqlx::query!(
            "INSERT INTO webhook_attempts (delivery_id, endpoint_id, request_headers, response_status, response_body, duration_ms, error)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            d.id,
            d.endpoint_id,
            headers,
            status.map(i32::from),
            response,
            duration_ms,
            error
        )
        .execute(&mut *tx)
        .await?;
        let success = status.is_some_and(|s| (200..300).contains(&s));
        let gone = status == Some(410);
        let dropped = d.body.len() > MAX_BODY;
        let next = if success || gone || dropped {
            None
        } else {
            usize::try_from(d.attempts - 1)
                .ok()
                .and_then(|i| self.cfg.webhook_retry_secs.get(i))
                .map(|base| {
                    let hinted = error
                        .split("Retry-After: ")
                        .nth(1)
                        .and_then(|s| s.trim_end_matches(" s").parse::<u64>().ok());
                    let wait = match hinted {
                        Some(h) if matches!(status, Some(429 | 503)) => h.clamp(*base, *base * 4),
                        _ => *base,
                    };
                    let jitter = rand::rng().random_range(0.8..1.2);
                    (wait as f64 * jitter).max(0.0)
                })
        };
        let new_status = match (success, dropped, next) {
            (true, _, _) => "succeeded",
            (_, true, _) => "dropped",
            (_, _, Some(_)) => "pending",
            _ => "failed",
        };
        sqlx::query!(
            "UPDATE webhook_deliveries SET status = $2, last_status = $3, last_error = $4, lease_expires_at = NULL,
                    next_attempt_at = CASE WHEN $5::float8 IS NULL THEN next_attempt_at ELSE now() + make_interval(secs => $5) END,
                    delivered_at = CASE WHEN $2 = 'succeeded' THEN now() ELSE delivered_at END, updated_at = now()
             WHERE id = $1",
            d.id,
            new_status,
            status.map(i32::from),
            error,
            next
        )
        .execute(&mut *tx)
        .await?;
        if success {
            sqlx::query!(
                "UPDATE webhook_endpoints SET consecutive_failures = 0, failing_since = NULL, breaker_open_until = NULL
                 WHERE id = $1",
                d.endpoint_id
            )
            .execute(&mut *tx)
            .await?;
        } else if gone {
            sqlx::query!(
                "UPDATE webhook_endpoints SET active = false, disabled_reason = 'The receiver answered 410 Gone.', updated_at = now()
                 WHERE id = $1",
                d.endpoint_id
            )
            .execute(&mut *tx)
            .await?;
        } else if !dropped {
            sqlx::query!(
                "UPDATE webhook_endpoints SET consecutive_failures = consecutive_failures + 1,
                        failing_since = coalesce(failing_since, now()),
                        breaker_open_until = CASE WHEN consecutive_failures + 1 >= $2
                            THEN now() + make_interval(secs => least(600, 30 * power(2, consecutive_failures + 1 - $2)))
                            ELSE breaker_open_until END
                 WHERE id = $1",
                d.endpoint_id,
                BREAKER_THRESHOLD
            )
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        tracing::debug!(delivery.id = %d.id, endpoint.id = %d.endpoint_id, status = ?status, outcome = new_status, "webhook attempt");
        Ok(())
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
