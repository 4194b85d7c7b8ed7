//! What an operator checks first, read in one go for the Health page: worker processes
//! and their heartbeats, the database, the message queue by age, webhook backlog and
//! breakers, devices, scheduled sends due soon, background job queues, disk space, mail
//! that could not be sent.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};

/// A worker is alive when it beat within this many seconds.
pub const ALIVE_SECS: i64 = 30;
/// How often a worker beats.
pub const BEAT_SECS: u64 = 10;

/// Writes this worker's heartbeat (and its start time on the first beat).
pub async fn beat(
    conn: &mut PgConnection,
    name: &str,
    version: &str,
    host: &str,
    pid: i32,
    started_at: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO worker_heartbeats (name, version, host, pid, started_at, beat_at)
         VALUES ($1, $2, $3, $4, $5, now())
         ON CONFLICT (name) DO UPDATE SET version = $2, host = $3, pid = $4, started_at = $5, beat_at = now()",
        name,
        version,
        host,
        pid,
        started_at
    )
    .execute(&mut *conn)
    .await?;
    // Workers gone for a week are forgotten.
    sqlx::query!("DELETE FROM worker_heartbeats WHERE beat_at < now() - interval '7 days'")
        .execute(&mut *conn)
        .await?;
    Ok(())
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Worker {
    pub name: String,
    pub version: String,
    pub host: String,
    pub pid: i32,
    pub started_at: DateTime<Utc>,
    pub beat_at: DateTime<Utc>,
    pub alive: bool,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct QueueLine {
    pub status: String,
    pub count: i64,
    pub oldest: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct JobLine {
    pub queue: String,
    pub pending: i64,
    pub running: i64,
    pub failed: i64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Health {
    pub workers: Vec<Worker>,
    pub database_bytes: i64,
    pub connections: i64,
    pub max_connections: i64,
    pub messages: Vec<QueueLine>,
    pub webhook_backlog: i64,
    pub webhook_oldest: Option<DateTime<Utc>>,
    pub endpoints_in_breaker: i64,
    pub endpoints_disabled: i64,
    pub devices_online: i64,
    pub devices: i64,
    pub scheduled_next_hour: i64,
    /// `None` before the worker has set up its job tables.
    pub jobs: Option<Vec<JobLine>>,
    pub disk_free_bytes: Option<u64>,
    pub disk_total_bytes: Option<u64>,
    pub paused_workspaces: i64,
    pub suspended_people: i64,
    /// Mail that could not be sent in the last 24 hours, and the newest of it.
    pub mail_failures: i64,
    pub recent_mail_failures: Vec<crate::mail::Failure>,
}

/// How many of the last day's mail failures the page lists.
pub const MAIL_FAILURES_SHOWN: i64 = 10;

pub async fn read(pool: &PgPool, data_dir: &std::path::Path) -> sqlx::Result<Health> {
    let mut conn = pool.acquire().await?;
    let workers = sqlx::query!(
        r#"SELECT name, version, host, pid, started_at, beat_at,
                  beat_at > now() - make_interval(secs => $1) AS "alive!"
           FROM worker_heartbeats ORDER BY name"#,
        ALIVE_SECS as f64
    )
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .map(|r| Worker {
        name: r.name,
        version: r.version,
        host: r.host,
        pid: r.pid,
        started_at: r.started_at,
        beat_at: r.beat_at,
        alive: r.alive,
    })
    .collect();
    let db = sqlx::query!(
        r#"SELECT pg_database_size(current_database()) AS "size!",
                  (SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()) AS "connections!",
                  current_setting('max_connections')::bigint AS "max!""#
    )
    .fetch_one(&mut *conn)
    .await?;
    let messages = sqlx::query_as!(
        QueueLine,
        r#"SELECT s.status AS "status!", count(m.id) AS "count!", min(m.created_at) AS oldest
           FROM unnest(ARRAY['pending', 'assigned', 'sending']) AS s(status)
           LEFT JOIN messages m ON m.status = s.status
           GROUP BY s.status ORDER BY array_position(ARRAY['pending', 'assigned', 'sending'], s.status)"#
    )
    .fetch_all(&mut *conn)
    .await?;
    let hooks = sqlx::query!(
        r#"SELECT (SELECT count(*) FROM webhook_deliveries WHERE status IN ('pending', 'delivering')) AS "backlog!",
                  (SELECT min(created_at) FROM webhook_deliveries WHERE status IN ('pending', 'delivering')) AS oldest,
                  (SELECT count(*) FROM webhook_endpoints WHERE breaker_open_until > now()) AS "breaker!",
                  (SELECT count(*) FROM webhook_endpoints WHERE NOT active) AS "disabled!",
                  (SELECT count(*) FROM devices WHERE stream_until > now() OR last_seen_at > now() - interval '90 seconds') AS "online!",
                  (SELECT count(*) FROM devices) AS "devices!",
                  (SELECT count(*) FROM scheduled_sends WHERE status = 'active' AND next_run_at <= now() + interval '1 hour') AS "scheduled!",
                  (SELECT count(*) FROM workspaces WHERE sending_paused_at IS NOT NULL AND deleted_at IS NULL) AS "paused!",
                  (SELECT count(*) FROM users WHERE suspended_at IS NOT NULL) AS "suspended!""#
    )
    .fetch_one(&mut *conn)
    .await?;
    // The job tables belong to the job library and are made by the worker at its start.
    let jobs = sqlx::query_as::<_, (String, i64, i64, i64)>(
        "SELECT job_type, count(*) FILTER (WHERE status = 'Pending'),
                count(*) FILTER (WHERE status IN ('Running', 'Queued')),
                count(*) FILTER (WHERE status IN ('Failed', 'Killed'))
         FROM apalis.jobs GROUP BY job_type ORDER BY job_type",
    )
    .fetch_all(&mut *conn)
    .await
    .ok()
    .map(|rows| {
        rows.into_iter()
            .map(|(queue, pending, running, failed)| JobLine {
                queue,
                pending,
                running,
                failed,
            })
            .collect()
    });
    let (recent_mail_failures, mail_failures) =
        crate::mail::recent_failures(&mut conn, MAIL_FAILURES_SHOWN).await?;
    let (disk_free_bytes, disk_total_bytes) = disk_space(data_dir);
    Ok(Health {
        workers,
        database_bytes: db.size,
        connections: db.connections,
        max_connections: db.max,
        messages,
        webhook_backlog: hooks.backlog,
        webhook_oldest: hooks.oldest,
        endpoints_in_breaker: hooks.breaker,
        endpoints_disabled: hooks.disabled,
        devices_online: hooks.online,
        devices: hooks.devices,
        scheduled_next_hour: hooks.scheduled,
        jobs,
        disk_free_bytes,
        disk_total_bytes,
        paused_workspaces: hooks.paused,
        suspended_people: hooks.suspended,
        mail_failures,
        recent_mail_failures,
    })
}

/// Free and total bytes of the file system holding `dir`.
#[cfg(unix)]
#[expect(
    unsafe_code,
    reason = "statvfs(3) fills a struct we own; the path is a valid C string"
)]
fn disk_space(dir: &std::path::Path) -> (Option<u64>, Option<u64>) {
    use std::os::unix::ffi::OsStrExt;
    let Ok(path) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return (None, None);
    };
    // SAFETY: `path` is NUL-terminated and outlives the call; `st` is a plain struct the
    // call writes into, read only when it reports success.
    unsafe {
        let mut st: libc::statvfs = std::mem::zeroed();
        if libc::statvfs(path.as_ptr(), &raw mut st) != 0 {
            return (None, None);
        }
        let block = st.f_frsize as u64;
        (Some(st.f_bavail as u64 * block), Some(st.f_blocks as u64 * block))
    }
}

#[cfg(not(unix))]
fn disk_space(_dir: &std::path::Path) -> (Option<u64>, Option<u64>) {
    (None, None)
}
