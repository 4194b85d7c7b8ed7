//! Message templates: bodies with `{{variables}}`, kept per workspace.

mod model;
pub mod repo;
pub mod text;

pub use model::*;
