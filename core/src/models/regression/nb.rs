//! cell2location's `RegressionModel` (spec §1a) with batches, fitted by
//! stochastic variational inference on a [`Device`].
//!
//! ```text
//! μ_fg ~ Gamma(1, 1)        y_e ~ Gamma(1, 1)         detection per batch
//! a_hyp ~ Gamma(9, 3)       m_e ~ Gamma(1, 100)       s_inv_e ~ Exp(a_hyp)
//! s_eg ~ Gamma(k_e, k_e / m_e),  k_e = 1 / s_inv_e²   additive background
//! φ_hyp ~ Gamma(9, 3)       ainv_g ~ Exp(φ_hyp),  α_g = 1 / ainv_g²
//! y_tg ~ Gamma(200, 200)                              per covariate level
//! x_cg ~ NB(mean (μ_f(c),g + s_e(c),g) · y_e(c) · Σ_{t∈c} y_tg, concentration α_g)
//! ```
//!
//! (With several extra covariates the reference sums the one-hot rows, so a
//! cell's factor is the sum of its levels' y_tg; reproduced as is.)
//!
//! The guide is Pyro's AutoNormal: every site is exp of an independent
//! Normal(loc, softplus(raw)), initialised at the prior means (μ at the
//! cluster averages + 1e-4) with scale 0.1. The loss is the negative ELBO
//! of one reparameterised draw, the likelihood scaled by n_cells / batch;
//! with u = loc + σε and z = e^u, its gradients are
//!
//! ```text
//! g_u = z ∂(log p)/∂z + 1,   dL/dloc = −g_u,   dL/dσ = −(g_u ε + 1/σ)
//! ```
//!
//! The gene-sized sites (μ, s, ainv) and the likelihood live on the device;
//! the batch-level hyperparameters (y, a_hyp, m, s_inv, φ_hyp: a handful of
//! numbers) are updated on the host from a few sums read back each step.
//! Posterior summaries are the guide's lognormal moments and quantiles in
//! closed form (cell2location estimates the same numbers from 1000 draws).

use std::collections::HashMap;

use crate::compute::special::{digamma, lgamma};
use crate::compute::{cpu, philox, AdamParams, Axis, Binary, Device, Gemm, Reduce, Unary};
use crate::data::Matrix;
use crate::models::checkpoint::{Checkpoint, Resume, EVERY};
use crate::models::svi::{gamma_lp, Consts, GuideSlots, HostSite, Site, Sites, Summary, Tally};

/// The data of one fit: raw counts and each cell's label and batch.
pub struct RegressionData<'a> {
    /// Raw counts, cells x genes, CSR or dense (CSC is read by scanning
    /// every column for each row: convert it first). Only the rows in
    /// `rows` are read, and never densified.
    pub x: &'a Matrix,
    /// The row of `x` of each cell of the fit.
    pub rows: &'a [usize],
    pub genes: usize,
    /// Label index of each cell (0..n_labels).
    pub label: &'a [usize],
    pub n_labels: usize,
    /// Batch index of each cell (0..n_batches).
    pub batch: &'a [usize],
    pub n_batches: usize,
    /// Starting μ (labels x genes): the cluster averages.
    pub init_mu: &'a [f32],
    /// Levels of the extra categorical covariates of each cell (indices
    /// into 0..n_levels, one per covariate); empty when there are none.
    pub levels: &'a [Vec<usize>],
    pub n_levels: usize,
}

/// One minibatch on the device, its cells grouped by what their expected
/// counts depend on (label, batch, covariate levels): the likelihood costs
/// one evaluation per group and gene plus one per non-zero count
/// ([`Device::nb_grouped`]), and the counts stay sparse.
struct Batch<D: Device> {
    cells: Vec<usize>,
    groups: usize,
    x: D::Buf,
    seg: D::Index,
    count: D::Buf,
    oh_f: D::Buf,
    oh_e: D::Buf,
    oh_t: Option<D::Buf>,
}

/// Each cell's group (what its expected counts depend on: label, batch,
/// covariate levels) and the groups' keys, in order of first appearance.
type GroupKey<'a> = (usize, usize, &'a [usize]);
fn groups<'a>(d: &'a RegressionData, cells: &[usize]) -> (Vec<usize>, Vec<GroupKey<'a>>) {
    let no_levels: &[usize] = &[];
    let mut index: HashMap<GroupKey, usize> = HashMap::new();
    let mut keys = vec![];
    let group = cells
        .iter()
        .map(|&c| {
            let lv = d.levels.get(c).map_or(no_levels, |v| v.as_slice());
            let key = (d.label[c], d.batch[c], lv);
            *index.entry(key).or_insert_with(|| {
                keys.push(key);
                keys.len() - 1
            })
        })
        .collect();
    (group, keys)
}

impl<D: Device> Batch<D> {
    fn new(dev: &D, d: &RegressionData, cells: &[usize]) -> Batch<D> {
        let (g, f, e, nt) = (d.genes, d.n_labels, d.n_batches, d.n_levels);
        let (group, keys) = groups(d, cells);
        let k = keys.len();
        // Counting sort of the non-zeros by (group, gene), one group at a
        // time: each pass then touches one group's offsets and values, which
        // fit in cache where the batch's whole table does not. Threads take
        // runs of groups of about equal numbers of cells.
        let mut members: Vec<Vec<usize>> = vec![vec![]; k];
        for (i, &c) in cells.iter().enumerate() {
            members[group[i]].push(d.rows[c]);
        }
        let parts = if cells.len() * g < cpu::PAR_MIN {
            1
        } else {
            cpu::threads().clamp(1, k.max(1))
        };
        let mut bounds = vec![0];
        let mut seen = 0;
        for (gi, m) in members.iter().enumerate() {
            seen += m.len();
            if bounds.len() < parts && seen * parts >= cells.len() * bounds.len() {
                bounds.push(gi + 1);
            }
        }
        if bounds.last() != Some(&k) {
            bounds.push(k);
        }
        let mut seg = vec![0u32; k * g + 1];
        let mut jobs = vec![];
        let mut rest = &mut seg[1..];
        for w in bounds.windows(2) {
            let (counts, r) = rest.split_at_mut((w[1] - w[0]) * g);
            jobs.push((w[0], counts));
            rest = r;
        }
        cpu::par_jobs(jobs, |(g0, counts)| {
            for (rows, c) in members[g0..].iter().zip(counts.chunks_mut(g.max(1))) {
                for &r in rows {
                    d.x.for_row(r, |j, _| c[j] += 1);
                }
            }
        });
        for i in 0..k * g {
            seg[i + 1] += seg[i];
        }
        let mut x = vec![0f32; (seg[k * g] as usize).max(1)];
        let mut jobs = vec![];
        let mut rest = &mut x[..];
        for w in bounds.windows(2) {
            let (base, end) = (seg[w[0] * g], seg[w[1] * g]);
            let (xs, r) = rest.split_at_mut((end - base) as usize);
            jobs.push((w[0]..w[1], base, xs));
            rest = r;
        }
        let seg_ref = &seg;
        cpu::par_jobs(jobs, |(run, base, xs)| {
            let mut next = vec![0u32; g];
            for gi in run {
                next.copy_from_slice(&seg_ref[gi * g..(gi + 1) * g]);
                for &r in &members[gi] {
                    d.x.for_row(r, |j, v| {
                        xs[(next[j] - base) as usize] = v;
                        next[j] += 1;
                    });
                }
            }
        });
        let mut count = vec![0f32; k];
        for &gi in &group {
            count[gi] += 1.0;
        }
        let (mut oh_f, mut oh_e, mut oh_t) =
            (vec![0f32; k * f], vec![0f32; k * e], vec![0f32; k * nt]);
        for (r, &(label, batch, levels)) in keys.iter().enumerate() {
            oh_f[r * f + label] = 1.0;
            oh_e[r * e + batch] = 1.0;
            for &l in levels {
                oh_t[r * nt + l] += 1.0;
            }
        }
        Batch {
            cells: cells.to_vec(),
            groups: k,
            x: dev.upload_owned(x),
            seg: dev.upload_index_owned(seg),
            count: dev.upload(&count),
            oh_f: dev.upload(&oh_f),
            oh_e: dev.upload(&oh_e),
            oh_t: (nt > 0).then(|| dev.upload(&oh_t)),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Train {
    pub max_epochs: usize,
    pub batch_size: usize,
    pub lr: f32,
    pub seed: u64,
}

impl Default for Train {
    fn default() -> Self {
        Train {
            max_epochs: 250,
            batch_size: 2500,
            lr: 0.002,
            seed: 0,
        }
    }
}

/// Posterior of μ (labels x genes) and the loss history.
#[derive(Default)]
pub struct RegressionFit {
    pub means: Vec<f64>,
    pub stds: Vec<f64>,
    pub q05: Vec<f64>,
    pub q95: Vec<f64>,
    /// Mean loss of each epoch: −ELBO of the step's draw at full-data scale
    /// (scvi's `elbo_train`).
    pub elbo_history: Vec<f64>,
    /// Posterior mean detection y_e per batch.
    pub detection_y_e: Vec<f64>,
    /// Posterior means of s_eg (batches x genes) and y_tg (levels x genes).
    pub s_eg: Vec<f64>,
    pub y_tg: Vec<f64>,
}

impl RegressionFit {
    /// The finished fit as a checkpoint (`done`): each vector's length,
    /// then every number exactly.
    pub fn to_checkpoint(&self, fit: String) -> Checkpoint {
        let parts = self.parts();
        Checkpoint {
            fit,
            epoch: self.elbo_history.len(),
            done: true,
            counters: parts.iter().map(|p| p.len() as u64).collect(),
            values: parts.concat(),
            ..Checkpoint::default()
        }
    }

    /// Reads what [`RegressionFit::to_checkpoint`] wrote for a fit of `d`
    /// over `epochs` epochs.
    pub fn from_checkpoint(
        cp: &Checkpoint,
        d: &RegressionData,
        epochs: usize,
    ) -> Result<RegressionFit, String> {
        let (fg, eg) = (d.n_labels * d.genes, d.n_batches * d.genes);
        let sizes = [
            fg,
            fg,
            fg,
            fg,
            epochs,
            d.n_batches,
            eg,
            d.n_levels * d.genes,
        ];
        let fits = cp.done
            && cp.fit == fit_name(d)
            && cp.epoch == epochs
            && cp
                .counters
                .iter()
                .copied()
                .eq(sizes.iter().map(|&n| n as u64))
            && sizes.iter().sum::<usize>() == cp.values.len();
        if !fits {
            return Err(format!(
                "the checkpoint of {} is not a finished fit of {epochs} epochs",
                cp.fit
            ));
        }
        let mut rest = cp.values.as_slice();
        let mut part = |n: usize| {
            let (v, after) = rest.split_at(n);
            rest = after;
            v.to_vec()
        };
        Ok(RegressionFit {
            means: part(fg),
            stds: part(fg),
            q05: part(fg),
            q95: part(fg),
            elbo_history: part(epochs),
            detection_y_e: part(d.n_batches),
            s_eg: part(eg),
            y_tg: part(d.n_levels * d.genes),
        })
    }

    fn parts(&self) -> [&[f64]; 8] {
        [
            &self.means,
            &self.stds,
            &self.q05,
            &self.q95,
            &self.elbo_history,
            &self.detection_y_e,
            &self.s_eg,
            &self.y_tg,
        ]
    }
}

/// One step's sampled sites and ∂(log joint)/∂z, for gradient checks.
/// Order: μ (labels x genes), s (batches x genes), ainv, y, a_hyp, m, s_inv,
/// φ_hyp, then y_tg (levels x genes) when there are covariates.
#[derive(Debug, Clone, Default)]
pub struct Probe {
    pub z: Vec<Vec<f64>>,
    pub gz: Vec<Vec<f64>>,
    /// The likelihood's minibatch scale, n_cells / batch.
    pub scale: f64,
    /// Cells of the minibatch, in order.
    pub cells: Vec<usize>,
}

/// Scalars of one step's tally; the per-batch sums follow as segments
/// [dL/dy_e (E) | Σ_g log s_eg (E) | Σ_g s_eg (E)].
#[derive(Clone, Copy)]
enum Slot {
    Ainv,
    LogLik,
    Mu,
    LogYtg,
    Ytg,
    U,
    LogSigma,
    Eps2,
    Dye,
    LogS,
    S,
}
const GUIDE: GuideSlots = GuideSlots {
    u: Slot::U as usize,
    log_sigma: Slot::LogSigma as usize,
    eps2: Slot::Eps2 as usize,
};

/// What a checkpoint of this fit names itself: the model and its sizes.
pub fn fit_name(data: &RegressionData) -> String {
    format!(
        "cell2location reference regression of {} cells x {} genes, {} labels, {} batches, {} levels",
        data.rows.len(),
        data.genes,
        data.n_labels,
        data.n_batches,
        data.n_levels
    )
}

/// Fits the model; `progress(epoch, epochs, loss)` after every epoch.
/// Starts from `resume.from` when given and leaves a checkpoint every
/// [`EVERY`] epochs; a lost device ends it with its reason.
pub async fn fit<D: Device>(
    dev: &D,
    data: &RegressionData<'_>,
    train: &Train,
    progress: &mut dyn FnMut(usize, usize, f64),
    mut probe: Option<&mut dyn FnMut(&Probe)>,
    resume: Resume<'_>,
) -> Result<RegressionFit, String> {
    let (n, g, f, e) = (data.rows.len(), data.genes, data.n_labels, data.n_batches);
    let c = Consts::new(dev);
    let mu0: Vec<f32> = data.init_mu.iter().map(|v| v + 1e-4).collect();
    let mu = Site::new(dev, 1, &mu0);
    let seg = Site::new(dev, 2, &vec![0.01; e * g]);
    let ainv = Site::new(dev, 3, &vec![1.0 / 3.0; g]);
    let nt = data.n_levels;
    let ytg = (nt > 0).then(|| Site::new(dev, 4, &vec![1.0; nt * g]));
    let (c199, c200) = (dev.upload(&[199.0]), dev.upload(&[200.0]));
    let mut ye = HostSite::new(&vec![1.0; e]);
    let mut a_hyp = HostSite::new(&[3.0]);
    let mut m_e = HostSite::new(&vec![0.01; e]);
    let mut s_inv = HostSite::new(&vec![1.0 / 3.0; e]);
    let mut phi = HostSite::new(&[3.0]);

    // Minibatches: a fixed split of a seeded permutation (the reference
    // reshuffles each epoch; the gradient is unbiased either way).
    // A minibatch's non-zeros are indexed by u32 (every device's index type).
    let bs = train
        .batch_size
        .clamp(1, n.max(1))
        .min((u32::MAX as usize / g.max(1)).max(1));
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = (philox::uniform(train.seed, 7, i) as f64 * (i + 1) as f64) as usize;
        order.swap(i, j.min(i));
    }
    let splits: Vec<&[usize]> = order.chunks(bs).collect();
    // Kept on a GPU; on the CPU device a second copy of the counts would
    // cost half the reference's memory, and a minibatch is rebuilt each step
    // in a fraction of the step's time.
    let kept: Option<Vec<Batch<D>>> = (!dev.shares_host_memory()).then(|| {
        splits
            .iter()
            .map(|cells| Batch::new(dev, data, cells))
            .collect()
    });
    let max_k = splits
        .iter()
        .map(|cells| groups(data, cells).1.len())
        .max()
        .unwrap_or(1);
    let z = |len: usize| dev.zeros(len);
    let (m1, m2, mean, gm, gt, w) = (
        z(max_k * g),
        z(max_k * g),
        z(max_k * g),
        z(max_k * g),
        z(max_k * g),
        z(max_k * g),
    );
    let (ll, yc, rows, theta, sq, colsum) = (z(max_k * g), z(max_k), z(max_k), z(g), z(g), z(g));
    let (ye_buf, eg_stats, sums) = (z(e), z(e * g), z(e.max(1)));
    let mut tally = Tally::new(dev, &[1, 1, 1, 1, 1, 1, 1, 1, e, e, e]);
    let (t1, t2) = (z(f * g), z(e * g));
    let (tm, wt) = (z(max_k * g), z(max_k * g));
    let (yt_a, yt_b, yt_c) = (z(nt * g), z(nt * g), z(nt * g));
    let sites = Sites {
        fit: fit_name(data),
        device: [&mu, &seg, &ainv]
            .into_iter()
            .chain(&ytg)
            .map(|site| vec![site])
            .collect(),
    };
    let mut history = Vec::new();
    let (mut step_no, mut first) = (0u64, 0);
    if let Some(cp) = &resume.from {
        let mut host = [&mut ye, &mut a_hyp, &mut m_e, &mut s_inv, &mut phi];
        (step_no, history) = sites.restore(dev, cp, &mut host)?;
        first = cp.epoch;
    }
    for epoch in first..train.max_epochs {
        let mut epoch_loss = 0.0;
        for (i, cells) in splits.iter().enumerate() {
            step_no += 1;
            let built;
            let bt = match &kept {
                Some(kept) => &kept[i],
                None => {
                    built = Batch::new(dev, data, cells);
                    &built
                }
            };
            let (b, scale) = (bt.groups, n as f64 / bt.cells.len() as f64);
            tally.reset(dev);
            for s in [&mu, &seg, &ainv].into_iter().chain(&ytg) {
                s.draw(dev, train.seed, step_no, &tally, GUIDE);
            }
            for (id, h) in [&mut ye, &mut a_hyp, &mut m_e, &mut s_inv, &mut phi]
                .into_iter()
                .enumerate()
            {
                h.draw(train.seed, 10 + id as u64, step_no);
            }
            let mut guide: f64 = [&ye, &a_hyp, &m_e, &s_inv, &phi]
                .iter()
                .map(|h| h.guide_terms())
                .sum();
            // Expected counts of the batch.
            let ye32: Vec<f32> = ye.z.iter().map(|&v| v as f32).collect();
            let ye_dev = dev.upload(&ye32);
            dev.gemm(Gemm::new(b, g, f), &bt.oh_f, &mu.z, &m1);
            dev.gemm(Gemm::new(b, g, e), &bt.oh_e, &seg.z, &m2);
            dev.gemm(Gemm::new(b, 1, e), &bt.oh_e, &ye_dev, &yc);
            dev.binary(Binary::Add, &m1, &m2, &w);
            // w_full = (μ + s) · Σ_t y_tg: the covariate factor, when there is one.
            let w_full = match (&ytg, &bt.oh_t) {
                (Some(y), Some(oh)) => {
                    dev.gemm(Gemm::new(b, g, nt), oh, &y.z, &tm);
                    dev.binary(Binary::Mul, &w, &tm, &wt);
                    &wt
                }
                _ => &w,
            };
            dev.binary_rows(Binary::Mul, w_full, &yc, b, g, &mean);
            dev.binary(Binary::Mul, &ainv.z, &ainv.z, &sq);
            dev.binary(Binary::Div, &ainv.ones, &sq, &theta);
            dev.nb_grouped(
                &bt.x,
                &bt.seg,
                &bt.count,
                &mean,
                &theta,
                b,
                g,
                [&ll, &gm, &gt],
            );
            // μ and s gradients: scale · OHᵀ (gm ∘ y_c), plus their priors.
            dev.binary_rows(Binary::Mul, &gm, &yc, b, g, &m1);
            let tn = |m: usize, k: usize| Gemm {
                trans_a: true,
                alpha: scale as f32,
                ..Gemm::new(m, g, k)
            };
            if let (Some(y), Some(oh)) = (&ytg, &bt.oh_t) {
                // y_tg: scale · OH_tᵀ (gm ∘ y_c ∘ (μ + s)) + 199/y − 200.
                dev.binary(Binary::Mul, &m1, &w, &m2);
                dev.gemm(tn(nt, b), oh, &m2, &yt_a);
                dev.binary(Binary::Div, &y.ones, &y.z, &yt_b);
                dev.binary(Binary::Mul, &yt_b, &c199, &yt_c);
                dev.binary(Binary::Sub, &yt_c, &c200, &yt_b);
                dev.binary(Binary::Add, &yt_a, &yt_b, &y.gz);
                // μ and s see the covariate factor too.
                dev.binary(Binary::Mul, &m1, &tm, &m2);
                dev.binary(Binary::Mul, &m2, &c.one, &m1);
            }
            dev.gemm(tn(f, b), &bt.oh_f, &m1, &mu.gz);
            dev.binary(Binary::Sub, &mu.gz, &c.one, &t1);
            dev.binary(Binary::Mul, &t1, &c.one, &mu.gz);
            dev.gemm(tn(e, b), &bt.oh_e, &m1, &seg.gz);
            // s prior: (k_e − 1)/s − k_e/m_e per batch row.
            let k: Vec<f64> = s_inv.z.iter().map(|v| 1.0 / (v * v)).collect();
            let km1: Vec<f32> = k.iter().map(|v| (v - 1.0) as f32).collect();
            let rate: Vec<f32> = k.iter().zip(&m_e.z).map(|(k, m)| (k / m) as f32).collect();
            dev.binary(Binary::Div, &seg.ones, &seg.z, &t2);
            dev.binary_rows(Binary::Mul, &t2, &dev.upload(&km1), e, g, &eg_stats);
            dev.binary_rows(Binary::Sub, &eg_stats, &dev.upload(&rate), e, g, &t2);
            dev.binary(Binary::Add, &seg.gz, &t2, &eg_stats);
            dev.binary(Binary::Mul, &eg_stats, &c.one, &seg.gz);
            // ainv: scale · Σ_c gt · (−2 / ainv³) − φ_hyp.
            dev.reduce(Reduce::Sum, Axis::Cols, &gt, b, g, &colsum);
            dev.binary(Binary::Mul, &sq, &ainv.z, &theta);
            dev.binary(Binary::Div, &colsum, &theta, &sq);
            let c2 = dev.upload(&[(-2.0 * scale) as f32]);
            dev.binary(Binary::Mul, &sq, &c2, &colsum);
            dev.binary(
                Binary::Sub,
                &colsum,
                &dev.upload(&[phi.z[0] as f32]),
                &ainv.gz,
            );
            // y_e: scale · Σ_{c∈e} Σ_g gm (μ + s), read back with the other sums.
            dev.binary(Binary::Mul, &gm, w_full, &m2);
            dev.reduce(Reduce::Sum, Axis::Rows, &m2, b, g, &rows);
            dev.gemm(
                Gemm {
                    trans_a: true,
                    ..Gemm::new(e, 1, b)
                },
                &bt.oh_e,
                &rows,
                &ye_buf,
            );
            tally.add(dev, &ye_buf, Slot::Dye as usize);
            // Σ_g log s_eg and Σ_g s_eg per batch; Σ_g ainv; the log-likelihood;
            // the μ and y_tg priors (for the loss); then one read for all of it.
            dev.unary(Unary::Log, &seg.z, &t2);
            dev.reduce(Reduce::Sum, Axis::Rows, &t2, e, g, &sums);
            tally.add(dev, &sums, Slot::LogS as usize);
            dev.reduce(Reduce::Sum, Axis::Rows, &seg.z, e, g, &sums);
            tally.add(dev, &sums, Slot::S as usize);
            tally.sum(dev, &ainv.z, g, Slot::Ainv as usize);
            tally.sum(dev, &ll, b * g, Slot::LogLik as usize);
            tally.sum(dev, &mu.z, f * g, Slot::Mu as usize);
            if let Some(y) = &ytg {
                dev.unary(Unary::Log, &y.z, &yt_a);
                tally.sum(dev, &yt_a, nt * g, Slot::LogYtg as usize);
                tally.sum(dev, &y.z, nt * g, Slot::Ytg as usize);
            }
            let st = tally.read(dev).await;
            let at = |s: Slot| st.at(s as usize);
            let (dye, sum_log_s, sum_s) = (
                st.seg(Slot::Dye as usize),
                st.seg(Slot::LogS as usize),
                st.seg(Slot::S as usize),
            );
            let (sum_ainv, ll_sum) = (at(Slot::Ainv), at(Slot::LogLik) * scale);
            guide += at(Slot::U) + at(Slot::LogSigma) + 0.5 * at(Slot::Eps2);

            // Host sites: priors and their links to the device sites.
            let gf = g as f64;
            let (ah, ph) = (a_hyp.z[0], phi.z[0]);
            a_hyp.gz[0] = 8.0 / ah - 3.0;
            phi.gz[0] = 8.0 / ph - 3.0 + gf / ph - sum_ainv;
            let mut lp =
                gamma_lp(ah, 9.0, 3.0) + gamma_lp(ph, 9.0, 3.0) + gf * ph.ln() - ph * sum_ainv;
            for j in 0..e {
                let (si, mj, kj) = (s_inv.z[j], m_e.z[j], k[j]);
                let bj = kj / mj;
                ye.gz[j] = dye[j] * scale - 1.0;
                lp += gamma_lp(ye.z[j], 1.0, 1.0) + gamma_lp(mj, 1.0, 100.0) + ah.ln() - ah * si;
                a_hyp.gz[0] += 1.0 / ah - si;
                // s_eg ~ Gamma(k, k/m): derivatives w.r.t. k and the rate b.
                let d_k = gf * (bj.ln() - digamma(kj)) + sum_log_s[j];
                let d_b = gf * kj / bj - sum_s[j];
                s_inv.gz[j] = -ah + (d_k + d_b / mj) * (-2.0 / (si * si * si));
                m_e.gz[j] = -100.0 + d_b * (-kj / (mj * mj));
                lp += gf * (kj * bj.ln() - lgamma(kj)) + (kj - 1.0) * sum_log_s[j] - bj * sum_s[j];
            }
            if let Some(p) = probe.as_mut() {
                let mut pr = Probe {
                    scale,
                    cells: bt.cells.clone(),
                    ..Probe::default()
                };
                for s in [&mu, &seg, &ainv] {
                    let (z, gz) = s.probe(dev).await;
                    pr.z.push(z);
                    pr.gz.push(gz);
                }
                for h in [&ye, &a_hyp, &m_e, &s_inv, &phi] {
                    pr.z.push(h.z.clone());
                    pr.gz.push(h.gz.clone());
                }
                if let Some(y) = &ytg {
                    let (z, gz) = y.probe(dev).await;
                    pr.z.push(z);
                    pr.gz.push(gz);
                }
                p(&pr);
            }
            let adam = AdamParams {
                lr: train.lr,
                step: step_no as u32,
                ..AdamParams::default()
            };
            for s in [&mu, &seg, &ainv].into_iter().chain(&ytg) {
                s.step(dev, &c, adam);
            }
            for h in [&mut ye, &mut a_hyp, &mut m_e, &mut s_inv, &mut phi] {
                h.step(adam);
            }
            // −ELBO of this draw: likelihood, every prior, Jacobian and −log q.
            // Gamma(1, 1) log-density is −z; Gamma(200, 200) sums to the line below.
            let mu_prior = -at(Slot::Mu);
            let ytg_prior = (nt * g) as f64 * (200.0 * 200f64.ln() - lgamma(200.0))
                + 199.0 * at(Slot::LogYtg)
                - 200.0 * at(Slot::Ytg);
            let n_params = (f * g + e * g + g + nt * g + 3 * e + 2) as f64;
            let q_const = 0.5 * (2.0 * std::f64::consts::PI).ln() * n_params;
            let elbo = ll_sum + lp + mu_prior + ytg_prior + guide + q_const;
            epoch_loss += -elbo / splits.len() as f64;
        }
        history.push(epoch_loss);
        if let Some(why) = dev.lost() {
            return Err(why);
        }
        progress(epoch + 1, train.max_epochs, epoch_loss);
        if (epoch + 1) % EVERY == 0 && epoch + 1 < train.max_epochs {
            let host = [&ye, &a_hyp, &m_e, &s_inv, &phi];
            let cp = sites
                .checkpoint(dev, epoch + 1, false, step_no, &host, &history)
                .await;
            if let Some(why) = dev.lost() {
                return Err(why);
            }
            (resume.save)(cp);
        }
    }
    let Summary {
        means,
        stds,
        q05,
        q95,
    } = mu.summary(dev).await;
    Ok(RegressionFit {
        means,
        stds,
        q05,
        q95,
        elbo_history: history,
        detection_y_e: ye.summary().means,
        s_eg: seg.summary(dev).await.means,
        y_tg: match &ytg {
            Some(y) => y.summary(dev).await.means,
            None => vec![],
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compute::cpu::{nb_terms, Cpu};

    /// The log joint at given site values, written independently in f64.
    fn log_joint(d: &RegressionData, z: &[Vec<f64>], scale: f64, cells: &[usize]) -> f64 {
        let (g, e) = (d.genes, d.n_batches);
        let [mu, s, ainv, y, ah, m, sinv, ph, ytg] = z else {
            panic!("nine sites")
        };
        let mut lj = 0.0;
        for &c in cells {
            let (f, b) = (d.label[c], d.batch[c]);
            for j in 0..g {
                let factor: f64 = d.levels[c].iter().map(|&t| ytg[t * g + j]).sum();
                let mean = (mu[f * g + j] + s[b * g + j]) * y[b] * factor;
                let theta = 1.0 / (ainv[j] * ainv[j]);
                lj += scale * nb_terms(d.x.get(d.rows[c], j) as f64, mean, theta).0;
            }
        }
        lj += mu.iter().map(|v| -v).sum::<f64>() + y.iter().map(|v| -v).sum::<f64>();
        lj += gamma_lp(ah[0], 9.0, 3.0) + gamma_lp(ph[0], 9.0, 3.0);
        for k in 0..e {
            lj += gamma_lp(m[k], 1.0, 100.0) + ah[0].ln() - ah[0] * sinv[k];
            let shape = 1.0 / (sinv[k] * sinv[k]);
            for j in 0..g {
                lj += gamma_lp(s[k * g + j], shape, shape / m[k]);
            }
        }
        lj += ytg.iter().map(|&v| gamma_lp(v, 200.0, 200.0)).sum::<f64>();
        lj + ainv.iter().map(|a| ph[0].ln() - ph[0] * a).sum::<f64>()
    }

    #[test]
    fn gradients_match_finite_differences_of_the_log_joint() {
        let (cells, genes, f, e) = (12, 4, 3, 2);
        let x: Vec<f32> = (0..cells * genes).map(|i| ((i * 7) % 9) as f32).collect();
        let label: Vec<usize> = (0..cells).map(|c| c % f).collect();
        let batch: Vec<usize> = (0..cells).map(|c| (c / 3) % e).collect();
        let init_mu: Vec<f32> = (0..f * genes).map(|i| 0.5 + (i % 5) as f32).collect();
        // Two covariates with two levels each (indices 0-1 and 2-3).
        let levels: Vec<Vec<usize>> = (0..cells).map(|c| vec![c % 2, 2 + (c / 2) % 2]).collect();
        let x = crate::data::dense(cells, genes, x)
            .map(Matrix::Dense)
            .unwrap();
        let rows: Vec<usize> = (0..cells).collect();
        let d = RegressionData {
            x: &x,
            rows: &rows,
            genes,
            label: &label,
            n_labels: f,
            batch: &batch,
            n_batches: e,
            init_mu: &init_mu,
            levels: &levels,
            n_levels: 4,
        };
        // A minibatch of 5 cells: the scale is part of what is checked.
        let train = Train {
            max_epochs: 1,
            batch_size: 5,
            lr: 1e-3,
            seed: 3,
        };
        let mut probes = vec![];
        let mut keep = |p: &Probe| probes.push(p.clone());
        pollster::block_on(fit(
            &Cpu,
            &d,
            &train,
            &mut |_, _, _| {},
            Some(&mut keep),
            Resume::none(&mut |_| {}),
        ))
        .unwrap();
        let p = &probes[0];
        assert!((p.scale - 12.0 / 5.0).abs() < 1e-12);
        let mut checked = 0;
        assert_eq!(p.z.len(), 9);
        for site in 0..9 {
            for i in 0..p.z[site].len() {
                // Central differences in u = log z.
                let h = 1e-4;
                let at = |du: f64| {
                    let mut z = p.z.clone();
                    z[site][i] *= du.exp();
                    log_joint(&d, &z, p.scale, &p.cells)
                };
                let fd = (at(h) - at(-h)) / (2.0 * h);
                let ours = p.z[site][i] * p.gz[site][i];
                assert!(
                    (ours - fd).abs() < 2e-3 * fd.abs().max(1.0),
                    "site {site} element {i}: {ours} vs {fd}"
                );
                checked += 1;
            }
        }
        assert_eq!(
            checked,
            f * genes + e * genes + genes + e + 1 + e + e + 1 + 4 * genes
        );
    }
}
