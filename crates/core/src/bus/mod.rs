//! The realtime bus between processes: small `NOTIFY` payloads (a kind and ids) that every
//! web process turns into server-sent events, and that wake the worker's dispatcher.

use serde::{Deserialize, Serialize};
use sqlx::PgConnection;

use crate::account::UserId;
use crate::device::DeviceId;
use crate::workspace::WorkspaceId;

/// Channel for events shown to people and devices.
pub const EVENTS: &str = "ender_events";
/// Channel that wakes dispatchers: the payload is a workspace id with messages to dispatch.
pub const DISPATCH: &str = "ender_dispatch";
/// Channel that wakes webhook delivery workers: deliveries became due.
pub const WEBHOOKS: &str = "ender_webhooks";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum BusEvent {
    /// Messages were assigned to a device: its stream should fetch and push them.
    Assigned {
        workspace_id: WorkspaceId,
        device_id: DeviceId,
    },
    /// Messages of a workspace changed status (pages refresh their rows and counters).
    Messages { workspace_id: WorkspaceId },
    /// A device went online or offline, or was edited.
    Device {
        workspace_id: WorkspaceId,
        device_id: DeviceId,
    },
    /// A realtime client (PocketBase protocol) subscribed to its device's topic; the web
    /// process holding that client's stream starts pushing.
    Subscribed {
        workspace_id: WorkspaceId,
        device_id: DeviceId,
        client_id: String,
    },
    /// A member was removed from a workspace or left it: their open pages' streams of it end.
    MemberLeft {
        workspace_id: WorkspaceId,
        user_id: UserId,
    },
}

impl BusEvent {
    pub fn workspace_id(&self) -> WorkspaceId {
        match self {
            Self::Assigned { workspace_id, .. }
            | Self::Messages { workspace_id }
            | Self::Device { workspace_id, .. }
            | Self::Subscribed { workspace_id, .. }
            | Self::MemberLeft { workspace_id, .. } => *workspace_id,
        }
    }
}

/// Publishes `event`; inside a transaction it is delivered at commit, or never.
pub async fn publish(conn: &mut PgConnection, event: &BusEvent) -> sqlx::Result<()> {
    let payload = serde_json::to_string(event).unwrap_or_default();
    sqlx::query!("SELECT pg_notify($1, $2)", EVENTS, payload)
        .execute(conn)
        .await?;
    Ok(())
}

/// Asks the dispatchers to look at `workspace`'s pending messages (at commit).
pub async fn wake_dispatch(conn: &mut PgConnection, workspace: WorkspaceId) -> sqlx::Result<()> {
    sqlx::query!("SELECT pg_notify($1, $2)", DISPATCH, workspace.to_string())
        .execute(conn)
        .await?;
    Ok(())
}
