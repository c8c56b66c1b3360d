//! Messages between the page and the worker. Structured parts travel as JSON;
//! large arrays travel beside it as transferable `ArrayBuffer`s, referred to
//! by their index in the message's buffer list.

use serde::{Deserialize, Serialize};
use tessera_core::data::Summary;
use tessera_core::data::{Dataset, Matrix};

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

/// The most points a thumbnail draws; larger datasets are thinned evenly.
pub const PREVIEW_POINTS: usize = 50_000;

/// Thinned coordinates and log1p total counts (or zeros without X).
pub fn preview(ds: &Dataset) -> Option<(Vec<f32>, Vec<f32>, String)> {
    let sp = ds.spatial()?;
    let step = sp.rows.div_ceil(PREVIEW_POINTS).max(1);
    let totals = ds.x.as_ref().map(Matrix::row_sums);
    let mut xy = Vec::with_capacity(2 * sp.rows / step + 2);
    let mut values = Vec::with_capacity(sp.rows / step + 1);
    for r in (0..sp.rows).step_by(step) {
        xy.extend([sp.data[r * sp.cols] as f32, sp.data[r * sp.cols + 1] as f32]);
        values.push(
            totals
                .as_ref()
                .map_or(0.0, |t| t[r].max(0.0).ln_1p() as f32),
        );
    }
    let label = if totals.is_some() {
        "log1p total counts"
    } else {
        "position"
    };
    Some((xy, values, label.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preview_thins_large_datasets() {
        let (mut ds, _) = tessera_core::demo::demo_pair(Default::default());
        let (xy, v, label) = preview(&ds).unwrap();
        assert_eq!((xy.len(), v.len()), (2 * 900, 900));
        assert_eq!(label, "log1p total counts");
        assert!(v.iter().all(|&x| x > 0.0));
        ds.obsm.clear();
        assert!(preview(&ds).is_none());
    }
}
