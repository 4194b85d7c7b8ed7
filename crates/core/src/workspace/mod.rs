//! Workspaces: teams of users that share devices, keys and history, each member with a
//! role. Every user has a personal workspace made with their account. What a role may do
//! is one table ([`Action::least_role`]); every change to members goes through here and
//! keeps at least one owner, however many changes race.

pub mod audit;
pub mod delete;
pub mod invitations;
pub mod model;
pub mod repo;

use sqlx::PgPool;

use crate::account::UserId;
pub use model::{Action, Membership, Role, Workspace, WorkspaceId, WorkspaceName};

#[derive(Debug, thiserror::Error)]
pub enum WorkspaceError {
    /// Not a member (or no such workspace): the same answer for both, so a stranger learns
    /// nothing about other workspaces.
    #[error("That workspace does not exist or you are not a member of it.")]
    NotFound,
    #[error("Your role in this workspace does not allow that.")]
    Forbidden(Action),
    #[error("A workspace needs at least one owner: make another member an owner first.")]
    LastOwner,
    #[error("A personal workspace keeps the person it was made for; it goes when their account does.")]
    Personal,
    #[error("That person is not a member of this workspace.")]
    NoSuchMember,
    #[error("You belong to {limit} workspaces, the most one account may (ENDER_MAX_WORKSPACES_PER_USER).")]
    TooManyWorkspaces { limit: i64 },
    #[error("{email} is already a member of this workspace.")]
    AlreadyMember { email: String },
    #[error(
        "This workspace has {limit} members and invitations waiting, the most it may (ENDER_MAX_MEMBERS_PER_WORKSPACE). Remove a member or withdraw an invitation first."
    )]
    TooManyMembers { limit: i64 },
    #[error(
        "This invitation was sent to {invited}; you are signed in as {signed_in}. Sign out and sign in with {invited}, or create an account with it."
    )]
    WrongAccount { invited: String, signed_in: String },
    #[error(transparent)]
    Token(#[from] crate::account::TokenError),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// Refuses unless the membership's role may do `action`.
pub fn authorize(m: &Membership, action: Action) -> Result<(), WorkspaceError> {
    if m.role.may(action) {
        Ok(())
    } else {
        Err(WorkspaceError::Forbidden(action))
    }
}

/// `user`'s membership of `workspace`, or `NotFound`.
pub async fn membership(
    pool: &PgPool,
    workspace: WorkspaceId,
    user: UserId,
) -> Result<Membership, WorkspaceError> {
    let mut conn = pool.acquire().await?;
    repo::membership(&mut conn, workspace, user)
        .await?
        .ok_or(WorkspaceError::NotFound)
}

/// The workspace `user` acts in: `chosen` (the one picked in their session) when they are
/// still a member of it, else `NotFound`; with nothing chosen, their personal workspace.
pub async fn current(
    pool: &PgPool,
    user: UserId,
    chosen: Option<WorkspaceId>,
) -> Result<Membership, WorkspaceError> {
    let mut conn = pool.acquire().await?;
    let workspace = match chosen {
        Some(w) => w,
        None => {
            repo::personal(&mut conn, user)
                .await?
                .ok_or(WorkspaceError::NotFound)?
                .id
        }
    };
    repo::membership(&mut conn, workspace, user)
        .await?
        .ok_or(WorkspaceError::NotFound)
}

/// Every workspace `user` belongs to, personal first, then by name (for the switcher).
pub async fn list_for(pool: &PgPool, user: UserId) -> Result<Vec<Membership>, WorkspaceError> {
    Ok(repo::memberships(&mut *pool.acquire().await?, user).await?)
}

/// Makes a shared workspace owned by `user`, who may belong to at most `max_per_user`.
pub async fn create(
    pool: &PgPool,
    user: UserId,
    name: &WorkspaceName,
    max_per_user: i64,
) -> Result<Workspace, WorkspaceError> {
    let mut tx = pool.begin().await?;
    // One user's workspace count changes one at a time.
    crate::account::repo::lock(&mut tx, user).await?;
    if repo::count_for_user(&mut tx, user).await? >= max_per_user {
        return Err(WorkspaceError::TooManyWorkspaces { limit: max_per_user });
    }
    let w = repo::create_shared(&mut tx, user, name).await?;
    tx.commit().await?;
    Ok(w)
}

/// The actor's membership read again under the workspace lock, so a role changed a moment
/// ago counts.
pub(crate) async fn actor_under_lock(
    conn: &mut sqlx::PgConnection,
    actor: &Membership,
) -> Result<Membership, WorkspaceError> {
    if !repo::lock(conn, actor.workspace.id).await? {
        return Err(WorkspaceError::NotFound);
    }
    repo::membership(conn, actor.workspace.id, actor.user_id)
        .await?
        .ok_or(WorkspaceError::NotFound)
}

/// What changing `from` to `to` needs: owners are made and unmade only by owners.
pub(crate) fn needed_for(from: Role, to: Option<Role>) -> Action {
    if from == Role::Owner || to == Some(Role::Owner) {
        Action::ManageOwners
    } else {
        Action::ManageMembers
    }
}

/// The actor (read again under the lock, allowed to manage members) and `target`'s
/// current membership, for a change to another member.
async fn member_change(
    conn: &mut sqlx::PgConnection,
    actor: &Membership,
    target: UserId,
) -> Result<(Membership, Membership), WorkspaceError> {
    let actor = actor_under_lock(conn, actor).await?;
    authorize(&actor, Action::ManageMembers)?;
    let current = repo::membership(conn, actor.workspace.id, target)
        .await?
        .ok_or(WorkspaceError::NoSuchMember)?;
    Ok((actor, current))
}

/// Refuses when `leaving` stops being an owner and was the workspace's last one. Called
/// under the workspace lock.
async fn keep_an_owner(conn: &mut sqlx::PgConnection, leaving: &Membership) -> Result<(), WorkspaceError> {
    if leaving.role == Role::Owner && repo::owners(conn, leaving.workspace.id).await? <= 1 {
        return Err(WorkspaceError::LastOwner);
    }
    Ok(())
}

/// Gives `target` the role `role`. Refused if it would leave the workspace without an
/// owner.
pub async fn change_role(
    pool: &PgPool,
    actor: &Membership,
    target: UserId,
    role: Role,
) -> Result<(), WorkspaceError> {
    let mut tx = pool.begin().await?;
    let (actor, current) = member_change(&mut tx, actor, target).await?;
    authorize(&actor, needed_for(current.role, Some(role)))?;
    if role != Role::Owner {
        keep_an_owner(&mut tx, &current).await?;
    }
    repo::set_role(&mut tx, actor.workspace.id, target, role).await?;
    tx.commit().await?;
    Ok(())
}

/// Removes `target` from the actor's workspace.
pub async fn remove_member(pool: &PgPool, actor: &Membership, target: UserId) -> Result<(), WorkspaceError> {
    let mut tx = pool.begin().await?;
    let (actor, current) = member_change(&mut tx, actor, target).await?;
    if current.workspace.personal_for == Some(target) {
        return Err(WorkspaceError::Personal);
    }
    authorize(&actor, needed_for(current.role, None))?;
    keep_an_owner(&mut tx, &current).await?;
    repo::remove_member(&mut tx, actor.workspace.id, target).await?;
    left(&mut tx, actor.workspace.id, target).await?;
    tx.commit().await?;
    Ok(())
}

/// `user` leaves the workspace. The last owner cannot, nor can the person a personal
/// workspace was made for.
pub async fn leave(pool: &PgPool, m: &Membership) -> Result<(), WorkspaceError> {
    let mut tx = pool.begin().await?;
    let m = actor_under_lock(&mut tx, m).await?;
    if m.workspace.personal_for == Some(m.user_id) {
        return Err(WorkspaceError::Personal);
    }
    keep_an_owner(&mut tx, &m).await?;
    repo::remove_member(&mut tx, m.workspace.id, m.user_id).await?;
    left(&mut tx, m.workspace.id, m.user_id).await?;
    tx.commit().await?;
    Ok(())
}

/// Tells every process (at commit) that `user` is out of `workspace`, so their open live
/// streams of it end; their next request finds no membership.
async fn left(conn: &mut sqlx::PgConnection, workspace: WorkspaceId, user: UserId) -> sqlx::Result<()> {
    crate::bus::publish(
        conn,
        &crate::bus::BusEvent::MemberLeft {
            workspace_id: workspace,
            user_id: user,
        },
    )
    .await
}

/// Renames the actor's workspace.
pub async fn rename(pool: &PgPool, actor: &Membership, name: &WorkspaceName) -> Result<(), WorkspaceError> {
    let mut tx = pool.begin().await?;
    let actor = actor_under_lock(&mut tx, actor).await?;
    authorize(&actor, Action::Rename)?;
    repo::rename(&mut tx, actor.workspace.id, name).await?;
    tx.commit().await?;
    Ok(())
}

/// The members of the actor's workspace (every member may see who else is in it).
pub async fn members(pool: &PgPool, actor: &Membership) -> Result<Vec<repo::Member>, WorkspaceError> {
    authorize(actor, Action::Read)?;
    Ok(repo::members(&mut *pool.acquire().await?, actor.workspace.id).await?)
}
