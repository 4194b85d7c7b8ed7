//! Billing with billing on, against fake Stripe and QvaPay servers on loopback: top-ups
//! (checkout request fields, signed callbacks, replays, forgeries, wrong amounts, unknown
//! sessions), the QvaPay lookup, upgrades and cancellations, promo codes, the quota per
//! plan, the Billing page and its receipts, roles and other workspaces.

use ender_core::billing::promo::{self, NewPromo};
use ender_core::config::{BillingConfig, SmsConfig};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::fake_pay::{FakePay, STRIPE_WHSEC, checkout_event, signature};
use crate::helpers::*;
use crate::sms::Caller;

const PW: &str = "correct horse battery";

fn billing() -> SmsConfig {
    SmsConfig {
        billing: BillingConfig {
            enabled: true,
            ..BillingConfig::default()
        },
        ..SmsConfig::default()
    }
}

async fn app_with(fake: &FakePay) -> TestApp {
    let app = TestApp::spawn_with(Options {
        extra_args: fake.args(),
        sms: Some(billing()),
        ..Options::default()
    })
    .await;
    fake.report_to(app.url("/api/webhooks/stripe"));
    app
}

async fn workspace_of(app: &TestApp, email: &str) -> uuid::Uuid {
    sqlx::query_scalar(
        "SELECT w.id FROM users u JOIN workspaces w ON w.personal_user_id = u.id WHERE u.email_normalized = lower($1)",
    )
    .bind(email)
    .fetch_one(app.pool())
    .await
    .unwrap()
}

async fn balance(app: &TestApp, workspace: uuid::Uuid) -> i64 {
    sqlx::query_scalar("SELECT balance_cents FROM workspaces WHERE id = $1")
        .bind(workspace)
        .fetch_one(app.pool())
        .await
        .unwrap()
}

async fn plan_id(app: &TestApp, slug: &str) -> String {
    let id: uuid::Uuid = sqlx::query_scalar("SELECT id FROM plans WHERE slug = $1")
        .bind(slug)
        .fetch_one(app.pool())
        .await
        .unwrap();
    id.to_string()
}

async fn put(c: &Caller, path: &str, body: Value) -> (StatusCode, Value) {
    let res = c
        .http
        .put(format!("{}{path}", c.base))
        .header("x-api-key", &c.key)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn stripe_callback(app: &TestApp, body: &[u8], sig: Option<String>) -> (StatusCode, Value) {
    let mut req = reqwest::Client::new()
        .post(app.url("/api/webhooks/stripe"))
        .header("content-type", "application/json")
        .body(body.to_vec());
    if let Some(sig) = sig {
        req = req.header("stripe-signature", sig);
    }
    let res = req.send().await.unwrap();
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

#[tokio::test]
async fn a_stripe_top_up_is_credited_once_whatever_is_replayed_or_forged() {
    let fake = FakePay::start().await;
    let app = app_with(&fake).await;
    let c = Caller::new(&app, "pay@example.org").await;
    let ws = workspace_of(&app, "pay@example.org").await;

    let (status, body) = c
        .post("/api/plans/topup", json!({"amount": 15, "provider": "stripe"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let session = fake.sessions().pop().unwrap();
    assert_eq!(
        body["payment_url"],
        format!("{}/checkout/{}", fake.base, session.id)
    );
    let f = &session.form;
    assert_eq!(f["mode"], "payment");
    assert_eq!(f["line_items[0][price_data][unit_amount]"], "1500");
    assert_eq!(f["line_items[0][price_data][currency]"], "usd");
    assert_eq!(f["line_items[0][quantity]"], "1");
    assert_eq!(f["client_reference_id"], body["payment_id"].as_str().unwrap());
    assert!(f["success_url"].starts_with(&app.url("/billing?topup=")));
    assert_eq!(
        balance(&app, ws).await,
        0,
        "nothing is credited before the callback"
    );

    let paid = checkout_event(&session, "paid", 1500);
    // Forged, stale, future, unsigned and tampered callbacks move no money. (Stale and
    // future by 310 s: the server's clock may be a second on; the core tests check ±300/301
    // at a fixed time.)
    let tampered = checkout_event(&session, "paid", 150_000);
    for (body, sig) in [
        (paid.clone(), Some(signature("whsec_forged", now(), &paid))),
        (paid.clone(), Some(signature(STRIPE_WHSEC, now() - 310, &paid))),
        (paid.clone(), Some(signature(STRIPE_WHSEC, now() + 310, &paid))),
        (paid.clone(), None),
        (paid.clone(), Some("t=1,v1=nothex".to_owned())),
        (tampered.clone(), Some(signature(STRIPE_WHSEC, now(), &paid))),
    ] {
        let (status, answer) = stripe_callback(&app, &body, sig).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
        assert!(answer["message"].as_str().unwrap().ends_with('.'), "{answer}");
    }
    // Signed but for another amount: refused, nothing moves.
    let (status, answer) =
        stripe_callback(&app, &tampered, Some(signature(STRIPE_WHSEC, now(), &tampered))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        answer["message"].as_str().unwrap().contains("not the amount"),
        "{answer}"
    );
    assert_eq!(balance(&app, ws).await, 0);

    // The real callback, twenty times at once: one credit.
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let (url, paid) = (app.url("/api/webhooks/stripe"), paid.clone());
        tasks.push(tokio::spawn(async move {
            let res = reqwest::Client::new()
                .post(url)
                .header("stripe-signature", signature(STRIPE_WHSEC, now(), &paid))
                .body(paid)
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), StatusCode::OK);
            res.json::<Value>().await.unwrap()["status"]
                .as_str()
                .unwrap()
                .to_owned()
        }));
    }
    let mut answers = Vec::new();
    for t in tasks {
        answers.push(t.await.unwrap());
    }
    answers.sort();
    assert_eq!(
        answers.iter().filter(|a| *a == "credited").count(),
        1,
        "{answers:?}"
    );
    assert_eq!(answers.iter().filter(|a| *a == "already_processed").count(), 19);
    assert_eq!(balance(&app, ws).await, 1500);
    let (_, b) = c.get("/api/plans/balance").await;
    assert_eq!(
        (
            b["balance"].as_f64(),
            b["balance_cents"].as_i64(),
            b["currency"].as_str()
        ),
        (Some(15.0), Some(1500), Some("USD"))
    );

    // Other event types and unpaid sessions are acknowledged and ignored.
    let other =
        serde_json::to_vec(&json!({"id": "evt_x", "type": "payment_intent.created", "data": {"object": {}}}))
            .unwrap();
    let (status, answer) = stripe_callback(&app, &other, Some(signature(STRIPE_WHSEC, now(), &other))).await;
    assert_eq!(
        (status, answer["status"].as_str()),
        (StatusCode::OK, Some("ignored"))
    );
    let unpaid = checkout_event(&session, "unpaid", 1500);
    let (status, answer) =
        stripe_callback(&app, &unpaid, Some(signature(STRIPE_WHSEC, now(), &unpaid))).await;
    assert_eq!(
        (status, answer["status"].as_str()),
        (StatusCode::OK, Some("ignored"))
    );

    // A paid session Ender never made is kept for the administrator, not credited.
    let mut foreign = session.clone();
    foreign.id = "cs_not_ours".into();
    foreign
        .form
        .insert("client_reference_id".into(), uuid::Uuid::new_v4().to_string());
    let unknown = checkout_event(&foreign, "paid", 1500);
    let (status, answer) =
        stripe_callback(&app, &unknown, Some(signature(STRIPE_WHSEC, now(), &unknown))).await;
    assert_eq!(
        (status, answer["status"].as_str()),
        (StatusCode::OK, Some("recorded"))
    );
    let kept: i64 = sqlx::query_scalar("SELECT count(*) FROM payments WHERE status = 'unmatched'")
        .fetch_one(app.pool())
        .await
        .unwrap();
    assert_eq!(kept, 1);
    assert_eq!(balance(&app, ws).await, 1500);

    // The trailing slash is accepted.
    let res = reqwest::Client::new()
        .post(app.url("/api/webhooks/stripe/"))
        .header("stripe-signature", signature(STRIPE_WHSEC, now(), &paid))
        .body(paid.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.json::<Value>().await.unwrap()["status"], "already_processed");

    // A correctly signed body that is not JSON, and a body over the limit: refused.
    let garbage = b"not json at all".to_vec();
    let (status, answer) =
        stripe_callback(&app, &garbage, Some(signature(STRIPE_WHSEC, now(), &garbage))).await;
    assert_eq!(
        (status, answer["message"].as_str()),
        (StatusCode::BAD_REQUEST, Some("Invalid JSON payload."))
    );
    let huge = vec![b'x'; 2 * 1024 * 1024];
    let (status, _) = stripe_callback(&app, &huge, Some(signature(STRIPE_WHSEC, now(), &huge))).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    let res = reqwest::Client::new()
        .post(app.url("/api/webhooks/qvapay"))
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(balance(&app, ws).await, 1500);
}

#[tokio::test]
async fn top_ups_with_bad_input_are_refused_in_the_envelope_and_start_nothing() {
    let fake = FakePay::start().await;
    let app = app_with(&fake).await;
    let c = Caller::new(&app, "bad@example.org").await;
    for (body, message) in [
        (json!({"amount": 15}), "Provider is required."),
        (
            json!({"amount": 15, "provider": "paypal"}),
            "Unknown or unconfigured provider: paypal.",
        ),
        (
            json!({"amount": -5, "provider": "stripe"}),
            "Minimum top-up amount is $1.00.",
        ),
        (
            json!({"amount": 0.5, "provider": "stripe"}),
            "Minimum top-up amount is $1.00.",
        ),
        (
            json!({"amount": 1e12, "provider": "stripe"}),
            "Enter an amount such as 10 or 12.50.",
        ),
        (
            json!({"amount": 501, "provider": "stripe"}),
            "Maximum top-up amount is $500.00.",
        ),
        (
            json!({"amount": 10.555, "provider": "stripe"}),
            "Enter an amount such as 10 or 12.50.",
        ),
        (
            json!({"amount": "ten", "provider": "stripe"}),
            "Enter an amount such as 10 or 12.50.",
        ),
        (
            json!({"provider": "stripe"}),
            "Enter an amount such as 10 or 12.50.",
        ),
    ] {
        let (status, answer) = c.post("/api/plans/topup", body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(answer["message"], message, "{body}");
        assert_eq!(answer["status"], 400);
    }
    let res = reqwest::Client::new()
        .post(app.url("/api/plans/topup"))
        .header("x-api-key", &c.key)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        res.json::<Value>().await.unwrap()["message"],
        "Invalid request body."
    );
    let started: i64 = sqlx::query_scalar("SELECT count(*) FROM payments")
        .fetch_one(app.pool())
        .await
        .unwrap();
    assert_eq!(started, 0);
    assert!(fake.sessions().is_empty());

    // Stripe refusing the checkout: 502, the payment recorded as failed.
    fake.refuse_checkouts();
    let (status, answer) = c
        .post(
            "/api/plans/topup",
            json!({"amount": "12.50", "provider": "stripe"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .contains("Amount must be at least"),
        "{answer}"
    );
    let failed: i64 = sqlx::query_scalar("SELECT count(*) FROM payments WHERE status = 'failed'")
        .fetch_one(app.pool())
        .await
        .unwrap();
    assert_eq!(failed, 1);
    // Without a credential, nothing.
    let res = reqwest::Client::new()
        .post(app.url("/api/plans/topup"))
        .json(&json!({"amount": 15, "provider": "stripe"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_qvapay_callback_counts_only_once_qvapay_says_the_transaction_was_paid() {
    let fake = FakePay::start().await;
    let app = app_with(&fake).await;
    let c = Caller::new(&app, "qv@example.org").await;
    let ws = workspace_of(&app, "qv@example.org").await;
    let (status, body) = c
        .post("/api/plans/topup", json!({"amount": 15, "provider": "qvapay"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let invoice = fake.invoices().pop().unwrap();
    assert_eq!(invoice.body["amount"], 15.0);
    assert_eq!(invoice.body["remote_id"], body["payment_id"]);
    assert_eq!(invoice.body["webhook"], app.url("/api/webhooks/qvapay"));

    let callback = |extra: Value| {
        let mut v = json!({"transaction_uuid": invoice.uuid, "remote_id": invoice.body["remote_id"], "amount": "15.00"});
        v.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        v
    };
    let post = |v: Value| {
        let url = app.url("/api/webhooks/qvapay");
        async move {
            let res = reqwest::Client::new().post(url).json(&v).send().await.unwrap();
            let status = res.status();
            (status, res.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    // Not paid yet at QvaPay: refused, whatever the callback says.
    let (status, answer) = post(callback(json!({}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    fake.mark_paid(&invoice.uuid);
    // A callback claiming another payment, or another amount, or naming no transaction.
    for bad in [
        callback(json!({"remote_id": uuid::Uuid::new_v4().to_string()})),
        callback(json!({"amount": "1500.00"})),
        json!({"remote_id": "x"}),
        json!({"transaction_uuid": "9b1c9999-0000-4000-8000-000000000000", "remote_id": invoice.body["remote_id"]}),
    ] {
        let (status, answer) = post(bad.clone()).await;
        assert!(
            status == StatusCode::BAD_REQUEST || status == StatusCode::BAD_GATEWAY,
            "{bad}: {answer}"
        );
    }
    assert_eq!(balance(&app, ws).await, 0);
    let (status, answer) = post(callback(json!({}))).await;
    assert_eq!(
        (status, answer["status"].as_str()),
        (StatusCode::OK, Some("credited")),
        "{answer}"
    );
    let (_, answer) = post(callback(json!({}))).await;
    assert_eq!(answer["status"], "already_processed");
    assert_eq!(balance(&app, ws).await, 1500);
}

#[tokio::test]
async fn an_upgrade_lifts_the_quota_and_a_cancellation_says_when_it_takes_effect() {
    let fake = FakePay::start().await;
    let app = app_with(&fake).await;
    let c = Caller::new(&app, "up@example.org").await;
    let ws = workspace_of(&app, "up@example.org").await;
    let (_, q) = c.get("/api/plans/quota").await;
    assert_eq!(
        (
            q["plan"].as_str(),
            q["max_sms_per_month"].as_i64(),
            q["max_devices"].as_i64()
        ),
        (Some("Free"), Some(50), Some(1))
    );

    let hobby = plan_id(&app, "hobby").await;
    let (status, answer) = put(&c, "/api/plans/upgrade", json!({"plan_id": hobby})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(answer["message"], "Insufficient balance: need $0.99, have $0.00.");
    let (status, answer) = put(&c, "/api/plans/upgrade", json!({"plan_id": "nope"})).await;
    assert_eq!(
        (status, answer["message"].as_str()),
        (StatusCode::BAD_REQUEST, Some("Plan not found."))
    );
    let (status, _) = put(
        &c,
        "/api/plans/upgrade",
        json!({"plan_id": hobby, "billing_cycle": "weekly"}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // Free allows 50 a month: 50 go, the 51st is refused with the quota body.
    let recipients: Vec<String> = (0..50).map(|i| format!("+1555000{i:04}")).collect();
    let (status, _) = c
        .post("/api/sms/send", json!({"recipients": recipients, "body": "hi"}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, refused) = c.send(&["+15559990000"], "one more").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        (refused["limit"].as_i64(), refused["used"].as_i64()),
        (Some(50), Some(50))
    );

    let mut conn = app.pool().acquire().await.unwrap();
    ender_core::billing::ledger::post(
        &mut conn,
        ender_core::workspace::WorkspaceId(ws),
        ender_core::billing::ledger::Kind::Adjustment,
        500,
        "test credit",
        Default::default(),
    )
    .await
    .unwrap();
    drop(conn);
    let (status, answer) = put(
        &c,
        "/api/plans/upgrade",
        json!({"plan_id": hobby, "billing_cycle": "monthly"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(
        (answer["status"].as_str(), answer["message"].as_str()),
        (Some("active"), Some("Subscription activated"))
    );
    assert_eq!(balance(&app, ws).await, 401);
    let (_, q) = c.get("/api/plans/quota").await;
    assert_eq!(
        (
            q["plan"].as_str(),
            q["max_sms_per_month"].as_i64(),
            q["max_devices"].as_i64()
        ),
        (Some("Hobby"), Some(500), Some(3))
    );
    let (status, _) = c.send(&["+15559990000"], "past the old limit").await;
    assert_eq!(status, StatusCode::OK);
    let (status, answer) = put(&c, "/api/plans/upgrade", json!({"plan_id": hobby})).await;
    assert_eq!(
        (status, answer["message"].as_str()),
        (StatusCode::BAD_REQUEST, Some("Already subscribed to this plan."))
    );

    let (status, answer) = c.post("/api/plans/cancel", json!({})).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["message"], "Subscription will cancel at period end");
    let (status, answer) = c.post("/api/plans/cancel", json!({})).await;
    assert_eq!(
        (status, answer["message"].as_str()),
        (StatusCode::BAD_REQUEST, Some("Already canceled."))
    );
    let (status, answer) = c.post("/api/plans/cancel", json!({"immediate": true})).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(
        (answer["message"].as_str(), answer["status"].as_str()),
        (Some("Subscription canceled immediately"), Some("canceled"))
    );
    let (_, q) = c.get("/api/plans/quota").await;
    assert_eq!(q["plan"], "Free");

    // Another workspace has nothing to cancel.
    let other = Caller::new(&app, "other@example.org").await;
    let (status, answer) = other.post("/api/plans/cancel", json!({"immediate": true})).await;
    assert_eq!(
        (status, answer["message"].as_str()),
        (StatusCode::BAD_REQUEST, Some("Subscription not found."))
    );

    let (status, plans) = reqwest::Client::new()
        .get(app.url("/api/plans"))
        .send()
        .await
        .map(|r| (r.status(), r))
        .unwrap();
    assert_eq!(status, StatusCode::OK);
    let plans: Value = plans.json().await.unwrap();
    let names: Vec<&str> = plans["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Free", "Hobby", "Pro"]);
    assert_eq!(plans["items"][1]["price"], 0.99);
    assert_eq!(plans["items"][1]["max_sms_per_month"], 500);
}

#[tokio::test]
async fn promo_codes_credit_once_per_workspace_with_the_originals_messages() {
    let fake = FakePay::start().await;
    let app = app_with(&fake).await;
    let c = Caller::new(&app, "promo@example.org").await;
    promo::create(
        app.pool(),
        &NewPromo {
            code: "SPRING25".into(),
            credit_cents: 250,
            valid_from: chrono::Utc::now() - chrono::Duration::hours(1),
            valid_until: None,
            max_redemptions: Some(10),
            max_per_workspace: 1,
        },
    )
    .await
    .unwrap();
    let (status, answer) = c.post("/api/promos/redeem", json!({"code": " spring25 "})).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["message"], "$2.50 credited to your balance");
    assert_eq!(
        (answer["amount"].as_f64(), answer["new_balance"].as_f64()),
        (Some(2.5), Some(2.5))
    );
    for (body, status, message) in [
        (
            json!({"code": "SPRING25"}),
            StatusCode::CONFLICT,
            "You have already redeemed this code.",
        ),
        (
            json!({"code": "WINTER"}),
            StatusCode::NOT_FOUND,
            "Invalid promo code.",
        ),
        (json!({"code": ""}), StatusCode::BAD_REQUEST, "Code is required."),
        (
            json!({"code": "x".repeat(10_000)}),
            StatusCode::NOT_FOUND,
            "Invalid promo code.",
        ),
    ] {
        let (s, answer) = c.post("/api/promos/redeem", body).await;
        assert_eq!((s, answer["message"].as_str()), (status, Some(message)));
    }
}

#[tokio::test]
async fn only_owners_move_money_and_members_see_the_plan() {
    let fake = FakePay::start().await;
    let app = app_with(&fake).await;
    app.create_user("owner@example.org", PW).await;
    let owner_ws = workspace_of(&app, "owner@example.org").await;
    app.signed_in_user("member@example.org", PW).await;
    let member: uuid::Uuid =
        sqlx::query_scalar("SELECT id FROM users WHERE email_normalized = 'member@example.org'")
            .fetch_one(app.pool())
            .await
            .unwrap();
    sqlx::query("INSERT INTO workspace_members (workspace_id, user_id, role) VALUES ($1, $2, 'admin')")
        .bind(owner_ws)
        .bind(member)
        .execute(app.pool())
        .await
        .unwrap();
    let res = app
        .post_form("/", "/workspaces/switch", &[("workspace", &owner_ws.to_string())])
        .await;
    assert!(res.status().is_redirection());
    let page = app.get("/billing").await;
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(has(&html, "#current-plan") && has(&html, "#sms-usage"));
    assert!(!has(&html, "#topup-form"), "an admin sees no money controls");
    let res = app
        .post_form(
            "/billing",
            "/billing/topup",
            &[("amount", "10"), ("provider", "stripe")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let token = app.csrf("/billing").await;
    let res = app
        .client
        .put(app.url("/api/plans/upgrade"))
        .header("x-csrf-token", token)
        .json(&json!({"plan_id": plan_id(&app, "hobby").await}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(fake.sessions().is_empty());
}

#[tokio::test]
async fn the_billing_page_tops_up_redeems_changes_plans_and_prints_receipts() {
    let fake = FakePay::start().await;
    let app = app_with(&fake).await;
    app.signed_in_user("page@example.org", PW).await;
    let ws = workspace_of(&app, "page@example.org").await;
    let html = app.get("/").await.text().await.unwrap();
    assert_eq!(
        select_attr(&html, ".sidenav a[href='/billing']", "href").as_deref(),
        Some("/billing")
    );
    assert!(select_text(&html, "#usage")[0].contains("Free plan"));
    let devices = app.get("/devices").await.text().await.unwrap();
    assert!(select_text(&devices, "#plan-note")[0].contains("Your Free plan allows 1 device."));

    // A bad amount re-renders the form with the error and what was typed.
    let res = app
        .post_form(
            "/billing",
            "/billing/topup",
            &[("amount", "12.345"), ("provider", "stripe")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = res.text().await.unwrap();
    assert_eq!(
        select_text(&html, ".field-error[data-field='amount']"),
        ["Enter an amount such as 10 or 12.50."]
    );
    assert_eq!(select_attr(&html, "#amount", "value").as_deref(), Some("12.345"));

    let res = app
        .post_form(
            "/billing",
            "/billing/topup",
            &[("amount", "20"), ("provider", "stripe")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let session = fake.sessions().pop().unwrap();
    let leaving = res.text().await.unwrap();
    assert_eq!(
        select_attr(&leaving, "#continue", "href"),
        Some(format!("{}/checkout/{}", fake.base, session.id))
    );
    assert!(select_text(&leaving, "h1")[0].contains("Pay $20.00 with Stripe"));
    let paid = checkout_event(&session, "paid", 2000);
    let (status, _) = stripe_callback(&app, &paid, Some(signature(STRIPE_WHSEC, now(), &paid))).await;
    assert_eq!(status, StatusCode::OK);
    let back = app
        .get(&format!("/billing?topup={}", session.form["client_reference_id"]))
        .await
        .text()
        .await
        .unwrap();
    assert!(select_text(&back, "#topup-notice")[0].contains("$20.00 was added"));
    assert_eq!(select_text(&back, "#balance"), ["$20.00"]);
    let receipt = select_attr(&back, "#payments a", "href").unwrap();
    let printed = app.get(&receipt).await.text().await.unwrap();
    assert_eq!(select_text(&printed, "#receipt-amount"), ["$20.00"]);

    // Upgrading says what happens before it happens.
    let pro = plan_id(&app, "pro").await;
    let confirm = app
        .get(&format!("/billing/change?plan={pro}&cycle=monthly"))
        .await
        .text()
        .await
        .unwrap();
    assert!(select_text(&confirm, "#confirm")[0].contains("$2.99 is taken from the balance ($20.00 now)"));
    let res = app
        .post_form(
            &format!("/billing/change?plan={pro}&cycle=monthly"),
            "/billing/change",
            &[("plan", &pro), ("cycle", "monthly")],
        )
        .await;
    assert_eq!(location(&res), "/billing");
    assert_eq!(balance(&app, ws).await, 2000 - 299);
    let html = app.get("/billing").await.text().await.unwrap();
    assert!(select_text(&html, "#subscription-status")[0].contains("Pro (monthly), renews on"));
    let cancel = app.get("/billing/cancel?when=end").await.text().await.unwrap();
    assert!(select_text(&cancel, "#confirm")[0].contains("then the workspace moves to the free plan"));
    let res = app
        .post_form("/billing/cancel?when=end", "/billing/cancel", &[("when", "end")])
        .await;
    assert_eq!(location(&res), "/billing");
    let html = app.get("/billing").await.text().await.unwrap();
    assert!(select_text(&html, "#subscription-status")[0].contains("nothing more is charged"));

    // A promo code typed wrong re-renders with the reason.
    let res = app
        .post_form("/billing", "/billing/promo", &[("code", "NOPE")])
        .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        select_text(&res.text().await.unwrap(), ".field-error[data-field='code']"),
        ["Invalid promo code."]
    );

    // Another workspace's receipt does not exist for this one.
    let other = app.new_client();
    app.create_user("else@example.org", PW).await;
    post_form_with(
        &other,
        &app,
        "/login",
        "/login",
        &[("email", "else@example.org"), ("password", PW)],
    )
    .await;
    let res = other.get(app.url(&receipt)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let res = other
        .get(app.url("/billing/receipts/not-an-id"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}
