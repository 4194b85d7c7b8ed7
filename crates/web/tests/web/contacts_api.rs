//! The address book and templates through the API: contacts, groups and membership,
//! templates, sends to groups and template sends, and what every one of those routes does
//! with bad bodies, missing keys and other users' ids.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;
use crate::sms::Caller;

/// An account with an integration key, calling the API with any method.
pub struct Api {
    pub key: String,
    base: String,
    http: reqwest::Client,
}

impl Api {
    pub async fn new(app: &TestApp, email: &str) -> Self {
        let caller = Caller::new(app, email).await;
        Self {
            key: caller.key.clone(),
            base: app.url(""),
            http: reqwest::Client::new(),
        }
    }

    /// `body` is sent as JSON unless it is `Value::Null` (no body).
    pub async fn call(&self, method: Method, path: &str, body: Value) -> (StatusCode, Value) {
        let raw = (!body.is_null()).then(|| body.to_string());
        raw_call(&self.http, &self.base, method, Some(&self.key), path, raw).await
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, Value::Null).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, body).await
    }

    pub async fn put(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::PUT, path, body).await
    }

    pub async fn delete(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::DELETE, path, Value::Null).await
    }

    /// Calls that must succeed: the answer.
    pub async fn ok(&self, method: Method, path: &str, body: Value) -> Value {
        let (status, answer) = self.call(method.clone(), path, body).await;
        assert_eq!(status, StatusCode::OK, "{method} {path}: {answer}");
        answer
    }

    pub async fn contact(&self, name: &str, phone: &str, groups: &[&str]) -> String {
        let c = self
            .ok(
                Method::POST,
                "/api/contacts",
                json!({"name": name, "phone_number": phone, "groups": groups}),
            )
            .await;
        c["id"].as_str().unwrap().to_owned()
    }

    pub async fn group(&self, name: &str) -> String {
        let g = self
            .ok(Method::POST, "/api/contacts/groups", json!({"name": name}))
            .await;
        g["id"].as_str().unwrap().to_owned()
    }

    pub async fn template(&self, name: &str, body: &str) -> String {
        let t = self
            .ok(
                Method::POST,
                "/api/templates",
                json!({"name": name, "body": body}),
            )
            .await;
        t["id"].as_str().unwrap().to_owned()
    }
}

/// One request with an optional key and a raw body (sent as `application/json`).
pub async fn raw_call(
    http: &reqwest::Client,
    base: &str,
    method: Method,
    key: Option<&str>,
    path: &str,
    body: Option<String>,
) -> (StatusCode, Value) {
    let mut req = http.request(method, format!("{base}{path}"));
    if let Some(key) = key {
        req = req.header("x-api-key", key);
    }
    if let Some(body) = body {
        req = req.header("content-type", "application/json").body(body);
    }
    let res = req.send().await.unwrap();
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// A route and a body it accepts.
pub struct Route {
    pub method: Method,
    pub path: String,
    pub body: Option<Value>,
}

pub fn route(method: Method, path: impl Into<String>, body: Option<Value>) -> Route {
    Route {
        method,
        path: path.into(),
        body,
    }
}

pub fn envelope(status: u16, message: &str) -> Value {
    json!({"data": {}, "message": message, "status": status})
}

/// Checks that each route refuses a missing or wrong key (401), and, for routes with a
/// body, a body that is not JSON or has a wrong type (400) and one over 1 MiB (413, or the
/// status given for paths ending as in `oversized_status`).
pub async fn refuses_bad_requests(
    app: &TestApp,
    api: &Api,
    routes: &[Route],
    oversized_status: &[(&str, u16)],
) {
    let http = reqwest::Client::new();
    let base = app.url("");
    let huge = format!(r#"{{"name": "{}"}}"#, "x".repeat(2 * 1024 * 1024));
    for r in routes {
        let what = format!("{} {}", r.method, r.path);
        let body = r.body.as_ref().map(Value::to_string);
        for key in [None, Some("vk_not_a_real_key")] {
            let (status, answer) = raw_call(&http, &base, r.method.clone(), key, &r.path, body.clone()).await;
            assert_eq!(
                (status, &answer),
                (
                    StatusCode::UNAUTHORIZED,
                    &envelope(401, "Authentication required.")
                ),
                "{what} with key {key:?}"
            );
        }
        let Some(valid) = &r.body else {
            continue;
        };
        // Types can only be wrong where there are fields.
        let has_fields = valid.as_object().is_some_and(|o| !o.is_empty());
        let wrong_types = r#"{"name": 7, "body": [], "contact_ids": "x", "recipients": 5, "expression": 5}"#;
        let bad: &[&str] = if has_fields {
            &["{nope", "[1, 2]", wrong_types]
        } else {
            &["{nope"]
        };
        for bad in bad {
            let (status, answer) = raw_call(
                &http,
                &base,
                r.method.clone(),
                Some(&api.key),
                &r.path,
                Some((*bad).to_owned()),
            )
            .await;
            assert_eq!(
                (status, &answer),
                (StatusCode::BAD_REQUEST, &envelope(400, "Invalid request body.")),
                "{what} with {bad}"
            );
        }
        let expected = oversized_status
            .iter()
            .find(|(p, _)| r.path.ends_with(p))
            .map_or(413, |(_, s)| *s);
        let (status, answer) = raw_call(
            &http,
            &base,
            r.method.clone(),
            Some(&api.key),
            &r.path,
            Some(huge.clone()),
        )
        .await;
        assert_eq!(
            (status.as_u16(), &answer),
            (
                expected,
                &envelope(expected, "Request body too large: at most 1048576 bytes.")
            ),
            "{what} with an oversized body"
        );
    }
}

fn ids(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect()
}

fn names(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn contacts_are_created_read_changed_and_deleted_through_the_api() {
    let app = TestApp::spawn().await;
    let api = Api::new(&app, "book@example.org").await;
    let friends = api.group("Friends").await;
    let work = api.group("Work").await;

    let created = api
        .ok(
            Method::POST,
            "/api/contacts",
            json!({"name": " Ana Lima ", "phone_number": "+1 (555) 010-0001", "notes": "Met at the fair",
                   "group_ids": [friends]}),
        )
        .await;
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["name"], "Ana Lima");
    assert_eq!(created["phone_number"], "+15550100001");
    assert_eq!(created["notes"], "Met at the fair");
    assert_eq!(created["groups"], json!([friends]));
    assert!(created["created"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        api.ok(Method::GET, &format!("/api/contacts/{id}"), Value::Null)
            .await,
        created
    );

    // PATCH changes only what it is given; `groups` is Vendel's name for the ids.
    let patched = api
        .ok(
            Method::PATCH,
            &format!("/api/contacts/{id}"),
            json!({"notes": "Prefers texts", "groups": [friends, work]}),
        )
        .await;
    assert_eq!(patched["name"], "Ana Lima");
    assert_eq!(patched["phone_number"], "+15550100001");
    assert_eq!(patched["notes"], "Prefers texts");
    let mut groups: Vec<&str> = patched["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g.as_str().unwrap())
        .collect();
    groups.sort_unstable();
    let mut expected = vec![friends.as_str(), work.as_str()];
    expected.sort_unstable();
    assert_eq!(groups, expected);
    let renamed = api
        .ok(
            Method::PATCH,
            &format!("/api/contacts/{id}"),
            json!({"name": "Ana"}),
        )
        .await;
    assert_eq!(
        (renamed["name"].as_str(), renamed["notes"].as_str()),
        (Some("Ana"), Some("Prefers texts"))
    );
    assert_eq!(
        renamed["groups"].as_array().unwrap().len(),
        2,
        "groups kept when not given"
    );

    // PUT replaces the whole contact: what is left out is cleared.
    let replaced = api
        .ok(
            Method::PUT,
            &format!("/api/contacts/{id}"),
            json!({"name": "Ana L.", "phone_number": "+15550100002"}),
        )
        .await;
    assert_eq!(replaced["phone_number"], "+15550100002");
    assert_eq!(
        (replaced["notes"].as_str(), replaced["groups"].clone()),
        (Some(""), json!([]))
    );

    // Field errors name the field.
    let (status, answer) = api
        .post("/api/contacts", json!({"name": "Bad", "phone_number": "12345"}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        answer["message"],
        "Invalid phone number: 12345. Must be E.164 format (e.g. +1234567890)."
    );
    assert_eq!(answer["data"]["errors"]["phone_number"], answer["message"]);
    let (status, answer) = api.post("/api/contacts", json!({"name": "No number"})).await;
    assert_eq!(
        (status, answer["message"].as_str()),
        (StatusCode::BAD_REQUEST, Some("Enter a phone number."))
    );
    for groups in [
        json!(["not-an-id"]),
        json!(["0192f7a4-0000-7000-8000-000000000000"]),
    ] {
        let (status, answer) = api
            .post(
                "/api/contacts",
                json!({"phone_number": "+15550100009", "groups": groups}),
            )
            .await;
        assert_eq!(
            (status, answer["message"].as_str()),
            (StatusCode::BAD_REQUEST, Some("Group not found.")),
            "{groups}"
        );
    }

    assert_eq!(
        api.delete(&format!("/api/contacts/{id}")).await,
        (StatusCode::OK, json!({"success": true}))
    );
    for (status, answer) in [
        api.get(&format!("/api/contacts/{id}")).await,
        api.delete(&format!("/api/contacts/{id}")).await,
        api.get("/api/contacts/not-an-id").await,
    ] {
        assert_eq!(
            (status, answer),
            (StatusCode::NOT_FOUND, envelope(404, "Contact not found."))
        );
    }
}

#[tokio::test]
async fn contact_search_matches_names_and_numbers_including_an_unencoded_plus() {
    let app = TestApp::spawn().await;
    let api = Api::new(&app, "search@example.org").await;
    let ana = api.contact("Ana Lima", "+15550100001", &[]).await;
    let bo = api.contact("Bo Lindqvist", "+15550100002", &[]).await;
    let cy = api.contact("Cy", "+442079460958", &[]).await;

    let (_, list) = api.get("/api/contacts?search=lI").await;
    assert_eq!(
        (ids(&list), list["total_items"].clone()),
        (vec![ana.clone(), bo.clone()], json!(2))
    );
    let (_, list) = api.get("/api/contacts?search=0100002").await;
    assert_eq!(ids(&list), vec![bo.clone()]);
    // Properly encoded, and as the SDK sends it (the `+` unencoded reads as a space).
    let (_, list) = api.get("/api/contacts?search=%2B4420").await;
    assert_eq!(ids(&list), vec![cy.clone()]);
    let (_, list) = api.get("/api/contacts?search=+1555").await;
    assert_eq!(
        (ids(&list), list["total_items"].clone()),
        (vec![ana.clone(), bo.clone()], json!(2))
    );
    let (_, list) = api.get("/api/contacts?search=%201555").await;
    assert_eq!(ids(&list), vec![ana.clone(), bo.clone()]);
    // Wildcards are matched literally; an empty search is no filter.
    let (_, list) = api.get("/api/contacts?search=%25").await;
    assert_eq!(list["total_items"], 0);
    let (_, list) = api.get("/api/contacts?search=%20%20").await;
    assert_eq!(list["total_items"], 3);

    // Totals are those of the filtered list, on every page.
    let (_, page) = api.get("/api/contacts?search=%2B1555&per_page=1&page=2").await;
    assert_eq!(ids(&page), vec![bo]);
    assert_eq!(
        (
            page["page"].clone(),
            page["per_page"].clone(),
            page["total_items"].clone(),
            page["total_pages"].clone()
        ),
        (json!(2), json!(1), json!(2), json!(2))
    );
}

#[tokio::test]
async fn contact_lists_filter_by_group_and_count_every_page() {
    let app = TestApp::spawn().await;
    let api = Api::new(&app, "filter@example.org").await;
    let stranger = Api::new(&app, "stranger-filter@example.org").await;
    let team = api.group("Team").await;
    let theirs = stranger.group("Theirs").await;
    let mut members = Vec::new();
    for i in 0..5 {
        members.push(
            api.contact(&format!("Member {i}"), &format!("+1555020000{i}"), &[&team])
                .await,
        );
    }
    api.contact("Outsider", "+15550209999", &[]).await;
    stranger.contact("Their member", "+15550200000", &[&theirs]).await;

    let (_, all) = api.get("/api/contacts").await;
    assert_eq!(
        (all["total_items"].clone(), all["per_page"].clone()),
        (json!(6), json!(50))
    );
    let (_, page) = api
        .get(&format!("/api/contacts?group_id={team}&per_page=2&page=3"))
        .await;
    assert_eq!(ids(&page), vec![members[4].clone()]);
    assert_eq!(
        (page["total_items"].clone(), page["total_pages"].clone()),
        (json!(5), json!(3))
    );
    let (_, page) = api
        .get(&format!("/api/contacts?group_id={team}&search=member%203"))
        .await;
    assert_eq!(ids(&page), vec![members[3].clone()]);
    // Bad paging values fall back to the defaults.
    let (_, page) = api.get("/api/contacts?page=zero&per_page=-1").await;
    assert_eq!(
        (page["page"].clone(), page["per_page"].clone()),
        (json!(1), json!(50))
    );

    for group in [
        theirs.as_str(),
        "0192f7a4-0000-7000-8000-000000000000",
        "nonsense",
    ] {
        let (status, page) = api.get(&format!("/api/contacts?group_id={group}")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            (
                page["items"].clone(),
                page["total_items"].clone(),
                page["total_pages"].clone()
            ),
            (json!([]), json!(0), json!(0)),
            "{group}"
        );
    }
}

#[tokio::test]
async fn duplicate_numbers_and_group_names_conflict() {
    let app = TestApp::spawn().await;
    let api = Api::new(&app, "dupes@example.org").await;
    let other = Api::new(&app, "other-dupes@example.org").await;
    api.contact("Ana", "+15550300001", &[]).await;
    let second = api.contact("Bo", "+15550300002", &[]).await;
    let (status, answer) = api
        .post(
            "/api/contacts",
            json!({"name": "Ana again", "phone_number": "+1 555 030 0001"}),
        )
        .await;
    assert_eq!(
        (status, answer),
        (
            StatusCode::CONFLICT,
            envelope(409, "A contact with the number +15550300001 already exists.")
        )
    );
    let (status, _) = api
        .put(
            &format!("/api/contacts/{second}"),
            json!({"phone_number": "+15550300001"}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    // Numbers and names are per user.
    other.contact("Ana", "+15550300001", &[]).await;
    other.group("Friends").await;

    api.group("Friends").await;
    let (status, answer) = api.post("/api/contacts/groups", json!({"name": "Friends"})).await;
    assert_eq!(
        (status, answer),
        (
            StatusCode::CONFLICT,
            envelope(409, "A group named \"Friends\" already exists.")
        )
    );
    let family = api.group("Family").await;
    let (status, _) = api
        .put(
            &format!("/api/contacts/groups/{family}"),
            json!({"name": "Friends"}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, answer) = api.post("/api/contacts/groups", json!({"name": "  "})).await;
    assert_eq!(
        (
            status,
            answer["message"].as_str(),
            answer["data"]["errors"]["name"].as_str()
        ),
        (
            StatusCode::BAD_REQUEST,
            Some("Enter a group name."),
            Some("Enter a group name.")
        )
    );
}

#[tokio::test]
async fn groups_are_listed_by_name_and_hold_members() {
    let app = TestApp::spawn().await;
    let api = Api::new(&app, "groups@example.org").await;
    let stranger = Api::new(&app, "stranger-groups@example.org").await;
    let beta = api.group("beta").await;
    let alpha = api.group("Alpha").await;
    let gamma = api.group("gamma").await;

    let (_, list) = api.get("/api/contacts/groups").await;
    assert_eq!(names(&list), ["Alpha", "beta", "gamma"]);
    assert_eq!(ids(&list), [alpha.clone(), beta.clone(), gamma.clone()]);
    assert_eq!(list["total_items"], 3);
    let item = &list["items"][0];
    for key in ["id", "name", "created", "updated"] {
        assert!(item[key].is_string(), "{key}");
    }
    let (_, page) = api.get("/api/contacts/groups?per_page=2&page=2").await;
    assert_eq!(
        (names(&page), page["total_pages"].clone()),
        (vec!["gamma".to_owned()], json!(2))
    );

    let a = api.contact("A", "+15550400001", &[]).await;
    let b = api.contact("B", "+15550400002", &[]).await;
    let theirs = stranger.contact("Theirs", "+15550400003", &[]).await;
    let members = format!("/api/contacts/groups/{alpha}/members");
    // Unknown, malformed and other users' contacts are skipped; repeats count once.
    let added = api
        .ok(
            Method::POST,
            &members,
            json!({"contact_ids": [a, b, a, theirs, "nonsense"]}),
        )
        .await;
    assert_eq!(added, json!({"added": 2}));
    assert_eq!(
        api.ok(Method::POST, &members, json!({"contact_ids": [a]})).await,
        json!({"added": 0})
    );
    let group = api
        .ok(Method::GET, &format!("/api/contacts/groups/{alpha}"), Value::Null)
        .await;
    assert_eq!(
        (group["name"].as_str(), group["members"].as_i64()),
        (Some("Alpha"), Some(2))
    );
    let (_, in_alpha) = api.get(&format!("/api/contacts?group_id={alpha}")).await;
    assert_eq!(in_alpha["total_items"], 2);
    let removed = api
        .ok(Method::DELETE, &members, json!({"contact_ids": [b, theirs]}))
        .await;
    assert_eq!(removed, json!({"removed": 1}));
    let (status, answer) = api.post(&members, json!({"contact_ids": []})).await;
    assert_eq!(
        (status, answer["message"].as_str()),
        (
            StatusCode::BAD_REQUEST,
            Some("List at least one contact in contact_ids.")
        )
    );

    let renamed = api
        .ok(
            Method::PUT,
            &format!("/api/contacts/groups/{alpha}"),
            json!({"name": "Zeta"}),
        )
        .await;
    assert_eq!(renamed["name"], "Zeta");
    let (_, list) = api.get("/api/contacts/groups").await;
    assert_eq!(names(&list), ["beta", "gamma", "Zeta"]);

    // Deleting a group keeps its contacts.
    assert_eq!(
        api.delete(&format!("/api/contacts/groups/{alpha}")).await,
        (StatusCode::OK, json!({"success": true}))
    );
    let (status, contact) = api.get(&format!("/api/contacts/{a}")).await;
    assert_eq!((status, contact["groups"].clone()), (StatusCode::OK, json!([])));
    let (status, answer) = api.get(&format!("/api/contacts/groups/{alpha}")).await;
    assert_eq!(
        (status, answer),
        (StatusCode::NOT_FOUND, envelope(404, "Group not found."))
    );

    // Bulk delete skips what is not the caller's.
    let deleted = api
        .ok(
            Method::POST,
            "/api/contacts/bulk-delete",
            json!({"contact_ids": [a, b, theirs, "x"]}),
        )
        .await;
    assert_eq!(deleted, json!({"deleted": 2}));
    assert_eq!(api.get("/api/contacts").await.1["total_items"], 0);
    assert_eq!(stranger.get("/api/contacts").await.1["total_items"], 1);
}

#[tokio::test]
async fn sends_to_groups_expand_to_members_without_duplicates() {
    let app = TestApp::spawn().await;
    let api = Api::new(&app, "groupsend@example.org").await;
    let stranger = Api::new(&app, "stranger-send@example.org").await;
    let team = api.group("Team").await;
    let other_team = api.group("Other team").await;
    api.contact("Bo", "+15550500002", &[&team, &other_team]).await;
    api.contact("Ana", "+15550500001", &[&team]).await;
    api.contact("Not in a group", "+15550500009", &[]).await;
    let theirs = stranger.group("Theirs").await;
    stranger.contact("Theirs", "+15550500008", &[&theirs]).await;

    let sent = api
        .ok(
            Method::POST,
            "/api/sms/send",
            json!({"recipients": ["+15550500002", "+15550500007"], "body": "Hello team",
                   "group_ids": [team, other_team, theirs, "nonsense"]}),
        )
        .await;
    assert_eq!(sent["recipients_count"], 3);
    let (_, messages) = api
        .get(&format!(
            "/api/sms/messages?batch_id={}",
            sent["batch_id"].as_str().unwrap()
        ))
        .await;
    let mut recipients: Vec<&str> = messages["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["recipient"].as_str().unwrap())
        .collect();
    recipients.sort_unstable();
    assert_eq!(recipients, ["+15550500001", "+15550500002", "+15550500007"]);

    // Another user's group expands to nothing.
    let (status, answer) = api
        .post("/api/sms/send", json!({"body": "Hi", "group_ids": [theirs]}))
        .await;
    assert_eq!(
        (status, answer),
        (
            StatusCode::BAD_REQUEST,
            envelope(400, "At least one recipient required.")
        )
    );
    let only_group = api
        .ok(
            Method::POST,
            "/api/sms/send",
            json!({"body": "Hi", "group_ids": [other_team]}),
        )
        .await;
    assert_eq!(
        (
            only_group["recipients_count"].clone(),
            only_group["batch_id"].clone()
        ),
        (json!(1), json!(""))
    );
}

/// The bodies of the caller's messages, by recipient.
async fn bodies(api: &Api) -> std::collections::BTreeMap<String, String> {
    let (_, list) = api.get("/api/sms/messages?per_page=200").await;
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["recipient"].as_str().unwrap().to_owned(),
                m["body"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn template_sends_are_personalised_from_contacts() {
    let app = TestApp::spawn().await;
    let api = Api::new(&app, "tsend@example.org").await;
    let stranger = Api::new(&app, "stranger-tsend@example.org").await;
    let team = api.group("Team").await;
    api.contact("Ana", "+15550600001", &[&team]).await;
    api.contact("Bo", "+15550600002", &[&team]).await;
    let greeting = api
        .template("Greeting", "Hi {{name}} ({{phone}}), your code is {{code}}.")
        .await;

    let sent = api
        .ok(
            Method::POST,
            "/api/sms/send-template",
            json!({"recipients": ["+15550600009"], "group_ids": [team], "template_id": greeting,
                   "variables": {"code": "42", "name": "friend", "phone": "hidden"}}),
        )
        .await;
    assert_eq!(
        (sent["recipients_count"].clone(), sent["status"].clone()),
        (json!(3), json!("accepted"))
    );
    assert_eq!(sent["message_ids"].as_array().unwrap().len(), 3);
    let bodies = bodies(&api).await;
    // Contact data wins over explicit variables; a number with no contact uses them.
    assert_eq!(bodies["+15550600001"], "Hi Ana (+15550600001), your code is 42.");
    assert_eq!(bodies["+15550600002"], "Hi Bo (+15550600002), your code is 42.");
    assert_eq!(bodies["+15550600009"], "Hi friend (hidden), your code is 42.");

    let theirs = stranger.template("Theirs", "Hello").await;
    let long = api
        .template("Long", &format!("{{{{name}}}}{}", "x".repeat(1590)))
        .await;
    for (body, message) in [
        (
            json!({"recipients": ["+15550600009"], "template_id": greeting, "variables": {"name": "x", "phone": "y"}}),
            "Missing variable: code.",
        ),
        (
            json!({"recipients": ["+15550600001"], "template_id": greeting}),
            "Missing variable: code.",
        ),
        (
            json!({"recipients": ["+15550600001"], "template_id": theirs}),
            "Template does not belong to user.",
        ),
        (
            json!({"recipients": ["+15550600001"], "template_id": ""}),
            "Template_id required.",
        ),
        (json!({"recipients": ["+15550600001"]}), "Template_id required."),
        (
            json!({"recipients": ["+15550600001"], "template_id": "0192f7a4-0000-7000-8000-000000000000"}),
            "Template not found.",
        ),
        (
            json!({"recipients": [], "template_id": greeting}),
            "At least one recipient required.",
        ),
        (
            json!({"recipients": ["+15550600001", "+15550600009"], "template_id": long,
                   "variables": {"name": "Someone with a long name"}}),
            "Interpolated message for +15550600009 exceeds 1600 character limit (1614 chars).",
        ),
    ] {
        let (status, answer) = api.post("/api/sms/send-template", body.clone()).await;
        assert_eq!(
            (status, answer),
            (StatusCode::BAD_REQUEST, envelope(400, message)),
            "{body}"
        );
    }
    // Nothing was sent by the refused requests.
    assert_eq!(api.get("/api/sms/messages").await.1["total_items"], 3);

    // An Idempotency-Key replays the first answer, as for /api/sms/send.
    let http = reqwest::Client::new();
    let request =
        json!({"recipients": ["+15550600001"], "template_id": greeting, "variables": {"code": "7"}});
    let mut answers = Vec::new();
    for _ in 0..2 {
        let res = http
            .post(app.url("/api/sms/send-template"))
            .header("x-api-key", &api.key)
            .header("idempotency-key", "tpl-1")
            .json(&request)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let replayed = res.headers().contains_key("idempotent-replayed");
        answers.push((replayed, res.json::<Value>().await.unwrap()));
    }
    assert_eq!((answers[0].0, answers[1].0), (false, true));
    assert_eq!(answers[0].1["message_ids"], answers[1].1["message_ids"]);
    assert_eq!(api.get("/api/sms/messages").await.1["total_items"], 4);
}

#[tokio::test]
async fn template_sends_count_against_the_monthly_quota() {
    let app = TestApp::spawn_with(Options {
        sms: Some(ender_core::config::SmsConfig {
            max_sms_per_month: 2,
            ..Default::default()
        }),
        ..Default::default()
    })
    .await;
    let api = Api::new(&app, "tquota@example.org").await;
    let t = api.template("Plain", "Hello {{who}}").await;
    let (status, answer) = api
        .post(
            "/api/sms/send-template",
            json!({"recipients": ["+15550610001", "+15550610002", "+15550610003"], "template_id": t,
                   "variables": {"who": "all"}}),
        )
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        (
            answer["error"].as_str(),
            answer["quota_type"].as_str(),
            answer["limit"].as_i64(),
            answer["available"].as_i64()
        ),
        (Some("quota_exceeded"), Some("sms_monthly"), Some(2), Some(2))
    );
    assert!(answer.get("status").is_none(), "the quota body has no envelope");
}

#[tokio::test]
async fn templates_are_managed_through_the_api() {
    let app = TestApp::spawn().await;
    let api = Api::new(&app, "templates@example.org").await;
    let created = api
        .ok(
            Method::POST,
            "/api/templates",
            json!({"name": " Reminder ", "body": "Hi {{name}}, see you at {{time}}. Bye {{name}}!"}),
        )
        .await;
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["name"], "Reminder");
    assert_eq!(created["variables"], json!(["name", "time"]));
    assert_eq!(
        api.ok(Method::GET, &format!("/api/templates/{id}"), Value::Null)
            .await,
        created
    );

    let (status, answer) = api
        .post("/api/templates", json!({"name": "Broken", "body": "Hi {{name"}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let message = answer["message"].as_str().unwrap();
    assert!(message.starts_with("Unclosed {{ at character 4"), "{message}");
    assert_eq!(answer["data"]["errors"]["body"].as_str(), Some(message));
    let (status, answer) = api.post("/api/templates", json!({})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        answer["data"]["errors"],
        json!({"name": "Enter a name.", "body": "Enter the message text."})
    );
    let (status, answer) = api
        .post("/api/templates", json!({"name": "Reminder", "body": "Other"}))
        .await;
    assert_eq!(
        (status, answer),
        (
            StatusCode::CONFLICT,
            envelope(409, "A template named \"Reminder\" already exists.")
        )
    );

    let updated = api
        .ok(
            Method::PUT,
            &format!("/api/templates/{id}"),
            json!({"name": "Reminder", "body": "Your table for {{guests}} is ready."}),
        )
        .await;
    assert_eq!(updated["variables"], json!(["guests"]));
    api.template("Another", "Plain text").await;
    let (_, list) = api.get("/api/templates?per_page=1").await;
    assert_eq!(
        (
            names(&list),
            list["total_items"].clone(),
            list["total_pages"].clone()
        ),
        (vec!["Another".to_owned()], json!(2), json!(2))
    );

    assert_eq!(
        api.delete(&format!("/api/templates/{id}")).await,
        (StatusCode::OK, json!({"success": true}))
    );
    for (status, answer) in [
        api.get(&format!("/api/templates/{id}")).await,
        api.delete(&format!("/api/templates/{id}")).await,
        api.put(&format!("/api/templates/{id}"), json!({"name": "X", "body": "Y"}))
            .await,
        api.get("/api/templates/nonsense").await,
    ] {
        assert_eq!(
            (status, answer),
            (StatusCode::NOT_FOUND, envelope(404, "Template not found."))
        );
    }
}

#[tokio::test]
async fn address_book_and_template_routes_refuse_bad_requests() {
    let app = TestApp::spawn().await;
    let api = Api::new(&app, "refuse@example.org").await;
    let group = api.group("G").await;
    let contact = api.contact("C", "+15550700001", &[&group]).await;
    let template = api.template("T", "Hello {{name}}").await;
    let contact_body = json!({"name": "C", "phone_number": "+15550700001"});
    let ids = json!({"contact_ids": [contact]});
    let routes = [
        route(Method::GET, "/api/contacts", None),
        route(Method::POST, "/api/contacts", Some(contact_body.clone())),
        route(Method::GET, format!("/api/contacts/{contact}"), None),
        route(
            Method::PUT,
            format!("/api/contacts/{contact}"),
            Some(contact_body.clone()),
        ),
        route(
            Method::PATCH,
            format!("/api/contacts/{contact}"),
            Some(json!({"notes": "x"})),
        ),
        route(Method::DELETE, format!("/api/contacts/{contact}"), None),
        route(Method::POST, "/api/contacts/bulk-delete", Some(ids.clone())),
        route(Method::GET, "/api/contacts/groups", None),
        route(Method::POST, "/api/contacts/groups", Some(json!({"name": "H"}))),
        route(Method::GET, format!("/api/contacts/groups/{group}"), None),
        route(
            Method::PUT,
            format!("/api/contacts/groups/{group}"),
            Some(json!({"name": "H"})),
        ),
        route(Method::DELETE, format!("/api/contacts/groups/{group}"), None),
        route(
            Method::POST,
            format!("/api/contacts/groups/{group}/members"),
            Some(ids.clone()),
        ),
        route(
            Method::DELETE,
            format!("/api/contacts/groups/{group}/members"),
            Some(ids.clone()),
        ),
        route(Method::GET, "/api/templates", None),
        route(
            Method::POST,
            "/api/templates",
            Some(json!({"name": "U", "body": "V"})),
        ),
        route(Method::GET, format!("/api/templates/{template}"), None),
        route(
            Method::PUT,
            format!("/api/templates/{template}"),
            Some(json!({"name": "U", "body": "V"})),
        ),
        route(Method::DELETE, format!("/api/templates/{template}"), None),
        route(
            Method::POST,
            "/api/sms/send-template",
            Some(json!({"recipients": ["+15550700001"], "template_id": template})),
        ),
    ];
    refuses_bad_requests(&app, &api, &routes, &[]).await;

    // Another user's contact, group and template are not found, whatever the method.
    let stranger = Api::new(&app, "stranger-refuse@example.org").await;
    let cases = [
        (
            Method::GET,
            format!("/api/contacts/{contact}"),
            Value::Null,
            "Contact not found.",
        ),
        (
            Method::PUT,
            format!("/api/contacts/{contact}"),
            contact_body.clone(),
            "Contact not found.",
        ),
        (
            Method::PATCH,
            format!("/api/contacts/{contact}"),
            json!({"notes": "x"}),
            "Contact not found.",
        ),
        (
            Method::DELETE,
            format!("/api/contacts/{contact}"),
            Value::Null,
            "Contact not found.",
        ),
        (
            Method::GET,
            format!("/api/contacts/groups/{group}"),
            Value::Null,
            "Group not found.",
        ),
        (
            Method::PUT,
            format!("/api/contacts/groups/{group}"),
            json!({"name": "Mine"}),
            "Group not found.",
        ),
        (
            Method::DELETE,
            format!("/api/contacts/groups/{group}"),
            Value::Null,
            "Group not found.",
        ),
        (
            Method::POST,
            format!("/api/contacts/groups/{group}/members"),
            ids.clone(),
            "Group not found.",
        ),
        (
            Method::DELETE,
            format!("/api/contacts/groups/{group}/members"),
            ids.clone(),
            "Group not found.",
        ),
        (
            Method::POST,
            "/api/contacts/groups/nonsense/members".to_owned(),
            ids.clone(),
            "Group not found.",
        ),
        (
            Method::GET,
            format!("/api/templates/{template}"),
            Value::Null,
            "Template not found.",
        ),
        (
            Method::PUT,
            format!("/api/templates/{template}"),
            json!({"name": "U", "body": "V"}),
            "Template not found.",
        ),
        (
            Method::DELETE,
            format!("/api/templates/{template}"),
            Value::Null,
            "Template not found.",
        ),
    ];
    for (method, path, body, message) in cases {
        let (status, answer) = stranger.call(method.clone(), &path, body).await;
        assert_eq!(
            (status, answer),
            (StatusCode::NOT_FOUND, envelope(404, message)),
            "{method} {path}"
        );
    }
    assert_eq!(
        stranger
            .ok(Method::POST, "/api/contacts/bulk-delete", ids.clone())
            .await,
        json!({"deleted": 0})
    );
    // The owner's data is untouched.
    let (_, c) = api.get(&format!("/api/contacts/{contact}")).await;
    assert_eq!(
        (c["name"].as_str(), c["notes"].as_str(), c["groups"].clone()),
        (Some("C"), Some(""), json!([group]))
    );
    let (_, g) = api.get(&format!("/api/contacts/groups/{group}")).await;
    assert_eq!((g["name"].as_str(), g["members"].as_i64()), (Some("G"), Some(1)));
}

#[tokio::test]
async fn contacts_groups_and_templates_past_their_limits_answer_429_naming_it() {
    let app = TestApp::spawn_with(Options {
        sms: Some(ender_core::config::SmsConfig {
            limits: ender_core::config::TenantLimits {
                max_contacts: 3,
                max_groups: 2,
                max_templates: 2,
                ..Default::default()
            },
            ..Default::default()
        }),
        ..Default::default()
    })
    .await;
    let api = Api::new(&app, "capped-api@example.org").await;
    // Created at once, never more than the limit.
    let answers = futures::future::join_all((0..8).map(|i| {
        let api = &api;
        async move {
            api.post(
                "/api/contacts",
                json!({"name": format!("P{i}"), "phone_number": format!("+4477009001{i:02}")}),
            )
            .await
        }
    }))
    .await;
    assert_eq!(answers.iter().filter(|(s, _)| *s == StatusCode::OK).count(), 3);
    for (status, body) in answers.iter().filter(|(s, _)| *s != StatusCode::OK) {
        assert_eq!(*status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(
            body["message"],
            "This workspace can keep at most 3 contacts (ENDER_MAX_CONTACTS). Delete some first."
        );
        assert_eq!(body["status"], 429);
    }
    for name in ["A", "B"] {
        api.ok(Method::POST, "/api/contacts/groups", json!({"name": name}))
            .await;
    }
    let (status, body) = api.post("/api/contacts/groups", json!({"name": "C"})).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(
        body["message"],
        "This workspace can keep at most 2 groups (ENDER_MAX_GROUPS). Delete one first."
    );
    // A taken name is still a conflict, not the limit.
    let (status, _) = api.post("/api/contacts/groups", json!({"name": "a"})).await;
    assert_eq!(status, StatusCode::CONFLICT);
    for name in ["One", "Two"] {
        api.ok(
            Method::POST,
            "/api/templates",
            json!({"name": name, "body": "Hi"}),
        )
        .await;
    }
    let (status, body) = api
        .post("/api/templates", json!({"name": "Three", "body": "Hi"}))
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(
        body["message"],
        "This workspace can keep at most 2 templates (ENDER_MAX_TEMPLATES). Delete one first."
    );
    // Another user has limits of their own.
    let other = Api::new(&app, "uncapped-api@example.org").await;
    other.contact("Mine", "+447700900200", &[]).await;
}
