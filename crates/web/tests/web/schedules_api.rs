//! Scheduled sends through the API: cron checks, creating, changing, pausing and deleting
//! schedules, the per-user limit and its quota body, firing and the run history, and what
//! the routes do with bad bodies, missing keys and other users' ids.

use chrono::{DateTime, Duration, Utc};
use ender_core::config::SmsConfig;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::contacts_api::{Api, envelope, refuses_bad_requests, route};
use crate::helpers::*;
use crate::simulator::Sim;

fn recurring(name: &str) -> Value {
    json!({
        "name": name, "kind": "recurring", "cron_expression": "0 9 * * *", "timezone": "Europe/London",
        "recipients": ["+15550800001"], "body": "Stand-up in five minutes.",
    })
}

/// A one-time send at `at` on the UTC wall clock.
fn once(name: &str, at: DateTime<Utc>, recipients: &[&str]) -> Value {
    json!({
        "name": name, "kind": "once", "run_at": at.format("%Y-%m-%dT%H:%M").to_string(), "timezone": "UTC",
        "recipients": recipients, "body": "Your parcel arrives today.",
    })
}

fn time(v: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(v.as_str().unwrap())
        .unwrap()
        .to_utc()
}

fn string_list(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn cron_expressions_are_validated_with_their_next_runs() {
    let app = TestApp::spawn().await;
    let api = Api::new(&app, "cron@example.org").await;
    let before = Utc::now();
    let daily = api
        .ok(
            Method::POST,
            "/api/sms/validate-cron",
            json!({"expression": " 0  9 * * * "}),
        )
        .await;
    assert_eq!(daily["valid"], true);
    assert_eq!(
        (
            daily["description"].as_str(),
            daily["timezone"].as_str(),
            daily["expression"].as_str()
        ),
        (Some("Every day at 09:00"), Some("UTC"), Some("0 9 * * *"))
    );
    let next = daily["next_run"].as_str().unwrap();
    assert!(next.ends_with("T09:00:00.000Z"), "{next}");
    let runs = string_list(&daily["next_runs"]);
    assert_eq!((runs.len(), runs[0].as_str()), (5, next));
    let times: Vec<DateTime<Utc>> = runs.iter().map(|r| time(&json!(r))).collect();
    assert!(times[0] > before && times[0] <= before + Duration::days(1));
    assert!(
        times.windows(2).all(|w| w[1] - w[0] == Duration::days(1)),
        "{runs:?}"
    );

    // In a time zone: 08:30 on the London wall clock is 07:30 or 08:30 UTC.
    let london = api
        .ok(
            Method::POST,
            "/api/sms/validate-cron",
            json!({"expression": "30 8 * * MON-FRI", "timezone": "Europe/London"}),
        )
        .await;
    assert_eq!(
        (london["valid"].clone(), london["timezone"].clone()),
        (json!(true), json!("Europe/London"))
    );
    let at = time(&london["next_run"]);
    assert!(
        at.format("%M:%S").to_string() == "30:00"
            && ["07", "08"].contains(&at.format("%H").to_string().as_str()),
        "{at}"
    );
    for (body, expected) in [
        (json!({"expression": "@daily", "timezone": ""}), json!(true)),
        (
            json!({"expression": "*/15 * * * *", "timezone": null}),
            json!(true),
        ),
    ] {
        let answer = api.ok(Method::POST, "/api/sms/validate-cron", body.clone()).await;
        assert_eq!(answer["valid"], expected, "{body}");
    }

    for (body, error) in [
        (json!({"expression": "61 * * * *"}), None),
        (json!({"expression": "0 0 30 2 *"}), None),
        (
            json!({"expression": "0 9 * *"}),
            Some("Expected 5 fields (minute hour day month weekday), found 4."),
        ),
        (
            json!({}),
            Some("Expected 5 fields (minute hour day month weekday), found 0."),
        ),
        (
            json!({"expression": "0 9 * * *", "timezone": "Mars/Olympus"}),
            Some("Unknown time zone: Mars/Olympus. Use an IANA name such as Europe/London."),
        ),
    ] {
        let answer = api.ok(Method::POST, "/api/sms/validate-cron", body.clone()).await;
        assert_eq!(answer["valid"], false, "{body}");
        assert!(answer.get("next_run").is_none(), "{body}");
        let message = answer["error"].as_str().unwrap();
        match error {
            Some(e) => assert_eq!(message, e),
            None => assert!(message.ends_with('.') && message.len() > 10, "{message}"),
        }
    }
    let minute = api
        .ok(
            Method::POST,
            "/api/sms/validate-cron",
            json!({"expression": "61 * * * *"}),
        )
        .await;
    assert!(
        minute["error"].as_str().unwrap().starts_with("Minute: "),
        "{minute}"
    );
    let never = api
        .ok(
            Method::POST,
            "/api/sms/validate-cron",
            json!({"expression": "0 0 30 2 *"}),
        )
        .await;
    assert!(
        never["error"].as_str().unwrap().starts_with("Day of month: "),
        "{never}"
    );
}

#[tokio::test]
async fn recurring_and_one_time_schedules_are_created_changed_and_deleted() {
    let app = TestApp::spawn().await;
    let api = Api::new(&app, "sched@example.org").await;
    let team = api.group("Team").await;
    let daily = api
        .ok(Method::POST, "/api/schedules", recurring("Stand-up"))
        .await;
    let id = daily["id"].as_str().unwrap().to_owned();
    assert_eq!(
        (
            daily["kind"].as_str(),
            daily["cron_expression"].as_str(),
            daily["run_at"].as_str(),
            daily["timezone"].as_str(),
            daily["status"].as_str(),
        ),
        (
            Some("recurring"),
            Some("0 9 * * *"),
            Some(""),
            Some("Europe/London"),
            Some("active")
        )
    );
    assert_eq!(daily["description"], "Every day at 09:00 (Europe/London)");
    assert_eq!(
        (
            daily["template_id"].as_str(),
            daily["device_id"].as_str(),
            daily["last_run_at"].as_str()
        ),
        (Some(""), Some(""), Some(""))
    );
    assert_eq!(
        (daily["run_count"].clone(), daily["variables"].clone()),
        (json!(0), json!({}))
    );
    let next_runs = string_list(&daily["next_runs"]);
    assert_eq!(next_runs.len(), 5);
    assert_eq!(daily["next_run_at"].as_str(), Some(next_runs[0].as_str()));
    assert!(time(&daily["next_run_at"]) > Utc::now());

    let at = Utc::now() + Duration::days(2);
    let mut one_time = once("Parcel", at, &["+15550800002", "+15550800002"]);
    one_time["group_ids"] = json!([team]);
    let parcel = api.ok(Method::POST, "/api/schedules", one_time).await;
    let local = at.format("%Y-%m-%dT%H:%M").to_string();
    assert_eq!(
        (
            parcel["kind"].as_str(),
            parcel["run_at"].as_str(),
            parcel["cron_expression"].as_str()
        ),
        (Some("once"), Some(local.as_str()), Some(""))
    );
    assert_eq!(
        (parcel["recipients"].clone(), parcel["group_ids"].clone()),
        (json!(["+15550800002"]), json!([team]))
    );
    assert_eq!(
        parcel["next_run_at"].as_str().unwrap(),
        format!("{local}:00.000Z")
    );
    assert_eq!(string_list(&parcel["next_runs"]), [format!("{local}:00.000Z")]);

    // Newest first, with paging totals.
    let (_, list) = api.get("/api/schedules").await;
    assert_eq!(list["total_items"], 2);
    assert_eq!(list["items"][0]["id"], parcel["id"]);
    let (_, page) = api.get("/api/schedules?per_page=1&page=2").await;
    assert_eq!(
        (page["items"][0]["id"].as_str(), page["total_pages"].as_i64()),
        (Some(id.as_str()), Some(2))
    );
    assert_eq!(
        api.ok(Method::GET, &format!("/api/schedules/{id}"), Value::Null)
            .await,
        daily
    );

    // PUT replaces the definition and works out the next run afresh.
    let mut evening = recurring("Evening");
    evening["cron_expression"] = json!("0 18 * * *");
    evening["recipients"] = json!([]);
    evening["group_ids"] = json!([team]);
    let changed = api
        .ok(Method::PUT, &format!("/api/schedules/{id}"), evening)
        .await;
    assert_eq!(
        (
            changed["name"].as_str(),
            changed["description"].as_str(),
            changed["recipients"].clone()
        ),
        (
            Some("Evening"),
            Some("Every day at 18:00 (Europe/London)"),
            json!([])
        )
    );
    assert_ne!(changed["next_run_at"], daily["next_run_at"]);

    assert_eq!(
        api.delete(&format!("/api/schedules/{id}")).await,
        (StatusCode::OK, json!({"success": true}))
    );
    assert_eq!(
        api.get(&format!("/api/schedules/{id}")).await,
        (StatusCode::NOT_FOUND, envelope(404, "Schedule not found."))
    );
    assert_eq!(api.get("/api/schedules").await.1["total_items"], 1);
}

#[tokio::test]
async fn bad_schedules_are_refused_naming_each_field() {
    let app = TestApp::spawn().await;
    let api = Api::new(&app, "badsched@example.org").await;
    let stranger = Api::new(&app, "stranger-sched@example.org").await;
    let their_group = stranger.group("Theirs").await;
    let their_template = stranger.template("Theirs", "Hi").await;
    Sim::register(&app, "stranger-sched@example.org", "android", "Their phone").await;
    let their_device: String = sqlx::query_scalar("SELECT id::text FROM devices")
        .fetch_one(app.pool())
        .await
        .unwrap();

    let past = once("Late", Utc::now() - Duration::hours(1), &["+15550900001"]);
    let (status, answer) = api.post("/api/schedules", past).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        answer,
        json!({"data": {"errors": {"run_at": "This time has already passed; choose a time in the future."}},
               "message": "This time has already passed; choose a time in the future.", "status": 400})
    );

    let mut bad_cron = recurring("Bad");
    bad_cron["cron_expression"] = json!("0 25 * * *");
    let (status, answer) = api.post("/api/schedules", bad_cron).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let message = answer["data"]["errors"]["cron_expression"].as_str().unwrap();
    assert!(message.starts_with("Hour: "), "{message}");
    assert_eq!(answer["message"].as_str(), Some(message));

    // Every problem at once, the first as the message.
    let (status, answer) = api
        .post(
            "/api/schedules",
            json!({"kind": "recurring", "cron_expression": "nonsense", "timezone": "Mars/Olympus"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let errors = answer["data"]["errors"].as_object().unwrap();
    let mut fields: Vec<&str> = errors.keys().map(String::as_str).collect();
    fields.sort_unstable();
    assert_eq!(fields, ["body", "cron_expression", "recipients", "timezone"]);
    assert_eq!(
        answer["message"],
        "Unknown time zone: Mars/Olympus. Use an IANA name such as Europe/London."
    );
    let (_, answer) = api.post("/api/schedules", json!({"kind": "often"})).await;
    assert_eq!(answer["data"]["errors"]["kind"], "Choose one-time or recurring.");

    // Other users' groups, templates and devices are not found, and say which field.
    for (field, value, message) in [
        ("group_ids", json!([their_group]), "Group not found."),
        ("group_ids", json!(["nonsense"]), "Group not found."),
        ("template_id", json!(their_template), "Template not found."),
        ("device_id", json!(their_device), "Device not found."),
    ] {
        let mut body = recurring("Borrowed");
        body[field] = value;
        let (status, answer) = api.post("/api/schedules", body).await;
        assert_eq!(
            (
                status,
                answer["message"].as_str(),
                answer["data"]["errors"][field].as_str()
            ),
            (StatusCode::BAD_REQUEST, Some(message), Some(message)),
            "{field}"
        );
    }
    assert_eq!(api.get("/api/schedules").await.1["total_items"], 0);
}

#[tokio::test]
async fn the_schedule_limit_answers_with_the_quota_body() {
    let app = TestApp::spawn_with(Options {
        sms: Some(SmsConfig {
            max_schedules: 2,
            ..SmsConfig::default()
        }),
        ..Default::default()
    })
    .await;
    let api = Api::new(&app, "limit@example.org").await;
    let (_, quota) = api.get("/api/plans/quota").await;
    assert_eq!(
        (
            quota["scheduled_sms_count"].clone(),
            quota["max_scheduled_sms"].clone()
        ),
        (json!(0), json!(2))
    );
    let first = api.ok(Method::POST, "/api/schedules", recurring("One")).await;
    api.ok(Method::POST, "/api/schedules", recurring("Two")).await;
    // A paused schedule still counts.
    api.ok(
        Method::POST,
        &format!("/api/schedules/{}/pause", first["id"].as_str().unwrap()),
        Value::Null,
    )
    .await;
    let (status, answer) = api.post("/api/schedules", recurring("Three")).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        answer,
        json!({
            "detail": "You have 2 of 2 scheduled sends; delete one before adding another.",
            "error": "quota_exceeded", "quota_type": "scheduled_sms", "limit": 2, "used": 2, "available": 0,
            "upgrade_url": "/api/plans/upgrade",
        })
    );
    let (_, quota) = api.get("/api/plans/quota").await;
    assert_eq!(
        (
            quota["scheduled_sms_count"].clone(),
            quota["max_scheduled_sms"].clone()
        ),
        (json!(2), json!(2))
    );
    // The limit is per user.
    let other = Api::new(&app, "limit-other@example.org").await;
    other
        .ok(Method::POST, "/api/schedules", recurring("Theirs"))
        .await;

    let (status, _) = api
        .delete(&format!("/api/schedules/{}", first["id"].as_str().unwrap()))
        .await;
    assert_eq!(status, StatusCode::OK);
    api.ok(Method::POST, "/api/schedules", recurring("Three")).await;
    assert_eq!(api.get("/api/plans/quota").await.1["scheduled_sms_count"], 2);
}

#[tokio::test]
async fn schedules_are_paused_and_resumed() {
    let app = TestApp::spawn().await;
    let api = Api::new(&app, "pause@example.org").await;
    let daily = api.ok(Method::POST, "/api/schedules", recurring("Daily")).await;
    let id = daily["id"].as_str().unwrap();
    let paused = api
        .ok(Method::POST, &format!("/api/schedules/{id}/pause"), Value::Null)
        .await;
    assert_eq!(
        (paused["status"].as_str(), paused["next_runs"].clone()),
        (Some("paused"), json!([]))
    );
    // Pausing twice changes nothing; an empty JSON object is as good as no body.
    let again = api
        .ok(Method::POST, &format!("/api/schedules/{id}/pause"), json!({}))
        .await;
    assert_eq!(again["status"], "paused");
    let resumed = api
        .ok(Method::POST, &format!("/api/schedules/{id}/resume"), Value::Null)
        .await;
    assert_eq!(resumed["status"], "active");
    assert!(time(&resumed["next_run_at"]) > Utc::now());
    assert_eq!(string_list(&resumed["next_runs"]).len(), 5);
    let again = api
        .ok(Method::POST, &format!("/api/schedules/{id}/resume"), Value::Null)
        .await;
    assert_eq!(again["status"], "active");
}

#[tokio::test]
async fn due_schedules_fire_once_and_their_runs_are_listed() {
    let app = TestApp::spawn().await;
    let email = "fire@example.org";
    let api = Api::new(&app, email).await;
    Sim::register(&app, email, "android", "Phone").await;
    api.contact("Ana", "+15551000001", &[]).await;
    let template = api.template("Reminder", "Reminder for {{name}}: {{what}}.").await;

    let now = Utc::now();
    let parcel = api
        .ok(
            Method::POST,
            "/api/schedules",
            once(
                "Parcel",
                now + Duration::hours(1),
                &["+15551000002", "+15551000003"],
            ),
        )
        .await;
    let parcel_id = parcel["id"].as_str().unwrap().to_owned();
    let mut every = recurring("Every five minutes");
    every["cron_expression"] = json!("*/5 * * * *");
    every["recipients"] = json!(["+15551000001"]);
    every["body"] = json!("");
    every["template_id"] = json!(template);
    every["variables"] = json!({"what": "dentist"});
    let reminder = api.ok(Method::POST, "/api/schedules", every).await;
    let reminder_id = reminder["id"].as_str().unwrap().to_owned();
    assert_eq!(
        (
            reminder["template_id"].as_str(),
            reminder["variables"].clone(),
            reminder["body"].as_str()
        ),
        (Some(template.as_str()), json!({"what": "dentist"}), Some(""))
    );
    assert_eq!(
        api.ok(
            Method::GET,
            &format!("/api/schedules/{parcel_id}/runs"),
            Value::Null
        )
        .await,
        json!({"items": []})
    );
    assert_eq!(api.get("/api/plans/quota").await.1["scheduled_sms_count"], 2);

    // A template used by a schedule cannot be deleted.
    let (status, answer) = api.delete(&format!("/api/templates/{template}")).await;
    assert_eq!(
        (status, answer),
        (
            StatusCode::CONFLICT,
            envelope(
                409,
                "This template is used by 1 scheduled send(s); change or delete them first."
            )
        )
    );

    let fired =
        ender_core::schedule::run::fire_due(app.pool(), &SmsConfig::default(), now + Duration::hours(2), 10)
            .await
            .unwrap();
    assert_eq!(fired.len(), 2, "{fired:?}");
    // Nothing is due any more.
    let again =
        ender_core::schedule::run::fire_due(app.pool(), &SmsConfig::default(), now + Duration::hours(2), 10)
            .await
            .unwrap();
    assert!(again.is_empty(), "{again:?}");

    let (_, runs) = api.get(&format!("/api/schedules/{parcel_id}/runs")).await;
    let items = runs["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{runs}");
    let run = &items[0];
    assert_eq!(
        (run["messages"].clone(), run["error"].clone(), run["late"].clone()),
        (json!(2), json!(""), json!(true))
    );
    assert_eq!(run["due_at"], parcel["next_run_at"]);
    assert!(!run["batch_id"].as_str().unwrap().is_empty());
    assert_eq!(run["ran_at"], api_ts(now + Duration::hours(2)));
    let (_, batch) = api
        .get(&format!("/api/sms/batch/{}", run["batch_id"].as_str().unwrap()))
        .await;
    assert_eq!(batch["total"], 2);

    let done = api
        .ok(Method::GET, &format!("/api/schedules/{parcel_id}"), Value::Null)
        .await;
    assert_eq!(
        (
            done["status"].as_str(),
            done["run_count"].as_i64(),
            done["next_run_at"].as_str(),
            done["next_runs"].clone()
        ),
        (Some("completed"), Some(1), Some(""), json!([]))
    );
    assert!(!done["last_run_at"].as_str().unwrap().is_empty());
    for action in ["pause", "resume"] {
        let (status, answer) = api
            .post(&format!("/api/schedules/{parcel_id}/{action}"), Value::Null)
            .await;
        assert_eq!(
            (status, answer),
            (
                StatusCode::CONFLICT,
                envelope(409, "This one-time send has already gone out.")
            ),
            "{action}"
        );
    }

    // The template was filled from the contact, with the schedule's variables.
    let (_, runs) = api
        .get(&format!("/api/schedules/{reminder_id}/runs?limit=nonsense"))
        .await;
    assert_eq!(runs["items"][0]["messages"], 1);
    let (_, messages) = api.get("/api/sms/messages?recipient=%2B15551000001").await;
    assert_eq!(messages["items"][0]["body"], "Reminder for Ana: dentist.");
    let still = api
        .ok(Method::GET, &format!("/api/schedules/{reminder_id}"), Value::Null)
        .await;
    assert_eq!(
        (still["status"].as_str(), still["run_count"].as_i64()),
        (Some("active"), Some(1))
    );
    assert!(time(&still["next_run_at"]) > now + Duration::hours(2));
    // Completed schedules no longer count against the limit.
    assert_eq!(api.get("/api/plans/quota").await.1["scheduled_sms_count"], 1);
}

/// RFC 3339 UTC with milliseconds, as the API writes it.
fn api_ts(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

#[tokio::test]
async fn schedule_routes_refuse_bad_requests_and_strangers() {
    let app = TestApp::spawn().await;
    let api = Api::new(&app, "refuse-sched@example.org").await;
    let schedule = api.ok(Method::POST, "/api/schedules", recurring("Mine")).await;
    let id = schedule["id"].as_str().unwrap().to_owned();
    let routes = [
        route(Method::GET, "/api/schedules", None),
        route(Method::POST, "/api/schedules", Some(recurring("New"))),
        route(Method::GET, format!("/api/schedules/{id}"), None),
        route(
            Method::PUT,
            format!("/api/schedules/{id}"),
            Some(recurring("Changed")),
        ),
        route(Method::DELETE, format!("/api/schedules/{id}"), None),
        route(
            Method::POST,
            format!("/api/schedules/{id}/pause"),
            Some(json!({})),
        ),
        route(
            Method::POST,
            format!("/api/schedules/{id}/resume"),
            Some(json!({})),
        ),
        route(Method::GET, format!("/api/schedules/{id}/runs"), None),
        route(
            Method::POST,
            "/api/sms/validate-cron",
            Some(json!({"expression": "0 9 * * *"})),
        ),
    ];
    refuses_bad_requests(&app, &api, &routes, &[]).await;
    let (_, unchanged) = api.get(&format!("/api/schedules/{id}")).await;
    assert_eq!(unchanged, schedule);

    let stranger = Api::new(&app, "stranger-refuse-sched@example.org").await;
    for (method, path, body) in [
        (Method::GET, format!("/api/schedules/{id}"), Value::Null),
        (Method::PUT, format!("/api/schedules/{id}"), recurring("Taken")),
        (Method::DELETE, format!("/api/schedules/{id}"), Value::Null),
        (Method::POST, format!("/api/schedules/{id}/pause"), Value::Null),
        (Method::POST, format!("/api/schedules/{id}/resume"), Value::Null),
        (Method::GET, format!("/api/schedules/{id}/runs"), Value::Null),
        (Method::GET, "/api/schedules/nonsense".to_owned(), Value::Null),
        (
            Method::GET,
            "/api/schedules/nonsense/runs".to_owned(),
            Value::Null,
        ),
    ] {
        let (status, answer) = stranger.call(method.clone(), &path, body).await;
        assert_eq!(
            (status, answer),
            (StatusCode::NOT_FOUND, envelope(404, "Schedule not found.")),
            "{method} {path}"
        );
    }
    assert_eq!(stranger.get("/api/schedules").await.1["total_items"], 0);
    let (_, unchanged) = api.get(&format!("/api/schedules/{id}")).await;
    assert_eq!(unchanged, schedule);
}
