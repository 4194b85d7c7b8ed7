//! Waking Android devices through Firebase Cloud Messaging (HTTP v1): a data message
//! `type=tickle` with the count of messages waiting, high priority, no content. The access
//! token comes from the service account (a signed JWT exchanged at its token URI) and is
//! cached until shortly before it expires. Both URLs are configurable for tests.

use std::time::{Duration, Instant};

use anyhow::Context;
use ender_core::config::secret;
use ender_core::device::DeviceId;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::json;
use sqlx::PgPool;
use tokio::sync::Mutex;

/// FCM settings, from flags and the environment.
#[derive(clap::Args, Debug, Clone)]
pub struct FcmConfig {
    /// The Firebase service account: a path to its JSON file, or the JSON itself. Unset:
    /// Android push is off and devices use streams or polling.
    #[arg(long, env = "ENDER_FCM_SERVICE_ACCOUNT", value_parser = secret, hide_env_values = true)]
    pub fcm_service_account: Option<SecretString>,

    /// Base URL of the FCM API.
    #[arg(long, env = "ENDER_FCM_URL", default_value = "https://fcm.googleapis.com")]
    pub fcm_url: String,

    /// Overrides the token URI of the service account (for tests).
    #[arg(long, env = "ENDER_FCM_TOKEN_URL")]
    pub fcm_token_url: Option<String>,
}

#[derive(Deserialize)]
struct ServiceAccount {
    project_id: String,
    client_email: String,
    private_key: String,
    #[serde(default = "default_token_uri")]
    token_uri: String,
}

fn default_token_uri() -> String {
    "https://oauth2.googleapis.com/token".to_owned()
}

pub struct Fcm {
    http: reqwest::Client,
    base: String,
    token_uri: String,
    account: ServiceAccount,
    key: jsonwebtoken::EncodingKey,
    token: Mutex<Option<(String, Instant)>>,
}

impl Fcm {
    /// None when no service account is configured.
    pub fn from_config(cfg: &FcmConfig) -> anyhow::Result<Option<Self>> {
        let Some(raw) = &cfg.fcm_service_account else {
            return Ok(None);
        };
        let raw = raw.expose_secret().trim();
        let json = if raw.starts_with('{') {
            raw.to_owned()
        } else {
            std::fs::read_to_string(raw).with_context(|| "ENDER_FCM_SERVICE_ACCOUNT: cannot read the file")?
        };
        let account: ServiceAccount =
            serde_json::from_str(&json).context("ENDER_FCM_SERVICE_ACCOUNT is not a service account JSON")?;
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(account.private_key.as_bytes())
            .context("ENDER_FCM_SERVICE_ACCOUNT: the private key is not an RSA PEM key")?;
        Ok(Some(Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(15))
                .build()?,
            base: cfg.fcm_url.trim_end_matches('/').to_owned(),
            token_uri: cfg
                .fcm_token_url
                .clone()
                .unwrap_or_else(|| account.token_uri.clone()),
            account,
            key,
            token: Mutex::new(None),
        }))
    }

    async fn access_token(&self) -> anyhow::Result<String> {
        let mut cached = self.token.lock().await;
        if let Some((token, until)) = cached.as_ref()
            && Instant::now() < *until
        {
            return Ok(token.clone());
        }
        let now = chrono::Utc::now().timestamp();
        let claims = json!({
            "iss": self.account.client_email,
            "scope": "https://www.googleapis.com/auth/firebase.messaging",
            "aud": self.token_uri,
            "iat": now,
            "exp": now + 3600,
        });
        let assertion = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
            &claims,
            &self.key,
        )?;
        #[derive(Deserialize)]
        struct Token {
            access_token: String,
            #[serde(default)]
            expires_in: Option<u64>,
        }
        let token: Token = self
            .http
            .post(&self.token_uri)
            .form(&[
                ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                ("assertion", assertion.as_str()),
            ])
            .send()
            .await?
            .error_for_status()
            .context("the token endpoint refused the service account")?
            .json()
            .await?;
        let lifetime = Duration::from_secs(token.expires_in.unwrap_or(3600).saturating_sub(60));
        *cached = Some((token.access_token.clone(), Instant::now() + lifetime));
        Ok(token.access_token)
    }

    /// Sends the tickle to one registration token.
    pub async fn tickle(&self, registration: &str, waiting: i64) -> anyhow::Result<()> {
        let token = self.access_token().await?;
        let url = format!(
            "{}/v1/projects/{}/messages:send",
            self.base, self.account.project_id
        );
        let body = json!({
            "message": {
                "token": registration,
                "data": { "type": "tickle", "count": waiting.to_string() },
                "android": { "priority": "high" },
            }
        });
        let res = self.http.post(url).bearer_auth(token).json(&body).send().await?;
        if !res.status().is_success() {
            anyhow::bail!("FCM answered {}", res.status());
        }
        Ok(())
    }

    /// Tickles a device if it has an FCM token, with the count of messages waiting for it.
    pub async fn tickle_device(&self, pool: &PgPool, device: DeviceId) -> anyhow::Result<()> {
        let row = sqlx::query!(
            r#"SELECT d.fcm_token,
                      (SELECT count(*) FROM messages m WHERE m.device_id = d.id AND m.status = 'assigned') AS "waiting!"
               FROM devices d WHERE d.id = $1 AND coalesce(d.fcm_token, '') <> ''"#,
            device as DeviceId
        )
        .fetch_optional(pool)
        .await?;
        let Some(row) = row else { return Ok(()) };
        let Some(token) = row.fcm_token else { return Ok(()) };
        self.tickle(&token, row.waiting).await?;
        tracing::debug!(device.id = %device, waiting = row.waiting, "FCM wake-up sent");
        Ok(())
    }
}
