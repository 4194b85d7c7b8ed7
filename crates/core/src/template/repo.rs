//! Templates in Postgres, scoped to their owner.

use sqlx::PgPool;
use uuid::Uuid;

use super::model::{StoredTemplate, Template, TemplateId, TemplateInput, TemplateStoreError};
use super::text::TemplateText;
use crate::account::UserId;
use crate::db::is_unique_violation;
use crate::secret::at_rest::{self, Column};
use crate::sms::send::SendError;

/// The constraint behind "this template name is taken".
const UNIQUE_NAME: &str = "message_templates_user_name";

/// One page of the user's templates by name, and how many there are.
pub async fn list(
    pool: &PgPool,
    user: UserId,
    offset: i64,
    limit: i64,
) -> sqlx::Result<(Vec<Template>, i64)> {
    let total = sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM message_templates WHERE user_id = $1"#,
        user as UserId
    )
    .fetch_one(pool)
    .await?;
    let items = sqlx::query_as!(
        StoredTemplate,
        r#"SELECT id AS "id: TemplateId", user_id AS "user_id: UserId", name, body, body_sealed, created_at, updated_at
           FROM message_templates WHERE user_id = $1 ORDER BY lower(name), id OFFSET $2 LIMIT $3"#,
        user as UserId,
        offset,
        limit
    )
    .fetch_all(pool)
    .await?
    .into_iter()
    .map(StoredTemplate::open)
    .collect::<sqlx::Result<Vec<_>>>()?;
    Ok((items, total))
}

pub async fn find(pool: &PgPool, user: UserId, id: TemplateId) -> sqlx::Result<Option<Template>> {
    sqlx::query_as!(
        StoredTemplate,
        r#"SELECT id AS "id: TemplateId", user_id AS "user_id: UserId", name, body, body_sealed, created_at, updated_at
           FROM message_templates WHERE id = $1 AND user_id = $2"#,
        id as TemplateId,
        user as UserId
    )
    .fetch_optional(pool)
    .await?
    .map(StoredTemplate::open)
    .transpose()
}

/// Creates a template; the user may keep at most `max_templates` (counted under a lock on
/// the user, so two creations at once cannot both pass the limit).
pub async fn create(
    pool: &PgPool,
    user: UserId,
    input: &TemplateInput,
    max_templates: i64,
) -> Result<Template, TemplateStoreError> {
    let mut tx = pool.begin().await?;
    crate::account::repo::lock(&mut tx, user).await?;
    let id = TemplateId(Uuid::now_v7());
    let (body, sealed) = at_rest::store_text(Column::TemplateBody, id.0, &input.body)?;
    let inserted = sqlx::query_as!(
        StoredTemplate,
        r#"INSERT INTO message_templates (id, user_id, name, body, body_sealed) VALUES ($1, $2, $3, $4, NULLIF($5, ''::bytea))
           RETURNING id AS "id: TemplateId", user_id AS "user_id: UserId", name, body, body_sealed, created_at, updated_at"#,
        id as TemplateId,
        user as UserId,
        input.name,
        body,
        sealed
    )
    .fetch_one(&mut *tx)
    .await;
    match inserted {
        Err(e) if is_unique_violation(&e, UNIQUE_NAME) => {
            Err(TemplateStoreError::DuplicateName(input.name.clone()))
        }
        other => {
            let template = other?.open()?;
            // Counted after the insert so a taken name says so first; dropping `tx` rolls back.
            let held = sqlx::query_scalar!(
                r#"SELECT count(*) AS "n!" FROM message_templates WHERE user_id = $1"#,
                user as UserId
            )
            .fetch_one(&mut *tx)
            .await?;
            if held > max_templates {
                return Err(TemplateStoreError::TooMany(max_templates));
            }
            tx.commit().await?;
            Ok(template)
        }
    }
}

pub async fn update(
    pool: &PgPool,
    user: UserId,
    id: TemplateId,
    input: &TemplateInput,
) -> Result<Template, TemplateStoreError> {
    let (body, sealed) = at_rest::store_text(Column::TemplateBody, id.0, &input.body)?;
    let updated = sqlx::query_as!(
        StoredTemplate,
        r#"UPDATE message_templates SET name = $3, body = $4, body_sealed = NULLIF($5, ''::bytea), updated_at = now() WHERE id = $1 AND user_id = $2
           RETURNING id AS "id: TemplateId", user_id AS "user_id: UserId", name, body, body_sealed, created_at, updated_at"#,
        id as TemplateId,
        user as UserId,
        input.name,
        body,
        sealed
    )
    .fetch_optional(pool)
    .await;
    match updated {
        Err(e) if is_unique_violation(&e, UNIQUE_NAME) => {
            Err(TemplateStoreError::DuplicateName(input.name.clone()))
        }
        other => other?
            .ok_or(TemplateStoreError::NotFound)?
            .open()
            .map_err(Into::into),
    }
}

/// Deletes the template unless a scheduled send uses it.
pub async fn delete(pool: &PgPool, user: UserId, id: TemplateId) -> Result<(), TemplateStoreError> {
    let users = sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM scheduled_sends WHERE template_id = $1 AND user_id = $2"#,
        id as TemplateId,
        user as UserId
    )
    .fetch_one(pool)
    .await?;
    if users > 0 {
        return Err(TemplateStoreError::InUse(users));
    }
    let deleted = sqlx::query!(
        "DELETE FROM message_templates WHERE id = $1 AND user_id = $2",
        id as TemplateId,
        user as UserId
    )
    .execute(pool)
    .await;
    match deleted {
        // A schedule started using it since the count.
        Err(e) if e.as_database_error().and_then(|d| d.code()).as_deref() == Some("23503") => {
            Err(TemplateStoreError::InUse(1))
        }
        Ok(done) if done.rows_affected() == 0 => Err(TemplateStoreError::NotFound),
        other => {
            other?;
            Ok(())
        }
    }
}

/// The template a send names, with the contract's errors: an empty id, an unknown one,
/// another user's.
pub async fn for_send(pool: &PgPool, user: UserId, raw: &str) -> Result<TemplateText, SendError> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Err(SendError::TemplateIdRequired);
    }
    let id: TemplateId = raw.parse().map_err(|_| SendError::TemplateNotFound)?;
    let row = sqlx::query!(
        r#"SELECT user_id AS "user_id: UserId", body, body_sealed FROM message_templates WHERE id = $1"#,
        id as TemplateId
    )
    .fetch_optional(pool)
    .await?
    .ok_or(SendError::TemplateNotFound)?;
    if row.user_id != user {
        return Err(SendError::TemplateNotOwned);
    }
    let body = at_rest::open_text(Column::TemplateBody, id.0, row.body, row.body_sealed.as_deref())?;
    // Stored bodies were checked when saved.
    TemplateText::parse(&body).map_err(|_| SendError::TemplateNotFound)
}
