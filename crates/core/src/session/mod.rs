//! Browser sessions as rows, so any number of web processes share them.

pub mod repo;
