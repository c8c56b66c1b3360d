//! The AnnData-shaped container every reader fills and every model reads.
//!
//! Layout follows anndata: `X` is obs x var, `obs`/`var` are frames indexed by
//! cell and gene names, `obsm`/`varm` hold per-row matrices (or frames), `uns`
//! is a nested tree. Values stay in the file's units.

mod frame;
mod genes;
mod matrix;
pub mod preview;
mod summary;
mod uns;

pub use frame::{Column, Frame};
pub use genes::{var_names_make_unique, GeneMatcher};
pub use matrix::{dense, Dense, Matrix, Sparse, ValueCheck};
pub use summary::{ColumnSummary, ImageSummary, SpatialSummary, Summary, XSummary};
pub use uns::Value;

use std::collections::BTreeMap;

/// A per-row (or per-column) annotation matrix: a dense array or a frame.
#[derive(Debug, Clone, PartialEq)]
pub enum Annotation {
    Array(Dense<f64>),
    Frame(Frame),
}

impl Annotation {
    pub fn n_rows(&self) -> usize {
        match self {
            Annotation::Array(a) => a.nrows(),
            Annotation::Frame(f) => f.len(),
        }
    }

    pub fn n_cols(&self) -> usize {
        match self {
            Annotation::Array(a) => a.ncols(),
            Annotation::Frame(f) => f.columns.len(),
        }
    }
}

/// One dataset: cells (or spots) by features.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Dataset {
    /// `None` only for tables with coordinates and labels but no features.
    pub x: Option<Matrix>,
    /// dtype of X as stored in the source file (`float32`, `int64`, ...).
    pub x_dtype: String,
    pub raw_x: Option<Matrix>,
    pub layers: BTreeMap<String, Matrix>,
    pub obs: Frame,
    pub var: Frame,
    pub obsm: BTreeMap<String, Annotation>,
    pub varm: BTreeMap<String, Annotation>,
    pub uns: BTreeMap<String, Value>,
}

/// `uns` key where readers leave notes for the user (rows dropped, ...).
pub const NOTES_KEY: &str = "tessera_notes";

/// Keys tried, in order, for the spatial coordinates of each observation.
pub const SPATIAL_KEYS: [&str; 3] = ["spatial", "X_spatial", "spatial_coords"];

impl Dataset {
    pub fn n_obs(&self) -> usize {
        self.obs.len()
    }

    pub fn n_vars(&self) -> usize {
        self.var.len()
    }

    /// The obsm key holding 2-D coordinates, if any.
    pub fn spatial_key(&self) -> Option<&'static str> {
        SPATIAL_KEYS
            .into_iter()
            .find(|k| matches!(self.obsm.get(*k), Some(Annotation::Array(a)) if a.ncols() >= 2))
    }

    /// The (x, y) columns of the spatial coordinates.
    pub fn spatial(&self) -> Option<&Dense<f64>> {
        match self.obsm.get(self.spatial_key()?) {
            Some(Annotation::Array(a)) => Some(a),
            _ => None,
        }
    }

    /// Checks that every part agrees with the obs and var lengths; readers call
    /// this last so a malformed file is named instead of failing later.
    pub fn check_shapes(&self) -> Result<(), String> {
        let (n, m) = (self.n_obs(), self.n_vars());
        let check = |what: &str, shape: (usize, usize)| {
            if shape == (n, m) {
                Ok(())
            } else {
                Err(format!(
                    "{what} is {} x {} but obs x var is {n} x {m}",
                    shape.0, shape.1
                ))
            }
        };
        if let Some(x) = &self.x {
            check("X", x.shape())?;
        }
        for (k, l) in &self.layers {
            check(&format!("layers/{k}"), l.shape())?;
        }
        if let Some(raw) = &self.raw_x {
            if raw.shape().0 != n {
                return Err(format!("raw/X has {} rows but obs has {n}", raw.shape().0));
            }
        }
        for (k, a) in &self.obsm {
            if a.n_rows() != n {
                return Err(format!("obsm/{k} has {} rows but obs has {n}", a.n_rows()));
            }
        }
        for (k, a) in &self.varm {
            if a.n_rows() != m {
                return Err(format!("varm/{k} has {} rows but var has {m}", a.n_rows()));
            }
        }
        self.obs.check("obs")?;
        self.var.check("var")?;
        Ok(())
    }
}
