//! Webhooks to users' endpoints: event names, the body format of the Vendel contract
//! (§5) and the two signatures sent with every delivery.

pub mod endpoint;
pub mod log;
mod payload;
mod sign;

pub use payload::{Event, Payload, canonical_json};
pub use sign::{Signatures, new_secret, sign};
