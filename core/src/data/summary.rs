//! What `tessera info` prints and the dataset card shows.

use serde::{Deserialize, Serialize};

use super::{Annotation, Column, Dataset, Frame, Value, ValueCheck};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct XSummary {
    /// dense, csr or csc
    pub kind: String,
    pub dtype: String,
    pub nnz: u64,
    pub values: ValueCheck,
    /// Finite, non-negative whole numbers only.
    pub raw_counts: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnSummary {
    pub name: String,
    pub kind: String,
    /// Number of categories, for categorical columns.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub n_categories: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpatialSummary {
    pub key: String,
    pub x_min: f64,
    pub x_max: f64,
    pub y_min: f64,
    pub y_max: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageSummary {
    pub library: String,
    pub name: String,
    pub width: usize,
    pub height: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub source: String,
    pub format: String,
    pub n_obs: usize,
    pub n_vars: usize,
    pub x: Option<XSummary>,
    pub obs_names: Vec<String>,
    pub var_names: Vec<String>,
    pub obs: Vec<ColumnSummary>,
    pub var: Vec<ColumnSummary>,
    pub obsm: Vec<String>,
    pub varm: Vec<String>,
    pub layers: Vec<String>,
    pub uns: Vec<String>,
    pub spatial: Option<SpatialSummary>,
    pub images: Vec<ImageSummary>,
    /// Things a user should know before running a model on this data.
    pub warnings: Vec<String>,
}

fn columns(frame: &Frame) -> Vec<ColumnSummary> {
    frame
        .columns
        .iter()
        .map(|(name, col)| ColumnSummary {
            name: name.clone(),
            kind: col.kind().to_string(),
            n_categories: match col {
                Column::Categorical { categories, .. } => Some(categories.len()),
                _ => None,
            },
        })
        .collect()
}

/// The first few names, enough to recognise a file by.
const HEAD: usize = 5;

impl Summary {
    pub fn of(ds: &Dataset, source: &str, format: &str) -> Summary {
        let x = ds.x.as_ref().map(|m| {
            let values = m.check_values();
            XSummary {
                kind: m.kind().to_string(),
                dtype: ds.x_dtype.clone(),
                nnz: m.nnz(),
                values,
                raw_counts: values.is_counts(),
            }
        });
        Summary::with_x(ds, x, source, format)
    }

    /// The summary of a dataset whose X was not loaded, with X's summary
    /// computed elsewhere (a scan of the file in blocks).
    pub fn with_x(ds: &Dataset, x: Option<XSummary>, source: &str, format: &str) -> Summary {
        let mut warnings = Vec::new();
        if let Some(XSummary { values, .. }) = &x {
            if values.negative > 0 {
                warnings.push(format!(
                    "X has {} negative values; count models (cell2location, Tangram's count-based density) need raw counts",
                    values.negative
                ));
            }
            if values.nan > 0 {
                warnings.push(format!("X has {} NaN values", values.nan));
            }
            if values.negative == 0 && values.nan == 0 && values.non_integer > 0 {
                warnings.push(format!(
                    "X has {} non-integer values: it looks normalised, not raw counts",
                    values.non_integer
                ));
            }
        }
        if x.is_none() {
            warnings.push("no X: this file has coordinates and annotations only".into());
        }
        if let Some(Value::Strings(notes)) = ds.uns.get(super::NOTES_KEY) {
            warnings.extend(notes.iter().cloned());
        }
        if let Some(dup) = ds.obs.first_duplicate() {
            warnings.push(format!("obs names are not unique (e.g. {dup:?})"));
        }
        let spatial = ds.spatial_key().and_then(|key| {
            let a = ds.spatial()?;
            let (mut x_min, mut x_max, mut y_min, mut y_max) = (
                f64::INFINITY,
                f64::NEG_INFINITY,
                f64::INFINITY,
                f64::NEG_INFINITY,
            );
            for r in 0..a.nrows() {
                let (x, y) = (a[[r, 0]], a[[r, 1]]);
                if x.is_finite() && y.is_finite() {
                    x_min = x_min.min(x);
                    x_max = x_max.max(x);
                    y_min = y_min.min(y);
                    y_max = y_max.max(y);
                }
            }
            (x_min <= x_max).then(|| SpatialSummary {
                key: key.to_string(),
                x_min,
                x_max,
                y_min,
                y_max,
            })
        });
        Summary {
            source: source.to_string(),
            format: format.to_string(),
            n_obs: ds.n_obs(),
            n_vars: ds.n_vars(),
            x,
            obs_names: ds.obs.index.iter().take(HEAD).cloned().collect(),
            var_names: ds.var.index.iter().take(HEAD).cloned().collect(),
            obs: columns(&ds.obs),
            var: columns(&ds.var),
            obsm: ds
                .obsm
                .iter()
                .map(|(k, a)| match a {
                    Annotation::Array(_) => k.clone(),
                    Annotation::Frame(_) => format!("{k} (frame)"),
                })
                .collect(),
            varm: ds.varm.keys().cloned().collect(),
            layers: ds.layers.keys().cloned().collect(),
            uns: ds.uns.keys().cloned().collect(),
            spatial,
            images: images(ds),
            warnings,
        }
    }

    /// Plain-text rendering for the terminal.
    pub fn to_text(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let _ = writeln!(s, "{} ({})", self.source, self.format);
        let _ = writeln!(s, "n_obs x n_vars = {} x {}", self.n_obs, self.n_vars);
        if let Some(x) = &self.x {
            let _ = writeln!(
                s,
                "X: {} {}, nnz {}, range [{}, {}], raw counts: {}",
                x.kind,
                x.dtype,
                x.nnz,
                x.values.min,
                x.values.max,
                if x.raw_counts { "yes" } else { "no" }
            );
        }
        let _ = writeln!(s, "obs_names: {}", self.obs_names.join(", "));
        let _ = writeln!(s, "var_names: {}", self.var_names.join(", "));
        for (label, cols) in [("obs", &self.obs), ("var", &self.var)] {
            let list: Vec<String> = cols
                .iter()
                .map(|c| match c.n_categories {
                    Some(n) => format!("{} (categorical, {n})", c.name),
                    None => format!("{} ({})", c.name, c.kind),
                })
                .collect();
            let _ = writeln!(s, "{label}: {}", list.join(", "));
        }
        for (label, keys) in [
            ("obsm", &self.obsm),
            ("varm", &self.varm),
            ("layers", &self.layers),
            ("uns", &self.uns),
        ] {
            let _ = writeln!(s, "{label}: {}", keys.join(", "));
        }
        if let Some(sp) = &self.spatial {
            let _ = writeln!(
                s,
                "spatial: obsm['{}'], x [{}, {}], y [{}, {}]",
                sp.key, sp.x_min, sp.x_max, sp.y_min, sp.y_max
            );
        }
        for im in &self.images {
            let _ = writeln!(
                s,
                "image: {}/{} {} x {}",
                im.library, im.name, im.width, im.height
            );
        }
        for w in &self.warnings {
            let _ = writeln!(s, "warning: {w}");
        }
        s
    }
}

/// Images stored as anndata does: `uns['spatial'][library]['images'][name]`.
fn images(ds: &Dataset) -> Vec<ImageSummary> {
    let mut out = Vec::new();
    if let Some(Value::Dict(libs)) = ds.uns.get("spatial") {
        for (lib, v) in libs {
            if let Some(Value::Dict(imgs)) = v.get("images") {
                for (name, img) in imgs {
                    if let Some(&[h, w, ..]) = img.shape() {
                        out.push(ImageSummary {
                            library: lib.clone(),
                            name: name.clone(),
                            width: w,
                            height: h,
                        });
                    }
                }
            }
        }
    }
    out
}
