//! What every handler can reach: the pool, the settings, the mailer and an HTTP client.

use std::sync::Arc;

use ender_core::mail::Mailer;
use sqlx::PgPool;

use crate::config::WebConfig;

#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub config: Arc<WebConfig>,
    pub mailer: Arc<Mailer>,
    pub http: reqwest::Client,
}

impl AppState {
    pub fn new(pool: PgPool, config: WebConfig, mailer: Mailer) -> Self {
        let http = reqwest::Client::builder()
            .user_agent(concat!("Ender/", env!("CARGO_PKG_VERSION")))
            .timeout(std::time::Duration::from_secs(15))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        Self {
            pool,
            config: Arc::new(config),
            mailer: Arc::new(mailer),
            http,
        }
    }
}
