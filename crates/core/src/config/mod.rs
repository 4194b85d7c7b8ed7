//! Configuration shared by the web and worker binaries, read once from flags and the
//! environment by clap.

use std::path::PathBuf;

use secrecy::SecretString;

fn secret(s: &str) -> Result<SecretString, std::convert::Infallible> {
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
