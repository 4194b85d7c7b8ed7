//! The one-time link that creates the first administrator.

use chrono::{Duration, Utc};
use sqlx::PgPool;

use crate::account::{AccountError, Email, FullName, Password, TokenError, User, UserId, repo as accounts};
use crate::crypto::{hash_password, random_token, token_digest};

/// How long a printed setup link works.
pub const SETUP_TTL: Duration = Duration::hours(24);

/// Lock key serialising setup completions, so two tabs cannot both create an admin.
const SETUP_LOCK: i64 = 0x656e_6465_7273_6574; // "endersset"

/// A fresh setup token when no administrator exists yet (None once one does).
pub async fn issue_token_if_needed(pool: &PgPool) -> sqlx::Result<Option<String>> {
    let mut conn = pool.acquire().await?;
    if accounts::admin_exists(&mut conn).await? {
        return Ok(None);
    }
    let token = random_token(40);
    sqlx::query!(
        "INSERT INTO setup_tokens (token_hash, expires_at) VALUES ($1, $2)",
        &token_digest(&token),
        Utc::now() + SETUP_TTL
    )
    .execute(&mut *conn)
    .await?;
    Ok(Some(token))
}

pub async fn admin_exists(pool: &PgPool) -> sqlx::Result<bool> {
    accounts::admin_exists(&mut *pool.acquire().await?).await
}

/// Whether `token` would be accepted now.
pub async fn check_token(pool: &PgPool, token: &str) -> Result<(), AccountError> {
    if admin_exists(pool).await? {
        return Err(TokenError::Used.into());
    }
    let expires_at = sqlx::query_scalar!(
        "SELECT expires_at FROM setup_tokens WHERE token_hash = $1",
        &token_digest(token)
    )
    .fetch_optional(pool)
    .await?
    .ok_or(TokenError::Invalid)?;
    if expires_at <= Utc::now() {
        return Err(TokenError::Expired.into());
    }
    Ok(())
}

/// Creates the first administrator with a setup token. All setup tokens die with it.
pub async fn complete(
    pool: &PgPool,
    token: &str,
    email: &Email,
    password: &Password,
    full_name: &FullName,
) -> Result<User, AccountError> {
    // The token first: a forged or stale link costs no Argon2 run.
    check_token(pool, token).await?;
    let hash = hash_password(password.secret()).await?;
    let mut tx = pool.begin().await?;
    sqlx::query!("SELECT pg_advisory_xact_lock($1)", SETUP_LOCK)
        .execute(&mut *tx)
        .await?;
    if accounts::admin_exists(&mut tx).await? {
        return Err(TokenError::Used.into());
    }
    let expires_at = sqlx::query_scalar!(
        "SELECT expires_at FROM setup_tokens WHERE token_hash = $1",
        &token_digest(token)
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(TokenError::Invalid)?;
    if expires_at <= Utc::now() {
        return Err(TokenError::Expired.into());
    }
    let user = accounts::insert(
        &mut tx,
        UserId::new(),
        email.as_str(),
        full_name.as_str(),
        Some(&hash),
        true,
        true,
    )
    .await
    .map_err(crate::account::email_taken)?;
    sqlx::query!("DELETE FROM setup_tokens").execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(user)
}
