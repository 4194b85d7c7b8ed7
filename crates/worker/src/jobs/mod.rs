//! One module per job.

pub mod purge_expired;
