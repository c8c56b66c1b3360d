//! Spatial autocorrelation as an analysis of the registry: squidpy's
//! `spatial_autocorr` (Moran's I, Geary's C) on a `spatial_neighbors`
//! graph, its frame as a table and in `var`, the top features to colour by.

use ndarray::ArrayView2;
use serde::{Deserialize, Serialize};

use super::{Mode, Options};
use crate::analysis::{checks, Analysis, Cards, Data, Input, Progress, Slot};
use crate::bundle::{Layer, Matrix, Plot, Results};
use crate::compute::Device;
use crate::data::{Column, Dataset};
use crate::io::Error;
use crate::spatial::graph;
use crate::spatial::inputs::{coords, flat};

pub struct Autocorr;

/// squidpy's `spatial_autocorr` on a `spatial_neighbors` graph.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
// Missing fields take the defaults (`tessera run` takes partial JSON).
#[serde(default, deny_unknown_fields)]
pub struct AutocorrParams {
    /// moran or geary.
    pub mode: String,
    /// Empty: the highly variable genes when marked, else every gene.
    pub genes: Vec<String>,
    pub graph: String,
    pub n_neighs: usize,
    pub radius: Option<f64>,
    /// 0: analytic p-values only (squidpy's default n_perms=None).
    pub n_perms: usize,
    pub two_tailed: bool,
    pub seed: u32,
}

impl Default for AutocorrParams {
    fn default() -> Self {
        AutocorrParams {
            mode: "moran".into(),
            genes: vec![],
            graph: "knn".into(),
            n_neighs: 6,
            radius: None,
            n_perms: 0,
            two_tailed: false,
            seed: 0,
        }
    }
}

impl AutocorrParams {
    pub fn options(&self) -> Result<(graph::Options, Options), String> {
        let mode = match self.mode.as_str() {
            "moran" => Mode::Moran,
            "geary" => Mode::Geary,
            m => return Err(format!("mode '{m}': expected moran or geary")),
        };
        if self.n_perms > 10_000 {
            return Err(format!("n_perms {}: expected 0 to 10000", self.n_perms));
        }
        if self.genes.len() > 50_000 {
            return Err("at most 50000 genes".into());
        }
        for g in &self.genes {
            checks::text("a gene name", g)?;
        }
        let g = graph::Options::from_form(&self.graph, self.n_neighs, self.radius)?;
        Ok((
            g,
            Options {
                mode,
                transformation: true,
                n_perms: self.n_perms,
                two_tailed: self.two_tailed,
                seed: self.seed,
            },
        ))
    }
}

/// The var columns autocorrelation is computed on: the named genes, else
/// the highly variable ones when var marks them, else all.
fn columns(name: &str, ds: &Dataset, genes: &[String]) -> Result<Vec<usize>, Error> {
    if genes.is_empty() {
        return Ok(match ds.var.column("highly_variable") {
            Some(Column::Bool(hv)) if hv.iter().any(|&b| b) => {
                (0..hv.len()).filter(|&i| hv[i]).collect()
            }
            _ => (0..ds.n_vars()).collect(),
        });
    }
    let mut at = std::collections::HashMap::new();
    for (i, g) in ds.var.index.iter().enumerate() {
        at.entry(g.as_str()).or_insert(i);
    }
    genes
        .iter()
        .map(|g| {
            at.get(g.as_str()).copied().ok_or_else(|| {
                Error::new(
                    name,
                    "var",
                    format!("gene {g:?} is not in var_names ({} genes)", ds.n_vars()),
                )
            })
        })
        .collect()
}

/// Each column's name and values, densified 256 columns at a time.
fn dense_features(
    name: &str,
    ds: &Dataset,
    cols: &[usize],
) -> Result<Vec<(String, Vec<f64>)>, Error> {
    let x =
        ds.x.as_ref()
            .ok_or_else(|| Error::new(name, "X", "the dataset has no expression matrix"))?;
    let n = ds.n_obs();
    Ok(cols
        .chunks(256)
        .flat_map(|chunk| {
            let dense = x.columns_dense(chunk);
            let block = ArrayView2::from_shape((n, chunk.len()), &dense).expect("n x chunk");
            chunk
                .iter()
                .zip(block.columns())
                .map(|(&c, v)| {
                    (
                        ds.var.index[c].clone(),
                        v.iter().map(|&x| x as f64).collect(),
                    )
                })
                .collect::<Vec<_>>()
        })
        .collect())
}

/// The features autocorrelation is computed on: the named genes, else the
/// highly variable ones when var marks them, else all.
pub fn features(
    name: &str,
    ds: &Dataset,
    genes: &[String],
) -> Result<Vec<(String, Vec<f64>)>, Error> {
    dense_features(name, ds, &columns(name, ds, genes)?)
}

/// How many of the top-scoring features the browser keeps for colouring.
const SHOWN_FEATURES: usize = 24;

/// Moran's I / Geary's C in the browser: the table as squidpy's `uns`
/// frame, the most autocorrelated features to colour the plot by.
pub fn results(
    name: &str,
    ds: &Dataset,
    p: &AutocorrParams,
    params: serde_json::Value,
    progress: impl FnMut(usize, usize),
) -> Result<Results, Error> {
    let (gopts, aopts) = p.options().map_err(|e| Error::new(name, "", e))?;
    let coords = coords(name, ds)?;
    let g = graph::build(&coords, None, &gopts).map_err(|e| Error::new(name, "obsm/spatial", e))?;
    let cols = columns(name, ds, &p.genes)?;
    let features = dense_features(name, ds, &cols)?;
    // Each scored feature's place in `features` and `cols`.
    let at: std::collections::HashMap<&str, usize> = features
        .iter()
        .enumerate()
        .map(|(i, f)| (f.0.as_str(), i))
        .collect();
    let total = features.len();
    let mut progress = progress;
    let rows = super::run(&g, &features, &aopts, |d| progress(d, total))
        .map_err(|e| Error::new(name, "", e))?;
    let file = match aopts.mode {
        super::Mode::Moran => "moranI.csv",
        super::Mode::Geary => "gearyC.csv",
    };
    let shown: Vec<&super::Row> = rows
        .iter()
        .filter(|r| r.score.is_finite())
        .take(SHOWN_FEATURES)
        .collect();
    let n = coords.len();
    let mut values = vec![0f32; n * shown.len()];
    for (j, r) in shown.iter().enumerate() {
        let x = &features[at[r.name.as_str()]].1;
        for i in 0..n {
            values[i * shown.len() + j] = x[i] as f32;
        }
    }
    let stat = aopts.mode.column();
    // AnnData has no frame in uns here: the statistics go to var, one
    // column each (NaN for genes not tested), named like squidpy's frame.
    let mut out = ds.clone();
    let key = file.trim_end_matches(".csv");
    type Get = fn(&super::Row) -> f64;
    let fields: [(&str, Get); 3] = [
        ("", |r| r.score),
        ("_pval_norm", |r| r.pval_norm),
        ("_pval_norm_fdr_bh", |r| r.pval_norm_fdr_bh),
    ];
    for (suffix, get) in fields {
        let mut col = vec![f64::NAN; ds.n_vars()];
        for r in &rows {
            col[cols[at[r.name.as_str()]]] = get(r);
        }
        out.var
            .columns
            .push((format!("{key}{suffix}"), Column::Float(col)));
    }
    // Genes have no "dominant" colouring: open on the top one.
    let view = crate::share::View {
        color: shown.first().map(|r| r.name.clone()),
        ..Default::default()
    };
    Ok(Results {
        analysis: Autocorr::NAME.into(),
        params,
        view: serde_json::to_value(view).expect("view serialises"),
        names: ds.obs.index.clone(),
        xy: flat(&coords),
        layers: vec![Layer {
            name: format!("top {} features by {stat}", shown.len()),
            columns: shown.iter().map(|r| r.name.clone()).collect(),
            values,
        }],
        curves: vec![],
        matrices: vec![Matrix {
            name: format!("{stat} and p-values of the top features"),
            rows: shown.iter().map(|r| r.name.clone()).collect(),
            cols: vec![stat.into(), "pval_norm".into(), "pval_norm_fdr_bh".into()],
            values: shown
                .iter()
                .flat_map(|r| [r.score, r.pval_norm, r.pval_norm_fdr_bh])
                .collect(),
            plot: Plot::Bars,
        }],
        files: vec![
            (
                file.into(),
                super::to_csv(&rows, aopts.mode, aopts.n_perms > 0).into_bytes(),
            ),
            (
                "sp_autocorr.h5ad".into(),
                crate::io::h5ad_write::write(&out)?,
            ),
        ],
        image: None,
    })
}

impl Analysis for Autocorr {
    const NAME: &'static str = "autocorr";
    const TITLE: &'static str =
        "Spatial autocorrelation — Moran's I / Geary's C per gene (squidpy)";
    const HELP: &'static str = "squidpy's spatial_autocorr: which genes are patterned in space, with analytic (and optionally permutation) p-values.";
    const INPUTS: &'static [Input] = &[Input {
        slot: Slot::Spatial,
        label: "Spatial data",
        help: "Cells or spots with coordinates and expression.",
        demo: "demo_spatial",
        spatial: true,
    }];
    const GPU: bool = false;
    type Params = AutocorrParams;

    fn validate(p: &AutocorrParams) -> Result<(), String> {
        p.options().map(|_| ())
    }

    fn check(p: &AutocorrParams, cards: &Cards) -> Result<String, String> {
        p.options()?;
        let Some(sp) = cards.sp else {
            return Err("Open a dataset with spatial coordinates and expression first.".into());
        };
        let s = sp.summary;
        if s.spatial.is_none() {
            return Err(format!("{}: no spatial coordinates", s.source));
        }
        if s.x.is_none() || s.n_vars == 0 {
            return Err(format!("{}: no expression matrix X", s.source));
        }
        let hv = s.var.iter().any(|c| c.name == "highly_variable");
        let genes = if !p.genes.is_empty() {
            format!("{} named genes", p.genes.len())
        } else if hv {
            "the highly variable genes".to_string()
        } else {
            format!("all {} genes", s.n_vars)
        };
        Ok(format!(
            "{} of {genes} over {} cells, {} graph{}",
            if p.mode == "geary" {
                "Geary's C"
            } else {
                "Moran's I"
            },
            s.n_obs,
            p.graph,
            if p.n_perms > 0 {
                format!(", {} permutations", p.n_perms)
            } else {
                String::new()
            }
        ))
    }

    async fn run<D: Device>(
        _dev: &D,
        p: &AutocorrParams,
        data: Data,
        params: serde_json::Value,
        progress: &mut Progress<'_>,
    ) -> Result<Results, String> {
        let (name, ds) = &data.sp;
        results(name, ds, p, params, |done, total| {
            progress("features", done, total, None)
        })
        .map_err(|e| e.to_string())
    }
}
