//! Any text must clean, measure and parse without a panic; a parsed body is within its
//! limit, free of control characters, and counted in a plausible number of parts.

#![no_main]

use ender_core::sms::body::{MAX_CHARS, SmsBody, clean, measure};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let cleaned = clean(&text);
    assert_eq!(clean(&cleaned), cleaned, "cleaning twice changes nothing");
    let (_, segments) = measure(&cleaned);
    assert!(segments >= 0);
    if let Ok(body) = SmsBody::parse(&text) {
        let chars = body.as_str().chars().count();
        assert!(chars > 0 && chars <= MAX_CHARS);
        assert!(body.segments >= 1);
        // A part carries at least 66 UTF-16 units (UCS-2 with a header, a surrogate
        // pair never split), and GSM-7 needs fewer parts than that.
        let units = body.as_str().encode_utf16().count() as i64;
        assert!(i64::from(body.segments) <= units / 66 + 1, "{units} units in {} parts", body.segments);
        assert!(!body.as_str().chars().any(|c| c.is_control() && c != '\n' && c != '\r' && c != '\t'));
    }
});
