//! Random tokens, token digests and password hashing.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Argon2, password_hash::rand_core::OsRng};
use rand::Rng;
use rand::distr::Alphanumeric;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};
use tokio::sync::Semaphore;

/// A random string of `[A-Za-z0-9]` from the operating system's CSPRNG.
pub fn random_token(len: usize) -> String {
    rand::rng()
        .sample_iter(Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// SHA-256 of a token: what the database stores instead of the token itself.
pub fn token_digest(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// Hex SHA-256, for keys that must not reveal what they were made from.
pub fn hex_digest(value: &str) -> String {
    hex::encode(Sha256::digest(value.as_bytes()))
}

/// Permits for Argon2 runs at once in this process: each takes about 19 MiB and a core for
/// tens of milliseconds, so whatever arrives, memory and CPU for hashing stay bounded.
static HASH_PERMITS: LazyLock<Arc<Semaphore>> = LazyLock::new(|| Arc::new(Semaphore::new(hash_permits())));
static HASHES_IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);
static PEAK_HASHES_IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);

/// How many password hashes or verifications may run at once: twice the CPU count.
pub fn hash_permits() -> usize {
    std::thread::available_parallelism().map_or(2, std::num::NonZero::get) * 2
}

/// The most password hashes or verifications that ever ran at once in this process.
pub fn peak_hashes_in_flight() -> usize {
    PEAK_HASHES_IN_FLIGHT.load(Ordering::Relaxed)
}

/// Takes every hashing permit, so tests can show that a path answers without hashing.
#[cfg(feature = "testing")]
pub async fn hold_all_hash_permits() -> tokio::sync::OwnedSemaphorePermit {
    let n = u32::try_from(hash_permits()).unwrap_or(u32::MAX);
    HASH_PERMITS
        .clone()
        .acquire_many_owned(n)
        .await
        .expect("the hashing semaphore is never closed")
}

/// Runs Argon2 work on a blocking thread once a permit is free. The permit moves into the
/// thread, so a request that gives up early does not free it before the work ends.
async fn argon2_work<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> anyhow::Result<T> {
    let permit = HASH_PERMITS.clone().acquire_owned().await?;
    let out = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let now = HASHES_IN_FLIGHT.fetch_add(1, Ordering::SeqCst) + 1;
        PEAK_HASHES_IN_FLIGHT.fetch_max(now, Ordering::SeqCst);
        let out = work();
        HASHES_IN_FLIGHT.fetch_sub(1, Ordering::SeqCst);
        out
    })
    .await?;
    Ok(out)
}

/// Hashes a password with argon2id on a blocking thread (it takes tens of milliseconds).
pub async fn hash_password(password: SecretString) -> anyhow::Result<String> {
    argon2_work(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.expose_secret().as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| anyhow::anyhow!("hashing a password failed: {e}"))
    })
    .await?
}

/// A hash of a random password, verified against when an account does not exist so that
/// a failed login costs the same time either way.
static DUMMY_HASH: LazyLock<String> = LazyLock::new(|| {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(random_token(24).as_bytes(), &salt)
        .map(|h| h.to_string())
        .unwrap_or_default()
});

/// Checks a password against a stored hash (or against a dummy when there is none).
pub async fn verify_password(password: SecretString, hash: Option<String>) -> bool {
    let known = hash.is_some();
    argon2_work(move || {
        let hash = hash.unwrap_or_else(|| DUMMY_HASH.clone());
        let Ok(parsed) = PasswordHash::new(&hash) else {
            return false;
        };
        let ok = Argon2::default()
            .verify_password(password.expose_secret().as_bytes(), &parsed)
            .is_ok();
        ok && known
    })
    .await
    .unwrap_or(false)
}

/// A new credential: `prefix` (`vk_`, `dk_`) and 32 random alphanumerics.
pub fn new_key(prefix: &str) -> String {
    format!("{prefix}{}", random_token(32))
}

/// The part of a key shown in lists to tell keys apart (prefix and four characters).
pub fn key_hint(key: &str) -> String {
    key.chars().take(7).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_tokens_are_alphanumeric_and_distinct() {
        let a = random_token(32);
        let b = random_token(32);
        assert_eq!(a.len(), 32);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, b);
    }

    #[tokio::test]
    async fn passwords_verify_only_against_their_own_hash() {
        let hash = hash_password(SecretString::from("correct horse battery"))
            .await
            .unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password(SecretString::from("correct horse battery"), Some(hash.clone())).await);
        assert!(!verify_password(SecretString::from("wrong horse battery"), Some(hash)).await);
        assert!(!verify_password(SecretString::from("anything"), None).await);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_hashes_never_exceed_the_permits() {
        let runs: Vec<_> = (0..hash_permits() * 4)
            .map(|i| tokio::spawn(hash_password(SecretString::from(format!("password number {i}")))))
            .collect();
        for run in runs {
            run.await.unwrap().unwrap();
        }
        assert!(peak_hashes_in_flight() >= 1);
        assert!(
            peak_hashes_in_flight() <= hash_permits(),
            "{} hashes ran at once, {} permits",
            peak_hashes_in_flight(),
            hash_permits()
        );
    }
}
