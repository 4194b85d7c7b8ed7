//! The audit trail of a workspace: who did what (members added, removed and given other
//! roles, invitations, API keys, devices, webhooks and their secrets, bulk sends, exports).
//! Append-only: the database refuses to change or remove an entry (migration
//! `20261207000500_audit`); entries go only with their workspace. Owners and admins read it
//! ([`super::Action::ReadAudit`]), on the Audit page and from `GET /api/audit`.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{PgExecutor, PgPool};

use super::model::{Action, Membership, WorkspaceId};
use super::{WorkspaceError, authorize};
use crate::account::UserId;
use crate::apikey::ApiKeyId;

/// Who did it: a person signed in, or an integration key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    User(UserId),
    Key(ApiKeyId),
}

/// Kinds of entry, as stored and as the API shows them.
pub mod kind {
    pub const WORKSPACE_CREATED: &str = "workspace.created";
    pub const WORKSPACE_RENAMED: &str = "workspace.renamed";
    pub const MEMBER_INVITED: &str = "member.invited";
    pub const INVITATION_WITHDRAWN: &str = "member.invitation_withdrawn";
    pub const MEMBER_JOINED: &str = "member.joined";
    pub const MEMBER_ROLE_CHANGED: &str = "member.role_changed";
    pub const MEMBER_REMOVED: &str = "member.removed";
    pub const MEMBER_LEFT: &str = "member.left";
    pub const KEY_CREATED: &str = "api_key.created";
    pub const KEY_ROTATED: &str = "api_key.rotated";
    pub const KEY_REVOKED: &str = "api_key.revoked";
    pub const DEVICE_ADDED: &str = "device.added";
    pub const DEVICE_REMOVED: &str = "device.removed";
    pub const DEVICE_KEY_ROTATED: &str = "device.key_rotated";
    pub const WEBHOOK_CREATED: &str = "webhook.created";
    pub const WEBHOOK_CHANGED: &str = "webhook.changed";
    pub const WEBHOOK_DELETED: &str = "webhook.deleted";
    pub const WEBHOOK_SECRET_REVEALED: &str = "webhook.secret_revealed";
    pub const WEBHOOK_SECRET_ROTATED: &str = "webhook.secret_rotated";
    pub const BULK_SEND: &str = "sms.bulk_send";
    pub const CONTACTS_EXPORTED: &str = "contacts.exported";
    pub const CONVERSATION_DELETED: &str = "sms.conversation_deleted";
}

/// A send to more recipients than this is written to the trail.
pub const BULK_SEND_OVER: i64 = 100;

/// Writes one entry. The actor's name is taken now (a person's name or address, a key's
/// name), so the entry still says who it was after they are gone.
pub async fn record<'e>(
    conn: impl PgExecutor<'e>,
    workspace: WorkspaceId,
    actor: Actor,
    action: &str,
    subject: &str,
    detail: Value,
) -> sqlx::Result<()> {
    let (user, key) = match actor {
        Actor::User(u) => (Some(u), None),
        Actor::Key(k) => (None, Some(k)),
    };
    sqlx::query!(
        r#"INSERT INTO audit_events (workspace_id, actor_user, actor_key, actor, action, subject, detail)
           VALUES ($1, $2, $3,
                   coalesce((SELECT CASE WHEN btrim(full_name) = '' THEN email ELSE btrim(full_name) || ' <' || email || '>' END
                             FROM users WHERE id = $2),
                            (SELECT 'API key ' || name || ' (' || prefix || '…)' FROM api_keys WHERE id = $3),
                            'unknown'),
                   $4, $5, $6)"#,
        workspace as WorkspaceId,
        user as Option<UserId>,
        key as Option<ApiKeyId>,
        action,
        subject,
        detail
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// An entry as the page and the API show it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Entry {
    pub id: i64,
    pub actor: String,
    pub action: String,
    pub subject: String,
    pub detail: Value,
    pub created_at: DateTime<Utc>,
}

/// Entries of the actor's workspace, newest first: `limit` of them before the entry `before`
/// (the first page without it), and whether older ones remain.
pub async fn page(
    pool: &PgPool,
    reader: &Membership,
    before: Option<i64>,
    limit: i64,
) -> Result<(Vec<Entry>, bool), WorkspaceError> {
    authorize(reader, Action::ReadAudit)?;
    let mut rows = sqlx::query_as!(
        Entry,
        "SELECT id, actor, action, subject, detail, created_at FROM audit_events
         WHERE workspace_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3",
        reader.workspace.id as WorkspaceId,
        before.unwrap_or(i64::MAX),
        limit + 1
    )
    .fetch_all(pool)
    .await?;
    let more = rows.len() as i64 > limit;
    rows.truncate(usize::try_from(limit).unwrap_or(0));
    Ok((rows, more))
}

/// One page of the workspace's entries by page number (for the API's `page`/`per_page`),
/// newest first, and how many there are in all.
pub async fn numbered(
    pool: &PgPool,
    workspace: WorkspaceId,
    limit: i64,
    offset: i64,
) -> sqlx::Result<(Vec<Entry>, i64)> {
    let rows = sqlx::query_as!(
        Entry,
        "SELECT id, actor, action, subject, detail, created_at FROM audit_events
         WHERE workspace_id = $1 ORDER BY id DESC LIMIT $2 OFFSET $3",
        workspace as WorkspaceId,
        limit,
        offset
    )
    .fetch_all(pool)
    .await?;
    let total = sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM audit_events WHERE workspace_id = $1"#,
        workspace as WorkspaceId
    )
    .fetch_one(pool)
    .await?;
    Ok((rows, total))
}
