//! The scheduled-send pages: adding one from pattern fields or a raw cron expression, the
//! next-runs fragment, the form re-rendered naming a bad field, the limit, pause, resume
//! and delete, the run history after a run; sign-in, CSRF and other users' ids.

use chrono::{DateTime, Duration, Utc};
use ender_core::config::SmsConfig;
use reqwest::StatusCode;

use crate::helpers::*;
use crate::template_pages::{add_template, htmx_get, htmx_post, workspace_of};

const PW: &str = "correct horse battery";

/// The fields of a daily send at 09:00 in `tz`, to `+15550001111`.
fn daily(tz: &'static str) -> Vec<(&'static str, &'static str)> {
    vec![
        ("name", "Morning reminder"),
        ("kind", "recurring"),
        ("pattern", "daily"),
        ("pattern_time", "09:00"),
        ("pattern_weekday", "1"),
        ("pattern_day", "1"),
        ("cron_expression", ""),
        ("run_at", ""),
        ("timezone", tz),
        ("recipients", "+15550001111"),
        ("body", "Good morning"),
        ("device_id", ""),
    ]
}

/// `fields` with `key` set to `value` (replaced or added).
fn with<'a>(mut fields: Vec<(&'a str, &'a str)>, key: &'a str, value: &'a str) -> Vec<(&'a str, &'a str)> {
    fields.retain(|(k, _)| *k != key);
    fields.push((key, value));
    fields
}

/// Adds a schedule through the form; returns its id.
async fn add_schedule(app: &TestApp, fields: &[(&str, &str)]) -> String {
    let res = app.post_form("/scheduled/new", "/scheduled/new", fields).await;
    assert_eq!(
        res.status(),
        StatusCode::SEE_OTHER,
        "{}",
        res.text().await.unwrap()
    );
    location(&res).trim_start_matches("/scheduled/").to_owned()
}

/// The stored cron expression, time zone and status of a schedule.
async fn stored(app: &TestApp, id: &str) -> (String, String, String) {
    sqlx::query_as("SELECT cron_expr, timezone, status FROM scheduled_sends WHERE id = $1::uuid")
        .bind(id)
        .fetch_one(app.pool())
        .await
        .unwrap()
}

#[tokio::test]
async fn schedule_pages_need_a_session_and_a_csrf_token() {
    let app = TestApp::spawn().await;
    let res = app.get("/scheduled").await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/login?next=%2Fscheduled");
    assert_eq!(
        location(&app.get("/scheduled/new").await),
        "/login?next=%2Fscheduled%2Fnew"
    );

    app.signed_in_user("sched@example.org", PW).await;
    let page = app.get("/scheduled").await.text().await.unwrap();
    assert!(has(&page, "#scheduled-empty"));
    assert_eq!(
        select_attr(&page, ".sidenav a.active", "href").unwrap(),
        "/scheduled"
    );
    let res = app
        .client
        .post(app.url("/scheduled/new"))
        .form(&daily("UTC"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let id = add_schedule(&app, &daily("UTC")).await;
    for action in ["", "/pause", "/resume", "/delete"] {
        let res = app
            .client
            .post(app.url(&format!("/scheduled/{id}{action}")))
            .form(&daily("UTC"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{action}");
    }
    assert_eq!(stored(&app, &id).await.2, "active");
}

#[tokio::test]
async fn a_recurring_send_is_built_from_the_pattern_fields() {
    let app = TestApp::spawn().await;
    app.signed_in_user("pattern@example.org", PW).await;
    let page = app.get("/scheduled/new").await.text().await.unwrap();
    assert_eq!(select_attr(&page, "input#timezone", "value").unwrap(), "UTC");
    assert!(
        has(&page, "input#timezone[data-browser-timezone]"),
        "a script offers the browser's zone"
    );
    assert!(has(&page, "datalist#timezones option[value='Europe/London']"));
    assert_eq!(select_text(&page, "#next-runs #runs-list li").len(), 5);

    let id = add_schedule(&app, &daily("Europe/London")).await;
    assert_eq!(
        stored(&app, &id).await,
        (
            "0 9 * * *".to_owned(),
            "Europe/London".to_owned(),
            "active".to_owned()
        )
    );
    let page = app.get(&format!("/scheduled/{id}")).await.text().await.unwrap();
    assert_eq!(
        select_text(&page, "#schedule-when")[0],
        "Every day at 09:00 (Europe/London)"
    );
    let upcoming = select_text(&page, "#upcoming .sched-local");
    assert_eq!(upcoming.len(), 5);
    assert!(
        upcoming
            .iter()
            .all(|t| t.contains(" 09:00 G") || t.contains(" 09:00 B")),
        "{upcoming:?}"
    );
    assert_eq!(
        select_attr(&page, "#pattern option[selected]", "value").unwrap(),
        "daily"
    );
    assert_eq!(
        select_attr(&page, "#cron_expression", "value").unwrap(),
        "0 9 * * *"
    );
    assert!(has(&page, "#no-history"));

    let weekly = with(
        with(daily("Europe/London"), "pattern", "weekly"),
        "pattern_weekday",
        "5",
    );
    let id = add_schedule(&app, &with(weekly, "pattern_time", "17:45")).await;
    assert_eq!(stored(&app, &id).await.0, "45 17 * * 5");
    let monthly = with(with(daily("UTC"), "pattern", "monthly"), "pattern_day", "15");
    let id = add_schedule(&app, &monthly).await;
    assert_eq!(stored(&app, &id).await.0, "0 9 15 * *");
    let page = app.get(&format!("/scheduled/{id}")).await.text().await.unwrap();
    assert_eq!(
        select_text(&page, "#schedule-when")[0],
        "Every month on the 15th at 09:00 (UTC)"
    );

    let list = app.get("/scheduled").await.text().await.unwrap();
    assert_eq!(select_text(&list, "#schedules tbody tr").len(), 3);
    let row = format!("tr[data-schedule='{id}']");
    assert_eq!(
        select_text(&list, &format!("{row} .sched-describe"))[0],
        "Every month on the 15th at 09:00 (UTC)"
    );
    assert_eq!(select_text(&list, &format!("{row} .badge"))[0], "active");
    assert!(select_text(&list, &format!("{row} .sched-next-run"))[0].contains("09:00 UTC"));
}

#[tokio::test]
async fn a_custom_pattern_keeps_the_raw_cron_expression() {
    let app = TestApp::spawn().await;
    app.signed_in_user("raw@example.org", PW).await;
    let fields = with(
        with(daily("America/New_York"), "pattern", "custom"),
        "cron_expression",
        "*/15 9-17 * * 1-5",
    );
    let id = add_schedule(&app, &fields).await;
    assert_eq!(stored(&app, &id).await.0, "*/15 9-17 * * 1-5");
    let page = app.get(&format!("/scheduled/{id}")).await.text().await.unwrap();
    assert_eq!(
        select_attr(&page, "#pattern option[selected]", "value").unwrap(),
        "custom"
    );
    assert_eq!(
        select_attr(&page, "#cron_expression", "value").unwrap(),
        "*/15 9-17 * * 1-5"
    );
    assert_eq!(
        select_text(&page, "#schedule-when")[0],
        "Cron \"*/15 9-17 * * 1-5\" (America/New_York)"
    );
}

#[tokio::test]
async fn the_next_runs_fragment_follows_the_fields() {
    let app = TestApp::spawn().await;
    app.signed_in_user("runs@example.org", PW).await;
    let res = htmx_post(
        &app,
        "/scheduled/new",
        "/scheduled/preview",
        &daily("Europe/London"),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["vary"], "HX-Request");
    let html = res.text().await.unwrap();
    let runs = select_text(&html, "#runs-list .sched-local");
    assert_eq!(runs.len(), 5);
    assert!(runs.iter().all(|t| t.contains(" 09:00 ")), "{runs:?}");
    assert_eq!(
        select_attr(&html, "input#cron_expression[hx-swap-oob]", "value").unwrap(),
        "0 9 * * *",
        "the pattern fills the cron field"
    );

    let bad_cron = with(
        with(daily("UTC"), "pattern", "custom"),
        "cron_expression",
        "61 * * * *",
    );
    let html = htmx_post(&app, "/scheduled/new", "/scheduled/preview", &bad_cron)
        .await
        .text()
        .await
        .unwrap();
    let error = &select_text(&html, ".field-error[data-field=cron_expression]")[0];
    assert!(error.starts_with("Cron expression: Minute"), "{error}");
    assert!(!has(&html, "#runs-list"));
    assert!(
        !has(&html, "input[hx-swap-oob]"),
        "a custom expression is left alone"
    );

    let html = htmx_post(
        &app,
        "/scheduled/new",
        "/scheduled/preview",
        &daily("Mars/Olympus"),
    )
    .await
    .text()
    .await
    .unwrap();
    assert_eq!(
        select_text(&html, ".field-error[data-field=timezone]")[0],
        "Time zone: Unknown time zone: Mars/Olympus. Use an IANA name such as Europe/London."
    );

    let once = with(with(daily("UTC"), "kind", "once"), "run_at", "2099-01-02T03:04");
    let html = htmx_post(&app, "/scheduled/new", "/scheduled/preview", &once)
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(
        select_text(&html, "#runs-list .sched-local"),
        ["Fri 2099-01-02 03:04 UTC"]
    );
    let html = htmx_post(
        &app,
        "/scheduled/new",
        "/scheduled/preview",
        &with(daily("UTC"), "pattern_time", "9am"),
    )
    .await
    .text()
    .await
    .unwrap();
    assert!(has(&html, ".field-error[data-field=pattern_time]"));

    let plain = app
        .post_form("/scheduled/new", "/scheduled/preview", &daily("UTC"))
        .await;
    assert_eq!(plain.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn bad_fields_re_render_the_form_naming_the_field() {
    let app = TestApp::spawn().await;
    app.signed_in_user("bad@example.org", PW).await;
    let cases = [
        (
            with(
                with(daily("UTC"), "pattern", "custom"),
                "cron_expression",
                "0 25 * * *",
            ),
            "cron_expression",
            "Hour",
        ),
        (
            daily("Nowhere/City"),
            "timezone",
            "Unknown time zone: Nowhere/City",
        ),
        (
            with(with(daily("UTC"), "kind", "once"), "run_at", "2020-01-01T09:00"),
            "run_at",
            "already passed",
        ),
        (
            with(daily("UTC"), "recipients", "12345"),
            "recipients",
            "Invalid phone number",
        ),
        (with(daily("UTC"), "body", ""), "body", "Enter the message text"),
    ];
    for (fields, field, message) in cases {
        let res = app.post_form("/scheduled/new", "/scheduled/new", &fields).await;
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY, "{field}");
        let page = res.text().await.unwrap();
        let error = select_text(&page, &format!("#schedule-form .field-error[data-field={field}]"));
        assert!(
            error.first().is_some_and(|e| e.contains(message)),
            "{field}: {error:?}"
        );
        assert_eq!(
            select_attr(&page, "input#name", "value").unwrap(),
            "Morning reminder",
            "the input is kept"
        );
    }
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM scheduled_sends")
        .fetch_one(app.pool())
        .await
        .unwrap();
    assert_eq!(count, 0);
}

#[tokio::test]
async fn the_limit_is_shown_on_the_form() {
    let app = TestApp::spawn_with(Options {
        sms: Some(SmsConfig {
            max_schedules: 1,
            ..SmsConfig::default()
        }),
        ..Options::default()
    })
    .await;
    app.signed_in_user("limit@example.org", PW).await;
    add_schedule(&app, &daily("UTC")).await;
    let res = app
        .post_form(
            "/scheduled/new",
            "/scheduled/new",
            &with(daily("UTC"), "name", "Second"),
        )
        .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let page = res.text().await.unwrap();
    assert_eq!(
        select_text(&page, "#form-error")[0],
        "You have 1 of 1 scheduled sends; delete one before adding another."
    );
    assert_eq!(select_attr(&page, "input#name", "value").unwrap(), "Second");
}

#[tokio::test]
async fn a_schedule_is_paused_resumed_and_deleted() {
    let app = TestApp::spawn().await;
    app.signed_in_user("pause@example.org", PW).await;
    let id = add_schedule(&app, &daily("UTC")).await;
    let page = format!("/scheduled/{id}");
    let res = app.post_form(&page, &format!("{page}/pause"), &[]).await;
    assert_eq!(location(&res), page);
    assert_eq!(stored(&app, &id).await.2, "paused");
    let html = app.get(&page).await.text().await.unwrap();
    assert_eq!(select_text(&html, "#schedule-status")[0], "paused");
    assert!(has(&html, "#paused-note"));
    assert!(has(&html, "button#resume") && !has(&html, "button#pause"));
    let list = app.get("/scheduled").await.text().await.unwrap();
    assert_eq!(select_text(&list, ".sched-next-run")[0], "—");

    app.post_form(&page, &format!("{page}/resume"), &[]).await;
    assert_eq!(stored(&app, &id).await.2, "active");
    let html = app.get(&page).await.text().await.unwrap();
    assert!(select_text(&html, ".toast")[0].starts_with("Resumed. Next run: "));
    assert!(has(&html, "button#pause"));

    let res = app.post_form(&page, &format!("{page}/delete"), &[]).await;
    assert_eq!(location(&res), "/scheduled");
    assert_eq!(app.get(&page).await.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn editing_keeps_the_schedule_and_moves_its_next_run() {
    let app = TestApp::spawn().await;
    app.signed_in_user("edit@example.org", PW).await;
    let id = add_schedule(&app, &daily("UTC")).await;
    let page = format!("/scheduled/{id}");
    let bad = app
        .post_form(&page, &page, &with(daily("UTC"), "timezone", "Atlantis"))
        .await;
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = bad.text().await.unwrap();
    assert!(has(&html, "#schedule-form .field-error[data-field=timezone]"));
    assert_eq!(select_attr(&html, "input#timezone", "value").unwrap(), "Atlantis");
    assert_eq!(
        select_text(&html, "#schedule-when")[0],
        "Every day at 09:00 (UTC)",
        "unchanged"
    );

    let res = app
        .post_form(&page, &page, &with(daily("Asia/Tokyo"), "pattern", "weekdays"))
        .await;
    assert_eq!(location(&res), page);
    assert_eq!(
        stored(&app, &id).await,
        (
            "0 9 * * 1-5".to_owned(),
            "Asia/Tokyo".to_owned(),
            "active".to_owned()
        )
    );
    let html = app.get(&page).await.text().await.unwrap();
    assert_eq!(
        select_text(&html, "#schedule-when")[0],
        "Weekdays at 09:00 (Asia/Tokyo)"
    );
    assert!(select_text(&html, "#schedule-next")[0].ends_with("09:00 JST"));
}

#[tokio::test]
async fn the_run_history_shows_a_run_after_it_fires() {
    let app = TestApp::spawn().await;
    app.signed_in_user("history@example.org", PW).await;
    let user = workspace_of(&app, "history@example.org").await;
    let input = ender_core::device::DeviceInput::parse("Phone", "android", "+15550009999").unwrap();
    ender_core::device::create(app.pool(), user, &input, 10)
        .await
        .unwrap();
    let id = add_schedule(&app, &daily("UTC")).await;
    let next: DateTime<Utc> =
        sqlx::query_scalar("SELECT next_run_at FROM scheduled_sends WHERE id = $1::uuid")
            .bind(&id)
            .fetch_one(app.pool())
            .await
            .unwrap();
    let fired = ender_core::schedule::run::fire_due(
        app.pool(),
        &SmsConfig::default(),
        next + Duration::minutes(5),
        10,
    )
    .await
    .unwrap();
    assert_eq!(fired.len(), 1);

    let html = app.get(&format!("/scheduled/{id}")).await.text().await.unwrap();
    assert!(!has(&html, "#no-history"));
    let rows = select_text(&html, "#history tr.sched-run");
    assert_eq!(rows.len(), 1);
    assert_eq!(
        select_text(&html, "#history tr.sched-run td:first-child")[0],
        next.format("%a %Y-%m-%d %H:%M UTC").to_string()
    );
    assert_eq!(
        select_text(&html, "#history .sched-late"),
        ["late"],
        "it ran 5 minutes late"
    );
    assert_eq!(select_text(&html, "#history .run-messages"), ["1"]);
    assert_eq!(select_text(&html, "#history .run-error"), [""]);
    assert_eq!(select_text(&html, "#schedule-runs")[0], "1");
    assert_eq!(
        select_text(&html, "#upcoming .sched-local")[0],
        (next + Duration::days(1))
            .format("%a %Y-%m-%d %H:%M UTC")
            .to_string(),
        "the next runs start after the one that fired"
    );
    let list = app.get("/scheduled").await.text().await.unwrap();
    assert_eq!(select_text(&list, "#schedules td.num")[0], "1");
}

#[tokio::test]
async fn a_template_needs_its_variables() {
    let app = TestApp::spawn().await;
    app.signed_in_user("vars@example.org", PW).await;
    let tpl = add_template(&app, "Code", "Hi {{name}}, your code is {{code}}").await;
    let fragment = htmx_get(&app, &format!("/scheduled/template-vars?template_id={tpl}")).await;
    assert_eq!(fragment.status(), StatusCode::OK);
    let html = fragment.text().await.unwrap();
    assert_eq!(
        select_attr_all(&html, "#template-variables input", "name"),
        ["var.code"]
    );
    assert!(has(&html, "#contact-variables"));
    let none = htmx_get(&app, "/scheduled/template-vars?template_id=")
        .await
        .text()
        .await
        .unwrap();
    assert!(!has(&none, "#template-variables"));
    assert_eq!(
        app.get(&format!("/scheduled/template-vars?template_id={tpl}"))
            .await
            .status(),
        StatusCode::BAD_REQUEST
    );

    let page = app
        .get(&format!("/scheduled/new?template={tpl}"))
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(
        select_attr(&page, "#template_id option[selected]", "value").unwrap(),
        tpl
    );
    assert!(has(&page, "input#var-code"));

    let fields = with(with(daily("UTC"), "body", ""), "template_id", &tpl);
    let res = app.post_form("/scheduled/new", "/scheduled/new", &fields).await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = res.text().await.unwrap();
    assert_eq!(
        select_text(&html, ".field-error[data-field=variables]")[0],
        "Give a value for {{code}}."
    );

    let id = add_schedule(&app, &with(fields, "var.code", "4711")).await;
    let variables: serde_json::Value =
        sqlx::query_scalar("SELECT variables FROM scheduled_sends WHERE id = $1::uuid")
            .bind(&id)
            .fetch_one(app.pool())
            .await
            .unwrap();
    assert_eq!(variables, serde_json::json!({"code": "4711"}));
    let html = app.get(&format!("/scheduled/{id}")).await.text().await.unwrap();
    assert_eq!(select_attr(&html, "input#var-code", "value").unwrap(), "4711");
    assert!(select_text(&html, "#schedule dd.message-body")[0].contains("Template “Code”"));
}

#[tokio::test]
async fn another_users_schedule_is_not_found() {
    let app = TestApp::spawn().await;
    app.signed_in_user("mine@example.org", PW).await;
    let id = add_schedule(&app, &daily("UTC")).await;
    app.create_user("theirs@example.org", PW).await;
    let other = app.new_client();
    post_form_with(
        &other,
        &app,
        "/login",
        "/login",
        &[("email", "theirs@example.org"), ("password", PW)],
    )
    .await;
    let res = other
        .get(app.url(&format!("/scheduled/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    for action in ["", "/pause", "/resume", "/delete"] {
        let res = post_form_with(
            &other,
            &app,
            "/scheduled",
            &format!("/scheduled/{id}{action}"),
            &daily("UTC"),
        )
        .await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{action}");
    }
    let list = other
        .get(app.url("/scheduled"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(has(&list, "#scheduled-empty"));
    assert_eq!(stored(&app, &id).await.2, "active");
}
