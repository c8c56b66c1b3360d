//! Messages between the page and the worker. Structured parts travel as
//! structured-clone values (serde-wasm-bindgen, no JSON text); large arrays
//! travel beside them as transferable `ArrayBuffer`s, referred to by their
//! index in the message's buffer list.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tessera_core::bundle::Plot;
use tessera_core::data::Summary;
use tessera_core::share::Run;
use wasm_bindgen::JsValue;

/// Page -> worker. Files travel as `File` objects next to this: `files` for
/// `Open`, `sc_files` / `sp_files` / `prot_files` for a run on local files,
/// and `checkpoint` (bytes) for a run that goes on from a stopped one.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Request {
    /// Open the dropped files (datasets or results bundles).
    Open { id: u32 },
    /// Generate Tessera's demo tissue and reference.
    Demo { id: u32 },
    /// Generate the multi-omics demo: transcripts and proteins of the same cells.
    DemoMultiomics { id: u32 },
    /// Fetch a public dataset or results bundle.
    OpenUrl { id: u32, url: String },
    /// Run an analysis; progress comes back as it goes.
    Run { id: u32, run: Box<Run> },
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
    /// Names of the files this input was read from (the page sends them
    /// again for a run); empty for the demo and URLs.
    pub files: Vec<String>,
    /// Where the input came from, when it can be fetched again.
    pub url: Option<String>,
    /// Which demo dataset this is ("demo_spatial", "demo_reference",
    /// "demo_transcripts", "demo_proteins").
    pub demo: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerMeta {
    pub name: String,
    pub columns: Vec<String>,
    /// Buffer of points x columns f32.
    pub buffer: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CurveMeta {
    pub name: String,
    pub values: Vec<f64>,
}

/// A plotted table (small: sent inline).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MatrixMeta {
    pub name: String,
    pub rows: Vec<String>,
    pub cols: Vec<String>,
    pub values: Vec<f64>,
    pub plot: Plot,
}

/// The tissue image under the points.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageMeta {
    pub width: usize,
    pub height: usize,
    /// Image pixels per data unit.
    pub scale: f64,
    /// Buffer of height x width x 4 bytes.
    pub buffer: usize,
}

/// A finished run or an opened bundle: what the results panel shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultMeta {
    pub analysis: String,
    /// The run (parameters and inputs) as a share link holds it.
    pub params: serde_json::Value,
    /// The view stored with the results (null: the default view).
    pub view: serde_json::Value,
    pub n: usize,
    /// Interleaved x, y f32.
    pub xy_buffer: usize,
    /// Point names, one per line, UTF-8.
    pub names_buffer: usize,
    pub layers: Vec<LayerMeta>,
    pub curves: Vec<CurveMeta>,
    pub matrices: Vec<MatrixMeta>,
    /// Downloadable files: (name, buffer).
    pub files: Vec<(String, usize)>,
    /// The results bundle (.zip).
    pub bundle_buffer: usize,
    pub image: Option<ImageMeta>,
    /// Where it ran and how long it took (None for an opened bundle).
    pub device: Option<String>,
    pub seconds: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Outcome {
    Card(Box<Card>),
    Results(Box<ResultMeta>),
    Error(String),
}

/// Worker -> page.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Reply {
    /// The worker has loaded and accepts requests.
    Ready,
    /// One outcome per independent input in the request.
    Opened {
        id: u32,
        outcomes: Vec<Outcome>,
    },
    /// Something the user should know about a run (e.g. no WebGPU).
    Notice {
        id: u32,
        text: String,
    },
    Progress {
        id: u32,
        stage: String,
        done: usize,
        total: usize,
        loss: Option<f64>,
    },
    /// A fit's checkpoint (its bytes in buffer `buffer`): the page keeps
    /// the latest, so a stopped or closed run can go on from it.
    Checkpoint {
        id: u32,
        /// Where the fit stood ("epoch 20", "step 500").
        at: String,
        buffer: usize,
    },
    Finished {
        id: u32,
        result: Box<ResultMeta>,
    },
    Failed {
        id: u32,
        error: String,
    },
    /// The worker hit a bug and stopped (a panic): the page restarts it.
    Crashed {
        message: String,
    },
}

impl Reply {
    /// The request this answers (0 for `Ready`).
    pub fn id(&self) -> u32 {
        match self {
            Reply::Ready | Reply::Crashed { .. } => 0,
            Reply::Opened { id, .. }
            | Reply::Notice { id, .. }
            | Reply::Progress { id, .. }
            | Reply::Checkpoint { id, .. }
            | Reply::Finished { id, .. }
            | Reply::Failed { id, .. } => *id,
        }
    }
}

pub use tessera_core::data::preview::preview;

/// A message as a JS value. Maps become plain objects, so the
/// `serde_json::Value`s inside (a run's parameters, a view) round-trip.
pub fn to_js<T: Serialize>(v: &T) -> Result<JsValue, String> {
    v.serialize(&serde_wasm_bindgen::Serializer::json_compatible())
        .map_err(|e| format!("message could not be encoded: {e}"))
}

pub fn from_js<T: DeserializeOwned>(v: JsValue) -> Result<T, String> {
    serde_wasm_bindgen::from_value(v).map_err(|e| e.to_string())
}
