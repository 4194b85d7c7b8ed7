//! User accounts: sign-up, verification, sign-in, password reset and change, profile,
//! OAuth identities, administrators and account deletion.

mod model;
pub mod repo;
mod service;

pub use model::{Email, FullName, Password, TokenPurpose, User, UserId};
pub use service::*;
