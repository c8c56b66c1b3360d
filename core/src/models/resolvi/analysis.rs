//! RESOLVI as an analysis of the registry: `tessera resolvi`'s options as
//! its flags spell them, the checks on the card (a run too large for a tab
//! is refused with the size it needs and the command that runs it
//! natively), and the run.

use serde::{Deserialize, Serialize};

use super::fit::{self, Options};
use super::model::{Config, Model};
use super::prep::N_NEIGHBORS;
use crate::analysis::checks::{self, fmt_bytes, TAB_BUDGET};
use crate::analysis::{Analysis, Cards, Data, Input, Progress, Slot};
use crate::bundle::Results;
use crate::compute::cpu::Cpu;
use crate::compute::Device;

pub struct Resolvi;

/// `tessera resolvi`'s options, as its flags spell them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ResolviParams {
    /// obs columns; empty: none.
    pub batch_key: String,
    pub labels: String,
    pub unlabeled_value: String,
    /// Cells with fewer counts are left out (0: every cell).
    pub min_counts: f64,
    pub epochs: usize,
    pub latent: usize,
    pub batch_size: usize,
    pub seed: u64,
    /// Differential expression after the fit: an obs column, its group,
    /// and the group to compare with (empty: every other cell).
    pub de_groupby: String,
    pub de_group1: String,
    pub de_group2: String,
}

impl Default for ResolviParams {
    fn default() -> Self {
        let c = Config::default();
        ResolviParams {
            batch_key: String::new(),
            labels: String::new(),
            unlabeled_value: "unknown".into(),
            min_counts: 0.0,
            epochs: c.epochs,
            latent: c.n_latent,
            batch_size: c.batch_size,
            seed: c.seed,
            de_groupby: String::new(),
            de_group1: String::new(),
            de_group2: String::new(),
        }
    }
}

impl ResolviParams {
    /// The run's options, or the field that is wrong (named by its flag).
    pub fn options(&self) -> Result<Options, String> {
        if !(1..=10_000).contains(&self.epochs) {
            return Err(format!("--epochs {}: expected 1 to 10000", self.epochs));
        }
        if !(1..=100).contains(&self.latent) {
            return Err(format!("--latent {}: expected 1 to 100", self.latent));
        }
        if !(1..=65_536).contains(&self.batch_size) {
            return Err(format!(
                "--batch-size {}: expected 1 to 65536",
                self.batch_size
            ));
        }
        if !(self.min_counts.is_finite() && (0.0..=1e9).contains(&self.min_counts)) {
            return Err(format!(
                "--min-counts {}: expected a count from 0",
                self.min_counts
            ));
        }
        let opt = |s: &str| (!s.is_empty()).then(|| s.to_string());
        Ok(Options {
            batch_key: opt(&self.batch_key),
            labels_key: opt(&self.labels),
            unlabeled: self.unlabeled_value.clone(),
            min_counts: self.min_counts,
            config: Config {
                epochs: self.epochs,
                n_latent: self.latent,
                batch_size: self.batch_size,
                seed: self.seed,
                ..Config::default()
            },
        })
    }

    /// The same run on the command line.
    pub fn command(&self, file: &str) -> String {
        let mut c = format!("tessera resolvi --data {file}");
        if !self.batch_key.is_empty() {
            c.push_str(&format!(" --batch-key {}", self.batch_key));
        }
        if !self.labels.is_empty() {
            c.push_str(&format!(
                " --labels {} --unlabeled-value {}",
                self.labels, self.unlabeled_value
            ));
        }
        if self.min_counts > 0.0 {
            c.push_str(&format!(" --min-counts {}", self.min_counts));
        }
        c.push_str(&format!(
            " --epochs {} --latent {} --batch-size {} --seed {} --out resolvi/",
            self.epochs, self.latent, self.batch_size, self.seed
        ));
        c
    }
}

/// Bytes a run on n cells × g genes with `nnz` stored counts holds: the
/// counts, the three dense outputs and their copies in the AnnData written
/// (and its bytes) on the host, the neighbour logits with
/// their gradient and moments, and one step's scratch (the neighbours'
/// decoded expression, its spread gradient and products, s·b·k × g each;
/// the networks' activations).
pub fn memory_needed(c: &Config, n: u64, g: u64, nnz: u64) -> u64 {
    let (s, b, k) = (
        c.particles as u64,
        c.batch_size.min(n as usize) as u64,
        N_NEIGHBORS as u64,
    );
    let hidden = (c.n_hidden_encoder + c.n_hidden) as u64;
    let host = 8 * nnz + 4 * 9 * n * g + 4 * n * (c.n_latent as u64 + 3);
    host + 4 * (4 * n * k + 8 * s * b * k * g + 6 * s * b * k * hidden + 12 * b * g * s)
}

impl Analysis for Resolvi {
    const NAME: &'static str = "resolvi";
    const TITLE: &'static str = "Spill-over correction — RESOLVI";
    const HELP: &'static str = "scvi-tools' RESOLVI for imaging data (Xenium, MERSCOPE, CosMx): each cell's counts as its own signal, diffusion from its neighbours and background; corrected expression, a latent space, the three fractions per cell and, with labels, predicted cell types.";
    const INPUTS: &'static [Input] = &[Input {
        slot: Slot::Spatial,
        label: "Single-cell spatial data",
        help: "Segmented cells with coordinates and raw counts (X or layers['counts']).",
        demo: "demo_spatial",
        spatial: true,
    }];
    const GPU: bool = true;
    const RESUMES: bool = true;
    type Params = ResolviParams;

    fn validate(p: &ResolviParams) -> Result<(), String> {
        checks::text("the batch column", &p.batch_key)?;
        checks::text("the label column", &p.labels)?;
        checks::text("the unlabelled value", &p.unlabeled_value)?;
        for t in [&p.de_groupby, &p.de_group1, &p.de_group2] {
            checks::text("a differential-expression group", t)?;
        }
        if !p.de_groupby.is_empty() && p.de_group1.is_empty() {
            return Err("differential expression: name group 1 of the column".into());
        }
        p.options().map(|_| ())
    }

    fn check(p: &ResolviParams, cards: &Cards) -> Result<String, String> {
        let o = p.options()?;
        let Some(sp) = cards.sp else {
            return Err(
                "Open a dataset of segmented cells with coordinates and counts first.".into(),
            );
        };
        let s = sp.summary;
        if s.spatial.is_none() {
            return Err(format!("{}: no spatial coordinates", s.source));
        }
        let Some(x) = &s.x else {
            return Err(format!("{}: no expression matrix X", s.source));
        };
        if !x.raw_counts && !s.layers.iter().any(|l| l == "counts") {
            return Err(format!(
                "{}: X is not raw counts (non-negative whole numbers) and there is no layers['counts']",
                s.source
            ));
        }
        if s.n_obs <= N_NEIGHBORS {
            return Err(format!(
                "{}: {} cells; RESOLVI needs more than {N_NEIGHBORS}",
                s.source, s.n_obs
            ));
        }
        for key in [&o.batch_key, &o.labels_key].into_iter().flatten() {
            checks::categories(&sp, key)?;
        }
        if !p.de_groupby.is_empty() && p.de_groupby != fit::LEIDEN_KEY {
            checks::categories(&sp, &p.de_groupby)?;
        }
        if p.de_groupby == fit::LEIDEN_KEY && s.n_obs > fit::EMBED_MAX {
            return Err(format!(
                "the latent space is clustered up to {} cells; this data has {}: test groups of an obs column instead",
                fit::EMBED_MAX,
                s.n_obs
            ));
        }
        let need = memory_needed(&o.config, s.n_obs as u64, s.n_vars as u64, x.nnz);
        if need > TAB_BUDGET {
            return Err(format!(
                "This run needs about {} of memory and a browser tab gets about {}. Run it with the command line: {}",
                fmt_bytes(need),
                fmt_bytes(TAB_BUDGET),
                p.command(&s.source)
            ));
        }
        let mode = if o.labels_key.is_some() {
            "semi-supervised"
        } else {
            "unsupervised"
        };
        Ok(format!(
            "RESOLVI ({mode}) on {} cells × {} genes: {} epochs of {} cells, latent {}, about {}",
            s.n_obs,
            s.n_vars,
            o.config.epochs,
            o.config.batch_size,
            o.config.n_latent,
            fmt_bytes(need)
        ))
    }

    async fn run<D: Device>(
        dev: &D,
        p: &ResolviParams,
        data: Data,
        params: serde_json::Value,
        progress: &mut Progress<'_>,
    ) -> Result<Results, String> {
        let Data {
            sp: (name, ds),
            mut kept,
            ..
        } = data;
        let (name, ds) = (&name, &ds);
        let o = p.options()?;
        let ds = fit::cells(name, ds, &o).map_err(|e| e.to_string())?;
        let ds = ds.as_ref();
        let g2 = (!p.de_group2.is_empty()).then_some(p.de_group2.as_str());
        let input_groups = !p.de_groupby.is_empty() && p.de_groupby != fit::LEIDEN_KEY;
        if input_groups {
            // Named before the fit, not after it.
            fit::groups(name, ds, &p.de_groupby, &p.de_group1, g2).map_err(|e| e.to_string())?;
        }
        let mut epochs = |e, max, loss| {
            progress("epochs", e, max, Some(loss));
            true
        };
        let (fitted, saved) = fit::fit_kept(dev, name, ds, &o, &mut epochs, &mut kept)
            .await
            .map_err(|e| e.to_string())?;
        let de = if p.de_groupby.is_empty() {
            None
        } else {
            progress("differential expression", 0, 1, None);
            let with = fit::annotated(&fitted, ds, &[]).map_err(|e| e.to_string())?;
            let (a, b) = fit::groups(name, &with, &p.de_groupby, &p.de_group1, g2)
                .map_err(|e| e.to_string())?;
            let prepared = fit::prepare(name, ds, &o).map_err(|e| e.to_string())?;
            let (data, change) = (prepared.data(), Default::default());
            let groups = (&a[..], &b[..]);
            // After a lost GPU (or during the test) the rest is the CPU's.
            let mut got = None;
            if dev.lost().is_none() {
                let model = Model::load(dev, &saved, &data)?;
                let d =
                    fit::differential(dev, &model, &prepared, &fitted.genes, groups, &change).await;
                got = dev.lost().is_none().then_some(d);
            }
            Some(match got {
                Some(d) => d,
                None => {
                    let model = Model::load(&Cpu, &saved, &data)?;
                    fit::differential(&Cpu, &model, &prepared, &fitted.genes, groups, &change).await
                }
            })
        };
        fit::results(&fitted, ds, params, None, de.as_ref()).map_err(|e| e.to_string())
    }
}
