//! A stand-in for Ender's device API on loopback, for these tests: the paths, the key
//! check, the error envelope and the event stream's framing — not its behaviour, which
//! the end-to-end tests against Ender check.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::StreamExt;
use secrecy::SecretString;
use serde_json::{Value, json};
use url::Url;

use super::{Client, Timeouts};

const KEY: &str = "dk_test_key";

/// How the fake answers one POST.
#[derive(Debug, Clone)]
pub struct Answer {
    status: u16,
    message: Option<String>,
    retry_after: Option<u64>,
}

impl Answer {
    /// An error in Ender's envelope.
    pub fn status(status: u16) -> Self {
        Self {
            status,
            message: Some(format!("fake error {status}")),
            retry_after: None,
        }
    }

    pub fn message(mut self, message: &str) -> Self {
        self.message = Some(message.to_owned());
        self
    }

    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }
}

/// What one connection to the event stream gets.
#[derive(Debug, Clone)]
pub struct Script {
    chunks: Vec<Vec<u8>>,
    close: bool,
}

impl Script {
    /// These chunks, then the server closes the stream.
    pub fn closing(chunks: Vec<Vec<u8>>) -> Self {
        Self { chunks, close: true }
    }

    /// These chunks, then the stream stays open (and silent).
    pub fn open(chunks: Vec<Vec<u8>>) -> Self {
        Self { chunks, close: false }
    }

    /// A greeting and these messages (body `text of <id>`), the way Ender frames them.
    pub fn pushing(ids: &[&str], close: bool) -> Self {
        let mut chunks = vec![b"event: hello\ndata: {\"device_id\":\"d1\"}\n\n".to_vec()];
        for id in ids {
            let data = json!({"message_id": id, "recipient": "+15550001", "body": format!("text of {id}")});
            chunks.push(format!("event: message\nid: {id}\ndata: {data}\n\n").into_bytes());
        }
        Self { chunks, close }
    }
}

#[derive(Default)]
struct Shared {
    received: Mutex<Vec<(String, Value, u16)>>,
    answers: Mutex<VecDeque<Answer>>,
    scripts: Mutex<VecDeque<Script>>,
    connections: AtomicUsize,
}

pub struct Fake {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Fake {
    pub async fn start() -> Self {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    pub async fn start_on(addr: SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared::default());
        let app = Router::new()
            .route("/api/device/events", get(events))
            .route("/api/sms/report", post(record))
            .route("/api/sms/incoming", post(record))
            .route("/api/device/status", post(record))
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, shared, task }
    }

    pub fn url(&self) -> Url {
        Url::parse(&format!("http://{}/", self.addr)).unwrap()
    }

    pub fn device_key() -> SecretString {
        SecretString::from(KEY)
    }

    pub fn key(&self) -> SecretString {
        Self::device_key()
    }

    /// A client with the right key and short timeouts.
    pub fn client(&self) -> Client {
        let timeouts = Timeouts {
            connect: Duration::from_secs(2),
            request: Duration::from_secs(5),
            idle: Duration::from_secs(5),
        };
        Client::with_timeouts(self.url(), self.key(), timeouts).unwrap()
    }

    /// The next POST gets this answer (then 200 again).
    pub fn answer(&self, answer: Answer) {
        self.shared.answers.lock().unwrap().push_back(answer);
    }

    /// The next connection to the event stream gets this (later ones stay open, silent).
    pub fn script(&self, script: Script) {
        self.shared.scripts.lock().unwrap().push_back(script);
    }

    /// Every authorised POST: path, body and the status answered.
    pub fn received(&self) -> Vec<(String, Value, u16)> {
        self.shared.received.lock().unwrap().clone()
    }

    /// The reports posted, as (message id, status), whatever was answered.
    pub fn reports(&self) -> Vec<(String, String)> {
        self.received()
            .into_iter()
            .filter(|(path, _, _)| path == "/api/sms/report")
            .map(|(_, b, _)| {
                (
                    b["message_id"].as_str().unwrap().to_owned(),
                    b["status"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }

    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Waits (up to 10 s) until `done` holds.
    pub async fn wait_until(&self, what: &str, done: impl Fn(&Self) -> bool) {
        for _ in 0..1000 {
            if done(self) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("timed out waiting until {what}; received {:?}", self.received());
    }
}

fn envelope(status: u16, message: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap();
    let body = json!({"data": {}, "message": message, "status": status.as_u16()});
    (status, axum::Json(body)).into_response()
}

fn authorised(headers: &HeaderMap) -> bool {
    headers.get("x-api-key").and_then(|v| v.to_str().ok()) == Some(KEY)
}

async fn events(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if !authorised(&headers) {
        return envelope(401, "Invalid API key.");
    }
    shared.connections.fetch_add(1, Ordering::SeqCst);
    let script = shared.scripts.lock().unwrap().pop_front();
    let script = script.unwrap_or_else(|| Script::open(Vec::new()));
    // A pause between chunks so that they arrive as separate reads.
    let chunks = futures::stream::iter(script.chunks).then(|c| async move {
        tokio::time::sleep(Duration::from_millis(2)).await;
        Ok::<_, Infallible>(c)
    });
    let body = if script.close {
        Body::from_stream(chunks)
    } else {
        Body::from_stream(chunks.chain(futures::stream::pending()))
    };
    ([("content-type", "text/event-stream")], body).into_response()
}

async fn record(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    if !authorised(request.headers()) {
        return envelope(401, "Invalid API key.");
    }
    let path = request.uri().path().to_owned();
    let bytes = axum::body::to_bytes(request.into_body(), 1 << 20).await.unwrap();
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let answer = shared.answers.lock().unwrap().pop_front();
    let status = answer.as_ref().map_or(200, |a| a.status);
    shared.received.lock().unwrap().push((path, body, status));
    match answer {
        None => axum::Json(json!({"success": true})).into_response(),
        Some(a) => {
            let mut response = match &a.message {
                Some(m) => envelope(a.status, m),
                None => StatusCode::from_u16(a.status).unwrap().into_response(),
            };
            if let Some(secs) = a.retry_after {
                response.headers_mut().insert("retry-after", secs.into());
            }
            response
        }
    }
}

/// Log lines written while the guard lives (on this thread).
#[derive(Clone, Default)]
pub struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

pub fn capture_logs() -> (tracing::subscriber::DefaultGuard, Logs) {
    let logs = Logs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_max_level(tracing::Level::DEBUG)
        .with_writer(move || writer.clone())
        .finish();
    (tracing::subscriber::set_default(subscriber), logs)
}
