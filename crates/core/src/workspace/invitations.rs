//! Invitations to a workspace. An admin (or owner) invites an address in a role; the link
//! is mailed to it and works for 7 days, once, until it is withdrawn. Whoever holds it
//! joins with the account of that address, or signs up through it (which also works when
//! sign-up is by invitation only, [`crate::invite::accept`]). The invitation says who sent
//! it. A workspace's members and its invitations waiting for an answer together stay
//! within `ENDER_MAX_MEMBERS_PER_WORKSPACE`, so accepting never overshoots it.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use super::model::{Action, Membership, Role, WorkspaceId};
use super::{WorkspaceError, actor_under_lock, authorize, needed_for, repo};
use crate::account::{AccountError, Email, User, UserId};
use crate::crypto::{random_token, token_digest};
use crate::invite::{INVITE_TTL, InvitationId, Issued, lock_by_token, mark_accepted};

/// An invitation to a workspace, as its page and its link's page show it.
#[derive(Debug, Clone)]
pub struct Pending {
    pub id: InvitationId,
    pub email: String,
    pub role: Role,
    pub workspace: WorkspaceId,
    pub workspace_name: String,
    /// Who sent it, as the invitee will recognise them ("" if that account is gone).
    pub invited_by: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

fn account_error(e: AccountError) -> WorkspaceError {
    match e {
        AccountError::Token(t) => WorkspaceError::Token(t),
        AccountError::Database(e) => WorkspaceError::Db(e),
        other => WorkspaceError::Db(sqlx::Error::Protocol(other.to_string())),
    }
}

/// Invites `email` into the actor's workspace as `role`. Admins invite admins, members and
/// viewers; only owners invite owners. Refused for an address that is already a member,
/// and when members plus waiting invitations would pass `max_members`; an earlier waiting
/// invitation of the same address is replaced (its link stops working).
pub async fn invite(
    pool: &PgPool,
    actor: &Membership,
    email: &Email,
    role: Role,
    max_members: i64,
) -> Result<Issued, WorkspaceError> {
    let mut tx = pool.begin().await?;
    let actor = actor_under_lock(&mut tx, actor).await?;
    authorize(&actor, Action::ManageMembers)?;
    authorize(&actor, needed_for(Role::Member, Some(role)))?;
    let workspace = actor.workspace.id;
    let member = sqlx::query_scalar!(
        r#"SELECT 1 AS "one!" FROM workspace_members m JOIN users u ON u.id = m.user_id
           WHERE m.workspace_id = $1 AND u.email_normalized = $2"#,
        workspace as WorkspaceId,
        email.normalized()
    )
    .fetch_optional(&mut *tx)
    .await?;
    if member.is_some() {
        return Err(WorkspaceError::AlreadyMember {
            email: email.as_str().to_owned(),
        });
    }
    sqlx::query!(
        "UPDATE invitations SET revoked_at = now()
         WHERE workspace_id = $1 AND lower(email) = $2 AND accepted_at IS NULL AND revoked_at IS NULL",
        workspace as WorkspaceId,
        email.normalized()
    )
    .execute(&mut *tx)
    .await?;
    let taken = repo::count_members(&mut tx, workspace).await? + waiting(&mut tx, workspace).await?;
    if taken >= max_members {
        return Err(WorkspaceError::TooManyMembers { limit: max_members });
    }
    let token = random_token(40);
    let invitation = sqlx::query_as!(
        crate::invite::Invitation,
        r#"INSERT INTO invitations (id, token_hash, email, invited_by, expires_at, workspace_id, role)
           VALUES ($1, $2, $3, $4, $5, $6, $7)
           RETURNING id AS "id: InvitationId", email, invited_by AS "invited_by: UserId",
                     workspace_id AS "workspace_id: WorkspaceId", role,
                     created_at, expires_at, accepted_at, revoked_at"#,
        InvitationId(Uuid::now_v7()) as InvitationId,
        &token_digest(&token),
        email.as_str(),
        actor.user_id as UserId,
        Utc::now() + INVITE_TTL,
        workspace as WorkspaceId,
        role.as_str()
    )
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Issued { invitation, token })
}

async fn waiting(conn: &mut sqlx::PgConnection, workspace: WorkspaceId) -> sqlx::Result<i64> {
    sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM invitations
           WHERE workspace_id = $1 AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > now()"#,
        workspace as WorkspaceId
    )
    .fetch_one(conn)
    .await
}

/// Invitations with their workspace's name and who sent them, filtered by `$where`.
macro_rules! query_pending {
    ($where:literal $(, $arg:expr)* $(,)?) => {
        sqlx::query_as!(
            PendingRow,
            r#"SELECT i.id AS "id: InvitationId", i.email, i.role, i.workspace_id AS "workspace: WorkspaceId",
                      w.name AS workspace_name,
                      CASE WHEN btrim(u.full_name) = '' THEN u.email ELSE u.full_name END AS invited_by,
                      i.created_at, i.expires_at
               FROM invitations i JOIN workspaces w ON w.id = i.workspace_id
               LEFT JOIN users u ON u.id = i.invited_by "# + $where
            $(, $arg)*
        )
    };
}

struct PendingRow {
    id: InvitationId,
    email: String,
    role: Option<String>,
    workspace: Option<WorkspaceId>,
    workspace_name: String,
    invited_by: Option<String>,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
}

impl TryFrom<PendingRow> for Pending {
    type Error = WorkspaceError;

    fn try_from(r: PendingRow) -> Result<Self, WorkspaceError> {
        let (Some(workspace), Some(role)) = (r.workspace, r.role) else {
            return Err(WorkspaceError::Token(crate::account::TokenError::Invalid));
        };
        Ok(Self {
            id: r.id,
            email: r.email,
            role: Role::parse(&role)
                .map_err(|_| WorkspaceError::Token(crate::account::TokenError::Invalid))?,
            workspace,
            workspace_name: r.workspace_name,
            invited_by: r.invited_by.unwrap_or_default(),
            created_at: r.created_at,
            expires_at: r.expires_at,
        })
    }
}

/// The workspace's invitations waiting for an answer, newest first (for its members page).
pub async fn waiting_for(pool: &PgPool, workspace: WorkspaceId) -> Result<Vec<Pending>, WorkspaceError> {
    query_pending!(
        "WHERE i.workspace_id = $1 AND i.accepted_at IS NULL AND i.revoked_at IS NULL AND i.expires_at > now()
         ORDER BY i.created_at DESC",
        workspace as WorkspaceId
    )
    .fetch_all(pool)
    .await?
    .into_iter()
    .map(Pending::try_from)
    .collect()
}

/// Withdraws one of the workspace's waiting invitations; its link stops working.
pub async fn revoke(pool: &PgPool, actor: &Membership, id: InvitationId) -> Result<(), WorkspaceError> {
    authorize(actor, Action::ManageMembers)?;
    let done = sqlx::query!(
        "UPDATE invitations SET revoked_at = now()
         WHERE id = $1 AND workspace_id = $2 AND accepted_at IS NULL AND revoked_at IS NULL",
        id as InvitationId,
        actor.workspace.id as WorkspaceId
    )
    .execute(pool)
    .await?;
    if done.rows_affected() == 0 {
        return Err(WorkspaceError::NotFound);
    }
    Ok(())
}

/// The waiting workspace invitation behind a link (spent, withdrawn, expired or forged
/// links are the matching [`crate::account::TokenError`]).
pub async fn lookup(pool: &PgPool, token: &str) -> Result<Pending, WorkspaceError> {
    let mut tx = pool.begin().await?;
    let invitation = lock_by_token(&mut tx, token).await.map_err(account_error)?;
    let row = query_pending!("WHERE i.id = $1", invitation.id as InvitationId)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(WorkspaceError::Token(crate::account::TokenError::Invalid))?;
    tx.rollback().await?;
    row.try_into()
}

/// `user` accepts the invitation behind `token`: it must have been sent to their address.
/// They join in the invited role (a member already keeps the role they have), the link is
/// spent, and their membership is returned. Two acceptances of one link: the second waits
/// for the first's row lock and finds it used.
pub async fn accept(pool: &PgPool, token: &str, user: &User) -> Result<Membership, WorkspaceError> {
    let mut tx = pool.begin().await?;
    let invitation = lock_by_token(&mut tx, token).await.map_err(account_error)?;
    let (Some(workspace), Some(role)) = (invitation.workspace_id, invitation.role.as_deref()) else {
        return Err(WorkspaceError::Token(crate::account::TokenError::Invalid));
    };
    let invited = Email::parse(&invitation.email)
        .map_err(|_| WorkspaceError::Token(crate::account::TokenError::Invalid))?;
    let signed_in = Email::parse(&user.email).map_err(|_| WorkspaceError::NotFound)?;
    if invited.normalized() != signed_in.normalized() {
        return Err(WorkspaceError::WrongAccount {
            invited: invitation.email,
            signed_in: user.email.clone(),
        });
    }
    let role = Role::parse(role).map_err(|_| WorkspaceError::Token(crate::account::TokenError::Invalid))?;
    if !repo::lock(&mut tx, workspace).await? {
        return Err(WorkspaceError::NotFound);
    }
    if repo::membership(&mut tx, workspace, user.id).await?.is_none() {
        repo::add_member(&mut tx, workspace, user.id, role).await?;
    }
    mark_accepted(&mut tx, invitation.id, user.id).await?;
    let m = repo::membership(&mut tx, workspace, user.id)
        .await?
        .ok_or(WorkspaceError::NotFound)?;
    tx.commit().await?;
    Ok(m)
}
