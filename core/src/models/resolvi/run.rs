//! Training RESOLVI and reading its results: minibatches drawn from the
//! counts in a fresh order each epoch (the host holds the counts; the
//! device one minibatch and the parameters), the KL warm-up, and the
//! outputs scvi-tools gives: the latent space, the corrected expression,
//! each cell's true / diffused / background proportions and, with labels,
//! the predicted cell types.

use super::model::{encoder_input, Data, Model};
use crate::compute::{philox, Binary, Device, Unary};
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
pub async fn train<D: Device>(
    dev: &D,
    model: &mut Model<D>,
    data: &Data<'_>,
    progress: Progress<'_>,
) -> History {
    let cfg = model.cfg;
    let n = data.n_obs();
    let mut history = History::default();
    for epoch in 0..cfg.epochs {
        let order = shuffled(n, mix(cfg.seed, 60, epoch as u64));
        let kw = kl_weight(epoch, cfg.kl_warmup);
        let (mut loss, mut recon, mut batches) = (0.0, 0.0, 0usize);
        for rows in order.chunks(cfg.batch_size) {
            let (l, r) = model.step(dev, data, rows, kw).await;
            loss += l;
            recon += r;
            batches += 1;
        }
        history.loss.push(loss / batches as f64);
        history.reconstruction.push(recon / n as f64);
        if !progress(epoch + 1, cfg.epochs, loss / batches as f64) {
            break;
        }
    }
    history
}

/// What the fitted model says about each cell.
#[derive(Debug, Clone, Default)]
pub struct Outputs {
    /// N×L: q(z)'s mean (`X_resolVI`).
    pub latent: Vec<f32>,
    /// N×G: the decoder's expression at the latent mean (library size 1),
    /// and times the cell's library size (the counts of the true signal
    /// alone).
    pub normalized: Vec<f32>,
    pub corrected: Vec<f32>,
    /// N×3: true, diffused and background proportions (rows sum to 1).
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
    let mut out = Outputs::default();
    let mut probs = model
        .classifier
        .as_ref()
        .map(|_| Vec::with_capacity(n * model.labels));
    for start in (0..n).step_by(CHUNK) {
        let rows: Vec<usize> = (start..(start + CHUNK).min(n)).collect();
        let b = rows.len();
        let x = data.rows(&rows);
        let enc = dev.upload_owned(encoder_input(&x, g));
        let tz = model.z_encoder.forward(dev, &enc, b, None);
        let cats = (model.n_batch > 1).then(|| {
            Cats::new(
                dev,
                &rows.iter().map(|&r| data.batch[r]).collect::<Vec<_>>(),
                model.n_batch,
            )
        });
        let px = model.decoder.forward(dev, &tz.m, cats.as_ref(), b).px_scale;
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
            let m = [row[0], row[1] + 0.01, row[2]];
            let t: f32 = m.iter().sum();
            out.fractions.extend(m.map(|v| v / t));
        }
        if let (Some(c), Some(p)) = (&model.classifier, probs.as_mut()) {
            let nl = model.labels;
            let (sq, lv, half) = (dev.zeros(b * l), dev.zeros(b * l), dev.zeros(b * l));
            dev.unary(Unary::Log, &tz.v, &lv);
            dev.binary(Binary::Mul, &lv, &dev.upload(&[0.5]), &half);
            dev.unary(Unary::Exp, &half, &sq);
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
                let logits = c.forward(dev, &z, b);
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
    out
}
