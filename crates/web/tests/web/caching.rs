//! Cache hygiene: answers to a signed-in user and every API answer say `no-store`; public
//! pages for signed-out visitors and static files keep their caching.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;
use crate::simulator::Sim;
use crate::sms::Caller;

const PW: &str = "correct horse battery";

fn cache_control(res: &reqwest::Response) -> String {
    res.headers()
        .get("cache-control")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

/// Sends `req` with the key and returns the answer's `Cache-Control`, status and body.
async fn with_key(req: reqwest::RequestBuilder, key: &str) -> (String, StatusCode, Value) {
    let res = req.header("x-api-key", key).send().await.unwrap();
    let cc = cache_control(&res);
    let status = res.status();
    (cc, status, res.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn private_answers_are_not_stored_and_public_ones_keep_their_caching() {
    let app = TestApp::spawn().await;
    let c = Caller::new(&app, "cache@example.org").await;
    let http = reqwest::Client::new();

    // Signed out: the sign-in page and static files are not marked.
    let login = app.get("/login").await;
    assert_eq!(login.status(), StatusCode::OK);
    assert!(
        !cache_control(&login).contains("no-store"),
        "{}",
        cache_control(&login)
    );
    let css = app.get("/static/app.css").await;
    assert_eq!(cache_control(&css), "public, max-age=3600");

    // Signed in: every page, the key page with its new secret included.
    let res = app.login("cache@example.org", PW).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    for path in ["/", "/settings", "/api-keys", "/no/such/page"] {
        let res = app.get(path).await;
        assert_eq!(cache_control(&res), "no-store", "{path}");
    }
    let created = app
        .post_form(
            "/api-keys",
            "/api-keys",
            &[("name", "Shown once"), ("scopes", "send")],
        )
        .await;
    assert_eq!(created.status(), StatusCode::OK);
    assert_eq!(cache_control(&created), "no-store");
    let page = created.text().await.unwrap();
    assert!(page.contains("vk_"), "the new key is on the page");
    assert_eq!(
        cache_control(&app.get("/static/app.css").await),
        "public, max-age=3600"
    );

    // The API, with a key: a new key, a webhook's secret, an error.
    let (cc, status, made) = with_key(
        http.post(app.url("/api/api-keys")).json(&json!({"name": "sdk"})),
        &c.key,
    )
    .await;
    assert_eq!((cc.as_str(), status), ("no-store", StatusCode::OK), "{made}");
    assert!(made["key"].as_str().is_some());
    let (status, hook) = c
        .post(
            "/api/webhooks",
            json!({"url": "https://hooks.example/h", "events": ["sms_sent"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{hook}");
    let secret = format!("/api/webhooks/{}/secret", hook["id"].as_str().unwrap());
    let (cc, status, body) = with_key(http.get(app.url(&secret)), &c.key).await;
    assert_eq!((cc.as_str(), status), ("no-store", StatusCode::OK), "{body}");
    let (cc, status, _) = with_key(http.get(app.url("/api/no-such-route")), &c.key).await;
    assert_eq!((cc.as_str(), status), ("no-store", StatusCode::NOT_FOUND));

    // The device API.
    let phone = Sim::register(&app, "cache@example.org", "android", "Phone").await;
    let (cc, status, body) = with_key(http.get(app.url("/api/sms/pending")), &phone.key).await;
    assert_eq!((cc.as_str(), status), ("no-store", StatusCode::OK), "{body}");
}
