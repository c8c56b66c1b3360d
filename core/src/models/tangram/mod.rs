//! Tangram (Biancalani et al., Nat Methods 2021; `broadinstitute/Tangram`):
//! a probabilistic map of single cells (or cell clusters) onto spatial spots,
//! learned by maximising the cosine similarity between the spatial data and
//! the mapped single-cell expression, gene by gene. Equations: [`fit`].
//!
//! Names and defaults follow `tg.map_cells_to_space`: mode `cells`, lr 0.1,
//! 1000 epochs, λ_g1 = 1, λ_d forced to 1 whenever a density prior is set
//! (default `rna_count_based`), λ_g2 = λ_r = 0, λ_count = λ_f_reg = 1.
//!
//! Reference behaviours fixed here rather than copied:
//! - seed 0 seeds the initial logits (the reference ignores falsy seeds);
//! - constrained mode draws M and F from the seeded stream (the reference
//!   re-draws M unseeded, so it is not reproducible);
//! - `tangram_ct_pred` in constrained mode keeps only cells whose filter
//!   value passes the threshold (the reference computes that filter and
//!   then ignores it);
//! - the training score in constrained mode uses the filtered profiles
//!   that were fitted;
//! - the user's data is never modified (the reference lower-cases gene
//!   names in place) and dense single-cell X works (reference bug #43).

pub mod analysis;
pub mod export;
pub mod fit;
pub mod prep;
pub mod project;

use crate::compute::Device;
use crate::io::Error;
use crate::models::numpy_rng::LegacyNormal;

pub use fit::{Fit, History, Hyper};
pub use prep::{Named, Prepared};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Cells,
    Clusters,
    Constrained,
}

impl Mode {
    pub fn parse(s: &str) -> Option<Mode> {
        match s {
            "cells" => Some(Mode::Cells),
            "clusters" => Some(Mode::Clusters),
            "constrained" => Some(Mode::Constrained),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Mode::Cells => "cells",
            Mode::Clusters => "clusters",
            Mode::Constrained => "constrained",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DensityPrior {
    RnaCountBased,
    Uniform,
    None,
}

impl DensityPrior {
    pub fn parse(s: &str) -> Option<DensityPrior> {
        match s {
            "rna_count_based" => Some(DensityPrior::RnaCountBased),
            "uniform" => Some(DensityPrior::Uniform),
            "none" => Some(DensityPrior::None),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            DensityPrior::RnaCountBased => "rna_count_based",
            DensityPrior::Uniform => "uniform",
            DensityPrior::None => "none",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Options {
    pub mode: Mode,
    /// obs column of the single-cell data that defines clusters.
    pub cluster_label: Option<String>,
    /// Training genes (e.g. markers); None: every shared gene.
    pub genes: Option<Vec<String>>,
    pub density_prior: DensityPrior,
    /// Clusters mode: sum (true) or mean (false) of each cluster's cells.
    pub scale: bool,
    pub hyper: Hyper,
    /// Constrained mode: cells to keep (default: the number of spots).
    pub target_count: Option<f64>,
    /// None draws a fresh seed (reported in the result).
    pub seed: Option<u32>,
    /// obs column projected onto space as `tangram_ct_pred` (default: the
    /// cluster label, else `cell_type` when the single-cell data has one).
    pub annotation: Option<String>,
    /// Constrained mode: cells whose filter value is at most this are left
    /// out of `tangram_ct_pred`.
    pub threshold: f32,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            mode: Mode::Cells,
            cluster_label: None,
            genes: None,
            density_prior: DensityPrior::RnaCountBased,
            scale: true,
            hyper: Hyper::default(),
            target_count: None,
            seed: None,
            annotation: None,
            threshold: 0.5,
        }
    }
}

/// One row of `train_genes_df`.
#[derive(Debug, Clone, PartialEq)]
pub struct GeneScore {
    pub gene: String,
    pub train_score: f64,
    pub sparsity_sc: f64,
    pub sparsity_sp: f64,
    pub sparsity_diff: f64,
}

/// A fitted map and everything derived from it.
pub struct Mapping {
    pub mode: Mode,
    /// Row names: single cells or cluster names.
    pub rows: Vec<String>,
    pub spots: Vec<String>,
    /// rows x spots, row-major; each row sums to 1.
    pub matrix: Vec<f32>,
    /// Constrained mode: sigmoid(F) per cell (`obs['F_out']`).
    pub f_out: Option<Vec<f32>>,
    /// Cluster mode: each single cell's row of the map (None if unlabelled).
    pub cell_cluster: Option<Vec<Option<usize>>>,
    /// Training genes (single-cell names), in the order the fit used.
    pub training_genes: Vec<String>,
    /// Sorted by train_score, best first.
    pub train_genes_df: Vec<GeneScore>,
    pub history: History,
    /// `obsm['tangram_ct_pred']`: annotation names and spots x names values.
    pub ct_pred: Option<(Vec<String>, Vec<f32>)>,
    pub annotation: Option<String>,
    pub seed: u32,
    /// The hyper-parameters actually used (λ_d after forcing).
    pub hyper: Hyper,
    pub density_prior: DensityPrior,
    pub prep: Prepared,
}

/// A fresh seed when the user gives none (time-based; reported back).
fn fresh_seed() -> u32 {
    #[cfg(target_arch = "wasm32")]
    {
        (js_sys::Math::random() * 4_294_967_296.0) as u32
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.subsec_nanos() ^ d.as_secs() as u32)
    }
}

/// Checks the options against the data and builds the optimiser's problem
/// inputs: (S, row names, per-row source weights, cluster of each cell).
type Rows = (
    Vec<f32>,
    Vec<String>,
    Option<Vec<f64>>,
    Option<Vec<Option<usize>>>,
);

fn rows_for_mode(sc: Named, prep: &Prepared, opts: &Options) -> Result<Rows, Error> {
    match opts.mode {
        Mode::Clusters => {
            let label = opts.cluster_label.as_deref().ok_or_else(|| {
                Error::new(
                    sc.name,
                    "obs",
                    "clusters mode needs a cluster label (--cluster-label COLUMN)",
                )
            })?;
            let labels = prep::labels(sc, label)?;
            let cl = prep::clusters(&labels, prep::categories(sc, label).as_deref());
            if cl.names.is_empty() {
                return Err(Error::new(
                    sc.name,
                    &format!("obs['{label}']"),
                    "has no labels (every value is missing)",
                ));
            }
            let s = prep::aggregate(&cl, &prep.s, prep.genes.len(), opts.scale);
            Ok((s, cl.names, Some(cl.density), Some(cl.of_cell)))
        }
        _ => Ok((prep.s.clone(), sc.data.obs.index.clone(), None, None)),
    }
}

/// `tg.map_cells_to_space` followed by `tg.project_cell_annotations`.
pub async fn map_cells_to_space<D: Device>(
    dev: &D,
    sc: Named<'_>,
    sp: Named<'_>,
    opts: &Options,
    progress: &mut dyn FnMut(usize, usize, f64),
) -> Result<Mapping, Error> {
    let mut hp = opts.hyper;
    if hp.lambda_g1 == 0.0 {
        return Err(Error::new(sc.name, "", "lambda_g1 cannot be 0"));
    }
    if !(hp.learning_rate > 0.0 && hp.learning_rate.is_finite()) {
        return Err(Error::new(
            sc.name,
            "",
            "the learning rate must be positive",
        ));
    }
    let prep = prep::prepare(sc, sp, opts.genes.as_deref())?;
    let (s, rows, source, cell_cluster) = rows_for_mode(sc, &prep, opts)?;
    let k = prep.genes.len();
    let n = rows.len();
    let ns = prep.n_spots;
    // Density prior; clusters and constrained fall back to uniform.
    let mut prior = opts.density_prior;
    if prior == DensityPrior::None && opts.mode != Mode::Cells {
        prior = DensityPrior::Uniform;
    }
    let density: Option<Vec<f64>> = match prior {
        DensityPrior::RnaCountBased => Some(prep.rna_count_based.clone()),
        DensityPrior::Uniform => Some(vec![1.0 / ns as f64; ns]),
        DensityPrior::None => None,
    };
    if density.is_some() && hp.lambda_d == 0.0 {
        hp.lambda_d = 1.0;
    }
    if density.is_none() && hp.lambda_d > 0.0 {
        return Err(Error::new(
            sp.name,
            "",
            "lambda_d is set but the density prior is none; choose --density rna_count_based or uniform",
        ));
    }
    let target_count = match opts.mode {
        Mode::Constrained => {
            let t = opts.target_count.unwrap_or(ns as f64);
            if !(t > 0.0 && t <= n as f64) {
                return Err(Error::new(
                    sc.name,
                    "",
                    format!(
                        "target_count must be between 1 and the number of cells ({n}), got {t}"
                    ),
                ));
            }
            Some(t)
        }
        _ => None,
    };
    let need = fit::bytes_needed(n, ns, k, hp.lambda_r != 0.0, target_count.is_some());
    if let Some(budget) = dev.memory_budget() {
        if need > budget {
            let gib = |b: u64| b as f64 / (1u64 << 30) as f64;
            let hint = if opts.mode == Mode::Clusters {
                "use fewer spots or training genes".to_string()
            } else {
                "use --mode clusters (one row per cell type) or subsample the cells".to_string()
            };
            return Err(Error::new(
                sc.name,
                "",
                format!(
                    "mapping {n} {} onto {ns} spots needs about {:.1} GiB on {}, which has about {:.1} GiB free; {hint}",
                    if opts.mode == Mode::Clusters { "clusters" } else { "cells" },
                    gib(need),
                    dev.name(),
                    gib(budget)
                ),
            ));
        }
    }
    if ns * k > dev.max_buffer_len() {
        return Err(Error::new(
            sp.name,
            "",
            format!(
                "{ns} spots x {k} genes exceeds the largest buffer {} can hold; use fewer training genes (--genes)",
                dev.name()
            ),
        ));
    }
    let seed = opts.seed.unwrap_or_else(fresh_seed);
    let mut rng = LegacyNormal::new(seed);
    let init_m = rng.normals_f32(n * ns);
    let init_f = target_count.map(|_| rng.normals_f32(n));
    let problem = fit::Problem {
        s: &s,
        g: &prep.g,
        rows: n,
        spots: ns,
        genes: k,
        density: density.as_deref(),
        source: source.as_deref(),
        target_count,
        init_m,
        init_f,
        block_rows: None,
        read_gradient: false,
    };
    let out = fit::fit(dev, &problem, &hp, progress).await;

    let sparsity_rows: Vec<f64> = if opts.mode == Mode::Clusters {
        (0..k)
            .map(|j| 1.0 - (0..n).filter(|&i| s[i * k + j] != 0.0).count() as f64 / n as f64)
            .collect()
    } else {
        prep.sparsity_sc.clone()
    };
    let mut train_genes_df: Vec<GeneScore> = (0..k)
        .map(|j| GeneScore {
            gene: prep.genes[j].clone(),
            train_score: out.train_scores[j],
            sparsity_sc: sparsity_rows[j],
            sparsity_sp: prep.sparsity_sp[j],
            sparsity_diff: prep.sparsity_sp[j] - sparsity_rows[j],
        })
        .collect();
    train_genes_df.sort_by(|a, b| b.train_score.total_cmp(&a.train_score));

    // Annotation to transfer: explicit, else the cluster label, else cell_type.
    let annotation = opts.annotation.clone().or_else(|| {
        opts.cluster_label.clone().or_else(|| {
            sc.data
                .obs
                .column("cell_type")
                .map(|_| "cell_type".to_string())
        })
    });
    let ct_pred = match &annotation {
        Some(col) => Some(project::cell_annotations(
            &out.mapping,
            n,
            ns,
            &project::row_labels(sc, col, opts.mode, &rows)?,
            out.f_out.as_deref().map(|f| (f, opts.threshold)),
        )),
        None => None,
    };
    Ok(Mapping {
        mode: opts.mode,
        rows,
        spots: sp.data.obs.index.clone(),
        matrix: out.mapping,
        f_out: out.f_out,
        cell_cluster,
        training_genes: prep.genes.clone(),
        train_genes_df,
        history: out.history,
        ct_pred,
        annotation,
        seed,
        hyper: hp,
        density_prior: prior,
        prep,
    })
}
