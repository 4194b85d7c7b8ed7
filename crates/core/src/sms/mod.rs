//! SMS messages: accepting sends, dispatching them to devices, device claims and reports,
//! incoming messages, and the watchdog that keeps anything from being stranded.

pub mod batch;
pub mod body;
pub mod dispatch;
mod model;
pub mod phone;
pub mod repo;
pub mod send;

pub use model::*;
