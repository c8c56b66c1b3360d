//! Training RESOLVI and reading its results: minibatches drawn from the
//! counts in a fresh order each epoch (the host holds the counts; the
//! device one minibatch and the parameters), the KL warm-up, and the
//! outputs scvi-tools gives: the latent space, the corrected expression,
//! each cell's true / diffused / background proportions and, with labels,
//! the predicted cell types.

use super::model::{encoder_input, sqrt, Data, Model};
use super::prep::N_NEIGHBORS;
use crate::compute::{philox, Binary, Device};
use crate::models::checkpoint::{self, Resume};
use crate::models::resolvi::nn::Cats;
use crate::models::svi::mix;

/// Progress: (epoch, epochs, the epoch's mean loss); false stops training.
pub type Progress<'a> = &'a mut dyn FnMut(usize, usize, f64) -> bool;

/// Per epoch: the mean loss (−ELBO) per minibatch and the mean Poisson
/// log-likelihood per cell.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct History {
    pub loss: Vec<f64>,
    pub reconstruction: Vec<f64>,
}

/// `n` indices in an order drawn from the Philox stream `seed`.
fn shuffled(n: usize, seed: u64) -> Vec<usize> {
    let mut v: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = ((philox::uniform(seed, 0, i) as f64) * (i + 1) as f64) as usize;
        v.swap(i, j.min(i));
    }
    v
}

/// scvi's linear KL warm-up over `warmup` epochs.
pub fn kl_weight(epoch: usize, warmup: usize) -> f32 {
    if warmup == 0 {
        1.0
    } else {
        (epoch as f32 / warmup as f32).min(1.0)
    }
}

/// Trains for `model.cfg.epochs` epochs (fewer when `progress` says stop).
/// Trains from `resume.from` (or the start), leaving a checkpoint every
/// [`checkpoint::EVERY`] epochs; stops early when the device is lost (the
/// caller sees `dev.lost()`) or `progress` says so.
pub async fn train<D: Device>(
    dev: &D,
    model: &mut Model<D>,
    data: &Data<'_>,
    progress: Progress<'_>,
    resume: Resume<'_>,
) -> Result<History, String> {
    let cfg = model.cfg;
    let n = data.n_obs();
    let mut history = History::default();
    let mut start = 0;
    if let Some(cp) = &resume.from {
        let losses = model.resume(dev, cp)?;
        if losses.len() != 2 * cp.epoch {
            return Err(format!("the checkpoint of {} is incomplete", cp.fit));
        }
        let (loss, recon) = losses.split_at(losses.len() / 2);
        history.loss = loss.to_vec();
        history.reconstruction = recon.to_vec();
        start = cp.epoch;
    }
    for epoch in start..cfg.epochs {
        let order = shuffled(n, mix(cfg.seed, 60, epoch as u64));
        let kw = kl_weight(epoch, cfg.kl_warmup);
        let (mut loss, mut recon, mut batches) = (0.0, 0.0, 0usize);
        for rows in order.chunks(cfg.batch_size) {
            let (l, r) = model.step(dev, data, rows, kw).await;
            loss += l;
            recon += r;
            batches += 1;
        }
        if dev.lost().is_some() {
            return Ok(history);
        }
        history.loss.push(loss / batches as f64);
        history.reconstruction.push(recon / n as f64);
        if (epoch + 1) % checkpoint::EVERY == 0 && epoch + 1 < cfg.epochs {
            let both = [&history.loss[..], &history.reconstruction].concat();
            let cp = model.checkpoint(dev, epoch + 1, &both).await;
            if dev.lost().is_some() {
                return Ok(history);
            }
            (resume.save)(cp);
        }
        if !progress(epoch + 1, cfg.epochs, loss / batches as f64) {
            break;
        }
    }
    Ok(history)
}

/// What the fitted model says about each cell.
#[derive(Debug, Clone, Default)]
pub struct Outputs {
    /// N×L: q(z)'s mean (`X_resolVI`).
    pub latent: Vec<f32>,
    /// N×G: the decoder's expression at the latent mean (library size 1,
    /// `get_normalized_expression`), and times the cell's library size
    /// (px_rate: the counts of the true signal alone, scvi's corrected
    /// counts).
    pub normalized: Vec<f32>,
    pub corrected: Vec<f32>,
    /// N×G: each observed count's expected share from the cell itself,
    /// x · own / (own + diffused + background) at the fitted rates (the
    /// Poisson mixture's posterior split of what was observed).
    pub own_counts: Vec<f32>,
    /// N×3: the guide's true, diffused and background proportions (scvi's
    /// mixture_proportions: a softmax plus 1e-3 each and 0.01 on the
    /// diffused one, so rows sum to about 1.013).
    pub fractions: Vec<f32>,
    /// N×labels: the mean over draws of z of the classifier's
    /// probabilities.
    pub probabilities: Option<Vec<f32>>,
}

/// Rows per inference pass.
const CHUNK: usize = 2048;
/// Draws of z per cell for the predicted labels (scvi's default).
pub const PREDICT_SAMPLES: usize = 30;

pub async fn outputs<D: Device>(dev: &D, model: &Model<D>, data: &Data<'_>) -> Outputs {
    let (n, g) = (data.n_obs(), data.genes());
    let l = model.cfg.n_latent;
    let k = N_NEIGHBORS;
    let mut out = Outputs::default();
    let mut probs = model
        .classifier
        .as_ref()
        .map(|_| Vec::with_capacity(n * model.labels));
    let cats = |rows: &mut dyn Iterator<Item = u32>| {
        (model.n_batch > 1).then(|| Cats::new(dev, &rows.collect::<Vec<_>>(), model.n_batch))
    };
    for start in (0..n).step_by(CHUNK) {
        let rows: Vec<usize> = (start..(start + CHUNK).min(n)).collect();
        let b = rows.len();
        let x = data.rows(&rows);
        let enc = dev.upload_owned(encoder_input(&x, g));
        let tz = model.z_encoder.forward(dev, &enc, b, None);
        let c = cats(&mut rows.iter().map(|&r| data.batch[r]));
        let px = model.decoder.forward(dev, &tz.m, c.as_ref(), b).px_scale;
        let diff_in = dev.upload_owned(x.iter().map(|&v| v.ln_1p()).collect());
        let td = model.diffusion_encoder.forward(dev, &diff_in, b, None);
        out.latent.extend(dev.read(&tz.m).await);
        let px = dev.read(&px).await;
        for (i, &r) in rows.iter().enumerate() {
            let lib = data.lib[r] as f32;
            out.corrected
                .extend(px[i * g..(i + 1) * g].iter().map(|v| v * lib));
        }
        out.normalized.extend(px);
        for row in dev.read(&td.v).await.chunks_exact(3) {
            out.fractions.extend([row[0], row[1] + 0.01, row[2]]);
        }
        if let (Some(cl), Some(p)) = (&model.classifier, probs.as_mut()) {
            let nl = model.labels;
            let sq = sqrt(dev, &tz.v, b * l);
            let mut sum = dev.zeros(b * nl);
            for d in 0..PREDICT_SAMPLES {
                let (eps, se, z) = (dev.zeros(b * l), dev.zeros(b * l), dev.zeros(b * l));
                dev.random(
                    true,
                    mix(model.cfg.seed, 70 + d as u64, start as u64),
                    0,
                    &eps,
                );
                dev.binary(Binary::Mul, &eps, &sq, &se);
                dev.binary(Binary::Add, &se, &tz.m, &z);
                let logits = cl.forward(dev, &z, b);
                let (pr, acc) = (dev.zeros(b * nl), dev.zeros(b * nl));
                dev.softmax_rows(&logits, b, nl, &pr);
                dev.binary(Binary::Add, &sum, &pr, &acc);
                sum = acc;
            }
            let inv = 1.0 / PREDICT_SAMPLES as f32;
            p.extend(dev.read(&sum).await.iter().map(|v| v * inv));
        }
    }
    out.probabilities = probs;

    // The posterior split of each observed count: the neighbours decoded at
    // their latent means with the cell's library and batch, as the model.
    let (map, background) = model.point_estimates(dev).await;
    let median = data.priors.median_distance;
    for start in (0..n).step_by(CHUNK) {
        let rows: Vec<usize> = (start..(start + CHUNK).min(n)).collect();
        let b = rows.len();
        let zn: Vec<f32> = rows
            .iter()
            .flat_map(|&r| data.nb.index[r * k..(r + 1) * k].iter())
            .flat_map(|&j| {
                out.latent[j as usize * l..(j as usize + 1) * l]
                    .iter()
                    .copied()
            })
            .collect();
        let c = cats(
            &mut rows
                .iter()
                .flat_map(|&r| std::iter::repeat_n(data.batch[r], k)),
        );
        let pn = model
            .decoder
            .forward(dev, &dev.upload_owned(zn), c.as_ref(), b * k)
            .px_scale;
        let pn = dev.read(&pn).await;
        let x = data.rows(&rows);
        let mut diff = vec![0f64; g];
        for (i, &r) in rows.iter().enumerate() {
            let t: Vec<f64> = (0..k)
                .map(|j| {
                    let d = data.nb.dist2[r * k + j] as f64 / median;
                    map[r * k + j] as f64 - d.sqrt().min(10.0)
                })
                .collect();
            let top = t.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let w: Vec<f64> = t.iter().map(|v| (v - top).exp()).collect();
            let ws: f64 = w.iter().sum();
            diff.iter_mut().for_each(|v| *v = 0.0);
            for (j, wj) in w.iter().enumerate() {
                let row = &pn[(i * k + j) * g..(i * k + j + 1) * g];
                for (dv, &p) in diff.iter_mut().zip(row) {
                    *dv += wj / ws * p as f64;
                }
            }
            let m = &out.fractions[r * 3..r * 3 + 3];
            let bg = &background[data.batch[r] as usize * g..(data.batch[r] as usize + 1) * g];
            let own_scale = &out.normalized[r * g..(r + 1) * g];
            for gi in 0..g {
                let xv = x[i * g + gi] as f64;
                if xv == 0.0 {
                    out.own_counts.push(0.0);
                    continue;
                }
                let own = m[0] as f64 * own_scale[gi] as f64;
                let total = own + m[1] as f64 * diff[gi] + m[2] as f64 * bg[gi] as f64;
                out.own_counts
                    .push((xv * own / total.max(f64::MIN_POSITIVE)) as f32);
            }
        }
    }
    out
}

/// Samples for differential tests: `samples` draws, each from a cell of
/// `cells` picked at random (scvi pools draws per cell and resamples them
/// `n_samples_overall` times; the distribution is the same), z ~ q(z | x).
/// With `neighbours`, each draw is instead the mean over the cell's
/// neighbours of the classifier's probabilities at one draw of each
/// neighbour's z (RESOLVI's neighbour abundance; `None` without labels).
pub async fn group_samples<D: Device>(
    dev: &D,
    model: &Model<D>,
    data: &Data<'_>,
    cells: &[usize],
    samples: usize,
    neighbours: bool,
    seed: u64,
) -> Option<Vec<f32>> {
    let (g, l, k) = (data.genes(), model.cfg.n_latent, N_NEIGHBORS);
    let width = if neighbours { model.labels } else { g };
    if neighbours && model.classifier.is_none() {
        return None;
    }
    let mut out = Vec::with_capacity(samples * width);
    let per = if neighbours { k } else { 1 };
    let step = (CHUNK / per).max(1);
    for start in (0..samples).step_by(step) {
        let b = step.min(samples - start);
        let picked: Vec<usize> = (0..b)
            .map(|i| {
                let u = philox::uniform(seed, 3, start + i) as f64;
                cells[((u * cells.len() as f64) as usize).min(cells.len() - 1)]
            })
            .collect();
        let rows: Vec<usize> = if neighbours {
            picked
                .iter()
                .flat_map(|&r| {
                    data.nb.index[r * k..(r + 1) * k]
                        .iter()
                        .map(|&j| j as usize)
                })
                .collect()
        } else {
            picked.clone()
        };
        let n = rows.len();
        let x = data.rows(&rows);
        let enc = dev.upload_owned(encoder_input(&x, g));
        let tz = model.z_encoder.forward(dev, &enc, n, None);
        let sq = sqrt(dev, &tz.v, n * l);
        let (eps, se, z) = (dev.zeros(n * l), dev.zeros(n * l), dev.zeros(n * l));
        dev.random(true, mix(seed, 4, start as u64), 0, &eps);
        dev.binary(Binary::Mul, &eps, &sq, &se);
        dev.binary(Binary::Add, &se, &tz.m, &z);
        if neighbours {
            let cl = model.classifier.as_ref().expect("checked");
            let nl = model.labels;
            let logits = cl.forward(dev, &z, n);
            let p = dev.zeros(n * nl);
            dev.softmax_rows(&logits, n, nl, &p);
            let p = dev.read(&p).await;
            for cell in p.chunks_exact(k * nl) {
                for c in 0..nl {
                    out.push((0..k).map(|j| cell[j * nl + c]).sum::<f32>() / k as f32);
                }
            }
        } else {
            let codes: Vec<u32> = picked.iter().map(|&r| data.batch[r]).collect();
            let cats = (model.n_batch > 1).then(|| Cats::new(dev, &codes, model.n_batch));
            let px = model.decoder.forward(dev, &z, cats.as_ref(), n).px_scale;
            out.extend(dev.read(&px).await);
        }
    }
    Some(out)
}
