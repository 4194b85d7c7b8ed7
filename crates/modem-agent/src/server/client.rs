//! The device API of an Ender server, authenticated with the device key (`X-API-Key:
//! dk_…`). Every failure is classified for the caller: try again later, stop (the key is
//! wrong or revoked), or give up on this one request.

use std::collections::VecDeque;
use std::time::Duration;

use futures::Stream;
use reqwest::StatusCode;
use reqwest::header::{ACCEPT, HeaderMap, RETRY_AFTER};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use url::Url;

use super::sse::SseParser;
use super::{Assigned, Incoming, Report, Status};

/// Why a request did not go through.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServerError {
    /// Try again later: the server is unreachable, slow, failing or asks to slow down.
    #[error("Ender is unreachable or busy: {reason}")]
    Retry {
        reason: String,
        /// How long the server asked to wait (`Retry-After`), if it did.
        after: Option<Duration>,
    },
    /// The device key is wrong or revoked: nothing will work until someone changes it.
    #[error("Ender refused the device key (HTTP {status}): {message}")]
    Unauthorized { status: u16, message: String },
    /// The server will never take this request (unknown message, invalid value…).
    #[error("Ender rejected the request (HTTP {status}): {message}")]
    Rejected { status: u16, message: String },
}

impl ServerError {
    fn retry(reason: impl Into<String>) -> Self {
        Self::Retry {
            reason: reason.into(),
            after: None,
        }
    }
}

/// Timeouts of the device API calls.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// Establishing a TCP (and TLS) connection.
    pub connect: Duration,
    /// A whole POST, or the answer to the stream request up to its headers.
    pub request: Duration,
    /// Silence on the event stream before it counts as dead (the server sends a
    /// keep-alive every 15 s).
    pub idle: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(10),
            request: Duration::from_secs(30),
            idle: Duration::from_secs(45),
        }
    }
}

/// A client of one Ender server for one device.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: Url,
    key: SecretString,
    timeouts: Timeouts,
}

impl Client {
    /// `base` is the server's address (`https://ender.example/`, or with a path prefix).
    pub fn new(base: Url, key: SecretString) -> Result<Self, reqwest::Error> {
        Self::with_timeouts(base, key, Timeouts::default())
    }

    pub fn with_timeouts(
        mut base: Url,
        key: SecretString,
        timeouts: Timeouts,
    ) -> Result<Self, reqwest::Error> {
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(timeouts.connect)
            // A redirect would mean a wrong server address; following it could send the
            // key elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("ender-modem-agent/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            http,
            base,
            key,
            timeouts,
        })
    }

    pub fn base(&self) -> &Url {
        &self.base
    }

    /// Opens `GET /api/device/events` and returns the messages it pushes. The stream ends
    /// (after an `Err` when it broke) when the connection does; reconnecting is the
    /// caller's job, and on every connect the server pushes again every message it still
    /// counts as this device's, so the caller must de-duplicate by message id.
    pub async fn events(
        &self,
    ) -> Result<impl Stream<Item = Result<Assigned, ServerError>> + Send + 'static, ServerError> {
        let request = self
            .http
            .get(self.url("api/device/events"))
            .header("x-api-key", self.key.expose_secret())
            .header(ACCEPT, "text/event-stream")
            .send();
        let response = tokio::time::timeout(self.timeouts.request, request)
            .await
            .map_err(|_| ServerError::retry("no answer to the event stream request"))?
            .map_err(network)?;
        let response = check(response).await?;
        let state = Events {
            response,
            parser: SseParser::new(),
            ready: VecDeque::new(),
            idle: self.timeouts.idle,
            done: false,
        };
        Ok(futures::stream::unfold(state, Events::next))
    }

    /// `POST /api/sms/report`. A repeated report is accepted (and changes nothing); an
    /// unknown message, or one never given to this device, is `Rejected` (404).
    pub async fn report(&self, report: &Report) -> Result<(), ServerError> {
        self.post("api/sms/report", report).await
    }

    /// `POST /api/sms/incoming`.
    pub async fn incoming(&self, incoming: &Incoming) -> Result<(), ServerError> {
        self.post("api/sms/incoming", incoming).await
    }

    /// `POST /api/device/status`.
    pub async fn status(&self, status: &Status) -> Result<(), ServerError> {
        self.post("api/device/status", status).await
    }

    fn url(&self, path: &str) -> Url {
        let mut url = self.base.clone();
        url.set_path(&format!("{}{path}", self.base.path()));
        url
    }

    async fn post<T: Serialize + ?Sized>(&self, path: &str, body: &T) -> Result<(), ServerError> {
        let response = self
            .http
            .post(self.url(path))
            .header("x-api-key", self.key.expose_secret())
            .timeout(self.timeouts.request)
            .json(body)
            .send()
            .await
            .map_err(network)?;
        check(response).await.map(drop)
    }
}

fn network(e: reqwest::Error) -> ServerError {
    let reason = if e.is_timeout() {
        "timed out".to_owned()
    } else if e.is_connect() {
        "cannot connect".to_owned()
    } else {
        "connection failed".to_owned()
    };
    // The chain says why (refused, DNS, TLS…), without the URL.
    let mut source = std::error::Error::source(&e);
    let mut reason = reason;
    while let Some(s) = source {
        reason = format!("{reason}: {s}");
        source = s.source();
    }
    ServerError::retry(reason)
}

/// The error envelope of every `/api/` answer.
#[derive(Deserialize)]
struct Envelope {
    message: String,
    #[expect(dead_code, reason = "only its presence marks Ender's envelope")]
    status: u16,
}

/// Longest error text kept from an answer.
const MAX_ERROR_TEXT: usize = 500;

async fn check(response: reqwest::Response) -> Result<reqwest::Response, ServerError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let after = retry_after(response.headers());
    let location = response
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let text = response.text().await.unwrap_or_default();
    let message = serde_json::from_str::<Envelope>(&text).ok().map(|e| e.message);
    let mut e = classify(status, after, message);
    if let (ServerError::Retry { reason, .. }, Some(to)) = (&mut e, location) {
        reason.push_str(&format!(" (to {to}: is the server address right?)"));
    }
    Err(e)
}

/// Sorts a failed answer: 401/403 stop, 408/429/5xx retry, other 4xx are rejections —
/// when Ender said so in its envelope. A 4xx without it came from something in between
/// (a proxy, a wrong address), not from Ender about this request, so it is retried.
pub(crate) fn classify(status: StatusCode, after: Option<Duration>, message: Option<String>) -> ServerError {
    let code = status.as_u16();
    let message = message.map(|m| m.chars().take(MAX_ERROR_TEXT).collect::<String>());
    let described = || {
        message
            .clone()
            .unwrap_or_else(|| status.canonical_reason().unwrap_or("no reason").to_owned())
    };
    match status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => ServerError::Unauthorized {
            status: code,
            message: described(),
        },
        StatusCode::REQUEST_TIMEOUT | StatusCode::TOO_MANY_REQUESTS => ServerError::Retry {
            reason: format!("HTTP {code}: {}", described()),
            after,
        },
        s if s.is_client_error() && message.is_some() => ServerError::Rejected {
            status: code,
            message: described(),
        },
        s if s.is_client_error() => ServerError::retry(format!(
            "HTTP {code} without Ender's error body (a proxy, or a wrong server address?)"
        )),
        s if s.is_redirection() => ServerError::retry(format!("HTTP {code}: redirected")),
        _ => ServerError::Retry {
            reason: format!("HTTP {code}: {}", described()),
            after,
        },
    }
}

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let secs: u64 = headers.get(RETRY_AFTER)?.to_str().ok()?.trim().parse().ok()?;
    Some(Duration::from_secs(secs.min(3600)))
}

/// The state of an open event stream.
struct Events {
    response: reqwest::Response,
    parser: SseParser,
    ready: VecDeque<Assigned>,
    idle: Duration,
    done: bool,
}

impl Events {
    async fn next(mut self) -> Option<(Result<Assigned, ServerError>, Self)> {
        loop {
            if let Some(a) = self.ready.pop_front() {
                return Some((Ok(a), self));
            }
            if self.done {
                return None;
            }
            let chunk = match tokio::time::timeout(self.idle, self.response.chunk()).await {
                Err(_) => Err(ServerError::retry(format!(
                    "the event stream was silent for {} s",
                    self.idle.as_secs()
                ))),
                Ok(Err(e)) => Err(network(e)),
                Ok(Ok(None)) => {
                    // A closed stream; an unfinished event is dropped, as the format says.
                    self.done = true;
                    continue;
                }
                Ok(Ok(Some(chunk))) => self
                    .parser
                    .feed(&chunk)
                    .map_err(|e| ServerError::retry(e.to_string())),
            };
            match chunk {
                Ok(events) => {
                    for event in events {
                        self.accept(event);
                    }
                }
                Err(e) => {
                    self.done = true;
                    return Some((Err(e), self));
                }
            }
        }
    }

    fn accept(&mut self, event: super::sse::SseEvent) {
        match event.event.as_str() {
            "message" => match serde_json::from_str::<Assigned>(&event.data) {
                Ok(a) => self.ready.push_back(a),
                Err(e) => tracing::warn!(error = %e, "ignoring a malformed message event from Ender"),
            },
            "hello" => tracing::debug!("Ender greeted the event stream"),
            other => tracing::debug!(event = other, "ignoring an unknown event from Ender"),
        }
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;

    use super::*;
    use crate::server::MessageId;
    use crate::server::fake::{Answer, Fake, Script};

    #[test]
    fn server_errors_are_classified() {
        let retry_after = Some(Duration::from_secs(60));
        let envelope = Some("Too many requests".to_owned());
        assert_eq!(
            classify(StatusCode::TOO_MANY_REQUESTS, retry_after, envelope),
            ServerError::Retry {
                reason: "HTTP 429: Too many requests".into(),
                after: retry_after
            }
        );
        assert!(matches!(
            classify(StatusCode::SERVICE_UNAVAILABLE, None, None),
            ServerError::Retry { .. }
        ));
        assert!(matches!(
            classify(StatusCode::FORBIDDEN, None, Some("no".into())),
            ServerError::Unauthorized { status: 403, .. }
        ));
        assert_eq!(
            classify(StatusCode::NOT_FOUND, None, Some("Message not found: x.".into())),
            ServerError::Rejected {
                status: 404,
                message: "Message not found: x.".into()
            }
        );
        // A 404 from something that is not Ender keeps the report for later.
        assert!(matches!(
            classify(StatusCode::NOT_FOUND, None, None),
            ServerError::Retry { .. }
        ));
    }

    #[tokio::test]
    async fn server_events_stream_parses_pushed_messages_across_chunks() {
        let fake = Fake::start().await;
        let frame = |id: &str| {
            format!(
                "event: message\nid: {id}\ndata: {}\n\n",
                serde_json::json!({"message_id": id, "recipient": "+15550001", "body": "h\u{e9}"})
            )
        };
        let raw = format!(
            "event: hello\ndata: {{\"device_id\":\"d1\"}}\n\n:keep-alive\n\n{}:keep-alive\n\n{}",
            frame("m1"),
            frame("m2")
        );
        // 7-byte chunks: split inside field names, JSON and the two bytes of the é.
        let bytes = raw.into_bytes();
        let chunks = bytes.chunks(7).map(<[u8]>::to_vec).collect();
        fake.script(Script::closing(chunks));
        let events: Vec<_> = fake.client().events().await.unwrap().collect().await;
        let ids: Vec<_> = events.into_iter().map(|e| e.unwrap().message_id).collect();
        assert_eq!(ids, [MessageId::new("m1"), MessageId::new("m2")]);
    }

    #[tokio::test]
    async fn server_events_stream_reports_a_silent_connection() {
        let fake = Fake::start().await;
        fake.script(Script::open(vec![b":keep-alive\n\n".to_vec()]));
        let timeouts = Timeouts {
            idle: Duration::from_millis(200),
            ..Timeouts::default()
        };
        let client = Client::with_timeouts(fake.url(), fake.key(), timeouts).unwrap();
        let events: Vec<_> = client.events().await.unwrap().collect().await;
        assert!(
            matches!(events[..], [Err(ServerError::Retry { .. })]),
            "{events:?}"
        );
    }

    #[tokio::test]
    async fn server_refuses_a_wrong_key_and_keeps_the_message() {
        let fake = Fake::start().await;
        let client = Client::new(fake.url(), SecretString::from("dk_wrong")).unwrap();
        let e = client.events().await.err();
        assert_eq!(
            e,
            Some(ServerError::Unauthorized {
                status: 401,
                message: "Invalid API key.".into()
            })
        );
        fake.answer(Answer::status(429).retry_after(7));
        let e = fake.client().report(&Report::sent(MessageId::new("m1"))).await;
        assert!(
            matches!(e, Err(ServerError::Retry { after: Some(d), .. }) if d == Duration::from_secs(7)),
            "{e:?}"
        );
    }

    #[tokio::test]
    async fn server_base_url_may_have_a_path() {
        let fake = Fake::start().await;
        let client = Client::new(fake.url().join("prefix").unwrap(), fake.key()).unwrap();
        assert_eq!(client.url("api/sms/report").path(), "/prefix/api/sms/report");
    }
}
