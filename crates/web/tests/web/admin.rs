//! The admin console: who may reach it, people, workspaces, plans and promo codes, instance
//! settings, maintenance mode, the health page and the audit log.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;
use crate::simulator::Sim;
use crate::sms::Caller;

const PW: &str = "correct horse battery";

async fn user_id(app: &TestApp, email: &str) -> uuid::Uuid {
    sqlx::query_scalar("SELECT id FROM users WHERE email_normalized = lower($1)")
        .bind(email)
        .fetch_one(app.pool())
        .await
        .unwrap()
}

async fn workspace_of(app: &TestApp, email: &str) -> uuid::Uuid {
    sqlx::query_scalar(
        "SELECT w.id FROM workspaces w JOIN users u ON w.personal_user_id = u.id WHERE u.email_normalized = lower($1)",
    )
    .bind(email)
    .fetch_one(app.pool())
    .await
    .unwrap()
}

async fn make_admin(app: &TestApp, email: &str) {
    sqlx::query("UPDATE users SET is_admin = true WHERE email_normalized = lower($1)")
        .bind(email)
        .execute(app.pool())
        .await
        .unwrap();
}

/// The app with an administrator signed in on its main client.
async fn with_admin() -> TestApp {
    let app = TestApp::spawn().await;
    app.create_user("root@example.org", PW).await;
    make_admin(&app, "root@example.org").await;
    assert_eq!(
        app.login("root@example.org", PW).await.status(),
        StatusCode::SEE_OTHER
    );
    app
}

/// A second browser signed in as a new member.
async fn member_client(app: &TestApp, email: &str) -> reqwest::Client {
    app.create_user(email, PW).await;
    let c = app.new_client();
    let res = post_form_with(&c, app, "/login", "/login", &[("email", email), ("password", PW)]).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    c
}

async fn audit_actions(app: &TestApp) -> Vec<String> {
    sqlx::query_scalar("SELECT action FROM admin_audit ORDER BY id")
        .fetch_all(app.pool())
        .await
        .unwrap()
}

#[tokio::test]
async fn every_admin_route_refuses_members_and_strangers() {
    let app = with_admin().await;
    let member = member_client(&app, "member@example.org").await;
    let other = user_id(&app, "root@example.org").await;
    let ws = workspace_of(&app, "root@example.org").await;
    let plan = "00000000-0000-4000-8000-00000000f002";
    for page in ender_web::routes::admin::PAGES {
        let res = member.get(app.url(page)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "GET {page}");
    }
    let detail_pages = [
        format!("/admin/people/{other}"),
        format!("/admin/workspaces/{ws}"),
        format!("/admin/plans/{plan}"),
    ];
    for page in &detail_pages {
        let res = member.get(app.url(page)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "GET {page}");
    }
    let actions = [
        format!("/admin/people/{other}/suspend"),
        format!("/admin/people/{other}/unsuspend"),
        format!("/admin/people/{other}/promote"),
        format!("/admin/people/{other}/demote"),
        format!("/admin/people/{other}/verify"),
        format!("/admin/people/{other}/resend-verification"),
        format!("/admin/people/{other}/reset-password"),
        format!("/admin/people/{other}/sign-out"),
        format!("/admin/people/{other}/delete"),
        format!("/admin/workspaces/{ws}/plan"),
        format!("/admin/workspaces/{ws}/balance"),
        format!("/admin/workspaces/{ws}/pause"),
        format!("/admin/workspaces/{ws}/resume"),
        format!("/admin/workspaces/{ws}/delete"),
        "/admin/plans".to_owned(),
        format!("/admin/plans/{plan}"),
        format!("/admin/plans/{plan}/retire"),
        format!("/admin/plans/{plan}/restore"),
        format!("/admin/plans/{plan}/up"),
        format!("/admin/plans/{plan}/down"),
        format!("/admin/plans/{plan}/default"),
        "/admin/promos".to_owned(),
        "/admin/settings".to_owned(),
    ];
    for action in &actions {
        let res = post_form_with(
            &member,
            &app,
            "/",
            action,
            &[("plan", plan), ("amount", "5"), ("reason", "x")],
        )
        .await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "POST {action}");
    }
    // Without the form's token, even an administrator is refused.
    let res = app
        .client
        .post(app.url(&format!("/admin/people/{other}/suspend")))
        .form(&[("x", "y")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    // The JSON routes answer in the envelope: 403 signed in, 401 signed out.
    let csrf = csrf_with(&member, &app, "/").await;
    for (method, path) in [
        ("GET", "/api/system-config"),
        ("PUT", "/api/system-config"),
        ("GET", "/api/admin/audit"),
    ] {
        let req = match method {
            "GET" => member.get(app.url(path)),
            _ => member
                .put(app.url(path))
                .header("x-csrf-token", &csrf)
                .json(&json!({"banner_text": "x"})),
        };
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{method} {path}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["status"], 403);
        let stranger = reqwest::Client::new().get(app.url(path)).send().await.unwrap();
        assert_eq!(stranger.status(), StatusCode::UNAUTHORIZED, "{path} signed out");
    }
    // Nothing was changed by any of it.
    assert!(audit_actions(&app).await.is_empty());
    let (suspended, banner): (bool, i64) = sqlx::query_as(
        "SELECT (SELECT suspended_at IS NOT NULL FROM users WHERE id = $1), (SELECT count(*) FROM instance_settings)",
    )
    .bind(other)
    .fetch_one(app.pool())
    .await
    .unwrap();
    assert!(!suspended);
    assert_eq!(banner, 0);
}

#[tokio::test]
async fn an_admin_finds_a_person_suspends_them_and_their_session_ends() {
    let app = with_admin().await;
    let victim = member_client(&app, "Carol.Client@example.org").await;
    for i in 0..3 {
        app.create_user(&format!("someone{i}@example.org"), PW).await;
    }
    // Search is by any part of an address or name, case-insensitive, and escapes LIKE.
    let body = app.get("/admin?q=carol.client").await.text().await.unwrap();
    assert_eq!(
        select_text(&body, ".person-link"),
        vec!["Carol.Client@example.org"]
    );
    let body = app.get("/admin?q=%25").await.text().await.unwrap();
    assert!(select_text(&body, ".person-link").is_empty());
    let body = app.get("/admin?since=yesterday").await.text().await.unwrap();
    assert!(has(&body, "#since-error"));
    let body = app.get("/admin?admins=on").await.text().await.unwrap();
    assert_eq!(select_text(&body, ".person-link"), vec!["root@example.org"]);

    let id = user_id(&app, "carol.client@example.org").await;
    let page = format!("/admin/people/{id}");
    let detail = app.get(&page).await.text().await.unwrap();
    assert_eq!(select_text(&detail, "#sessions")[0], "1");
    let res = app.post_form(&page, &format!("{page}/suspend"), &[]).await;
    assert_eq!(location(&res), page);
    // Their open session is refused on the next click, and they cannot sign in again.
    let res = victim.get(app.url("/messages")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert!(location(&res).starts_with("/login"));
    let res = post_form_with(
        &victim,
        &app,
        "/login",
        "/login",
        &[("email", "carol.client@example.org"), ("password", PW)],
    )
    .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(res.text().await.unwrap().contains("suspended"));
    let body = app.get("/admin?suspended=on").await.text().await.unwrap();
    assert_eq!(
        select_text(&body, ".person-link"),
        vec!["Carol.Client@example.org"]
    );

    app.post_form(&page, &format!("{page}/unsuspend"), &[]).await;
    let res = post_form_with(
        &victim,
        &app,
        "/login",
        "/login",
        &[("email", "carol.client@example.org"), ("password", PW)],
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    // Sign out everywhere ends it again.
    app.post_form(&page, &format!("{page}/sign-out"), &[]).await;
    let res = victim.get(app.url("/messages")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);

    // A password reset link is mailed to them; the admin never sees it on a page.
    let res = app.post_form(&page, &format!("{page}/reset-password"), &[]).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let mails = app.wait_for_mails(1).await;
    assert!(mails.last().unwrap().contains("reset-password?token="));
    let shown = app.get(&page).await.text().await.unwrap();
    assert!(!shown.contains("reset-password?token="));

    assert_eq!(
        audit_actions(&app).await,
        vec![
            "user.suspended",
            "user.unsuspended",
            "user.signed_out",
            "user.password_reset_sent"
        ]
    );
    let entry: (String, String, Value) =
        sqlx::query_as("SELECT actor, target, after FROM admin_audit WHERE action = 'user.suspended'")
            .fetch_one(app.pool())
            .await
            .unwrap();
    assert!(entry.0.contains("root@example.org"));
    assert_eq!(entry.1, "Carol.Client@example.org");
    assert_eq!(entry.2["sessions_ended"], 1);
    // The audit log is append-only.
    assert!(
        sqlx::query("DELETE FROM admin_audit")
            .execute(app.pool())
            .await
            .is_err()
    );
}

#[tokio::test]
async fn administrators_cannot_lock_themselves_out_or_act_on_another_admin_without_confirming() {
    let app = with_admin().await;
    let me = user_id(&app, "root@example.org").await;
    let mine = format!("/admin/people/{me}");
    for action in ["suspend", "demote", "delete"] {
        let res = app.post_form(&mine, &format!("{mine}/{action}"), &[]).await;
        assert_eq!(location(&res), mine, "{action}");
    }
    let page = app.get(&mine).await.text().await.unwrap();
    assert!(page.contains("last administrator") || page.contains("yourself") || page.contains("own account"));
    let (admin, suspended): (bool, bool) =
        sqlx::query_as("SELECT is_admin, suspended_at IS NOT NULL FROM users WHERE id = $1")
            .bind(me)
            .fetch_one(app.pool())
            .await
            .unwrap();
    assert!(admin && !suspended);

    // Another administrator: deleting them or mailing them a reset link needs the box ticked.
    app.create_user("second@example.org", PW).await;
    make_admin(&app, "second@example.org").await;
    let other = user_id(&app, "second@example.org").await;
    let theirs = format!("/admin/people/{other}");
    app.post_form(&theirs, &format!("{theirs}/delete"), &[]).await;
    app.post_form(&theirs, &format!("{theirs}/reset-password"), &[])
        .await;
    let page = app.get(&theirs).await.text().await.unwrap();
    assert!(page.contains("is an administrator. Confirm"), "{page}");
    assert!(app.mails().is_empty());
    let res = app
        .post_form(&theirs, &format!("{theirs}/delete"), &[("confirm", "on")])
        .await;
    assert_eq!(location(&res), "/admin");
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM users WHERE id = $1")
        .bind(other)
        .fetch_one(app.pool())
        .await
        .unwrap();
    assert_eq!(left, 0);
    assert_eq!(audit_actions(&app).await, vec!["user.deleted"]);
}

#[tokio::test]
async fn concurrent_demotions_always_leave_an_administrator() {
    use ender_core::admin::{Admin, AdminError, people};
    let app = TestApp::spawn().await;
    for round in 0..5 {
        let a = format!("a{round}@example.org");
        let b = format!("b{round}@example.org");
        app.create_user(&a, PW).await;
        app.create_user(&b, PW).await;
        sqlx::query("UPDATE users SET is_admin = (email_normalized = $1 OR email_normalized = $2)")
            .bind(&a)
            .bind(&b)
            .execute(app.pool())
            .await
            .unwrap();
        let ia = ender_core::account::UserId(user_id(&app, &a).await);
        let ib = ender_core::account::UserId(user_id(&app, &b).await);
        let shell = Admin::shell();
        // Each demotes the other at the same moment: one must be refused.
        let (ra, rb) = tokio::join!(
            people::set_admin(app.pool(), &shell, ib, false),
            people::set_admin(app.pool(), &shell, ia, false)
        );
        let refused = [&ra, &rb]
            .iter()
            .filter(|r| matches!(r, Err(AdminError::Refused(_))))
            .count();
        assert_eq!(refused, 1, "{ra:?} {rb:?}");
        let admins: i64 = sqlx::query_scalar("SELECT count(*) FROM users WHERE is_admin")
            .fetch_one(app.pool())
            .await
            .unwrap();
        assert_eq!(admins, 1);
    }
}

#[tokio::test]
async fn settings_refuse_bad_values_whole_and_apply_good_ones_at_once() {
    let app = with_admin().await;
    let res = app
        .post_form(
            "/admin/settings",
            "/admin/settings",
            &[
                ("support_email", "not an address"),
                ("banner_link", "javascript:alert(1)"),
                ("banner_text", "Hello"),
                ("wat", "1"),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body = res.text().await.unwrap();
    assert!(has(&body, "#settings-error"), "unknown key reported");
    // The form comes back with what was typed.
    assert_eq!(
        select_attr(&body, "#banner_text", "value").as_deref(),
        Some("Hello")
    );
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM instance_settings")
        .fetch_one(app.pool())
        .await
        .unwrap();
    assert_eq!(stored, 0, "nothing saved");
    let res = app
        .post_form(
            "/admin/settings",
            "/admin/settings",
            &[
                ("support_email", "not an address"),
                ("banner_link", "javascript:alert(1)"),
            ],
        )
        .await;
    let body = res.text().await.unwrap();
    assert!(body.contains("Enter a valid email address"));
    assert!(body.contains("http:// or https://"));

    let res = app
        .post_form(
            "/admin/settings",
            "/admin/settings",
            &[
                ("instance_name", "Clinic SMS"),
                ("support_email", "help@clinic.example"),
                ("banner_text", "Planned work on Sunday"),
                ("banner_link", "https://status.clinic.example/"),
                ("signup", "closed"),
                ("stripe_secret_key", "sk_test_very_secret_value"),
            ],
        )
        .await;
    assert_eq!(location(&res), "/admin/settings");
    // Every page shows the banner and the name at once, in this process.
    let home = app.get("/").await.text().await.unwrap();
    assert_eq!(
        select_text(&home, "#site-banner a"),
        vec!["Planned work on Sunday"]
    );
    assert_eq!(select_text(&home, ".brand"), vec!["Clinic SMS"]);
    let login = reqwest::Client::new()
        .get(app.url("/signup"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(login.contains("closed"), "the sign-up policy applies");
    // The secret is stored sealed and shown only as set.
    let page = app.get("/admin/settings").await.text().await.unwrap();
    assert!(!page.contains("sk_test_very_secret_value"));
    assert!(has(&page, ".secret-set"));
    let sealed: (String, Option<Vec<u8>>) =
        sqlx::query_as("SELECT value, sealed FROM instance_settings WHERE key = 'stripe_secret_key'")
            .fetch_one(app.pool())
            .await
            .unwrap();
    assert_eq!(sealed.0, "");
    assert!(!String::from_utf8_lossy(&sealed.1.unwrap()).contains("very_secret"));
    let config = app.get("/api/system-config").await.text().await.unwrap();
    assert!(!config.contains("very_secret"));
    let config: Value = serde_json::from_str(&config).unwrap();
    let stripe = config["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["key"] == "stripe_secret_key")
        .unwrap();
    assert_eq!(stripe["value"], "");
    assert_eq!(stripe["set"], true);
    let audit: Value = sqlx::query_scalar("SELECT after FROM admin_audit WHERE action = 'settings.changed'")
        .fetch_one(app.pool())
        .await
        .unwrap();
    assert_eq!(audit["stripe_secret_key"], "set");
    assert_eq!(audit["instance_name"], "Clinic SMS");

    // Vendel's public settings, with its field names.
    let public: Value = reqwest::Client::new()
        .get(app.url("/api/utils/app-settings"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(public["app_name"], "Clinic SMS");
    assert_eq!(public["support_email"], "help@clinic.example");
    assert_eq!(public["maintenance_mode"], "false");
    assert!(public["payment_providers"].is_array());

    // The API: all or nothing, with the problems in the envelope.
    let csrf = app.csrf("/").await;
    let res = app
        .client
        .put(app.url("/api/system-config"))
        .header("x-csrf-token", &csrf)
        .json(&json!({"app_name": "Renamed", "banner_link": "ftp://x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let body: Value = res.json().await.unwrap();
    assert!(body["data"]["errors"]["banner_link"].is_string());
    let res = app
        .client
        .put(app.url("/api/system-config"))
        .header("x-csrf-token", &csrf)
        .json(&json!({"app_name": "Renamed"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.json::<Value>().await.unwrap()["updated"], 1);
    let res = app
        .client
        .put(app.url("/api/system-config"))
        .header("x-csrf-token", &csrf)
        .body("{not json")
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn maintenance_refuses_members_changes_but_not_phones_or_administrators() {
    let app = with_admin().await;
    let caller = Caller::new(&app, "clinic@example.org").await;
    let phone = Sim::register(&app, "clinic@example.org", "android", "Front desk").await;
    let (status, sent) = caller.send(&["+15550001111"], "before").await;
    assert_eq!(status, StatusCode::OK, "{sent}");
    let message = sent["message_ids"][0].as_str().unwrap().to_owned();
    // The phone polls (so it is reachable), is assigned the message and takes it.
    let mut taken = phone.pending().await;
    if taken.is_empty() {
        let ws = workspace_of(&app, "clinic@example.org").await;
        ender_core::sms::dispatch::dispatch_workspace(
            app.pool(),
            &ender_core::config::SmsConfig::default(),
            ender_core::workspace::WorkspaceId(ws),
        )
        .await
        .unwrap();
        taken = phone.pending().await;
    }
    assert_eq!(taken.len(), 1);
    let member = member_client(&app, "member@example.org").await;

    let res = app
        .post_form(
            "/admin/settings",
            "/admin/settings",
            &[
                ("maintenance_mode", "on"),
                ("maintenance_message", "Back at noon."),
            ],
        )
        .await;
    assert_eq!(location(&res), "/admin/settings");

    // A member's send: the 503 page with Retry-After, and the banner on what they read.
    let res = post_form_with(
        &member,
        &app,
        "/send",
        "/send",
        &[("recipients", "+15550002222"), ("body", "x")],
    )
    .await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(res.headers()["retry-after"], "300");
    assert!(res.text().await.unwrap().contains("Back at noon."));
    let home = member
        .get(app.url("/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        select_text(&home, "#maintenance-banner")[0].trim(),
        "Back at noon."
    );
    // The API: the envelope.
    let (status, body) = caller.send(&["+15550002222"], "during").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["message"], "Back at noon.");
    // A phone keeps reporting: nothing it says is lost.
    assert!(phone.pending().await.is_empty());
    let (status, body) = phone.report(&message, "sent", "").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(caller.status_of(&message).await, "sent");
    // Members cannot sign in; administrators can, and work normally.
    let fresh = app.new_client();
    let res = post_form_with(
        &fresh,
        &app,
        "/login",
        "/login",
        &[("email", "member@example.org"), ("password", PW)],
    )
    .await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    let other_admin = app.new_client();
    let res = post_form_with(
        &other_admin,
        &app,
        "/login",
        "/login",
        &[("email", "root@example.org"), ("password", PW)],
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let public: Value = reqwest::get(app.url("/api/utils/app-settings"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(public["maintenance_mode"], "true");

    let res = app.post_form("/admin/settings", "/admin/settings", &[]).await;
    assert_eq!(location(&res), "/admin/settings");
    let (status, _) = caller.send(&["+15550002222"], "after").await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a_paused_workspace_is_refused_sends_its_queue_waits_and_resuming_frees_it() {
    let app = with_admin().await;
    let caller = Caller::new(&app, "shop@example.org").await;
    let ws = workspace_of(&app, "shop@example.org").await;
    let page = format!("/admin/workspaces/{ws}");
    let (status, _) = caller.send(&["+15550001111"], "queued first").await;
    assert_eq!(status, StatusCode::OK);
    let res = app
        .post_form(&page, &format!("{page}/pause"), &[("reason", "unpaid invoices")])
        .await;
    assert_eq!(location(&res), page);
    let (status, body) = caller.send(&["+15550001111"], "refused").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(body["message"].as_str().unwrap().contains("paused"));
    // Queued messages wait: a phone coming online is handed nothing.
    let phone = Sim::register(&app, "shop@example.org", "android", "Till").await;
    assert!(phone.pending().await.is_empty());
    let cfg = ender_core::config::SmsConfig::default();
    let dispatch = || {
        ender_core::sms::dispatch::dispatch_workspace(
            app.pool(),
            &cfg,
            ender_core::workspace::WorkspaceId(ws),
        )
    };
    assert!(dispatch().await.unwrap().is_empty());
    assert!(phone.pending().await.is_empty());
    let pending: i64 =
        sqlx::query_scalar("SELECT count(*) FROM messages WHERE workspace_id = $1 AND status = 'pending'")
            .bind(ws)
            .fetch_one(app.pool())
            .await
            .unwrap();
    assert_eq!(pending, 1);
    let listed = app.get("/admin/workspaces").await.text().await.unwrap();
    assert!(listed.contains("paused"));

    app.post_form(&page, &format!("{page}/resume"), &[]).await;
    assert_eq!(dispatch().await.unwrap().len(), 1, "the waiting message goes now");
    let (status, _) = caller.send(&["+15550001111"], "after").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        audit_actions(&app).await,
        vec!["workspace.sending_paused", "workspace.sending_resumed"]
    );
}

#[tokio::test]
async fn balance_adjustments_need_a_reason_never_overdraw_and_plans_change_free() {
    let app = with_admin().await;
    app.create_user("owner@example.org", PW).await;
    let ws = workspace_of(&app, "owner@example.org").await;
    let page = format!("/admin/workspaces/{ws}");
    for (amount, reason, field) in [
        ("5.00", "", "#reason-error"),
        ("abc", "goodwill", "#amount-error"),
        ("-1.00", "correction", "#amount-error"),
        ("0", "nothing", "#amount-error"),
    ] {
        let res = app
            .post_form(
                &page,
                &format!("{page}/balance"),
                &[("amount", amount), ("reason", reason)],
            )
            .await;
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY, "{amount}");
        let body = res.text().await.unwrap();
        assert!(has(&body, field), "{amount}: {field}");
        assert_eq!(
            select_attr(&body, "input[name=amount]", "value").as_deref(),
            Some(amount)
        );
    }
    let res = app
        .post_form(
            &page,
            &format!("{page}/balance"),
            &[("amount", "12.50"), ("reason", "goodwill for the outage")],
        )
        .await;
    assert_eq!(location(&res), page);
    app.post_form(
        &page,
        &format!("{page}/balance"),
        &[("amount", "-2.50"), ("reason", "correction")],
    )
    .await;
    let ledger: Vec<(i64, String, String)> = sqlx::query_as(
        "SELECT amount_cents, kind, description FROM ledger_entries WHERE workspace_id = $1 ORDER BY id",
    )
    .bind(ws)
    .fetch_all(app.pool())
    .await
    .unwrap();
    assert_eq!(
        ledger,
        vec![
            (
                1250,
                "adjustment".to_owned(),
                "goodwill for the outage".to_owned()
            ),
            (-250, "adjustment".to_owned(), "correction".to_owned())
        ]
    );

    let pro = "00000000-0000-4000-8000-00000000f003";
    let res = app
        .post_form(&page, &format!("{page}/plan"), &[("plan", pro)])
        .await;
    assert_eq!(location(&res), page);
    let plan: Option<uuid::Uuid> = sqlx::query_scalar("SELECT plan_id FROM workspaces WHERE id = $1")
        .bind(ws)
        .fetch_one(app.pool())
        .await
        .unwrap();
    assert_eq!(plan.unwrap().to_string(), pro);
    let res = app
        .post_form(&page, &format!("{page}/plan"), &[("plan", "nonsense")])
        .await;
    assert_eq!(location(&res), page);
    let res = app
        .post_form(
            &page,
            &format!("{page}/plan"),
            &[("plan", "00000000-0000-4000-8000-0000000000ff")],
        )
        .await;
    assert_eq!(location(&res), page);
    // A personal workspace goes only with its account.
    app.post_form(&page, &format!("{page}/delete"), &[]).await;
    let alive: bool = sqlx::query_scalar("SELECT deleted_at IS NULL FROM workspaces WHERE id = $1")
        .bind(ws)
        .fetch_one(app.pool())
        .await
        .unwrap();
    assert!(alive);
    assert_eq!(
        audit_actions(&app).await,
        vec![
            "workspace.balance_adjusted",
            "workspace.balance_adjusted",
            "workspace.plan_changed"
        ]
    );
    // Unknown workspaces are 404, not a crash.
    assert_eq!(
        app.get("/admin/workspaces/not-a-uuid").await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.get(&format!("/admin/workspaces/{}", uuid::Uuid::nil()))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn plans_are_made_retired_and_reordered_and_promo_codes_count_redemptions() {
    let app = with_admin().await;
    let res = app
        .post_form(
            "/admin/plans/new",
            "/admin/plans",
            &[
                ("name", ""),
                ("slug", "Bad Slug"),
                ("max_sms_per_month", "-1"),
                ("price_monthly", "x"),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body = res.text().await.unwrap();
    for field in [
        "name",
        "slug",
        "max_sms_per_month",
        "price_monthly",
        "max_members",
    ] {
        assert!(
            has(&body, &format!(".field-error[data-field={field}]")),
            "{field}"
        );
    }
    let fields = [
        ("name", "Clinic"),
        ("slug", "clinic"),
        ("max_sms_per_month", "2000"),
        ("max_devices", "4"),
        ("max_schedules", "10"),
        ("max_webhooks", "5"),
        ("max_api_keys", "5"),
        ("max_members", "8"),
        ("price_monthly", "19.00"),
        ("price_yearly", "190"),
        ("public", "on"),
    ];
    let res = app.post_form("/admin/plans/new", "/admin/plans", &fields).await;
    assert_eq!(location(&res), "/admin/plans");
    let res = app.post_form("/admin/plans/new", "/admin/plans", &fields).await;
    assert_eq!(
        res.status(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "the slug is taken"
    );
    let id: uuid::Uuid = sqlx::query_scalar("SELECT id FROM plans WHERE slug = 'clinic'")
        .fetch_one(app.pool())
        .await
        .unwrap();
    let listed = ender_core::billing::plans::public(app.pool()).await.unwrap();
    assert!(listed.iter().any(|p| p.slug == "clinic"));
    app.post_form("/admin/plans", &format!("/admin/plans/{id}/up"), &[])
        .await;
    let order: Vec<String> = sqlx::query_scalar("SELECT slug FROM plans ORDER BY sort")
        .fetch_all(app.pool())
        .await
        .unwrap();
    assert_eq!(order, vec!["free", "hobby", "clinic", "pro"]);
    app.post_form("/admin/plans", &format!("/admin/plans/{id}/retire"), &[])
        .await;
    let listed = ender_core::billing::plans::public(app.pool()).await.unwrap();
    assert!(
        !listed.iter().any(|p| p.slug == "clinic"),
        "a retired plan is not offered"
    );
    // The default plan can be neither retired nor charged for.
    let free = "00000000-0000-4000-8000-00000000f001";
    app.post_form("/admin/plans", &format!("/admin/plans/{free}/retire"), &[])
        .await;
    let retired: bool = sqlx::query_scalar("SELECT retired_at IS NOT NULL FROM plans WHERE slug = 'free'")
        .fetch_one(app.pool())
        .await
        .unwrap();
    assert!(!retired);

    let res = app
        .post_form(
            "/admin/promos",
            "/admin/promos",
            &[("code", "!"), ("credit", "nope"), ("valid_until", "soon")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body = res.text().await.unwrap();
    assert!(has(&body, ".field-error[data-field=credit]"));
    assert!(has(&body, ".field-error[data-field=valid_until]"));
    let res = app
        .post_form(
            "/admin/promos",
            "/admin/promos",
            &[
                ("code", "welcome5"),
                ("credit", "5.00"),
                ("max_redemptions", "100"),
            ],
        )
        .await;
    assert_eq!(location(&res), "/admin/promos");
    let page = app.get("/admin/promos").await.text().await.unwrap();
    assert_eq!(select_text(&page, "#promos code"), vec!["WELCOME5"]);
    assert_eq!(select_text(&page, "#promos .redeemed"), vec!["0"]);
    assert_eq!(
        audit_actions(&app).await,
        vec!["plan.created", "plan.moved", "plan.retired", "promo.created"]
    );
}

#[tokio::test]
async fn the_health_page_and_the_audit_api_show_what_an_operator_checks() {
    let app = with_admin().await;
    ender_core::admin::health::beat(
        &mut app.pool().acquire().await.unwrap(),
        "worker-1",
        "9.9.9",
        "host-a",
        42,
        chrono::Utc::now(),
    )
    .await
    .unwrap();
    // A second worker that stopped beating a while ago.
    ender_core::admin::health::beat(
        &mut app.pool().acquire().await.unwrap(),
        "worker-2",
        "9.9.8",
        "host-b",
        43,
        chrono::Utc::now(),
    )
    .await
    .unwrap();
    sqlx::query(
        "UPDATE worker_heartbeats SET beat_at = now() - interval '5 minutes' WHERE name = 'worker-2'",
    )
    .execute(app.pool())
    .await
    .unwrap();
    // Mail the server could not send (as the mailer records it).
    let mailer = ender_core::mail::Mailer::files("/dev/null/not-a-folder").with_database(app.pool().clone());
    let mail = ender_core::mail::Mail {
        to: "someone@example.org".into(),
        subject: "Confirm your email address for Ender".into(),
        text: "x".into(),
    };
    assert!(mailer.send(&mail).await.is_err());
    let page = app.get("/admin/health").await.text().await.unwrap();
    let workers = select_text(&page, "#workers td");
    assert!(
        workers
            .iter()
            .any(|t| t.contains("worker-1") && t.contains("alive")),
        "{workers:?}"
    );
    assert!(
        workers
            .iter()
            .any(|t| t.contains("worker-2") && t.contains("silent")),
        "{workers:?}"
    );
    assert!(workers.iter().any(|t| t == "9.9.9"));
    assert_eq!(select_text(&page, "#mail-failures"), vec!["1"]);
    let failures = select_text(&page, "#mail-failure-list td");
    assert_eq!(failures[1], "Confirm your email address for Ender");
    assert!(!page.contains("someone@example.org"));
    assert_eq!(
        select_text(&page, "#queue td").first().map(String::as_str),
        Some("pending")
    );

    let someone = member_client(&app, "someone@example.org").await;
    drop(someone);
    let id = user_id(&app, "someone@example.org").await;
    let page = format!("/admin/people/{id}");
    app.post_form(&page, &format!("{page}/suspend"), &[]).await;
    app.post_form(&page, &format!("{page}/unsuspend"), &[]).await;
    let audit = app.get("/admin/audit?action=user.").await.text().await.unwrap();
    assert_eq!(
        select_text(&audit, ".audit-action"),
        vec!["user.unsuspended", "user.suspended"]
    );
    let body: Value = app.get("/api/admin/audit?per_page=1").await.json().await.unwrap();
    assert_eq!(body["items"].as_array().unwrap().len(), 1);
    assert_eq!(body["items"][0]["action"], "user.unsuspended");
    let next = body["next_before"].as_i64().unwrap();
    let body: Value = app
        .get(&format!("/api/admin/audit?per_page=1&before={next}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["items"][0]["action"], "user.suspended");
    assert!(body["next_before"].is_null());
    let res = app.get("/api/admin/audit?before=abc").await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn admin_actions_refuse_unknown_actions_and_oversized_forms_and_change_nothing() {
    let app = with_admin().await;
    app.create_user("pat@example.org", PW).await;
    let pat = user_id(&app, "pat@example.org").await;
    let ws = workspace_of(&app, "pat@example.org").await;
    let plan = "00000000-0000-4000-8000-00000000f002";
    for action in [
        format!("/admin/people/{pat}/bogus"),
        format!("/admin/workspaces/{ws}/bogus"),
        format!("/admin/plans/{plan}/bogus"),
    ] {
        let res = post_form_with(&app.client, &app, "/admin", &action, &[]).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "POST {action}");
    }
    // Over the 1 MiB body limit: refused before any change.
    let huge = "x".repeat(2 * 1024 * 1024);
    for (action, field) in [
        (format!("/admin/workspaces/{ws}/pause"), "reason"),
        (format!("/admin/workspaces/{ws}/balance"), "reason"),
        ("/admin/settings".to_owned(), "banner_text"),
        ("/admin/promos".to_owned(), "code"),
    ] {
        let res = post_form_with(&app.client, &app, "/admin", &action, &[(field, huge.as_str())]).await;
        assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE, "POST {action}");
    }
    let paused: bool =
        sqlx::query_scalar("SELECT sending_paused_at IS NOT NULL FROM workspaces WHERE id = $1")
            .bind(ws)
            .fetch_one(app.pool())
            .await
            .unwrap();
    assert!(!paused);
    assert!(audit_actions(&app).await.is_empty(), "nothing was recorded");
}
