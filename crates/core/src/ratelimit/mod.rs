//! Fixed-window counters in Postgres, shared by every web process.

use std::time::Duration;

use sqlx::PgConnection;

/// At most `max` hits per `window`.
#[derive(Debug, Clone, Copy)]
pub struct Limit {
    pub max: i32,
    pub window: Duration,
}

impl Limit {
    pub const fn per_minute(max: i32) -> Self {
        Self {
            max,
            window: Duration::from_secs(60),
        }
    }

    pub const fn per_hour(max: i32) -> Self {
        Self {
            max,
            window: Duration::from_secs(3600),
        }
    }

    fn window_secs(&self) -> f64 {
        self.window.as_secs().max(1) as f64
    }
}

/// Counts one hit on `key` and returns the hits in the current window, this one included.
pub async fn hit(conn: &mut PgConnection, key: &str, limit: Limit) -> sqlx::Result<i32> {
    sqlx::query_scalar!(
        "INSERT INTO rate_limits (key, window_start, hits)
         VALUES ($1, to_timestamp(floor(extract(epoch FROM now())::float8 / $2::float8) * $2::float8), 1)
         ON CONFLICT (key, window_start) DO UPDATE SET hits = rate_limits.hits + 1
         RETURNING hits",
        key,
        limit.window_secs()
    )
    .fetch_one(conn)
    .await
}

/// The hits on `key` in the current window, without counting one.
pub async fn current(conn: &mut PgConnection, key: &str, limit: Limit) -> sqlx::Result<i32> {
    let hits = sqlx::query_scalar!(
        "SELECT hits FROM rate_limits
         WHERE key = $1 AND window_start = to_timestamp(floor(extract(epoch FROM now())::float8 / $2::float8) * $2::float8)",
        key,
        limit.window_secs()
    )
    .fetch_optional(conn)
    .await?;
    Ok(hits.unwrap_or(0))
}

/// Counts a hit and says whether it is still within the limit.
pub async fn allow(conn: &mut PgConnection, key: &str, limit: Limit) -> sqlx::Result<bool> {
    Ok(hit(conn, key, limit).await? <= limit.max)
}

/// True when `key` has used up its limit (without counting a hit). Hits of the previous
/// window count too, so a burst split across a window boundary is still caught.
pub async fn exhausted(conn: &mut PgConnection, key: &str, limit: Limit) -> sqlx::Result<bool> {
    let hits = sqlx::query_scalar!(
        r#"SELECT coalesce(sum(hits), 0)::int AS "hits!" FROM rate_limits
           WHERE key = $1
             AND window_start >= to_timestamp(floor(extract(epoch FROM now())::float8 / $2::float8) * $2::float8 - $2::float8)"#,
        key,
        limit.window_secs()
    )
    .fetch_one(conn)
    .await?;
    Ok(hits >= limit.max)
}

/// Counts an attempt before the work it guards (so concurrent attempts cannot all pass a
/// check made before any of them was counted) and says whether it is within the limit.
/// Hits of the previous window count too, so a burst split across a window boundary is
/// still caught.
pub async fn attempt(conn: &mut PgConnection, key: &str, limit: Limit) -> sqlx::Result<bool> {
    let now = hit(conn, key, limit).await?;
    let before = sqlx::query_scalar!(
        "SELECT hits FROM rate_limits
         WHERE key = $1
           AND window_start = to_timestamp(floor(extract(epoch FROM now())::float8 / $2::float8) * $2::float8 - $2::float8)",
        key,
        limit.window_secs()
    )
    .fetch_optional(&mut *conn)
    .await?;
    Ok(now.saturating_add(before.unwrap_or(0)) <= limit.max)
}

/// Takes back one hit of the current window: an attempt that succeeded is not a failure.
pub async fn forgive(conn: &mut PgConnection, key: &str, limit: Limit) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE rate_limits SET hits = greatest(hits - 1, 0)
         WHERE key = $1
           AND window_start = to_timestamp(floor(extract(epoch FROM now())::float8 / $2::float8) * $2::float8)",
        key,
        limit.window_secs()
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Forgets every counter whose key starts with `prefix`.
pub async fn clear(conn: &mut PgConnection, prefix: &str) -> sqlx::Result<()> {
    sqlx::query!("DELETE FROM rate_limits WHERE starts_with(key, $1)", prefix)
        .execute(conn)
        .await?;
    Ok(())
}
