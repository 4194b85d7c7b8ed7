//! Workspaces: a personal one for every account (made at sign-up, or by the migration for
//! accounts from before), shared ones with members and roles, and at least one owner kept
//! whatever races.

use ender_core::account::UserId;
use ender_core::db::MIGRATOR;
use ender_core::testing::{TestDb, create_user, test_db};
use ender_core::workspace::{
    self, Action, Membership, Role, WorkspaceError, WorkspaceId, WorkspaceName, repo,
};

async fn membership(db: &TestDb, workspace: WorkspaceId, user: UserId) -> Membership {
    workspace::membership(&db.pool, workspace, user).await.unwrap()
}

async fn personal(db: &TestDb, user: UserId) -> WorkspaceId {
    let mut conn = db.pool.acquire().await.unwrap();
    repo::personal(&mut conn, user).await.unwrap().unwrap().id
}

/// A shared workspace owned by a new user, with the given others added in their roles.
async fn team(db: &TestDb, members: &[(&str, Role)]) -> (WorkspaceId, UserId, Vec<UserId>) {
    let owner = create_user(&db.pool, "owner@clinic.example").await;
    let w = workspace::create(&db.pool, owner, &WorkspaceName::parse("Clinic").unwrap(), 10)
        .await
        .unwrap();
    let mut ids = Vec::new();
    for (email, role) in members {
        let user = create_user(&db.pool, email).await;
        let mut conn = db.pool.acquire().await.unwrap();
        repo::add_member(&mut conn, w.id, user, *role).await.unwrap();
        ids.push(user);
    }
    (w.id, owner, ids)
}

#[tokio::test]
async fn sign_up_makes_a_personal_workspace_owned_by_the_new_account() {
    let db = test_db().await;
    let user = create_user(&db.pool, "ana@example.org").await;
    let mut conn = db.pool.acquire().await.unwrap();
    let all = repo::memberships(&mut conn, user).await.unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].role, Role::Owner);
    assert_eq!(all[0].workspace.personal_for, Some(user));
    assert_eq!(all[0].workspace.name, "ana@example.org's workspace");
    assert_ne!(
        all[0].workspace.id.0, user.0,
        "a new account's workspace has its own id"
    );
}

#[tokio::test]
async fn the_migration_gives_each_existing_account_a_personal_workspace_with_its_own_id() {
    let db = test_db().await;
    MIGRATOR.undo(&db.pool, 20261207000100).await.unwrap();
    let (a, b) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
    sqlx::query(
        "INSERT INTO users (id, email, email_normalized, full_name) VALUES
            ($1, 'Old@Example.org', 'old@example.org', ''), ($2, 'b@example.org', 'b@example.org', ' Bea ')",
    )
    .bind(a)
    .bind(b)
    .execute(&db.pool)
    .await
    .unwrap();
    MIGRATOR.run(&db.pool).await.unwrap();
    for (id, name) in [(a, "Old@Example.org's workspace"), (b, "Bea's workspace")] {
        let m = membership(&db, WorkspaceId(id), UserId(id)).await;
        assert_eq!(m.role, Role::Owner);
        assert_eq!(m.workspace.personal_for, Some(UserId(id)));
        assert_eq!(m.workspace.name, name);
    }
    let counts: (i64, i64) =
        sqlx::query_as("SELECT (SELECT count(*) FROM workspaces), (SELECT count(*) FROM workspace_members)")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(counts, (2, 2));
    // And back down and up again.
    MIGRATOR.undo(&db.pool, 20261207000100).await.unwrap();
    MIGRATOR.run(&db.pool).await.unwrap();
    assert_eq!(membership(&db, WorkspaceId(a), UserId(a)).await.role, Role::Owner);
}

#[tokio::test]
async fn a_stranger_is_not_told_whether_a_workspace_exists() {
    let db = test_db().await;
    let (w, _, _) = team(&db, &[]).await;
    let stranger = create_user(&db.pool, "stranger@example.org").await;
    for id in [w, WorkspaceId::new()] {
        let err = workspace::membership(&db.pool, id, stranger).await.unwrap_err();
        assert!(matches!(err, WorkspaceError::NotFound), "{err:?}");
    }
}

#[tokio::test]
async fn roles_are_checked_for_every_member_change() {
    let db = test_db().await;
    let (w, owner, ids) = team(
        &db,
        &[
            ("admin@clinic.example", Role::Admin),
            ("desk@clinic.example", Role::Member),
            ("auditor@clinic.example", Role::Viewer),
        ],
    )
    .await;
    let (admin, desk, auditor) = (ids[0], ids[1], ids[2]);
    let as_admin = membership(&db, w, admin).await;
    let as_desk = membership(&db, w, desk).await;

    // A member cannot change anyone's role, nor remove anyone.
    let err = workspace::change_role(&db.pool, &as_desk, auditor, Role::Member)
        .await
        .unwrap_err();
    assert!(
        matches!(err, WorkspaceError::Forbidden(Action::ManageMembers)),
        "{err:?}"
    );
    let err = workspace::remove_member(&db.pool, &as_desk, auditor)
        .await
        .unwrap_err();
    assert!(
        matches!(err, WorkspaceError::Forbidden(Action::ManageMembers)),
        "{err:?}"
    );

    // An admin manages members below owner, but cannot make or unmake owners.
    workspace::change_role(&db.pool, &as_admin, auditor, Role::Member)
        .await
        .unwrap();
    assert_eq!(membership(&db, w, auditor).await.role, Role::Member);
    let err = workspace::change_role(&db.pool, &as_admin, desk, Role::Owner)
        .await
        .unwrap_err();
    assert!(
        matches!(err, WorkspaceError::Forbidden(Action::ManageOwners)),
        "{err:?}"
    );
    let err = workspace::remove_member(&db.pool, &as_admin, owner)
        .await
        .unwrap_err();
    assert!(
        matches!(err, WorkspaceError::Forbidden(Action::ManageOwners)),
        "{err:?}"
    );
    workspace::remove_member(&db.pool, &as_admin, auditor)
        .await
        .unwrap();
    assert!(matches!(
        workspace::membership(&db.pool, w, auditor).await,
        Err(WorkspaceError::NotFound)
    ));
    let err = workspace::remove_member(&db.pool, &as_admin, auditor)
        .await
        .unwrap_err();
    assert!(matches!(err, WorkspaceError::NoSuchMember), "{err:?}");

    // The owner makes another owner; the first owner may then step down.
    let as_owner = membership(&db, w, owner).await;
    workspace::change_role(&db.pool, &as_owner, admin, Role::Owner)
        .await
        .unwrap();
    workspace::change_role(&db.pool, &as_owner, owner, Role::Member)
        .await
        .unwrap();
    // Their old membership no longer carries the owner's rights: the role is read again.
    let err = workspace::change_role(&db.pool, &as_owner, desk, Role::Admin)
        .await
        .unwrap_err();
    assert!(
        matches!(err, WorkspaceError::Forbidden(Action::ManageMembers)),
        "{err:?}"
    );
}

#[tokio::test]
async fn the_last_owner_can_neither_step_down_nor_leave() {
    let db = test_db().await;
    let (w, owner, ids) = team(&db, &[("desk@clinic.example", Role::Member)]).await;
    let as_owner = membership(&db, w, owner).await;
    let err = workspace::change_role(&db.pool, &as_owner, owner, Role::Admin)
        .await
        .unwrap_err();
    assert!(matches!(err, WorkspaceError::LastOwner), "{err:?}");
    let err = workspace::leave(&db.pool, &as_owner).await.unwrap_err();
    assert!(matches!(err, WorkspaceError::LastOwner), "{err:?}");
    let err = workspace::remove_member(&db.pool, &as_owner, owner)
        .await
        .unwrap_err();
    assert!(matches!(err, WorkspaceError::LastOwner), "{err:?}");
    // Anyone else may leave.
    workspace::leave(&db.pool, &membership(&db, w, ids[0]).await)
        .await
        .unwrap();
    let mut conn = db.pool.acquire().await.unwrap();
    assert_eq!(repo::count_members(&mut conn, w).await.unwrap(), 1);
}

#[tokio::test]
async fn a_personal_workspace_keeps_the_person_it_was_made_for() {
    let db = test_db().await;
    let ana = create_user(&db.pool, "ana@example.org").await;
    let w = personal(&db, ana).await;
    let bob = create_user(&db.pool, "bob@example.org").await;
    let mut conn = db.pool.acquire().await.unwrap();
    repo::add_member(&mut conn, w, bob, Role::Owner).await.unwrap();
    let as_bob = membership(&db, w, bob).await;
    let err = workspace::remove_member(&db.pool, &as_bob, ana)
        .await
        .unwrap_err();
    assert!(matches!(err, WorkspaceError::Personal), "{err:?}");
    let err = workspace::leave(&db.pool, &membership(&db, w, ana).await)
        .await
        .unwrap_err();
    assert!(matches!(err, WorkspaceError::Personal), "{err:?}");
    // Bob is a guest there and may go.
    workspace::leave(&db.pool, &as_bob).await.unwrap();
}

#[tokio::test]
async fn two_owners_demoting_each_other_at_once_leave_one_owner() {
    for _ in 0..5 {
        let db = test_db().await;
        let (w, first, ids) = team(&db, &[("second@clinic.example", Role::Owner)]).await;
        let second = ids[0];
        let (a, b) = (membership(&db, w, first).await, membership(&db, w, second).await);
        let (r1, r2) = tokio::join!(
            workspace::change_role(&db.pool, &a, second, Role::Admin),
            workspace::change_role(&db.pool, &b, first, Role::Admin),
        );
        assert!(
            r1.is_ok() != r2.is_ok(),
            "exactly one demotion wins: {r1:?} {r2:?}"
        );
        let mut conn = db.pool.acquire().await.unwrap();
        assert_eq!(repo::owners(&mut conn, w).await.unwrap(), 1);
    }
}

#[tokio::test]
async fn owners_leaving_at_once_leave_one_owner() {
    let db = test_db().await;
    let (w, first, ids) = team(
        &db,
        &[
            ("second@clinic.example", Role::Owner),
            ("third@clinic.example", Role::Owner),
        ],
    )
    .await;
    let (a, b, c) = (
        membership(&db, w, first).await,
        membership(&db, w, ids[0]).await,
        membership(&db, w, ids[1]).await,
    );
    let results = tokio::join!(
        workspace::leave(&db.pool, &a),
        workspace::leave(&db.pool, &b),
        workspace::leave(&db.pool, &c),
    );
    let left = [results.0.is_ok(), results.1.is_ok(), results.2.is_ok()];
    assert_eq!(left.iter().filter(|ok| **ok).count(), 2, "{results:?}");
    let mut conn = db.pool.acquire().await.unwrap();
    assert_eq!(repo::owners(&mut conn, w).await.unwrap(), 1);
}

#[tokio::test]
async fn an_account_belongs_to_a_bounded_number_of_workspaces() {
    let db = test_db().await;
    let user = create_user(&db.pool, "busy@example.org").await;
    let name = WorkspaceName::parse("Side project").unwrap();
    // The personal workspace counts: with a limit of 3, two more.
    for _ in 0..2 {
        workspace::create(&db.pool, user, &name, 3).await.unwrap();
    }
    let err = workspace::create(&db.pool, user, &name, 3).await.unwrap_err();
    assert!(
        matches!(err, WorkspaceError::TooManyWorkspaces { limit: 3 }),
        "{err:?}"
    );
    assert!(err.to_string().contains("ENDER_MAX_WORKSPACES_PER_USER"));
}

#[tokio::test]
async fn renaming_needs_an_admin_and_a_valid_name() {
    let db = test_db().await;
    let (w, owner, ids) = team(&db, &[("desk@clinic.example", Role::Member)]).await;
    let err = workspace::rename(
        &db.pool,
        &membership(&db, w, ids[0]).await,
        &WorkspaceName::parse("X").unwrap(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, WorkspaceError::Forbidden(Action::Rename)),
        "{err:?}"
    );
    workspace::rename(
        &db.pool,
        &membership(&db, w, owner).await,
        &WorkspaceName::parse(" Riverside Clinic ").unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(membership(&db, w, owner).await.workspace.name, "Riverside Clinic");
}

#[tokio::test]
async fn the_audit_trail_is_append_only_readable_by_admins_and_goes_with_its_workspace() {
    use ender_core::workspace::audit::{self, Actor, kind};
    let db = test_db().await;
    let (w, owner, others) = team(&db, &[("viewer@clinic.example", Role::Viewer)]).await;
    audit::record(
        &db.pool,
        w,
        Actor::User(owner),
        kind::DEVICE_ADDED,
        "Front desk",
        serde_json::json!({}),
    )
    .await
    .unwrap();
    let reader = membership(&db, w, owner).await;
    let (entries, more) = audit::page(&db.pool, &reader, None, 10).await.unwrap();
    assert!(!more);
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].actor, "owner@clinic.example", "named as they were");
    assert_eq!(
        (entries[0].action.as_str(), entries[0].subject.as_str()),
        (kind::DEVICE_ADDED, "Front desk")
    );
    let viewer = membership(&db, w, others[0]).await;
    assert!(matches!(
        audit::page(&db.pool, &viewer, None, 10).await,
        Err(WorkspaceError::Forbidden(Action::ReadAudit))
    ));

    for sql in [
        "UPDATE audit_events SET subject = 'nothing'",
        "DELETE FROM audit_events",
    ] {
        let e = sqlx::query(sql).execute(&db.pool).await.unwrap_err();
        assert!(e.to_string().contains("append-only"), "{sql}: {e}");
    }
    // Deleting the account keeps the entry as it was.
    sqlx::query("DELETE FROM users WHERE id = $1")
        .bind(others[0].0)
        .execute(&db.pool)
        .await
        .unwrap();
    assert_eq!(audit::page(&db.pool, &reader, None, 10).await.unwrap().0.len(), 1);
    // Deleting the workspace takes its trail.
    sqlx::query("DELETE FROM workspaces WHERE id = $1")
        .bind(w.0)
        .execute(&db.pool)
        .await
        .unwrap();
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_events")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(left, 0);
}
