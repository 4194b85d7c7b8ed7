//! ender-modem-agent's integration tests: the PDU codec against published vectors and
//! under property tests; the AT channel against scripted byte streams; the modem driver,
//! the supervised modem task and `--check` against the simulated modem on a real
//! pseudo-terminal.

#![allow(
    clippy::unwrap_used,
    reason = "a test should fail loudly on any unexpected error"
)]

mod at_channel;
mod check;
mod modem;
mod properties;
mod task;
mod vectors;

use std::future::Future;
use std::time::Duration;

use ender_modem_agent::pdu::{Deliver, Pdu, StatusReport, Submit, decode};

pub fn deliver(hex: &str) -> Deliver {
    match decode(hex) {
        Ok(Pdu::Deliver(d)) => d,
        other => panic!("expected an SMS-DELIVER from {hex}, got {other:?}"),
    }
}

pub fn submit(hex: &str) -> Submit {
    match decode(hex) {
        Ok(Pdu::Submit(s)) => s,
        other => panic!("expected an SMS-SUBMIT from {hex}, got {other:?}"),
    }
}

pub fn status_report(hex: &str) -> StatusReport {
    match decode(hex) {
        Ok(Pdu::StatusReport(s)) => s,
        other => panic!("expected an SMS-STATUS-REPORT from {hex}, got {other:?}"),
    }
}

/// The TPDU of a modem-style PDU: everything after the SMSC part.
pub fn tpdu(hex: &str) -> &str {
    let smsc_len = usize::from_str_radix(&hex[..2], 16).unwrap();
    &hex[2 + smsc_len * 2..]
}

/// A text of three GSM-7 parts (153 + 153 + the rest).
pub const LONG_TEXT: &str = "Ender relays SMS between phones and the web. This message is long \
enough to need three parts when sent in the GSM 7-bit alphabet, since one part holds 153 \
characters once the concatenation header takes its share. The agent splits it, the network \
carries each part, and the recipient's phone joins them again by reference and sequence.";

/// Fails the test instead of hanging when `future` takes longer than `limit`.
pub async fn within<F: Future>(limit: Duration, future: F) -> F::Output {
    tokio::time::timeout(limit, future)
        .await
        .unwrap_or_else(|_| panic!("no result within {limit:?}: something hangs"))
}
