//! The SMS allowance of a period (a calendar month, or the workspace's billing period when
//! billing is on), counted atomically with the messages it pays for.

use chrono::{Datelike, NaiveDate, Utc};
use sqlx::PgConnection;

use crate::workspace::WorkspaceId;

/// Sending `requested` more would pass the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("You can only send {available} more SMS this month")]
pub struct QuotaExceeded {
    pub limit: i32,
    pub used: i32,
    pub available: i32,
}

/// How many messages a workspace may send in the period starting on `period` (the key of
/// its usage row).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allowance {
    pub limit: i32,
    pub period: NaiveDate,
}

/// The first day of the current and of the next month (UTC).
pub fn month_bounds() -> (NaiveDate, NaiveDate) {
    month_bounds_at(Utc::now())
}

/// The first day of the month of `now` and of the next one (UTC).
pub fn month_bounds_at(now: chrono::DateTime<Utc>) -> (NaiveDate, NaiveDate) {
    let today = now.date_naive();
    let start = NaiveDate::from_ymd_opt(today.year(), today.month(), 1).unwrap_or(today);
    let next = if today.month() == 12 {
        NaiveDate::from_ymd_opt(today.year() + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(today.year(), today.month() + 1, 1)
    }
    .unwrap_or(today);
    (start, next)
}

/// Counts `n` messages against the allowance, or refuses without counting any; returns
/// the period's total after. The row lock it takes is held until the caller commits: call
/// it last in the transaction.
pub async fn consume(
    conn: &mut PgConnection,
    workspace: WorkspaceId,
    n: i32,
    allowance: Allowance,
) -> Result<i32, ConsumeError> {
    let Allowance { limit, period: month } = allowance;
    if n > limit {
        let used = used_in(conn, workspace, month).await?;
        return Err(exceeded(limit, used).into());
    }
    let counted = sqlx::query_scalar!(
        "INSERT INTO sms_usage (workspace_id, month, sent) VALUES ($1, $2, $3)
         ON CONFLICT (workspace_id, month) DO UPDATE SET sent = sms_usage.sent + excluded.sent
         WHERE sms_usage.sent + excluded.sent <= $4
         RETURNING sent",
        workspace as WorkspaceId,
        month,
        n,
        limit
    )
    .fetch_optional(&mut *conn)
    .await?;
    match counted {
        Some(total) => Ok(total),
        None => {
            let used = used_in(conn, workspace, month).await?;
            Err(exceeded(limit, used).into())
        }
    }
}

fn exceeded(limit: i32, used: i32) -> QuotaExceeded {
    QuotaExceeded {
        limit,
        used,
        available: (limit - used).max(0),
    }
}

async fn used_in(conn: &mut PgConnection, workspace: WorkspaceId, month: NaiveDate) -> sqlx::Result<i32> {
    Ok(sqlx::query_scalar!(
        "SELECT sent FROM sms_usage WHERE workspace_id = $1 AND month = $2",
        workspace as WorkspaceId,
        month
    )
    .fetch_optional(conn)
    .await?
    .unwrap_or(0))
}

/// Messages counted in the period starting on `period`.
pub async fn used(conn: &mut PgConnection, workspace: WorkspaceId, period: NaiveDate) -> sqlx::Result<i32> {
    used_in(conn, workspace, period).await
}

/// The usage warnings, in per cent of the allowance.
pub const WARN_AT: [i32; 2] = [80, 100];

/// The highest warning threshold a period's usage crossed going from `before` to `after`.
pub fn crossed(limit: i32, before: i32, after: i32) -> Option<i32> {
    let (limit, before, after) = (i64::from(limit), i64::from(before), i64::from(after));
    WARN_AT
        .into_iter()
        .rev()
        .find(|p| limit > 0 && before * 100 < limit * i64::from(*p) && after * 100 >= limit * i64::from(*p))
}

/// Raises the usage row's warning level when this send crossed a threshold, in the send's
/// own transaction; the worker mails it (once) later.
pub async fn note_crossing(
    conn: &mut PgConnection,
    workspace: WorkspaceId,
    allowance: Allowance,
    before: i32,
    after: i32,
) -> sqlx::Result<()> {
    if let Some(percent) = crossed(allowance.limit, before, after) {
        sqlx::query!(
            "UPDATE sms_usage SET warned_percent = $3
             WHERE workspace_id = $1 AND month = $2 AND warned_percent < $3",
            workspace as WorkspaceId,
            allowance.period,
            i16::try_from(percent).unwrap_or(i16::MAX)
        )
        .execute(conn)
        .await?;
    }
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum ConsumeError {
    #[error(transparent)]
    Exceeded(#[from] QuotaExceeded),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}
