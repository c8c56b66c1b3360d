//! Tessera's core: the dataset model, readers and writers, and (in later
//! modules) the compute devices and models. Nothing here knows about the
//! browser; the app and the `tessera` CLI both build on it.

pub mod analysis;
pub mod bundle;
pub mod compute;
pub mod data;
pub mod demo;
pub mod embed;
pub mod io;
pub mod models;
pub mod prep;
pub mod session;
pub mod share;
pub mod simulate;
pub mod spatial;
