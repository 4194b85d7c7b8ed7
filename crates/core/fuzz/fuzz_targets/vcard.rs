//! Any text must parse into cards (or none) and every card into a draft or a row error,
//! in time linear in its size: no panic, no blow-up. The limited reader agrees with the
//! unlimited one, and stops exactly when a card or the file passes a limit.

#![no_main]

use std::ops::ControlFlow;

use ender_core::contact::import_csv::ImportLimits;
use ender_core::contact::vcard::{entries_to_drafts, for_each_card, parse};
use libfuzzer_sys::fuzz_target;

const LIMITS: ImportLimits = ImportLimits {
    max_rows: 20,
    max_fields: 4,
    max_field_chars: 64,
};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let entries = parse(&text);
    let drafts = entries_to_drafts(&entries, Some("GB"));
    // Each card gives at least one outcome (a draft per number, or an error).
    assert!(drafts.len() >= entries.len());
    let over = entries.len() > LIMITS.max_rows
        || entries
            .iter()
            .any(|e| e.phones.len() > LIMITS.max_fields || e.categories.len() > LIMITS.max_fields);
    match for_each_card(&text, &LIMITS, |_| ControlFlow::Continue(())) {
        Ok(cards) => {
            assert!(!over);
            assert_eq!(cards, entries.len());
        }
        Err(_) => assert!(over),
    }
});
