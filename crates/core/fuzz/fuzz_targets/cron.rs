//! Any expression must parse or be refused with a message; a parsed one must find its next
//! time (or none) quickly, in any time zone, and that time must lie after the start.

#![no_main]

use chrono::{TimeZone, Utc};
use ender_core::schedule::cron::{CronExpr, parse_timezone};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // An optional time zone on the first line, the expression after it.
    let (zone, expr) = text.split_once('\n').unwrap_or(("UTC", &text));
    let tz = parse_timezone(zone.trim()).unwrap_or(chrono_tz::UTC);
    let Ok(cron) = CronExpr::parse(expr) else { return };
    let _ = cron.describe();
    let start = Utc.with_ymd_and_hms(2026, 3, 29, 0, 30, 0).unwrap();
    if let Some(next) = cron.next_after(start, tz) {
        assert!(next > start, "{expr:?} in {tz}: {next} is not after {start}");
    }
    let upcoming = cron.upcoming(start, tz, 5);
    assert!(upcoming.windows(2).all(|w| w[0] < w[1]), "{expr:?}: {upcoming:?}");
});
