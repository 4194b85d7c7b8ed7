//! A person in a real browser (headless Chromium through chromedriver): sign up, confirm
//! the email from the mail folder, sign out, sign in, reset the password, delete the account.

use std::process::Stdio;
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};

use crate::helpers::*;

struct Driver {
    child: tokio::process::Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

async fn chromedriver() -> Option<Driver> {
    if std::env::var_os("ENDER_SKIP_BROWSER_TESTS").is_some() {
        eprintln!("ENDER_SKIP_BROWSER_TESTS is set: skipping the browser test");
        return None;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = tokio::process::Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("chromedriver is needed for the browser tests: apt-get install chromium chromium-driver");
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return Some(Driver { child, port });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("chromedriver did not start");
}

async fn browser(driver: &Driver) -> Client {
    ender_core::install_crypto_provider();
    let profile = tempfile::tempdir().unwrap().keep();
    let caps = serde_json::json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()),
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--no-first-run", "--disable-quic", "--window-size=1200,900",
                format!("--user-data-dir={}", profile.display()),
            ]
        }
    });
    let serde_json::Value::Object(caps) = caps else {
        unreachable!()
    };
    ClientBuilder::rustls()
        .unwrap()
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("connect to chromedriver")
}

/// Waits for the element (pages load after clicks) and returns it.
async fn find(c: &Client, css: &str) -> fantoccini::elements::Element {
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css} not found: {e}"))
}

async fn fill(c: &Client, css: &str, value: &str) {
    let el = find(c, css).await;
    el.clear().await.unwrap();
    el.send_keys(value).await.unwrap();
}

/// Fills a field of a form that re-renders itself while it is being filled (an HTMX
/// refresh can replace the element): tries again until the new element holds the value.
async fn fill_settled(c: &Client, css: &str, value: &str) {
    for _ in 0..50 {
        let el = find(c, css).await;
        if el.clear().await.is_ok() && el.send_keys(value).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let now = find(c, css).await.prop("value").await.ok().flatten();
            if now.as_deref() == Some(value) {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{css} did not keep {value:?}");
}

async fn click(c: &Client, css: &str) {
    find(c, css).await.click().await.unwrap();
}

async fn text(c: &Client, css: &str) -> String {
    find(c, css).await.text().await.unwrap()
}

/// Saves a screenshot when `ENDER_SCREENSHOT_DIR` is set, for looking at the pages.
async fn snapshot(c: &Client, name: &str) {
    if let Some(dir) = std::env::var_os("ENDER_SCREENSHOT_DIR") {
        let png = c.screenshot().await.unwrap();
        std::fs::write(std::path::Path::new(&dir).join(format!("{name}.png")), png).unwrap();
    }
}

/// Waits until an element matching `css` contains `needle` (pages and toasts load after clicks).
async fn wait_text(c: &Client, css: &str, needle: &str) {
    let mut seen = Vec::new();
    for _ in 0..100 {
        seen.clear();
        for el in c.find_all(Locator::Css(css)).await.unwrap_or_default() {
            let html = el.html(true).await.unwrap_or_default();
            if html.contains(needle) {
                return;
            }
            seen.push(html);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "no {css} containing {needle:?}; saw {seen:?} at {}",
        path(c).await
    );
}

/// Waits until the browser is on a page whose path starts with `prefix`.
async fn wait_path(c: &Client, prefix: &str) {
    for _ in 0..100 {
        if path(c).await.starts_with(prefix) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("never reached {prefix}; at {}", path(c).await);
}

async fn path(c: &Client) -> String {
    let url = c.current_url().await.unwrap();
    match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_owned(),
    }
}

#[tokio::test]
async fn a_person_signs_up_verifies_signs_in_resets_and_deletes_in_a_browser() {
    let Some(driver) = chromedriver().await else {
        return;
    };
    let app = TestApp::spawn().await;
    let c = browser(&driver).await;
    let password = "first password 1";

    c.goto(&app.url("/")).await.unwrap();
    assert_eq!(path(&c).await, "/login?next=%2F");
    click(&c, "a[href='/signup']").await;
    wait_path(&c, "/signup").await;
    fill(&c, "#full_name", "Ada Lovelace").await;
    fill(&c, "#email", "ada@example.org").await;
    fill(&c, "#password", "short").await;
    click(&c, "#signup-form button[type=submit]").await;
    assert!(
        text(&c, ".field-error[data-field=password]")
            .await
            .contains("10 characters")
    );
    assert_eq!(
        c.find(Locator::Css("#email"))
            .await
            .unwrap()
            .prop("value")
            .await
            .unwrap()
            .unwrap(),
        "ada@example.org"
    );
    fill(&c, "#password", password).await;
    click(&c, "#signup-form button[type=submit]").await;
    assert!(text(&c, "#check-email").await.contains("ada@example.org"));

    // The confirmation link from the mail folder.
    app.wait_for_mails(1).await;
    c.goto(&app.url(&app.last_mail_link())).await.unwrap();
    assert!(text(&c, "#welcome h2").await.contains("Ada Lovelace"));
    wait_text(&c, ".toast", "confirmed").await;
    snapshot(&c, "dashboard").await;

    // Sign out through the account menu, then sign in.
    click(&c, "details.account-menu summary").await;
    click(&c, "#logout").await;
    wait_path(&c, "/login").await;
    fill(&c, "#email", "ada@example.org").await;
    fill(&c, "#password", "wrong password!").await;
    click(&c, "#login-form button[type=submit]").await;
    assert_eq!(text(&c, "#form-error").await, "Incorrect email or password.");
    fill(&c, "#password", password).await;
    click(&c, "#login-form button[type=submit]").await;
    text(&c, "#welcome").await;

    // Forgotten password: sign out, ask for a link, follow it, choose a new password.
    click(&c, "details.account-menu summary").await;
    click(&c, "#logout").await;
    wait_path(&c, "/login").await;
    click(&c, "a[href='/forgot-password']").await;
    wait_path(&c, "/forgot-password").await;
    fill(&c, "#email", "ada@example.org").await;
    click(&c, "form.form button[type=submit]").await;
    text(&c, "#request-sent").await;
    app.wait_for_mails(2).await;
    c.goto(&app.url(&app.last_mail_link())).await.unwrap();
    fill(&c, "#password", "second password 2").await;
    fill(&c, "#password_confirm", "second password 2").await;
    click(&c, "#reset-form button[type=submit]").await;
    wait_text(&c, ".toast", "password was changed").await;
    assert_eq!(path(&c).await, "/");

    // Delete the account from the settings page (with the browser's confirmation).
    c.goto(&app.url("/settings")).await.unwrap();
    snapshot(&c, "settings").await;
    fill(&c, "#delete_password", "second password 2").await;
    click(&c, "#delete-form button[type=submit]").await;
    c.accept_alert().await.unwrap();
    assert!(text(&c, "#account-deleted").await.contains("removed"));
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(app.pool())
        .await
        .unwrap();
    assert_eq!(users, 0);

    c.close().await.unwrap();
}

#[tokio::test]
async fn a_tab_in_next_does_not_take_a_signed_in_person_off_site() {
    let Some(driver) = chromedriver().await else {
        return;
    };
    let app = TestApp::spawn().await;
    app.create_user("tab@example.org", "first password 1").await;
    let c = browser(&driver).await;
    c.goto(&app.url("/login")).await.unwrap();
    fill(&c, "#email", "tab@example.org").await;
    fill(&c, "#password", "first password 1").await;
    click(&c, "#login-form button[type=submit]").await;
    text(&c, "#welcome").await;

    // A browser strips the tab and would read `//evil.example` as another host.
    c.goto(&app.url("/login?next=/%09/evil.example")).await.unwrap();
    text(&c, "#welcome").await;
    let url = c.current_url().await.unwrap();
    assert_eq!(url.host_str(), Some("127.0.0.1"), "{url}");
    assert_eq!(url.port(), Some(app.addr.port()), "{url}");
    assert_eq!(url.path(), "/");
    c.close().await.unwrap();
}

#[tokio::test]
async fn a_person_adds_a_device_sends_and_watches_the_status_change_live() {
    let Some(driver) = chromedriver().await else {
        return;
    };
    let app = TestApp::spawn_with(Options {
        dispatcher: true,
        ..Default::default()
    })
    .await;
    app.create_user("live@example.org", "first password 1").await;
    let c = browser(&driver).await;
    c.goto(&app.url("/login")).await.unwrap();
    fill(&c, "#email", "live@example.org").await;
    fill(&c, "#password", "first password 1").await;
    click(&c, "#login-form button[type=submit]").await;
    wait_path(&c, "/").await;

    // Add a phone; its key is shown once.
    c.goto(&app.url("/devices")).await.unwrap();
    fill(&c, "#name", "Front desk").await;
    fill(&c, "#phone_number", "+15551230000").await;
    click(&c, "#device-form button[type=submit]").await;
    let key = text(&c, "#secret").await;
    assert!(key.starts_with("dk_"));
    snapshot(&c, "devices").await;

    // Send from the Send page; the counter follows the typing.
    c.goto(&app.url("/send")).await.unwrap();
    fill(&c, "#recipients", "+15550001111").await;
    fill(&c, "#body", &"é".repeat(161)).await;
    wait_text(&c, "#counter", "2 SMS parts").await;
    snapshot(&c, "send").await;
    click(&c, "#send-form button[type=submit]").await;
    wait_path(&c, "/messages").await;
    wait_text(&c, "#message-rows .badge", "pending").await;
    snapshot(&c, "messages").await;

    // The phone (simulated) claims and reports; the row changes without a reload.
    let http = reqwest::Client::new();
    let pending: serde_json::Value = http
        .get(app.url("/api/sms/pending"))
        .header("x-api-key", &key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = pending["messages"][0]["message_id"].as_str().unwrap().to_owned();
    wait_text(&c, "#message-rows .badge", "sending").await;
    for status in ["sent", "delivered"] {
        http.post(app.url("/api/sms/report"))
            .header("x-api-key", &key)
            .json(&serde_json::json!({"message_id": id, "status": status}))
            .send()
            .await
            .unwrap();
        wait_text(&c, "#message-rows .badge", status).await;
    }
    assert_eq!(path(&c).await, "/messages", "no navigation happened");
    c.goto(&app.url("/")).await.unwrap();
    wait_text(&c, "#delivered-percent", "100%").await;
    snapshot(&c, "dashboard-live").await;
    c.close().await.unwrap();
}

/// A webhook receiver on a fixed loopback port that can be stopped and started again; it
/// verifies both signatures of every request it accepts.
struct Receiver {
    port: u16,
    secret: std::sync::Arc<std::sync::Mutex<String>>,
    /// (event, webhook-id) of every verified request.
    got: std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Receiver {
    fn new() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        Self {
            port,
            secret: Default::default(),
            got: Default::default(),
            stop: None,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }

    async fn start(&mut self) {
        use axum::body::Bytes;
        use axum::http::HeaderMap;
        use hmac::{KeyInit, Mac};
        let (secret, got) = (self.secret.clone(), self.got.clone());
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: Bytes| {
                let (secret, got) = (secret.clone(), got.clone());
                async move {
                    let secret = secret.lock().unwrap().clone();
                    // Standard Webhooks, with the reference implementation.
                    standardwebhooks::Webhook::new(&secret)
                        .unwrap()
                        .verify(&body, &headers)
                        .expect("a valid webhook-signature");
                    // Vendel's hex HMAC-SHA256 of the body.
                    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
                    mac.update(&body);
                    let hex_sig = hex::encode(mac.finalize().into_bytes());
                    assert_eq!(headers["x-webhook-signature"].to_str().unwrap(), hex_sig);
                    let event: serde_json::Value = serde_json::from_slice(&body).unwrap();
                    got.lock().unwrap().push((
                        event["event"].as_str().unwrap_or("").to_owned(),
                        headers["webhook-id"].to_str().unwrap().to_owned(),
                    ));
                    "ok"
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", self.port))
            .await
            .unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await
        });
        self.stop = Some(tx);
    }

    async fn stop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        // Wait until the port refuses connections.
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_err()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the receiver did not stop");
    }

    fn events(&self) -> Vec<String> {
        self.got.lock().unwrap().iter().map(|g| g.0.clone()).collect()
    }

    async fn wait_for(&self, n: usize, secs: u64) {
        for _ in 0..secs * 20 {
            if self.got.lock().unwrap().len() >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the receiver got {:?}, expected {n} events", self.events());
    }
}

#[tokio::test]
async fn a_person_adds_a_webhook_and_watches_deliveries_fail_retry_and_drain() {
    let Some(driver) = chromedriver().await else {
        return;
    };
    let app = TestApp::spawn_with(Options {
        dispatcher: true,
        webhook_engine: Some(vec![1; 20]),
        ..Options::default()
    })
    .await;
    let email = "hooks@example.org";
    let password = "hooks password 1";
    app.create_user(email, password).await;
    let phone = crate::simulator::Sim::register(&app, email, "android", "Phone").await;
    // Two messages a minute apart would be the phone's default pacing; this test sends two
    // in a row.
    sqlx::query("UPDATE devices SET per_minute_limit = 100")
        .execute(app.pool())
        .await
        .unwrap();
    let user: uuid::Uuid = sqlx::query_scalar("SELECT w.id FROM users JOIN workspaces w ON w.personal_user_id = users.id WHERE email_normalized = $1")
        .bind(email)
        .fetch_one(app.pool())
        .await
        .unwrap();
    let api = KeyClient::new(
        &app,
        ender_core::apikey::create(
            app.pool(),
            ender_core::workspace::WorkspaceId(user),
            None,
            "crm",
            ender_core::apikey::Scopes::all(),
            None,
            10,
        )
        .await
        .unwrap()
        .secret,
    );
    let mut receiver = Receiver::new();
    receiver.start().await;

    let c = browser(&driver).await;
    c.goto(&app.url("/login")).await.unwrap();
    fill(&c, "#email", email).await;
    fill(&c, "#password", password).await;
    click(&c, "#login-form button[type=submit]").await;
    wait_path(&c, "/").await;

    // Add the endpoint on the Webhooks page.
    click(&c, "a.nav-link[href='/webhooks']").await;
    click(&c, "#add-endpoint").await;
    wait_path(&c, "/webhooks/new").await;
    fill(&c, "#url", &receiver.url()).await;
    click(&c, "input[name=events][value=sms_sent]").await;
    click(&c, "input[name=events][value=sms_delivered]").await;
    click(&c, "#webhook-form button[type=submit]").await;
    let secret = text(&c, "#secret").await;
    assert!(secret.starts_with("whsec_"), "{secret}");
    *receiver.secret.lock().unwrap() = secret;
    snapshot(&c, "webhook-created").await;
    let endpoint_page = path(&c).await;

    // An SMS goes out and is delivered: both events arrive, signed.
    let send = |to: &'static str| {
        let api = api.clone();
        async move {
            let (status, body) = api
                .post(
                    "/api/sms/send",
                    serde_json::json!({"recipients": [to], "body": "Your appointment is at 9"}),
                )
                .await;
            assert_eq!(status, reqwest::StatusCode::OK, "{body}");
        }
    };
    // The phone collects the message and reports it sent, then delivered.
    let sent_and_delivered = || async {
        let mut assigned = Vec::new();
        for _ in 0..100 {
            assigned = phone.pending().await;
            if !assigned.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let id = assigned[0]["message_id"].as_str().unwrap().to_owned();
        for status in ["sent", "delivered"] {
            assert_eq!(phone.report(&id, status, "").await.0, reqwest::StatusCode::OK);
        }
    };
    send("+15550101010").await;
    sent_and_delivered().await;
    receiver.wait_for(2, 10).await;
    let mut events = receiver.events();
    events.sort();
    assert_eq!(events, ["sms_delivered", "sms_sent"]);
    // The live table shows them succeeded without a reload.
    wait_text(&c, "#deliveries", "succeeded").await;

    // The receiver goes away: attempts fail and are scheduled again.
    receiver.stop().await;
    send("+15550101011").await;
    sent_and_delivered().await;
    wait_text(&c, "#deliveries", "data-status=\"pending\"").await;
    for _ in 0..100 {
        let retried: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM webhook_deliveries WHERE status = 'pending' AND attempts >= 2",
        )
        .fetch_one(app.pool())
        .await
        .unwrap();
        if retried >= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    c.goto(&app.url(&endpoint_page)).await.unwrap();
    wait_text(&c, "#last-failure", "Connection refused").await;
    snapshot(&c, "webhook-failing").await;

    // Back again: the backlog drains, live on the page (within the circuit breaker's first
    // pause, 30 s, if the failures opened it; 60 s more if its probe came before the
    // receiver was back).
    receiver.start().await;
    receiver.wait_for(4, 75).await;
    let mut events = receiver.events();
    events.sort();
    assert_eq!(events, ["sms_delivered", "sms_delivered", "sms_sent", "sms_sent"]);
    let ids: std::collections::HashSet<String> =
        receiver.got.lock().unwrap().iter().map(|g| g.1.clone()).collect();
    assert_eq!(ids.len(), 4, "each event arrived once");
    for _ in 0..50 {
        let html = c.source().await.unwrap();
        if !html.contains("data-status=\"pending\"") && html.matches("data-status=\"succeeded\"").count() == 4
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let html = c.source().await.unwrap();
    assert_eq!(
        html.matches("data-status=\"succeeded\"").count(),
        4,
        "the page shows all four succeeded"
    );
    snapshot(&c, "webhook-drained").await;
    c.close().await.unwrap();
}

#[tokio::test]
async fn a_person_imports_contacts_and_schedules_a_daily_personalised_send() {
    let Some(driver) = chromedriver().await else {
        return;
    };
    let app = TestApp::spawn().await;
    app.create_user("clinic@example.org", "first password 1").await;
    let user: uuid::Uuid = sqlx::query_scalar("SELECT w.id FROM users JOIN workspaces w ON w.personal_user_id = users.id WHERE email = 'clinic@example.org'")
        .fetch_one(app.pool())
        .await
        .unwrap();
    let user = ender_core::workspace::WorkspaceId(user);
    let device = ender_core::device::DeviceInput::parse("Front desk", "android", "").unwrap();
    ender_core::device::create(app.pool(), user, &device, 10)
        .await
        .unwrap();
    let c = browser(&driver).await;
    c.goto(&app.url("/login")).await.unwrap();
    fill(&c, "#email", "clinic@example.org").await;
    fill(&c, "#password", "first password 1").await;
    click(&c, "#login-form button[type=submit]").await;
    wait_path(&c, "/").await;

    // Import a CSV with a bad row into a new group.
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("patients.csv");
    std::fs::write(
        &csv,
        "Name,Mobile\nAna Silva,+447700900001\nBen Jones,+44 7700 900002\nNobody,12345\n",
    )
    .unwrap();
    c.goto(&app.url("/contacts/import")).await.unwrap();
    find(&c, "#file")
        .await
        .send_keys(csv.to_str().unwrap())
        .await
        .unwrap();
    click(&c, "#upload").await;
    wait_path(&c, "/contacts/import/").await;
    wait_text(&c, "#import-total", "3").await;
    click(&c, "#target option[value=new]").await;
    fill_settled(&c, "#new_group", "Patients").await;
    snapshot(&c, "import-preview").await;
    click(&c, "#start-import").await;
    wait_text(&c, "#import-count", "done").await;
    assert_eq!(text(&c, "#result-created").await, "2");
    assert_eq!(text(&c, "#result-failed").await, "1");
    assert!(text(&c, "#import-errors").await.contains("12345"));
    snapshot(&c, "import-done").await;
    let group: uuid::Uuid = sqlx::query_scalar("SELECT id FROM contact_groups WHERE name = 'Patients'")
        .fetch_one(app.pool())
        .await
        .unwrap();

    // A template with {{name}}; the preview fills it.
    c.goto(&app.url("/templates/new")).await.unwrap();
    fill(&c, "#name", "Reminder").await;
    fill(&c, "#body", "Hi {{name}}, see you at 9.").await;
    wait_text(&c, "#template-preview", "Hi Ana Silva, see you at 9.").await;
    click(&c, "#template-form button[type=submit]").await;
    // The form's own path starts with /templates/ too: wait for the saved template.
    let mut template = None;
    for _ in 0..100 {
        template =
            sqlx::query_scalar::<_, uuid::Uuid>("SELECT id FROM message_templates WHERE name = 'Reminder'")
                .fetch_optional(app.pool())
                .await
                .unwrap();
        if template.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let template = template.expect("the template was saved");
    wait_path(&c, &format!("/templates/{template}")).await;

    // Daily at 09:00 in London to the group, with the next five runs shown.
    c.goto(&app.url("/scheduled/new")).await.unwrap();
    click(&c, "#kind-recurring").await;
    fill(&c, "#timezone", "Europe/London").await;
    click(&c, &format!("#groups input[value='{group}']")).await;
    click(&c, &format!("#template_id option[value='{template}']")).await;
    wait_text(&c, "#runs-list", "09:00").await;
    let runs = c.find_all(Locator::Css("#runs-list li")).await.unwrap();
    assert_eq!(runs.len(), 5);
    snapshot(&c, "schedule-new").await;
    click(&c, "#schedule-form button[type=submit]").await;
    wait_path(&c, "/scheduled/").await;
    let when = text(&c, "#schedule-when").await;
    assert!(when.contains("09:00") && when.contains("Europe/London"), "{when}");
    assert_eq!(c.find_all(Locator::Css("#upcoming li")).await.unwrap().len(), 5);

    // The clock moves through two due times: each contact gets its message once a day.
    let cfg = ender_core::config::SmsConfig::default();
    for _ in 0..2 {
        let due: chrono::DateTime<chrono::Utc> =
            sqlx::query_scalar("SELECT next_run_at FROM scheduled_sends")
                .fetch_one(app.pool())
                .await
                .unwrap();
        for later in [1, 20] {
            ender_core::schedule::run::fire_due(app.pool(), &cfg, due + chrono::Duration::seconds(later), 10)
                .await
                .unwrap();
        }
    }
    let sent: Vec<(String, String)> = ender_core::testing::message_texts(app.pool())
        .await
        .into_iter()
        .map(|(_, to, body)| (to, body))
        .collect();
    assert_eq!(
        sent,
        [
            (
                "+447700900001".to_owned(),
                "Hi Ana Silva, see you at 9.".to_owned()
            ),
            (
                "+447700900001".to_owned(),
                "Hi Ana Silva, see you at 9.".to_owned()
            ),
            (
                "+447700900002".to_owned(),
                "Hi Ben Jones, see you at 9.".to_owned()
            ),
            (
                "+447700900002".to_owned(),
                "Hi Ben Jones, see you at 9.".to_owned()
            ),
        ]
    );
    c.refresh().await.unwrap();
    assert_eq!(
        c.find_all(Locator::Css("#history tbody tr")).await.unwrap().len(),
        2
    );
    snapshot(&c, "schedule-history").await;
    c.close().await.unwrap();
}

/// Signs in through the form and switches to `workspace` with the switcher in the top bar.
async fn sign_in_to(c: &Client, app: &TestApp, email: &str, password: &str, workspace: &str) {
    c.goto(&app.url("/login")).await.unwrap();
    fill(c, "#email", email).await;
    fill(c, "#password", password).await;
    click(c, "#login-form button[type=submit]").await;
    wait_path(c, "/").await;
    click(c, "#workspace-switcher summary").await;
    for button in c
        .find_all(Locator::Css("#workspace-switcher form button"))
        .await
        .unwrap()
    {
        if button.text().await.unwrap().contains(workspace) {
            button.click().await.unwrap();
            break;
        }
    }
    wait_text(c, "#workspace-switcher .workspace-name", workspace).await;
}

#[tokio::test]
async fn two_members_of_a_workspace_share_it_live_and_a_removed_viewer_is_told_so() {
    let Some(driver) = chromedriver().await else {
        return;
    };
    let app = TestApp::spawn_with(Options {
        dispatcher: true,
        ..Default::default()
    })
    .await;
    const PW: &str = "first password 1";
    let mut ids = Vec::new();
    for email in [
        "owner@clinic.example",
        "rita@clinic.example",
        "vic@clinic.example",
    ] {
        app.create_user(email, PW).await;
        let id: uuid::Uuid = sqlx::query_scalar("SELECT id FROM users WHERE email_normalized = $1")
            .bind(email)
            .fetch_one(app.pool())
            .await
            .unwrap();
        ids.push(ender_core::account::UserId(id));
    }
    use ender_core::workspace::{self, Role, WorkspaceName};
    let clinic = workspace::create(app.pool(), ids[0], &WorkspaceName::parse("Clinic").unwrap(), 10)
        .await
        .unwrap();
    let mut conn = app.pool().acquire().await.unwrap();
    workspace::repo::add_member(&mut conn, clinic.id, ids[1], Role::Member)
        .await
        .unwrap();
    workspace::repo::add_member(&mut conn, clinic.id, ids[2], Role::Viewer)
        .await
        .unwrap();
    let input = ender_core::device::DeviceInput::parse("Reception", "android", "").unwrap();
    let phone = ender_core::device::create(app.pool(), clinic.id, &input, 10)
        .await
        .unwrap();

    // The owner watches the clinic's messages; Rita, a member, sends from hers.
    let owner = browser(&driver).await;
    sign_in_to(&owner, &app, "owner@clinic.example", PW, "Clinic").await;
    owner.goto(&app.url("/messages")).await.unwrap();
    let rita = browser(&driver).await;
    sign_in_to(&rita, &app, "rita@clinic.example", PW, "Clinic").await;
    rita.goto(&app.url("/send")).await.unwrap();
    fill(&rita, "#recipients", "+15550001111").await;
    fill(&rita, "#body", "Your appointment is tomorrow at 10").await;
    click(&rita, "#send-form button[type=submit]").await;
    wait_path(&rita, "/messages").await;
    wait_text(&rita, "#message-rows .badge", "pending").await;

    // The clinic's phone (simulated) sends it; the owner's page follows without a reload.
    let http = reqwest::Client::new();
    let pending: serde_json::Value = http
        .get(app.url("/api/sms/pending"))
        .header("x-api-key", &phone.secret)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = pending["messages"][0]["message_id"].as_str().unwrap().to_owned();
    wait_text(&owner, "#message-rows .badge", "sending").await;
    for status in ["sent", "delivered"] {
        http.post(app.url("/api/sms/report"))
            .header("x-api-key", &phone.secret)
            .json(&serde_json::json!({"message_id": id, "status": status}))
            .send()
            .await
            .unwrap();
        wait_text(&owner, "#message-rows .badge", status).await;
    }
    wait_text(&rita, "#message-rows .badge", "delivered").await;
    assert_eq!(path(&owner).await, "/messages", "no navigation happened");
    snapshot(&owner, "workspace-live").await;

    // Vic, a viewer, reads but cannot send.
    let vic = browser(&driver).await;
    sign_in_to(&vic, &app, "vic@clinic.example", PW, "Clinic").await;
    vic.goto(&app.url("/messages")).await.unwrap();
    wait_text(&vic, "#message-rows .badge", "delivered").await;
    assert!(
        vic.find(Locator::Css("a.nav-link[href='/send']")).await.is_err(),
        "no Send entry"
    );
    vic.goto(&app.url("/send")).await.unwrap();
    wait_text(&vic, "main", "does not allow you to send SMS").await;

    // The owner removes Vic; Vic's next click says so.
    owner.goto(&app.url("/workspace")).await.unwrap();
    click(
        &owner,
        &format!("tr[data-member='{}'] form[action$='/remove'] button", ids[2]),
    )
    .await;
    owner.accept_alert().await.unwrap();
    wait_text(&owner, ".toast, .flash, body", "no longer a member").await;
    vic.goto(&app.url("/messages")).await.unwrap();
    wait_text(&vic, "main", "You no longer have access").await;
    snapshot(&vic, "workspace-removed").await;
    for c in [owner, rita, vic] {
        c.close().await.unwrap();
    }
}

#[tokio::test]
async fn a_person_tops_up_upgrades_sends_past_the_old_limit_cancels_and_is_downgraded_at_period_end() {
    let Some(driver) = chromedriver().await else {
        return;
    };
    let fake = crate::fake_pay::FakePay::start().await;
    let app = TestApp::spawn_with(Options {
        extra_args: fake.args(),
        ..billing_on()
    })
    .await;
    fake.report_to(app.url("/api/webhooks/stripe"));
    app.create_user("buyer@example.org", "first password 1").await;
    let c = browser(&driver).await;
    c.goto(&app.url("/login")).await.unwrap();
    fill(&c, "#email", "buyer@example.org").await;
    fill(&c, "#password", "first password 1").await;
    click(&c, "#login-form button[type=submit]").await;
    wait_path(&c, "/").await;
    wait_text(&c, "#usage", "Free plan").await;

    // Top up $5 through the provider's checkout page.
    c.goto(&app.url("/billing")).await.unwrap();
    fill(&c, "#amount", "5").await;
    click(&c, "#topup-form button[type=submit]").await;
    click(&c, "#continue").await;
    click(&c, "#pay").await;
    wait_path(&c, "/billing?topup=").await;
    wait_text(&c, "#balance", "$5.00").await;
    snapshot(&c, "billing-topped-up").await;

    // Upgrade to Hobby after reading what it costs.
    click(&c, "[data-choose='hobby-monthly']").await;
    wait_text(&c, "#confirm", "$0.99 is taken from the balance").await;
    click(&c, "#confirm-button").await;
    wait_text(&c, "#subscription-status", "Hobby (monthly), renews on").await;
    wait_text(&c, "#balance", "$4.01").await;

    // Free's 50 are used up; on Hobby the 51st goes.
    let ws: uuid::Uuid = sqlx::query_scalar(
        "SELECT w.id FROM users u JOIN workspaces w ON w.personal_user_id = u.id WHERE u.email_normalized = 'buyer@example.org'",
    )
    .fetch_one(app.pool())
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO sms_usage (workspace_id, month, sent) VALUES ($1, (now() AT TIME ZONE 'UTC')::date, 50)
         ON CONFLICT (workspace_id, month) DO UPDATE SET sent = 50",
    )
    .bind(ws)
    .execute(app.pool())
    .await
    .unwrap();
    c.goto(&app.url("/send")).await.unwrap();
    fill(&c, "#recipients", "+15550001111").await;
    fill(&c, "#body", "Your appointment is tomorrow at 9").await;
    click(&c, "#send-form button[type=submit]").await;
    wait_path(&c, "/messages").await;
    wait_text(&c, "#message-rows .badge", "pending").await;
    c.goto(&app.url("/")).await.unwrap();
    wait_text(&c, "#sms-used", "51").await;

    // Cancel at the end of the period.
    c.goto(&app.url("/billing")).await.unwrap();
    click(&c, "#cancel-end").await;
    wait_text(&c, "#confirm", "then the workspace moves to the free plan").await;
    click(&c, "#confirm-button").await;
    wait_text(&c, "#subscription-status", "nothing more is charged").await;

    // The clock moves past the period's end; the worker's renewal step runs.
    let end: chrono::DateTime<chrono::Utc> =
        sqlx::query_scalar("SELECT current_period_end FROM subscriptions WHERE workspace_id = $1")
            .bind(ws)
            .fetch_one(app.pool())
            .await
            .unwrap();
    let later = end + chrono::Duration::minutes(1);
    let mut tx = app.pool().begin().await.unwrap();
    let due = ender_core::billing::subscriptions::claim_due(&mut tx, later, 3, 10)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(due.len(), 1);
    ender_core::billing::subscriptions::run_due(app.pool(), due[0], "usd", later)
        .await
        .unwrap();
    c.goto(&app.url("/billing")).await.unwrap();
    wait_text(&c, "#current-plan h2", "Free plan").await;
    wait_text(&c, "#plan-history", "canceled").await;
    wait_text(&c, "#balance", "$4.01").await;
    snapshot(&c, "billing-downgraded").await;
    c.close().await.unwrap();
}

/// The operator's round in the admin console: find a person, suspend them (their open
/// session ends at their next click), change a workspace's plan, create a promo code, turn
/// maintenance on (a member's send is refused, a phone's report is taken) and off again,
/// and read each of those in the audit log.
#[tokio::test]
async fn an_operator_suspends_changes_a_plan_creates_a_promo_and_runs_maintenance_in_a_browser() {
    // The password the SMS test helpers give the people they create.
    const PW: &str = "correct horse battery";
    let Some(driver) = chromedriver().await else {
        return;
    };
    // With billing on, so workspaces have plans to change.
    let app = TestApp::spawn_with(billing_on()).await;
    app.create_user("root@example.org", PW).await;
    sqlx::query("UPDATE users SET is_admin = true WHERE email_normalized = 'root@example.org'")
        .execute(app.pool())
        .await
        .unwrap();
    app.create_user("victim@example.org", PW).await;
    let caller = crate::sms::Caller::new(&app, "clinic@example.org").await;
    let phone = crate::simulator::Sim::register(&app, "clinic@example.org", "android", "Desk").await;
    let clinic_ws: uuid::Uuid = sqlx::query_scalar(
        "SELECT w.id FROM workspaces w JOIN users u ON w.personal_user_id = u.id WHERE u.email_normalized = 'clinic@example.org'",
    )
    .fetch_one(app.pool())
    .await
    .unwrap();
    // A message the phone holds while maintenance starts.
    let (status, sent) = caller.send(&["+15550001111"], "before").await;
    assert_eq!(status, reqwest::StatusCode::OK, "{sent}");
    let message = sent["message_ids"][0].as_str().unwrap().to_owned();
    if phone.pending().await.is_empty() {
        ender_core::sms::dispatch::dispatch_workspace(
            app.pool(),
            &ender_core::config::SmsConfig::default(),
            ender_core::workspace::WorkspaceId(clinic_ws),
        )
        .await
        .unwrap();
        assert_eq!(phone.pending().await.len(), 1);
    }

    let victim = browser(&driver).await;
    let member = browser(&driver).await;
    let admin = browser(&driver).await;
    for (c, email) in [
        (&victim, "victim@example.org"),
        (&member, "clinic@example.org"),
        (&admin, "root@example.org"),
    ] {
        c.goto(&app.url("/login")).await.unwrap();
        fill(c, "#email", email).await;
        fill(c, "#password", PW).await;
        click(c, "#login-form button[type=submit]").await;
        find(c, "details.account-menu").await;
    }

    // Find the person by email and suspend them.
    c_goto(&admin, &app, "/admin").await;
    fill(&admin, "#people-q", "victim@").await;
    click(&admin, "#people-filter button[type=submit]").await;
    wait_path(&admin, "/admin?q=victim").await;
    let rows = admin
        .find_all(Locator::Css("#users a.person-link"))
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].text().await.unwrap(), "victim@example.org");
    rows[0].click().await.unwrap();
    wait_path(&admin, "/admin/people/").await;
    click(&admin, "#suspend").await;
    text(&admin, "#suspended-badge").await;
    snapshot(&admin, "admin-person").await;
    // The suspended person's next click finds them signed out.
    click(&victim, "a.nav-link[href='/messages']").await;
    wait_path(&victim, "/login").await;
    fill(&victim, "#email", "victim@example.org").await;
    fill(&victim, "#password", PW).await;
    click(&victim, "#login-form button[type=submit]").await;
    wait_text(&victim, "#form-error", "suspended").await;

    // Move the clinic's workspace to Pro.
    c_goto(&admin, &app, &format!("/admin/workspaces/{clinic_ws}")).await;
    find(&admin, "#plan-select")
        .await
        .select_by_value("00000000-0000-4000-8000-00000000f003")
        .await
        .unwrap();
    click(&admin, "#change-plan").await;
    wait_text(&admin, "#ws-plan", "Pro").await;

    // A promo code.
    c_goto(&admin, &app, "/admin/promos").await;
    fill(&admin, "#code", "spring-26").await;
    fill(&admin, "#credit", "5.00").await;
    click(&admin, "#create-promo").await;
    wait_text(&admin, "#promos code", "SPRING-26").await;

    // Maintenance on: the banner everywhere, a member's send refused, a phone heard.
    c_goto(&admin, &app, "/admin/settings").await;
    let on = find(&admin, "#maintenance_mode").await;
    if on.prop("checked").await.unwrap().as_deref() != Some("true") {
        on.click().await.unwrap();
    }
    fill(&admin, "#maintenance_message", "Back at noon.").await;
    click(&admin, "#save-settings").await;
    wait_text(&admin, "#maintenance-banner", "Back at noon.").await;
    snapshot(&admin, "admin-maintenance").await;
    c_goto(&member, &app, "/send").await;
    wait_text(&member, "#maintenance-banner", "Back at noon.").await;
    fill(&member, "#recipients", "+15550002222").await;
    fill(&member, "#body", "during").await;
    click(&member, "#send-form button[type=submit]").await;
    wait_text(&member, ".error-page", "Back at noon.").await;
    assert_eq!(text(&member, ".error-page .code").await, "503");
    let (status, body) = phone.report(&message, "sent", "").await;
    assert_eq!(status, reqwest::StatusCode::OK, "{body}");
    assert_eq!(caller.status_of(&message).await, "sent");

    // Maintenance off: the member sends again.
    c_goto(&admin, &app, "/admin/settings").await;
    let on = find(&admin, "#maintenance_mode").await;
    if on.prop("checked").await.unwrap().as_deref() == Some("true") {
        on.click().await.unwrap();
    }
    click(&admin, "#save-settings").await;
    wait_text(&admin, ".toast", "saved").await;
    assert!(
        admin
            .find_all(Locator::Css("#maintenance-banner"))
            .await
            .unwrap()
            .is_empty()
    );
    c_goto(&member, &app, "/send").await;
    fill(&member, "#recipients", "+15550002222").await;
    fill(&member, "#body", "after").await;
    click(&member, "#send-form button[type=submit]").await;
    wait_path(&member, "/messages").await;

    // Each action in the audit log, newest first.
    c_goto(&admin, &app, "/admin/audit").await;
    let mut actions = Vec::new();
    for el in admin
        .find_all(Locator::Css("#admin-audit .audit-action"))
        .await
        .unwrap()
    {
        actions.push(el.text().await.unwrap());
    }
    assert_eq!(
        actions,
        [
            "settings.changed",
            "settings.changed",
            "promo.created",
            "workspace.plan_changed",
            "user.suspended"
        ]
    );
    snapshot(&admin, "admin-audit").await;
    for c in [victim, member, admin] {
        c.close().await.unwrap();
    }
}

/// Server options with billing on.
fn billing_on() -> Options {
    Options {
        sms: Some(ender_core::config::SmsConfig {
            billing: ender_core::config::BillingConfig {
                enabled: true,
                ..Default::default()
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

async fn c_goto(c: &Client, app: &TestApp, path: &str) {
    c.goto(&app.url(path)).await.unwrap();
}
