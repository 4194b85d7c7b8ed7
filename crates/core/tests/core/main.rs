//! ender-core's integration tests, each on its own real PostgreSQL database.

#![allow(
    clippy::unwrap_used,
    reason = "a test should fail loudly on any unexpected error"
)]

mod accounts;
mod address_book;
mod at_rest;
mod billing;
mod housekeeping;
mod mail;
mod ownership_migration;
mod schedules;
mod sending;
mod setup;
mod store;
mod webhooks;
mod workspaces;
