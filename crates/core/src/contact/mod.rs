//! Contacts and groups: the address book, its CSV and vCard import and export.

pub mod export;
pub mod import;
pub mod import_csv;
mod model;
pub mod repo;
pub mod vcard;

pub use model::*;
