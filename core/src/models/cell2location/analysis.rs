//! cell2location as an analysis of the registry: `tessera cell2location
//! signatures` + `map` as one run with the command line's defaults (the
//! tutorial's N = 30 cells per spot), the checks on the cards, the run.

use serde::{Deserialize, Serialize};

use super::{run, Options, Train};
use crate::analysis::checks::{self, fmt_bytes, TAB_BUDGET};
use crate::analysis::{Analysis, Cards, Data, Input, Progress, Slot};
use crate::bundle::Results;
use crate::compute::cpu::Cpu;
use crate::compute::Device;
use crate::models::regression;

pub struct Cell2location;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
// Missing fields take the defaults (`tessera run` takes partial JSON).
#[serde(default, deny_unknown_fields)]
pub struct Cell2locationParams {
    /// The reference's obs column with the cell types.
    pub labels: String,
    /// regression or average.
    pub method: String,
    /// The reference's obs column with its batches (the tutorial's
    /// `Sample`); None: one batch.
    pub batch: Option<String>,
    /// None: scvi's default, min(20000 / cells x 1000, 1000).
    pub reference_epochs: Option<usize>,
    /// filter_genes on the reference (cell_count_cutoff 15,
    /// cell_percentage_cutoff2 0.05, nonz_mean_cutoff 1.12).
    pub filter_genes: bool,
    pub n_cells_per_location: f64,
    pub detection_alpha: f64,
    pub epochs: usize,
    pub lr: f32,
    pub seed: u64,
    pub keep_mt: bool,
}

impl Default for Cell2locationParams {
    fn default() -> Self {
        Cell2locationParams {
            labels: String::new(),
            method: "regression".into(),
            batch: None,
            reference_epochs: None,
            filter_genes: true,
            n_cells_per_location: 30.0,
            detection_alpha: 20.0,
            epochs: 30_000,
            lr: 0.002,
            seed: 0,
            keep_mt: false,
        }
    }
}

impl Cell2locationParams {
    /// Both steps' options for a reference of `cells` cells, or the field
    /// that is wrong.
    pub fn options(&self, cells: usize) -> Result<(run::SignatureOptions, Options), String> {
        checks::key(&self.labels)?;
        if let Some(b) = &self.batch {
            checks::key(b)?;
        }
        let method = run::Method::parse(&self.method)
            .ok_or_else(|| format!("method '{}': expected regression or average", self.method))?;
        let positive = |v: f64| v.is_finite() && v > 0.0;
        if !positive(self.n_cells_per_location) {
            return Err(format!(
                "N_cells_per_location {}: expected a positive number",
                self.n_cells_per_location
            ));
        }
        if !positive(self.detection_alpha) {
            return Err(format!(
                "detection_alpha {}: expected a positive number",
                self.detection_alpha
            ));
        }
        for (what, n) in [
            ("epochs", Some(self.epochs)),
            ("reference epochs", self.reference_epochs),
        ] {
            if let Some(n) = n {
                if !(1..=100_000).contains(&n) {
                    return Err(format!("{what} {n}: expected 1 to 100000"));
                }
            }
        }
        // A link and the page carry numbers as JavaScript does: exact to 2^53.
        if self.seed >= 1 << 53 {
            return Err(format!("seed {}: expected 0 to 2^53 - 1", self.seed));
        }
        if !(self.lr > 0.0 && self.lr <= 1.0) {
            return Err(format!("learning rate {}: expected (0, 1]", self.lr));
        }
        let sig = run::SignatureOptions {
            labels: self.labels.clone(),
            method,
            batch: self.batch.clone(),
            covariates: vec![],
            filter: self
                .filter_genes
                .then(crate::prep::filter::FilterGenes::default),
            train: regression::nb::Train {
                max_epochs: self
                    .reference_epochs
                    .unwrap_or_else(|| regression::default_epochs(cells)),
                seed: self.seed,
                ..Default::default()
            },
        };
        let mut map = Options::new(self.n_cells_per_location, self.detection_alpha);
        map.train = Train {
            max_epochs: self.epochs,
            lr: self.lr,
            seed: self.seed,
            block_rows: None,
        };
        Ok((sig, map))
    }
}

impl Analysis for Cell2location {
    const NAME: &'static str = "cell2location";
    const TITLE: &'static str = "cell2location — cell-type abundance in each spot";
    const HELP: &'static str = "cell2location (Kleshchevnikov et al. 2022): reference signatures (NB regression), then a Bayesian model of each spot's counts as a sum of cell types.";
    const INPUTS: &'static [Input] = &[
        Input {
            slot: Slot::Spatial,
            label: "Spatial data",
            help: "Visium spots with raw counts.",
            demo: "demo_spatial",
            spatial: true,
        },
        Input {
            slot: Slot::Reference,
            label: "Single-cell reference",
            help: "Raw counts, labelled by cell type (the signatures are learnt from it).",
            demo: "demo_reference",
            spatial: false,
        },
    ];
    const GPU: bool = true;
    const RESUMES: bool = true;
    type Params = Cell2locationParams;

    fn validate(p: &Cell2locationParams) -> Result<(), String> {
        checks::text("the method", &p.method)?;
        p.options(1).map(|_| ())
    }

    /// Both inputs' raw counts, the label, and the run's size.
    fn check(p: &Cell2locationParams, cards: &Cards) -> Result<String, String> {
        let (sc, sp) = checks::reference_pair(cards)?;
        let (s_sc, s_sp) = (sc.summary, sp.summary);
        let (_, map) = p.options(s_sc.n_obs)?;
        for s in [s_sc, s_sp] {
            match &s.x {
                None => return Err(format!("{}: no count matrix X", s.source)),
                Some(x) if !x.raw_counts => {
                    return Err(format!(
                        "{}: X is not raw counts (cell2location models counts: open the file with the raw, integer counts)",
                        s.source
                    ))
                }
                _ => {}
            }
        }
        let types = checks::categories(&sc, &p.labels)?;
        let genes = s_sc.n_vars.min(s_sp.n_vars) as u64;
        let (spots, f) = (s_sp.n_obs as u64, types as u64);
        // A dense X is held and written dense, whatever its zeros.
        let ref_stored = s_sc.x.as_ref().map_or(0, |x| {
            if x.kind == "dense" {
                (s_sc.n_obs * s_sc.n_vars) as u64
            } else {
                x.nnz
            }
        });
        let batches = match &p.batch {
            Some(b) => checks::categories(&sc, b)? as u64,
            None => 1,
        };
        // f32 spots x genes arrays (counts, rates, gradients) and per-type
        // tables, never spots x types x genes; the reference's non-zeros
        // three times, about 24 bytes each (its CSR, the HDF5 builder's
        // copy and the encoded sc.h5ad, all there while the file is
        // finished); and the regression's eleven groups x genes scratch
        // arrays. Its minibatches are on the GPU, or on the CPU device one at
        // a time.
        let groups = (f * batches).min(2500);
        let need = 4 * (8 * spots * genes + 8 * f * genes + 16 * spots * f)
            + 24 * ref_stored
            + 44 * groups * genes;
        if need > TAB_BUDGET {
            return Err(format!(
                "This run needs about {} of memory and a browser tab gets about {}. Run it with the command line: tessera cell2location signatures --ref {} --labels {}{} --out c2l/ && tessera cell2location map --sp {} --signatures c2l/inf_aver.csv --n-cells-per-location {} --detection-alpha {} --out c2l/",
                fmt_bytes(need),
                fmt_bytes(TAB_BUDGET),
                s_sc.source,
                p.labels,
                p.batch.as_ref().map_or(String::new(), |b| format!(" --batch {b}")),
                s_sp.source,
                p.n_cells_per_location,
                p.detection_alpha
            ));
        }
        Ok(format!(
            "{types} cell types from {} reference cells, mapped onto {spots} spots over at most {genes} shared genes: {} steps, about {} of GPU memory",
            s_sc.n_obs,
            map.train.max_epochs,
            fmt_bytes(need)
        ))
    }

    async fn run<D: Device>(
        dev: &D,
        p: &Cell2locationParams,
        data: Data,
        params: serde_json::Value,
        progress: &mut Progress<'_>,
    ) -> Result<Results, String> {
        let Data {
            sp: (sp_name, sp),
            sc,
            mut kept,
            ..
        } = data;
        let (sc_name, sc) = Data::take(sc, "a single-cell reference")?;
        let (sig_opts, map_opts) = p.options(sc.n_obs())?;
        let mut epochs = |d, t, l| progress("reference epochs", d, t, Some(l));
        let sig = run::signatures(dev, &sc_name, sc, &sig_opts, &mut epochs, &mut kept)
            .await
            .map_err(|e| e.to_string())?;
        progress("mapping", 0, 1, None);
        let mut steps = |d, t, l| progress("steps", d, t, Some(l));
        let (keep_mt, sig_name) = (p.keep_mt, "inf_aver.csv");
        let signatures = &sig.signatures;
        // After a GPU lost in the regression, the mapping is the CPU's.
        let m = match dev.lost() {
            None => {
                run::map_spots(
                    dev, &sp_name, sp, sig_name, signatures, &map_opts, keep_mt, false, &mut steps,
                    &mut kept,
                )
                .await
            }
            Some(_) => {
                run::map_spots(
                    &Cpu, &sp_name, sp, sig_name, signatures, &map_opts, keep_mt, false,
                    &mut steps, &mut kept,
                )
                .await
            }
        }
        .map_err(|e| e.to_string())?;
        run::results(&sig, &m, params).map_err(|e| e.to_string())
    }
}
