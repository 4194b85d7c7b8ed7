//! One module per job.

pub mod exports;
pub mod purge_expired;
pub mod renewals;
pub mod usage_warnings;
