//! Webhook signatures as receivers check them: the Standard Webhooks library and Vendel's
//! hex HMAC, through a secret rotation.

use chrono::Utc;
use ender_core::webhook::{Event, Payload, new_secret, sign};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

fn headers(id: &str, ts: i64, signature: &str) -> http::HeaderMap {
    let mut h = http::HeaderMap::new();
    h.insert("webhook-id", id.parse().unwrap());
    h.insert("webhook-timestamp", ts.to_string().parse().unwrap());
    h.insert("webhook-signature", signature.parse().unwrap());
    h
}

#[test]
fn both_signatures_verify_and_a_rotation_keeps_old_receivers_working() {
    let (old, new) = (new_secret(), new_secret());
    assert!(old.starts_with("whsec_") && old != new);
    let body = Payload::new(Event::SmsDelivered, "m-1", Utc::now())
        .with("to", "+15551234567")
        .with("status", "delivered")
        .to_bytes();
    let ts = Utc::now().timestamp();
    let sigs = sign(&[new.clone(), old.clone()], "msg_1", ts, &body);

    // Standard Webhooks: a receiver with either secret accepts during the overlap.
    for secret in [&new, &old] {
        let wh = standardwebhooks::Webhook::new(secret).unwrap();
        wh.verify(&body, &headers("msg_1", ts, &sigs.standard)).unwrap();
    }
    let stranger = standardwebhooks::Webhook::new(&new_secret()).unwrap();
    assert!(
        stranger
            .verify(&body, &headers("msg_1", ts, &sigs.standard))
            .is_err()
    );
    // Tampering with the body or the id breaks it.
    let wh = standardwebhooks::Webhook::new(&new).unwrap();
    assert!(wh.verify(b"{}", &headers("msg_1", ts, &sigs.standard)).is_err());
    assert!(wh.verify(&body, &headers("msg_2", ts, &sigs.standard)).is_err());

    // Vendel: lowercase hex HMAC-SHA256 of the body keyed with the secret string (newest).
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(new.as_bytes()).unwrap();
    mac.update(&body);
    assert_eq!(sigs.vendel, hex::encode(mac.finalize().into_bytes()));
}
