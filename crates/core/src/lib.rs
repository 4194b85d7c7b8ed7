//! Ender's domain: accounts and their tokens, mail, rate limits, sessions, the embedded
//! database and the one migration entry point. Nothing here knows about HTTP.

/// A `Uuid` newtype for one kind of row id: displayable, parseable, a transparent sqlx and
/// serde type.
macro_rules! id_type {
    ($name:ident) => {
        #[derive(
            Debug,
            Clone,
            Copy,
            PartialEq,
            Eq,
            Hash,
            PartialOrd,
            Ord,
            sqlx::Type,
            serde::Serialize,
            serde::Deserialize,
        )]
        #[sqlx(transparent)]
        #[serde(transparent)]
        pub struct $name(pub uuid::Uuid);

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }

        impl std::str::FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                uuid::Uuid::parse_str(s.trim()).map(Self)
            }
        }
    };
}

pub mod account;
pub mod admin;
pub mod apikey;
pub mod billing;
pub mod bus;
pub mod config;
pub mod contact;
pub mod cron;
pub mod crypto;
pub mod db;
pub mod device;
pub mod export;
pub mod invite;
pub mod mail;
pub mod maintenance;
pub mod quota;
pub mod ratelimit;
pub mod schedule;
pub mod secret;
pub mod session;
pub mod setup;
pub mod sms;
pub mod store;
pub mod template;
#[cfg(feature = "testing")]
pub mod testing;
pub mod webhook;
pub mod workspace;

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

/// Makes the C allocator hand large blocks (1 MiB and up) straight back to the system when
/// they are freed. glibc otherwise raises its mmap threshold after the first large free (up
/// to 32 MiB), so later buffers of a few MiB, such as a contact file being imported, come
/// from per-thread heaps that keep the memory: the process's resident size then grows with
/// every import instead of returning to idle (measured by `bench/import-rss.sh`). Call once
/// at start. Does nothing on other C libraries.
pub fn return_large_frees_to_the_system() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    set_mmap_threshold(1 << 20);
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[expect(
    unsafe_code,
    reason = "mallopt(3) only changes an allocator setting; it has no memory preconditions"
)]
fn set_mmap_threshold(bytes: i32) {
    // SAFETY: M_MMAP_THRESHOLD takes a size in bytes; mallopt reports a bad value by
    // returning 0 and changes nothing then.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, bytes);
    }
}
