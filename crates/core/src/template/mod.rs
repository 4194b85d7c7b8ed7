//! Message templates: bodies with `{{variables}}`, kept per user.

mod model;
pub mod repo;
pub mod text;

pub use model::*;
