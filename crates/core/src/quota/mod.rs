//! The monthly SMS allowance, counted atomically with the messages it pays for.

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

/// The first day of the current and of the next month (UTC).
pub fn month_bounds() -> (NaiveDate, NaiveDate) {
    let today = Utc::now().date_naive();
    let start = NaiveDate::from_ymd_opt(today.year(), today.month(), 1).unwrap_or(today);
    let next = if today.month() == 12 {
        NaiveDate::from_ymd_opt(today.year() + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(today.year(), today.month() + 1, 1)
    }
    .unwrap_or(today);
    (start, next)
}

/// Counts `n` messages against this month's allowance, or refuses without counting any.
/// The row lock it takes is held until the caller commits: call it last in the transaction.
pub async fn consume(
    conn: &mut PgConnection,
    workspace: WorkspaceId,
    n: i32,
    limit: i32,
) -> Result<(), ConsumeError> {
    let (month, _) = month_bounds();
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
        Some(_) => Ok(()),
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

/// Messages counted this month.
pub async fn used_this_month(conn: &mut PgConnection, workspace: WorkspaceId) -> sqlx::Result<i32> {
    used_in(conn, workspace, month_bounds().0).await
}

#[derive(Debug, thiserror::Error)]
pub enum ConsumeError {
    #[error(transparent)]
    Exceeded(#[from] QuotaExceeded),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}
