//! RESOLVI's parameters and its training step: the two encoders, the
//! decoder and the classifier, the mixture prior's means and logits, the
//! per-gene dispersions, each batch's background profile, every cell's
//! neighbour logits, and the five scalar sites on the host. A step runs the
//! guide and the model on one minibatch, [`elbo::head`] gives the loss's
//! gradients past the networks, the networks' backward passes take them
//! the rest of the way, and Adam moves everything.

use super::elbo::{self, Dims, HeadIn, Layout, Scalars};
use super::nn::{Cats, Decoder, Draw, Encoder, Linear, VarActivation};
use super::prep::{Neighbours, Priors, N_NEIGHBORS};
use crate::compute::{philox, AdamParams, Axis, Binary, Device, Reduce, Unary};
use crate::data::Matrix;
use crate::models::checkpoint::{read_all, write_all, Checkpoint};
use crate::models::svi::{mix, Tally};

/// RESOLVI's defaults.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Config {
    pub n_latent: usize,
    /// Decoder and encoder widths, hidden layers of each.
    pub n_hidden: usize,
    pub n_hidden_encoder: usize,
    pub n_layers: usize,
    pub dropout: f32,
    /// Mixture components of z's prior (the label count when labelled).
    pub mixture_k: usize,
    pub particles: usize,
    pub batch_size: usize,
    pub epochs: usize,
    pub kl_warmup: usize,
    pub lr: f32,
    /// For the neighbour logits and the mixture means.
    pub lr_extra: f32,
    pub adam_eps: f32,
    /// Multinomial downsampling of the z encoder's input in training.
    pub downsample: bool,
    pub seed: u64,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            n_latent: 10,
            n_hidden: 32,
            n_hidden_encoder: 128,
            n_layers: 2,
            dropout: 0.05,
            mixture_k: 50,
            particles: 5,
            batch_size: 512,
            epochs: 50,
            kl_warmup: 20,
            lr: 3e-3,
            lr_extra: 1e-2,
            adam_eps: 1e-4,
            downsample: true,
            seed: 0,
        }
    }
}

impl Config {
    /// Every field in range: a saved model is read from a file, and its
    /// sizes become allocations.
    pub fn validate(&self) -> Result<(), String> {
        let within = |what: &str, v: usize, lo: usize, hi: usize| {
            if (lo..=hi).contains(&v) {
                Ok(())
            } else {
                Err(format!("{what} {v}: expected {lo} to {hi}"))
            }
        };
        within("n_latent", self.n_latent, 1, 100)?;
        within("n_hidden", self.n_hidden, 1, 4096)?;
        within("n_hidden_encoder", self.n_hidden_encoder, 1, 4096)?;
        within("n_layers", self.n_layers, 1, 8)?;
        within("mixture_k", self.mixture_k, 1, 1000)?;
        within("particles", self.particles, 1, 64)?;
        within("batch_size", self.batch_size, 1, 65_536)?;
        within("epochs", self.epochs, 1, 10_000)?;
        within("kl_warmup", self.kl_warmup, 0, 10_000)?;
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(format!("dropout {}: expected 0 to 1", self.dropout));
        }
        for (what, v) in [
            ("lr", self.lr),
            ("lr_extra", self.lr_extra),
            ("adam_eps", self.adam_eps),
        ] {
            if !(v.is_finite() && v > 0.0 && v <= 1.0) {
                return Err(format!("{what} {v}: expected a number in (0, 1]"));
            }
        }
        Ok(())
    }
}

/// The data a model trains on: counts (cells × genes), each cell's library
/// size, neighbours, batch code and label (semi-supervised).
pub struct Data<'a> {
    pub x: &'a Matrix,
    pub lib: &'a [f64],
    pub nb: &'a Neighbours,
    pub batch: &'a [u32],
    pub n_batch: usize,
    /// Per cell its label's code, or none; the label count.
    pub labels: Option<(&'a [Option<u32>], usize)>,
    pub priors: Priors,
}

impl Data<'_> {
    pub fn n_obs(&self) -> usize {
        self.x.shape().0
    }

    pub fn genes(&self) -> usize {
        self.x.shape().1
    }

    /// Dense rows of x.
    pub fn rows(&self, rows: &[usize]) -> Vec<f32> {
        let g = self.genes();
        let mut out = vec![0f32; rows.len() * g];
        for (i, &r) in rows.iter().enumerate() {
            self.x.for_row(r, |c, v| out[i * g + c] = v);
        }
        out
    }
}

/// log1p(x / mean_g x), each row (the z encoder's input).
pub fn encoder_input(x: &[f32], g: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(x.len());
    for row in x.chunks_exact(g) {
        let mean = row.iter().map(|&v| v as f64).sum::<f64>() / g as f64;
        let inv = if mean > 0.0 { 1.0 / mean } else { 0.0 };
        out.extend(row.iter().map(|&v| (v as f64 * inv).ln_1p() as f32));
    }
    out
}

/// Multinomial(total, row / Σ row) draws of each row (the guide's
/// training-time downsampling), from the Philox stream `seed`.
fn downsample(x: &[f32], g: usize, total: usize, seed: u64) -> Vec<f32> {
    let mut out = vec![0f32; x.len()];
    let mut cum = vec![0f64; g];
    for (i, row) in x.chunks_exact(g).enumerate() {
        let mut acc = 0.0;
        for (c, &v) in row.iter().enumerate() {
            acc += v as f64;
            cum[c] = acc;
        }
        if acc <= 0.0 {
            continue;
        }
        for d in 0..total {
            let u = philox::uniform(seed, i as u32, d) as f64 * acc;
            let c = cum.partition_point(|&t| t <= u).min(g - 1);
            out[i * g + c] += 1.0;
        }
    }
    out
}

/// √v of an encoder's variance head (the guide's scale).
pub fn sqrt<D: Device>(dev: &D, v: &D::Buf, n: usize) -> D::Buf {
    let (lv, half, sq) = (dev.zeros(n), dev.zeros(n), dev.zeros(n));
    dev.unary(Unary::Log, v, &lv);
    dev.binary(Binary::Mul, &lv, &dev.upload(&[0.5]), &half);
    dev.unary(Unary::Exp, &half, &sq);
    sq
}

/// A device parameter with its gradient and Adam moments.
struct Param<D: Device> {
    value: D::Buf,
    grad: D::Buf,
    m: D::Buf,
    v: D::Buf,
}

impl<D: Device> Param<D> {
    fn new(dev: &D, init: Vec<f32>) -> Param<D> {
        let n = init.len();
        Param {
            value: dev.upload_owned(init),
            grad: dev.zeros(n),
            m: dev.zeros(n),
            v: dev.zeros(n),
        }
    }
}

pub struct Model<D: Device> {
    pub cfg: Config,
    pub genes: usize,
    pub n_obs: usize,
    pub n_batch: usize,
    /// Label count (0 without labels).
    pub labels: usize,
    pub priors: Priors,
    pub z_encoder: Encoder<D>,
    pub diffusion_encoder: Encoder<D>,
    pub decoder: Decoder<D>,
    pub classifier: Option<Linear<D>>,
    mu: Param<D>,
    u: Param<D>,
    pub sigma: f32,
    /// 1/φ = 1e-6 + exp(raw), per gene.
    px_r: Param<D>,
    /// Softmax over genes of each batch's row.
    background: Param<D>,
    /// N×K: map = −10 + 20 sigmoid(raw).
    map: Param<D>,
    /// Unconstrained (σ, a₀, a₁, a₂, κ) and their Adam moments.
    scalars: [f64; 5],
    scalar_moments: [[f64; 5]; 2],
    /// Network weights' Adam moments, in `params()` order.
    moments: Vec<(D::Buf, D::Buf)>,
    pub steps: u32,
    diffusion_eps: D::Buf,
    /// The index buffers of each minibatch size met (two: full and last).
    layouts: Vec<(usize, Layout<D>)>,
}

/// A trained model's weights, as `tessera resolvi` saves them so that
/// differential tests run without refitting (the per-cell neighbour logits
/// stay behind: the tests do not read them).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Saved {
    pub config: Config,
    pub genes: usize,
    pub n_obs: usize,
    pub n_batch: usize,
    pub labels: usize,
    pub priors: Priors,
    /// The networks' weights in `params()` order, then the mixture means
    /// and logits, the dispersions and the background logits.
    pub weights: Vec<Vec<f32>>,
    pub scalars: [f64; 5],
}

/// Lower bounds of the scalar sites' constraints.
const SCALAR_FLOOR: [f64; 5] = [1e-3, 1e-6, 1e-6, 1e-6, 1e-6];

impl<D: Device> Model<D> {
    pub fn new(dev: &D, cfg: Config, data: &Data) -> Model<D> {
        let (n_obs, genes) = data.x.shape();
        let labels = data.labels.map_or(0, |l| l.1);
        let k = if labels > 0 { labels } else { cfg.mixture_k };
        let l = cfg.n_latent;
        let seed = cfg.seed;
        // Means N(0, 1), or 0 when labelled; scale exp(−1) + 1e-4, or 1 + 1e-4.
        let mu: Vec<f32> = if labels > 0 {
            vec![0.0; k * l]
        } else {
            (0..k * l)
                .map(|i| philox::normal(mix(seed, 40, 0), 0, i))
                .collect()
        };
        let sigma = if labels > 0 {
            1.0 + 1e-4
        } else {
            (-1f32).exp() + 1e-4
        };
        let start = Scalars::start();
        let vals = [
            start.sparsity,
            start.alpha[0],
            start.alpha[1],
            start.alpha[2],
            start.kappa,
        ];
        let scalars = std::array::from_fn(|i| (vals[i] - SCALAR_FLOOR[i]).ln());
        Model {
            cfg,
            genes,
            n_obs,
            n_batch: data.n_batch,
            labels,
            priors: data.priors,
            z_encoder: Encoder::new(
                dev,
                genes,
                l,
                cfg.n_hidden_encoder,
                cfg.n_layers,
                cfg.dropout,
                VarActivation::Exp,
                1e-4,
                mix(seed, 41, 0),
            ),
            diffusion_encoder: Encoder::new(
                dev,
                genes,
                3,
                cfg.n_hidden_encoder,
                cfg.n_layers,
                0.0,
                VarActivation::Softmax,
                1e-3,
                mix(seed, 42, 0),
            ),
            decoder: Decoder::new(
                dev,
                l,
                genes,
                (cfg.n_hidden, cfg.n_layers),
                data.n_batch,
                mix(seed, 43, 0),
            ),
            classifier: (labels > 0).then(|| Linear::new(dev, l, labels, mix(seed, 44, 0))),
            mu: Param::new(dev, mu),
            u: Param::new(dev, vec![1.0; k]),
            sigma,
            px_r: Param::new(dev, vec![((0.01f64 - 1e-6).ln()) as f32; genes]),
            background: Param::new(dev, vec![1.0; data.n_batch * genes]),
            map: Param::new(dev, vec![0.0; n_obs * N_NEIGHBORS]),
            scalars,
            scalar_moments: [[0.0; 5]; 2],
            moments: vec![],
            steps: 0,
            diffusion_eps: dev.upload(&[0.0, 0.01, 0.0]),
            layouts: vec![],
        }
    }

    /// The scalar sites' current values.
    pub fn scalars(&self) -> Scalars {
        let v: [f64; 5] = std::array::from_fn(|i| SCALAR_FLOOR[i] + self.scalars[i].exp());
        Scalars {
            sparsity: v[0],
            alpha: [v[1], v[2], v[3]],
            kappa: v[4],
        }
    }

    /// Each cell's per-neighbour logits (N×K, constrained) and each batch's
    /// background profile (batches × genes).
    pub async fn point_estimates(&self, dev: &D) -> (Vec<f32>, Vec<f32>) {
        let map = dev.read(&self.map.value).await;
        let map = map
            .iter()
            .map(|&r| -10.0 + 20.0 / (1.0 + (-r).exp()))
            .collect();
        let b = dev.zeros(self.n_batch * self.genes);
        dev.softmax_rows(&self.background.value, self.n_batch, self.genes, &b);
        (map, dev.read(&b).await)
    }

    /// Every saved buffer, in [`Saved::weights`]' order.
    fn saved_buffers(&self) -> Vec<&D::Buf> {
        let mut b: Vec<&D::Buf> = self.network_params().into_iter().map(|p| p.0).collect();
        b.extend([
            &self.mu.value,
            &self.u.value,
            &self.px_r.value,
            &self.background.value,
        ]);
        b
    }

    pub async fn save(&self, dev: &D) -> Saved {
        let mut weights = vec![];
        for b in self.saved_buffers() {
            weights.push(dev.read(b).await);
        }
        Saved {
            config: self.cfg,
            genes: self.genes,
            n_obs: self.n_obs,
            n_batch: self.n_batch,
            labels: self.labels,
            priors: self.priors,
            weights,
            scalars: self.scalars,
        }
    }

    /// Every device buffer of the training state, in a fixed order: the
    /// networks' weights and Adam moments, then each site's value and
    /// moments (the moments are made here if no step has run yet).
    fn state(&mut self, dev: &D) -> Vec<&D::Buf> {
        if self.moments.is_empty() {
            self.moments = self
                .network_params()
                .iter()
                .map(|(w, _)| (dev.zeros(dev.len(w)), dev.zeros(dev.len(w))))
                .collect();
        }
        let mut out: Vec<&D::Buf> = self.network_params().into_iter().map(|(w, _)| w).collect();
        out.extend(self.moments.iter().flat_map(|(a, b)| [a, b]));
        for p in [&self.mu, &self.u, &self.px_r, &self.background, &self.map] {
            out.extend([&p.value, &p.m, &p.v]);
        }
        out
    }

    fn fit_name(&self) -> String {
        format!(
            "resolvi n{} g{} batches {} labels {} {:?}",
            self.n_obs, self.genes, self.n_batch, self.labels, self.cfg
        )
    }

    /// The whole training state after `epoch` epochs, with the losses so
    /// far (`history` is the loss, then the reconstruction, per epoch).
    pub async fn checkpoint(&mut self, dev: &D, epoch: usize, history: &[f64]) -> Checkpoint {
        let fit = self.fit_name();
        let buffers = read_all(dev, &self.state(dev)).await;
        let mut values = self.scalars.to_vec();
        values.extend(self.scalar_moments.iter().flatten());
        values.extend(history);
        Checkpoint {
            fit,
            epoch,
            steps: false,
            done: false,
            counters: vec![self.steps as u64],
            values,
            text: vec![],
            buffers,
        }
    }

    /// Puts a checkpoint back; returns the losses it holds.
    pub fn resume(&mut self, dev: &D, cp: &Checkpoint) -> Result<Vec<f64>, String> {
        if cp.values.len() < 15 || cp.counters.is_empty() {
            return Err("the checkpoint has no optimiser state".into());
        }
        let fit = self.fit_name();
        let state = self.state(dev);
        write_all(dev, &fit, cp, &state)?;
        self.scalars = std::array::from_fn(|i| cp.values[i]);
        self.scalar_moments =
            std::array::from_fn(|r| std::array::from_fn(|i| cp.values[5 + 5 * r + i]));
        self.steps = cp.counters[0] as u32;
        Ok(cp.values[15..].to_vec())
    }

    /// A saved model on `data`, which must be the data it was trained on
    /// (the same cells, genes, batches and labels).
    pub fn load(dev: &D, saved: &Saved, data: &Data) -> Result<Model<D>, String> {
        let labels = data.labels.map_or(0, |l| l.1);
        let have = (data.n_obs(), data.genes(), data.n_batch, labels);
        let want = (saved.n_obs, saved.genes, saved.n_batch, saved.labels);
        if have != want {
            return Err(format!(
                "the model was trained on {} cells × {} genes, {} batches, {} labels; this data has {} × {}, {}, {}",
                want.0, want.1, want.2, want.3, have.0, have.1, have.2, have.3
            ));
        }
        let mut m = Model::new(dev, saved.config, data);
        let bufs = m.saved_buffers();
        if bufs.len() != saved.weights.len()
            || bufs
                .iter()
                .zip(&saved.weights)
                .any(|(b, w)| dev.len(b) != w.len())
        {
            return Err("the saved weights do not fit this model's layers".into());
        }
        let fresh: Vec<D::Buf> = saved.weights.iter().map(|w| dev.upload(w)).collect();
        for (b, w) in bufs.into_iter().zip(&fresh) {
            dev.binary(Binary::Add, w, &dev.upload(&[0.0]), b);
        }
        m.scalars = saved.scalars;
        Ok(m)
    }

    /// Every network weight with its gradient.
    fn network_params(&self) -> Vec<(&D::Buf, &D::Buf)> {
        let mut p = self.z_encoder.params();
        p.extend(self.diffusion_encoder.params());
        p.extend(self.decoder.params());
        if let Some(c) = &self.classifier {
            p.extend(c.params());
        }
        p
    }

    fn mixture_k(&self) -> usize {
        if self.labels > 0 {
            self.labels
        } else {
            self.cfg.mixture_k
        }
    }

    fn dims(&self, b: usize) -> Dims {
        Dims {
            s: self.cfg.particles,
            b,
            g: self.genes,
            k: N_NEIGHBORS,
            l: self.cfg.n_latent,
            c: self.mixture_k(),
            e: self.n_batch,
            labels: self.labels,
            n_obs: self.n_obs,
        }
    }

    /// The batches' one-hot rows for layers with covariates (none for a
    /// single batch, as scvi-tools drops it).
    fn cats(&self, dev: &D, codes: impl Iterator<Item = u32>) -> Option<Cats<D>> {
        (self.n_batch > 1).then(|| Cats::new(dev, &codes.collect::<Vec<_>>(), self.n_batch))
    }

    /// One step of Adam on the minibatch `rows`; returns the loss (−ELBO)
    /// and the Poisson log-likelihood per particle.
    pub async fn step(
        &mut self,
        dev: &D,
        data: &Data<'_>,
        rows: &[usize],
        kl_weight: f32,
    ) -> (f64, f64) {
        self.steps += 1;
        let step = self.steps as u64;
        let seed = self.cfg.seed;
        let (b, g, k) = (rows.len(), self.genes, N_NEIGHBORS);
        let dims = self.dims(b);
        let (s, l) = (dims.s, dims.l);
        if !self.layouts.iter().any(|(n, _)| *n == b) {
            self.layouts.push((b, Layout::new(dev, dims)));
        }
        let sb = s * b;
        let zeros = |n: usize| dev.zeros(n);
        let rep = |x: &D::Buf, n: usize, times: usize| {
            let out = zeros(n * times);
            dev.binary(Binary::Add, &zeros(n * times), x, &out);
            out
        };

        // The minibatch on the host.
        let x = data.rows(rows);
        let neighbours: Vec<usize> = rows
            .iter()
            .flat_map(|&r| {
                data.nb.index[r * k..(r + 1) * k]
                    .iter()
                    .map(|&j| j as usize)
            })
            .collect();
        let xn = data.rows(&neighbours);
        let enc_x = if self.cfg.downsample {
            let p = &data.priors;
            let n = (p.mean_log_counts
                + p.std_log_counts * philox::normal(mix(seed, 50, step), 0, 0) as f64)
                .exp();
            downsample(&x, g, n as usize + 10, mix(seed, 51, step))
        } else {
            x.clone()
        };
        let d2: Vec<f32> = rows
            .iter()
            .flat_map(|&r| data.nb.dist2[r * k..(r + 1) * k].iter().copied())
            .collect();
        let sc = self.scalars();
        let [offset_pi, conc, dconc] =
            elbo::neighbour_terms(&d2, data.priors.median_distance, sc.kappa);
        let mut onehot = vec![0f32; b * self.n_batch];
        for (i, &r) in rows.iter().enumerate() {
            onehot[i * self.n_batch + data.batch[r] as usize] = 1.0;
        }
        let codes = |per: usize| {
            (0..s).flat_map(move |_| {
                rows.iter()
                    .flat_map(move |&r| std::iter::repeat_n(data.batch[r], per))
            })
        };
        let cats = self.cats(dev, codes(1));
        let cats_n = self.cats(dev, codes(k));

        // The guide: q(z) from the (downsampled) counts, the proportions.
        let enc_in = dev.upload_owned(encoder_input(&enc_x, g));
        let diff_in = dev.upload_owned(x.iter().map(|&v| v.ln_1p()).collect());
        let tz = self.z_encoder.forward(
            dev,
            &enc_in,
            b,
            Some(Draw {
                seed: mix(seed, 52, step),
                offset: 0,
            }),
        );
        let sq = sqrt(dev, &tz.v, b * l);
        let eps = zeros(sb * l);
        dev.random(true, mix(seed, 53, step), 0, &eps);
        let (se, z) = (zeros(sb * l), zeros(sb * l));
        dev.binary(Binary::Mul, &eps, &sq, &se);
        dev.binary(Binary::Add, &se, &tz.m, &z);
        let td = self.diffusion_encoder.forward(dev, &diff_in, b, None);
        let m = zeros(b * 3);
        dev.binary(Binary::Add, &td.v, &self.diffusion_eps, &m);

        // The model: the cell's expression, its neighbours' (no gradient).
        let tdec = self.decoder.forward(dev, &z, cats.as_ref(), sb);
        let xn_in = dev.upload_owned(encoder_input(&xn, g));
        let tn = self.z_encoder.forward(dev, &xn_in, b * k, None);
        let sqn = sqrt(dev, &tn.v, b * k * l);
        let epsn = zeros(sb * k * l);
        dev.random(true, mix(seed, 54, step), 0, &epsn);
        let (sen, zn) = (zeros(sb * k * l), zeros(sb * k * l));
        dev.binary(Binary::Mul, &epsn, &sqn, &sen);
        dev.binary(Binary::Add, &sen, &tn.m, &zn);
        let pn = self
            .decoder
            .forward(dev, &zn, cats_n.as_ref(), sb * k)
            .px_scale;
        let logits = self.classifier.as_ref().map(|c| c.forward(dev, &z, sb));

        // Constrained values of the point estimates.
        let px_r_inv = zeros(g);
        let ex = zeros(g);
        dev.unary(Unary::Exp, &self.px_r.value, &ex);
        dev.binary(Binary::Add, &ex, &dev.upload(&[1e-6]), &px_r_inv);
        let background = zeros(self.n_batch * g);
        dev.softmax_rows(&self.background.value, self.n_batch, g, &background);
        let map_idx: Vec<u32> = rows
            .iter()
            .flat_map(|&r| (0..k).map(move |j| (r * k + j) as u32))
            .collect();
        let map_idx = dev.upload_index(&map_idx);
        let (map_raw, map_sig, map20, map) =
            (zeros(b * k), zeros(b * k), zeros(b * k), zeros(b * k));
        dev.gather(&self.map.value, &map_idx, &map_raw);
        dev.unary(Unary::Sigmoid, &map_raw, &map_sig);
        dev.binary(Binary::Mul, &map_sig, &dev.upload(&[20.0]), &map20);
        dev.binary(Binary::Add, &map20, &dev.upload(&[-10.0]), &map);

        // Semi-supervised: the labelled cells' logit offsets and targets.
        let (mut u_off, mut target, mut mask) = (vec![], vec![], vec![]);
        if let Some((labels, n)) = data.labels {
            u_off = vec![0f32; sb * n];
            target = vec![0f32; sb * n];
            mask = vec![0f32; sb];
            for p in 0..s {
                for (i, &r) in rows.iter().enumerate() {
                    if let Some(y) = labels[r] {
                        let at = (p * b + i) * n + y as usize;
                        u_off[at] = 10.0;
                        target[at] = 1.0;
                        mask[p * b + i] = 1.0;
                    }
                }
            }
        }
        let (u_off, target, mask) = (
            dev.upload_owned(u_off),
            dev.upload_owned(target),
            dev.upload_owned(mask),
        );

        let x_b = dev.upload_owned(x);
        let x_rep = rep(&x_b, b * g, s);
        let lib = dev.upload_owned(rows.iter().map(|&r| data.lib[r] as f32).collect());
        let (offset_pi, conc, dconc) = (
            dev.upload_owned(offset_pi),
            dev.upload_owned(conc),
            dev.upload_owned(dconc),
        );
        let batch = dev.upload_owned(onehot);
        let alpha = dev.upload(&sc.alpha.map(|a| a as f32));
        let tally = Tally::new(dev, &elbo::TALLY);
        let gr = elbo::head(
            dev,
            &self
                .layouts
                .iter()
                .find(|(n, _)| *n == b)
                .expect("made above")
                .1,
            &HeadIn {
                x_rep: &x_rep,
                lib: &lib,
                offset_pi: &offset_pi,
                conc: &conc,
                dconc: &dconc,
                batch: &batch,
                z: &z,
                qm: &tz.m,
                qv: &tz.v,
                px_scale: &tdec.px_scale,
                px_scale_n: &pn,
                m: &m,
                map: &map,
                normals: &{
                    let n = zeros(sb * g);
                    dev.random(true, mix(seed, 55, step), 0, &n);
                    n
                },
                px_r_inv: &px_r_inv,
                background: &background,
                alpha: &alpha,
                mu: &self.mu.value,
                u: &self.u.value,
                u_offset: (self.labels > 0).then_some(&u_off),
                sigma: self.sigma,
                classes: logits.as_ref().map(|lg| (lg, &target, &mask)),
                kl_weight,
            },
            &tally,
        );

        // Back through the networks.
        let gz = zeros(sb * l);
        let gz_dec = self
            .decoder
            .backward(dev, &z, cats.as_ref(), &tdec, &gr.px_scale, true)
            .expect("asked");
        dev.binary(Binary::Add, &gr.z, &gz_dec, &gz);
        let gz = match (&self.classifier, &gr.logits) {
            (Some(c), Some(gl)) => {
                let gzc = c.backward(dev, &z, gl, sb, true).expect("asked");
                let t = zeros(sb * l);
                dev.binary(Binary::Add, &gz, &gzc, &t);
                t
            }
            _ => gz,
        };
        // z = m + √v ε: ∂/∂m = Σ_particles g_z, ∂/∂v = Σ g_z ε / 2√v.
        let (gsum, gm, ge, gesum, gv0, gv1, gv) = (
            zeros(b * l),
            zeros(b * l),
            zeros(sb * l),
            zeros(b * l),
            zeros(b * l),
            zeros(b * l),
            zeros(b * l),
        );
        dev.reduce(Reduce::Sum, Axis::Cols, &gz, s, b * l, &gsum);
        dev.binary(Binary::Add, &gr.qm, &gsum, &gm);
        dev.binary(Binary::Mul, &gz, &eps, &ge);
        dev.reduce(Reduce::Sum, Axis::Cols, &ge, s, b * l, &gesum);
        dev.binary(Binary::Div, &gesum, &sq, &gv0);
        dev.binary(Binary::Mul, &gv0, &dev.upload(&[0.5]), &gv1);
        dev.binary(Binary::Add, &gr.qv, &gv1, &gv);
        self.z_encoder.backward(dev, &enc_in, &tz, &gm, &gv, false);
        self.diffusion_encoder
            .backward(dev, &diff_in, &td, &zeros(b * 3), &gr.m, false);

        // To the unconstrained point estimates.
        dev.binary(Binary::Mul, &gr.px_r_inv, &ex, &self.px_r.grad);
        dev.softmax_backward(
            &background,
            &gr.background,
            self.n_batch,
            g,
            &self.background.grad,
        );
        let (one_minus, ds, dmap) = (zeros(b * k), zeros(b * k), zeros(b * k));
        dev.binary(
            Binary::Sub,
            &dev.upload(&vec![1.0; b * k]),
            &map_sig,
            &one_minus,
        );
        dev.binary(Binary::Mul, &map20, &one_minus, &ds);
        dev.binary(Binary::Mul, &gr.map, &ds, &dmap);
        self.map.grad = zeros(self.n_obs * k);
        dev.scatter_add(&dmap, &map_idx, &self.map.grad);

        // Adam everywhere; pyro moves every row of the neighbour logits.
        let adam = |lr: f32| AdamParams {
            lr,
            eps: self.cfg.adam_eps,
            step: self.steps,
            ..AdamParams::default()
        };
        let (lr, lr_extra) = (self.cfg.lr, self.cfg.lr_extra);
        dev.adam(
            adam(lr_extra),
            &self.mu.value,
            &gr.mu,
            &self.mu.m,
            &self.mu.v,
        );
        dev.adam(adam(lr), &self.u.value, &gr.u, &self.u.m, &self.u.v);
        for (p, lr) in [
            (&self.px_r, lr),
            (&self.background, lr),
            (&self.map, lr_extra),
        ] {
            dev.adam(adam(lr), &p.value, &p.grad, &p.m, &p.v);
        }
        if self.moments.is_empty() {
            self.moments = self
                .network_params()
                .iter()
                .map(|(w, _)| (zeros(dev.len(w)), zeros(dev.len(w))))
                .collect();
        }
        for ((w, gw), (m1, m2)) in self.network_params().into_iter().zip(&self.moments) {
            dev.adam(adam(lr), w, gw, m1, m2);
        }

        // The scalar sites on the host.
        let t = tally.read(dev).await;
        let (prior, gp) = sc.prior_loss(data.priors.background_ratio);
        let ga = t.seg(elbo::G_ALPHA);
        let grads = [
            gp[0],
            gp[1] + ga[0],
            gp[2] + ga[1],
            gp[3] + ga[2],
            gp[4] + t.at(elbo::G_KAPPA),
        ];
        let a = adam(lr);
        let (b1, b2) = (a.beta1 as f64, a.beta2 as f64);
        let st = self.steps as i32;
        for (i, gv) in grads.iter().enumerate() {
            let g_raw = gv * self.scalars[i].exp();
            let [m1, m2] = &mut self.scalar_moments;
            m1[i] = b1 * m1[i] + (1.0 - b1) * g_raw;
            m2[i] = b2 * m2[i] + (1.0 - b2) * g_raw * g_raw;
            let (mh, vh) = (m1[i] / (1.0 - b1.powi(st)), m2[i] / (1.0 - b2.powi(st)));
            self.scalars[i] -= a.lr as f64 * mh / (vh.sqrt() + a.eps as f64);
        }
        (t.at(elbo::LOSS) + prior, t.at(elbo::RECON))
    }
}
