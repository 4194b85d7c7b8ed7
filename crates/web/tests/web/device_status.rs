//! `POST /api/device/status`: a modem's radio report (signal, operator, registration), its
//! bad inputs, and where people see it (device pages and `GET /api/devices`).

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::*;
use crate::simulator::Sim;

#[tokio::test]
async fn a_modem_reports_its_radio_and_people_see_it() {
    let app = TestApp::spawn().await;
    app.signed_in_user("radio@example.org", "radio password 1").await;
    let modem = Sim::register(&app, "radio@example.org", "modem", "Dongle").await;

    let (status, body) = modem
        .post(
            "/api/device/status",
            json!({"signal_dbm": -71, "operator": "Example Mobile", "registration": "roaming"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let html = app.get("/devices").await.text().await.unwrap();
    let radio = select_text(&html, "#devices td.radio").join(" ");
    assert!(
        radio.contains("-71 dBm") && radio.contains("Example Mobile") && radio.contains("roaming"),
        "{radio}"
    );
    assert_eq!(
        select_attr(&html, "#devices .signal", "data-bars").as_deref(),
        Some("4")
    );
    let html = app
        .get(&format!("/devices/{}", modem.id))
        .await
        .text()
        .await
        .unwrap();
    assert!(select_text(&html, "#radio").join(" ").contains("Example Mobile"));

    // The owner's API shows it too.
    let user: uuid::Uuid =
        sqlx::query_scalar("SELECT w.id FROM users JOIN workspaces w ON w.personal_user_id = users.id WHERE email_normalized = 'radio@example.org'")
            .fetch_one(app.pool())
            .await
            .unwrap();
    let key = ender_core::apikey::create(
        app.pool(),
        ender_core::workspace::WorkspaceId(user),
        None,
        "radio",
        ender_core::apikey::Scopes::all(),
        None,
        10,
    )
    .await
    .unwrap()
    .secret;
    let (status, list) = KeyClient::new(&app, key).get("/api/devices").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["items"][0]["signal_dbm"], -71);
    assert_eq!(list["items"][0]["operator"], "Example Mobile");
    assert_eq!(list["items"][0]["registration"], "roaming");
}

#[tokio::test]
async fn bad_radio_reports_are_refused_in_the_envelope() {
    let app = TestApp::spawn().await;
    app.create_user("radio2@example.org", "radio password 2").await;
    let modem = Sim::register(&app, "radio2@example.org", "modem", "Dongle").await;
    for (body, needle) in [
        (json!({"signal_dbm": 20}), "signal_dbm"),
        (json!({"signal_dbm": "strong"}), ""),
        (json!({"registration": "everywhere"}), "registration"),
        (json!({"operator": "x".repeat(65)}), "operator"),
        (json!({"operator": "bad\u{7}"}), "operator"),
    ] {
        let (status, answer) = modem.post("/api/device/status", body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        assert!(
            answer["message"].as_str().unwrap_or("").contains(needle),
            "{answer}"
        );
    }
    let http = reqwest::Client::new();
    let res = http
        .post(app.url("/api/device/status"))
        .header("x-api-key", &modem.key)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let res = http
        .post(app.url("/api/device/status"))
        .header("x-api-key", &modem.key)
        .header("content-type", "application/json")
        .body(format!("{{\"operator\": \"{}\"}}", "x".repeat(2 * 1024 * 1024)))
        .send()
        .await
        .unwrap();
    assert!(
        matches!(res.status(), StatusCode::PAYLOAD_TOO_LARGE),
        "{}",
        res.status()
    );
    // Without a device key, or with a wrong one.
    let res = http
        .post(app.url("/api/device/status"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let res = http
        .post(app.url("/api/device/status"))
        .header("x-api-key", "dk_wrong")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    // Nothing was recorded by the refused reports.
    let recorded: Option<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("SELECT status_at FROM devices WHERE id = $1::uuid")
            .bind(&modem.id)
            .fetch_one(app.pool())
            .await
            .unwrap();
    assert!(recorded.is_none());
}
