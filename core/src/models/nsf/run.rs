//! One fit of the family from a dataset, as the paper's scripts run it:
//! counts checked, genes expressed nowhere dropped and the rest ranked by
//! Poisson deviance, size factors, coordinates into the box, the split,
//! inducing points, NMF starting values, training, then the posterior
//! summaries and the goodness of fit on both sides of the split.

use std::ops::Range;

use serde::{Deserialize, Serialize};

use super::fit::{deviance_published, summarise, to_counts, DevianceSummary};
use super::inducing::inducing_points;
use super::init::{initial_params, InitInput};
use super::model::{Data, Likelihood, Objective, Params, Shape};
use super::prep::{
    log_normalise, poisson_deviance, rescale_coords, size_factors, split, top_genes, SizeFactors,
};
use super::train::{train, History, Schedule};
use crate::compute::cpu::Cpu;
use crate::compute::{philox, Device, GpKernel};
use crate::data::{Dataset, Matrix};
use crate::io::Error;
use crate::models::checkpoint::{Keeper, Kept, Resume};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Model {
    /// Spatial factors only.
    Nsf,
    /// T spatial and L − T nonspatial factors.
    Nsfh,
    /// Nonspatial factors only.
    Pnmf,
    /// NSF with real-valued factors and loadings (rate sz · exp(W f); mean
    /// W f of the centred data for the Gaussian likelihood).
    Rsf,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Options {
    pub model: Model,
    pub factors: usize,
    /// NSFH's spatial factors (default ⌈L/2⌉).
    pub spatial: Option<usize>,
    pub likelihood: Likelihood,
    pub kernel: GpKernel,
    pub inducing: usize,
    pub genes: usize,
    pub size_factors: SizeFactors,
    pub epochs: usize,
    pub seed: u64,
    /// Percent of the observations held out (the last ones after the shuffle).
    pub validation_pct: f64,
    /// Shuffle the observations before the split (the paper's data files
    /// are stored shuffled; its simulations are read in stored order).
    pub shuffle: bool,
    pub flip_y: bool,
    pub shrinkage: f64,
    pub draws: usize,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            model: Model::Nsf,
            factors: 10,
            spatial: None,
            likelihood: Likelihood::Poisson,
            kernel: GpKernel::Matern32,
            inducing: 500,
            genes: 2000,
            size_factors: SizeFactors::Constant,
            epochs: 5000,
            seed: 0,
            validation_pct: 5.0,
            shuffle: true,
            flip_y: true,
            shrinkage: 0.3,
            draws: 3,
        }
    }
}

impl Options {
    pub fn model_name(&self) -> &'static str {
        match self.model {
            Model::Nsf => "NSF",
            Model::Nsfh => "NSFH",
            Model::Pnmf => "PNMF",
            Model::Rsf => "RSF",
        }
    }

    /// Spatial factors T of the L.
    pub fn spatial_factors(&self) -> usize {
        match self.model {
            Model::Nsf | Model::Rsf => self.factors,
            Model::Pnmf => 0,
            Model::Nsfh => self.spatial.unwrap_or(self.factors.div_ceil(2)),
        }
    }
}

/// The fit and what the paper reports about it.
#[derive(Debug, Clone)]
pub struct Fitted {
    pub options: Options,
    /// Observation names in the order of the rows below (after the shuffle).
    pub obs: Vec<String>,
    /// Rows of the original dataset, in that order.
    pub rows: Vec<usize>,
    pub genes: Vec<String>,
    pub train: Range<usize>,
    pub validation: Range<usize>,
    /// Spatial factors T of the L columns (they come first).
    pub t: usize,
    /// N×L: the posterior mean of the factors exp(f) (exact lognormal
    /// moments); RSF's: of f.
    pub factors: Vec<f64>,
    /// N×L: exp of the posterior mean of f, what the paper interprets and
    /// compares with the truth; RSF's: the posterior mean of f.
    pub factors_mean_log: Vec<f64>,
    /// J×L: W then V.
    pub loadings: Vec<f64>,
    pub inducing: Vec<[f64; 2]>,
    pub history: History,
    pub deviance_train: DevianceSummary,
    pub deviance_validation: Option<DevianceSummary>,
    pub rmse_train: f64,
    pub rmse_validation: Option<f64>,
    pub amplitude: Vec<f64>,
    pub length_scale: Vec<f64>,
    pub notes: Vec<String>,
}

/// Progress: (epoch, the largest epoch, the loss); false stops training.
pub type Progress<'a> = &'a mut dyn FnMut(usize, usize, f64) -> bool;

fn softplus(x: f64) -> f64 {
    if x > 20.0 {
        x
    } else {
        x.exp().ln_1p()
    }
}

/// The counts the model reads: `layers['counts']` when there is one, else X.
fn counts<'a>(name: &str, ds: &'a Dataset) -> Result<(&'a Matrix, &'static str), Error> {
    if let Some(m) = ds.layers.get("counts") {
        return Ok((m, "layers/counts"));
    }
    ds.x.as_ref()
        .map(|m| (m, "X"))
        .ok_or_else(|| Error::new(name, "X", "has no expression matrix"))
}

/// Checks, selects and fits. `name` names the file in errors.
pub async fn run<D: Device>(
    dev: &D,
    name: &str,
    ds: &Dataset,
    opts: &Options,
    progress: Progress<'_>,
) -> Result<Fitted, Error> {
    run_kept(dev, name, ds, opts, progress, &mut Kept::default()).await
}

/// [`run`], starting from `kept.from` when given (a stopped run's last
/// checkpoint) and showing each checkpoint to `kept`.
pub async fn run_kept<D: Device>(
    dev: &D,
    name: &str,
    ds: &Dataset,
    opts: &Options,
    progress: Progress<'_>,
    kept: &mut Kept,
) -> Result<Fitted, Error> {
    let (x, key) = counts(name, ds)?;
    let v = x.check_values();
    let bad = if v.nan > 0 {
        Some(format!("has {} NaN values", v.nan))
    } else if v.negative > 0 {
        Some(format!(
            "has {} negative values (minimum {})",
            v.negative, v.min
        ))
    } else if v.non_integer > 0 {
        let hint = if key == "X" {
            ": put the raw counts in layers['counts'] (the Gaussian likelihood then reads X as the normalised data)"
        } else {
            ""
        };
        Some(format!(
            "has {} non-integer values: the models need raw counts{hint}",
            v.non_integer
        ))
    } else {
        None
    };
    if let Some(b) = bad {
        return Err(Error::new(name, key, b));
    }
    let (n_all, g_all) = x.shape();
    let l = opts.factors;
    let t = opts.spatial_factors();
    if l == 0 {
        return Err(Error::new(name, "factors", "must be at least 1"));
    }
    if opts.model == Model::Nsfh && !(1..l).contains(&t) {
        return Err(Error::new(
            name,
            "spatial",
            format!(
                "NSFH needs between 1 and {} spatial factors of its {l}, got {t}",
                l - 1
            ),
        ));
    }
    let mut notes = vec![];
    // Observations and genes with no counts have no size factor or null model.
    let sums = x.row_sums();
    let mut rows: Vec<usize> = (0..n_all).filter(|&r| sums[r] > 0.0).collect();
    if rows.len() < n_all {
        notes.push(format!(
            "{} observations with no counts left out",
            n_all - rows.len()
        ));
    }
    let expressed: Vec<usize> = x
        .col_nonzero()
        .iter()
        .enumerate()
        .filter(|&(_, &c)| c > 0)
        .map(|(j, _)| j)
        .collect();
    if expressed.len() < g_all {
        notes.push(format!(
            "{} genes with no counts left out",
            g_all - expressed.len()
        ));
    }
    if rows.is_empty() || expressed.is_empty() {
        return Err(Error::new(
            name,
            key,
            "has no counts: every cell and every gene is zero",
        ));
    }
    if l > expressed.len().min(opts.genes) {
        return Err(Error::new(
            name,
            "factors",
            format!(
                "{l} factors for {} genes: use fewer factors than genes",
                expressed.len().min(opts.genes)
            ),
        ));
    }
    let coords = if t > 0 {
        Some(crate::spatial::inputs::coords(name, ds)?)
    } else {
        crate::spatial::inputs::coords(name, ds).ok()
    };
    if let Some(c) = &coords {
        if let Some(r) = rows
            .iter()
            .find(|&&r| !(c[r][0].is_finite() && c[r][1].is_finite()))
        {
            return Err(Error::new(
                name,
                "obsm/spatial",
                format!(
                    "observation {} has a non-finite coordinate",
                    ds.obs.index[*r]
                ),
            ));
        }
    }
    if t > 0 && opts.inducing > rows.len() {
        return Err(Error::new(
            name,
            "inducing",
            format!(
                "{} inducing points for {} observations: use at most one per observation",
                opts.inducing,
                rows.len()
            ),
        ));
    }
    let sub = x.take_rows(&rows);
    let genes: Vec<usize> = if expressed.len() > opts.genes {
        let sz_mean = size_factors(&sub, SizeFactors::Mean);
        let dev_all = poisson_deviance(&sub.into_columns(&expressed), &sz_mean)
            .map_err(|e| Error::new(name, key, e))?;
        top_genes(&dev_all, opts.genes)
            .into_iter()
            .map(|i| expressed[i])
            .collect()
    } else {
        expressed
    };
    // A spot whose counts all lie in genes not kept has no size factor.
    let kept_sums = x.take_rows(&rows).into_columns(&genes).row_sums();
    let before = rows.len();
    rows = rows
        .iter()
        .zip(&kept_sums)
        .filter(|&(_, &s)| s > 0.0)
        .map(|(&r, _)| r)
        .collect();
    if rows.len() < before {
        notes.push(format!(
            "{} observations with no counts in the {} genes kept left out",
            before - rows.len(),
            genes.len()
        ));
    }
    if opts.shuffle {
        let mut keyed: Vec<(u32, usize)> = rows
            .iter()
            .enumerate()
            .map(|(i, &r)| {
                (
                    philox::philox4x32(
                        [i as u32, 0, 0, 7],
                        [opts.seed as u32, (opts.seed >> 32) as u32],
                    )[0],
                    r,
                )
            })
            .collect();
        keyed.sort();
        rows = keyed.into_iter().map(|(_, r)| r).collect();
    }
    let n = rows.len();
    let j = genes.len();
    let sel = x.take_rows(&rows).into_columns(&genes);
    let all_cols: Vec<usize> = (0..j).collect();
    let y = sel.columns_dense(&all_cols);
    let (tr, va) = split(n, opts.validation_pct);
    let ntr = tr.len();
    let nonneg = opts.model != Model::Rsf;
    let gaussian = opts.likelihood == Likelihood::Gaussian;
    let (normalised, feature_means) = if gaussian {
        if opts.size_factors != SizeFactors::Constant {
            notes.push(
                "size factors do not apply to the Gaussian likelihood, which reads normalised data"
                    .into(),
            );
        }
        let (yn, fm) = gaussian_data(name, ds, &rows, &genes, &y, &sums, ntr, nonneg, &mut notes)?;
        (Some(yn), fm)
    } else {
        (None, None)
    };
    let sz = if gaussian {
        vec![1.0; n]
    } else {
        size_factors(&sel, opts.size_factors)
    };
    let ymodel: &[f32] = normalised.as_deref().unwrap_or(&y);
    if ntr < 3 {
        return Err(Error::new(
            name,
            "validation",
            format!(
                "{ntr} training observations after holding out {}%: need at least 3",
                opts.validation_pct
            ),
        ));
    }
    let xy: Vec<[f64; 2]> = match &coords {
        Some(c) => {
            let flat: Vec<f64> = rows.iter().flat_map(|&r| c[r]).collect();
            rescale_coords(&flat, opts.flip_y)
                .chunks_exact(2)
                .map(|p| [p[0], p[1]])
                .collect()
        }
        None => vec![[0.0; 2]; n],
    };
    let z: Vec<[f64; 2]> = if t > 0 {
        let flat: Vec<f64> = xy[tr.clone()].iter().flat_map(|p| *p).collect();
        inducing_points(&flat, opts.inducing, opts.seed)
            .chunks_exact(2)
            .map(|p| [p[0], p[1]])
            .collect()
    } else {
        vec![]
    };
    if t > 0 && z.len() < opts.inducing {
        notes.push(format!(
            "{} inducing points: every distinct training location (fewer than the {} asked for)",
            z.len(),
            opts.inducing
        ));
    }
    let m = z.len();
    // The largest buffers, against what one buffer may hold on this device.
    let largest = [opts.draws * ntr * j, t * n * m, t * m * m]
        .into_iter()
        .max()
        .unwrap_or(0);
    if largest > dev.max_buffer_len() {
        return Err(Error::new(
            name,
            "inducing",
            format!(
                "a {largest}-value buffer is larger than this device allows ({}): use fewer genes, inducing points or factors, or the CPU device",
                dev.max_buffer_len()
            ),
        ));
    }
    let ytr = &ymodel[..ntr * j];
    let sztr = &sz[..ntr];
    let sz32: Vec<f32> = sztr.iter().map(|&v| v as f32).collect();
    let fit = Fit {
        name,
        opts,
        init: InitInput {
            y: ytr,
            n: ntr,
            j,
            sz: sztr,
            x: &xy[..ntr],
            z: &z,
            t,
            l,
            likelihood: opts.likelihood,
            nonneg,
            shrinkage: opts.shrinkage,
            seed: opts.seed,
        },
        sz32: &sz32,
        xy: &xy,
    };
    // On a GPU that is lost or full mid-run, the fit goes on from its last
    // checkpoint on the CPU.
    let (mut keeper, from, note) = Keeper::start(kept, None);
    notes.extend(note);
    let first = {
        let save = &mut keeper.sink();
        fit.optimise(dev, Resume { from, save }, &mut *progress)
            .await
    };
    let Optimised { p, latent, history } = match dev.lost() {
        None => first?,
        Some(why) => {
            let (from, note) = keeper.moved(&why);
            notes.push(note);
            let save = &mut keeper.sink();
            fit.optimise(&Cpu, Resume { from, save }, &mut *progress)
                .await?
        }
    };
    let k = l - t;
    let (mut lmean, mut lvar) = (vec![0f64; n * l], vec![0f64; n * l]);
    if let Some((mu, var)) = latent {
        for c in 0..t {
            for i in 0..n {
                lmean[i * l + c] = mu[c * n + i] as f64;
                lvar[i * l + c] = var[c * n + i].max(0.0) as f64;
            }
        }
    }
    for c in 0..k {
        for i in 0..n {
            // Held-out rows have no variational factors: the prior's.
            let (loc, scale) = if i < ntr {
                (
                    p.qloc[i * k + c] as f64,
                    softplus(p.qscale[i * k + c] as f64),
                )
            } else {
                (p.ploc[c] as f64, softplus(p.pscale[c] as f64))
            };
            lmean[i * l + t + c] = loc;
            lvar[i * l + t + c] = scale * scale;
        }
    }
    // NSF's factors: E[e^f] and the paper's interpreted e^{E f}; RSF's: E[f].
    let (factors, factors_mean_log): (Vec<f64>, Vec<f64>) = if nonneg {
        (
            (0..n * l)
                .map(|i| (lmean[i] + lvar[i] / 2.0).exp())
                .collect(),
            lmean.iter().map(|v| v.exp()).collect(),
        )
    } else {
        (lmean.clone(), lmean.clone())
    };
    let mut loadings = vec![0f64; j * l];
    for g in 0..j {
        for c in 0..t {
            loadings[g * l + c] = p.w[g * t + c] as f64;
        }
        for c in 0..k {
            loadings[g * l + t + c] = p.v[g * k + c] as f64;
        }
    }
    // Predicted means: sz · Σ loading · E[e^f]; RSF's sz · E[exp(Σ loading · f)]
    // with independent normal factors, or Σ loading · E[f] under the
    // Gaussian's identity link.
    let mut mean = vec![0f64; n * j];
    for i in 0..n {
        for g in 0..j {
            let w = &loadings[g * l..(g + 1) * l];
            let r = if nonneg {
                (0..l).map(|c| w[c] * factors[i * l + c]).sum::<f64>()
            } else if gaussian {
                (0..l).map(|c| w[c] * lmean[i * l + c]).sum::<f64>()
            } else {
                (0..l)
                    .map(|c| w[c] * lmean[i * l + c] + 0.5 * w[c] * w[c] * lvar[i * l + c])
                    .sum::<f64>()
                    .exp()
            };
            mean[i * j + g] = sz[i] * r;
        }
    }
    if gaussian {
        let totals: Vec<f64> = y
            .chunks_exact(j)
            .map(|r| r.iter().map(|&v| v as f64).sum())
            .collect();
        to_counts(&mut mean, j, feature_means.as_deref(), &totals);
    }
    let y64: Vec<f64> = y.iter().map(|&v| v as f64).collect();
    let gof = |r: Range<usize>| {
        let (yy, mm) = (&y64[r.start * j..r.end * j], &mean[r.start * j..r.end * j]);
        let d = summarise(&deviance_published(yy, mm, j));
        let rmse =
            (yy.iter().zip(mm).map(|(a, b)| (a - b).powi(2)).sum::<f64>() / yy.len() as f64).sqrt();
        (d, rmse)
    };
    let (deviance_train, rmse_train) = gof(tr.clone());
    let (dv, rv) = if va.is_empty() {
        (None, None)
    } else {
        let (d, r) = gof(va.clone());
        (Some(d), Some(r))
    };
    Ok(Fitted {
        options: opts.clone(),
        obs: rows.iter().map(|&r| ds.obs.index[r].clone()).collect(),
        rows,
        genes: genes.iter().map(|&g| ds.var.index[g].clone()).collect(),
        train: tr,
        validation: va,
        t,
        factors,
        factors_mean_log,
        loadings,
        inducing: z,
        history,
        deviance_train,
        deviance_validation: dv,
        rmse_train,
        rmse_validation: rv,
        amplitude: p.amp.iter().map(|&v| softplus(v as f64)).collect(),
        length_scale: p.ls.iter().map(|&v| softplus(v as f64)).collect(),
        notes,
    })
}

/// The Gaussian likelihood's data (n×j, rows and genes as kept) and, for
/// RSF, the training means taken out of each gene. X when the counts are
/// in `layers['counts']` and X is not counts as well (the paper's loaders
/// keep normalize_total + log1p there), else normalize_total + log1p of the
/// counts `y`, whose rows total `sums` over all genes.
#[allow(clippy::too_many_arguments)]
fn gaussian_data(
    name: &str,
    ds: &Dataset,
    rows: &[usize],
    genes: &[usize],
    y: &[f32],
    sums: &[f64],
    ntr: usize,
    nonneg: bool,
    notes: &mut Vec<String>,
) -> Result<(Vec<f32>, Option<Vec<f64>>), Error> {
    let j = genes.len();
    // X holding counts too (a copy of the layer) is not normalised data.
    let normalised_x =
        ds.x.as_ref()
            .filter(|_| ds.layers.contains_key("counts"))
            .map(|xn| (xn, xn.check_values()))
            .filter(|(_, v)| v.non_integer > 0);
    let mut yn = match normalised_x {
        Some((xn, v)) => {
            if v.nan > 0 || !v.min.is_finite() || !v.max.is_finite() {
                return Err(Error::new(
                    name,
                    "X",
                    "has NaN or infinite values: the Gaussian likelihood reads X as the normalised data",
                ));
            }
            if nonneg && v.negative > 0 {
                return Err(Error::new(
                    name,
                    "X",
                    format!(
                        "has {} negative values (minimum {}): the nonnegative models' Gaussian likelihood needs nonnegative normalised data such as log1p; RSF (--model rsf) centres the data itself",
                        v.negative, v.min
                    ),
                ));
            }
            notes.push("the Gaussian likelihood reads X as the normalised data (the counts are in layers['counts'])".into());
            xn.take_rows(rows).columns_dense(genes)
        }
        None => {
            notes
                .push("the Gaussian likelihood reads normalize_total + log1p of the counts".into());
            let totals: Vec<f64> = rows.iter().map(|&r| sums[r]).collect();
            log_normalise(y, j, &totals)
        }
    };
    if nonneg {
        return Ok((yn, None));
    }
    let mut means = vec![0f64; j];
    for row in yn[..ntr * j].chunks_exact(j) {
        for (m, &v) in means.iter_mut().zip(row) {
            *m += v as f64 / ntr as f64;
        }
    }
    for row in yn.chunks_exact_mut(j) {
        for (v, m) in row.iter_mut().zip(&means) {
            *v = (*v as f64 - m) as f32;
        }
    }
    Ok((yn, Some(means)))
}

/// The device part of a fit: everything `optimise` needs, on the host.
struct Fit<'a> {
    name: &'a str,
    opts: &'a Options,
    init: InitInput<'a>,
    sz32: &'a [f32],
    /// Every observation's rescaled coordinates (held-out rows last).
    xy: &'a [[f64; 2]],
}

/// What the device part gives back: the parameters, the spatial factors'
/// posterior means and variances at every observation, and the history.
struct Optimised {
    p: Params,
    latent: Option<(Vec<f32>, Vec<f32>)>,
    history: History,
}

impl Fit<'_> {
    async fn optimise<D: Device>(
        &self,
        dev: &D,
        resume: Resume<'_>,
        progress: Progress<'_>,
    ) -> Result<Optimised, Error> {
        let (name, opts, init) = (self.name, self.opts, &self.init);
        let params = initial_params(dev, init)
            .await
            .map_err(|e| Error::new(name, "obsm/spatial", e))?;
        let shape = Shape {
            n: init.n,
            j: init.j,
            t: init.t,
            k: init.l - init.t,
            m: init.z.len(),
            s: opts.draws,
        };
        let data = Data {
            y: init.y,
            sz: self.sz32,
            x: init.x,
            z: init.z,
        };
        let mut obj = Objective::new(
            dev,
            shape,
            opts.likelihood,
            opts.kernel,
            init.nonneg,
            &data,
            &params,
        );
        let sched = Schedule {
            max_epochs: opts.epochs,
            ..Schedule::default()
        };
        let max = opts.epochs;
        let history = train(dev, &mut obj, &sched, opts.seed, resume, &mut |e, loss| {
            progress(e, max, loss)
        })
        .await
        .map_err(|e| Error::new(name, "training", e))?;
        let p = obj.params().await;
        // The posterior of each log-factor at every observation is normal
        // (mean, variance): the GP's marginal, q(h) on training rows, the
        // prior on held-out ones. Its lognormal moments are exact where the
        // paper averages 10 draws, whose noise moved a held-out deviance by
        // a third between seeds.
        let latent = if init.t > 0 {
            Some(obj.latent_at(self.xy).await.map_err(|e| {
                Error::new(
                    name,
                    "training",
                    format!(
                        "K_uu of factor {} is not positive definite at the end",
                        e.factor + 1
                    ),
                )
            })?)
        } else {
            None
        };
        if let Some(why) = dev.lost() {
            return Err(Error::new(name, "training", why));
        }
        Ok(Optimised { p, latent, history })
    }
}
