//! Any octets, as hex with and without an SMSC part, must decode to a value or an error.

#![no_main]

use ender_modem_agent::pdu::{decode, decode_tpdu};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let hex = hex_upper(data);
    let _ = decode(&hex);
    let _ = decode_tpdu(&hex);
    // Raw input read as text too: bad hex must be an error, not a panic.
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = decode(text);
    }
});

fn hex_upper(data: &[u8]) -> String {
    data.iter().map(|b| format!("{b:02X}")).collect()
}
