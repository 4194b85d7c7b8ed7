//! Scheduled sends: one-time (a wall-clock time in an IANA time zone) and recurring (a
//! cron expression in a time zone), fired once per due time by whichever worker claims
//! them, with a run history.

pub mod cron;
mod model;
pub mod repo;
pub mod run;

pub use model::*;
