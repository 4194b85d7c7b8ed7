//! The webhook pages against a receiver on loopback: adding an endpoint (bad input kept in
//! the form, the secret shown once), revealing and rotating the secret, test events, replay
//! and re-enable, the live delivery log and each delivery's attempts; sign-in, CSRF and
//! other users' ids.

use chrono::{Duration, Utc};
use reqwest::{Response, StatusCode};
use uuid::Uuid;

use crate::helpers::*;
use crate::webhooks::{insert_delivery, receiver, status_of};

const PW: &str = "correct horse battery";

/// Adds an endpoint through the form; returns its id.
async fn add_endpoint(app: &TestApp, url: &str, events: &[&str]) -> String {
    let mut fields = vec![("url", url), ("description", "CRM")];
    fields.extend(events.iter().map(|e| ("events", *e)));
    let res = app.post_form("/webhooks/new", "/webhooks/new", &fields).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    location(&res).trim_start_matches("/webhooks/").to_owned()
}

/// A form post as HTMX makes it: the token in the header, `HX-Request` set.
async fn htmx_post(app: &TestApp, page: &str, action: &str, fields: &[(&str, &str)]) -> Response {
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

async fn htmx_get(app: &TestApp, path: &str) -> Response {
    app.client
        .get(app.url(path))
        .header("hx-request", "true")
        .send()
        .await
        .unwrap()
}

/// The secrets that sign the endpoint's deliveries now, newest first.
async fn live_secrets(app: &TestApp, endpoint: &str) -> Vec<String> {
    let mut conn = app.pool().acquire().await.unwrap();
    ender_core::webhook::endpoint::live_secrets(&mut conn, &app.keyring, endpoint.parse().unwrap())
        .await
        .unwrap()
}

#[tokio::test]
async fn webhook_pages_need_a_session_and_a_csrf_token() {
    let app = TestApp::spawn().await;
    let res = app.get("/webhooks").await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/login?next=%2Fwebhooks");
    let res = app.get("/webhooks/new").await;
    assert_eq!(location(&res), "/login?next=%2Fwebhooks%2Fnew");

    app.signed_in_user("hooks@example.org", PW).await;
    let page = app.get("/webhooks").await.text().await.unwrap();
    assert!(has(&page, "#webhooks-empty"), "the empty state explains webhooks");
    assert_eq!(
        select_attr(&page, ".sidenav a.active", "href").unwrap(),
        "/webhooks"
    );
    assert!(!has(&page, ".sidenav a.active .soon"));
    assert_eq!(
        select_attr(&page, "#add-endpoint", "href").unwrap(),
        "/webhooks/new"
    );

    let res = app
        .client
        .post(app.url("/webhooks/new"))
        .form(&[("url", "https://x.example/h"), ("events", "sms_sent")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let (_, url) = receiver().await;
    let id = add_endpoint(&app, &url, &["sms_sent"]).await;
    for action in ["", "/test", "/secret", "/rotate", "/replay", "/enable", "/delete"] {
        let res = app
            .client
            .post(app.url(&format!("/webhooks/{id}{action}")))
            .form(&[("overlap", "0")])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{action}");
    }
    assert_eq!(app.get(&format!("/webhooks/{id}")).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn endpoints_are_added_with_their_input_checked_and_the_secret_shown_once() {
    let app = TestApp::spawn().await;
    app.create_user("owner@example.org", PW).await;
    let theirs = crate::simulator::Sim::register(&app, "owner@example.org", "android", "Theirs").await;
    app.signed_in_user("hooks@example.org", PW).await;
    let mine = crate::simulator::Sim::register(&app, "hooks@example.org", "modem", "Dongle").await;

    let form = app.get("/webhooks/new").await.text().await.unwrap();
    assert_eq!(
        select_attr_all(&form, "#events input[type=checkbox]", "value"),
        [
            "sms_received",
            "sms_sent",
            "sms_delivered",
            "sms_failed",
            "sms_expired",
            "device_online",
            "device_offline"
        ]
    );
    assert_eq!(
        select_attr_all(&form, "select#device_id option", "value"),
        ["", mine.id.as_str()]
    );

    for (url, events, device, field) in [
        ("ftp://hooks.example.com/h", vec!["sms_sent"], "", "url"),
        ("http://10.0.0.7/h", vec!["sms_sent"], "", "url"),
        (
            "https://hooks.example.com/h",
            vec!["sms_everything"],
            "",
            "events",
        ),
        ("https://hooks.example.com/h", vec![], "", "events"),
        (
            "https://hooks.example.com/h",
            vec!["sms_sent"],
            theirs.id.as_str(),
            "device_id",
        ),
    ] {
        let mut fields = vec![("url", url), ("device_id", device), ("description", "Kept")];
        fields.extend(events.iter().map(|e| ("events", *e)));
        let res = app.post_form("/webhooks/new", "/webhooks/new", &fields).await;
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY, "{url} {events:?}");
        let page = res.text().await.unwrap();
        assert_eq!(
            select_text(&page, ".field-error").len(),
            1,
            "one message, next to {field}"
        );
        assert!(
            has(&page, &format!(".field-error[data-field={field}]")),
            "{field}"
        );
        assert_eq!(select_attr(&page, "input#url", "value").unwrap(), url);
        assert_eq!(select_attr(&page, "input#description", "value").unwrap(), "Kept");
        if events == ["sms_sent"] {
            assert_eq!(
                select_attr_all(&page, "#events input[checked]", "value"),
                ["sms_sent"],
                "ticked events are kept"
            );
        }
    }
    assert!(
        select_text(
            &app.post_form(
                "/webhooks/new",
                "/webhooks/new",
                &[("url", "http://10.0.0.7/h"), ("events", "sms_sent")]
            )
            .await
            .text()
            .await
            .unwrap(),
            ".field-error[data-field=url]"
        )[0]
        .contains("private or local address")
    );

    let (_, url) = receiver().await;
    let res = app
        .post_form(
            "/webhooks/new",
            "/webhooks/new",
            &[
                ("url", url.as_str()),
                ("events", "sms_sent"),
                ("events", "sms_delivered"),
                ("device_id", mine.id.as_str()),
                ("include_body", "on"),
                ("description", "CRM"),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let detail = location(&res);
    let id = detail.trim_start_matches("/webhooks/").to_owned();
    let page = app.get(&detail).await.text().await.unwrap();
    assert_eq!(
        select_text(&page, ".toast-success span")[0],
        "The endpoint was added."
    );
    let secret = select_text(&page, "#secret")[0].clone();
    assert!(secret.starts_with("whsec_"), "{secret}");
    assert!(has(&page, "[data-copy='#secret']"));
    assert_eq!(
        select_attr(&page, "#include_body", "checked").as_deref(),
        Some("")
    );
    assert_eq!(
        select_attr(&page, "select#device_id option[selected]", "value").unwrap(),
        mine.id
    );
    // Only once: the next visit shows it on demand only.
    let again = app.get(&detail).await.text().await.unwrap();
    assert!(!has(&again, "#secret"));
    assert!(!again.contains(&secret));

    let list = app.get("/webhooks").await.text().await.unwrap();
    assert_eq!(
        select_attr(&list, "#webhooks tbody tr", "data-webhook").unwrap(),
        id
    );
    assert_eq!(select_text(&list, "#webhooks tbody tr td:nth-child(1) a")[0], url);
    assert_eq!(
        select_attr(&list, "#webhooks tbody tr td:nth-child(3)", "data-state").unwrap(),
        "active"
    );
    assert_eq!(
        select_attr(&list, "#webhooks [data-breaker]", "data-breaker").unwrap(),
        "closed"
    );
    assert_eq!(select_text(&list, ".success-rate")[0], "—");

    // The settings form: bad input is kept with its message; good input is saved; unticking
    // "active" pauses the endpoint.
    let bad = app
        .post_form(
            &detail,
            &detail,
            &[
                ("url", "gopher://x.example"),
                ("events", "sms_failed"),
                ("active", "on"),
            ],
        )
        .await;
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let bad = bad.text().await.unwrap();
    assert!(has(&bad, ".field-error[data-field=url]"));
    assert_eq!(
        select_attr(&bad, "#webhook-form input#url", "value").unwrap(),
        "gopher://x.example"
    );
    assert_eq!(
        select_attr_all(&bad, "#webhook-form #events input[checked]", "value"),
        ["sms_failed"]
    );
    let ok = app
        .post_form(
            &detail,
            &detail,
            &[("url", url.as_str()), ("events", "sms_failed")],
        )
        .await;
    assert_eq!(location(&ok), detail);
    let page = app.get(&detail).await.text().await.unwrap();
    assert_eq!(
        select_text(&page, ".toast-success span")[0],
        "The endpoint was saved."
    );
    assert_eq!(
        select_attr(&page, "#endpoint-state", "data-state").unwrap(),
        "paused"
    );
    assert!(has(&page, "#paused-banner"));
    assert!(select_attr(&page, "#active", "checked").is_none());

    let res = app.post_form(&detail, &format!("{detail}/delete"), &[]).await;
    assert_eq!(location(&res), "/webhooks");
    assert_eq!(app.get(&detail).await.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_secret_is_revealed_on_demand_and_rotated_with_a_chosen_overlap() {
    let app = TestApp::spawn().await;
    app.signed_in_user("hooks@example.org", PW).await;
    let (got, url) = receiver().await;
    let id = add_endpoint(&app, &url, &["sms_sent"]).await;
    let detail = format!("/webhooks/{id}");
    let first_page = app.get(&detail).await.text().await.unwrap();
    let first = select_text(&first_page, "#secret")[0].clone();

    // HTMX swaps in the secret alone, with a copy button; without HTMX, the whole page.
    let res = htmx_post(&app, &detail, &format!("{detail}/secret"), &[]).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["vary"], "HX-Request");
    let fragment = res.text().await.unwrap();
    assert!(!fragment.contains("<html"));
    assert_eq!(select_text(&fragment, "#secret")[0], first);
    assert!(has(&fragment, "button[data-copy='#secret']"));
    let page = app
        .post_form(&detail, &format!("{detail}/secret"), &[])
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(select_text(&page, "#secret-slot #secret")[0], first);
    assert!(has(&page, "#webhook-form"));

    let res = app
        .post_form(&detail, &format!("{detail}/rotate"), &[("overlap", "forever")])
        .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(has(
        &res.text().await.unwrap(),
        ".field-error[data-field=overlap]"
    ));

    // 24 hours of overlap: both secrets sign.
    let page = app
        .post_form(&detail, &format!("{detail}/rotate"), &[("overlap", "24h")])
        .await
        .text()
        .await
        .unwrap();
    let second = select_text(&page, "#secret")[0].clone();
    assert_ne!(second, first);
    assert!(select_text(&page, "#revealed")[0].contains("for 24 hours"));
    assert_eq!(live_secrets(&app, &id).await, [second.clone(), first.clone()]);
    htmx_post(&app, &detail, &format!("{detail}/test"), &[]).await;
    let (headers, body) = got.lock().unwrap()[0].clone();
    let mut h = http::HeaderMap::new();
    for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        h.insert(name, headers[name].to_str().unwrap().parse().unwrap());
    }
    for s in [&first, &second] {
        standardwebhooks::Webhook::new(s)
            .unwrap()
            .verify(&body, &h)
            .unwrap();
    }
    let expires: Vec<Option<chrono::DateTime<Utc>>> = sqlx::query_scalar(
        "SELECT expires_at FROM webhook_secrets WHERE endpoint_id = $1::uuid ORDER BY created_at",
    )
    .bind(&id)
    .fetch_all(app.pool())
    .await
    .unwrap();
    let left = expires[0].unwrap() - Utc::now();
    assert!(
        left > Duration::hours(23) && left <= Duration::hours(24),
        "{left}"
    );
    assert_eq!(expires[1], None);

    // Revoke now: only the newest signs.
    let page = app
        .post_form(&detail, &format!("{detail}/rotate"), &[("overlap", "0")])
        .await
        .text()
        .await
        .unwrap();
    let third = select_text(&page, "#secret")[0].clone();
    assert!(select_text(&page, "#revealed")[0].contains("revoked"));
    assert_eq!(live_secrets(&app, &id).await, std::slice::from_ref(&third));
    let shown = htmx_post(&app, &detail, &format!("{detail}/secret"), &[])
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(select_text(&shown, "#secret")[0], third);
    htmx_post(&app, &detail, &format!("{detail}/test"), &[]).await;
    let (headers, body) = got.lock().unwrap()[1].clone();
    let mut h = http::HeaderMap::new();
    for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        h.insert(name, headers[name].to_str().unwrap().parse().unwrap());
    }
    standardwebhooks::Webhook::new(&third)
        .unwrap()
        .verify(&body, &h)
        .unwrap();
    for old in [&first, &second] {
        assert!(
            standardwebhooks::Webhook::new(old)
                .unwrap()
                .verify(&body, &h)
                .is_err()
        );
    }
}

#[tokio::test]
async fn test_events_report_the_attempt_and_still_go_to_a_paused_or_disabled_endpoint() {
    let app = TestApp::spawn().await;
    app.signed_in_user("hooks@example.org", PW).await;
    let (got, url) = receiver().await;
    let id = add_endpoint(&app, &url, &["sms_sent"]).await;
    let detail = format!("/webhooks/{id}");

    let res = htmx_post(&app, &detail, &format!("{detail}/test"), &[]).await;
    assert_eq!(res.status(), StatusCode::OK);
    let fragment = res.text().await.unwrap();
    assert!(!fragment.contains("<html"));
    assert_eq!(select_text(&fragment, "#test-status")[0], "succeeded");
    assert_eq!(select_text(&fragment, "#test-response")[0], "HTTP 200");
    assert!(select_text(&fragment, "#test-duration")[0].ends_with(" ms"));
    assert!(!has(&fragment, "#test-note"));
    let event: serde_json::Value = serde_json::from_slice(&got.lock().unwrap()[0].1).unwrap();
    assert_eq!(event["event"], "test");

    // Paused by its owner: the test still goes, and the page says so.
    app.post_form(&detail, &detail, &[("url", url.as_str()), ("events", "sms_sent")])
        .await;
    let page = app
        .post_form(&detail, &format!("{detail}/test"), &[])
        .await
        .text()
        .await
        .unwrap();
    assert!(has(&page, "#webhook-form"), "without HTMX, the whole page");
    assert!(select_text(&page, "#test-note")[0].contains("paused; the test was still sent"));
    assert_eq!(select_text(&page, "#test-status")[0], "succeeded");
    assert_eq!(got.lock().unwrap().len(), 2);

    // Disabled by Ender, and the receiver gone: the attempt's error is shown.
    sqlx::query(
        "UPDATE webhook_endpoints SET active = false, disabled_at = now(), disabled_reason = 'It answered 410 Gone.',
                url = 'http://127.0.0.1:9/gone' WHERE id = $1::uuid",
    )
    .bind(&id)
    .execute(app.pool())
    .await
    .unwrap();
    let fragment = htmx_post(&app, &detail, &format!("{detail}/test"), &[])
        .await
        .text()
        .await
        .unwrap();
    assert!(
        select_text(&fragment, "#test-note")[0]
            .contains("Ender disabled this endpoint; the test was still sent")
    );
    assert_eq!(select_text(&fragment, "#test-response")[0], "no response");
    assert!(!select_text(&fragment, "#test-error")[0].is_empty());
    assert_ne!(select_text(&fragment, "#test-status")[0], "succeeded");
}

#[tokio::test]
async fn failed_deliveries_are_replayed_since_a_time_and_a_disabled_endpoint_re_enabled() {
    let app = TestApp::spawn().await;
    app.signed_in_user("hooks@example.org", PW).await;
    let (_, url) = receiver().await;
    let id = add_endpoint(&app, &url, &["sms_sent"]).await;
    let detail = format!("/webhooks/{id}");
    let recent = insert_delivery(&app, &id, "failed", 60).await;
    let old = insert_delivery(&app, &id, "failed", 3 * 24 * 60).await;
    let done = insert_delivery(&app, &id, "succeeded", 30).await;

    let page = app.get(&detail).await.text().await.unwrap();
    let default = select_attr(&page, "input#since", "value").unwrap();
    let expected = (Utc::now() - Duration::hours(24))
        .format("%Y-%m-%dT%H")
        .to_string();
    assert!(default.starts_with(&expected), "{default}");

    for bad in ["yesterday", "2999-01-01T00:00"] {
        let res = app
            .post_form(&detail, &format!("{detail}/replay"), &[("since", bad)])
            .await;
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
        let page = res.text().await.unwrap();
        assert!(has(&page, ".field-error[data-field=since]"));
        assert_eq!(select_attr(&page, "input#since", "value").unwrap(), bad);
    }
    assert_eq!(status_of(&app, recent).await, "failed");

    let since = (Utc::now() - Duration::days(1))
        .format("%Y-%m-%dT%H:%M")
        .to_string();
    let res = app
        .post_form(&detail, &format!("{detail}/replay"), &[("since", since.as_str())])
        .await;
    assert_eq!(location(&res), detail);
    let page = app.get(&detail).await.text().await.unwrap();
    assert!(
        select_text(&page, ".toast-success span")[0].starts_with("1 failed delivery since"),
        "{:?}",
        select_text(&page, ".toast-success span")
    );
    assert_eq!(status_of(&app, recent).await, "pending");
    assert_eq!(status_of(&app, old).await, "failed");
    assert_eq!(status_of(&app, done).await, "succeeded");

    // Ender disabled it an hour ago after failing for two: events since were held.
    sqlx::query(
        "UPDATE webhook_endpoints SET active = false, disabled_at = now() - interval '1 hour',
                failing_since = now() - interval '3 hours', disabled_reason = 'It failed for 72 hours.',
                consecutive_failures = 9, last_failure_at = now() - interval '1 hour', last_failure = 'HTTP 503'
         WHERE id = $1::uuid",
    )
    .bind(&id)
    .execute(app.pool())
    .await
    .unwrap();
    sqlx::query("UPDATE webhook_deliveries SET status = 'failed' WHERE id = $1")
        .bind(recent)
        .execute(app.pool())
        .await
        .unwrap();
    let held = insert_delivery(&app, &id, "held", 10).await;
    let page = app.get(&detail).await.text().await.unwrap();
    let banner = select_text(&page, "#disabled-banner")[0].clone();
    assert!(banner.contains("It failed for 72 hours."), "{banner}");
    assert!(has(&page, "#reenable"));
    assert_eq!(
        select_attr(&page, "#breaker", "data-breaker").unwrap(),
        "half_open"
    );
    assert!(select_text(&page, "#last-failure")[0].contains("HTTP 503"));
    let list = app.get("/webhooks").await.text().await.unwrap();
    let state = select_text(&list, "#webhooks tbody tr td:nth-child(3)")[0].clone();
    assert!(
        state.contains("disabled by Ender") && state.contains("It failed for 72 hours."),
        "{state}"
    );
    assert!(select_text(&list, "#webhooks tbody tr td:nth-child(5)")[0].contains("HTTP 503"));

    let res = app.post_form(&detail, &format!("{detail}/enable"), &[]).await;
    assert_eq!(location(&res), detail);
    let page = app.get(&detail).await.text().await.unwrap();
    assert_eq!(
        select_text(&page, ".toast-success span")[0],
        "The endpoint is enabled again; 2 missed deliveries were queued."
    );
    assert!(!has(&page, "#disabled-banner"));
    assert_eq!(
        select_attr(&page, "#endpoint-state", "data-state").unwrap(),
        "active"
    );
    assert_eq!(select_attr(&page, "#breaker", "data-breaker").unwrap(), "closed");
    assert_eq!(status_of(&app, held).await, "pending");
    assert_eq!(status_of(&app, recent).await, "pending");
    assert_eq!(status_of(&app, old).await, "failed");
}

#[tokio::test]
async fn the_live_delivery_log_and_the_attempt_detail_show_real_rows() {
    let app = TestApp::spawn().await;
    app.signed_in_user("hooks@example.org", PW).await;
    let (got, url) = receiver().await;
    let id = add_endpoint(&app, &url, &["sms_sent"]).await;
    let detail = format!("/webhooks/{id}");
    for i in 0..50 {
        insert_delivery(&app, &id, if i % 2 == 0 { "failed" } else { "pending" }, 100 + i).await;
    }
    htmx_post(&app, &detail, &format!("{detail}/test"), &[]).await;
    let test: Uuid = sqlx::query_scalar("SELECT id FROM webhook_deliveries WHERE event = 'test'")
        .fetch_one(app.pool())
        .await
        .unwrap();

    let page = app.get(&detail).await.text().await.unwrap();
    assert_eq!(
        select_attr(&page, "#delivery-log", "hx-trigger").unwrap(),
        "every 2s"
    );
    assert_eq!(
        select_attr(&page, "#delivery-log", "hx-get").unwrap(),
        format!("/webhooks/{id}/deliveries?status=")
    );

    let res = htmx_get(&app, &format!("{detail}/deliveries")).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["vary"], "HX-Request");
    let fragment = res.text().await.unwrap();
    assert!(!fragment.contains("<html"));
    assert_eq!(select_text(&fragment, "#deliveries tbody tr").len(), 50);
    assert_eq!(
        select_attr(&fragment, "#deliveries tbody tr", "data-delivery").unwrap(),
        test.to_string(),
        "newest first"
    );
    assert_eq!(
        select_text(&fragment, "#deliveries tbody tr:first-child td:nth-child(2)")[0],
        "test"
    );
    assert_eq!(
        select_text(&fragment, "#deliveries tbody tr:first-child [data-status]")[0],
        "succeeded"
    );
    assert_eq!(
        select_text(&fragment, "#deliveries tbody tr:first-child td:nth-child(4)")[0],
        "1"
    );
    assert_eq!(
        select_text(&fragment, "#deliveries tbody tr:first-child td:nth-child(5)")[0],
        "HTTP 200"
    );
    assert_eq!(
        select_text(&fragment, "#deliveries tbody tr:nth-child(2) td:nth-child(5)")[0],
        "HTTP 500",
        "the last error"
    );
    assert!(
        !select_text(&fragment, "#deliveries tbody tr:nth-child(3) td:nth-child(6)")[0].is_empty(),
        "a pending delivery says when it goes next"
    );

    // Older ones: a plain page, which does not refresh itself.
    let older = select_attr(&fragment, "#older", "href").unwrap();
    let res = app.get(&older).await;
    assert_eq!(res.headers()["vary"], "HX-Request");
    let page = res.text().await.unwrap();
    assert!(page.contains("<html"));
    assert!(select_attr(&page, "#delivery-log", "hx-trigger").is_none());
    assert_eq!(select_text(&page, "#deliveries tbody tr").len(), 1);
    assert!(!has(&page, "#older"));

    let failed = htmx_get(&app, &format!("{detail}/deliveries?status=failed"))
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(
        select_text(&failed, "#deliveries [data-status]"),
        vec!["failed"; 25]
    );
    assert_eq!(
        select_attr(&failed, "#delivery-log", "hx-get").unwrap(),
        format!("/webhooks/{id}/deliveries?status=failed")
    );

    // The attempt detail: payload, headers, status, response body; "retry now" sends again.
    let link = format!("{detail}/deliveries/{test}");
    let page = app.get(&link).await.text().await.unwrap();
    let payload: serde_json::Value = serde_json::from_str(&select_text(&page, "#payload")[0]).unwrap();
    assert_eq!(payload["event"], "test");
    assert!(
        select_text(&page, "#payload")[0].contains("\n  \"event\": \"test\""),
        "pretty-printed"
    );
    assert_eq!(select_text(&page, "[data-attempt]").len(), 1);
    assert_eq!(select_text(&page, "[data-attempt] .attempt-status")[0], "200");
    assert_eq!(select_text(&page, "[data-attempt] .attempt-body")[0], "ok");
    assert!(
        select_text(&page, "[data-attempt] .headers dt").contains(&"webhook-signature".to_owned()),
        "{:?}",
        select_text(&page, "[data-attempt] .headers dt")
    );
    let res = app.post_form(&link, &format!("{link}/retry"), &[]).await;
    assert_eq!(location(&res), link);
    let page = app.get(&link).await.text().await.unwrap();
    assert!(select_text(&page, ".toast-success span")[0].starts_with("Sent again: HTTP 200 in "));
    assert_eq!(select_text(&page, "[data-attempt]").len(), 2);
    let received = got.lock().unwrap().clone();
    assert_eq!(received.len(), 2);
    assert_eq!(received[0].1, received[1].1, "the same bytes");

    // A delivery never attempted says so.
    let fresh = insert_delivery(&app, &id, "pending", 1).await;
    let page = app
        .get(&format!("{detail}/deliveries/{fresh}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(has(&page, "#no-attempts"));
    assert_eq!(select_text(&page, "#delivery-status")[0], "pending");
}

#[tokio::test]
async fn another_users_endpoints_and_deliveries_are_not_found_on_every_page_and_action() {
    let app = TestApp::spawn().await;
    app.signed_in_user("owner@example.org", PW).await;
    let (got, url) = receiver().await;
    let id = add_endpoint(&app, &url, &["sms_sent"]).await;
    let delivery = insert_delivery(&app, &id, "failed", 5).await;
    let secrets = live_secrets(&app, &id).await;

    let snoop = TestApp::new_client(&app);
    app.create_user("snoop@example.org", PW).await;
    post_form_with(
        &snoop,
        &app,
        "/login",
        "/login",
        &[("email", "snoop@example.org"), ("password", PW)],
    )
    .await;
    // The snoop's own endpoint, to try the owner's delivery under it.
    let res = post_form_with(
        &snoop,
        &app,
        "/webhooks/new",
        "/webhooks/new",
        &[("url", url.as_str()), ("events", "sms_sent")],
    )
    .await;
    let own = location(&res).trim_start_matches("/webhooks/").to_owned();

    let get = |path: String| {
        let snoop = snoop.clone();
        let url = app.url(&path);
        async move { snoop.get(url).send().await.unwrap().status() }
    };
    for path in [
        format!("/webhooks/{id}"),
        format!("/webhooks/{id}/deliveries"),
        format!("/webhooks/{id}/deliveries/{delivery}"),
        format!("/webhooks/{own}/deliveries/{delivery}"),
        "/webhooks/not-an-id".to_owned(),
        format!("/webhooks/{id}/deliveries/not-an-id"),
    ] {
        assert_eq!(get(path.clone()).await, StatusCode::NOT_FOUND, "{path}");
    }
    let since = (Utc::now() - Duration::days(1))
        .format("%Y-%m-%dT%H:%M")
        .to_string();
    for (action, fields) in [
        (
            format!("/webhooks/{id}"),
            vec![("url", url.as_str()), ("events", "sms_sent")],
        ),
        (format!("/webhooks/{id}/enable"), vec![]),
        (format!("/webhooks/{id}/test"), vec![]),
        (format!("/webhooks/{id}/secret"), vec![]),
        (format!("/webhooks/{id}/rotate"), vec![("overlap", "0")]),
        (format!("/webhooks/{id}/replay"), vec![("since", since.as_str())]),
        (format!("/webhooks/{id}/delete"), vec![]),
        (format!("/webhooks/{id}/deliveries/{delivery}/retry"), vec![]),
        (format!("/webhooks/{own}/deliveries/{delivery}/retry"), vec![]),
        ("/webhooks/not-an-id/test".to_owned(), vec![]),
    ] {
        let res = post_form_with(&snoop, &app, "/webhooks", &action, &fields).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{action}");
    }
    // Nothing happened to the owner's endpoint.
    assert!(got.lock().unwrap().is_empty());
    assert_eq!(status_of(&app, delivery).await, "failed");
    assert_eq!(live_secrets(&app, &id).await, secrets, "not rotated");
    let page = app.get(&format!("/webhooks/{id}")).await.text().await.unwrap();
    assert_eq!(
        select_attr(&page, "#endpoint-state", "data-state").unwrap(),
        "active"
    );
    let list = snoop
        .get(app.url("/webhooks"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        select_attr_all(&list, "#webhooks tbody tr", "data-webhook"),
        [own]
    );
}

#[tokio::test]
async fn adding_an_endpoint_beyond_the_limit_re_renders_the_form() {
    let app = TestApp::spawn_with(Options {
        sms: Some(ender_core::config::SmsConfig {
            limits: ender_core::config::TenantLimits {
                max_webhooks: 2,
                ..Default::default()
            },
            ..Default::default()
        }),
        ..Default::default()
    })
    .await;
    app.signed_in_user("limited-hooks@example.org", PW).await;
    add_endpoint(&app, "https://one.example.com/h", &["sms_sent"]).await;
    add_endpoint(&app, "https://two.example.com/h", &["sms_sent"]).await;
    let res = app
        .post_form(
            "/webhooks/new",
            "/webhooks/new",
            &[
                ("url", "https://three.example.com/h"),
                ("events", "sms_failed"),
                ("description", "Third"),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let page = res.text().await.unwrap();
    assert_eq!(
        select_text(&page, ".field-error[data-field=url]"),
        ["This workspace can keep at most 2 webhook endpoints."]
    );
    assert_eq!(
        select_attr(&page, "input#url", "value").unwrap(),
        "https://three.example.com/h",
        "the input is kept"
    );
    assert_eq!(
        select_attr_all(&page, "#events input[checked]", "value"),
        ["sms_failed"]
    );
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM webhook_endpoints")
        .fetch_one(app.pool())
        .await
        .unwrap();
    assert_eq!(stored, 2);
}
