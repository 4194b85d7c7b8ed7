//! The address book pages: contacts (form errors kept, search, group filter, paging, bulk
//! actions), groups, CSV and vCard import through upload, preview, start and the polled
//! progress (error report, duplicates, size and binary refusals, 100,000 rows), export;
//! sign-in, CSRF and other users' ids.

use std::time::Duration;

use ender_core::contact::{ContactInput, GroupId, repo};
use ender_core::workspace::WorkspaceId;
use reqwest::{Response, StatusCode};

use crate::helpers::*;

const PW: &str = "correct horse battery";
const BOUNDARY: &str = "----ender-test-boundary-7f3a";

async fn workspace_of(app: &TestApp, email: &str) -> WorkspaceId {
    let id: uuid::Uuid = sqlx::query_scalar(
        "SELECT w.id FROM users JOIN workspaces w ON w.personal_user_id = users.id WHERE email = $1",
    )
    .bind(email)
    .fetch_one(app.pool())
    .await
    .unwrap();
    WorkspaceId(id)
}

/// Adds a contact straight through the repository (the form has its own tests).
async fn seed(app: &TestApp, user: WorkspaceId, name: &str, phone: &str, groups: &[GroupId]) -> String {
    let input = ContactInput::parse(name, phone, "", groups.to_vec()).unwrap();
    repo::create(app.pool(), user, &input, 200_000)
        .await
        .unwrap()
        .id
        .to_string()
}

async fn seed_group(app: &TestApp, user: WorkspaceId, name: &str) -> GroupId {
    repo::create_group(app.pool(), user, name, 500).await.unwrap().id
}

async fn page(app: &TestApp, path: &str) -> String {
    let res = app.get(path).await;
    assert_eq!(res.status(), StatusCode::OK, "{path}");
    res.text().await.unwrap()
}

async fn htmx_get(app: &TestApp, path: &str) -> Response {
    app.client
        .get(app.url(path))
        .header("hx-request", "true")
        .send()
        .await
        .unwrap()
}

/// Names in the contacts table, in order.
fn names(html: &str) -> Vec<String> {
    select_text(html, "#contacts tbody td.contact-name")
}

fn multipart_body(file_name: &str, bytes: &[u8]) -> Vec<u8> {
    let mut body = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{file_name}\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    body
}

/// Posts a file as the upload form does, with `token` in the action's query string.
async fn upload_with(app: &TestApp, token: Option<&str>, file_name: &str, bytes: &[u8]) -> Response {
    let action = match token {
        Some(t) => format!("/contacts/import?_csrf={t}"),
        None => "/contacts/import".to_owned(),
    };
    app.client
        .post(app.url(&action))
        .header(
            "content-type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(multipart_body(file_name, bytes))
        .send()
        .await
        .unwrap()
}

async fn upload(app: &TestApp, file_name: &str, bytes: &[u8]) -> Response {
    let token = app.csrf("/contacts/import").await;
    upload_with(app, Some(&token), file_name, bytes).await
}

/// Uploads a file that must be accepted; returns the import's page.
pub async fn uploaded(app: &TestApp, file_name: &str, bytes: &[u8]) -> String {
    let res = upload(app, file_name, bytes).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "upload of {file_name}");
    let to = location(&res);
    assert!(to.starts_with("/contacts/import/"), "{to}");
    to
}

/// Starts the import on its preview page with these fields and waits until it ends;
/// returns the final progress fragment.
pub async fn run_import(app: &TestApp, import: &str, fields: &[(&str, &str)]) -> String {
    let mut all = vec![("action", "start")];
    all.extend_from_slice(fields);
    let res = app.post_form(import, import, &all).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "start of {import}");
    assert_eq!(location(&res), import);
    wait_done(app, import).await
}

async fn wait_done(app: &TestApp, import: &str) -> String {
    for _ in 0..1200 {
        let res = htmx_get(app, import).await;
        assert_eq!(res.status(), StatusCode::OK);
        let html = res.text().await.unwrap();
        let status = select_attr(&html, "#import-progress", "data-status").unwrap();
        if status != "running" {
            assert_eq!(status, "done", "{html}");
            assert!(
                select_attr(&html, "#import-progress", "hx-trigger").is_none(),
                "polling stops when done"
            );
            return html;
        }
        assert_eq!(
            select_attr(&html, "#import-progress", "hx-trigger").as_deref(),
            Some("every 1s")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the import at {import} did not finish");
}

fn result(html: &str, what: &str) -> i64 {
    select_text(html, &format!("#result-{what}"))[0].parse().unwrap()
}

async fn contact_count(app: &TestApp, user: WorkspaceId) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM contacts WHERE workspace_id = $1")
        .bind(user.0)
        .fetch_one(app.pool())
        .await
        .unwrap()
}

async fn name_of(app: &TestApp, user: WorkspaceId, phone: &str) -> Option<String> {
    sqlx::query_scalar("SELECT name FROM contacts WHERE workspace_id = $1 AND phone_number = $2")
        .bind(user.0)
        .bind(phone)
        .fetch_optional(app.pool())
        .await
        .unwrap()
}

#[tokio::test]
async fn contact_pages_need_a_session_and_a_csrf_token() {
    let app = TestApp::spawn().await;
    for (path, next) in [
        ("/contacts", "%2Fcontacts"),
        ("/contacts/groups", "%2Fcontacts%2Fgroups"),
        ("/contacts/import", "%2Fcontacts%2Fimport"),
        (
            "/contacts/export?format=csv",
            "%2Fcontacts%2Fexport%3Fformat%3Dcsv",
        ),
    ] {
        let res = app.get(path).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "{path}");
        assert_eq!(location(&res), format!("/login?next={next}"));
    }

    app.signed_in_user("book@example.org", PW).await;
    let list = page(&app, "/contacts").await;
    assert!(has(&list, "#contacts-empty"), "the empty state explains contacts");
    assert_eq!(
        select_attr(&list, ".sidenav a.active", "href").unwrap(),
        "/contacts"
    );

    let res = app
        .client
        .post(app.url("/contacts/new"))
        .form(&[("name", "Ana"), ("phone_number", "+447700900101")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    for action in ["/contacts/groups", "/contacts/bulk"] {
        let res = app
            .client
            .post(app.url(action))
            .form(&[("name", "Staff"), ("_csrf", "wrong")])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{action}");
    }
    // The upload's token rides in the query string: missing or wrong is refused.
    let csv = b"name,phone\nAna,+447700900101\n";
    let res = upload_with(&app, None, "a.csv", csv).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let res = upload_with(&app, Some("wrong"), "a.csv", csv).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let import = uploaded(&app, "a.csv", csv).await;
    let res = app
        .client
        .post(app.url(&import))
        .form(&[("action", "start"), ("map_phone", "1")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let user = workspace_of(&app, "book@example.org").await;
    assert_eq!(contact_count(&app, user).await, 0);
}

#[tokio::test]
async fn contacts_are_added_edited_and_deleted_with_errors_shown_in_the_form() {
    let app = TestApp::spawn().await;
    app.signed_in_user("book@example.org", PW).await;
    let user = workspace_of(&app, "book@example.org").await;
    let staff = seed_group(&app, user, "Staff").await.to_string();

    let form = page(&app, "/contacts/new").await;
    assert_eq!(
        select_attr_all(&form, "#groups input[type=checkbox]", "value"),
        [staff.as_str()]
    );

    let long = "x".repeat(201);
    let res = app
        .post_form(
            "/contacts/new",
            "/contacts/new",
            &[
                ("name", &long),
                ("phone_number", "12345"),
                ("notes", "met at the fair"),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = res.text().await.unwrap();
    assert_eq!(
        select_text(&html, ".field-error[data-field=phone_number]"),
        ["Invalid phone number: 12345. Must be E.164 format (e.g. +1234567890)."]
    );
    assert_eq!(
        select_text(&html, ".field-error[data-field=name]"),
        ["Use at most 200 characters."]
    );
    assert_eq!(
        select_attr(&html, "input#phone_number", "value").unwrap(),
        "12345"
    );
    assert_eq!(select_text(&html, "textarea#notes"), ["met at the fair"]);

    let res = app
        .post_form(
            "/contacts/new",
            "/contacts/new",
            &[
                ("name", " Ana Lima "),
                ("phone_number", "+44 7700 900101"),
                ("groups", &staff),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/contacts");
    let list = page(&app, "/contacts").await;
    assert_eq!(select_text(&list, ".toast-success span"), ["Ana Lima was added."]);
    assert_eq!(names(&list), ["Ana Lima"]);
    assert_eq!(
        select_text(&list, "#contacts td.contact-phone"),
        ["+447700900101"]
    );
    assert_eq!(select_text(&list, "#contacts .contacts-chip"), ["Staff"]);
    let id = select_attr(&list, "#contacts tbody tr", "data-contact").unwrap();

    // The same number again is refused on its field, the input kept.
    let res = app
        .post_form(
            "/contacts/new",
            "/contacts/new",
            &[
                ("name", "Other"),
                ("phone_number", "+447700900101"),
                ("groups", &staff),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = res.text().await.unwrap();
    assert_eq!(
        select_text(&html, ".field-error[data-field=phone_number]"),
        ["A contact with the number +447700900101 already exists."]
    );
    assert_eq!(select_attr(&html, "input#name", "value").unwrap(), "Other");
    assert_eq!(
        select_attr_all(&html, "#groups input[checked]", "value"),
        [staff.as_str()]
    );

    let edit = format!("/contacts/{id}");
    let html = page(&app, &edit).await;
    assert_eq!(select_attr(&html, "input#name", "value").unwrap(), "Ana Lima");
    assert_eq!(
        select_attr_all(&html, "#groups input[checked]", "value"),
        [staff.as_str()]
    );

    let notes = "n".repeat(2001);
    let res = app
        .post_form(
            &edit,
            &edit,
            &[
                ("name", "Ana"),
                ("phone_number", "+447700900101"),
                ("notes", &notes),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = res.text().await.unwrap();
    assert_eq!(
        select_text(&html, ".field-error[data-field=notes]"),
        ["Use at most 2000 characters."]
    );
    assert!(
        select_attr_all(&html, "#groups input[checked]", "value").is_empty(),
        "unticked stays unticked"
    );

    seed(&app, user, "Bo", "+447700900102", &[]).await;
    let res = app
        .post_form(
            &edit,
            &edit,
            &[("name", "Ana"), ("phone_number", "+447700900102")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        select_text(
            &res.text().await.unwrap(),
            ".field-error[data-field=phone_number]"
        ),
        ["A contact with the number +447700900102 already exists."]
    );

    let res = app
        .post_form(
            &edit,
            &edit,
            &[
                ("name", "Ana Maria"),
                ("phone_number", "+447700900109"),
                ("notes", "VIP"),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), edit);
    let list = page(&app, "/contacts").await;
    assert_eq!(names(&list), ["Ana Maria", "Bo"]);
    assert_eq!(select_text(&list, "#contacts td.contact-notes")[0], "VIP");
    assert!(
        select_text(&list, "#contacts .contacts-chip").is_empty(),
        "the group was unticked"
    );

    let res = app.post_form(&edit, &format!("{edit}/delete"), &[]).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/contacts");
    assert_eq!(names(&page(&app, "/contacts").await), ["Bo"]);
    assert_eq!(app.get(&edit).await.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_list_is_searched_filtered_by_group_and_paged() {
    let app = TestApp::spawn().await;
    app.signed_in_user("book@example.org", PW).await;
    let user = workspace_of(&app, "book@example.org").await;
    let staff = seed_group(&app, user, "Staff").await;
    seed(&app, user, "Ana Lima", "+442079460001", &[staff]).await;
    seed(&app, user, "Bruno", "+351912345678", &[]).await;
    seed(&app, user, "Carla", "+442079460003", &[staff]).await;

    assert_eq!(names(&page(&app, "/contacts?q=lim").await), ["Ana Lima"]);
    assert_eq!(
        names(&page(&app, "/contacts?q=%2B44207").await),
        ["Ana Lima", "Carla"]
    );
    // An unencoded "+" arrives as a space: still a number search.
    assert_eq!(names(&page(&app, "/contacts?q=+351").await), ["Bruno"]);
    let html = page(&app, &format!("/contacts?group={staff}")).await;
    assert_eq!(names(&html), ["Ana Lima", "Carla"]);
    assert_eq!(
        select_attr(&html, "#contacts-group option[selected]", "value").unwrap(),
        staff.to_string()
    );
    assert_eq!(
        names(&page(&app, &format!("/contacts?group={staff}&q=carla")).await),
        ["Carla"]
    );
    let none = page(&app, "/contacts?q=zzz").await;
    assert!(names(&none).is_empty());
    assert_eq!(select_text(&none, "#contacts-count"), ["No contacts match."]);

    // HTMX gets the results alone, for the same URL.
    let res = htmx_get(&app, "/contacts?q=bru").await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["vary"], "HX-Request");
    let fragment = res.text().await.unwrap();
    assert!(has(&fragment, "#contacts-results"));
    assert!(!has(&fragment, ".sidenav"), "no page frame in the fragment");
    assert_eq!(names(&fragment), ["Bruno"]);
    let full = page(&app, "/contacts").await;
    assert_eq!(
        select_attr(&full, "#contacts-filter", "hx-trigger").unwrap(),
        "keyup changed delay:300ms from:#contacts-q, change from:#contacts-group, submit"
    );
    assert_eq!(select_attr(&full, "#contacts-filter", "method").unwrap(), "get");

    for i in 0..52 {
        seed(
            &app,
            user,
            &format!("Zed {i:02}"),
            &format!("+1555000{i:04}"),
            &[],
        )
        .await;
    }
    let first = page(&app, "/contacts").await;
    assert_eq!(names(&first).len(), 50);
    assert_eq!(select_text(&first, "#contacts-count"), ["1–50 of 55"]);
    assert!(!has(&first, "#prev-page"));
    let next = select_attr(&first, "#next-page", "href").unwrap();
    assert_eq!(next, "/contacts?page=2");
    let second = page(&app, &next).await;
    assert_eq!(names(&second), ["Zed 47", "Zed 48", "Zed 49", "Zed 50", "Zed 51"]);
    assert_eq!(select_text(&second, "#contacts-count"), ["51–55 of 55"]);
    assert!(!has(&second, "#next-page"));
    let filtered = page(&app, "/contacts?q=zed&page=2").await;
    assert_eq!(
        select_attr(&filtered, "#prev-page", "href").unwrap(),
        "/contacts?q=zed"
    );
}

#[tokio::test]
async fn bulk_actions_add_to_and_remove_from_groups_and_delete_after_confirming() {
    let app = TestApp::spawn().await;
    app.signed_in_user("book@example.org", PW).await;
    let user = workspace_of(&app, "book@example.org").await;
    let staff = seed_group(&app, user, "Staff").await.to_string();
    let ana = seed(&app, user, "Ana", "+447700900101", &[]).await;
    let bo = seed(&app, user, "Bo", "+447700900102", &[]).await;
    let cy = seed(&app, user, "Cy", "+447700900103", &[]).await;

    let list = page(&app, "/contacts").await;
    assert_eq!(
        select_attr_all(&list, "#contacts input[name=ids]", "form"),
        ["contacts-bulk", "contacts-bulk", "contacts-bulk"]
    );

    let res = app
        .post_form(
            "/contacts",
            "/contacts/bulk",
            &[
                ("action", "add"),
                ("target_group", &staff),
                ("ids", &ana),
                ("ids", &bo),
                ("q", ""),
                ("group", ""),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/contacts");
    let html = page(&app, &format!("/contacts?group={staff}")).await;
    assert_eq!(
        select_text(&html, ".toast-success span"),
        ["2 contacts added to Staff."]
    );
    assert_eq!(names(&html), ["Ana", "Bo"]);

    let res = app
        .post_form(
            "/contacts",
            "/contacts/bulk",
            &[
                ("action", "remove"),
                ("target_group", &staff),
                ("ids", &bo),
                ("group", &staff),
            ],
        )
        .await;
    assert_eq!(
        location(&res),
        format!("/contacts?group={staff}"),
        "back to the same filter"
    );
    let html = page(&app, &format!("/contacts?group={staff}")).await;
    assert_eq!(
        select_text(&html, ".toast-success span"),
        ["1 contact removed from Staff."]
    );
    assert_eq!(names(&html), ["Ana"]);

    // Without a group or without contacts, nothing happens and the page says why.
    let res = app
        .post_form("/contacts", "/contacts/bulk", &[("action", "add"), ("ids", &cy)])
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        select_text(&page(&app, "/contacts").await, ".toast-error span"),
        ["Choose a group."]
    );
    let res = app
        .post_form("/contacts", "/contacts/bulk", &[("action", "delete")])
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        select_text(&page(&app, "/contacts").await, ".toast-error span"),
        ["Tick at least one contact first."]
    );

    // Delete asks first, on a page of its own.
    let res = app
        .post_form(
            "/contacts",
            "/contacts/bulk",
            &[("action", "delete"), ("ids", &bo), ("ids", &cy), ("q", "+44")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let confirm = res.text().await.unwrap();
    assert_eq!(
        select_text(&confirm, "#doomed li"),
        ["Bo (+447700900102)", "Cy (+447700900103)"]
    );
    assert_eq!(
        names(&page(&app, "/contacts").await).len(),
        3,
        "nothing deleted yet"
    );
    let ids = select_attr_all(&confirm, "#confirm-delete input[name=ids]", "value");
    assert_eq!(ids, [bo.as_str(), cy.as_str()]);
    let res = app
        .post_form(
            "/contacts",
            "/contacts/bulk",
            &[
                ("action", "delete"),
                ("confirm", "yes"),
                ("ids", &bo),
                ("ids", &cy),
                ("q", "+44"),
            ],
        )
        .await;
    assert_eq!(location(&res), "/contacts?q=%2B44");
    let html = page(&app, "/contacts").await;
    assert_eq!(select_text(&html, ".toast-success span"), ["2 contacts deleted."]);
    assert_eq!(names(&html), ["Ana"]);
}

#[tokio::test]
async fn groups_are_created_renamed_and_deleted_while_their_contacts_stay() {
    let app = TestApp::spawn().await;
    app.signed_in_user("book@example.org", PW).await;
    let user = workspace_of(&app, "book@example.org").await;

    assert!(has(&page(&app, "/contacts/groups").await, "#groups-empty"));
    let res = app
        .post_form("/contacts/groups", "/contacts/groups", &[("name", "  ")])
        .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        select_text(&res.text().await.unwrap(), ".field-error[data-field=name]"),
        ["Enter a group name."]
    );
    let res = app
        .post_form("/contacts/groups", "/contacts/groups", &[("name", "Staff")])
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/contacts/groups");
    let res = app
        .post_form("/contacts/groups", "/contacts/groups", &[("name", "staff")])
        .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = res.text().await.unwrap();
    assert_eq!(
        select_text(&html, ".field-error[data-field=name]"),
        ["A group named \"staff\" already exists."]
    );
    assert_eq!(select_attr(&html, "input#name", "value").unwrap(), "staff");
    app.post_form("/contacts/groups", "/contacts/groups", &[("name", "Night shift")])
        .await;

    let html = page(&app, "/contacts/groups").await;
    assert_eq!(
        select_text(&html, "#groups td.group-name"),
        ["Night shift", "Staff"]
    );
    let staff = select_attr_all(&html, "#groups tbody tr", "data-group")[1].clone();
    let staff_id: GroupId = staff.parse().unwrap();
    seed(&app, user, "Ana", "+447700900101", &[staff_id]).await;
    seed(&app, user, "Bo", "+447700900102", &[staff_id]).await;
    let html = page(&app, "/contacts/groups").await;
    assert_eq!(select_text(&html, "#groups td.group-members"), ["0", "2"]);
    assert_eq!(
        select_attr_all(&html, "#groups td.group-name a", "href")[1],
        format!("/contacts?group={staff}")
    );

    let rename = format!("/contacts/groups/{staff}");
    let res = app
        .post_form("/contacts/groups", &rename, &[("name", "night SHIFT")])
        .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = res.text().await.unwrap();
    assert_eq!(
        select_text(&html, ".field-error[data-field=rename]"),
        ["A group named \"night SHIFT\" already exists."]
    );
    assert_eq!(
        select_attr(
            &html,
            &format!("tr[data-group=\"{staff}\"] input[name=name]"),
            "value"
        )
        .unwrap(),
        "night SHIFT"
    );
    let res = app
        .post_form("/contacts/groups", &rename, &[("name", "Team")])
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let html = page(&app, "/contacts/groups").await;
    assert_eq!(
        select_text(&html, "#groups td.group-name"),
        ["Night shift", "Team"]
    );

    let res = app
        .post_form("/contacts/groups", &format!("{rename}/delete"), &[])
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let html = page(&app, "/contacts/groups").await;
    assert_eq!(select_text(&html, "#groups td.group-name"), ["Night shift"]);
    assert_eq!(contact_count(&app, user).await, 2, "the contacts stay");
    let list = page(&app, "/contacts").await;
    assert!(select_text(&list, "#contacts .contacts-chip").is_empty());
}

#[tokio::test]
async fn another_users_contacts_groups_and_imports_are_not_found() {
    let app = TestApp::spawn().await;
    app.signed_in_user("owner@example.org", PW).await;
    let owner = workspace_of(&app, "owner@example.org").await;
    let group = seed_group(&app, owner, "Private").await;
    let contact = seed(&app, owner, "Ana", "+447700900101", &[group]).await;
    let import = uploaded(&app, "a.csv", b"name,phone\nAna,+447700900101\n").await;

    app.post_form("/contacts", "/logout", &[]).await;
    app.signed_in_user("intruder@example.org", PW).await;
    for path in [
        format!("/contacts/{contact}"),
        format!("/contacts?group={group}"),
        format!("/contacts/export?group={group}"),
        import.clone(),
        format!("{import}/errors.csv"),
        "/contacts/not-an-id".to_owned(),
        "/contacts/import/not-an-id".to_owned(),
    ] {
        assert_eq!(app.get(&path).await.status(), StatusCode::NOT_FOUND, "GET {path}");
    }
    for (action, fields) in [
        (
            format!("/contacts/{contact}"),
            vec![("name", "Mine"), ("phone_number", "+447700900199")],
        ),
        (format!("/contacts/{contact}/delete"), vec![]),
        (format!("/contacts/groups/{group}"), vec![("name", "Mine")]),
        (format!("/contacts/groups/{group}/delete"), vec![]),
        (import.clone(), vec![("action", "start"), ("map_phone", "1")]),
    ] {
        let res = app.post_form("/contacts", &action, &fields).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "POST {action}");
    }
    let group = group.to_string();
    let res = app
        .post_form(
            "/contacts",
            "/contacts/bulk",
            &[("action", "add"), ("target_group", &group), ("ids", &contact)],
        )
        .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let res = app
        .post_form(
            "/contacts",
            "/contacts/bulk",
            &[("action", "delete"), ("confirm", "yes"), ("ids", &contact)],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        select_text(&page(&app, "/contacts").await, ".toast-success span"),
        ["0 contacts deleted."]
    );
    assert_eq!(contact_count(&app, owner).await, 1);
    assert_eq!(
        name_of(&app, owner, "+447700900101").await.as_deref(),
        Some("Ana")
    );
    assert!(
        repo::find_group(app.pool(), owner, group.parse().unwrap())
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn a_csv_import_goes_from_upload_through_preview_to_results_and_an_error_report() {
    let app = TestApp::spawn().await;
    app.signed_in_user("book@example.org", PW).await;
    let user = workspace_of(&app, "book@example.org").await;
    seed_group(&app, user, "Staff").await;

    let page_url = page(&app, "/contacts/import").await;
    assert_eq!(
        select_attr(&page_url, "#upload-form", "enctype").unwrap(),
        "multipart/form-data"
    );
    let action = select_attr(&page_url, "#upload-form", "action").unwrap();
    assert!(action.starts_with("/contacts/import?_csrf="), "{action}");
    assert_eq!(
        select_attr(&page_url, "#file", "accept").unwrap(),
        ".csv,.txt,.vcf,text/csv,text/plain,text/vcard"
    );

    let mut csv = String::from("Name,Mobile,Notes,Groups\r\n");
    csv.push_str("Ana Lima,+44 7700 900101,VIP,Staff; Night\r\n");
    csv.push_str("Bo,07700 900102,,Staff\r\n");
    csv.push_str("Broken,call me maybe,,\r\n");
    for i in 0..12 {
        csv.push_str(&format!("Person {i},+4477009002{i:02},,\r\n"));
    }
    let import = uploaded(&app, "people.csv", csv.as_bytes()).await;

    let html = page(&app, &import).await;
    assert_eq!(select_text(&html, "#import-encoding"), ["UTF-8"]);
    assert_eq!(
        select_attr(&html, "#import-detected", "data-delimiter").unwrap(),
        "comma"
    );
    assert_eq!(select_text(&html, "#import-total"), ["15"]);
    assert_eq!(
        select_attr(&html, "#delimiter option[selected]", "value").unwrap(),
        "comma"
    );
    assert!(has(&html, "#has_header[checked]"));
    for (select, column) in [
        ("map_name", "0"),
        ("map_phone", "1"),
        ("map_notes", "2"),
        ("map_groups", "3"),
    ] {
        assert_eq!(
            select_attr(&html, &format!("#{select} option[selected]"), "value").unwrap(),
            column,
            "{select} guessed"
        );
    }
    assert_eq!(
        select_text(&html, "#import-rows thead th"),
        ["Name", "Mobile", "Notes", "Groups"]
    );
    assert_eq!(select_text(&html, "#import-rows tbody tr").len(), 10);
    assert_eq!(select_text(&html, "#import-drafts tbody tr").len(), 10);
    // Without a default country the national number is an error in the preview.
    assert_eq!(select_text(&html, "#import-drafts tr.draft-error").len(), 2);
    assert_eq!(
        select_attr(&html, "#import-settings", "hx-trigger").unwrap(),
        "change"
    );

    // Refreshing with a default country fixes Bo's number; HTMX gets the form's inside.
    let token = app.csrf(&import).await;
    let res = app
        .client
        .post(app.url(&import))
        .header("hx-request", "true")
        .header("x-csrf-token", token)
        .form(&[
            ("delimiter", "comma"),
            ("has_header", "on"),
            ("map_name", "0"),
            ("map_phone", "1"),
            ("map_notes", "2"),
            ("map_groups", "3"),
            ("default_country", "44"),
            ("on_duplicate", "update"),
            ("target", ""),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let fragment = res.text().await.unwrap();
    assert!(!has(&fragment, ".sidenav"));
    assert_eq!(
        select_text(&fragment, "#import-drafts tr.draft-ok td.nowrap")[..2],
        ["+447700900101", "+447700900102"]
    );
    assert_eq!(
        select_text(&fragment, "#import-drafts tr.draft-error .draft-message"),
        [
            "Invalid phone number \"call me maybe\": use E.164 like +15551234567 or a national number of the default country."
        ]
    );

    // A bad default country and no phone column are refused on their fields.
    let res = app
        .post_form(
            &import,
            &import,
            &[
                ("action", "start"),
                ("delimiter", "comma"),
                ("has_header", "on"),
                ("map_phone", ""),
                ("default_country", "uk"),
                ("on_duplicate", "update"),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = res.text().await.unwrap();
    assert!(has(&html, ".field-error[data-field=default_country]"));
    assert_eq!(
        select_attr(&html, "input#default_country", "value").unwrap(),
        "uk"
    );
    let res = app
        .post_form(
            &import,
            &import,
            &[
                ("action", "start"),
                ("delimiter", "comma"),
                ("has_header", "on"),
                ("map_phone", ""),
                ("on_duplicate", "update"),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        select_text(&res.text().await.unwrap(), ".field-error[data-field=map_phone]"),
        ["Choose the column that holds the phone numbers."]
    );

    let done = run_import(
        &app,
        &import,
        &[
            ("delimiter", "comma"),
            ("has_header", "on"),
            ("map_name", "0"),
            ("map_phone", "1"),
            ("map_notes", "2"),
            ("map_groups", "3"),
            ("default_country", "44"),
            ("on_duplicate", "update"),
            ("target", "new"),
            ("new_group", "Imported"),
        ],
    )
    .await;
    assert_eq!(result(&done, "created"), 14);
    assert_eq!(result(&done, "updated"), 0);
    assert_eq!(result(&done, "skipped"), 0);
    assert_eq!(result(&done, "failed"), 1);
    assert_eq!(select_attr(&done, "#import-bar", "value").unwrap(), "100");
    assert_eq!(
        select_text(&done, "#import-errors tbody td"),
        [
            "4",
            "call me maybe",
            "Invalid phone number \"call me maybe\": use E.164 like +15551234567 or a national number of the default country."
        ]
    );
    let report = select_attr(&done, "#errors-csv", "href").unwrap();
    assert_eq!(report, format!("{import}/errors.csv"));
    let res = app.get(&report).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "text/csv; charset=utf-8");
    assert_eq!(
        res.headers()["content-disposition"],
        "attachment; filename=\"import-errors.csv\""
    );
    let body = res.text().await.unwrap();
    assert!(body.contains("line,value,error"), "{body}");
    assert!(body.contains("4,call me maybe,"), "{body}");

    // The full page shows the results too, and the contacts are there with their groups.
    let full = page(&app, &import).await;
    assert_eq!(
        select_attr(&full, "#import-progress", "data-status").unwrap(),
        "done"
    );
    assert_eq!(contact_count(&app, user).await, 14);
    let list = page(&app, "/contacts?q=ana").await;
    assert_eq!(
        select_text(&list, "#contacts .contacts-chip"),
        ["Imported", "Night", "Staff"]
    );
    let groups = page(&app, "/contacts/groups").await;
    assert_eq!(
        select_text(&groups, "#groups td.group-name"),
        ["Imported", "Night", "Staff"]
    );
    assert_eq!(select_text(&groups, "#groups td.group-members"), ["14", "1", "2"]);

    // Starting again only shows the results.
    let res = app
        .post_form(&import, &import, &[("action", "start"), ("map_phone", "1")])
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(contact_count(&app, user).await, 14);
}

#[tokio::test]
async fn known_numbers_are_updated_or_skipped_as_chosen() {
    let app = TestApp::spawn().await;
    app.signed_in_user("book@example.org", PW).await;
    let user = workspace_of(&app, "book@example.org").await;
    seed(&app, user, "Old name", "+447700900101", &[]).await;
    let csv = b"name,phone\nNew name,+447700900101\nFresh,+447700900102\n";
    let fields = |dup: &'static str| {
        [
            ("delimiter", "comma"),
            ("has_header", "on"),
            ("map_name", "0"),
            ("map_phone", "1"),
            ("on_duplicate", dup),
        ]
    };

    let import = uploaded(&app, "a.csv", csv).await;
    let done = run_import(&app, &import, &fields("skip")).await;
    assert_eq!(
        [
            result(&done, "created"),
            result(&done, "updated"),
            result(&done, "skipped")
        ],
        [1, 0, 1]
    );
    assert_eq!(
        name_of(&app, user, "+447700900101").await.as_deref(),
        Some("Old name")
    );

    let import = uploaded(&app, "a.csv", csv).await;
    let done = run_import(&app, &import, &fields("update")).await;
    assert_eq!(
        [
            result(&done, "created"),
            result(&done, "updated"),
            result(&done, "skipped")
        ],
        [0, 2, 0]
    );
    assert_eq!(
        name_of(&app, user, "+447700900101").await.as_deref(),
        Some("New name")
    );
    assert_eq!(contact_count(&app, user).await, 2);
}

#[tokio::test]
async fn a_semicolon_file_is_detected_and_the_delimiter_can_be_changed() {
    let app = TestApp::spawn().await;
    app.signed_in_user("book@example.org", PW).await;
    let user = workspace_of(&app, "book@example.org").await;
    // Windows-1252, as Excel writes it in much of Europe.
    let csv = b"Nom;T\xe9l\xe9phone\r\nJos\xe9;+33612345678\r\nL\xe9a;+33612345679\r\n";
    let import = uploaded(&app, "export.csv", csv).await;
    let html = page(&app, &import).await;
    assert_eq!(select_text(&html, "#import-encoding"), ["Windows-1252"]);
    assert_eq!(
        select_attr(&html, "#import-detected", "data-delimiter").unwrap(),
        "semicolon"
    );
    assert_eq!(select_text(&html, "#import-rows thead th"), ["Nom", "Téléphone"]);
    assert_eq!(
        select_attr(&html, "#map_phone option[selected]", "value").unwrap(),
        "1"
    );

    // Read with commas instead, the file has one column: the preview follows (no JS).
    let res = app
        .post_form(
            &import,
            &import,
            &[
                ("action", "preview"),
                ("delimiter", "comma"),
                ("has_header", "on"),
                ("map_phone", "0"),
                ("on_duplicate", "update"),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let html = res.text().await.unwrap();
    assert_eq!(
        select_attr(&html, "#delimiter option[selected]", "value").unwrap(),
        "comma"
    );
    assert_eq!(select_text(&html, "#import-rows thead th"), ["Nom;Téléphone"]);
    assert_eq!(select_text(&html, "#import-drafts tr.draft-error").len(), 2);

    // The columns are guessed again when the delimiter changes; a start with a changed
    // delimiter shows the new columns first.
    let res = app
        .post_form(
            &import,
            &import,
            &[
                ("action", "start"),
                ("shown", "comma:on"),
                ("delimiter", "semicolon"),
                ("has_header", "on"),
                ("map_phone", "0"),
                ("on_duplicate", "update"),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let html = res.text().await.unwrap();
    assert!(
        has(&html, "#import-notice"),
        "not started before the columns are checked"
    );
    assert_eq!(
        select_attr(&html, "input[name=shown]", "value").unwrap(),
        "semicolon:on"
    );
    assert_eq!(
        select_attr(&html, "#map_phone option[selected]", "value").unwrap(),
        "1"
    );
    assert_eq!(
        select_attr(&html, "#map_name option[selected]", "value").unwrap(),
        "0"
    );
    assert_eq!(contact_count(&app, user).await, 0);

    let done = run_import(
        &app,
        &import,
        &[
            ("delimiter", "semicolon"),
            ("has_header", "on"),
            ("map_name", "0"),
            ("map_phone", "1"),
            ("on_duplicate", "update"),
        ],
    )
    .await;
    assert_eq!(result(&done, "created"), 2);
    assert_eq!(name_of(&app, user, "+33612345678").await.as_deref(), Some("José"));
}

#[tokio::test]
async fn a_vcard_file_imports_without_a_column_mapping() {
    let app = TestApp::spawn().await;
    app.signed_in_user("book@example.org", PW).await;
    let user = workspace_of(&app, "book@example.org").await;
    let vcf = "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Ana Lima\r\nTEL;TYPE=CELL:+44 7700 900101\r\nNOTE:Met at the fair\r\nEND:VCARD\r\n\
               BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Bo\r\nTEL:07700 900102\r\nEND:VCARD\r\n\
               BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Nobody\r\nEND:VCARD\r\n";
    let import = uploaded(&app, "phone.vcf", vcf.as_bytes()).await;
    let html = page(&app, &import).await;
    assert_eq!(select_text(&html, "#import-format"), ["vCard"]);
    assert!(!has(&html, "#map_phone"), "no column mapping for vCards");
    assert!(!has(&html, "#delimiter"));
    assert_eq!(select_text(&html, "#import-total"), ["3"]);
    assert_eq!(select_text(&html, "#import-drafts tr.draft-ok").len(), 1);

    let done = run_import(
        &app,
        &import,
        &[
            ("default_country", "+44"),
            ("on_duplicate", "update"),
            ("target", ""),
        ],
    )
    .await;
    assert_eq!(result(&done, "created"), 2);
    assert_eq!(result(&done, "failed"), 1);
    assert_eq!(
        select_text(&done, "#import-errors tbody td")[2],
        "This card has no phone number."
    );
    assert_eq!(name_of(&app, user, "+447700900102").await.as_deref(), Some("Bo"));
    let notes: String = sqlx::query_scalar("SELECT notes FROM contacts WHERE phone_number = '+447700900101'")
        .fetch_one(app.pool())
        .await
        .unwrap();
    assert_eq!(notes, "Met at the fair");
}

#[tokio::test]
async fn uploads_over_the_limit_and_binary_files_are_refused_on_the_form() {
    let app = TestApp::spawn().await;
    app.signed_in_user("book@example.org", PW).await;
    let user = workspace_of(&app, "book@example.org").await;
    let limit = "The file is larger than the 20 MiB limit.";

    // 50 MB: over the route's body limit, announced by Content-Length.
    let mut big = b"name,phone\n".to_vec();
    big.resize(50_000_000, b'x');
    let res = upload(&app, "big.csv", &big).await;
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let html = res.text().await.unwrap();
    assert!(
        has(&html, "#upload-form"),
        "the form again, not a bare error page"
    );
    assert_eq!(select_text(&html, ".field-error[data-field=file]"), [limit]);

    // Just over 20 MiB: within the body limit, refused by the file check.
    let mut over = b"name,phone\n".to_vec();
    over.resize(20 * 1024 * 1024 + 1, b'x');
    let res = upload(&app, "over.csv", &over).await;
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        select_text(&res.text().await.unwrap(), ".field-error[data-field=file]"),
        [limit]
    );

    // A spreadsheet is not text.
    let mut xlsx = b"PK\x03\x04\x14\x00\x06\x00\x08\x00\x00\x00!\x00".to_vec();
    xlsx.extend_from_slice(&[0u8; 64]);
    let res = upload(&app, "people.xlsx", &xlsx).await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        select_text(&res.text().await.unwrap(), ".field-error[data-field=file]"),
        ["This file is not text (is it an Excel .xlsx? Save it as CSV first)."]
    );

    let res = upload(&app, "", b"").await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        select_text(&res.text().await.unwrap(), ".field-error[data-field=file]"),
        ["Choose a CSV or vCard file to upload."]
    );
    let res = upload(&app, "empty.csv", b"").await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        select_text(&res.text().await.unwrap(), ".field-error[data-field=file]"),
        ["The file is empty."]
    );

    // The session still works after the refused uploads.
    assert_eq!(app.get("/contacts").await.status(), StatusCode::OK);
    assert_eq!(contact_count(&app, user).await, 0);
}

#[tokio::test]
async fn a_100000_row_csv_imports_completely() {
    let app = TestApp::spawn().await;
    app.signed_in_user("book@example.org", PW).await;
    let user = workspace_of(&app, "book@example.org").await;
    let mut csv = String::with_capacity(3_000_000);
    csv.push_str("name,phone\n");
    for i in 0..100_000 {
        csv.push_str(&format!("Person {i},+44770{i:07}\n"));
    }
    let import = uploaded(&app, "many.csv", csv.as_bytes()).await;
    let html = page(&app, &import).await;
    assert_eq!(select_text(&html, "#import-total"), ["100000"]);
    let done = run_import(
        &app,
        &import,
        &[
            ("delimiter", "comma"),
            ("has_header", "on"),
            ("map_name", "0"),
            ("map_phone", "1"),
            ("on_duplicate", "update"),
        ],
    )
    .await;
    assert_eq!(result(&done, "created"), 100_000);
    assert_eq!(result(&done, "failed"), 0);
    assert!(!has(&done, "#errors-csv"), "no report without errors");
    assert_eq!(contact_count(&app, user).await, 100_000);
}

#[tokio::test]
async fn exports_hold_the_contacts_and_only_the_groups_when_filtered() {
    let app = TestApp::spawn().await;
    app.signed_in_user("book@example.org", PW).await;
    let user = workspace_of(&app, "book@example.org").await;
    let staff = seed_group(&app, user, "Night Staff").await;
    seed(&app, user, "Ana Lima", "+447700900101", &[staff]).await;
    seed(&app, user, "Bo", "+447700900102", &[]).await;

    let list = page(&app, "/contacts").await;
    assert_eq!(
        select_attr(&list, "#export-form", "action").unwrap(),
        "/contacts/export"
    );
    assert_eq!(
        select_attr_all(&list, "#export-form select[name=group] option", "value"),
        ["", staff.to_string().as_str()]
    );

    let res = app.get("/contacts/export?format=csv").await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "text/csv; charset=utf-8");
    assert_eq!(
        res.headers()["content-disposition"],
        "attachment; filename=\"contacts.csv\""
    );
    let body = res.text().await.unwrap();
    let lines: Vec<&str> = body.trim_start_matches('\u{feff}').lines().collect();
    assert_eq!(
        lines,
        [
            "name,phone_number,groups,notes",
            "Ana Lima,+447700900101,Night Staff,",
            "Bo,+447700900102,,"
        ]
    );

    let res = app
        .get(&format!("/contacts/export?format=vcard&group={staff}"))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "text/vcard; charset=utf-8");
    assert_eq!(
        res.headers()["content-disposition"],
        "attachment; filename=\"contacts-night-staff.vcf\""
    );
    let body = res.text().await.unwrap();
    assert_eq!(body.matches("BEGIN:VCARD").count(), 1);
    assert!(body.contains("FN:Ana Lima"), "{body}");
    assert!(body.contains("+447700900101"), "{body}");
    assert!(!body.contains("+447700900102"), "{body}");

    let res = app.get("/contacts/export?format=vcard").await;
    assert_eq!(
        res.headers()["content-disposition"],
        "attachment; filename=\"contacts.vcf\""
    );
    assert_eq!(res.text().await.unwrap().matches("BEGIN:VCARD").count(), 2);
    assert_eq!(
        app.get("/contacts/export?format=xlsx").await.status(),
        StatusCode::BAD_REQUEST
    );
}

fn with_limits(limits: ender_core::config::TenantLimits) -> Options {
    Options {
        sms: Some(ender_core::config::SmsConfig {
            limits,
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[tokio::test]
async fn contacts_groups_and_templates_past_their_limits_re_render_the_form_naming_it() {
    let app = TestApp::spawn_with(with_limits(ender_core::config::TenantLimits {
        max_contacts: 1,
        max_groups: 1,
        max_templates: 1,
        ..Default::default()
    }))
    .await;
    app.signed_in_user("capped@example.org", PW).await;
    let add = |phone: &'static str| {
        let app = &app;
        async move {
            app.post_form(
                "/contacts/new",
                "/contacts/new",
                &[("name", "Ana"), ("phone_number", phone)],
            )
            .await
        }
    };
    assert_eq!(add("+447700900101").await.status(), StatusCode::SEE_OTHER);
    let res = add("+447700900102").await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = res.text().await.unwrap();
    assert_eq!(
        select_text(&html, ".field-error[data-field=phone_number]"),
        ["This workspace can keep at most 1 contacts (ENDER_MAX_CONTACTS). Delete some first."]
    );
    assert_eq!(
        select_attr(&html, "input#phone_number", "value").unwrap(),
        "+447700900102"
    );
    // A number already there still says so first.
    let html = add("+447700900101").await.text().await.unwrap();
    assert!(
        select_text(&html, ".field-error[data-field=phone_number]")[0].contains("already exists"),
        "{html}"
    );

    let res = app.post_form(GROUPS_PAGE, GROUPS_PAGE, &[("name", "One")]).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let res = app.post_form(GROUPS_PAGE, GROUPS_PAGE, &[("name", "Two")]).await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        select_text(&res.text().await.unwrap(), ".field-error[data-field=name]"),
        ["This workspace can keep at most 1 groups (ENDER_MAX_GROUPS). Delete one first."]
    );

    let template = |name: &'static str| {
        let app = &app;
        async move {
            app.post_form(
                "/templates/new",
                "/templates/new",
                &[("name", name), ("body", "Hello {{name}}")],
            )
            .await
        }
    };
    assert_eq!(template("First").await.status(), StatusCode::SEE_OTHER);
    let res = template("Second").await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = res.text().await.unwrap();
    assert_eq!(
        select_text(&html, ".field-error[data-field=name]"),
        ["This workspace can keep at most 1 templates (ENDER_MAX_TEMPLATES). Delete one first."]
    );
    let user = workspace_of(&app, "capped@example.org").await;
    assert_eq!(contact_count(&app, user).await, 1);
}

const GROUPS_PAGE: &str = "/contacts/groups";

#[tokio::test]
async fn open_imports_are_limited_listed_and_can_be_discarded() {
    let app = TestApp::spawn_with(with_limits(ender_core::config::TenantLimits {
        max_open_imports: 2,
        ..Default::default()
    }))
    .await;
    app.signed_in_user("imports@example.org", PW).await;
    let csv = b"name,phone\nAna,+447700900101\n";
    let first = uploaded(&app, "a.csv", csv).await;
    let second = uploaded(&app, "b.csv", csv).await;
    let res = upload(&app, "c.csv", csv).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    let html = res.text().await.unwrap();
    assert_eq!(
        select_text(&html, ".field-error[data-field=file]"),
        [
            "You already have 2 imports waiting or running, the most one account may hold (ENDER_MAX_OPEN_IMPORTS). Finish or discard one first."
        ]
    );
    let mut listed = select_attr_all(&html, "#open-imports a", "href");
    listed.sort();
    let mut expected = vec![first.clone(), second.clone()];
    expected.sort();
    assert_eq!(listed, expected);

    // Another user cannot discard it; its owner can, from the preview page.
    let other = app.new_client();
    app.create_user("other-imports@example.org", PW).await;
    let res = post_form_with(
        &other,
        &app,
        "/login",
        "/login",
        &[("email", "other-imports@example.org"), ("password", PW)],
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let res = post_form_with(&other, &app, "/contacts/import", &format!("{first}/discard"), &[]).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(app.get(&first).await.status(), StatusCode::OK, "still there");
    let preview = page(&app, &first).await;
    assert_eq!(
        select_attr(&preview, "#discard-import", "action").unwrap(),
        format!("{first}/discard")
    );
    let res = app.post_form(&first, &format!("{first}/discard"), &[]).await;
    assert_eq!(
        (res.status(), location(&res)),
        (StatusCode::SEE_OTHER, "/contacts/import".to_owned())
    );
    assert_eq!(app.get(&first).await.status(), StatusCode::NOT_FOUND);
    // Without the form's token it is refused.
    let res = app
        .client
        .post(app.url(&format!("{second}/discard")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    uploaded(&app, "c.csv", csv).await;
}

#[tokio::test]
async fn an_upload_past_the_row_limit_is_refused_naming_it() {
    let app = TestApp::spawn_with(with_limits(ender_core::config::TenantLimits {
        import_max_rows: 2,
        ..Default::default()
    }))
    .await;
    app.signed_in_user("rows@example.org", PW).await;
    let res = upload(
        &app,
        "a.csv",
        b"name,phone\nA,+447700900101\nB,+447700900102\nC,+447700900103\n",
    )
    .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        select_text(&res.text().await.unwrap(), ".field-error[data-field=file]"),
        [
            "The file has more than 2 rows, the most one import may hold (ENDER_IMPORT_MAX_ROWS). Split it into smaller files."
        ]
    );
    let user = workspace_of(&app, "rows@example.org").await;
    let held: i64 = sqlx::query_scalar("SELECT count(*) FROM contact_imports WHERE workspace_id = $1")
        .bind(user.0)
        .fetch_one(app.pool())
        .await
        .unwrap();
    assert_eq!(held, 0, "nothing is kept");
}
