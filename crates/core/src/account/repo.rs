//! SQL for users, OAuth identities and mailed tokens.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use super::model::{TokenPurpose, User, UserId};

struct UserRow {
    id: UserId,
    email: String,
    full_name: String,
    email_verified_at: Option<DateTime<Utc>>,
    is_admin: bool,
    has_password: bool,
    created_at: DateTime<Utc>,
    suspended_at: Option<DateTime<Utc>>,
}

impl From<UserRow> for User {
    fn from(r: UserRow) -> Self {
        Self {
            id: r.id,
            email: r.email,
            full_name: r.full_name,
            email_verified_at: r.email_verified_at,
            is_admin: r.is_admin,
            has_password: r.has_password,
            created_at: r.created_at,
            suspended_at: r.suspended_at,
        }
    }
}

/// Inserts a user and their personal workspace. Fails with a unique violation on `users_email_normalized_key` when the
/// email is taken.
pub async fn insert(
    conn: &mut PgConnection,
    id: UserId,
    email: &str,
    full_name: &str,
    password_hash: Option<&str>,
    verified: bool,
    is_admin: bool,
) -> sqlx::Result<User> {
    let row = sqlx::query_as!(
        UserRow,
        r#"INSERT INTO users (id, email, email_normalized, full_name, password_hash, email_verified_at, is_admin)
           VALUES ($1, $2, lower($2), $3, $4, CASE WHEN $5 THEN now() END, $6)
           RETURNING id AS "id: UserId", email, full_name, email_verified_at, is_admin,
                     password_hash IS NOT NULL AS "has_password!", created_at, suspended_at"#,
        id as UserId,
        email,
        full_name,
        password_hash,
        verified,
        is_admin,
    )
    .fetch_one(&mut *conn)
    .await?;
    crate::workspace::repo::create_personal(
        conn,
        id,
        &crate::workspace::WorkspaceName::personal_for(full_name, email),
    )
    .await?;
    Ok(row.into())
}

pub async fn find(conn: &mut PgConnection, id: UserId) -> sqlx::Result<Option<User>> {
    let row = sqlx::query_as!(
        UserRow,
        r#"SELECT id AS "id: UserId", email, full_name, email_verified_at, is_admin,
                  password_hash IS NOT NULL AS "has_password!", created_at, suspended_at
           FROM users WHERE id = $1"#,
        id as UserId,
    )
    .fetch_optional(conn)
    .await?;
    Ok(row.map(Into::into))
}

/// The user with this email (case-insensitive) and their password hash.
pub async fn find_by_email(
    conn: &mut PgConnection,
    email: &str,
) -> sqlx::Result<Option<(User, Option<String>)>> {
    let row = sqlx::query!(
        r#"SELECT id AS "id: UserId", email, full_name, email_verified_at, is_admin,
                  password_hash, created_at, suspended_at
           FROM users WHERE email_normalized = lower($1)"#,
        email,
    )
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| {
        let user = User {
            id: r.id,
            email: r.email,
            full_name: r.full_name,
            email_verified_at: r.email_verified_at,
            is_admin: r.is_admin,
            has_password: r.password_hash.is_some(),
            created_at: r.created_at,
            suspended_at: r.suspended_at,
        };
        (user, r.password_hash)
    }))
}

pub async fn password_hash(conn: &mut PgConnection, id: UserId) -> sqlx::Result<Option<String>> {
    let hash = sqlx::query_scalar!("SELECT password_hash FROM users WHERE id = $1", id as UserId)
        .fetch_optional(conn)
        .await?;
    Ok(hash.flatten())
}

pub async fn set_password(conn: &mut PgConnection, id: UserId, hash: &str) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE users SET password_hash = $2, updated_at = now() WHERE id = $1",
        id as UserId,
        hash
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Removes the password: the account can then sign in only through a linked provider
/// (or after a reset, which proves the address).
pub async fn clear_password(conn: &mut PgConnection, id: UserId) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE users SET password_hash = NULL, updated_at = now() WHERE id = $1",
        id as UserId
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Marks the email verified (keeping the first verification time).
pub async fn mark_verified(conn: &mut PgConnection, id: UserId) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE users SET email_verified_at = coalesce(email_verified_at, now()), updated_at = now() WHERE id = $1",
        id as UserId
    )
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn set_full_name(conn: &mut PgConnection, id: UserId, full_name: &str) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE users SET full_name = $2, updated_at = now() WHERE id = $1",
        id as UserId,
        full_name
    )
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn set_admin(conn: &mut PgConnection, id: UserId) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE users SET is_admin = true, updated_at = now() WHERE id = $1",
        id as UserId
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Deletes a user; everything they own goes with them through `ON DELETE CASCADE`.
pub async fn delete(conn: &mut PgConnection, id: UserId) -> sqlx::Result<bool> {
    let done = sqlx::query!("DELETE FROM users WHERE id = $1", id as UserId)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn admin_exists(conn: &mut PgConnection) -> sqlx::Result<bool> {
    let exists = sqlx::query_scalar!(r#"SELECT EXISTS (SELECT 1 FROM users WHERE is_admin) AS "exists!""#)
        .fetch_one(conn)
        .await?;
    Ok(exists)
}

/// The user linked to this provider identity.
pub async fn find_by_identity(
    conn: &mut PgConnection,
    provider: &str,
    subject: &str,
) -> sqlx::Result<Option<UserId>> {
    sqlx::query_scalar!(
        r#"SELECT user_id AS "user_id: UserId" FROM oauth_identities WHERE provider = $1 AND subject = $2"#,
        provider,
        subject
    )
    .fetch_optional(conn)
    .await
}

pub async fn link_identity(
    conn: &mut PgConnection,
    provider: &str,
    subject: &str,
    user: UserId,
) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO oauth_identities (provider, subject, user_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        provider,
        subject,
        user as UserId
    )
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn insert_token(
    conn: &mut PgConnection,
    digest: &[u8],
    user: UserId,
    purpose: TokenPurpose,
    expires_at: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO email_tokens (token_hash, user_id, purpose, expires_at) VALUES ($1, $2, $3, $4)",
        digest,
        user as UserId,
        purpose.as_str(),
        expires_at
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// A mailed token row, locked for the rest of the transaction.
pub struct TokenRow {
    pub user_id: UserId,
    pub expires_at: DateTime<Utc>,
    pub used_at: Option<DateTime<Utc>>,
}

pub async fn lock_token(
    conn: &mut PgConnection,
    digest: &[u8],
    purpose: TokenPurpose,
) -> sqlx::Result<Option<TokenRow>> {
    sqlx::query_as!(
        TokenRow,
        r#"SELECT user_id AS "user_id: UserId", expires_at, used_at
           FROM email_tokens WHERE token_hash = $1 AND purpose = $2 FOR UPDATE"#,
        digest,
        purpose.as_str()
    )
    .fetch_optional(conn)
    .await
}

pub async fn mark_token_used(conn: &mut PgConnection, digest: &[u8]) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE email_tokens SET used_at = now() WHERE token_hash = $1",
        digest
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Retires every other unused token of this purpose (a new reset link voids the old ones).
pub async fn retire_tokens(conn: &mut PgConnection, user: UserId, purpose: TokenPurpose) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE email_tokens SET used_at = now() WHERE user_id = $1 AND purpose = $2 AND used_at IS NULL",
        user as UserId,
        purpose.as_str()
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Retires every unused token of the user, whatever its purpose.
pub async fn retire_all_tokens(conn: &mut PgConnection, user: UserId) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE email_tokens SET used_at = now() WHERE user_id = $1 AND used_at IS NULL",
        user as UserId
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// The newest accounts, for the admin console.
pub async fn recent(conn: &mut PgConnection, limit: i64) -> sqlx::Result<Vec<User>> {
    let rows = sqlx::query_as!(
        UserRow,
        r#"SELECT id AS "id: UserId", email, full_name, email_verified_at, is_admin,
                  password_hash IS NOT NULL AS "has_password!", created_at, suspended_at
           FROM users ORDER BY created_at DESC, id DESC LIMIT $1"#,
        limit
    )
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(Into::into).collect())
}

pub async fn count(conn: &mut PgConnection) -> sqlx::Result<i64> {
    sqlx::query_scalar!(r#"SELECT count(*) AS "n!" FROM users"#)
        .fetch_one(conn)
        .await
}

/// Locks the user's row until the transaction ends: serialises per-user limit checks
/// (devices, keys) so they hold under concurrency.
pub async fn lock(conn: &mut PgConnection, id: UserId) -> sqlx::Result<()> {
    sqlx::query!("SELECT id FROM users WHERE id = $1 FOR UPDATE", id as UserId)
        .fetch_optional(conn)
        .await?;
    Ok(())
}
