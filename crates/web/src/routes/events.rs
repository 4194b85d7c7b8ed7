//! The browser's live stream (`GET /events`): a signed-in page subscribes with the htmx SSE
//! extension and gets `messages` and `devices` events (bursts coalesced) when anything of
//! the workspace it is looking at changes, in whichever process it happened; nothing of
//! another workspace reaches it. The stream ends when its user is removed from that
//! workspace. A user holds at most `ENDER_MAX_STREAMS_PER_USER` of them open in one
//! process; one more is answered 429.

use std::convert::Infallible;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use ender_core::bus::BusEvent;
use futures::Stream;
use tokio::sync::mpsc;

use ender_core::account::UserId;
use ender_core::workspace::WorkspaceId;

use crate::session::CurrentWorkspace;
use crate::state::AppState;
use crate::streams::{StreamOwner, StreamSlot, TooManyStreams};

pub fn routes() -> Router<AppState> {
    Router::new().route("/events", get(events))
}

/// Events closer together than this are sent once.
const COALESCE: Duration = Duration::from_millis(300);

async fn events(State(state): State<AppState>, ws: CurrentWorkspace) -> Response {
    let max = state.sms.limits.max_streams_per_user;
    match state.streams.take(StreamOwner::User(ws.user_id()), max) {
        Ok(slot) => stream(state, ws.id(), ws.user_id(), slot).into_response(),
        Err(TooManyStreams { max }) => (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", "30")],
            format!("Too many live-update streams open: at most {max} per user (ENDER_MAX_STREAMS_PER_USER). Close a tab and try again."),
        )
            .into_response(),
    }
}

/// The stream of one workspace's events for one member; it holds `slot` until the client
/// goes away or the member is removed.
fn stream(
    state: AppState,
    workspace: WorkspaceId,
    user: UserId,
    slot: StreamSlot,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let (tx, rx) = mpsc::channel::<Event>(16);
    let mut bus = state.bus.subscribe();
    let shutdown = state.shutdown.clone();
    tokio::spawn(async move {
        let (mut messages, mut devices) = (false, false);
        loop {
            let wait = if messages || devices {
                COALESCE
            } else {
                Duration::from_secs(3600)
            };
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tx.closed() => return,
                () = tokio::time::sleep(wait) => {
                    for (flag, name) in [(&mut messages, "messages"), (&mut devices, "devices")] {
                        if std::mem::take(flag) && tx.send(Event::default().event(name).data(name)).await.is_err() {
                            return;
                        }
                    }
                }
                event = bus.recv() => match event {
                    Ok(e) if e.workspace_id() == workspace => match e {
                        BusEvent::Messages { .. } | BusEvent::Assigned { .. } => messages = true,
                        BusEvent::Device { .. } => devices = true,
                        BusEvent::Subscribed { .. } => {}
                        BusEvent::MemberLeft { user_id, .. } if user_id == user => return,
                        BusEvent::MemberLeft { .. } => {}
                    },
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => (messages, devices) = (true, true),
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                },
            }
        }
    });
    let stream = futures::stream::unfold((rx, slot), |(mut rx, slot)| async move {
        rx.recv().await.map(|e| (Ok(e), (rx, slot)))
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(20)))
}
