//! Outgoing mail: SMTP when configured, otherwise files under `<data dir>/mail` that a
//! developer (or a test) can read.

use std::path::PathBuf;

use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::ExposeSecret;

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

#[derive(Clone)]
pub enum Mailer {
    Smtp {
        transport: AsyncSmtpTransport<Tokio1Executor>,
        from: Mailbox,
    },
    Files {
        dir: PathBuf,
    },
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Smtp { .. } => f.write_str("Mailer::Smtp"),
            Self::Files { dir } => write!(f, "Mailer::Files({})", dir.display()),
        }
    }
}

impl Mailer {
    pub fn from_config(cfg: &MailConfig, data_dir: &std::path::Path) -> anyhow::Result<Self> {
        match &cfg.smtp_url {
            Some(url) => {
                let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url.expose_secret())
                    .map_err(|e| anyhow::anyhow!("ENDER_SMTP_URL is not a valid SMTP URL: {e}"))?
                    .build();
                let from = cfg
                    .mail_from
                    .parse()
                    .map_err(|e| anyhow::anyhow!("ENDER_MAIL_FROM is not a valid address: {e}"))?;
                Ok(Self::Smtp { transport, from })
            }
            None => Ok(Self::Files {
                dir: data_dir.join("mail"),
            }),
        }
    }

    pub async fn send(&self, mail: &Mail) -> Result<(), MailError> {
        match self {
            Self::Smtp { transport, from } => {
                let to: Mailbox = mail.to.parse().map_err(|_| MailError::Address(mail.to.clone()))?;
                let message = Message::builder()
                    .from(from.clone())
                    .to(to)
                    .subject(&mail.subject)
                    .body(mail.text.clone())?;
                transport.send(message).await?;
                tracing::info!(subject = %mail.subject, "mail sent over SMTP");
            }
            Self::Files { dir } => {
                tokio::fs::create_dir_all(dir).await?;
                let name = format!(
                    "{}-{}.eml",
                    chrono::Utc::now().format("%Y%m%dT%H%M%S%.6fZ"),
                    crate::crypto::random_token(6)
                );
                let path = dir.join(&name);
                let content = format!(
                    "To: {}\nSubject: {}\nContent-Type: text/plain; charset=utf-8\n\n{}\n",
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
