//! Message types.

use chrono::{DateTime, Utc};

use crate::device::DeviceId;
use crate::secret::at_rest::{self, Column};
use crate::workspace::WorkspaceId;

id_type!(MessageId);
id_type!(BatchId);

/// Where a message stands. Outgoing: pending → assigned → sending → sent → delivered, or
/// failed / canceled / expired. Incoming: received.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    Pending,
    Assigned,
    Sending,
    Sent,
    Delivered,
    Failed,
    Canceled,
    Expired,
    Received,
}

impl Status {
    pub const ALL: [Status; 9] = [
        Self::Pending,
        Self::Assigned,
        Self::Sending,
        Self::Sent,
        Self::Delivered,
        Self::Failed,
        Self::Canceled,
        Self::Expired,
        Self::Received,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Assigned => "assigned",
            Self::Sending => "sending",
            Self::Sent => "sent",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
            Self::Canceled => "canceled",
            Self::Expired => "expired",
            Self::Received => "received",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// No report or timer moves a message out of a final state.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Self::Delivered | Self::Failed | Self::Canceled | Self::Expired | Self::Received
        )
    }
}

/// A message as the API and pages show it.
#[derive(Debug, Clone)]
pub struct Message {
    pub id: MessageId,
    pub workspace_id: WorkspaceId,
    pub batch_id: Option<BatchId>,
    pub direction: String,
    pub recipient: String,
    pub from_number: String,
    pub body: String,
    pub encoding: String,
    pub segments: i32,
    pub status: String,
    pub error_message: String,
    pub device_id: Option<DeviceId>,
    pub attempts: i32,
    pub sent_at: Option<DateTime<Utc>>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub received_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A message as its row holds it: the body sealed (or, from before sealing, in plaintext).
#[derive(Debug, Clone)]
pub struct StoredMessage {
    pub id: MessageId,
    pub workspace_id: WorkspaceId,
    pub batch_id: Option<BatchId>,
    pub direction: String,
    pub recipient: String,
    pub from_number: String,
    pub body: String,
    pub body_sealed: Option<Vec<u8>>,
    pub encoding: String,
    pub segments: i32,
    pub status: String,
    pub error_message: String,
    pub device_id: Option<DeviceId>,
    pub attempts: i32,
    pub sent_at: Option<DateTime<Utc>>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub received_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl StoredMessage {
    /// The message with its body opened.
    pub fn open(self) -> sqlx::Result<Message> {
        let body = at_rest::open_text(
            Column::MessageBody,
            self.id.0,
            self.body,
            self.body_sealed.as_deref(),
        )?;
        Ok(Message {
            id: self.id,
            workspace_id: self.workspace_id,
            batch_id: self.batch_id,
            direction: self.direction,
            recipient: self.recipient,
            from_number: self.from_number,
            body,
            encoding: self.encoding,
            segments: self.segments,
            status: self.status,
            error_message: self.error_message,
            device_id: self.device_id,
            attempts: self.attempts,
            sent_at: self.sent_at,
            delivered_at: self.delivered_at,
            received_at: self.received_at,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

/// One step in a message's history.
#[derive(Debug, Clone)]
pub struct MessageEvent {
    pub status: String,
    pub detail: String,
    pub device_id: Option<DeviceId>,
    pub created_at: DateTime<Utc>,
}

/// Filters of a message list (all optional).
#[derive(Debug, Clone, Default)]
pub struct MessageFilter {
    pub status: Option<String>,
    pub direction: Option<String>,
    pub device_id: Option<DeviceId>,
    pub batch_id: Option<BatchId>,
    pub recipient: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}
