//! The test application: a server on 127.0.0.1:0 with its own database and mail folder,
//! and a cookie-keeping client that does not follow redirects.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use ender_core::config::SmsConfig;
use ender_core::mail::Mailer;
use ender_core::testing::{TestDb, test_db};
use ender_web::{AppState, WebConfig};
use reqwest::{Response, StatusCode};
use scraper::{Html, Selector};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
struct Args {
    #[command(flatten)]
    web: WebConfig,
}

pub struct TestApp {
    pub addr: SocketAddr,
    pub db: TestDb,
    pub mail_dir: tempfile::TempDir,
    /// The local object store's folder (unless the test gave its own store).
    pub objects_dir: tempfile::TempDir,
    pub store: ender_core::store::Store,
    pub client: reqwest::Client,
    /// The keyring the server seals webhook secrets with.
    pub keyring: std::sync::Arc<ender_core::secret::Keyring>,
    shutdown: CancellationToken,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Options for [`TestApp::spawn_with`].
#[derive(Default)]
pub struct Options {
    pub extra_args: Vec<String>,
    /// Serve with this pool instead of the test database's own.
    pub pool: Option<PgPool>,
    /// Pipeline settings (defaults otherwise).
    pub sms: Option<SmsConfig>,
    /// Run the worker's dispatcher beside the server, as `ender-web` does by default.
    pub dispatcher: bool,
    /// Run the worker's webhook delivery engine too, retrying after these waits (seconds).
    pub webhook_engine: Option<Vec<u64>>,
    /// Keep exports here instead of a local folder.
    pub store: Option<ender_core::store::Store>,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(Options::default()).await
    }

    pub async fn spawn_with(options: Options) -> Self {
        let db = test_db().await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut argv = vec!["test".to_owned(), "--no-worker".to_owned()];
        if !options.extra_args.iter().any(|a| a == "--public-url") {
            argv.extend(["--public-url".to_owned(), format!("http://{addr}")]);
        }
        argv.extend(options.extra_args);
        let web = Args::parse_from(argv).web;
        let mail_dir = tempfile::tempdir().unwrap();
        let pool = options.pool.unwrap_or_else(|| db.pool.clone());
        let mailer = Mailer::files(mail_dir.path()).with_database(pool.clone());
        let sms = options.sms.unwrap_or_default();
        let shutdown = CancellationToken::new();
        if options.dispatcher {
            tokio::spawn(ender_worker::dispatcher::run(
                pool.clone(),
                sms.clone(),
                None,
                shutdown.clone(),
            ));
        }
        let keyring = std::sync::Arc::new(
            ender_core::secret::Keyring::parse(&ender_core::secret::Keyring::generate_entry(1)).unwrap(),
        );
        let webhooks = ender_web::state::WebhookSetup {
            keyring: keyring.clone(),
            config: ender_worker::webhooks::WebhookConfig {
                webhook_retry_secs: vec![0],
                webhook_timeout_secs: 3,
                webhook_concurrency: 4,
                ..Default::default()
            },
            // Test receivers listen on loopback.
            allow: vec!["127.0.0.0/8".parse().unwrap()],
        };
        if let Some(retry) = options.webhook_engine {
            let cfg = ender_worker::webhooks::WebhookConfig {
                webhook_retry_secs: retry,
                webhook_timeout_secs: 3,
                ..Default::default()
            };
            let engine = ender_worker::webhooks::Deliverer::new(
                pool.clone(),
                keyring.clone(),
                cfg,
                webhooks.allow.clone(),
                None,
            )
            .unwrap();
            tokio::spawn(std::sync::Arc::new(engine).run(shutdown.clone()));
        }
        let objects_dir = tempfile::tempdir().unwrap();
        let store = options
            .store
            .unwrap_or_else(|| ender_core::store::Store::local(objects_dir.path()));
        let state = AppState::new(pool, web, sms, mailer, webhooks, store.clone(), shutdown.clone());
        tokio::spawn(ender_web::serve(listener, state));
        Self {
            addr,
            db,
            mail_dir,
            objects_dir,
            store,
            client: client(),
            keyring,
            shutdown,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn pool(&self) -> &PgPool {
        &self.db.pool
    }

    /// A second, independent browser (its own cookies).
    pub fn new_client(&self) -> reqwest::Client {
        client()
    }

    pub async fn get(&self, path: &str) -> Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    /// Posts a form with the CSRF token of the current session (fetched from `form_page`).
    pub async fn post_form(&self, form_page: &str, action: &str, fields: &[(&str, &str)]) -> Response {
        post_form_with(&self.client, self, form_page, action, fields).await
    }

    pub async fn csrf(&self, page: &str) -> String {
        csrf_with(&self.client, self, page).await
    }

    /// Creates a verified account with a password and signs this client in.
    pub async fn signed_in_user(&self, email: &str, password: &str) {
        self.create_user(email, password).await;
        let res = self.login(email, password).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "login of {email} failed");
    }

    pub async fn create_user(&self, email: &str, password: &str) {
        use ender_core::account::{Email, FullName, Password, sign_up};
        sign_up(
            self.pool(),
            &Email::parse(email).unwrap(),
            &Password::parse(password, "password").unwrap(),
            &FullName::parse("Test Person").unwrap(),
            false,
        )
        .await
        .unwrap();
    }

    pub async fn login(&self, email: &str, password: &str) -> Response {
        self.post_form("/login", "/login", &[("email", email), ("password", password)])
            .await
    }

    /// Mails written so far, oldest first.
    pub fn mails(&self) -> Vec<String> {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(self.mail_dir.path())
            .map(|d| {
                d.flatten()
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|x| x == "eml"))
                    .collect()
            })
            .unwrap_or_default();
        paths.sort();
        paths
            .iter()
            .map(|p| std::fs::read_to_string(p).unwrap())
            .collect()
    }

    /// Waits until at least `n` mails were written (they are sent from background tasks)
    /// and returns them, oldest first.
    pub async fn wait_for_mails(&self, n: usize) -> Vec<String> {
        for _ in 0..200 {
            let mails = self.mails();
            if mails.len() >= n {
                return mails;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("expected {n} mails, found {}", self.mails().len());
    }

    /// The path and query of the first link to this server in the newest mail.
    pub fn last_mail_link(&self) -> String {
        let mails = self.mails();
        let mail = mails.last().expect("no mail was written");
        link_in(mail, &format!("http://{}", self.addr))
    }
}

pub fn link_in(text: &str, base: &str) -> String {
    let start = text
        .find(base)
        .unwrap_or_else(|| panic!("no link to {base} in {text}"));
    let rest = &text[start + base.len()..];
    let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
    rest[..end].to_owned()
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

pub async fn csrf_with(client: &reqwest::Client, app: &TestApp, page: &str) -> String {
    let body = client
        .get(app.url(page))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    select_attr(&body, "meta[name=csrf-token]", "content")
        .unwrap_or_else(|| panic!("no CSRF token on {page}"))
}

pub async fn post_form_with(
    client: &reqwest::Client,
    app: &TestApp,
    form_page: &str,
    action: &str,
    fields: &[(&str, &str)],
) -> Response {
    let token = csrf_with(client, app, form_page).await;
    let mut all: Vec<(&str, &str)> = vec![("_csrf", token.as_str())];
    all.extend_from_slice(fields);
    client.post(app.url(action)).form(&all).send().await.unwrap()
}

pub fn location(res: &Response) -> String {
    res.headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

/// The attribute of the first element matching `selector`.
pub fn select_attr(html: &str, selector: &str, attr: &str) -> Option<String> {
    let doc = Html::parse_document(html);
    let sel = Selector::parse(selector).unwrap();
    doc.select(&sel)
        .next()
        .and_then(|e| e.value().attr(attr))
        .map(str::to_owned)
}

/// The attribute of every element matching `selector` that has it.
pub fn select_attr_all(html: &str, selector: &str, attr: &str) -> Vec<String> {
    let doc = Html::parse_document(html);
    let sel = Selector::parse(selector).unwrap();
    doc.select(&sel)
        .filter_map(|e| e.value().attr(attr))
        .map(str::to_owned)
        .collect()
}

/// The text of every element matching `selector`.
pub fn select_text(html: &str, selector: &str) -> Vec<String> {
    let doc = Html::parse_document(html);
    let sel = Selector::parse(selector).unwrap();
    doc.select(&sel)
        .map(|e| e.text().collect::<String>().trim().to_owned())
        .collect()
}

pub fn has(html: &str, selector: &str) -> bool {
    !select_text(html, selector).is_empty()
}

/// A client that sends one `X-API-Key` with every request and reads JSON answers.
#[derive(Clone)]
pub struct KeyClient {
    pub key: String,
    pub http: reqwest::Client,
    pub base: String,
}

impl KeyClient {
    pub fn new(app: &TestApp, key: String) -> Self {
        Self {
            key,
            http: reqwest::Client::new(),
            base: app.url(""),
        }
    }

    pub async fn get(&self, path: &str) -> (StatusCode, serde_json::Value) {
        let res = self
            .http
            .get(format!("{}{path}", self.base))
            .header("x-api-key", &self.key)
            .send()
            .await
            .unwrap();
        let status = res.status();
        (status, res.json().await.unwrap_or(serde_json::Value::Null))
    }

    pub async fn post(&self, path: &str, body: serde_json::Value) -> (StatusCode, serde_json::Value) {
        let res = self
            .http
            .post(format!("{}{path}", self.base))
            .header("x-api-key", &self.key)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = res.status();
        (status, res.json().await.unwrap_or(serde_json::Value::Null))
    }
}
