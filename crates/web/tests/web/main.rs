//! ender-web's integration tests: the real router on a bound loopback port, real
//! PostgreSQL (a database per test), and real peers (a fake OAuth provider, a TCP proxy to
//! cut the database, headless Chromium).

#![allow(
    clippy::unwrap_used,
    reason = "a test should fail loudly on any unexpected error"
)]

mod helpers;
mod log_privacy;
mod logs;

mod accounts;
mod admin;
mod billing;
mod binary;
mod browser;
mod caching;
mod compat;
mod contacts_api;
mod contacts_pages;
mod device_status;
mod exports;
mod fake_pay;
mod invitations;
mod modem_agent;
mod oauth;
mod pages;
mod paging;
mod schedule_pages;
mod schedules_api;
mod shell;
mod simulator;
mod sms;
mod streams;
mod template_pages;
mod tenancy;
mod webhook_pages;
mod webhooks;
mod workspaces;
