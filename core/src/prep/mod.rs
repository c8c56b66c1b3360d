//! Preprocessing shared by the models: gene filters, count checks.

pub mod filter;
