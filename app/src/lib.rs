//! Tessera's browser workbench. Two wasm binaries come from this crate: `app`
//! (the Leptos page, which never parses or computes) and `worker` (a dedicated
//! Web Worker that runs tessera-core). They talk through [`protocol`].
//!
//! Modules, from the bottom up (each imports only those above it in this
//! list; `tests/layout.rs` fails on a cycle): `protocol` (messages),
//! `plot` (WebGPU / Canvas 2D drawing), `state` (signals, worker bridge,
//! cards and results as held), `figures` (tables drawn), `form` (the page
//! trait and form widgets), `pages` (one module per analysis), `cards`,
//! `run` (the analysis panel), `results` (the results panel), `bench`, `ui`
//! (the shell); `worker` is the other binary's side.

#[cfg(target_arch = "wasm32")]
pub mod bench;
#[cfg(target_arch = "wasm32")]
pub mod cards;
#[cfg(target_arch = "wasm32")]
pub mod figures;
#[cfg(target_arch = "wasm32")]
pub mod form;
#[cfg(target_arch = "wasm32")]
pub mod keep;
#[cfg(target_arch = "wasm32")]
pub mod pages;
#[cfg(target_arch = "wasm32")]
pub mod plot;
pub mod protocol;
#[cfg(target_arch = "wasm32")]
pub mod results;
#[cfg(target_arch = "wasm32")]
pub mod run;
#[cfg(target_arch = "wasm32")]
pub mod state;
#[cfg(target_arch = "wasm32")]
pub mod ui;
#[cfg(target_arch = "wasm32")]
pub mod worker;
