//! SQL for workspaces and their members.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use super::model::{Membership, Role, Workspace, WorkspaceId, WorkspaceName};
use crate::account::UserId;

struct MembershipRow {
    id: WorkspaceId,
    name: String,
    personal_for: Option<UserId>,
    created_at: DateTime<Utc>,
    user_id: UserId,
    role: String,
}

impl TryFrom<MembershipRow> for Membership {
    type Error = sqlx::Error;

    fn try_from(r: MembershipRow) -> sqlx::Result<Self> {
        let role = Role::parse(&r.role).map_err(|e| sqlx::Error::Decode(e.message.into()))?;
        Ok(Self {
            workspace: Workspace {
                id: r.id,
                name: r.name,
                personal_for: r.personal_for,
                created_at: r.created_at,
            },
            user_id: r.user_id,
            role,
        })
    }
}

/// Makes `user`'s personal workspace, with them as its owner. Called in the transaction
/// that creates the user.
pub async fn create_personal(
    conn: &mut PgConnection,
    user: UserId,
    name: &WorkspaceName,
) -> sqlx::Result<Workspace> {
    let id = WorkspaceId::new();
    let w = sqlx::query_as!(
        Workspace,
        r#"INSERT INTO workspaces (id, name, personal_user_id) VALUES ($1, $2, $3)
           RETURNING id AS "id: WorkspaceId", name, personal_user_id AS "personal_for: UserId", created_at"#,
        id as WorkspaceId,
        name.as_str(),
        user as UserId,
    )
    .fetch_one(&mut *conn)
    .await?;
    add_member(conn, w.id, user, Role::Owner).await?;
    Ok(w)
}

/// Makes a shared workspace with `owner` as its first owner.
pub async fn create_shared(
    conn: &mut PgConnection,
    owner: UserId,
    name: &WorkspaceName,
) -> sqlx::Result<Workspace> {
    let id = WorkspaceId::new();
    let w = sqlx::query_as!(
        Workspace,
        r#"INSERT INTO workspaces (id, name) VALUES ($1, $2)
           RETURNING id AS "id: WorkspaceId", name, personal_user_id AS "personal_for: UserId", created_at"#,
        id as WorkspaceId,
        name.as_str(),
    )
    .fetch_one(&mut *conn)
    .await?;
    add_member(conn, w.id, owner, Role::Owner).await?;
    Ok(w)
}

/// Adds `user` to the workspace, or changes their role if they are in it already.
pub async fn add_member(
    conn: &mut PgConnection,
    workspace: WorkspaceId,
    user: UserId,
    role: Role,
) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO workspace_members (workspace_id, user_id, role) VALUES ($1, $2, $3)
         ON CONFLICT (workspace_id, user_id) DO UPDATE SET role = EXCLUDED.role",
        workspace as WorkspaceId,
        user as UserId,
        role.as_str(),
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// `user`'s membership of `workspace`, if they are a member.
pub async fn membership(
    conn: &mut PgConnection,
    workspace: WorkspaceId,
    user: UserId,
) -> sqlx::Result<Option<Membership>> {
    sqlx::query_as!(
        MembershipRow,
        r#"SELECT w.id AS "id: WorkspaceId", w.name, w.personal_user_id AS "personal_for: UserId", w.created_at,
                  m.user_id AS "user_id: UserId", m.role
           FROM workspace_members m JOIN workspaces w ON w.id = m.workspace_id
           WHERE m.workspace_id = $1 AND m.user_id = $2"#,
        workspace as WorkspaceId,
        user as UserId,
    )
    .fetch_optional(conn)
    .await?
    .map(Membership::try_from)
    .transpose()
}

/// Every workspace `user` belongs to: their personal one first, then by name.
pub async fn memberships(conn: &mut PgConnection, user: UserId) -> sqlx::Result<Vec<Membership>> {
    sqlx::query_as!(
        MembershipRow,
        r#"SELECT w.id AS "id: WorkspaceId", w.name, w.personal_user_id AS "personal_for: UserId", w.created_at,
                  m.user_id AS "user_id: UserId", m.role
           FROM workspace_members m JOIN workspaces w ON w.id = m.workspace_id
           WHERE m.user_id = $1
           ORDER BY w.personal_user_id IS DISTINCT FROM $1, lower(w.name), w.id"#,
        user as UserId,
    )
    .fetch_all(conn)
    .await?
    .into_iter()
    .map(Membership::try_from)
    .collect()
}

/// `user`'s personal workspace.
pub async fn personal(conn: &mut PgConnection, user: UserId) -> sqlx::Result<Option<Workspace>> {
    sqlx::query_as!(
        Workspace,
        r#"SELECT id AS "id: WorkspaceId", name, personal_user_id AS "personal_for: UserId", created_at
           FROM workspaces WHERE personal_user_id = $1"#,
        user as UserId,
    )
    .fetch_optional(conn)
    .await
}

/// Locks the workspace row: changes to its members that must keep an owner take this
/// first, so two of them never both see the other owner still there, and so do additions
/// that must stay within a limit (devices, keys, contacts…), so two never both see room
/// for one. `NO KEY UPDATE`: the foreign-key checks of the workspace's own inserts (a
/// message, say) are not held up by it.
pub async fn lock(conn: &mut PgConnection, workspace: WorkspaceId) -> sqlx::Result<bool> {
    Ok(sqlx::query_scalar!(
        "SELECT 1 AS \"one!\" FROM workspaces WHERE id = $1 FOR NO KEY UPDATE",
        workspace as WorkspaceId
    )
    .fetch_optional(conn)
    .await?
    .is_some())
}

/// How many owners the workspace has.
pub async fn owners(conn: &mut PgConnection, workspace: WorkspaceId) -> sqlx::Result<i64> {
    sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM workspace_members WHERE workspace_id = $1 AND role = 'owner'"#,
        workspace as WorkspaceId,
    )
    .fetch_one(conn)
    .await
}

/// Sets a member's role; false when `user` is not a member.
pub async fn set_role(
    conn: &mut PgConnection,
    workspace: WorkspaceId,
    user: UserId,
    role: Role,
) -> sqlx::Result<bool> {
    Ok(sqlx::query!(
        "UPDATE workspace_members SET role = $3 WHERE workspace_id = $1 AND user_id = $2",
        workspace as WorkspaceId,
        user as UserId,
        role.as_str(),
    )
    .execute(conn)
    .await?
    .rows_affected()
        == 1)
}

/// Removes a member; false when `user` was not one.
pub async fn remove_member(
    conn: &mut PgConnection,
    workspace: WorkspaceId,
    user: UserId,
) -> sqlx::Result<bool> {
    Ok(sqlx::query!(
        "DELETE FROM workspace_members WHERE workspace_id = $1 AND user_id = $2",
        workspace as WorkspaceId,
        user as UserId,
    )
    .execute(conn)
    .await?
    .rows_affected()
        == 1)
}

/// How many workspaces `user` belongs to.
pub async fn count_for_user(conn: &mut PgConnection, user: UserId) -> sqlx::Result<i64> {
    sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM workspace_members WHERE user_id = $1"#,
        user as UserId,
    )
    .fetch_one(conn)
    .await
}

/// How many members the workspace has.
pub async fn count_members(conn: &mut PgConnection, workspace: WorkspaceId) -> sqlx::Result<i64> {
    sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM workspace_members WHERE workspace_id = $1"#,
        workspace as WorkspaceId,
    )
    .fetch_one(conn)
    .await
}

/// Renames the workspace.
pub async fn rename(
    conn: &mut PgConnection,
    workspace: WorkspaceId,
    name: &WorkspaceName,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE workspaces SET name = $2 WHERE id = $1",
        workspace as WorkspaceId,
        name.as_str()
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// A member as the members page lists them.
#[derive(Debug, Clone)]
pub struct Member {
    pub user_id: UserId,
    /// Their name, or their address when they gave none.
    pub name: String,
    pub email: String,
    pub role: Role,
    pub joined: DateTime<Utc>,
}

/// The workspace's members: owners first, then by name.
pub async fn members(conn: &mut PgConnection, workspace: WorkspaceId) -> sqlx::Result<Vec<Member>> {
    let rows = sqlx::query!(
        r#"SELECT m.user_id AS "user_id: UserId", u.email,
                  CASE WHEN btrim(u.full_name) = '' THEN u.email ELSE btrim(u.full_name) END AS "name!",
                  m.role, m.created_at
           FROM workspace_members m JOIN users u ON u.id = m.user_id
           WHERE m.workspace_id = $1
           ORDER BY array_position(ARRAY['owner', 'admin', 'member', 'viewer'], m.role), lower(u.full_name), u.email"#,
        workspace as WorkspaceId
    )
    .fetch_all(conn)
    .await?;
    rows.into_iter()
        .map(|r| {
            Ok(Member {
                user_id: r.user_id,
                name: r.name,
                email: r.email,
                role: Role::parse(&r.role).map_err(|e| sqlx::Error::Decode(e.message.into()))?,
                joined: r.created_at,
            })
        })
        .collect()
}
