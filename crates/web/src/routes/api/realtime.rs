//! Device event streams. Ender's own (`GET /api/device/events`) pushes each message as
//! it is assigned; the PocketBase realtime subset (`/api/realtime`) does the same for the
//! Vendel modem agent once it subscribed to `modem/<device id>`. While a stream is open
//! the device counts as reachable; every message pushed is claimed with a lease, and on
//! (re)connect everything still open for the device is pushed again (devices de-duplicate
//! by message id). A stream also looks for assigned messages on each heartbeat, and a
//! second after a failed claim, so a lost notification or a database hiccup delays a
//! message instead of stranding it. A device holds at most `ENDER_MAX_STREAMS_PER_DEVICE`
//! streams (of either kind) open in one process; one more is answered 429.

use std::convert::Infallible;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::Utc;
use ender_core::bus::{self, BusEvent};
use ender_core::device::{self, Device};
use ender_core::sms::dispatch::{self, Claimed};
use futures::Stream;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::mpsc;

use super::auth::ApiDevice;
use super::{ApiError, ApiResult};
use crate::extract::ApiJson;
use crate::state::AppState;
use crate::streams::{StreamOwner, StreamSlot, TooManyStreams};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/device/events", get(ender_stream))
        .route("/realtime", get(pocketbase_stream).post(pocketbase_subscribe))
}

/// How the stream frames messages.
#[derive(Clone)]
enum Protocol {
    Ender,
    PocketBase { client_id: String },
}

/// How long a stream keeps the device reachable without a refresh.
const ALIVE_FOR: Duration = Duration::from_secs(60);
const HEARTBEAT: Duration = Duration::from_secs(15);
/// How soon a stream looks again after claiming its messages failed (the database was
/// unreachable or busy): nothing else would push them until the next assignment.
const CLAIM_RETRY: Duration = Duration::from_secs(1);

async fn ender_stream(State(state): State<AppState>, ApiDevice(device): ApiDevice) -> ApiResult<Response> {
    let slot = stream_slot(&state, &device)?;
    Ok(stream(state, device, Protocol::Ender, slot).into_response())
}

async fn pocketbase_stream(
    State(state): State<AppState>,
    ApiDevice(device): ApiDevice,
) -> ApiResult<Response> {
    let slot = stream_slot(&state, &device)?;
    let client_id = ender_core::crypto::random_token(20);
    Ok(stream(state, device, Protocol::PocketBase { client_id }, slot).into_response())
}

/// A slot for one more stream of `device`, or 429 when it holds its maximum already.
fn stream_slot(state: &AppState, device: &Device) -> ApiResult<StreamSlot> {
    let max = state.sms.limits.max_streams_per_device;
    state
        .streams
        .take(StreamOwner::Device(device.id), max)
        .map_err(|TooManyStreams { max }| {
            ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "Too many event streams open for this device: at most {max} (ENDER_MAX_STREAMS_PER_DEVICE). Close one and connect again."
                ),
            )
        })
}

#[derive(Deserialize)]
struct Subscribe {
    #[serde(rename = "clientId")]
    client_id: String,
    #[serde(default)]
    subscriptions: Vec<String>,
}

async fn pocketbase_subscribe(
    State(state): State<AppState>,
    ApiDevice(device): ApiDevice,
    ApiJson(body): ApiJson<Subscribe>,
) -> ApiResult<StatusCode> {
    let own = format!("modem/{}", device.id);
    if body.subscriptions.iter().any(|s| *s != own) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "You can only subscribe to your own device's topic.",
        ));
    }
    if body.client_id.is_empty() || body.client_id.len() > 100 {
        return Err(ApiError::bad_request("Invalid clientId."));
    }
    if !body.subscriptions.is_empty() {
        let mut conn = state.pool.acquire().await?;
        bus::publish(
            &mut conn,
            &BusEvent::Subscribed {
                workspace_id: device.workspace_id,
                device_id: device.id,
                client_id: body.client_id,
            },
        )
        .await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// The device's stream; it holds `slot` until the client goes away.
fn stream(
    state: AppState,
    device: Device,
    protocol: Protocol,
    slot: StreamSlot,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let (tx, rx) = mpsc::channel::<Event>(64);
    tokio::spawn(run(state, device, protocol, tx));
    let events = futures::stream::unfold((rx, slot), |(mut rx, slot)| async move {
        rx.recv().await.map(|e| (Ok(e), (rx, slot)))
    });
    Sse::new(events).keep_alive(KeepAlive::new().interval(HEARTBEAT).text("keep-alive"))
}

/// Serves one device stream until the client goes away or the server shuts down.
async fn run(state: AppState, device: Device, protocol: Protocol, tx: mpsc::Sender<Event>) {
    let mut events = state.bus.subscribe();
    let mut subscribed = matches!(protocol, Protocol::Ender);
    let hello = match &protocol {
        Protocol::Ender => Event::default()
            .event("hello")
            .data(json!({"device_id": device.id.to_string()}).to_string()),
        Protocol::PocketBase { client_id } => Event::default()
            .id(client_id.clone())
            .event("PB_CONNECT")
            .data(json!({"clientId": client_id}).to_string()),
    };
    if tx.send(hello).await.is_err() {
        return;
    }
    if let Err(e) = online(&state, &device).await {
        tracing::warn!(device.id = %device.id, error = %e, "marking a device online failed");
    }
    // When to look for messages again after reading them failed, and whether the held ones
    // too.
    let mut retry = None;
    if subscribed {
        match push_all(&state, &device, &protocol, &tx, true).await {
            Ok(pushed) => retry = pushed.retry(),
            Err(()) => {
                offline(&state, &device).await;
                return;
            }
        }
    }
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    heartbeat.tick().await;
    loop {
        // Whether to push now, and whether the held messages first.
        let push = tokio::select! {
            () = state.shutdown.cancelled() => break,
            () = tx.closed() => break,
            () = tokio::time::sleep_until(retry.map_or_else(tokio::time::Instant::now, |(at, _)| at)), if retry.is_some() => {
                retry.map(|(_, again)| again)
            }
            _ = heartbeat.tick() => {
                let until = Utc::now() + chrono::Duration::from_std(ALIVE_FOR).unwrap_or_default();
                if let Err(e) = device::stream_alive(&state.pool, device.id, until).await {
                    tracing::warn!(device.id = %device.id, error = %e, "refreshing a device stream failed");
                }
                // A notification lost while the bus reconnected must not strand a message.
                subscribed.then_some(false)
            }
            event = events.recv() => {
                match event {
                    Ok(BusEvent::Assigned { device_id, .. }) => (subscribed && device_id == device.id).then_some(false),
                    Ok(BusEvent::Subscribed { device_id, client_id, .. }) => {
                        let mine = matches!(&protocol, Protocol::PocketBase { client_id: c } if *c == client_id);
                        if mine && device_id == device.id && !subscribed {
                            subscribed = true;
                            Some(true)
                        } else {
                            None
                        }
                    }
                    // Missed events: look again rather than lose a message.
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => subscribed.then_some(false),
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                    Ok(_) => None,
                }
            }
        };
        if let Some(again) = push {
            // A retry still owed for the held messages is served by this push.
            let again = again || retry.is_some_and(|(_, held)| held);
            match push_all(&state, &device, &protocol, &tx, again).await {
                Ok(pushed) => retry = pushed.retry(),
                Err(()) => break,
            }
        }
    }
    offline(&state, &device).await;
}

async fn online(state: &AppState, device: &Device) -> sqlx::Result<()> {
    let until = Utc::now() + chrono::Duration::from_std(ALIVE_FOR).unwrap_or_default();
    device::stream_alive(&state.pool, device.id, until).await?;
    let mut conn = state.pool.acquire().await?;
    bus::publish(
        &mut conn,
        &BusEvent::Device {
            workspace_id: device.workspace_id,
            device_id: device.id,
        },
    )
    .await?;
    // Announced once, when the device becomes reachable (a second stream is not news).
    device::announce_presence(&state.pool, state.sms.device_seen_window_secs, Some(device.id)).await?;
    // Reachable now: whatever waited for a device can go.
    bus::wake_dispatch(&mut conn, device.workspace_id).await
}

async fn offline(state: &AppState, device: &Device) {
    let _ = device::stream_closed(&state.pool, device.id).await;
    if let Ok(mut conn) = state.pool.acquire().await {
        let _ = bus::publish(
            &mut conn,
            &BusEvent::Device {
                workspace_id: device.workspace_id,
                device_id: device.id,
            },
        )
        .await;
    }
    // Still reachable through FCM or polling, or not: announced if that changed.
    let _ = device::announce_presence(&state.pool, state.sms.device_seen_window_secs, Some(device.id)).await;
}

/// How a push went, when the client is still there.
enum Pushed {
    /// Everything assigned to the device was pushed.
    All,
    /// Reading the database failed: what is left must be looked for again (with `again`,
    /// the messages the device already holds too).
    Interrupted { again: bool },
}

impl Pushed {
    /// When to push again, and whether the held messages first.
    fn retry(&self) -> Option<(tokio::time::Instant, bool)> {
        match self {
            Pushed::All => None,
            Pushed::Interrupted { again } => Some((tokio::time::Instant::now() + CLAIM_RETRY, *again)),
        }
    }
}

/// Claims the device's assigned messages and pushes them; with `again`, first re-pushes
/// those it already holds (after a reconnect). Err when the client is gone.
async fn push_all(
    state: &AppState,
    device: &Device,
    protocol: &Protocol,
    tx: &mpsc::Sender<Event>,
    again: bool,
) -> Result<Pushed, ()> {
    if again {
        let held = match dispatch::sending_for_device(&state.pool, device.id).await {
            Ok(held) => held,
            Err(e) => {
                tracing::warn!(device.id = %device.id, error = %e, "listing a stream's held messages failed");
                return Ok(Pushed::Interrupted { again: true });
            }
        };
        for m in &held {
            tx.send(frame(device, protocol, m)).await.map_err(|_| ())?;
        }
    }
    loop {
        let claimed = match dispatch::claim(&state.pool, &state.sms, device).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(device.id = %device.id, error = %e, "claiming messages for a stream failed");
                return Ok(Pushed::Interrupted { again: false });
            }
        };
        if claimed.is_empty() {
            return Ok(Pushed::All);
        }
        for m in &claimed {
            tx.send(frame(device, protocol, m)).await.map_err(|_| ())?;
        }
    }
}

fn frame(device: &Device, protocol: &Protocol, m: &Claimed) -> Event {
    let data = json!({"message_id": m.id.to_string(), "recipient": m.recipient, "body": m.body}).to_string();
    match protocol {
        Protocol::Ender => Event::default().event("message").id(m.id.to_string()).data(data),
        Protocol::PocketBase { client_id } => Event::default()
            .id(client_id.clone())
            .event(format!("modem/{}", device.id))
            .data(data),
    }
}
