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
    c.goto(&app.url(&app.last_mail_link())).await.unwrap();
    assert!(text(&c, "#welcome h2").await.contains("Ada Lovelace"));
    wait_text(&c, ".toast", "confirmed").await;
    snapshot(&c, "dashboard").await;

    // Sign out through the account menu, then sign in.
    click(&c, "details.menu summary").await;
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
    click(&c, "details.menu summary").await;
    click(&c, "#logout").await;
    wait_path(&c, "/login").await;
    click(&c, "a[href='/forgot-password']").await;
    wait_path(&c, "/forgot-password").await;
    fill(&c, "#email", "ada@example.org").await;
    click(&c, "form.form button[type=submit]").await;
    text(&c, "#request-sent").await;
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
