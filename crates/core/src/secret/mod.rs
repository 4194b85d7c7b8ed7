//! Secrets at rest (webhook signing secrets, later provider credentials): AES-256-GCM with a
//! versioned key from configuration. Each ciphertext records the key version that sealed
//! it, so keys can be rotated: the newest key seals, every listed key opens.

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{Aead, AeadCore, KeyInit, Payload};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rand::RngCore;

pub mod at_rest;

/// A sealed secret: the key version, a random 96-bit nonce and the ciphertext with its tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    pub key_version: i32,
    pub nonce: Vec<u8>,
    pub ciphertext: Vec<u8>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretError {
    #[error(
        "ENDER_SECRET_KEYS must list `version:base64-of-32-bytes` entries, e.g. `1:{{44 base64 characters}}`"
    )]
    BadKeyList,
    #[error("no key with version {0} is configured (was it removed from ENDER_SECRET_KEYS?)")]
    UnknownVersion(i32),
    #[error("the secret could not be decrypted (wrong key or damaged data)")]
    Damaged,
}

/// The configured keys, each with its cipher ready (the AES key schedule is built once, not
/// for every body sealed on the send path).
#[derive(Clone)]
pub struct Keyring {
    keys: Vec<(i32, [u8; 32], Aes256Gcm)>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let versions: Vec<i32> = self.keys.iter().map(|k| k.0).collect();
        write!(f, "Keyring(versions {versions:?})")
    }
}

impl Keyring {
    /// Parses `1:<base64>,2:<base64>`; the highest version seals.
    pub fn parse(list: &str) -> Result<Self, SecretError> {
        let mut keys = Vec::new();
        for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (version, key) = entry.split_once(':').ok_or(SecretError::BadKeyList)?;
            let version: i32 = version.trim().parse().map_err(|_| SecretError::BadKeyList)?;
            let bytes = STANDARD.decode(key.trim()).map_err(|_| SecretError::BadKeyList)?;
            let key: [u8; 32] = bytes.try_into().map_err(|_| SecretError::BadKeyList)?;
            let cipher = Aes256Gcm::new_from_slice(&key).map_err(|_| SecretError::BadKeyList)?;
            keys.push((version, key, cipher));
        }
        if keys.is_empty() {
            return Err(SecretError::BadKeyList);
        }
        keys.sort_by_key(|k| k.0);
        Ok(Self { keys })
    }

    /// A new random key list entry (`1:<base64>`), for first starts without configuration.
    pub fn generate_entry(version: i32) -> String {
        let mut key = [0u8; 32];
        rand::rng().fill_bytes(&mut key);
        format!("{version}:{}", STANDARD.encode(key))
    }

    fn cipher(&self, version: i32) -> Result<&Aes256Gcm, SecretError> {
        self.keys
            .iter()
            .find(|k| k.0 == version)
            .map(|k| &k.2)
            .ok_or(SecretError::UnknownVersion(version))
    }

    /// The version new secrets are sealed with.
    pub fn current_version(&self) -> i32 {
        self.keys.last().map_or(0, |k| k.0)
    }

    pub fn seal(&self, plaintext: &[u8]) -> Result<Sealed, SecretError> {
        self.seal_bound(plaintext, b"")
    }

    pub fn open(&self, sealed: &Sealed) -> Result<Vec<u8>, SecretError> {
        self.open_bound(sealed, b"")
    }

    /// Seals `plaintext` bound to `context` (associated data, e.g. the id of the row that
    /// holds it): the ciphertext opens only with the same context, so it cannot be moved
    /// to another row.
    pub fn seal_bound(&self, plaintext: &[u8], context: &[u8]) -> Result<Sealed, SecretError> {
        let version = self.current_version();
        let mut nonce = [0u8; 12];
        rand::rng().fill_bytes(&mut nonce);
        let ciphertext = self
            .cipher(version)?
            .encrypt(
                &nonce_of(&nonce)?,
                Payload {
                    msg: plaintext,
                    aad: context,
                },
            )
            .map_err(|_| SecretError::Damaged)?;
        Ok(Sealed {
            key_version: version,
            nonce: nonce.to_vec(),
            ciphertext,
        })
    }

    /// Opens what [`Keyring::seal_bound`] sealed with the same `context`.
    pub fn open_bound(&self, sealed: &Sealed, context: &[u8]) -> Result<Vec<u8>, SecretError> {
        if sealed.nonce.len() != 12 {
            return Err(SecretError::Damaged);
        }
        self.cipher(sealed.key_version)?
            .decrypt(
                &nonce_of(&sealed.nonce)?,
                Payload {
                    msg: sealed.ciphertext.as_slice(),
                    aad: context,
                },
            )
            .map_err(|_| SecretError::Damaged)
    }
}

type NonceOf = aes_gcm::Nonce<<Aes256Gcm as AeadCore>::NonceSize>;

fn nonce_of(bytes: &[u8]) -> Result<NonceOf, SecretError> {
    NonceOf::try_from(bytes).map_err(|_| SecretError::Damaged)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bound_secret_opens_only_in_its_context() {
        let keys = Keyring::parse(&Keyring::generate_entry(1)).unwrap();
        let sealed = keys.seal_bound(b"whsec_a", b"endpoint-a").unwrap();
        assert_eq!(keys.open_bound(&sealed, b"endpoint-a").unwrap(), b"whsec_a");
        assert_eq!(keys.open_bound(&sealed, b"endpoint-b"), Err(SecretError::Damaged));
        assert_eq!(keys.open(&sealed), Err(SecretError::Damaged));
        // Unbound is the empty context.
        let plain = keys.seal(b"x").unwrap();
        assert_eq!(keys.open_bound(&plain, b"").unwrap(), b"x");
    }

    #[test]
    fn secrets_round_trip_and_survive_key_rotation() {
        let old = Keyring::parse(&Keyring::generate_entry(1)).unwrap();
        let sealed = old.seal(b"whsec_example").unwrap();
        assert_eq!(sealed.key_version, 1);
        assert_ne!(sealed.ciphertext, b"whsec_example");
        assert_eq!(old.open(&sealed).unwrap(), b"whsec_example");

        let both = format!(
            "{},{}",
            Keyring::generate_entry(2),
            "1:".to_owned() + &STANDARD.encode(old.keys[0].1)
        );
        let rotated = Keyring::parse(&both).unwrap();
        assert_eq!(rotated.current_version(), 2);
        assert_eq!(
            rotated.open(&sealed).unwrap(),
            b"whsec_example",
            "old secrets still open"
        );
        assert_eq!(rotated.seal(b"x").unwrap().key_version, 2);
    }

    #[test]
    fn tampering_and_unknown_keys_are_refused() {
        let ring = Keyring::parse(&Keyring::generate_entry(1)).unwrap();
        let mut sealed = ring.seal(b"secret").unwrap();
        sealed.ciphertext[0] ^= 1;
        assert_eq!(ring.open(&sealed), Err(SecretError::Damaged));
        sealed.key_version = 9;
        assert_eq!(ring.open(&sealed), Err(SecretError::UnknownVersion(9)));
        for bad in ["", "1", "x:abc", "1:not-base64!", "1:c2hvcnQ="] {
            assert_eq!(
                Keyring::parse(bad).unwrap_err(),
                SecretError::BadKeyList,
                "{bad:?}"
            );
        }
    }
}
