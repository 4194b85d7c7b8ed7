//! Workspaces in the browser and on the API: switching, the role table on pages and on
//! session calls, a removed member's next click and open stream, and nothing of one
//! workspace reaching a page looking at another.

use std::time::Duration;

use ender_core::account::UserId;
use ender_core::bus::{self, BusEvent};
use ender_core::workspace::{self, Role, WorkspaceId, WorkspaceName};
use reqwest::StatusCode;

use crate::helpers::{TestApp, client, csrf_with, location, post_form_with, select_text};

const PW: &str = "correct horse battery";

async fn user_id(app: &TestApp, email: &str) -> UserId {
    UserId(
        sqlx::query_scalar("SELECT id FROM users WHERE email_normalized = $1")
            .bind(email)
            .fetch_one(app.pool())
            .await
            .unwrap(),
    )
}

/// A clinic: a shared workspace of `owner@clinic.example` with a device, and a signed-in
/// client for each of the given members (added in their roles), each switched to it.
struct Clinic {
    id: WorkspaceId,
    owner: UserId,
    members: Vec<(UserId, reqwest::Client)>,
}

async fn clinic(app: &TestApp, members: &[(&str, Role)]) -> Clinic {
    app.create_user("owner@clinic.example", PW).await;
    let owner = user_id(app, "owner@clinic.example").await;
    let w = workspace::create(app.pool(), owner, &WorkspaceName::parse("Clinic").unwrap(), 10)
        .await
        .unwrap();
    let input = ender_core::device::DeviceInput::parse("Reception Pixel", "android", "").unwrap();
    ender_core::device::create(app.pool(), w.id, &input, 10)
        .await
        .unwrap();
    Clinic {
        id: w.id,
        owner,
        members: clinic_team(app, w.id, members).await,
    }
}

async fn page(c: &reqwest::Client, app: &TestApp, path: &str) -> (StatusCode, String) {
    let res = c.get(app.url(path)).send().await.unwrap();
    (res.status(), res.text().await.unwrap())
}

async fn messages(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM messages")
        .fetch_one(app.pool())
        .await
        .unwrap()
}

#[tokio::test]
async fn a_member_switches_workspace_and_sees_only_that_workspaces_devices() {
    let app = TestApp::spawn().await;
    let clinic = clinic(&app, &[("rita@clinic.example", Role::Member)]).await;
    let c = &clinic.members[0].1;
    let (status, html) = page(c, &app, "/devices").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Reception Pixel"), "the clinic's device is listed");
    assert_eq!(
        select_text(&html, "#workspace-switcher summary .workspace-name"),
        ["Clinic"]
    );
    let names = select_text(&html, "#workspace-switcher form button");
    assert_eq!(names.len(), 2, "{names:?}");

    // Back to the personal workspace: the same address, without the clinic's device.
    let personal = workspace::current(app.pool(), clinic.members[0].0, None)
        .await
        .unwrap();
    let res = post_form_with(
        c,
        &app,
        "/",
        "/workspaces/switch",
        &[("workspace", &personal.workspace.id.to_string())],
    )
    .await;
    assert_eq!(location(&res), "/");
    let (_, html) = page(c, &app, "/devices").await;
    assert!(!html.contains("Reception Pixel"));

    // A workspace one is not a member of is not found, whether or not it exists.
    let theirs = workspace::current(app.pool(), clinic.owner, None).await.unwrap();
    for id in [
        theirs.workspace.id.to_string(),
        uuid::Uuid::now_v7().to_string(),
        "nonsense".to_owned(),
    ] {
        let res = post_form_with(c, &app, "/", "/workspaces/switch", &[("workspace", &id)]).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{id}");
    }
    let (_, html) = page(c, &app, "/devices").await;
    assert!(
        !html.contains("Reception Pixel"),
        "a refused switch changes nothing"
    );
}

#[tokio::test]
async fn a_viewer_reads_but_a_forged_post_is_refused_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let clinic = clinic(&app, &[("vic@clinic.example", Role::Viewer)]).await;
    let c = &clinic.members[0].1;
    for path in [
        "/",
        "/messages",
        "/devices",
        "/contacts",
        "/templates",
        "/scheduled",
        "/webhooks",
    ] {
        assert_eq!(page(c, &app, path).await.0, StatusCode::OK, "{path}");
    }
    let (_, html) = page(c, &app, "/devices").await;
    assert!(!html.contains("href=\"/send\""), "no Send entry for a viewer");
    assert!(
        !html.contains("id=\"device-form\""),
        "no device form for a viewer"
    );
    // The pages a viewer may not use, and forged posts.
    assert_eq!(page(c, &app, "/send").await.0, StatusCode::FORBIDDEN);
    assert_eq!(page(c, &app, "/api-keys").await.0, StatusCode::FORBIDDEN);
    let token = csrf_with(c, &app, "/").await;
    let forged: [(&str, Vec<(&str, &str)>); 4] = [
        ("/send", vec![("recipients", "+15550001111"), ("body", "hi")]),
        ("/devices", vec![("name", "Mine"), ("kind", "android")]),
        (
            "/contacts/new",
            vec![("name", "Ana"), ("phone_number", "+15550001111")],
        ),
        ("/templates/new", vec![("name", "T"), ("body", "hi")]),
    ];
    for (action, fields) in forged {
        let mut all = vec![("_csrf", token.as_str())];
        all.extend(fields);
        let res = c.post(app.url(action)).form(&all).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{action}");
        let html = res.text().await.unwrap();
        assert!(
            html.contains("Your role in this workspace does not allow you to"),
            "{action}: {html}"
        );
    }
    assert_eq!(messages(&app).await, 0);
    let devices: i64 = sqlx::query_scalar("SELECT count(*) FROM devices WHERE workspace_id = $1")
        .bind(clinic.id.0)
        .fetch_one(app.pool())
        .await
        .unwrap();
    assert_eq!(devices, 1);
    let others: i64 = sqlx::query_scalar("SELECT count(*) FROM contacts")
        .fetch_one(app.pool())
        .await
        .unwrap();
    assert_eq!(others, 0);

    // The API from the viewer's session: reads work, a send gets the envelope.
    let res = c.get(app.url("/api/devices")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let res = c
        .post(app.url("/api/sms/send"))
        .header("x-csrf-token", &token)
        .json(&serde_json::json!({"recipients": ["+15550001111"], "body": "hi"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["status"], 403);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("does not allow you to send SMS"),
        "{body}"
    );
    assert_eq!(messages(&app).await, 0);
}

#[tokio::test]
async fn a_member_sends_in_the_shared_workspace_and_the_owner_sees_it() {
    let app = TestApp::spawn().await;
    let clinic = clinic(&app, &[("rita@clinic.example", Role::Member)]).await;
    let c = &clinic.members[0].1;
    let res = post_form_with(
        c,
        &app,
        "/send",
        "/send",
        &[
            ("recipients", "+15550001111"),
            ("body", "Your appointment is at 10"),
        ],
    )
    .await;
    assert!(
        res.status().is_redirection() || res.status().is_success(),
        "{}",
        res.status()
    );
    let owner: Vec<uuid::Uuid> = sqlx::query_scalar("SELECT workspace_id FROM messages")
        .fetch_all(app.pool())
        .await
        .unwrap();
    assert_eq!(owner, vec![clinic.id.0], "the message belongs to the clinic");
    // Members may not manage devices.
    let token = csrf_with(c, &app, "/").await;
    let res = c
        .post(app.url("/devices"))
        .form(&[("_csrf", token.as_str()), ("name", "Mine"), ("kind", "android")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_removed_member_is_told_once_then_is_back_in_their_own_workspace() {
    let app = TestApp::spawn().await;
    let clinic = clinic(&app, &[("rita@clinic.example", Role::Member)]).await;
    let (rita, c) = &clinic.members[0];
    assert!(page(c, &app, "/devices").await.1.contains("Reception Pixel"));
    let owner = workspace::membership(app.pool(), clinic.id, clinic.owner)
        .await
        .unwrap();
    workspace::remove_member(app.pool(), &owner, *rita).await.unwrap();

    // An API call from the open page is told first, in the envelope…
    let res = c.get(app.url("/api/devices")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let body: serde_json::Value = res.json().await.unwrap();
    assert!(
        body["message"].as_str().unwrap().contains("no longer a member"),
        "{body}"
    );
    // …and the next click acts in the personal workspace.
    let res = c.get(app.url("/api/devices")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(!res.text().await.unwrap().contains("Reception Pixel"));
    // The same for a page.
    let mut conn = app.pool().acquire().await.unwrap();
    workspace::repo::add_member(&mut conn, clinic.id, *rita, Role::Member)
        .await
        .unwrap();
    post_form_with(
        c,
        &app,
        "/",
        "/workspaces/switch",
        &[("workspace", &clinic.id.to_string())],
    )
    .await;
    workspace::remove_member(app.pool(), &owner, *rita).await.unwrap();
    let (status, html) = page(c, &app, "/devices").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(html.contains("You no longer have access"), "{html}");
    let (status, html) = page(c, &app, "/devices").await;
    assert_eq!(status, StatusCode::OK);
    assert!(!html.contains("Reception Pixel"));

    // The API from that session acts in the personal workspace too; a forged switch back
    // is not found.
    let res = post_form_with(
        c,
        &app,
        "/",
        "/workspaces/switch",
        &[("workspace", &clinic.id.to_string())],
    )
    .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

/// Reads the stream until `event: name` arrives or `wait` passes; None when the stream ended.
async fn next_event(stream: &mut reqwest::Response, wait: Duration) -> Option<Option<String>> {
    match tokio::time::timeout(wait, stream.chunk()).await {
        Err(_) => Some(None),
        Ok(Ok(Some(bytes))) => Some(Some(String::from_utf8_lossy(&bytes).into_owned())),
        Ok(_) => None,
    }
}

#[tokio::test]
async fn live_updates_reach_only_pages_looking_at_the_workspace_and_end_for_a_removed_member() {
    let app = TestApp::spawn().await;
    let clinic = clinic(
        &app,
        &[
            ("rita@clinic.example", Role::Member),
            ("ben@clinic.example", Role::Member),
        ],
    )
    .await;
    let (rita, rita_c) = &clinic.members[0];
    let ben_c = &clinic.members[1].1;
    // Ben looks at his personal workspace again.
    let ben_personal = workspace::current(app.pool(), clinic.members[1].0, None)
        .await
        .unwrap();
    post_form_with(
        ben_c,
        &app,
        "/",
        "/workspaces/switch",
        &[("workspace", &ben_personal.workspace.id.to_string())],
    )
    .await;

    let mut rita_stream = rita_c.get(app.url("/events")).send().await.unwrap();
    let mut ben_stream = ben_c.get(app.url("/events")).send().await.unwrap();
    assert_eq!(rita_stream.status(), StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut conn = app.pool().acquire().await.unwrap();
    bus::publish(
        &mut conn,
        &BusEvent::Messages {
            workspace_id: clinic.id,
        },
    )
    .await
    .unwrap();

    let mut got = String::new();
    while !got.contains("event: messages") {
        match next_event(&mut rita_stream, Duration::from_secs(5)).await {
            Some(Some(chunk)) => got.push_str(&chunk),
            other => panic!("no messages event for the clinic's page: {other:?} after {got:?}"),
        }
    }
    match next_event(&mut ben_stream, Duration::from_millis(1500)).await {
        Some(None) => {}
        Some(Some(chunk)) => assert!(
            !chunk.contains("messages"),
            "the clinic's update reached another workspace's page: {chunk}"
        ),
        None => panic!("Ben's stream ended"),
    }

    let owner = workspace::membership(app.pool(), clinic.id, clinic.owner)
        .await
        .unwrap();
    workspace::remove_member(app.pool(), &owner, *rita).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        match next_event(&mut rita_stream, Duration::from_secs(5)).await {
            None => break,
            Some(_) if tokio::time::Instant::now() < deadline => {}
            Some(_) => panic!("the removed member's stream stayed open"),
        }
    }
}

/// The owner of a fresh clinic, signed in on the app's own client and switched to it.
async fn clinic_owner(app: &TestApp) -> WorkspaceId {
    let clinic = clinic(app, &[]).await;
    let res = app.login("owner@clinic.example", PW).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let res = app
        .post_form(
            "/",
            "/workspaces/switch",
            &[("workspace", &clinic.id.to_string())],
        )
        .await;
    assert_eq!(location(&res), "/");
    clinic.id
}

async fn members_of(app: &TestApp, workspace: WorkspaceId) -> Vec<(String, String)> {
    sqlx::query_as(
        "SELECT u.email, m.role FROM workspace_members m JOIN users u ON u.id = m.user_id
         WHERE m.workspace_id = $1 ORDER BY u.email",
    )
    .bind(workspace.0)
    .fetch_all(app.pool())
    .await
    .unwrap()
}

#[tokio::test]
async fn an_invitation_is_mailed_accepted_once_with_the_invited_account_and_shows_who_sent_it() {
    let app = TestApp::spawn().await;
    let clinic = clinic_owner(&app).await;
    app.create_user("rita@clinic.example", PW).await;
    app.create_user("mallory@example.org", PW).await;

    let res = app
        .post_form(
            "/workspace",
            "/workspace/invitations",
            &[("email", "Rita@Clinic.example"), ("role", "member")],
        )
        .await;
    assert_eq!(location(&res), "/workspace");
    let mails = app.wait_for_mails(1).await;
    assert!(
        mails[0].contains("Test Person invited you to Clinic"),
        "{}",
        mails[0]
    );
    let link = app.last_mail_link();
    assert!(link.starts_with("/join?token="), "{link}");
    let html = app.get("/workspace").await.text().await.unwrap();
    assert_eq!(
        select_text(&html, "#invitations tbody td:first-child"),
        ["Rita@Clinic.example"]
    );

    // Someone else signed in cannot use it.
    let mallory = client();
    post_form_with(
        &mallory,
        &app,
        "/login",
        "/login",
        &[("email", "mallory@example.org"), ("password", PW)],
    )
    .await;
    let (status, html) = page(&mallory, &app, &link).await;
    assert_eq!(status, StatusCode::OK);
    assert!(select_text(&html, "#wrong-account")[0].contains("was sent to Rita@Clinic.example"));
    let token = link.trim_start_matches("/join?token=");
    let res = post_form_with(&mallory, &app, "/", "/join", &[("token", token)]).await;
    assert!(res.status().is_redirection());
    assert_eq!(members_of(&app, clinic).await.len(), 1, "Mallory did not join");

    // Signed out, the page offers to sign in or to sign up, and says who invited whom.
    let (status, html) = page(&client(), &app, &link).await;
    assert_eq!(status, StatusCode::OK);
    let summary = select_text(&html, "#join-summary").join(" ");
    assert!(
        summary.contains("Test Person") && summary.contains("Clinic") && summary.contains("member"),
        "{summary}"
    );
    assert_eq!(select_text(&html, "#join-login").len(), 1);

    // Rita joins with her account.
    let rita = client();
    post_form_with(
        &rita,
        &app,
        "/login",
        "/login",
        &[("email", "rita@clinic.example"), ("password", PW)],
    )
    .await;
    let (_, html) = page(&rita, &app, &link).await;
    assert_eq!(select_text(&html, "#join-form button").len(), 1);
    let res = post_form_with(&rita, &app, "/", "/join", &[("token", token)]).await;
    assert_eq!(location(&res), "/");
    assert!(
        page(&rita, &app, "/devices").await.1.contains("Reception Pixel"),
        "Rita is in the clinic now"
    );
    assert_eq!(
        members_of(&app, clinic).await,
        [
            ("owner@clinic.example".to_owned(), "owner".to_owned()),
            ("rita@clinic.example".to_owned(), "member".to_owned())
        ]
    );

    // Twice: the link is spent.
    let res = post_form_with(&rita, &app, "/", "/join", &[("token", token)]).await;
    assert!(res.status().is_redirection());
    let (status, html) = page(&rita, &app, &link).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(select_text(&html, "#join-refused")[0].contains("already been used"));
    // And a forged token.
    let (status, _) = page(&rita, &app, "/join?token=forged").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_withdrawn_invitation_stops_working_and_another_workspaces_is_not_found() {
    let app = TestApp::spawn().await;
    let _clinic = clinic_owner(&app).await;
    app.post_form(
        "/workspace",
        "/workspace/invitations",
        &[("email", "ben@example.org"), ("role", "viewer")],
    )
    .await;
    app.wait_for_mails(1).await;
    let link = app.last_mail_link();
    let html = app.get("/workspace").await.text().await.unwrap();
    let id = crate::helpers::select_attr(&html, "#invitations tbody tr", "data-invitation").unwrap();

    // Another workspace's owner cannot withdraw it.
    let other = client();
    app.create_user("other@example.org", PW).await;
    post_form_with(
        &other,
        &app,
        "/login",
        "/login",
        &[("email", "other@example.org"), ("password", PW)],
    )
    .await;
    let res = post_form_with(
        &other,
        &app,
        "/",
        &format!("/workspace/invitations/{id}/revoke"),
        &[],
    )
    .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        page(&client(), &app, &link).await.0,
        StatusCode::OK,
        "still valid"
    );

    let res = app
        .post_form("/workspace", &format!("/workspace/invitations/{id}/revoke"), &[])
        .await;
    assert_eq!(location(&res), "/workspace");
    let (status, html) = page(&client(), &app, &link).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(select_text(&html, "#join-refused")[0].contains("not valid"));
}

#[tokio::test]
async fn signing_up_through_an_invitation_joins_the_workspace_even_when_sign_up_is_by_invitation() {
    let app = TestApp::spawn_with(crate::helpers::Options {
        extra_args: vec!["--signup".to_owned(), "invite".to_owned()],
        ..Default::default()
    })
    .await;
    let clinic = clinic_owner(&app).await;
    app.post_form(
        "/workspace",
        "/workspace/invitations",
        &[("email", "new@example.org"), ("role", "admin")],
    )
    .await;
    app.wait_for_mails(1).await;
    let link = app.last_mail_link();
    let newcomer = client();
    let (_, html) = page(&newcomer, &app, &link).await;
    let signup = crate::helpers::select_attr(&html, "#join-signup", "href").unwrap();
    let res = post_form_with(
        &newcomer,
        &app,
        &signup,
        "/signup",
        &[
            ("invite", signup.trim_start_matches("/signup?invite=")),
            ("full_name", "Nora New"),
            ("email", "new@example.org"),
            ("password", PW),
        ],
    )
    .await;
    assert_eq!(location(&res), "/", "{}", res.text().await.unwrap());
    assert!(
        members_of(&app, clinic)
            .await
            .contains(&("new@example.org".to_owned(), "admin".to_owned()))
    );
    let (_, html) = page(&newcomer, &app, "/devices").await;
    assert!(
        html.contains("Reception Pixel"),
        "the new account starts in the workspace it was invited to"
    );
}

#[tokio::test]
async fn invitations_are_checked_for_role_input_membership_and_the_member_cap() {
    let sms = ender_core::config::SmsConfig {
        limits: ender_core::config::TenantLimits {
            max_members_per_workspace: 2,
            ..Default::default()
        },
        ..Default::default()
    };
    let app = TestApp::spawn_with(crate::helpers::Options {
        sms: Some(sms),
        ..Default::default()
    })
    .await;
    let clinic = clinic_owner(&app).await;
    for (fields, field, text) in [
        (vec![("email", "not-an-address"), ("role", "member")], "email", ""),
        (
            vec![("email", "a@example.org"), ("role", "superuser")],
            "role",
            "Choose owner, admin, member or viewer.",
        ),
        (
            vec![("email", "owner@clinic.example"), ("role", "member")],
            "email",
            "already a member",
        ),
    ] {
        let res = app
            .post_form("/workspace", "/workspace/invitations", &fields)
            .await;
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY, "{fields:?}");
        let html = res.text().await.unwrap();
        let error = select_text(&html, &format!(".field-error[data-field={field}]")).join(" ");
        assert!(!error.is_empty() && error.contains(text), "{fields:?}: {error}");
    }
    let res = app
        .post_form(
            "/workspace",
            "/workspace/invitations",
            &[("email", "one@example.org"), ("role", "member")],
        )
        .await;
    assert_eq!(location(&res), "/workspace");
    // The owner and one waiting invitation fill a cap of two.
    let res = app
        .post_form(
            "/workspace",
            "/workspace/invitations",
            &[("email", "two@example.org"), ("role", "member")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("ENDER_MAX_MEMBERS_PER_WORKSPACE")
    );
    let waiting: i64 =
        sqlx::query_scalar("SELECT count(*) FROM invitations WHERE workspace_id = $1 AND revoked_at IS NULL")
            .bind(clinic.0)
            .fetch_one(app.pool())
            .await
            .unwrap();
    assert_eq!(waiting, 1);

    // Members and viewers may not invite; admins may not make owners.
    let team = clinic_team(
        &app,
        clinic,
        &[
            ("mem@example.org", Role::Member),
            ("adm@example.org", Role::Admin),
        ],
    )
    .await;
    let res = post_form_with(
        &team[0].1,
        &app,
        "/",
        "/workspace/invitations",
        &[("email", "x@example.org"), ("role", "viewer")],
    )
    .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let res = post_form_with(
        &team[1].1,
        &app,
        "/",
        "/workspace/invitations",
        &[("email", "x@example.org"), ("role", "owner")],
    )
    .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
}

/// New members of `workspace` in their roles, each with a signed-in client switched to it.
async fn clinic_team(
    app: &TestApp,
    workspace: WorkspaceId,
    members: &[(&str, Role)],
) -> Vec<(UserId, reqwest::Client)> {
    let mut out = Vec::new();
    for (email, role) in members {
        app.create_user(email, PW).await;
        let id = user_id(app, email).await;
        let mut conn = app.pool().acquire().await.unwrap();
        workspace::repo::add_member(&mut conn, workspace, id, *role)
            .await
            .unwrap();
        let c = client();
        let res = post_form_with(&c, app, "/login", "/login", &[("email", email), ("password", PW)]).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        let res = post_form_with(
            &c,
            app,
            "/",
            "/workspaces/switch",
            &[("workspace", &workspace.to_string())],
        )
        .await;
        assert_eq!(location(&res), "/");
        out.push((id, c));
    }
    out
}

#[tokio::test]
async fn the_members_page_changes_roles_removes_members_and_keeps_an_owner() {
    let app = TestApp::spawn().await;
    let clinic = clinic_owner(&app).await;
    let team = clinic_team(&app, clinic, &[("mem@example.org", Role::Member)]).await;
    let mem = user_id(&app, "mem@example.org").await;
    let owner = user_id(&app, "owner@clinic.example").await;

    let html = app.get("/workspace").await.text().await.unwrap();
    assert_eq!(select_text(&html, "#members tbody tr").len(), 2);
    let res = app
        .post_form(
            "/workspace",
            &format!("/workspace/members/{mem}/role"),
            &[("role", "viewer")],
        )
        .await;
    assert_eq!(location(&res), "/workspace");
    assert_eq!(
        page(&team[0].1, &app, "/send").await.0,
        StatusCode::FORBIDDEN,
        "a viewer from the next click"
    );
    // A member cannot change roles; the last owner cannot step down or leave.
    let res = post_form_with(
        &team[0].1,
        &app,
        "/",
        &format!("/workspace/members/{owner}/role"),
        &[("role", "viewer")],
    )
    .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let res = app
        .post_form(
            "/workspace",
            &format!("/workspace/members/{owner}/role"),
            &[("role", "admin")],
        )
        .await;
    assert_eq!(location(&res), "/workspace");
    let res = app.post_form("/workspace", "/workspace/leave", &[]).await;
    assert_eq!(location(&res), "/workspace");
    let html = app.get("/workspace").await.text().await.unwrap();
    assert!(html.contains("at least one owner"), "the refusal is shown");
    assert_eq!(
        members_of(&app, clinic).await[0],
        ("mem@example.org".to_owned(), "viewer".to_owned())
    );

    // Removing: the member's next click says so.
    let res = app
        .post_form("/workspace", &format!("/workspace/members/{mem}/remove"), &[])
        .await;
    assert_eq!(location(&res), "/workspace");
    assert_eq!(page(&team[0].1, &app, "/devices").await.0, StatusCode::FORBIDDEN);
    assert_eq!(members_of(&app, clinic).await.len(), 1);
    // Unknown and malformed member ids.
    for id in [uuid::Uuid::now_v7().to_string(), "x".to_owned()] {
        let res = app
            .post_form("/workspace", &format!("/workspace/members/{id}/remove"), &[])
            .await;
        assert!(
            res.status() == StatusCode::NOT_FOUND || location(&res) == "/workspace",
            "{id}"
        );
    }
}

#[tokio::test]
async fn a_new_workspace_is_made_owned_and_switched_to() {
    let app = TestApp::spawn().await;
    app.signed_in_user("solo@example.org", PW).await;
    let res = app
        .post_form("/workspace", "/workspaces", &[("name", "  ")])
        .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let res = app
        .post_form("/workspace", "/workspaces", &[("name", "School office")])
        .await;
    assert_eq!(location(&res), "/workspace");
    let html = app.get("/workspace").await.text().await.unwrap();
    assert_eq!(select_text(&html, ".page-header h1"), ["School office"]);
    assert_eq!(select_text(&html, "#my-role"), ["Your role: owner"]);
    assert_eq!(
        select_text(&html, "#leave-form button").len(),
        1,
        "a shared workspace can be left"
    );
}

#[tokio::test]
async fn the_audit_trail_records_who_did_what_for_owners_and_admins_only() {
    let app = TestApp::spawn().await;
    let clinic = clinic_owner(&app).await;
    let team = clinic_team(&app, clinic, &[("mem@example.org", Role::Member)]).await;
    let mem = user_id(&app, "mem@example.org").await;
    // A key made on the page, a member's role changed, an invitation.
    let res = app
        .post_form(
            "/api-keys",
            "/api-keys",
            &[("name", "CRM"), ("scopes", "send"), ("scopes", "read")],
        )
        .await;
    assert!(
        res.status().is_success() || res.status().is_redirection(),
        "{}",
        res.status()
    );
    app.post_form(
        "/workspace",
        &format!("/workspace/members/{mem}/role"),
        &[("role", "viewer")],
    )
    .await;
    app.post_form(
        "/workspace",
        "/workspace/invitations",
        &[("email", "new@example.org"), ("role", "member")],
    )
    .await;

    let html = app.get("/workspace/audit").await.text().await.unwrap();
    let actions = select_text(&html, "#audit tbody td code");
    assert_eq!(
        actions,
        ["member.invited", "member.role_changed", "api_key.created"],
        "{html}"
    );
    let rows = select_text(&html, "#audit tbody tr");
    assert!(
        rows[1].contains("mem@example.org") && rows[1].contains("viewer"),
        "{rows:?}"
    );

    // The API, from the owner's session; a viewer gets 403 on the page and the API.
    let res = app
        .client
        .get(app.url("/api/audit?per_page=2"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["total_items"], 3, "{body}");
    assert_eq!(body["items"].as_array().unwrap().len(), 2);
    assert_eq!(body["items"][0]["action"], "member.invited");
    assert_eq!(
        page(&team[0].1, &app, "/workspace/audit").await.0,
        StatusCode::FORBIDDEN
    );
    let res = team[0].1.get(app.url("/api/audit")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    // Another workspace's owner sees only their own (empty) trail.
    let other = client();
    app.create_user("other@example.org", PW).await;
    post_form_with(
        &other,
        &app,
        "/login",
        "/login",
        &[("email", "other@example.org"), ("password", PW)],
    )
    .await;
    let body: serde_json::Value = other
        .get(app.url("/api/audit"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["total_items"], 0);
    // A malformed cursor is a clear 400.
    assert_eq!(
        app.get("/workspace/audit?before=abc").await.status(),
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn deleting_a_workspace_cancels_its_queue_fires_its_webhooks_and_shuts_everyone_out() {
    let app = TestApp::spawn().await;
    let clinic = clinic_owner(&app).await;
    let team = clinic_team(&app, clinic, &[("rita@clinic.example", Role::Admin)]).await;
    // A phone, a webhook, an API key and two queued messages.
    let input = ender_core::device::DeviceInput::parse("Back office", "android", "").unwrap();
    let phone = ender_core::device::create(app.pool(), clinic, &input, 10)
        .await
        .unwrap();
    let allowed: Vec<ipnet::IpNet> = vec!["127.0.0.0/8".parse().unwrap()];
    let hook = ender_core::webhook::endpoint::EndpointInput::parse(
        "http://127.0.0.1:9/hook",
        &["sms_failed".to_owned()],
        "",
        None,
        false,
        &allowed,
    )
    .unwrap();
    ender_core::webhook::endpoint::create(app.pool(), &app.keyring, clinic, &hook, 10)
        .await
        .unwrap();
    let key = ender_core::apikey::create(
        app.pool(),
        clinic,
        None,
        "CRM",
        ender_core::apikey::Scopes::all(),
        None,
        10,
    )
    .await
    .unwrap();
    let req: ender_core::sms::send::SendRequest = serde_json::from_value(
        serde_json::json!({"recipients": ["+15550001111", "+15550002222"], "body": "Reminder"}),
    )
    .unwrap();
    ender_core::sms::send::send(
        app.pool(),
        &ender_core::config::SmsConfig::default(),
        clinic,
        &req,
        None,
    )
    .await
    .unwrap();

    // An admin may not; the owner must type the name.
    let res = post_form_with(
        &team[0].1,
        &app,
        "/",
        "/workspace/delete",
        &[("confirm", "Clinic")],
    )
    .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let res = app
        .post_form("/workspace", "/workspace/delete", &[("confirm", "clinic?")])
        .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let res = app
        .post_form("/workspace", "/workspace/delete", &[("confirm", "Clinic")])
        .await;
    assert_eq!(location(&res), "/");

    let statuses: Vec<(String, Option<String>)> =
        sqlx::query_as("SELECT status, error_message FROM messages WHERE workspace_id = $1")
            .bind(clinic.0)
            .fetch_all(app.pool())
            .await
            .unwrap();
    assert_eq!(statuses.len(), 2);
    assert!(
        statuses
            .iter()
            .all(|(s, e)| s == "canceled" && e.as_deref() == Some("The workspace was deleted."))
    );
    let fired: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM webhook_deliveries WHERE workspace_id = $1 AND event = 'sms_failed' AND status = 'pending'",
    )
    .bind(clinic.0)
    .fetch_one(app.pool())
    .await
    .unwrap();
    assert_eq!(fired, 2, "one sms_failed per cancelled message");
    // Nothing acts for it any more: members, the phone, the key.
    let (status, html) = page(&team[0].1, &app, "/devices").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(html.contains("You no longer have access"));
    let res = client()
        .get(app.url("/api/sms/pending"))
        .header("x-api-key", &phone.secret)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let res = client()
        .get(app.url("/api/sms/messages"))
        .header("x-api-key", &key.secret)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        page(&app.client, &app, "/devices").await.0,
        StatusCode::OK,
        "the owner is back home"
    );

    // The purge keeps it while its last webhooks wait, and removes it after.
    let mut conn = app.pool().acquire().await.unwrap();
    ender_core::maintenance::purge_expired(&mut conn, 30, 0)
        .await
        .unwrap();
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM workspaces WHERE id = $1")
        .bind(clinic.0)
        .fetch_one(app.pool())
        .await
        .unwrap();
    assert_eq!(left, 1);
    sqlx::query("UPDATE webhook_deliveries SET status = 'succeeded' WHERE workspace_id = $1")
        .bind(clinic.0)
        .execute(app.pool())
        .await
        .unwrap();
    let report = ender_core::maintenance::purge_expired(&mut conn, 30, 0)
        .await
        .unwrap();
    assert_eq!(report.workspaces, 1);
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM messages WHERE workspace_id = $1")
        .bind(clinic.0)
        .fetch_one(app.pool())
        .await
        .unwrap();
    assert_eq!(left, 0);

    // A personal workspace is not deleted this way.
    let res = app
        .post_form(
            "/workspace",
            "/workspace/delete",
            &[("confirm", "Test Person's workspace")],
        )
        .await;
    assert_eq!(location(&res), "/workspace");
}

#[tokio::test]
async fn the_only_owner_of_a_shared_workspace_with_members_cannot_delete_their_account() {
    let app = TestApp::spawn().await;
    let clinic = clinic_owner(&app).await;
    clinic_team(&app, clinic, &[("rita@clinic.example", Role::Member)]).await;
    let res = app
        .post_form("/settings", "/settings/delete", &[("password", PW)])
        .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = res.text().await.unwrap();
    assert!(html.contains("You are the only owner of Clinic"), "{html}");
    assert_eq!(members_of(&app, clinic).await.len(), 2, "nothing changed");
    // With another owner, the account goes and the workspace stays with them.
    let rita = user_id(&app, "rita@clinic.example").await;
    let owner = workspace::membership(app.pool(), clinic, user_id(&app, "owner@clinic.example").await)
        .await
        .unwrap();
    workspace::change_role(app.pool(), &owner, rita, Role::Owner)
        .await
        .unwrap();
    let res = app
        .post_form("/settings", "/settings/delete", &[("password", PW)])
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        members_of(&app, clinic).await,
        [("rita@clinic.example".to_owned(), "owner".to_owned())]
    );
}
