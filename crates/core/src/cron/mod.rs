//! Claims for periodic jobs: each (schedule, fire time) is claimed by exactly one worker.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

/// Claims the tick; true for exactly one caller per (schedule, fire_at).
pub async fn claim_tick(
    conn: &mut PgConnection,
    schedule: &str,
    fire_at: DateTime<Utc>,
    worker: &str,
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "INSERT INTO cron_ticks (schedule, fire_at, claimed_by) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        schedule,
        fire_at,
        worker
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The most recent time at or before `now` that is a whole multiple of `every`.
pub fn last_boundary(now: DateTime<Utc>, every: std::time::Duration) -> DateTime<Utc> {
    let step = every.as_secs().max(1) as i64;
    let secs = now.timestamp().div_euclid(step) * step;
    DateTime::from_timestamp(secs, 0).unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundaries_round_down_to_the_period() {
        let t = DateTime::parse_from_rfc3339("2026-11-22T10:07:31Z")
            .unwrap()
            .to_utc();
        let b = last_boundary(t, std::time::Duration::from_secs(300));
        assert_eq!(b.to_rfc3339(), "2026-11-22T10:05:00+00:00");
    }
}
