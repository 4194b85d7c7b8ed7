//! ender-modem-agent's integration tests: the PDU codec against published vectors and
//! under property tests.

#![allow(
    clippy::unwrap_used,
    reason = "a test should fail loudly on any unexpected error"
)]

mod properties;
mod vectors;

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
