//! Deleting a workspace. An owner deletes a shared workspace (a personal one goes with its
//! account). At once, in one transaction: its queued messages (pending, assigned or being
//! sent) are cancelled with the reason "The workspace was deleted." and each fires
//! `sms_failed` to the workspace's webhooks; its devices and API keys are removed, so no
//! phone or integration acts for it again and nothing more is sent; its schedules stop;
//! every member loses access (their open pages' streams end). The row and what is left of
//! its history go with the housekeeping purge ([`crate::maintenance::purge_expired`]) once
//! those last webhooks are delivered, or a day later at the latest.

use chrono::Utc;
use sqlx::{PgConnection, PgPool};

use super::model::{Action, Membership, WorkspaceId};
use super::{WorkspaceError, actor_under_lock, authorize};
use crate::account::UserId;
use crate::bus::{self, BusEvent};
use crate::sms::MessageId;
use crate::sms::repo::record_events;
use crate::webhook::endpoint as webhook;
use crate::webhook::{Event, Payload};

/// The reason a queued message of a deleted workspace carries.
pub const CANCELLED: &str = "The workspace was deleted.";

/// What a deletion did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deleted {
    pub messages_cancelled: usize,
    pub members_removed: usize,
}

pub async fn delete(pool: &PgPool, actor: &Membership) -> Result<Deleted, WorkspaceError> {
    let mut tx = pool.begin().await?;
    let actor = actor_under_lock(&mut tx, actor).await?;
    authorize(&actor, Action::Delete)?;
    if actor.workspace.personal_for.is_some() {
        return Err(WorkspaceError::Personal);
    }
    let deleted = tear_down(&mut tx, actor.workspace.id).await?;
    tx.commit().await?;
    tracing::info!(workspace.id = %actor.workspace.id, cancelled = deleted.messages_cancelled, "workspace deleted");
    Ok(deleted)
}

/// Everything a deletion does, inside the caller's transaction (an owner's, above, or an
/// administrator's from the console, who may delete personal workspaces too).
pub(crate) async fn tear_down(
    tx: &mut PgConnection,
    workspace: WorkspaceId,
) -> Result<Deleted, WorkspaceError> {
    sqlx::query!(
        "UPDATE workspaces SET deleted_at = now() WHERE id = $1",
        workspace as WorkspaceId
    )
    .execute(&mut *tx)
    .await?;
    let cancelled = sqlx::query!(
        r#"UPDATE messages SET status = 'canceled', error_message = $2, lease_expires_at = NULL, updated_at = now()
           WHERE workspace_id = $1 AND status IN ('pending', 'assigned', 'sending')
           RETURNING id AS "id: MessageId", recipient, body, body_sealed,
                     coalesce(device_id, requested_device_id) AS "device_id: crate::device::DeviceId""#,
        workspace as WorkspaceId,
        CANCELLED
    )
    .fetch_all(&mut *tx)
    .await?;
    let ids: Vec<MessageId> = cancelled.iter().map(|m| m.id).collect();
    record_events(&mut *tx, &ids, "canceled", CANCELLED, None).await?;
    for m in &cancelled {
        let payload = Payload::new(Event::SmsFailed, &m.id.to_string(), Utc::now())
            .with("to", m.recipient.clone())
            .with("status", "canceled")
            .with("error_message", CANCELLED);
        let body = crate::sms::dispatch::message_body(m.id, m.body.clone(), m.body_sealed.clone())?;
        webhook::enqueue(
            &mut *tx,
            workspace,
            Event::SmsFailed,
            m.device_id,
            &payload,
            Some(&body),
        )
        .await?;
    }
    sqlx::query!(
        "DELETE FROM devices WHERE workspace_id = $1",
        workspace as WorkspaceId
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        "DELETE FROM api_keys WHERE workspace_id = $1",
        workspace as WorkspaceId
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        "UPDATE scheduled_sends SET status = 'paused', updated_at = now() WHERE workspace_id = $1 AND status = 'active'",
        workspace as WorkspaceId
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        "UPDATE invitations SET revoked_at = now() WHERE workspace_id = $1 AND accepted_at IS NULL AND revoked_at IS NULL",
        workspace as WorkspaceId
    )
    .execute(&mut *tx)
    .await?;
    let members = sqlx::query_scalar!(
        r#"DELETE FROM workspace_members WHERE workspace_id = $1 RETURNING user_id AS "u: UserId""#,
        workspace as WorkspaceId
    )
    .fetch_all(&mut *tx)
    .await?;
    for user in &members {
        bus::publish(
            &mut *tx,
            &BusEvent::MemberLeft {
                workspace_id: workspace,
                user_id: *user,
            },
        )
        .await?;
    }
    bus::publish(
        &mut *tx,
        &BusEvent::Messages {
            workspace_id: workspace,
        },
    )
    .await?;
    Ok(Deleted {
        messages_cancelled: cancelled.len(),
        members_removed: members.len(),
    })
}
