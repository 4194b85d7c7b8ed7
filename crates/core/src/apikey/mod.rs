//! Integration API keys (`vk_…`, and legacy `ek_…`): created with a name, scopes and an
//! optional expiry, shown once, stored as a SHA-256, listed with their last use, revoked,
//! rotated.

mod scope;

pub use scope::{Scope, Scopes, action_for, for_route};

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::FieldError;
use crate::account::UserId;
use crate::crypto::{key_hint, new_key, token_digest};
use crate::workspace::WorkspaceId;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, sqlx::Type, serde::Serialize, serde::Deserialize)]
#[sqlx(transparent)]
#[serde(transparent)]
pub struct ApiKeyId(pub Uuid);

impl std::fmt::Display for ApiKeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// A key as listed (never the key itself).
#[derive(Debug, Clone)]
pub struct ApiKey {
    pub id: ApiKeyId,
    pub workspace_id: WorkspaceId,
    /// Who made it (None once that account is deleted); the key outlives their membership.
    pub created_by: Option<UserId>,
    pub name: String,
    pub prefix: String,
    pub scopes: Scopes,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl ApiKey {
    pub fn is_active(&self) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|e| e > Utc::now())
    }
}

/// A key just created: the only moment its secret exists outside the caller's hands.
#[derive(Debug, Clone)]
pub struct NewApiKey {
    pub key: ApiKey,
    pub secret: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiKeyError {
    #[error(transparent)]
    Invalid(#[from] FieldError),
    #[error("This workspace can hold at most {0} active API keys. Revoke one first.")]
    TooMany(i64),
    #[error("API key not found.")]
    NotFound,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// A key name: 1–100 characters, no control characters.
pub fn parse_name(raw: &str) -> Result<String, FieldError> {
    let name = raw.trim();
    if name.is_empty() {
        return Err(FieldError::new("name", "Give the key a name."));
    }
    if name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(FieldError::new(
            "name",
            "Use at most 100 characters, without control characters.",
        ));
    }
    Ok(name.to_owned())
}

pub async fn create(
    pool: &PgPool,
    workspace: WorkspaceId,
    by: Option<UserId>,
    name: &str,
    scopes: Scopes,
    expires_at: Option<DateTime<Utc>>,
    max_active: i64,
) -> Result<NewApiKey, ApiKeyError> {
    if scopes.is_empty() {
        return Err(FieldError::new("scopes", "Give the key at least one scope.").into());
    }
    let name = parse_name(name)?;
    if expires_at.is_some_and(|e| e <= Utc::now()) {
        return Err(FieldError::new("expires_at", "The expiry must be in the future.").into());
    }
    let mut tx = pool.begin().await?;
    crate::workspace::repo::lock(&mut tx, workspace).await?;
    let active = count_active(&mut tx, workspace).await?;
    if active >= max_active {
        return Err(ApiKeyError::TooMany(max_active));
    }
    let created = insert(&mut tx, workspace, by, &name, scopes, expires_at).await?;
    tx.commit().await?;
    Ok(created)
}

async fn count_active(conn: &mut PgConnection, workspace: WorkspaceId) -> sqlx::Result<i64> {
    sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM api_keys
           WHERE workspace_id = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())"#,
        workspace as WorkspaceId
    )
    .fetch_one(conn)
    .await
}

async fn insert(
    conn: &mut PgConnection,
    workspace: WorkspaceId,
    by: Option<UserId>,
    name: &str,
    scopes: Scopes,
    expires_at: Option<DateTime<Utc>>,
) -> sqlx::Result<NewApiKey> {
    let secret = new_key("vk_");
    let key = sqlx::query_as!(
        ApiKey,
        r#"INSERT INTO api_keys (id, workspace_id, created_by, name, prefix, key_hash, expires_at, scopes)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
           RETURNING id AS "id: ApiKeyId", workspace_id AS "workspace_id: WorkspaceId", created_by AS "created_by: UserId", name, prefix, scopes AS "scopes: Scopes",
                     expires_at, last_used_at, revoked_at, created_at"#,
        Uuid::now_v7(),
        workspace as WorkspaceId,
        by as Option<UserId>,
        name,
        key_hint(&secret),
        &token_digest(&secret),
        expires_at,
        &scopes.names()
    )
    .fetch_one(conn)
    .await?;
    Ok(NewApiKey { key, secret })
}

pub async fn list(pool: &PgPool, workspace: WorkspaceId) -> sqlx::Result<Vec<ApiKey>> {
    sqlx::query_as!(ApiKey, r#"SELECT id AS "id: ApiKeyId", workspace_id AS "workspace_id: WorkspaceId", created_by AS "created_by: UserId", name, prefix, scopes AS "scopes: Scopes",
                  expires_at, last_used_at, revoked_at, created_at FROM api_keys WHERE workspace_id = $1 ORDER BY created_at DESC"#, workspace as WorkspaceId)
        .fetch_all(pool)
        .await
}

/// One page of the workspace's keys (revoked and expired ones too), newest first, and how many
/// there are in all.
pub async fn page(
    pool: &PgPool,
    workspace: WorkspaceId,
    limit: i64,
    offset: i64,
) -> sqlx::Result<(Vec<ApiKey>, i64)> {
    let items = sqlx::query_as!(
        ApiKey,
        r#"SELECT id AS "id: ApiKeyId", workspace_id AS "workspace_id: WorkspaceId", created_by AS "created_by: UserId", name, prefix, scopes AS "scopes: Scopes",
                  expires_at, last_used_at, revoked_at, created_at
           FROM api_keys WHERE workspace_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3"#,
        workspace as WorkspaceId,
        limit,
        offset
    )
    .fetch_all(pool)
    .await?;
    let total = sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM api_keys WHERE workspace_id = $1"#,
        workspace as WorkspaceId
    )
    .fetch_one(pool)
    .await?;
    Ok((items, total))
}

/// The owner's key (another workspace's key is "not found").
pub async fn find(pool: &PgPool, workspace: WorkspaceId, id: ApiKeyId) -> Result<ApiKey, ApiKeyError> {
    sqlx::query_as!(
        ApiKey,
        r#"SELECT id AS "id: ApiKeyId", workspace_id AS "workspace_id: WorkspaceId", created_by AS "created_by: UserId", name, prefix, scopes AS "scopes: Scopes",
                  expires_at, last_used_at, revoked_at, created_at FROM api_keys WHERE id = $1 AND workspace_id = $2"#,
        id as ApiKeyId,
        workspace as WorkspaceId
    )
    .fetch_optional(pool)
    .await?
    .ok_or(ApiKeyError::NotFound)
}

pub async fn revoke(pool: &PgPool, workspace: WorkspaceId, id: ApiKeyId) -> Result<(), ApiKeyError> {
    let done = sqlx::query!(
        "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1 AND workspace_id = $2",
        id as ApiKeyId,
        workspace as WorkspaceId
    )
    .execute(pool)
    .await?;
    if done.rows_affected() == 0 {
        return Err(ApiKeyError::NotFound);
    }
    Ok(())
}

/// A new key with the same name, scopes and expiry for an active key; the old one is revoked in the
/// same transaction. Revoked and expired keys cannot be rotated (create a new one).
/// The new key is recorded as made by `by` (None: by a key whose maker's account is gone).
pub async fn rotate(
    pool: &PgPool,
    workspace: WorkspaceId,
    by: Option<UserId>,
    id: ApiKeyId,
) -> Result<NewApiKey, ApiKeyError> {
    let mut tx = pool.begin().await?;
    let old = sqlx::query_as!(
        ApiKey,
        r#"SELECT id AS "id: ApiKeyId", workspace_id AS "workspace_id: WorkspaceId", created_by AS "created_by: UserId", name, prefix, scopes AS "scopes: Scopes",
                  expires_at, last_used_at, revoked_at, created_at FROM api_keys WHERE id = $1 AND workspace_id = $2 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now()) FOR UPDATE"#,
        id as ApiKeyId,
        workspace as WorkspaceId
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(ApiKeyError::NotFound)?;
    sqlx::query!(
        "UPDATE api_keys SET revoked_at = now() WHERE id = $1",
        id as ApiKeyId
    )
    .execute(&mut *tx)
    .await?;
    let created = insert(&mut tx, workspace, by, &old.name, old.scopes, old.expires_at).await?;
    tx.commit().await?;
    Ok(created)
}

/// Who an active key (`vk_…` or legacy `ek_…`) acts for and what it may do.
#[derive(Debug, Clone, Copy)]
pub struct KeyGrant {
    pub workspace: WorkspaceId,
    pub created_by: Option<UserId>,
    pub key: ApiKeyId,
    pub scopes: Scopes,
}

/// The grant of an active key (`vk_…` or legacy `ek_…`), marking it used. None for an
/// unknown, revoked or expired key.
pub async fn authenticate(pool: &PgPool, secret: &str) -> sqlx::Result<Option<KeyGrant>> {
    if !(secret.starts_with("vk_") || secret.starts_with("ek_")) || secret.len() > 100 {
        return Ok(None);
    }
    let digest = token_digest(secret);
    let Some(row) = sqlx::query!(
        r#"SELECT workspace_id AS "workspace_id: WorkspaceId", created_by AS "created_by: UserId",
                  id AS "id: ApiKeyId", scopes AS "scopes: Scopes",
                  last_used_at IS NULL OR last_used_at < now() - interval '1 minute' AS "stale!"
           FROM api_keys
           WHERE key_hash = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())"#,
        &digest
    )
    .fetch_optional(pool)
    .await?
    else {
        return Ok(None);
    };
    // "Last used" is kept to the minute: one write a minute per key, not one per request.
    if row.stale {
        sqlx::query!(
            "UPDATE api_keys SET last_used_at = now() WHERE id = $1",
            row.id as ApiKeyId
        )
        .execute(pool)
        .await?;
    }
    Ok(Some(KeyGrant {
        workspace: row.workspace_id,
        created_by: row.created_by,
        key: row.id,
        scopes: row.scopes,
    }))
}

/// Imports a legacy Vendel key (`ek_…`) under its existing secret, so old clients keep
/// working; it gets the given scopes (the Vendel key it stands for could do everything).
pub async fn import_legacy(
    pool: &PgPool,
    workspace: WorkspaceId,
    by: Option<UserId>,
    name: &str,
    secret: &str,
    scopes: Scopes,
    max_active: i64,
) -> Result<ApiKey, ApiKeyError> {
    let name = parse_name(name)?;
    if !secret.starts_with("ek_")
        || secret.len() != 35
        || !secret[3..].chars().all(|c| c.is_ascii_alphanumeric())
    {
        return Err(FieldError::new(
            "legacy_key",
            "A legacy key is ek_ followed by 32 letters and digits.",
        )
        .into());
    }
    let mut tx = pool.begin().await?;
    crate::workspace::repo::lock(&mut tx, workspace).await?;
    if count_active(&mut tx, workspace).await? >= max_active {
        return Err(ApiKeyError::TooMany(max_active));
    }
    let key = sqlx::query_as!(
        ApiKey,
        r#"INSERT INTO api_keys (id, workspace_id, created_by, name, prefix, key_hash, scopes)
           VALUES ($1, $2, $3, $4, $5, $6, $7)
           ON CONFLICT (key_hash) DO NOTHING
           RETURNING id AS "id: ApiKeyId", workspace_id AS "workspace_id: WorkspaceId", created_by AS "created_by: UserId", name, prefix, scopes AS "scopes: Scopes",
                     expires_at, last_used_at, revoked_at, created_at"#,
        Uuid::now_v7(),
        workspace as WorkspaceId,
        by as Option<UserId>,
        name,
        key_hint(secret),
        &token_digest(secret),
        &scopes.names()
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| FieldError::new("legacy_key", "This key is already registered."))?;
    tx.commit().await?;
    Ok(key)
}
