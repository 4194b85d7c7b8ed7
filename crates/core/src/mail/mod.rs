//! Outgoing mail: SMTP when configured, otherwise files under `<data dir>/mail` that a
//! developer (or a test) can read.

use std::path::PathBuf;

use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::ExposeSecret;
use sqlx::PgPool;

use crate::config::MailConfig;

/// One plain-text mail.
#[derive(Debug, Clone)]
pub struct Mail {
    pub to: String,
    pub subject: String,
    pub text: String,
}

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("the mail address {0:?} is not valid")]
    Address(String),
    #[error("building the mail failed: {0}")]
    Build(#[from] lettre::error::Error),
    #[error("the SMTP server refused or failed: {0}")]
    Smtp(#[from] lettre::transport::smtp::Error),
    #[error("writing the mail file failed: {0}")]
    File(#[from] std::io::Error),
}

/// Where mail goes.
#[derive(Clone)]
pub enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    /// One `.eml` file per mail in this folder.
    Files(PathBuf),
}

/// Sends mail from the configured sender, or from the sender name and address an
/// administrator saved in the instance settings when it has the database
/// ([`Mailer::with_database`]); there it also records each failure for the Health page.
#[derive(Clone)]
pub struct Mailer {
    transport: Transport,
    from: Mailbox,
    pool: Option<PgPool>,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.transport {
            Transport::Smtp(_) => f.write_str("Mailer::Smtp"),
            Transport::Files(dir) => write!(f, "Mailer::Files({})", dir.display()),
        }
    }
}

/// Failures older than this are forgotten as new ones are recorded.
const FAILURES_KEPT_DAYS: i32 = 30;

impl Mailer {
    pub fn from_config(cfg: &MailConfig, data_dir: &std::path::Path) -> anyhow::Result<Self> {
        let from = cfg
            .mail_from
            .parse()
            .map_err(|e| anyhow::anyhow!("ENDER_MAIL_FROM is not a valid address: {e}"))?;
        let transport = match &cfg.smtp_url {
            Some(url) => Transport::Smtp(
                AsyncSmtpTransport::<Tokio1Executor>::from_url(url.expose_secret())
                    .map_err(|e| anyhow::anyhow!("ENDER_SMTP_URL is not a valid SMTP URL: {e}"))?
                    .build(),
            ),
            None => Transport::Files(data_dir.join("mail")),
        };
        Ok(Self {
            transport,
            from,
            pool: None,
        })
    }

    /// Mail to files in `dir`, from `Ender <ender@localhost>`.
    pub fn files(dir: impl Into<PathBuf>) -> Self {
        Self {
            transport: Transport::Files(dir.into()),
            from: Mailbox::new(
                Some("Ender".to_owned()),
                lettre::Address::new("ender", "localhost").expect("a valid address"),
            ),
            pool: None,
        }
    }

    /// Reads the saved sender from `pool` at each mail and records failures there.
    #[must_use]
    pub fn with_database(mut self, pool: PgPool) -> Self {
        self.pool = Some(pool);
        self
    }

    /// Sends `mail`; a failure is also recorded (subject and reason, never the recipient)
    /// when the mailer has the database.
    pub async fn send(&self, mail: &Mail) -> Result<(), MailError> {
        let result = self.deliver(mail).await;
        if let (Err(e), Some(pool)) = (&result, &self.pool) {
            let reason = e.to_string().replace(&mail.to, "<recipient>");
            if let Err(db) = record_failure(pool, &mail.subject, &reason).await {
                tracing::warn!(error = %db, "recording a mail failure failed");
            }
        }
        result
    }

    /// The sender: the saved name and address where set, else the configured ones.
    async fn sender(&self) -> Mailbox {
        let Some(pool) = &self.pool else {
            return self.from.clone();
        };
        let saved = sqlx::query!(
            r#"SELECT (SELECT value FROM instance_settings WHERE key = 'mail_from_name') AS name,
                      (SELECT value FROM instance_settings WHERE key = 'mail_from_address') AS address"#
        )
        .fetch_one(pool)
        .await;
        let Ok(saved) = saved else {
            return self.from.clone();
        };
        let email = saved
            .address
            .filter(|a| !a.is_empty())
            .and_then(|a| a.parse::<lettre::Address>().ok())
            .unwrap_or_else(|| self.from.email.clone());
        let name = saved
            .name
            .filter(|n| !n.is_empty())
            .or_else(|| self.from.name.clone());
        Mailbox::new(name, email)
    }

    async fn deliver(&self, mail: &Mail) -> Result<(), MailError> {
        let from = self.sender().await;
        match &self.transport {
            Transport::Smtp(transport) => {
                let to: Mailbox = mail.to.parse().map_err(|_| MailError::Address(mail.to.clone()))?;
                let message = Message::builder()
                    .from(from)
                    .to(to)
                    .subject(&mail.subject)
                    .body(mail.text.clone())?;
                transport.send(message).await?;
                tracing::info!(subject = %mail.subject, "mail sent over SMTP");
            }
            Transport::Files(dir) => {
                tokio::fs::create_dir_all(dir).await?;
                let name = format!(
                    "{}-{}.eml",
                    chrono::Utc::now().format("%Y%m%dT%H%M%S%.6fZ"),
                    crate::crypto::random_token(6)
                );
                let path = dir.join(&name);
                let content = format!(
                    "From: {from}\nTo: {}\nSubject: {}\nContent-Type: text/plain; charset=utf-8\n\n{}\n",
                    mail.to, mail.subject, mail.text
                );
                // Written under a hidden name and renamed, so a reader of the folder never
                // sees half a mail.
                let partial = dir.join(format!(".{name}.partial"));
                tokio::fs::write(&partial, content).await?;
                tokio::fs::rename(&partial, &path).await?;
                tracing::info!(subject = %mail.subject, path = %path.display(), "mail written to a file (no SMTP configured)");
            }
        }
        Ok(())
    }
}

async fn record_failure(pool: &PgPool, subject: &str, error: &str) -> sqlx::Result<()> {
    let error: String = error.chars().take(500).collect();
    let mut tx = pool.begin().await?;
    sqlx::query!(
        "DELETE FROM mail_failures WHERE at < now() - make_interval(days => $1)",
        FAILURES_KEPT_DAYS
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        "INSERT INTO mail_failures (subject, error) VALUES ($1, $2)",
        subject,
        error
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

/// One mail the server could not send.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Failure {
    pub at: chrono::DateTime<chrono::Utc>,
    pub subject: String,
    pub error: String,
}

/// The failures of the last 24 hours, newest first (at most `limit`), and how many there
/// were in all.
pub async fn recent_failures(conn: &mut sqlx::PgConnection, limit: i64) -> sqlx::Result<(Vec<Failure>, i64)> {
    let total = sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM mail_failures WHERE at > now() - interval '24 hours'"#
    )
    .fetch_one(&mut *conn)
    .await?;
    let rows = sqlx::query_as!(
        Failure,
        "SELECT at, subject, error FROM mail_failures WHERE at > now() - interval '24 hours'
         ORDER BY at DESC LIMIT $1",
        limit
    )
    .fetch_all(&mut *conn)
    .await?;
    Ok((rows, total))
}
