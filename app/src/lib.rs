//! Tessera's browser workbench. Two wasm binaries come from this crate: `app`
//! (the Leptos page, which never parses or computes) and `worker` (a dedicated
//! Web Worker that runs tessera-core). They talk through [`protocol`].

#[cfg(target_arch = "wasm32")]
pub mod bench;
#[cfg(target_arch = "wasm32")]
pub mod cards;
#[cfg(target_arch = "wasm32")]
pub mod plot;
pub mod protocol;
#[cfg(target_arch = "wasm32")]
pub mod results;
#[cfg(target_arch = "wasm32")]
pub mod run;
#[cfg(target_arch = "wasm32")]
pub mod ui;
#[cfg(target_arch = "wasm32")]
pub mod worker;
