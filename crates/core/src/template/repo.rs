//! Templates in Postgres, scoped to their owner.

use sqlx::PgPool;
use uuid::Uuid;

use super::model::{StoredTemplate, Template, TemplateId, TemplateInput, TemplateStoreError};
use super::text::TemplateText;
use crate::db::is_unique_violation;
use crate::secret::at_rest::{self, Column};
use crate::sms::send::SendError;
use crate::workspace::WorkspaceId;

/// The constraint behind "this template name is taken".
const UNIQUE_NAME: &str = "message_templates_workspace_name";

/// One page of the workspace's templates by name, and how many there are.
pub async fn list(
    pool: &PgPool,
    workspace: WorkspaceId,
    offset: i64,
    limit: i64,
) -> sqlx::Result<(Vec<Template>, i64)> {
    let total = sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM message_templates WHERE workspace_id = $1"#,
        workspace as WorkspaceId
    )
    .fetch_one(pool)
    .await?;
    let items = sqlx::query_as!(
        StoredTemplate,
        r#"SELECT id AS "id: TemplateId", workspace_id AS "workspace_id: WorkspaceId", name, body, body_sealed, created_at, updated_at
           FROM message_templates WHERE workspace_id = $1 ORDER BY lower(name), id OFFSET $2 LIMIT $3"#,
        workspace as WorkspaceId,
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

pub async fn find(pool: &PgPool, workspace: WorkspaceId, id: TemplateId) -> sqlx::Result<Option<Template>> {
    sqlx::query_as!(
        StoredTemplate,
        r#"SELECT id AS "id: TemplateId", workspace_id AS "workspace_id: WorkspaceId", name, body, body_sealed, created_at, updated_at
           FROM message_templates WHERE id = $1 AND workspace_id = $2"#,
        id as TemplateId,
        workspace as WorkspaceId
    )
    .fetch_optional(pool)
    .await?
    .map(StoredTemplate::open)
    .transpose()
}

/// Creates a template; the workspace may keep at most `max_templates` (counted under a lock on
/// the workspace, so two creations at once cannot both pass the limit).
pub async fn create(
    pool: &PgPool,
    workspace: WorkspaceId,
    input: &TemplateInput,
    max_templates: i64,
) -> Result<Template, TemplateStoreError> {
    let mut tx = pool.begin().await?;
    crate::workspace::repo::lock(&mut tx, workspace).await?;
    let id = TemplateId(Uuid::now_v7());
    let (body, sealed) = at_rest::store_text(Column::TemplateBody, id.0, &input.body)?;
    let inserted = sqlx::query_as!(
        StoredTemplate,
        r#"INSERT INTO message_templates (id, workspace_id, name, body, body_sealed) VALUES ($1, $2, $3, $4, NULLIF($5, ''::bytea))
           RETURNING id AS "id: TemplateId", workspace_id AS "workspace_id: WorkspaceId", name, body, body_sealed, created_at, updated_at"#,
        id as TemplateId,
        workspace as WorkspaceId,
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
                r#"SELECT count(*) AS "n!" FROM message_templates WHERE workspace_id = $1"#,
                workspace as WorkspaceId
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
    workspace: WorkspaceId,
    id: TemplateId,
    input: &TemplateInput,
) -> Result<Template, TemplateStoreError> {
    let (body, sealed) = at_rest::store_text(Column::TemplateBody, id.0, &input.body)?;
    let updated = sqlx::query_as!(
        StoredTemplate,
        r#"UPDATE message_templates SET name = $3, body = $4, body_sealed = NULLIF($5, ''::bytea), updated_at = now() WHERE id = $1 AND workspace_id = $2
           RETURNING id AS "id: TemplateId", workspace_id AS "workspace_id: WorkspaceId", name, body, body_sealed, created_at, updated_at"#,
        id as TemplateId,
        workspace as WorkspaceId,
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
pub async fn delete(pool: &PgPool, workspace: WorkspaceId, id: TemplateId) -> Result<(), TemplateStoreError> {
    let workspaces = sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM scheduled_sends WHERE template_id = $1 AND workspace_id = $2"#,
        id as TemplateId,
        workspace as WorkspaceId
    )
    .fetch_one(pool)
    .await?;
    if workspaces > 0 {
        return Err(TemplateStoreError::InUse(workspaces));
    }
    let deleted = sqlx::query!(
        "DELETE FROM message_templates WHERE id = $1 AND workspace_id = $2",
        id as TemplateId,
        workspace as WorkspaceId
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
/// another workspace's.
pub async fn for_send(pool: &PgPool, workspace: WorkspaceId, raw: &str) -> Result<TemplateText, SendError> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Err(SendError::TemplateIdRequired);
    }
    let id: TemplateId = raw.parse().map_err(|_| SendError::TemplateNotFound)?;
    let row = sqlx::query!(
        r#"SELECT workspace_id AS "workspace_id: WorkspaceId", body, body_sealed FROM message_templates WHERE id = $1"#,
        id as TemplateId
    )
    .fetch_optional(pool)
    .await?
    .ok_or(SendError::TemplateNotFound)?;
    if row.workspace_id != workspace {
        return Err(SendError::TemplateNotOwned);
    }
    let body = at_rest::open_text(Column::TemplateBody, id.0, row.body, row.body_sealed.as_deref())?;
    // Stored bodies were checked when saved.
    TemplateText::parse(&body).map_err(|_| SendError::TemplateNotFound)
}
