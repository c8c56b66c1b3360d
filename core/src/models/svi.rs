//! Stochastic variational inference pieces shared by the cell2location
//! models: Pyro's `AutoNormal` guide (every positive site is exp of an
//! independent Normal(loc, softplus(raw)), scale 0.1 at the start), one
//! reparameterised draw per step, and Adam on loc and raw.
//!
//! With u = loc + σε and z = e^u, and gz = ∂(log p)/∂z accumulated by the
//! model, the gradients of the negative ELBO are
//!
//! ```text
//! g_u = z gz + 1,   dL/dloc = −g_u,   dL/dσ = −(g_u ε + 1/σ)
//! ```
//!
//! Sites big enough to matter live on the device ([`Site`]); scalar
//! hyperparameters live on the host ([`HostSite`]), fed by sums the model
//! gathers on the device into one [`Tally`] read back once per step.

use crate::compute::special::{lgamma, sigmoid, softplus};
use crate::compute::{philox, AdamParams, Axis, Binary, Device, Reduce, Unary};
use crate::models::checkpoint::{self, Checkpoint};

pub const INIT_SCALE: f64 = 0.1;
/// Φ⁻¹(0.95).
pub const Z95: f64 = 1.644_853_626_951_472_2;

/// Mean, standard deviation, 5% and 95% quantiles of each element of a
/// site's posterior (closed form for the guide's lognormals).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Summary {
    pub means: Vec<f64>,
    pub stds: Vec<f64>,
    pub q05: Vec<f64>,
    pub q95: Vec<f64>,
}

impl Summary {
    fn push(&mut self, loc: f64, sigma: f64) {
        let mean = (loc + 0.5 * sigma * sigma).exp();
        self.means.push(mean);
        self.stds.push(mean * ((sigma * sigma).exp() - 1.0).sqrt());
        self.q05.push((loc - Z95 * sigma).exp());
        self.q95.push((loc + Z95 * sigma).exp());
    }

    pub fn extend(&mut self, other: Summary) {
        self.means.extend(other.means);
        self.stds.extend(other.stds);
        self.q05.extend(other.q05);
        self.q95.extend(other.q95);
    }

    /// The four statistics in cell2location's order (means, stds, q05, q95).
    pub fn parts(&self) -> [(&'static str, &[f64]); 4] {
        [
            ("means", &self.means),
            ("stds", &self.stds),
            ("q05", &self.q05),
            ("q95", &self.q95),
        ]
    }
}

/// Log-density of Gamma(shape a, rate b) at z.
pub fn gamma_lp(z: f64, a: f64, b: f64) -> f64 {
    a * b.ln() - lgamma(a) + (a - 1.0) * z.ln() - b * z
}

/// The Philox stream of one site at one step.
pub fn mix(seed: u64, site: u64, step: u64) -> u64 {
    seed.wrapping_mul(0x9e37_79b9_7f4a_7c15)
        ^ (site << 56)
        ^ (site >> 8).wrapping_mul(0x94d0_49bb_1331_11eb)
        ^ step.wrapping_mul(0xbf58_476d_1ce4_e5b9)
}

/// Slots of the guide's part of the ELBO in a [`Tally`].
#[derive(Clone, Copy)]
pub struct GuideSlots {
    pub u: usize,
    pub log_sigma: usize,
    pub eps2: usize,
}

/// A mean-field site on the device.
pub struct Site<D: Device> {
    id: u64,
    pub len: usize,
    loc: D::Buf,
    raw: D::Buf,
    m: [D::Buf; 4],
    eps: D::Buf,
    sigma: D::Buf,
    /// This step's draw.
    pub z: D::Buf,
    /// ∂(log p)/∂z, written by the model before [`Site::step`].
    pub gz: D::Buf,
    /// Scratch the model may use between `draw` and `step`.
    pub t: [D::Buf; 3],
    /// Ones, as long as the site (`binary` broadcasts only its second operand).
    pub ones: D::Buf,
}

impl<D: Device> Site<D> {
    /// A site starting at `init` (positive values) with scale 0.1.
    pub fn new(dev: &D, id: u64, init: &[f32]) -> Site<D> {
        let len = init.len();
        let raw0 = (INIT_SCALE.exp() - 1.0).ln() as f32;
        let z = || dev.zeros(len);
        Site {
            id,
            len,
            loc: dev.upload(&init.iter().map(|v| v.ln()).collect::<Vec<_>>()),
            raw: dev.upload(&vec![raw0; len]),
            m: [z(), z(), z(), z()],
            eps: z(),
            sigma: z(),
            z: z(),
            gz: z(),
            t: [z(), z(), z()],
            ones: dev.upload(&vec![1.0; len]),
        }
    }

    /// Draws u = loc + σ ε and z = e^u for this step, and adds Σ u,
    /// Σ log σ and Σ ε² (the Jacobian and −log q parts of the ELBO) to the
    /// tally.
    pub fn draw(&self, dev: &D, seed: u64, step: u64, tally: &Tally<D>, slots: GuideSlots) {
        dev.random(true, mix(seed, self.id, step), 0, &self.eps);
        dev.unary(Unary::Softplus, &self.raw, &self.sigma);
        dev.binary(Binary::Mul, &self.sigma, &self.eps, &self.t[0]);
        dev.binary(Binary::Add, &self.loc, &self.t[0], &self.t[1]);
        dev.unary(Unary::Exp, &self.t[1], &self.z);
        tally.sum(dev, &self.t[1], self.len, slots.u);
        dev.unary(Unary::Log, &self.sigma, &self.t[2]);
        tally.sum(dev, &self.t[2], self.len, slots.log_sigma);
        dev.binary(Binary::Mul, &self.eps, &self.eps, &self.t[2]);
        tally.sum(dev, &self.t[2], self.len, slots.eps2);
    }

    /// Turns gz into guide gradients and takes one Adam step on loc and raw.
    pub fn step(&self, dev: &D, c: &Consts<D>, p: AdamParams) {
        let [a, b, gu] = &self.t;
        // g_u = z gz + 1; dL/dloc = −g_u.
        dev.binary(Binary::Mul, &self.z, &self.gz, a);
        dev.binary(Binary::Add, a, &c.one, gu);
        dev.binary(Binary::Mul, gu, &c.minus_one, a);
        dev.adam(p, &self.loc, a, &self.m[0], &self.m[1]);
        // dL/draw = −(g_u ε + 1/σ) · sigmoid(raw).
        dev.binary(Binary::Mul, gu, &self.eps, a);
        dev.binary(Binary::Div, &self.ones, &self.sigma, b);
        dev.binary(Binary::Add, a, b, gu);
        dev.unary(Unary::Sigmoid, &self.raw, a);
        dev.binary(Binary::Mul, gu, a, b);
        dev.binary(Binary::Mul, b, &c.minus_one, a);
        dev.adam(p, &self.raw, a, &self.m[2], &self.m[3]);
    }

    /// The guide and its optimiser moments: what a checkpoint holds.
    fn state(&self) -> [&D::Buf; 6] {
        let [m0, m1, m2, m3] = &self.m;
        [&self.loc, &self.raw, m0, m1, m2, m3]
    }

    pub async fn summary(&self, dev: &D) -> Summary {
        let (loc, raw) = (dev.read(&self.loc).await, dev.read(&self.raw).await);
        let mut s = Summary::default();
        for (&l, &r) in loc.iter().zip(&raw) {
            s.push(l as f64, softplus(r as f64));
        }
        s
    }

    /// The guide's loc and σ per element (for Monte Carlo of derived values).
    pub async fn guide(&self, dev: &D) -> (Vec<f64>, Vec<f64>) {
        let (loc, raw) = (dev.read(&self.loc).await, dev.read(&self.raw).await);
        (
            loc.iter().map(|&v| v as f64).collect(),
            raw.iter().map(|&r| softplus(r as f64)).collect(),
        )
    }

    pub async fn probe(&self, dev: &D) -> (Vec<f64>, Vec<f64>) {
        let f = |v: Vec<f32>| v.into_iter().map(|x| x as f64).collect();
        (f(dev.read(&self.z).await), f(dev.read(&self.gz).await))
    }
}

/// Device constants the sites share.
pub struct Consts<D: Device> {
    pub one: D::Buf,
    pub minus_one: D::Buf,
}

impl<D: Device> Consts<D> {
    pub fn new(dev: &D) -> Consts<D> {
        Consts {
            one: dev.upload(&[1.0]),
            minus_one: dev.upload(&[-1.0]),
        }
    }
}

/// A mean-field site on the host (a handful of hyperparameters).
pub struct HostSite {
    loc: Vec<f64>,
    raw: Vec<f64>,
    m: [Vec<f64>; 4],
    eps: Vec<f64>,
    pub z: Vec<f64>,
    pub gz: Vec<f64>,
}

impl HostSite {
    pub fn new(init: &[f64]) -> HostSite {
        let n = init.len();
        HostSite {
            loc: init.iter().map(|v| v.ln()).collect(),
            raw: vec![(INIT_SCALE.exp() - 1.0).ln(); n],
            m: std::array::from_fn(|_| vec![0.0; n]),
            eps: vec![0.0; n],
            z: vec![0.0; n],
            gz: vec![0.0; n],
        }
    }

    pub fn draw(&mut self, seed: u64, id: u64, step: u64) {
        let s = mix(seed, id, step);
        for i in 0..self.loc.len() {
            self.eps[i] = philox::normal(s, 0, i) as f64;
            self.z[i] = (self.loc[i] + softplus(self.raw[i]) * self.eps[i]).exp();
            self.gz[i] = 0.0;
        }
    }

    /// The host twin of the guide terms [`Site::draw`] tallies.
    pub fn guide_terms(&self) -> f64 {
        (0..self.loc.len())
            .map(|i| self.z[i].ln() + softplus(self.raw[i]).ln() + 0.5 * self.eps[i] * self.eps[i])
            .sum()
    }

    pub fn len(&self) -> usize {
        self.loc.len()
    }

    /// The guide and its optimiser moments, for a checkpoint.
    fn state(&self) -> Vec<f64> {
        let [m0, m1, m2, m3] = &self.m;
        [&self.loc[..], &self.raw, m0, m1, m2, m3].concat()
    }

    fn restore(&mut self, v: &[f64]) {
        let n = self.len();
        let [m0, m1, m2, m3] = &mut self.m;
        for (i, dst) in [&mut self.loc, &mut self.raw, m0, m1, m2, m3]
            .into_iter()
            .enumerate()
        {
            dst.copy_from_slice(&v[i * n..(i + 1) * n]);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.loc.is_empty()
    }

    pub fn step(&mut self, p: AdamParams) {
        let t = p.step as i32;
        let (b1, b2) = (p.beta1 as f64, p.beta2 as f64);
        let adam = |w: &mut f64, g: f64, m: &mut f64, v: &mut f64| {
            *m = b1 * *m + (1.0 - b1) * g;
            *v = b2 * *v + (1.0 - b2) * g * g;
            let (mh, vh) = (*m / (1.0 - b1.powi(t)), *v / (1.0 - b2.powi(t)));
            *w -= p.lr as f64 * mh / (vh.sqrt() + p.eps as f64);
        };
        let [m0, m1, m2, m3] = &mut self.m;
        for i in 0..self.loc.len() {
            let gu = self.z[i] * self.gz[i] + 1.0;
            let sigma = softplus(self.raw[i]);
            adam(&mut self.loc[i], -gu, &mut m0[i], &mut m1[i]);
            let g_raw = -(gu * self.eps[i] + 1.0 / sigma) * sigmoid(self.raw[i]);
            adam(&mut self.raw[i], g_raw, &mut m2[i], &mut m3[i]);
        }
    }

    pub fn summary(&self) -> Summary {
        let mut s = Summary::default();
        for (l, r) in self.loc.iter().zip(&self.raw) {
            s.push(*l, softplus(*r));
        }
        s
    }
}

/// Every number the host needs from one step, summed on the device into one
/// buffer and read back in a single transfer. The model lays it out as
/// segments of given lengths; a scalar slot is a segment of length one.
pub struct Tally<D: Device> {
    out: D::Buf,
    scalar: D::Buf,
    /// Index buffer of each segment (its positions in `out`).
    seg: Vec<D::Index>,
    start: Vec<usize>,
    len: usize,
}

impl<D: Device> Tally<D> {
    pub fn new(dev: &D, segments: &[usize]) -> Tally<D> {
        let mut start = Vec::with_capacity(segments.len());
        let mut seg = Vec::with_capacity(segments.len());
        let mut at = 0usize;
        for &n in segments {
            start.push(at);
            seg.push(dev.upload_index(&(at as u32..(at + n) as u32).collect::<Vec<_>>()));
            at += n;
        }
        Tally {
            out: dev.zeros(at),
            scalar: dev.zeros(1),
            seg,
            start,
            len: at,
        }
    }

    pub fn reset(&mut self, dev: &D) {
        self.out = dev.zeros(self.len);
    }

    /// Adds the sum of the first `len` values of `x` to (the first value of)
    /// segment `slot`.
    pub fn sum(&self, dev: &D, x: &D::Buf, len: usize, slot: usize) {
        dev.reduce(Reduce::Sum, Axis::Rows, x, 1, len, &self.scalar);
        dev.scatter_add(&self.scalar, &self.seg[slot], &self.out);
    }

    /// Adds a vector as long as segment `slot` to it.
    pub fn add(&self, dev: &D, v: &D::Buf, slot: usize) {
        dev.scatter_add(v, &self.seg[slot], &self.out);
    }

    /// Reads every segment back.
    pub async fn read(&self, dev: &D) -> TallyValues {
        TallyValues {
            v: dev
                .read(&self.out)
                .await
                .iter()
                .map(|&v| v as f64)
                .collect(),
            start: self.start.clone(),
        }
    }
}

pub struct TallyValues {
    v: Vec<f64>,
    start: Vec<usize>,
}

impl TallyValues {
    pub fn at(&self, slot: usize) -> f64 {
        self.v[self.start[slot]]
    }

    pub fn seg(&self, slot: usize) -> &[f64] {
        let end = self.start.get(slot + 1).copied().unwrap_or(self.v.len());
        &self.v[self.start[slot]..end]
    }
}

/// A fit of sites checkpointed: every device site (one split into row
/// blocks is given as its parts, and kept whole, so a checkpoint goes on on
/// a device that splits it otherwise), every host site, the optimiser's
/// step count and the losses so far.
pub struct Sites<'a, D: Device> {
    pub fit: String,
    pub device: Vec<Vec<&'a Site<D>>>,
}

impl<D: Device> Sites<'_, D> {
    pub async fn checkpoint(
        &self,
        dev: &D,
        done: usize,
        steps: bool,
        step: u64,
        host: &[&HostSite],
        history: &[f64],
    ) -> Checkpoint {
        let mut buffers = Vec::with_capacity(6 * self.device.len());
        for parts in &self.device {
            for j in 0..6 {
                let mut whole = Vec::new();
                for p in parts {
                    whole.extend(dev.read(p.state()[j]).await);
                }
                buffers.push(whole);
            }
        }
        let mut values: Vec<f64> = host.iter().flat_map(|h| h.state()).collect();
        values.extend(history);
        Checkpoint {
            fit: self.fit.clone(),
            epoch: done,
            steps,
            done: false,
            counters: vec![step],
            values,
            text: vec![],
            buffers,
        }
    }

    /// Puts a checkpoint back, after checking all of it belongs to this
    /// fit; returns the step count and the losses.
    pub fn restore(
        &self,
        dev: &D,
        cp: &Checkpoint,
        host: &mut [&mut HostSite],
    ) -> Result<(u64, Vec<f64>), String> {
        let lens = self
            .device
            .iter()
            .map(|parts| parts.iter().map(|p| p.len).sum::<usize>());
        let host_len: usize = host.iter().map(|h| 6 * h.len()).sum();
        let fits = cp.fit == self.fit
            && cp.counters.len() == 1
            && cp.values.len() == host_len + cp.epoch
            && cp.buffers.len() == 6 * self.device.len()
            && lens
                .flat_map(|n| [n; 6])
                .zip(&cp.buffers)
                .all(|(n, b)| b.len() == n);
        if !fits {
            return Err(format!(
                "the checkpoint is of another fit ({}; this one is {})",
                cp.fit, self.fit
            ));
        }
        let mut pairs = vec![];
        for (parts, six) in self.device.iter().zip(cp.buffers.chunks_exact(6)) {
            for (j, whole) in six.iter().enumerate() {
                let mut at = 0;
                for p in parts {
                    pairs.push((p.state()[j], &whole[at..at + p.len]));
                    at += p.len;
                }
            }
        }
        checkpoint::put(dev, pairs);
        let mut at = 0;
        for h in host.iter_mut() {
            let n = 6 * h.len();
            h.restore(&cp.values[at..at + n]);
            at += n;
        }
        Ok((cp.counters[0], cp.values[at..].to_vec()))
    }
}
