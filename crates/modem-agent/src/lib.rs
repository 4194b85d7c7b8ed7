//! Ender's modem agent: talks to GSM modems over AT commands in PDU mode and relays SMS
//! between them and Ender.
//!
//! - [`pdu`]: the SMS PDU codec (pure);
//! - [`at`]: the AT command channel;
//! - [`modem`]: one modem's operations on top of it;
//! - [`task`]: a supervised modem ([`task::ModemTask`]) that reconnects, resets and
//!   reports events, for the connection to the server;
//! - [`server`]: the connection to Ender (device API, journal, on-disk outbox);
//! - [`agent`]: every configured modem wired to its connection, each on its own;
//! - [`config`] and [`check`]: the configuration file and `--check`;
//! - [`sim`]: a simulated modem on a pseudo-terminal, for tests.

pub mod agent;
pub mod at;
pub mod check;
pub mod config;
pub mod modem;
pub mod pdu;
pub mod port;
pub mod server;
pub mod sim;
pub mod task;
