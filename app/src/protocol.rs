//! Messages between the page and the worker. Structured parts travel as JSON;
//! large arrays travel beside it as transferable `ArrayBuffer`s, referred to
//! by their index in the message's buffer list.

use serde::{Deserialize, Serialize};
use tessera_core::data::Summary;

/// Page -> worker: what to open. Files travel as `File` objects next to this.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Request {
    /// Open the dropped files (their `File`s are in the message's `files`).
    Open { id: u32 },
    /// Generate Tessera's demo tissue and reference.
    Demo { id: u32 },
}

/// Spot positions and one value per spot for the card's thumbnail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PreviewMeta {
    pub n: usize,
    /// Buffer index of interleaved x, y (f32).
    pub xy_buffer: usize,
    /// Buffer index of per-point values (f32).
    pub value_buffer: usize,
    pub value_label: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Card {
    pub summary: Summary,
    pub preview: Option<PreviewMeta>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Outcome {
    Card(Box<Card>),
    Error(String),
}

/// Worker -> page.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Reply {
    /// The worker has loaded and accepts requests.
    Ready,
    /// One outcome per independent input in the request.
    Opened { id: u32, outcomes: Vec<Outcome> },
}

pub use tessera_core::data::preview::preview;
