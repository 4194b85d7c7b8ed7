//! The template pages (the list, the editor with its live preview, deleting one a schedule
//! does not use; sign-in, CSRF and other users' ids) and the Send page's group and template
//! pickers.

use ender_core::contact::{ContactInput, GroupId};
use ender_core::workspace::WorkspaceId;
use reqwest::{Response, StatusCode};

use crate::helpers::*;

const PW: &str = "correct horse battery";

pub async fn workspace_of(app: &TestApp, email: &str) -> WorkspaceId {
    let id: uuid::Uuid = sqlx::query_scalar("SELECT w.id FROM users JOIN workspaces w ON w.personal_user_id = users.id WHERE email_normalized = lower($1)")
        .bind(email)
        .fetch_one(app.pool())
        .await
        .unwrap();
    WorkspaceId(id)
}

/// Adds a template through the form; returns its id.
pub async fn add_template(app: &TestApp, name: &str, body: &str) -> String {
    let res = app
        .post_form(
            "/templates/new",
            "/templates/new",
            &[("name", name), ("body", body)],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "adding {name}");
    location(&res).trim_start_matches("/templates/").to_owned()
}

/// A form post as HTMX makes it: the token in the header, `HX-Request` set.
pub async fn htmx_post(app: &TestApp, page: &str, action: &str, fields: &[(&str, &str)]) -> Response {
    let token = app.csrf(page).await;
    app.client
        .post(app.url(action))
        .header("hx-request", "true")
        .header("x-csrf-token", token)
        .form(fields)
        .send()
        .await
        .unwrap()
}

pub async fn htmx_get(app: &TestApp, path: &str) -> Response {
    app.client
        .get(app.url(path))
        .header("hx-request", "true")
        .send()
        .await
        .unwrap()
}

/// A group with a contact for each (name, number).
pub async fn group_with(app: &TestApp, user: WorkspaceId, name: &str, members: &[(&str, &str)]) -> GroupId {
    let group = ender_core::contact::repo::create_group(app.pool(), user, name, 500)
        .await
        .unwrap();
    for (contact, number) in members {
        let input = ContactInput::parse(contact, number, "", vec![group.id]).unwrap();
        ender_core::contact::repo::create(app.pool(), user, &input, 200_000)
            .await
            .unwrap();
    }
    group.id
}

/// The outgoing messages of the database as (recipient, body), by recipient.
async fn messages(app: &TestApp) -> Vec<(String, String)> {
    ender_core::testing::message_texts(app.pool())
        .await
        .into_iter()
        .map(|(_, to, body)| (to, body))
        .collect()
}

#[tokio::test]
async fn template_pages_need_a_session_and_a_csrf_token() {
    let app = TestApp::spawn().await;
    let res = app.get("/templates").await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/login?next=%2Ftemplates");
    assert_eq!(
        location(&app.get("/templates/new").await),
        "/login?next=%2Ftemplates%2Fnew"
    );

    app.signed_in_user("tpl@example.org", PW).await;
    let page = app.get("/templates").await.text().await.unwrap();
    assert!(
        has(&page, "#templates-empty"),
        "the empty state explains templates"
    );
    assert_eq!(
        select_attr(&page, ".sidenav a.active", "href").unwrap(),
        "/templates"
    );

    let res = app
        .client
        .post(app.url("/templates/new"))
        .form(&[("name", "Hi"), ("body", "Hello")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let id = add_template(&app, "Hi", "Hello").await;
    for action in ["", "/delete"] {
        let res = app
            .client
            .post(app.url(&format!("/templates/{id}{action}")))
            .form(&[("name", "Changed"), ("body", "Changed")])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{action}");
    }
    let page = app.get(&format!("/templates/{id}")).await.text().await.unwrap();
    assert_eq!(select_attr(&page, "input#name", "value").unwrap(), "Hi");
}

#[tokio::test]
async fn templates_are_added_listed_edited_and_deleted() {
    let app = TestApp::spawn().await;
    app.signed_in_user("crud@example.org", PW).await;
    let id = add_template(
        &app,
        "Appointment",
        "Hi {{name}}, see you at {{ time }}. {{name}}!",
    )
    .await;
    let page = app.get(&format!("/templates/{id}")).await.text().await.unwrap();
    assert!(select_text(&page, ".toast")[0].contains("“Appointment” was added"));
    assert_eq!(
        select_text(&page, "textarea#body")[0],
        "Hi {{name}}, see you at {{ time }}. {{name}}!"
    );
    assert_eq!(
        select_text(&page, "#preview-text")[0],
        "Hi Ana Silva, see you at {{time}}. Ana Silva!",
        "the stored body is previewed with the sample name"
    );

    add_template(&app, "Code", "Your code is {{code}}").await;
    let list = app.get("/templates").await.text().await.unwrap();
    assert_eq!(
        select_text(&list, "#templates tbody tr td:first-child"),
        ["Appointment", "Code"]
    );
    let row = format!("tr[data-template='{id}']");
    assert_eq!(select_text(&list, &format!("{row} .tpl-chip")), ["name", "time"]);
    assert!(select_text(&list, &format!("{row} .tpl-excerpt"))[0].starts_with("Hi {{name}}"));

    let dup = app
        .post_form(
            &format!("/templates/{id}"),
            &format!("/templates/{id}"),
            &[("name", "Code"), ("body", "Changed")],
        )
        .await;
    assert_eq!(dup.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body = dup.text().await.unwrap();
    assert!(select_text(&body, ".field-error[data-field=name]")[0].contains("already exists"));
    assert_eq!(
        select_text(&body, "textarea#body")[0],
        "Changed",
        "the input is kept"
    );

    let res = app
        .post_form(
            &format!("/templates/{id}"),
            &format!("/templates/{id}"),
            &[("name", "Visit"), ("body", "See you at {{time}}")],
        )
        .await;
    assert_eq!(location(&res), format!("/templates/{id}"));
    let list = app.get("/templates").await.text().await.unwrap();
    assert_eq!(
        select_text(&list, "#templates tbody tr td:first-child"),
        ["Code", "Visit"]
    );

    let res = app
        .post_form(
            &format!("/templates/{id}"),
            &format!("/templates/{id}/delete"),
            &[],
        )
        .await;
    assert_eq!(location(&res), "/templates");
    let list = app.get("/templates").await.text().await.unwrap();
    assert!(select_text(&list, ".toast")[0].contains("“Visit” was deleted"));
    assert_eq!(select_text(&list, "#templates tbody tr td:first-child"), ["Code"]);
    assert_eq!(
        app.get(&format!("/templates/{id}")).await.status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn an_unclosed_variable_is_shown_on_the_form_with_the_input_kept() {
    let app = TestApp::spawn().await;
    app.signed_in_user("unclosed@example.org", PW).await;
    let res = app
        .post_form(
            "/templates/new",
            "/templates/new",
            &[("name", "Broken"), ("body", "Hi {{name, welcome")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let page = res.text().await.unwrap();
    assert_eq!(
        select_text(&page, ".field-error[data-field=body]")[0],
        "Unclosed {{ at character 4: close it with }}."
    );
    assert_eq!(select_attr(&page, "input#name", "value").unwrap(), "Broken");
    assert_eq!(select_text(&page, "textarea#body")[0], "Hi {{name, welcome");

    let res = app
        .post_form("/templates/new", "/templates/new", &[("name", ""), ("body", "")])
        .await;
    let page = res.text().await.unwrap();
    assert!(has(&page, ".field-error[data-field=name]"));
    assert!(has(&page, ".field-error[data-field=body]"));
}

#[tokio::test]
async fn the_preview_fragment_fills_variables_and_counts_segments() {
    let app = TestApp::spawn().await;
    app.signed_in_user("preview@example.org", PW).await;
    let res = htmx_post(
        &app,
        "/templates/new",
        "/templates/preview",
        &[
            ("name", ""),
            ("body", "Hi {{name}}, your code is {{code}}."),
            ("var.code", "1234"),
        ],
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["vary"], "HX-Request");
    let html = res.text().await.unwrap();
    assert!(!html.contains("<html"), "a fragment, not a page");
    assert_eq!(
        select_text(&html, "#preview-text")[0],
        "Hi Ana Silva, your code is 1234."
    );
    assert_eq!(
        select_text(&html, ".tpl-sample .tpl-chip"),
        ["{{name}}", "{{code}}"]
    );
    assert_eq!(
        select_attr(&html, "input#var-name", "value").unwrap(),
        "Ana Silva"
    );
    assert_eq!(select_attr(&html, "input#var-code", "name").unwrap(), "var.code");
    assert_eq!(
        select_text(&html, "#counter-text")[0],
        "32 / 1600 characters · 1 SMS part · GSM-7"
    );

    let long = format!("{{{{name}}}} {}", "x".repeat(150));
    let html = htmx_post(&app, "/templates/new", "/templates/preview", &[("body", &long)])
        .await
        .text()
        .await
        .unwrap();
    assert!(
        select_text(&html, "#counter-text")[0].contains("160 / 1600 characters · 1 SMS part"),
        "with the sample name the text fills one part exactly"
    );
    let html = htmx_post(
        &app,
        "/templates/new",
        "/templates/preview",
        &[("body", &long), ("var.name", "Ana Silva-Pereira")],
    )
    .await
    .text()
    .await
    .unwrap();
    assert!(select_text(&html, "#counter-text")[0].contains("2 SMS parts"));

    let html = htmx_post(
        &app,
        "/templates/new",
        "/templates/preview",
        &[("body", "Hi {{name")],
    )
    .await
    .text()
    .await
    .unwrap();
    assert!(select_text(&html, "#preview-error")[0].starts_with("Unclosed {{ at character 4"));

    let plain = app
        .post_form("/templates/new", "/templates/preview", &[("body", "Hi")])
        .await;
    assert_eq!(
        plain.status(),
        StatusCode::BAD_REQUEST,
        "the fragment is for HTMX only"
    );
}

#[tokio::test]
async fn a_template_used_by_a_scheduled_send_is_not_deleted() {
    let app = TestApp::spawn().await;
    app.signed_in_user("inuse@example.org", PW).await;
    let id = add_template(&app, "Weekly", "Hi {{name}}").await;
    let res = app
        .post_form(
            "/scheduled/new",
            "/scheduled/new",
            &[
                ("kind", "recurring"),
                ("pattern", "weekly"),
                ("pattern_time", "10:00"),
                ("pattern_weekday", "1"),
                ("timezone", "UTC"),
                ("recipients", "+15550001111"),
                ("template_id", &id),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);

    let res = app
        .post_form(
            &format!("/templates/{id}"),
            &format!("/templates/{id}/delete"),
            &[],
        )
        .await;
    assert_eq!(location(&res), format!("/templates/{id}"));
    let page = app.get(&format!("/templates/{id}")).await.text().await.unwrap();
    assert_eq!(
        select_text(&page, ".toast-error span")[0],
        "The template “Weekly” was not deleted: a scheduled send uses it. Change or delete that send first."
    );
}

#[tokio::test]
async fn another_users_template_is_not_found() {
    let app = TestApp::spawn().await;
    app.signed_in_user("owner@example.org", PW).await;
    let id = add_template(&app, "Mine", "Private {{x}}").await;
    let other = TestApp::new_client(&app);
    app.create_user("other@example.org", PW).await;
    let res = post_form_with(
        &other,
        &app,
        "/login",
        "/login",
        &[("email", "other@example.org"), ("password", PW)],
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let page = other
        .get(app.url(&format!("/templates/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::NOT_FOUND);
    for action in ["", "/delete"] {
        let res = post_form_with(
            &other,
            &app,
            "/templates",
            &format!("/templates/{id}{action}"),
            &[("name", "Stolen"), ("body", "x")],
        )
        .await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{action}");
    }
    assert_eq!(
        other
            .get(app.url("/templates/not-an-id"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::NOT_FOUND
    );
    let list = other
        .get(app.url("/templates"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!list.contains("Mine"));
    let send = other
        .get(app.url(&format!("/send?template={id}")))
        .send()
        .await
        .unwrap();
    let send = send.text().await.unwrap();
    assert!(
        !has(&send, "input[name=template_id]"),
        "not offered on the Send page"
    );
    let stored = app.get(&format!("/templates/{id}")).await.text().await.unwrap();
    assert_eq!(select_attr(&stored, "input#name", "value").unwrap(), "Mine");
}

#[tokio::test]
async fn the_send_page_sends_to_the_members_of_a_group() {
    let app = TestApp::spawn().await;
    app.signed_in_user("groups@example.org", PW).await;
    let user = workspace_of(&app, "groups@example.org").await;
    let group = group_with(
        &app,
        user,
        "Volunteers",
        &[("Ana", "+15550001111"), ("Bo", "+15550002222")],
    )
    .await;
    let page = app.get("/send").await.text().await.unwrap();
    assert_eq!(
        select_attr(&page, "#groups input[name=group_ids]", "value").unwrap(),
        group.to_string()
    );
    assert!(select_text(&page, "#groups label")[0].contains("Volunteers 2 contacts"));

    let group = group.to_string();
    let res = app
        .post_form(
            "/send",
            "/send",
            &[
                ("recipients", "+15550002222, +15550003333"),
                ("group_ids", &group),
                ("body", "Meeting at 6"),
                ("device_id", ""),
            ],
        )
        .await;
    assert_eq!(location(&res), "/messages");
    let page = app.get("/messages").await.text().await.unwrap();
    assert!(select_text(&page, ".toast")[0].contains("3 messages accepted"));
    let sent = messages(&app).await;
    let to: Vec<&str> = sent.iter().map(|(r, _)| r.as_str()).collect();
    assert_eq!(to, ["+15550001111", "+15550002222", "+15550003333"]);

    let bad = app
        .post_form(
            "/send",
            "/send",
            &[("recipients", ""), ("group_ids", &group), ("body", " ")],
        )
        .await;
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let page = bad.text().await.unwrap();
    assert!(has(&page, ".field-error[data-field=body]"));
    assert!(
        has(&page, "#groups input[name=group_ids][checked]"),
        "the group stays ticked"
    );
}

#[tokio::test]
async fn the_send_page_personalises_a_template_per_recipient() {
    let app = TestApp::spawn().await;
    app.signed_in_user("personal@example.org", PW).await;
    let user = workspace_of(&app, "personal@example.org").await;
    let group = group_with(
        &app,
        user,
        "Patients",
        &[("Ana", "+15550001111"), ("Bo", "+15550002222")],
    )
    .await
    .to_string();
    let id = add_template(&app, "Reminder", "Hi {{name}}, your visit is at {{time}}.").await;

    let page = app.get("/send").await.text().await.unwrap();
    assert_eq!(
        select_text(&page, "#template option"),
        ["None: write the message", "Reminder"]
    );
    let fragment = htmx_get(&app, &format!("/send/template?template={id}&body=draft")).await;
    assert_eq!(fragment.status(), StatusCode::OK);
    let fragment = fragment.text().await.unwrap();
    assert_eq!(
        select_text(&fragment, "textarea#body[readonly]")[0],
        "Hi {{name}}, your visit is at {{time}}."
    );
    assert_eq!(
        select_attr(&fragment, "input[name=template_id]", "value").unwrap(),
        id
    );
    assert_eq!(
        select_attr_all(&fragment, "#template-variables input", "name"),
        ["var.time"],
        "name comes from the contact"
    );
    let none = htmx_get(&app, "/send/template?template=&body=draft")
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(select_text(&none, "textarea#body:not([readonly])")[0], "draft");

    let page = app
        .get(&format!("/send?template={id}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(has(&page, "#template option[selected]"));
    assert!(has(&page, "input#var-time"));

    let missing = app
        .post_form(
            "/send",
            "/send",
            &[("group_ids", &group), ("template_id", &id), ("var.time", " ")],
        )
        .await;
    assert_eq!(missing.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let page = missing.text().await.unwrap();
    assert_eq!(
        select_text(&page, ".field-error[data-field=variables]")[0],
        "Missing variable: time."
    );

    let res = app
        .post_form(
            "/send",
            "/send",
            &[
                ("recipients", ""),
                ("group_ids", &group),
                ("template_id", &id),
                ("body", "ignored: the template is sent"),
                ("var.time", "10:30"),
                ("device_id", ""),
            ],
        )
        .await;
    assert_eq!(location(&res), "/messages");
    assert_eq!(
        messages(&app).await,
        [
            (
                "+15550001111".to_owned(),
                "Hi Ana, your visit is at 10:30.".to_owned()
            ),
            (
                "+15550002222".to_owned(),
                "Hi Bo, your visit is at 10:30.".to_owned()
            ),
        ]
    );
}
