//! A device simulator: the Vendel Android app's calls (pending, report, incoming,
//! fcm-token) and a modem holding either event stream.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{KeyClient, TestApp};

/// A registered device and its key.
pub struct Sim {
    pub id: String,
    client: KeyClient,
}

impl std::ops::Deref for Sim {
    type Target = KeyClient;
    fn deref(&self) -> &KeyClient {
        &self.client
    }
}

impl Sim {
    /// Registers a device for the user with this email.
    pub async fn register(app: &TestApp, email: &str, kind: &str, name: &str) -> Self {
        let user: uuid::Uuid = sqlx::query_scalar("SELECT w.id FROM users JOIN workspaces w ON w.personal_user_id = users.id WHERE email_normalized = lower($1)")
            .bind(email)
            .fetch_one(app.pool())
            .await
            .unwrap();
        let input = ender_core::device::DeviceInput::parse(name, kind, "+15550009999").unwrap();
        let created =
            ender_core::device::create(app.pool(), ender_core::workspace::WorkspaceId(user), &input, 100)
                .await
                .unwrap();
        Self {
            id: created.device.id.to_string(),
            client: KeyClient::new(app, created.secret),
        }
    }

    /// `GET /api/sms/pending`: the message ids handed over.
    pub async fn pending(&self) -> Vec<Value> {
        let (status, body) = self.get("/api/sms/pending").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["device_id"], self.id.as_str());
        body["messages"].as_array().cloned().unwrap_or_default()
    }

    pub async fn report(&self, message_id: &str, status: &str, error: &str) -> (StatusCode, Value) {
        self.post(
            "/api/sms/report",
            json!({"message_id": message_id, "status": status, "error_message": error}),
        )
        .await
    }

    /// Opens an event stream; frames arrive on the returned channel as (event, data).
    pub async fn stream(&self, path: &str) -> tokio::sync::mpsc::Receiver<(String, String, String)> {
        let res = self
            .http
            .get(format!("{}{path}", self.base))
            .header("x-api-key", &self.key)
            .header("accept", "text/event-stream")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let (tx, rx) = tokio::sync::mpsc::channel(100);
        tokio::spawn(async move {
            let mut res = res;
            let mut buf = String::new();
            // Ends (closing the connection) when the test drops the receiver.
            while let Some(Ok(Some(chunk))) = tokio::select! {
                () = tx.closed() => None,
                c = res.chunk() => Some(c),
            } {
                buf.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(end) = buf.find("\n\n") {
                    let frame: String = buf.drain(..end + 2).collect();
                    let (mut id, mut event, mut data) = (String::new(), String::new(), String::new());
                    for line in frame.lines() {
                        if let Some(v) = line.strip_prefix("id:") {
                            id = v.trim().to_owned();
                        } else if let Some(v) = line.strip_prefix("event:") {
                            event = v.trim().to_owned();
                        } else if let Some(v) = line.strip_prefix("data:") {
                            data.push_str(v.trim_start());
                        }
                    }
                    if !event.is_empty() && tx.send((id, event, data)).await.is_err() {
                        return;
                    }
                }
            }
        });
        rx
    }
}

/// The next frame, within `secs` seconds.
pub async fn next_frame(
    rx: &mut tokio::sync::mpsc::Receiver<(String, String, String)>,
    secs: u64,
) -> (String, String, Value) {
    let (id, event, data) = tokio::time::timeout(Duration::from_secs(secs), rx.recv())
        .await
        .expect("a frame in time")
        .expect("the stream is open");
    (id, event, serde_json::from_str(&data).unwrap_or(Value::Null))
}
