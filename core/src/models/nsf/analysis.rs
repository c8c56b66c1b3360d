//! The NSF family as an analysis of the registry: `tessera nsf`'s options
//! as its flags spell them, the checks on the card (a run too large for a
//! tab is refused with the command that runs it natively), and the run.

use serde::{Deserialize, Serialize};

use super::model::Likelihood;
use super::prep::SizeFactors;
use super::run::{self, Model, Options};
use crate::analysis::checks::{self, fmt_bytes, TAB_BUDGET};
use crate::analysis::{Analysis, Cards, Data, Input, Progress, Slot};
use crate::bundle::Results;
use crate::compute::{Device, GpKernel};

pub struct Nsf;

/// `tessera nsf`'s options, as its flags spell them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
// Missing fields take the defaults (`tessera run` takes partial JSON).
#[serde(default, deny_unknown_fields)]
pub struct NsfParams {
    pub model: String,
    pub factors: usize,
    /// NSFH's spatial factors; None: ⌈L/2⌉.
    pub spatial: Option<usize>,
    pub likelihood: String,
    pub kernel: String,
    pub inducing: usize,
    pub genes: usize,
    pub size_factors: String,
    pub epochs: usize,
    pub seed: u32,
    pub validation: f64,
    pub flip_y: bool,
}

impl Default for NsfParams {
    fn default() -> Self {
        let o = Options::default();
        NsfParams {
            model: "nsf".into(),
            factors: o.factors,
            spatial: None,
            likelihood: "poisson".into(),
            kernel: "matern32".into(),
            inducing: o.inducing,
            genes: o.genes,
            size_factors: "constant".into(),
            epochs: o.epochs,
            seed: 0,
            validation: o.validation_pct,
            flip_y: true,
        }
    }
}

fn pick<T: Copy>(flag: &str, v: &str, all: &[(&str, T)]) -> Result<T, String> {
    all.iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(v))
        .map(|&(_, t)| t)
        .ok_or_else(|| {
            let names: Vec<&str> = all.iter().map(|a| a.0).collect();
            format!(
                "{flag}: unknown value {v:?}: expected one of {}",
                names.join(", ")
            )
        })
}

impl NsfParams {
    /// The fit's options, or the field that is wrong (named by its flag).
    pub fn options(&self) -> Result<Options, String> {
        let model = pick(
            "--model",
            &self.model,
            &[
                ("nsf", Model::Nsf),
                ("nsfh", Model::Nsfh),
                ("pnmf", Model::Pnmf),
                ("rsf", Model::Rsf),
            ],
        )?;
        let likelihood = pick(
            "--likelihood",
            &self.likelihood,
            &[
                ("poisson", Likelihood::Poisson),
                ("nb", Likelihood::Nb),
                ("gaussian", Likelihood::Gaussian),
            ],
        )?;
        let kernel = pick(
            "--kernel",
            &self.kernel,
            &[("matern32", GpKernel::Matern32), ("rbf", GpKernel::Rbf)],
        )?;
        let size_factors = pick(
            "--size-factors",
            &self.size_factors,
            &[
                ("constant", SizeFactors::Constant),
                ("mean", SizeFactors::Mean),
                ("scanpy", SizeFactors::Scanpy),
            ],
        )?;
        if !(1..=100).contains(&self.factors) {
            return Err(format!("--factors {}: expected 1 to 100", self.factors));
        }
        if let Some(t) = self.spatial {
            if model != Model::Nsfh {
                return Err("--spatial is NSFH's: use --model nsfh".into());
            }
            if !(1..self.factors).contains(&t) {
                return Err(format!(
                    "--spatial {t}: expected 1 to {} (fewer than --factors)",
                    self.factors - 1
                ));
            }
        }
        if model == Model::Nsfh && self.factors < 2 {
            return Err("--factors: NSFH needs at least 2 (spatial and nonspatial)".into());
        }
        if !(1..=20_000).contains(&self.inducing) {
            return Err(format!("--inducing {}: expected 1 to 20000", self.inducing));
        }
        if !(1..=100_000).contains(&self.genes) {
            return Err(format!("--genes {}: expected 1 to 100000", self.genes));
        }
        if !(1..=1_000_000).contains(&self.epochs) {
            return Err(format!("--epochs {}: expected 1 to 1000000", self.epochs));
        }
        if !(self.validation.is_finite() && (0.0..=50.0).contains(&self.validation)) {
            return Err(format!(
                "--validation {}: expected 0 to 50 (percent)",
                self.validation
            ));
        }
        Ok(Options {
            model,
            factors: self.factors,
            spatial: self.spatial,
            likelihood,
            kernel,
            inducing: self.inducing,
            genes: self.genes,
            size_factors,
            epochs: self.epochs,
            seed: self.seed as u64,
            validation_pct: self.validation,
            flip_y: self.flip_y,
            ..Options::default()
        })
    }

    /// The same run on the command line.
    pub fn command(&self, file: &str) -> String {
        let mut c = format!(
            "tessera nsf --data {file} --model {} --factors {}",
            self.model, self.factors
        );
        if let Some(t) = self.spatial {
            c.push_str(&format!(" --spatial {t}"));
        }
        c.push_str(&format!(
            " --likelihood {} --kernel {} --inducing {} --genes {} --size-factors {} --epochs {} --seed {} --out nsf/",
            self.likelihood, self.kernel, self.inducing, self.genes, self.size_factors, self.epochs, self.seed
        ));
        if self.validation != NsfParams::default().validation {
            c.push_str(&format!(" --validation {}", self.validation));
        }
        if !self.flip_y {
            c.push_str(" --no-flip-y");
        }
        c
    }
}

/// Bytes a fit of n observations × j genes holds (f32 device buffers):
/// per spatial factor the M×M matrices (Ω with its gradient and moments,
/// K_uu's factor and inverse and the one being made, Ω products, scratch,
/// and Ω with its moments in each of 4 checkpoints) and the N×M
/// ones (αᵀ, αᵀΩ, scratch, and the three of the final prediction); per
/// draw the N×J counts, rates and gradients (and NB's θ gradient, the
/// scratch of RSF and of the Gaussian); the dense counts on the host (and
/// the Gaussian's normalised copy).
pub fn memory_needed(o: &Options, n: u64, j: u64) -> u64 {
    let t = o.spatial_factors() as u64;
    let l = o.factors as u64;
    let m = (o.inducing as u64).min(n);
    let s = o.draws as u64;
    let scratch = o.model == Model::Rsf || o.likelihood == Likelihood::Gaussian;
    let nb = 4 + u64::from(o.likelihood == Likelihood::Nb) + u64::from(scratch);
    let host = 2 + u64::from(o.likelihood == Likelihood::Gaussian);
    4 * ((13 + 12) * t * m * m + 8 * t * n * m + nb * s * n * j + host * n * j + 8 * s * n * l)
}

impl Analysis for Nsf {
    const NAME: &'static str = "nsf";
    const TITLE: &'static str = "Nonnegative spatial factorization — NSF, NSFH, PNMF, RSF";
    const HELP: &'static str = "Townes & Engelhardt's interpretable, nonnegative factors of counts: spatially smooth (NSF), spatial plus nonspatial (NSFH, with each gene's spatial importance), nonspatial (PNMF), or real-valued spatial factors (RSF).";
    const INPUTS: &'static [Input] = &[Input {
        slot: Slot::Spatial,
        label: "Spatial data",
        help: "Spots or cells with coordinates and raw counts (X or layers['counts']).",
        demo: "demo_spatial",
        spatial: true,
    }];
    const GPU: bool = true;
    const RESUMES: bool = true;
    type Params = NsfParams;

    fn validate(p: &NsfParams) -> Result<(), String> {
        for t in [&p.model, &p.likelihood, &p.kernel, &p.size_factors] {
            checks::text("an option", t)?;
        }
        p.options().map(|_| ())
    }

    fn check(p: &NsfParams, cards: &Cards) -> Result<String, String> {
        let o = p.options()?;
        let Some(sp) = cards.sp else {
            return Err("Open a dataset with spatial coordinates and counts first.".into());
        };
        let s = sp.summary;
        if o.spatial_factors() > 0 && s.spatial.is_none() {
            return Err(format!(
                "{}: no spatial coordinates (PNMF runs without them)",
                s.source
            ));
        }
        if s.x.is_none() || s.n_vars == 0 {
            return Err(format!("{}: no expression matrix X", s.source));
        }
        let genes = s.n_vars.min(o.genes);
        if o.factors > genes {
            return Err(format!(
                "{} factors for {genes} genes: use fewer factors than genes",
                o.factors
            ));
        }
        if o.spatial_factors() > 0 && o.inducing > s.n_obs {
            return Err(format!(
                "{} inducing points for {} observations: use at most one per observation",
                o.inducing, s.n_obs
            ));
        }
        let need = memory_needed(&o, s.n_obs as u64, genes as u64);
        if need > TAB_BUDGET {
            return Err(format!(
                "This run needs about {} of memory and a browser tab gets about {}. Run it with the command line: {}",
                fmt_bytes(need),
                fmt_bytes(TAB_BUDGET),
                p.command(&s.source)
            ));
        }
        let what = match o.model {
            Model::Nsf => format!(
                "{} spatial factors, {} inducing points",
                o.factors,
                o.inducing.min(s.n_obs)
            ),
            Model::Nsfh => format!(
                "{} spatial + {} nonspatial factors, {} inducing points",
                o.spatial_factors(),
                o.factors - o.spatial_factors(),
                o.inducing.min(s.n_obs)
            ),
            Model::Pnmf => format!("{} nonspatial factors", o.factors),
            Model::Rsf => format!(
                "{} real-valued spatial factors, {} inducing points",
                o.factors,
                o.inducing.min(s.n_obs)
            ),
        };
        Ok(format!(
            "{} of {} observations × {genes} genes: {what}, up to {} epochs, about {}",
            o.model_name(),
            s.n_obs,
            o.epochs,
            fmt_bytes(need)
        ))
    }

    async fn run<D: Device>(
        dev: &D,
        p: &NsfParams,
        data: Data,
        params: serde_json::Value,
        progress: &mut Progress<'_>,
    ) -> Result<Results, String> {
        let Data {
            sp: (name, ds),
            mut kept,
            ..
        } = data;
        let o = p.options()?;
        let mut epochs = |e, max, loss| {
            progress("epochs", e, max, Some(loss));
            true
        };
        let fitted = run::run_kept(dev, &name, &ds, &o, &mut epochs, &mut kept)
            .await
            .map_err(|e| e.to_string())?;
        super::export::results(&fitted, &ds, params).map_err(|e| e.to_string())
    }
}
