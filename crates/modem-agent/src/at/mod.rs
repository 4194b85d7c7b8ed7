//! Talking AT to a modem (3GPP TS 27.007 and 27.005): a line-oriented channel that tells
//! final results, intermediate responses, the `> ` prompt and unsolicited result codes
//! apart, with a timeout on every command.

mod channel;
mod codes;
mod urc;

pub use channel::{AtChannel, AtError, Response, Stage};
pub use codes::{ErrorCode, FinalError, parse_final};
pub use urc::Urc;

pub(crate) use codes::{cme_text, cms_text, strip_prefix_ignore_case};
pub(crate) use urc::is_hex;
