//! Stripe's side of a payment that needs no HTTP: checking the `Stripe-Signature` of a
//! callback, and reading a `checkout.session.completed` event into a confirmed payment.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::payments::{Confirmed, Provider};

/// How far a callback's signed time may be from ours, either way.
pub const TOLERANCE_SECS: i64 = 300;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("Missing Stripe-Signature header.")]
    Missing,
    #[error("Malformed Stripe-Signature header.")]
    Malformed,
    #[error("The signature does not match.")]
    Mismatch,
    #[error("The signature's timestamp is outside the tolerance.")]
    Stale,
}

fn mac(secret: &str, t: i64, body: &[u8]) -> Hmac<Sha256> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The `v1` signature of `body` signed at `t` (unix seconds).
pub fn sign(secret: &str, t: i64, body: &[u8]) -> String {
    hex::encode(mac(secret, t, body).finalize().into_bytes())
}

/// Checks a `Stripe-Signature: t=…,v1=…[,v1=…]` header against `body`: one `v1` must be
/// the HMAC-SHA256 of `"{t}.{body}"` under `secret` (compared in constant time), and `t`
/// within [`TOLERANCE_SECS`] of `now` either way.
pub fn verify(header: Option<&str>, body: &[u8], secret: &str, now: i64) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let mut t = None;
    let mut candidates = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => t = Some(v.parse::<i64>().map_err(|_| SignatureError::Malformed)?),
            Some(("v1", v)) => candidates.push(hex::decode(v).map_err(|_| SignatureError::Malformed)?),
            _ => {}
        }
    }
    let t = t.ok_or(SignatureError::Malformed)?;
    if candidates.is_empty() {
        return Err(SignatureError::Malformed);
    }
    let expected = mac(secret, t, body);
    // Every candidate is compared (in constant time), whichever matches.
    let matched = candidates
        .iter()
        .fold(false, |any, c| any | expected.clone().verify_slice(c).is_ok());
    if !matched {
        return Err(SignatureError::Mismatch);
    }
    if (now - t).abs() > TOLERANCE_SECS {
        return Err(SignatureError::Stale);
    }
    Ok(())
}

/// What a verified event asks of us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A paid checkout: credit it.
    Paid(Confirmed),
    /// Any other event type or state; answered 200 so Stripe does not retry.
    Ignored(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct EventError(pub &'static str);

/// Reads a verified event body.
pub fn parse_event(body: &[u8]) -> Result<Event, EventError> {
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|_| EventError("Invalid JSON payload."))?;
    let kind = v["type"].as_str().ok_or(EventError("The event has no type."))?;
    if kind != "checkout.session.completed" {
        return Ok(Event::Ignored(kind.to_owned()));
    }
    let o = &v["data"]["object"];
    if o["mode"].as_str() != Some("payment") {
        return Ok(Event::Ignored(format!(
            "{kind} (mode {})",
            o["mode"].as_str().unwrap_or("none")
        )));
    }
    if o["payment_status"].as_str() != Some("paid") {
        return Ok(Event::Ignored(format!(
            "{kind} (payment_status {})",
            o["payment_status"].as_str().unwrap_or("none")
        )));
    }
    let session = o["id"]
        .as_str()
        .ok_or(EventError("The checkout session has no id."))?;
    let amount = o["amount_total"]
        .as_i64()
        .ok_or(EventError("The checkout session has no amount_total."))?;
    let currency = o["currency"]
        .as_str()
        .ok_or(EventError("The checkout session has no currency."))?;
    // The payment intent is the money movement; a session without one (rare) is its own.
    let tx = o["payment_intent"].as_str().unwrap_or(session);
    let reference = o["client_reference_id"]
        .as_str()
        .or_else(|| o["metadata"]["payment_id"].as_str())
        .unwrap_or_default();
    Ok(Event::Paid(Confirmed {
        provider: Provider::Stripe,
        reference: reference.to_owned(),
        checkout_ref: Some(session.to_owned()),
        tx_id: tx.to_owned(),
        amount_cents: amount,
        currency: currency.to_ascii_lowercase(),
    }))
}
