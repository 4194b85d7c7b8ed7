//! Ender's web server: the dashboard pages, the JSON API and the device APIs, all on one
//! axum router over Postgres. `main.rs` parses the command line and calls [`run`].

pub mod audit;
pub mod bus;
pub mod config;
pub mod csrf;
pub mod error;
pub mod extract;
pub mod middleware;
pub mod payments;
pub mod ratelimit;
pub mod routes;
pub mod session;
pub mod state;
pub mod streams;
pub mod views;

use ender_worker::webhooks::OwnerNotices;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use ender_core::db::Database;
use ender_core::mail::Mailer;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use config::{ServeConfig, WebConfig};
pub use state::AppState;

/// The whole HTTP application.
pub fn app(state: AppState) -> Router {
    routes::router(state)
}

/// Serves `state` on `listener` (HTTP/1.1, as `axum::serve` did) until its shutdown token
/// is cancelled, then drains open requests (open streams end on the same signal). A client
/// gets `ENDER_HEADER_READ_TIMEOUT_SECS` to send each request's headers, so connections
/// that trickle them in (slowloris) are closed (review L4).
pub async fn serve(listener: TcpListener, state: AppState) -> std::io::Result<()> {
    use axum::extract::ConnectInfo;
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::service::TowerToHyperService;
    use tower::ServiceExt;

    // The instance settings before the first request (the bus keeps them fresh after).
    if let Err(e) = state.settings.reload(&state.pool).await {
        tracing::warn!(error = %e, "reading the instance settings failed; serving with the defaults");
    }
    let shutdown = state.shutdown.clone();
    let header_read = Duration::from_secs(state.config.header_read_timeout_secs.max(1));
    let app = app(state);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(header_read);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        let (stream, addr) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors and the like: not fatal, as with axum::serve.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        // The peer address as `axum::serve` gives it (`ConnectInfo`), added to each request;
        // the router is shared, not rebuilt per connection.
        let service = TowerToHyperService::new(app.clone().map_request(
            move |mut req: axum::http::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(ConnectInfo(addr));
                req
            },
        ));
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            // A client that goes away or times out ends its connection; nothing to report.
            let _ = connection.await;
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// `ender-web serve`: database (embedded when unconfigured), migrations, the setup link
/// when there is no administrator, the embedded worker, and the server, until SIGINT/SIGTERM.
pub async fn run(cfg: ServeConfig) -> anyhow::Result<()> {
    let db = Database::connect(&cfg.database).await?;
    let result = run_with(&db, &cfg).await;
    db.close().await;
    result
}

async fn run_with(db: &Database, cfg: &ServeConfig) -> anyhow::Result<()> {
    ender_core::db::migrate(&db.pool).await?;
    let mailer = Mailer::from_config(&cfg.mail, &cfg.database.data_dir)?.with_database(db.pool.clone());

    let keyring = std::sync::Arc::new(cfg.worker.secrets.install_keyring(&cfg.database.data_dir)?);
    // Billing and its providers as saved on the Settings page, where no environment
    // variable sets them; read at start.
    let mut cfg = cfg.clone();
    apply_saved_settings(&db.pool, &mut cfg).await?;
    cfg.web.data_dir.clone_from(&cfg.database.data_dir);
    let cfg = &cfg;
    let shutdown = CancellationToken::new();
    tokio::spawn(cancel_on_signal(shutdown.clone()));
    let worker = cfg.web.runs_worker().then(|| {
        tokio::spawn(ender_worker::run(
            db.pool.clone(),
            cfg.worker.clone(),
            keyring.clone(),
            Some(OwnerNotices {
                mailer: mailer.clone(),
                public_url: cfg.web.public_url.to_string(),
            }),
            cfg.database.data_dir.clone(),
            shutdown.clone(),
        ))
    });

    let listener = TcpListener::bind(cfg.web.bind)
        .await
        .with_context(|| format!("cannot listen on {} (ENDER_BIND)", cfg.web.bind))?;
    // Once the port is bound, so the printed link answers at once.
    announce_setup_link(db, &cfg.web).await?;
    tracing::info!(bind = %cfg.web.bind, public_url = %cfg.web.public_url, worker = cfg.web.runs_worker(), "Ender is serving");
    if let Some(warning) = cfg.web.insecure_cookie_warning() {
        tracing::warn!("{warning}");
    }
    let webhooks = state::WebhookSetup {
        keyring: keyring.clone(),
        config: cfg.worker.webhooks.clone(),
        allow: cfg.worker.secrets.webhook_allow.clone(),
    };
    let state = AppState::new(
        db.pool.clone(),
        cfg.web.clone(),
        cfg.worker.sms.clone(),
        mailer,
        webhooks,
        ender_core::store::Store::from_config(&cfg.worker.storage, &cfg.database.data_dir)?,
        shutdown.clone(),
    );
    let served = serve(listener, state).await;
    shutdown.cancel();
    if let Some(worker) = worker {
        let _ = worker.await;
    }
    tracing::info!("Ender stopped");
    Ok(served?)
}

async fn apply_saved_settings(pool: &sqlx::PgPool, cfg: &mut ServeConfig) -> anyhow::Result<()> {
    use ender_core::admin::settings;
    let mut conn = pool.acquire().await?;
    let saved = settings::load(&mut conn).await?;
    settings::apply_billing(&saved, &mut cfg.worker.sms);
    let p = &mut cfg.web.payments;
    if p.stripe_secret_key.is_none() {
        p.stripe_secret_key = settings::secret(&mut conn, "stripe_secret_key")
            .await?
            .map(Into::into);
    }
    if p.stripe_webhook_secret.is_none() {
        p.stripe_webhook_secret = settings::secret(&mut conn, "stripe_webhook_secret")
            .await?
            .map(Into::into);
    }
    if p.qvapay_app_secret.is_none() {
        p.qvapay_app_secret = settings::secret(&mut conn, "qvapay_app_secret")
            .await?
            .map(Into::into);
    }
    if p.qvapay_app_id.is_none() && saved.is_stored("qvapay_app_id") && !saved.get("qvapay_app_id").is_empty()
    {
        p.qvapay_app_id = Some(saved.get("qvapay_app_id").to_owned());
    }
    Ok(())
}

/// Prints the one-time administrator setup link while no administrator exists. It goes to
/// standard error, not the log, because it is a secret.
async fn announce_setup_link(db: &Database, web: &WebConfig) -> anyhow::Result<()> {
    if let Some(token) = ender_core::setup::issue_token_if_needed(&db.pool).await? {
        let link = web.absolute(&format!("{}?token={token}", routes::paths::SETUP));
        eprintln!(
            "\n  No administrator exists yet. Create the first one here (valid 24 hours):\n\n    {link}\n"
        );
    }
    Ok(())
}

/// Cancels `token` on SIGINT or SIGTERM.
pub async fn cancel_on_signal(token: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        () = term => {}
    }
    tracing::info!("shutting down");
    token.cancel();
}
