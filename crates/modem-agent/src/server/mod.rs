//! The connection to the Ender server, one per modem: the device API client, an on-disk
//! outbox of reports, a journal of what was handed to the modem, and the loop that ties
//! them to the modem through [`ModemLink`].
//!
//! - [`client`]: the HTTP client and its error classification;
//! - [`sse`]: the Server-Sent Events parser behind [`Client::events`];
//! - [`outbox`]: reports that must survive the server being away or the agent restarting;
//! - [`journal`]: message ids already written to the modem, and their part references;
//! - [`backoff`]: jittered reconnect delays;
//! - [`connection`]: the loop ([`Connection::run`]) and the modem-facing calls.

pub mod backoff;
pub mod client;
pub mod connection;
mod disk;
pub mod journal;
pub mod outbox;
pub mod sse;

#[cfg(test)]
pub(crate) mod fake;

use std::fmt;

use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Serialize};

pub use backoff::Backoff;
pub use client::{Client, ServerError, Timeouts};
pub use connection::{Connection, ConnectionError, ModemLink, SendFailure};
pub use journal::{Journal, Outcome, PartOutcome};
pub use outbox::Outbox;

/// A message id as the server gives it (a UUID, kept as text: the agent only echoes it).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MessageId(String);

impl MessageId {
    pub fn new(id: impl Into<String>) -> Self {
        Self(id.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A message the server assigned to this device (`event: message` on the stream).
#[derive(Clone, PartialEq, Eq, Deserialize)]
pub struct Assigned {
    pub message_id: MessageId,
    pub recipient: String,
    pub body: String,
}

// Phone numbers and bodies stay out of logs, including `{:?}`.
impl fmt::Debug for Assigned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Assigned")
            .field("message_id", &self.message_id)
            .field("body_chars", &self.body.chars().count())
            .finish_non_exhaustive()
    }
}

/// What happened to a message, for `POST /api/sms/report`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReportStatus {
    Sent,
    Delivered,
    Failed,
}

/// The body of `POST /api/sms/report`. The server applies reports idempotently and never
/// moves a message backwards, so sending one twice is harmless.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    pub message_id: MessageId,
    pub status: ReportStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
}

impl Report {
    pub fn sent(id: MessageId) -> Self {
        Self {
            message_id: id,
            status: ReportStatus::Sent,
            error_message: None,
        }
    }

    pub fn delivered(id: MessageId) -> Self {
        Self {
            message_id: id,
            status: ReportStatus::Delivered,
            error_message: None,
        }
    }

    pub fn failed(id: MessageId, reason: impl Into<String>) -> Self {
        Self {
            message_id: id,
            status: ReportStatus::Failed,
            error_message: Some(reason.into()),
        }
    }
}

/// The body of `POST /api/sms/incoming`. The server treats the same device, sender, body
/// and time (to the second) as the same message, so posting it again is safe.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Incoming {
    pub from_number: String,
    pub body: String,
    /// When the SMSC received it (RFC 3339 on the wire).
    pub timestamp: DateTime<FixedOffset>,
}

impl Incoming {
    pub fn new(from: &str, body: &str, timestamp: DateTime<FixedOffset>) -> Self {
        Self {
            from_number: from.to_owned(),
            body: body.to_owned(),
            timestamp,
        }
    }
}

impl fmt::Debug for Incoming {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Incoming")
            .field("timestamp", &self.timestamp)
            .field("body_chars", &self.body.chars().count())
            .finish_non_exhaustive()
    }
}

/// How the modem is registered on the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Registration {
    Home,
    Roaming,
    Searching,
    Denied,
    NotRegistered,
    Unknown,
}

/// The body of `POST /api/device/status`: the modem's radio.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Status {
    signal_dbm: Option<i32>,
    operator: String,
    registration: Registration,
}

impl Status {
    /// Fits the values to what the server accepts: a signal outside −150…0 dBm becomes
    /// unknown; the operator loses control characters and is cut to 64 characters.
    pub fn new(signal_dbm: Option<i32>, operator: &str, registration: Registration) -> Self {
        Self {
            signal_dbm: signal_dbm.filter(|d| (-150..=0).contains(d)),
            operator: operator
                .trim()
                .chars()
                .filter(|c| !c.is_control())
                .take(64)
                .collect(),
            registration,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_wire_shapes_match_the_api() {
        let report = serde_json::to_value(Report::failed(MessageId::new("m1"), "no network")).unwrap();
        assert_eq!(
            report,
            serde_json::json!({"message_id": "m1", "status": "failed", "error_message": "no network"})
        );
        let sent = serde_json::to_value(Report::sent(MessageId::new("m1"))).unwrap();
        assert_eq!(sent, serde_json::json!({"message_id": "m1", "status": "sent"}));

        let status = Status::new(Some(-200), " Op\u{7}erator ", Registration::NotRegistered);
        assert_eq!(
            serde_json::to_value(&status).unwrap(),
            serde_json::json!({"signal_dbm": null, "operator": "Operator", "registration": "not_registered"})
        );

        let incoming = Incoming {
            from_number: "+15550001".into(),
            body: "hi".into(),
            timestamp: DateTime::parse_from_rfc3339("2025-03-01T10:00:00+01:00").unwrap(),
        };
        assert_eq!(
            serde_json::to_value(&incoming).unwrap()["timestamp"],
            "2025-03-01T10:00:00+01:00"
        );
        assert!(!format!("{incoming:?}").contains("+1555"));
    }
}
