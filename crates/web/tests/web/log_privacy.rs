//! No phone number and no message body reaches a log line (L8), through a whole working
//! day of one account: sign-up and sign-in, a device added on its page, sends through the
//! API and the Send page, refused sends, the device pulling and reporting, an incoming
//! SMS, webhook deliveries with bodies, a scheduled send that is refused, and a contacts
//! import.

use chrono::{Duration, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::contacts_pages::{run_import, uploaded};
use crate::helpers::*;

const PW: &str = "correct horse battery";
const EMAIL: &str = "log-privacy@example.org";

// Numbers and bodies that appear nowhere else in the tests.
const DEVICE_NUMBER: &str = "+14155550171";
const API_TO: &str = "+14155550172";
const PAGE_TO: &str = "+14155550173";
/// Not E.164: refused, and the refusal names it.
const INVALID_TO: &str = "4155550174";
const INCOMING_FROM: &str = "+14155550175";
const SCHEDULED_TO: &str = "+14155550176";
const IMPORTED: &str = "+447700900177";
const IMPORTED_NATIONAL: &str = "07700 900177";
const IMPORTED_BAD: &str = "0177 31";
const API_BODY: &str = "Quokka appointment moved to Tuesday";
const PAGE_BODY: &str = "Narwhal lab results are ready";
const INCOMING_BODY: &str = "Pangolin says see you at noon";
const FAILED_REASON: &str = "Axolotl carrier said no";

#[tokio::test]
async fn a_working_day_of_one_account_logs_no_number_and_no_body() {
    let logs = crate::logs::capture();
    let app = TestApp::spawn_with(Options {
        dispatcher: true,
        webhook_engine: Some(vec![1]),
        ..Default::default()
    })
    .await;

    // Sign up through the page, confirm, sign in.
    let res = app
        .post_form(
            "/signup",
            "/signup",
            &[("email", EMAIL), ("password", PW), ("full_name", "Log Privacy")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    app.wait_for_mails(1).await;
    let res = app.get(&app.last_mail_link()).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    app.post_form("/", "/logout", &[]).await;
    let res = app.login(EMAIL, PW).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "signed in");

    // A phone added on the devices page; its key is on the answer.
    let res = app
        .post_form(
            "/devices",
            "/devices",
            &[
                ("name", "Front desk"),
                ("kind", "android"),
                ("phone_number", DEVICE_NUMBER),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let page = res.text().await.unwrap();
    let phone = KeyClient::new(&app, select_text(&page, "#secret")[0].clone());
    let (_, pending) = phone.get("/api/sms/pending").await;
    let device_id = pending["device_id"].as_str().unwrap().to_owned();
    let detail = format!("/devices/{device_id}");
    let res = app
        .post_form(
            &detail,
            &format!("{detail}/pacing"),
            &[("per_minute_limit", "60"), ("per_day_limit", "1000")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);

    // An integration key for the API.
    let user: uuid::Uuid = sqlx::query_scalar("SELECT w.id FROM users JOIN workspaces w ON w.personal_user_id = users.id WHERE email_normalized = $1")
        .bind(EMAIL)
        .fetch_one(app.pool())
        .await
        .unwrap();
    let api = KeyClient::new(
        &app,
        ender_core::apikey::create(
            app.pool(),
            ender_core::workspace::WorkspaceId(user),
            None,
            "logs",
            ender_core::apikey::Scopes::all(),
            None,
            10,
        )
        .await
        .unwrap()
        .secret,
    );

    // A webhook endpoint that gets the bodies too.
    let (hooks, url) = crate::webhooks::receiver().await;
    let (status, endpoint) = api
        .post(
            "/api/webhooks",
            json!({"url": url, "events": ["sms_received", "sms_delivered", "sms_failed"], "include_body": true}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{endpoint}");

    // Sends: through the API, through the page, and refused ones on both.
    let (status, sent) = api
        .post("/api/sms/send", json!({"recipients": [API_TO], "body": API_BODY}))
        .await;
    assert_eq!(status, StatusCode::OK, "{sent}");
    let (status, refused) = api
        .post(
            "/api/sms/send",
            json!({"recipients": [INVALID_TO], "body": API_BODY}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    assert!(refused["message"].as_str().unwrap().contains(INVALID_TO));
    let res = app
        .post_form(
            "/send",
            "/send",
            &[("recipients", PAGE_TO), ("body", PAGE_BODY), ("device_id", "")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let res = app
        .post_form(
            "/send",
            "/send",
            &[("recipients", INVALID_TO), ("body", PAGE_BODY), ("device_id", "")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);

    // The phone takes both, reports one delivered and one failed, and receives one.
    let mut claimed: Vec<Value> = Vec::new();
    for _ in 0..50 {
        let (status, body) = phone.get("/api/sms/pending").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        claimed.extend(body["messages"].as_array().cloned().unwrap_or_default());
        if claimed.len() >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(claimed.len(), 2, "{claimed:?}");
    for (m, outcome) in claimed.iter().zip(["delivered", "failed"]) {
        let id = m["message_id"].as_str().unwrap();
        for status in ["sent", outcome] {
            let error = if status == "failed" { FAILED_REASON } else { "" };
            let (code, body) = phone
                .post(
                    "/api/sms/report",
                    json!({"message_id": id, "status": status, "error_message": error}),
                )
                .await;
            assert_eq!(code, StatusCode::OK, "{body}");
        }
    }
    let (status, body) = phone
        .post(
            "/api/sms/incoming",
            json!({"from_number": INCOMING_FROM, "body": INCOMING_BODY, "timestamp": Utc::now().to_rfc3339()}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for _ in 0..100 {
        if hooks.lock().unwrap().len() >= 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let delivered: Vec<String> = hooks
        .lock()
        .unwrap()
        .iter()
        .map(|(_, body)| String::from_utf8_lossy(body).into_owned())
        .collect();
    assert_eq!(delivered.len(), 3, "{delivered:?}");
    assert!(
        delivered.iter().any(|b| b.contains(INCOMING_BODY)),
        "{delivered:?}"
    );

    // A scheduled send whose message, filled in for its recipient, is too long: refused
    // when it fires, and the refusal names the recipient.
    let (status, contact) = api
        .post(
            "/api/contacts",
            json!({"name": "Scheduled person", "phone_number": SCHEDULED_TO}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{contact}");
    // A second contact with the number is refused, and the refusal names it; a search
    // puts it in a query string.
    let (status, again) = api
        .post(
            "/api/contacts",
            json!({"name": "Same person", "phone_number": SCHEDULED_TO}),
        )
        .await;
    assert!(
        again["message"].as_str().unwrap().contains(SCHEDULED_TO),
        "{status} {again}"
    );
    let res = app.get("/contacts?search=%2B14155550176").await;
    assert_eq!(res.status(), StatusCode::OK);
    let (status, _) = api.get("/api/contacts?search=%2B14155550176").await;
    assert_eq!(status, StatusCode::OK);
    let long = format!("{}{{{{phone}}}}", "x".repeat(1590));
    let (status, template) = api
        .post("/api/templates", json!({"name": "Long", "body": long}))
        .await;
    assert_eq!(status, StatusCode::OK, "{template}");
    let at = Utc::now() + Duration::hours(1);
    let (status, schedule) = api
        .post(
            "/api/schedules",
            json!({
                "name": "Too long", "kind": "once", "run_at": at.format("%Y-%m-%dT%H:%M").to_string(),
                "timezone": "UTC", "recipients": [SCHEDULED_TO], "body": "",
                "template_id": template["id"], "device_id": device_id,
            }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{schedule}");
    let fired = ender_core::schedule::run::fire_due(
        app.pool(),
        &ender_core::config::SmsConfig::default(),
        at + Duration::minutes(5),
        10,
    )
    .await
    .unwrap();
    assert_eq!(fired.len(), 1);
    assert!(fired[0].error.contains(SCHEDULED_TO), "{}", fired[0].error);

    // A contacts import with a good and a bad number.
    let vcf = format!(
        "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Imported One\r\nTEL:{IMPORTED_NATIONAL}\r\nEND:VCARD\r\n\
         BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Imported Two\r\nTEL:{IMPORTED_BAD}\r\nEND:VCARD\r\n"
    );
    let import = uploaded(&app, "book.vcf", vcf.as_bytes()).await;
    run_import(
        &app,
        &import,
        &[
            ("default_country", "+44"),
            ("on_duplicate", "update"),
            ("target", ""),
        ],
    )
    .await;
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM contacts WHERE phone_number = $1")
        .bind(IMPORTED)
        .fetch_one(app.pool())
        .await
        .unwrap();
    assert_eq!(stored, 1);

    let text = logs.text();
    assert!(
        text.contains("scheduled send refused"),
        "the day was logged at all"
    );
    let leaked = crate::logs::leaked(
        &text,
        &[
            DEVICE_NUMBER,
            API_TO,
            PAGE_TO,
            INVALID_TO,
            INCOMING_FROM,
            SCHEDULED_TO,
            IMPORTED,
            IMPORTED_NATIONAL,
            "07700900177",
            IMPORTED_BAD,
            API_BODY,
            PAGE_BODY,
            INCOMING_BODY,
            FAILED_REASON,
        ],
    );
    assert!(leaked.is_empty(), "in the logs: {leaked:?}");
}
