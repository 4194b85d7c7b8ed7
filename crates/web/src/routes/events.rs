//! The browser's live stream (`GET /events`): a signed-in page subscribes with the htmx SSE
//! extension and gets `messages` and `devices` events (bursts coalesced) when anything of
//! its user changes, in whichever process it happened.

use std::convert::Infallible;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::get;
use ender_core::bus::BusEvent;
use futures::Stream;
use tokio::sync::mpsc;

use crate::session::CurrentUser;
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route("/events", get(events))
}

/// Events closer together than this are sent once.
const COALESCE: Duration = Duration::from_millis(300);

async fn events(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
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
                    Ok(e) if e.user_id() == user.id => match e {
                        BusEvent::Messages { .. } | BusEvent::Assigned { .. } => messages = true,
                        BusEvent::Device { .. } => devices = true,
                        BusEvent::Subscribed { .. } => {}
                    },
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => (messages, devices) = (true, true),
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                },
            }
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|e| (Ok(e), rx)) });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(20)))
}
