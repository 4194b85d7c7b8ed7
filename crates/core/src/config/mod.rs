//! Configuration shared by the web and worker binaries, read once from flags and the
//! environment by clap.

use std::path::PathBuf;

use secrecy::SecretString;

/// clap value parser for secrets (kept out of Debug output).
pub fn secret(s: &str) -> Result<SecretString, std::convert::Infallible> {
    Ok(SecretString::from(s.to_owned()))
}

/// Where the database is and where local state lives.
#[derive(clap::Args, Debug, Clone)]
pub struct DatabaseConfig {
    /// PostgreSQL URL. Unset: Ender runs a private cluster under `<data dir>/postgres`.
    #[arg(long, env = "DATABASE_URL", value_parser = secret, hide_env_values = true)]
    pub database_url: Option<SecretString>,

    /// Folder for local state: the embedded database, mail files and stored objects.
    #[arg(long, env = "ENDER_DATA_DIR", default_value = ".data")]
    pub data_dir: PathBuf,

    /// Most connections one process keeps open to PostgreSQL.
    #[arg(long, env = "ENDER_DB_MAX_CONNECTIONS", default_value_t = 10)]
    pub db_max_connections: u32,
}

/// How outgoing mail leaves the server.
#[derive(clap::Args, Debug, Clone)]
pub struct MailConfig {
    /// SMTP server as a URL (`smtps://user:pass@host:465`, `smtp://host:587?tls=required`).
    /// Unset: mail is written to `<data dir>/mail` and announced in the log.
    #[arg(long, env = "ENDER_SMTP_URL", value_parser = secret, hide_env_values = true)]
    pub smtp_url: Option<SecretString>,

    /// The From address of every mail Ender sends.
    #[arg(long, env = "ENDER_MAIL_FROM", default_value = "Ender <ender@localhost>")]
    pub mail_from: String,
}

/// Where exports, backups and other files are kept: an S3-compatible bucket, or the
/// folder `<data dir>/objects` when no bucket is set.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct StorageConfig {
    /// S3 bucket (AWS, MinIO, Garage, R2…). Unset: files under `<data dir>/objects`.
    #[arg(long, env = "ENDER_S3_BUCKET")]
    pub s3_bucket: Option<String>,

    /// The store's endpoint for S3-compatible services (`https://minio.example.org:9000`).
    /// Unset: AWS in `ENDER_S3_REGION`.
    #[arg(long, env = "ENDER_S3_ENDPOINT")]
    pub s3_endpoint: Option<url::Url>,

    #[arg(long, env = "ENDER_S3_REGION", default_value = "us-east-1")]
    pub s3_region: String,

    #[arg(long, env = "ENDER_S3_ACCESS_KEY_ID")]
    pub s3_access_key_id: Option<String>,

    #[arg(long, env = "ENDER_S3_SECRET_ACCESS_KEY", value_parser = secret, hide_env_values = true)]
    pub s3_secret_access_key: Option<SecretString>,

    /// Path-style requests (`endpoint/bucket/key`), which MinIO and Garage usually need.
    #[arg(long, env = "ENDER_S3_PATH_STYLE", default_value_t = false)]
    pub s3_path_style: bool,

    /// A folder in the bucket for everything Ender stores (to share a bucket).
    #[arg(long, env = "ENDER_S3_PREFIX", default_value = "")]
    pub s3_prefix: String,
}

/// Log output.
#[derive(clap::Args, Debug, Clone)]
pub struct LogConfig {
    /// `pretty` for people, `json` for log collectors. The level comes from `RUST_LOG`.
    #[arg(long, env = "ENDER_LOG_FORMAT", default_value = "pretty")]
    pub log_format: LogFormat,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

impl LogConfig {
    /// Installs the global tracing subscriber. `RUST_LOG` overrides the default filter.
    pub fn init_tracing(&self) {
        use tracing_subscriber::EnvFilter;
        let filter = EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=info,apalis=warn"));
        let builder = tracing_subscriber::fmt().with_env_filter(filter);
        let _ = match self.log_format {
            LogFormat::Pretty => builder.try_init(),
            LogFormat::Json => builder.json().flatten_event(true).try_init(),
        };
    }
}

/// Limits and timings of the SMS pipeline, shared by web and worker processes.
#[derive(clap::Args, Debug, Clone)]
pub struct SmsConfig {
    /// Most recipients one send request may name.
    #[arg(long, env = "ENDER_MAX_RECIPIENTS", default_value_t = 1000)]
    pub max_recipients: usize,

    /// How long a device has to report on a message it claimed before it is offered again.
    #[arg(long, env = "ENDER_LEASE_SECS", default_value_t = 300)]
    pub lease_secs: i64,

    /// How long an assigned message may wait for its device to claim it before it is
    /// dispatched again (possibly to another device).
    #[arg(long, env = "ENDER_CLAIM_TIMEOUT_SECS", default_value_t = 600)]
    pub claim_timeout_secs: i64,

    /// Waits before each retry after a transient failure, in seconds; their count is the
    /// number of retries (attempts = retries + 1).
    #[arg(
        long,
        env = "ENDER_RETRY_BACKOFF_SECS",
        value_delimiter = ',',
        default_value = "60,300,900"
    )]
    pub retry_backoff_secs: Vec<i64>,

    /// A device with an FCM token counts as reachable this long after it was last seen.
    #[arg(long, env = "ENDER_DEVICE_SEEN_WINDOW_SECS", default_value_t = 600)]
    pub device_seen_window_secs: i64,

    /// Messages handed to a device per `GET /api/sms/pending`.
    #[arg(long, env = "ENDER_CLAIM_BATCH", default_value_t = 10)]
    pub claim_batch: i64,

    /// Monthly SMS allowance per user (until plans exist).
    #[arg(long, env = "ENDER_MAX_SMS_PER_MONTH", default_value_t = 10_000)]
    pub max_sms_per_month: i32,

    /// Devices one user may register.
    #[arg(long, env = "ENDER_MAX_DEVICES", default_value_t = 10)]
    pub max_devices: i64,

    /// Integration API keys one user may hold.
    #[arg(long, env = "ENDER_MAX_API_KEYS", default_value_t = 10)]
    pub max_api_keys: i64,

    /// Scheduled sends (active and paused) one user may keep.
    #[arg(long, env = "ENDER_MAX_SCHEDULES", default_value_t = 25)]
    pub max_schedules: i64,

    #[command(flatten)]
    pub limits: TenantLimits,

    #[command(flatten)]
    pub billing: BillingConfig,
}

/// Plans, per-plan quotas, the prepaid balance, payments and renewals. Off (the default),
/// every workspace has the Self-hosted plan, whose limits are the settings above, and no
/// billing page or route exists.
#[derive(clap::Args, Debug, Clone)]
pub struct BillingConfig {
    /// Turn billing on: workspaces get the plans' limits, a balance and subscriptions.
    #[arg(long = "billing", env = "ENDER_BILLING", default_value_t = false, action = clap::ArgAction::Set)]
    pub enabled: bool,

    /// The currency of every price and balance (ISO 4217, lower-case).
    #[arg(long = "billing-currency", env = "ENDER_BILLING_CURRENCY", default_value = "usd", value_parser = currency)]
    pub currency: String,

    /// Days a subscription whose renewal could not be paid keeps its plan (`past_due`)
    /// before the workspace falls back to the default plan.
    #[arg(
        long = "billing-grace-days",
        env = "ENDER_BILLING_GRACE_DAYS",
        default_value_t = 3
    )]
    pub grace_days: i64,

    /// The smallest top-up, in cents.
    #[arg(
        long = "topup-min-cents",
        env = "ENDER_TOPUP_MIN_CENTS",
        default_value_t = 100
    )]
    pub topup_min_cents: i64,

    /// The largest top-up, in cents.
    #[arg(
        long = "topup-max-cents",
        env = "ENDER_TOPUP_MAX_CENTS",
        default_value_t = 50_000
    )]
    pub topup_max_cents: i64,
}

impl Default for BillingConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            currency: "usd".to_owned(),
            grace_days: 3,
            topup_min_cents: 100,
            topup_max_cents: 50_000,
        }
    }
}

fn currency(s: &str) -> Result<String, String> {
    let c = s.trim().to_ascii_lowercase();
    if c.len() == 3 && c.bytes().all(|b| b.is_ascii_lowercase()) {
        Ok(c)
    } else {
        Err(format!("{s:?} is not a three-letter currency code such as usd"))
    }
}

/// Caps on what one tenant may create or hold open, so that one account cannot exhaust
/// the server for the others. Each answer that hits one names the limit.
#[derive(clap::Args, Debug, Clone)]
pub struct TenantLimits {
    /// Webhook endpoints one user may keep.
    #[arg(long, env = "ENDER_MAX_WEBHOOKS", default_value_t = 20)]
    pub max_webhooks: i64,

    /// Contacts one user may keep.
    #[arg(long, env = "ENDER_MAX_CONTACTS", default_value_t = 200_000)]
    pub max_contacts: i64,

    /// Contact groups one user may keep.
    #[arg(long, env = "ENDER_MAX_GROUPS", default_value_t = 500)]
    pub max_groups: i64,

    /// Message templates one user may keep.
    #[arg(long, env = "ENDER_MAX_TEMPLATES", default_value_t = 500)]
    pub max_templates: i64,

    /// Contact imports (uploaded files awaiting or under import) one user may hold at once.
    #[arg(long, env = "ENDER_MAX_OPEN_IMPORTS", default_value_t = 3)]
    pub max_open_imports: i64,

    /// Data rows one contact import may hold.
    #[arg(long, env = "ENDER_IMPORT_MAX_ROWS", default_value_t = 200_000)]
    pub import_max_rows: usize,

    /// Fields (columns) one row of a contact import may hold.
    #[arg(long, env = "ENDER_IMPORT_MAX_FIELDS", default_value_t = 64)]
    pub import_max_fields: usize,

    /// Characters one field of a contact import may hold.
    #[arg(long, env = "ENDER_IMPORT_MAX_FIELD_CHARS", default_value_t = 4096)]
    pub import_max_field_chars: usize,

    /// Live-update streams (`/events`) one user may hold open at once.
    #[arg(long, env = "ENDER_MAX_STREAMS_PER_USER", default_value_t = 10)]
    pub max_streams_per_user: usize,

    /// Event streams one device may hold open at once.
    #[arg(long, env = "ENDER_MAX_STREAMS_PER_DEVICE", default_value_t = 3)]
    pub max_streams_per_device: usize,

    /// Incoming SMS one device may report per minute.
    #[arg(long, env = "ENDER_MAX_INCOMING_PER_MINUTE", default_value_t = 120)]
    pub max_incoming_per_minute: i32,

    /// Workspaces one account may belong to, its personal one included.
    #[arg(long, env = "ENDER_MAX_WORKSPACES_PER_USER", default_value_t = 10)]
    pub max_workspaces_per_user: i64,

    /// Members of one workspace, counting invitations waiting for an answer.
    #[arg(long, env = "ENDER_MAX_MEMBERS_PER_WORKSPACE", default_value_t = 50)]
    pub max_members_per_workspace: i64,
}

impl Default for TenantLimits {
    fn default() -> Self {
        Self {
            max_webhooks: 20,
            max_contacts: 200_000,
            max_groups: 500,
            max_templates: 500,
            max_open_imports: 3,
            import_max_rows: 200_000,
            import_max_fields: 64,
            import_max_field_chars: 4096,
            max_streams_per_user: 10,
            max_streams_per_device: 3,
            max_incoming_per_minute: 120,
            max_workspaces_per_user: 10,
            max_members_per_workspace: 50,
        }
    }
}

impl SmsConfig {
    /// Attempts a message gets before it fails for good.
    pub fn max_attempts(&self) -> i32 {
        i32::try_from(self.retry_backoff_secs.len())
            .unwrap_or(i32::MAX)
            .saturating_add(1)
    }

    /// The wait before retry number `attempt` (1-based), if there is one.
    pub fn backoff_after(&self, attempt: i32) -> Option<i64> {
        let i = usize::try_from(attempt.checked_sub(1)?).ok()?;
        self.retry_backoff_secs.get(i).copied()
    }
}

impl Default for SmsConfig {
    fn default() -> Self {
        Self {
            max_recipients: 1000,
            lease_secs: 300,
            claim_timeout_secs: 600,
            retry_backoff_secs: vec![60, 300, 900],
            device_seen_window_secs: 600,
            claim_batch: 10,
            max_sms_per_month: 10_000,
            max_devices: 10,
            max_api_keys: 10,
            max_schedules: 25,
            limits: TenantLimits::default(),
            billing: BillingConfig::default(),
        }
    }
}

/// Keys that seal secrets at rest, and where webhooks may go.
#[derive(clap::Args, Debug, Clone)]
pub struct SecretConfig {
    /// `version:base64-of-32-bytes` entries, comma-separated; the highest version seals new
    /// secrets, all of them open old ones. Unset: a key is generated on first start and kept
    /// in `<data dir>/secret-keys` (back it up with the database).
    #[arg(long, env = "ENDER_SECRET_KEYS", value_parser = secret, hide_env_values = true)]
    pub secret_keys: Option<SecretString>,

    /// Hosts' address ranges webhooks may reach although they are private or local
    /// (comma-separated CIDRs or IPs), for receivers on your own network.
    #[arg(long, env = "ENDER_WEBHOOK_ALLOW", value_delimiter = ',', value_parser = net)]
    pub webhook_allow: Vec<ipnet::IpNet>,

    /// Seal message bodies, template bodies and webhook payloads at rest with the keyring.
    /// Turned off, new ones are stored in plaintext and the worker opens the sealed ones
    /// again when it starts (do that before migrating down past the sealing).
    #[arg(long, env = "ENDER_SEAL_BODIES", default_value_t = true, action = clap::ArgAction::Set)]
    pub seal_bodies: bool,
}

impl Default for SecretConfig {
    fn default() -> Self {
        Self {
            secret_keys: None,
            webhook_allow: Vec::new(),
            seal_bodies: true,
        }
    }
}

/// clap value parser for an IP address or CIDR range.
pub fn net(s: &str) -> Result<ipnet::IpNet, String> {
    let s = s.trim();
    s.parse::<ipnet::IpNet>()
        .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| format!("`{s}` is not an IP address or CIDR range"))
}

impl SecretConfig {
    /// The keyring (see [`SecretConfig::keyring`]), installed for bodies at rest in this
    /// process.
    pub fn install_keyring(&self, data_dir: &std::path::Path) -> anyhow::Result<crate::secret::Keyring> {
        let keyring = self.keyring(data_dir)?;
        crate::secret::at_rest::install(&keyring, self.seal_bodies);
        Ok(keyring)
    }

    /// The configured keyring, or the one kept in the data folder (created on first use).
    pub fn keyring(&self, data_dir: &std::path::Path) -> anyhow::Result<crate::secret::Keyring> {
        use secrecy::ExposeSecret;
        if let Some(list) = &self.secret_keys {
            return crate::secret::Keyring::parse(list.expose_secret())
                .map_err(|e| anyhow::anyhow!("ENDER_SECRET_KEYS: {e}"));
        }
        let path = data_dir.join("secret-keys");
        let list = match std::fs::read_to_string(&path) {
            Ok(list) => list,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(data_dir)?;
                let list = crate::secret::Keyring::generate_entry(1);
                use std::io::Write;
                use std::os::unix::fs::OpenOptionsExt;
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&path)?;
                f.write_all(list.as_bytes())?;
                tracing::info!(path = %path.display(), "generated the key that seals secrets at rest");
                list
            }
            Err(e) => return Err(anyhow::anyhow!("cannot read {}: {e}", path.display())),
        };
        crate::secret::Keyring::parse(&list).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
    }
}
