//! What every handler can reach: the pool, the settings, the mailer, an HTTP client, the
//! realtime bus, the API rate limiter, the open-stream counts and the shutdown signal
//! (which ends open streams).

use std::sync::Arc;

use ender_core::config::SmsConfig;
use ender_core::mail::Mailer;
use ender_core::sms::batch::Batcher;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use ender_core::secret::Keyring;
use ender_worker::webhooks::{Deliverer, OwnerNotices, WebhookConfig};

use ender_core::admin::settings::Cache;

use crate::bus::Bus;
use crate::config::WebConfig;
use crate::ratelimit::Limiter;
use crate::streams::StreamSlots;

#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub config: Arc<WebConfig>,
    pub sms: Arc<SmsConfig>,
    pub mailer: Arc<Mailer>,
    pub http: reqwest::Client,
    pub bus: Bus,
    pub limiter: Arc<Limiter>,
    /// Incoming SMS reports per device per minute (`ENDER_MAX_INCOMING_PER_MINUTE`).
    pub incoming: Arc<Limiter>,
    pub streams: Arc<StreamSlots>,
    pub batcher: Batcher,
    pub webhooks: Arc<Webhooks>,
    /// The instance settings, reloaded when any process saves them.
    pub settings: Cache,
    /// Where exports (and backups) are kept.
    pub store: ender_core::store::Store,
    pub shutdown: CancellationToken,
}

impl AppState {
    /// What `workspace` may hold and send now: its plan's limits with billing on, the
    /// server's own with billing off (then without a query).
    pub async fn limits(
        &self,
        workspace: ender_core::workspace::WorkspaceId,
    ) -> sqlx::Result<ender_core::billing::plans::Limits> {
        let now = chrono::Utc::now();
        if !self.sms.billing.enabled {
            return Ok(ender_core::billing::plans::Limits::self_hosted(&self.sms, now));
        }
        let mut conn = self.pool.acquire().await?;
        ender_core::billing::plans::limits(&mut conn, workspace, &self.sms, now).await
    }

    /// Who may create an account now: the Settings page's choice, or `ENDER_SIGNUP` when
    /// it is set.
    pub fn signup(&self) -> crate::config::SignupPolicy {
        use crate::config::SignupPolicy;
        let settings = self.settings.get();
        if std::env::var_os("ENDER_SIGNUP").is_some() || !settings.is_stored("signup") {
            return self.config.signup;
        }
        match settings.get("signup") {
            "invite" => SignupPolicy::Invite,
            "closed" => SignupPolicy::Closed,
            "open" => SignupPolicy::Open,
            _ => self.config.signup,
        }
    }

    /// Builds the state and starts this process's bus listener (needs a Tokio runtime).
    pub fn new(
        pool: PgPool,
        config: WebConfig,
        sms: SmsConfig,
        mailer: Mailer,
        webhooks: WebhookSetup,
        store: ender_core::store::Store,
        shutdown: CancellationToken,
    ) -> Self {
        let http = reqwest::Client::builder()
            .user_agent(concat!("Ender/", env!("CARGO_PKG_VERSION")))
            .timeout(std::time::Duration::from_secs(15))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        let settings = Cache::default();
        Self {
            bus: Bus::start(pool.clone(), settings.clone(), shutdown.clone()),
            settings,
            limiter: Arc::new(Limiter::new(config.api_rate_per_minute)),
            incoming: Arc::new(Limiter::new(
                u32::try_from(sms.limits.max_incoming_per_minute).unwrap_or(0),
            )),
            streams: Arc::new(StreamSlots::default()),
            batcher: Batcher::start(pool.clone(), sms.clone()),
            webhooks: Arc::new(Webhooks {
                deliverer: Deliverer::new(
                    pool.clone(),
                    webhooks.keyring.clone(),
                    webhooks.config,
                    webhooks.allow.clone(),
                    Some(OwnerNotices {
                        mailer: mailer.clone(),
                        public_url: config.public_url.to_string(),
                    }),
                )
                .expect("an HTTP client for webhooks"),
                keyring: webhooks.keyring,
                allow: webhooks.allow,
            }),
            pool,
            config: Arc::new(config),
            sms: Arc::new(sms),
            mailer: Arc::new(mailer),
            http,
            store,
            shutdown,
        }
    }
}

/// What the web process needs to manage and test webhooks.
pub struct WebhookSetup {
    pub keyring: Arc<Keyring>,
    pub config: WebhookConfig,
    /// Private ranges webhooks may reach (ENDER_WEBHOOK_ALLOW).
    pub allow: Vec<ipnet::IpNet>,
}

pub struct Webhooks {
    pub keyring: Arc<Keyring>,
    pub deliverer: Deliverer,
    pub allow: Vec<ipnet::IpNet>,
}
