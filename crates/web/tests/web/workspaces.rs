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
    let mut out = Vec::new();
    for (email, role) in members {
        app.create_user(email, PW).await;
        let id = user_id(app, email).await;
        let mut conn = app.pool().acquire().await.unwrap();
        workspace::repo::add_member(&mut conn, w.id, id, *role)
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
            &[("workspace", &w.id.to_string())],
        )
        .await;
        assert_eq!(location(&res), "/");
        out.push((id, c));
    }
    Clinic {
        id: w.id,
        owner,
        members: out,
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
