//! Any text must parse into cards (or none) and every card into a draft or a row error,
//! in time linear in its size: no panic, no blow-up.

#![no_main]

use ender_core::contact::vcard::{entries_to_drafts, parse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let entries = parse(&text);
    let drafts = entries_to_drafts(&entries, Some("GB"));
    // Each card gives at least one outcome (a draft per number, or an error).
    assert!(drafts.len() >= entries.len());
});
