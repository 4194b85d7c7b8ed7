//! Invitations to create an account, for servers whose sign-up is by invitation
//! (`ENDER_SIGNUP=invite`). An invitation may also name a workspace and a role
//! ([`crate::workspace::invitations`]): signing up through it joins that workspace.
//!
//! A signed-in user (or the operator, with `ender-web admin invite`) invites an address.
//! The link is mailed to that address and only a digest of its token is stored. Whoever
//! opens the link chooses a name and a password and gets an account with the invited
//! address, verified: the link reached it. The inviter never sees the link, so an
//! invitation cannot be used to make a verified account for an address its inviter does
//! not own (which OAuth sign-in would then trust).

use chrono::{DateTime, Duration, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::account::{AccountError, Email, FullName, Password, TokenError, User, UserId};
use crate::crypto::{hash_password, random_token, token_digest};
use crate::workspace::{Role, WorkspaceId};

/// How long an invitation link works.
pub const INVITE_TTL: Duration = Duration::days(7);
/// How long finished (accepted, revoked or expired) invitations stay listed to their
/// inviter before they are removed.
const KEEP_FINISHED: Duration = Duration::days(30);

id_type!(InvitationId);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InvitationState {
    Pending,
    Accepted,
    Revoked,
    Expired,
}

impl InvitationState {
    pub fn label(&self) -> &'static str {
        match self {
            Self::Pending => "Pending",
            Self::Accepted => "Accepted",
            Self::Revoked => "Revoked",
            Self::Expired => "Expired",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Invitation {
    pub id: InvitationId,
    pub email: String,
    pub invited_by: Option<UserId>,
    /// The workspace the invitee joins on accepting, in `role`; None for an invitation to
    /// make an account only.
    pub workspace_id: Option<WorkspaceId>,
    pub role: Option<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub accepted_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl Invitation {
    pub fn state(&self, now: DateTime<Utc>) -> InvitationState {
        if self.accepted_at.is_some() {
            InvitationState::Accepted
        } else if self.revoked_at.is_some() {
            InvitationState::Revoked
        } else if self.expires_at <= now {
            InvitationState::Expired
        } else {
            InvitationState::Pending
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum InviteError {
    #[error(
        "You can have at most {0} invitations waiting for an answer. Revoke one, or wait until one is accepted or expires."
    )]
    TooManyPending(i64),
    #[error("Invitation not found.")]
    NotFound,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// A new invitation and the token for its link (to be mailed, never shown to the inviter).
pub struct Issued {
    pub invitation: Invitation,
    pub token: String,
}

/// Invites `email`. With an inviter, at most `max_pending` of their invitations may wait at
/// once; the count is taken under a lock on the inviter's `users` row, so concurrent
/// invitations cannot overshoot it. Whether the address already has an account is not
/// checked (the answer would tell the inviter who has one); accepting such an invitation
/// fails instead, which only the address's owner sees.
pub async fn create(
    pool: &PgPool,
    inviter: Option<UserId>,
    email: &Email,
    max_pending: i64,
) -> Result<Issued, InviteError> {
    let mut tx = pool.begin().await?;
    if let Some(user) = inviter {
        crate::account::repo::lock(&mut tx, user).await?;
        sqlx::query!(
            "DELETE FROM invitations
             WHERE invited_by = $1 AND created_at < $2
               AND (accepted_at IS NOT NULL OR revoked_at IS NOT NULL OR expires_at < now())",
            user as UserId,
            Utc::now() - KEEP_FINISHED
        )
        .execute(&mut *tx)
        .await?;
        let pending = sqlx::query_scalar!(
            r#"SELECT count(*) AS "n!" FROM invitations
               WHERE invited_by = $1 AND workspace_id IS NULL
                 AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > now()"#,
            user as UserId
        )
        .fetch_one(&mut *tx)
        .await?;
        if pending >= max_pending {
            return Err(InviteError::TooManyPending(max_pending));
        }
    }
    let token = random_token(40);
    let invitation = sqlx::query_as!(
        Invitation,
        r#"INSERT INTO invitations (id, token_hash, email, invited_by, expires_at)
           VALUES ($1, $2, $3, $4, $5)
           RETURNING id AS "id: InvitationId", email, invited_by AS "invited_by: UserId",
                     workspace_id AS "workspace_id: WorkspaceId", role,
                     created_at, expires_at, accepted_at, revoked_at"#,
        InvitationId(Uuid::now_v7()) as InvitationId,
        &token_digest(&token),
        email.as_str(),
        inviter as Option<UserId>,
        Utc::now() + INVITE_TTL
    )
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Issued { invitation, token })
}

/// The user's invitations, newest first (finished ones stay listed for 30 days).
pub async fn list(pool: &PgPool, inviter: UserId, limit: i64) -> Result<Vec<Invitation>, InviteError> {
    Ok(sqlx::query_as!(
        Invitation,
        r#"SELECT id AS "id: InvitationId", email, invited_by AS "invited_by: UserId",
                  workspace_id AS "workspace_id: WorkspaceId", role,
                  created_at, expires_at, accepted_at, revoked_at
           FROM invitations WHERE invited_by = $1 AND workspace_id IS NULL
           ORDER BY created_at DESC LIMIT $2"#,
        inviter as UserId,
        limit
    )
    .fetch_all(pool)
    .await?)
}

/// Revokes one of the user's own pending invitations; another user's id is not found.
pub async fn revoke(pool: &PgPool, inviter: UserId, id: InvitationId) -> Result<(), InviteError> {
    let done = sqlx::query!(
        "UPDATE invitations SET revoked_at = now()
         WHERE id = $1 AND invited_by = $2 AND workspace_id IS NULL AND accepted_at IS NULL AND revoked_at IS NULL",
        id as InvitationId,
        inviter as UserId
    )
    .execute(pool)
    .await?;
    if done.rows_affected() == 0 {
        return Err(InviteError::NotFound);
    }
    Ok(())
}

pub(crate) async fn lock_by_token(conn: &mut PgConnection, token: &str) -> Result<Invitation, AccountError> {
    let found = sqlx::query_as!(
        Invitation,
        r#"SELECT id AS "id: InvitationId", email, invited_by AS "invited_by: UserId",
                  workspace_id AS "workspace_id: WorkspaceId", role,
                  created_at, expires_at, accepted_at, revoked_at
           FROM invitations WHERE token_hash = $1 FOR UPDATE"#,
        &token_digest(token)
    )
    .fetch_optional(conn)
    .await?;
    let invitation = found.ok_or(TokenError::Invalid)?;
    match invitation.state(Utc::now()) {
        InvitationState::Pending => Ok(invitation),
        InvitationState::Accepted => Err(TokenError::Used.into()),
        InvitationState::Revoked => Err(TokenError::Invalid.into()),
        InvitationState::Expired => Err(TokenError::Expired.into()),
    }
}

/// The pending invitation behind a link, for the sign-up form.
pub async fn check(pool: &PgPool, token: &str) -> Result<Invitation, AccountError> {
    let mut tx = pool.begin().await?;
    let invitation = lock_by_token(&mut tx, token).await?;
    tx.rollback().await?;
    Ok(invitation)
}

/// Accepts an invitation: checks the token first (no password is hashed for a forged or
/// spent link), then creates the verified account with the invited address, adds it to
/// the invitation's workspace if it names one, and marks the invitation accepted, in one
/// transaction. A second acceptance of the same link waits
/// for the first's row lock and then finds it used.
pub async fn accept(
    pool: &PgPool,
    token: &str,
    password: &Password,
    full_name: &FullName,
) -> Result<User, AccountError> {
    check(pool, token).await?;
    let hash = hash_password(password.secret()).await?;
    let mut tx = pool.begin().await?;
    let invitation = lock_by_token(&mut tx, token).await?;
    let user = crate::account::repo::insert(
        &mut tx,
        UserId::new(),
        &invitation.email,
        full_name.as_str(),
        Some(&hash),
        true,
        false,
    )
    .await
    .map_err(crate::account::email_taken)?;
    if let (Some(workspace), Some(role)) = (invitation.workspace_id, invitation.role.as_deref()) {
        let role = Role::parse(role).map_err(|_| TokenError::Invalid)?;
        crate::workspace::repo::add_member(&mut tx, workspace, user.id, role).await?;
    }
    mark_accepted(&mut tx, invitation.id, user.id).await?;
    tx.commit().await?;
    Ok(user)
}

pub(crate) async fn mark_accepted(conn: &mut PgConnection, id: InvitationId, by: UserId) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE invitations SET accepted_at = now(), accepted_by = $2 WHERE id = $1",
        id as InvitationId,
        by as UserId
    )
    .execute(conn)
    .await?;
    Ok(())
}
