//! Ender's domain: accounts and their tokens, mail, rate limits, sessions, the embedded
//! database and the one migration entry point. Nothing here knows about HTTP.

pub mod account;
pub mod apikey;
pub mod bus;
pub mod config;
pub mod cron;
pub mod crypto;
pub mod db;
pub mod device;
pub mod mail;
pub mod maintenance;
pub mod quota;
pub mod ratelimit;
pub mod secret;
pub mod session;
pub mod setup;
pub mod sms;
#[cfg(feature = "testing")]
pub mod testing;
pub mod webhook;

/// A value that failed validation, with the form field it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct FieldError {
    pub field: &'static str,
    pub message: String,
}

impl FieldError {
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
        }
    }
}

/// Selects the TLS implementation for every rustls user in the process (SMTP, HTTP
/// clients). Several crates enable more than one, and rustls then refuses to guess.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}
