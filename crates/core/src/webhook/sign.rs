//! Signing a delivery two ways at once: Vendel's `X-Webhook-Signature` (lowercase hex
//! HMAC-SHA256 of the body, keyed with the secret as the owner sees it) and the Standard
//! Webhooks headers (`webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64>`
//! over `{id}.{timestamp}.{body}`, keyed with the base64-decoded part of `whsec_…`), one
//! `v1,` entry per live secret while a rotation overlaps.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use rand::RngCore;
use sha2::Sha256;

/// A new endpoint secret: `whsec_` and 32 random bytes in base64.
pub fn new_secret() -> String {
    let mut key = [0u8; 32];
    rand::rng().fill_bytes(&mut key);
    format!("whsec_{}", STANDARD.encode(key))
}

/// The signature headers of one delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signatures {
    /// `X-Webhook-Signature`, from the newest secret.
    pub vendel: String,
    /// `webhook-signature`: space-separated `v1,<base64>` entries, one per secret.
    pub standard: String,
}

fn hmac(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes keys of any length");
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().to_vec()
}

/// Signs `body` for delivery `id` at `timestamp` (Unix seconds) with every live secret
/// (newest first).
pub fn sign(secrets: &[String], id: &str, timestamp: i64, body: &[u8]) -> Signatures {
    let vendel = secrets
        .first()
        .map(|s| hex::encode(hmac(s.as_bytes(), &[body])))
        .unwrap_or_default();
    let ts = timestamp.to_string();
    let standard = secrets
        .iter()
        .map(|s| {
            let key = s
                .strip_prefix("whsec_")
                .and_then(|k| STANDARD.decode(k).ok())
                .unwrap_or_else(|| s.as_bytes().to_vec());
            format!(
                "v1,{}",
                STANDARD.encode(hmac(&key, &[id.as_bytes(), b".", ts.as_bytes(), b".", body]))
            )
        })
        .collect::<Vec<_>>()
        .join(" ");
    Signatures { vendel, standard }
}
