//! This process's end of the realtime bus: one `LISTEN` connection whose notifications are
//! fanned out to every stream (browsers and devices) served here.

use std::time::Duration;

use ender_core::admin::settings::{CHANGED, Cache};
use ender_core::bus::{BusEvent, EVENTS};
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

#[derive(Clone)]
pub struct Bus {
    tx: broadcast::Sender<BusEvent>,
}

impl Bus {
    /// Starts listening; reconnects with a pause when the database goes away. The same
    /// connection hears instance settings being saved and reloads `settings`.
    pub fn start(pool: PgPool, settings: Cache, shutdown: CancellationToken) -> Self {
        let (tx, _) = broadcast::channel(4096);
        let sender = tx.clone();
        tokio::spawn(async move {
            loop {
                if let Err(e) = listen(&pool, &sender, &settings, &shutdown).await {
                    tracing::warn!(error = %e, "event bus connection lost; reconnecting");
                }
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        });
        Self { tx }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<BusEvent> {
        self.tx.subscribe()
    }
}

async fn listen(
    pool: &PgPool,
    tx: &broadcast::Sender<BusEvent>,
    settings: &Cache,
    shutdown: &CancellationToken,
) -> sqlx::Result<()> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen_all([EVENTS, CHANGED]).await?;
    // Whatever was saved while this connection was down.
    settings.reload(pool).await?;
    loop {
        let n = tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            n = listener.recv() => n?,
        };
        if n.channel() == CHANGED {
            if let Err(e) = settings.reload(pool).await {
                tracing::warn!(error = %e, "reloading the instance settings failed");
            }
            continue;
        }
        match serde_json::from_str::<BusEvent>(n.payload()) {
            Ok(event) => {
                let _ = tx.send(event);
            }
            Err(e) => tracing::debug!(error = %e, "ignoring an unknown bus event"),
        }
    }
}
