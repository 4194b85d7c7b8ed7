//! SQL for the `sessions` table behind the web crate's session store.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use crate::account::UserId;

/// Inserts a new session; false when the id is already taken.
pub async fn create(
    conn: &mut PgConnection,
    id: &str,
    data: &serde_json::Value,
    expiry: DateTime<Utc>,
    user: Option<UserId>,
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "INSERT INTO sessions (id, data, expiry_date, user_id) VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO NOTHING",
        id,
        data,
        expiry,
        user as Option<UserId>
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Writes a session. A session whose user was deleted in the meantime is not revived.
pub async fn save(
    conn: &mut PgConnection,
    id: &str,
    data: &serde_json::Value,
    expiry: DateTime<Utc>,
    user: Option<UserId>,
) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO sessions (id, data, expiry_date, user_id)
         SELECT $1, $2, $3, $4
         WHERE $4::uuid IS NULL OR EXISTS (SELECT 1 FROM users WHERE id = $4)
         ON CONFLICT (id) DO UPDATE SET data = excluded.data, expiry_date = excluded.expiry_date, user_id = excluded.user_id",
        id,
        data,
        expiry,
        user as Option<UserId>
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// The session's data and expiry, unless it has expired.
pub async fn load(
    conn: &mut PgConnection,
    id: &str,
) -> sqlx::Result<Option<(serde_json::Value, DateTime<Utc>)>> {
    let row = sqlx::query!(
        "SELECT data, expiry_date FROM sessions WHERE id = $1 AND expiry_date > now()",
        id
    )
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| (r.data, r.expiry_date)))
}

pub async fn delete(conn: &mut PgConnection, id: &str) -> sqlx::Result<()> {
    sqlx::query!("DELETE FROM sessions WHERE id = $1", id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Ends every session of a user, except `keep` (the one making the request).
pub async fn delete_for_user(conn: &mut PgConnection, user: UserId, keep: Option<&str>) -> sqlx::Result<u64> {
    let done = sqlx::query!(
        "DELETE FROM sessions WHERE user_id = $1 AND id IS DISTINCT FROM $2",
        user as UserId,
        keep
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

pub async fn count_for_user(conn: &mut PgConnection, user: UserId) -> sqlx::Result<i64> {
    let n = sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM sessions WHERE user_id = $1 AND expiry_date > now()"#,
        user as UserId
    )
    .fetch_one(conn)
    .await?;
    Ok(n)
}
