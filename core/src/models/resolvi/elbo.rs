//! RESOLVI's loss (the negative ELBO of its model and guide) past the
//! networks, with its gradients by hand. The networks' outputs come in (the
//! guide's q(z) moments and draws, each cell's mixture proportions, the
//! decoded expression of the cell and of its neighbours, the classifier's
//! logits); the loss of one minibatch and its gradients in each of them and
//! in the model's own parameters go out. Every guide site but z is a point
//! estimate, so the loss is −E_q(z)[log p(x, ·) − log q(z)] over
//! `s` vectorised particles, stacked as the outermost row block.
//!
//! Per cell i (minibatch terms scaled by n_obs / b, particle terms also
//! averaged over particles):
//! - π_i = softmax(map_i − min(√(d_ik / median), 10)) ~ Dirichlet(c_i),
//!   c_ik = 30 (exp(−min(κ d_ik / median, 20)) + 1e-3);
//! - m_i = (true, diffused, background) ~ 5 × Dirichlet(a);
//! - 1/φ_g ~ Exponential(1) for every cell;
//! - z_i: kl_weight × (log p(z) under the Gaussian mixture − log q(z));
//! - rate = m_true e^ℓ ρ_i + Σ_k π_ik m_diff e^ℓ ρ_ik, y = rate' · γ with
//!   rate' = rate + 1e-6 and γ ≈ Gamma(φ, φ)-noise, x ~ Poisson(y + m_bg
//!   e^ℓ b_batch + 1e-9);
//! - 50 × log softmax(logits)[label] for labelled cells.
//!
//! γ is Marsaglia and Tsang's transform of a normal draw n without its
//! rejection step: γ = (d/φ) t³, t = max(1 + n / (3√d), 0), d = φ − 1/3.
//! It is the Gamma(φ, φ) draw for all but a vanishing share of draws when
//! φ is large (it starts at 100) and keeps a closed-form path derivative in
//! φ: dγ/dφ = t³ / (3φ²) − t² n / (2φ√d), zero where t is clamped.

use super::density::dirichlet_logp;
use super::prior::{self, mixture_logp};
use crate::compute::special::lgamma;
use crate::compute::{Axis, Binary, Csr, Device, Gemm, Reduce, Unary};
use crate::models::svi::Tally;

/// Tally slots: the loss, its gradient in the shared Dirichlet
/// concentrations a (three values) and in the diffusion scale κ, and the
/// Poisson log-likelihood alone (for the history).
pub const LOSS: usize = 0;
pub const G_ALPHA: usize = 1;
pub const G_KAPPA: usize = 2;
pub const RECON: usize = 3;
pub const TALLY: [usize; 4] = [1, 3, 1, 1];

/// Minibatch sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dims {
    /// Particles, cells, genes, neighbours per cell, latent dimensions,
    /// mixture components, batches, labels (0 without a classifier).
    pub s: usize,
    pub b: usize,
    pub g: usize,
    pub k: usize,
    pub l: usize,
    pub c: usize,
    pub e: usize,
    pub labels: usize,
    /// Cells in the dataset (the minibatch terms' scale).
    pub n_obs: usize,
}

/// Index buffers that depend only on the sizes, made once per shape.
pub struct Layout<D: Device> {
    dims: Dims,
    /// Positions of m's three columns (b each).
    cols: [D::Index; 3],
    /// The (s·b) × (s·b·k) pooling pattern: row r sums columns rk..rk+k.
    indptr: D::Index,
    indices: D::Index,
    ones: D::Buf,
}

impl<D: Device> Layout<D> {
    pub fn new(dev: &D, dims: Dims) -> Layout<D> {
        let (b, k) = (dims.b, dims.k);
        let sb = dims.s * b;
        let col =
            |j: usize| dev.upload_index(&(0..b).map(|i| (3 * i + j) as u32).collect::<Vec<_>>());
        Layout {
            dims,
            cols: [col(0), col(1), col(2)],
            indptr: dev.upload_index(&(0..=sb).map(|r| (r * k) as u32).collect::<Vec<_>>()),
            indices: dev.upload_index(&(0..sb * k).map(|c| c as u32).collect::<Vec<_>>()),
            ones: dev.upload(&vec![1.0; sb * k]),
        }
    }

    fn pool<'a>(&'a self, data: &'a D::Buf) -> Csr<'a, D> {
        let sb = self.dims.s * self.dims.b;
        Csr {
            rows: sb,
            cols: sb * self.dims.k,
            indptr: &self.indptr,
            indices: &self.indices,
            data,
        }
    }
}

/// The data of one minibatch and the networks' outputs on it.
pub struct HeadIn<'a, D: Device> {
    /// b×g counts, repeated for every particle (s·b×g).
    pub x_rep: &'a D::Buf,
    /// b: e^ℓ, the observed library sizes.
    pub lib: &'a D::Buf,
    /// b×k: min(√(d/median), 10), c and dc/dκ.
    pub offset_pi: &'a D::Buf,
    pub conc: &'a D::Buf,
    pub dconc: &'a D::Buf,
    /// b×e one-hot batches.
    pub batch: &'a D::Buf,
    /// s·b×l draws of z, and q(z)'s mean and variance (b×l).
    pub z: &'a D::Buf,
    pub qm: &'a D::Buf,
    pub qv: &'a D::Buf,
    /// s·b×g and s·b·k×g: the decoder's softmax for each draw of the cell
    /// and of its neighbours.
    pub px_scale: &'a D::Buf,
    pub px_scale_n: &'a D::Buf,
    /// b×3 mixture proportions; b×k per-neighbour logits (map).
    pub m: &'a D::Buf,
    pub map: &'a D::Buf,
    /// s·b×g standard normal draws for γ.
    pub normals: &'a D::Buf,
    /// g inverse dispersions 1/φ; e×g background profiles; the three
    /// Dirichlet concentrations a.
    pub px_r_inv: &'a D::Buf,
    pub background: &'a D::Buf,
    pub alpha: &'a D::Buf,
    /// The mixture prior: means c×l, logits c, per-row logit offsets
    /// (s·b×c, semi-supervised), scale.
    pub mu: &'a D::Buf,
    pub u: &'a D::Buf,
    pub u_offset: Option<&'a D::Buf>,
    pub sigma: f32,
    /// The classifier's s·b×labels logits, the labelled rows' one-hot
    /// targets (zero rows for unlabelled cells) and their mask (s·b).
    pub classes: Option<(&'a D::Buf, &'a D::Buf, &'a D::Buf)>,
    pub kl_weight: f32,
}

/// Gradients of the loss, in the shapes of [`HeadIn`]'s fields.
pub struct HeadGrad<D: Device> {
    pub z: D::Buf,
    pub qm: D::Buf,
    pub qv: D::Buf,
    pub px_scale: D::Buf,
    pub m: D::Buf,
    pub map: D::Buf,
    pub px_r_inv: D::Buf,
    pub background: D::Buf,
    pub mu: D::Buf,
    pub u: D::Buf,
    pub logits: Option<D::Buf>,
}

/// The loss into the tally's slots, and its gradients.
pub fn head<D: Device>(dev: &D, lay: &Layout<D>, h: &HeadIn<D>, tally: &Tally<D>) -> HeadGrad<D> {
    let Dims {
        s,
        b,
        g,
        k,
        l,
        c,
        e,
        ..
    } = lay.dims;
    let sb = s * b;
    // The loss is −ELBO: every coefficient carries the sign.
    let scale = -(lay.dims.n_obs as f64) / b as f64;
    let wp = scale / s as f64;
    let zeros = |n: usize| dev.zeros(n);
    let sc = |v: f64| dev.upload(&[v as f32]);
    let times = |x: &D::Buf, v: f64, n: usize| {
        let out = zeros(n);
        dev.binary(Binary::Mul, x, &sc(v), &out);
        out
    };
    let add_to = |x: &D::Buf, coef: f64, n: usize, slot: usize| {
        tally.sum(dev, &times(x, coef, n), n, slot);
    };
    let bin = |op: Binary, a: &D::Buf, v: &D::Buf, n: usize| {
        let out = zeros(n);
        dev.binary(op, a, v, &out);
        out
    };
    let rows = |op: Binary, a: &D::Buf, v: &D::Buf, r: usize, n: usize| {
        let out = zeros(r * n);
        dev.binary_rows(op, a, v, r, n, &out);
        out
    };
    let sum = |axis: Axis, x: &D::Buf, r: usize, n: usize| {
        let out = zeros(if axis == Axis::Rows { r } else { n });
        dev.reduce(Reduce::Sum, axis, x, r, n, &out);
        out
    };
    // Repeats a per-cell block for every particle.
    let rep = |x: &D::Buf, n: usize| bin(Binary::Add, &zeros(s * n), x, s * n);

    // Which neighbours diffuse in: π ~ Dirichlet(c).
    let t = bin(Binary::Sub, h.map, h.offset_pi, b * k);
    let pi = zeros(b * k);
    dev.softmax_rows(&t, b, k, &pi);
    let d_pi = dirichlet_logp(dev, &pi, h.conc, b, k);
    add_to(&d_pi.logp, scale, b, LOSS);
    let g_pi = times(&d_pi.gx, scale, b * k);
    let gk = bin(Binary::Mul, &d_pi.galpha, h.dconc, b * k);
    add_to(&gk, scale, b * k, G_KAPPA);

    // The mixture proportions: 5 × Dirichlet(a).
    let d_m = dirichlet_logp(dev, h.m, h.alpha, b, 3);
    add_to(&d_m.logp, 5.0 * scale, b, LOSS);
    let g_m = times(&d_m.gx, 5.0 * scale, b * 3);
    let ga = times(&sum(Axis::Cols, &d_m.galpha, b, 3), 5.0 * scale, 3);
    tally.add(dev, &ga, G_ALPHA);

    // 1/φ ~ Exponential(1) in every cell; each batch's profile ~ Dirichlet(5).
    add_to(h.px_r_inv, -scale * b as f64, g, LOSS);
    let g_px_r_inv = bin(Binary::Add, &zeros(g), &sc(-scale * b as f64), g);
    let d_b = dirichlet_logp(dev, h.background, &sc(5.0), e, g);
    add_to(&d_b.logp, -1.0, e, LOSS);
    let g_background = times(&d_b.gx, -1.0, e * g);

    // The expected counts of each draw.
    let col = |j: usize| {
        let out = zeros(b);
        dev.gather(h.m, &lay.cols[j], &out);
        out
    };
    let (m_true, m_diff, m_bg) = (col(0), col(1), col(2));
    let tt = bin(Binary::Mul, &m_true, h.lib, b);
    let dl = bin(Binary::Mul, &m_diff, h.lib, b);
    let bl = bin(Binary::Mul, &m_bg, h.lib, b);
    let w = rows(Binary::Mul, &pi, &dl, b, k);
    let w_rep = rep(&w, b * k);
    let tt_rep = rep(&tt, b);
    let own = rows(Binary::Mul, h.px_scale, &tt_rep, sb, g);
    let from_n = zeros(sb * g);
    dev.csr_mm(&lay.pool(&w_rep), h.px_scale_n, g, false, &from_n);
    let rate = bin(Binary::Add, &own, &from_n, sb * g);
    let rate_e = bin(Binary::Add, &rate, &sc(1e-6), sb * g);

    // γ and its path derivative's per-gene factors.
    let ones_g = bin(Binary::Add, &zeros(g), &sc(1.0), g);
    let phi = bin(Binary::Div, &ones_g, h.px_r_inv, g);
    let dd = bin(Binary::Sub, &phi, &sc(1.0 / 3.0), g);
    let (log_dd, half, sqrt_dd) = (zeros(g), zeros(g), zeros(g));
    dev.unary(Unary::Log, &dd, &log_dd);
    dev.binary(Binary::Mul, &log_dd, &sc(0.5), &half);
    dev.unary(Unary::Exp, &half, &sqrt_dd);
    let inv_c = times(&sqrt_dd, 3.0, g);
    let cc = bin(Binary::Div, &ones_g, &inv_c, g);
    let kd = bin(Binary::Div, &dd, &phi, g);
    let phi2 = bin(Binary::Mul, &phi, &phi, g);
    // (1/3)/φ² and −1/(2φ√d).
    let coef_a = times(&bin(Binary::Div, &ones_g, &phi2, g), 1.0 / 3.0, g);
    let phi_sq = bin(Binary::Mul, &phi, &sqrt_dd, g);
    let coef_b = times(&bin(Binary::Div, &ones_g, &phi_sq, g), -0.5, g);
    let nc = bin(Binary::Mul, h.normals, &cc, sb * g);
    let t1 = bin(Binary::Add, &nc, &sc(1.0), sb * g);
    let tg = bin(Binary::Max, &t1, &sc(0.0), sb * g);
    let t2 = bin(Binary::Mul, &tg, &tg, sb * g);
    let t3 = bin(Binary::Mul, &t2, &tg, sb * g);
    let gamma = bin(Binary::Mul, &t3, &kd, sb * g);
    let y = bin(Binary::Mul, &rate_e, &gamma, sb * g);

    // Background and the Poisson observation.
    let profile = zeros(b * g);
    dev.gemm(Gemm::new(b, g, e), h.batch, h.background, &profile);
    let bg = rows(Binary::Mul, &profile, &bl, b, g);
    let mu0 = bin(Binary::Add, &y, &bg, sb * g);
    let mean = bin(Binary::Add, &mu0, &sc(1e-9), sb * g);
    let (ll, g_mean) = (zeros(sb), zeros(sb * g));
    dev.poisson_loglik_grad(h.x_rep, &mean, sb, g, &ll, &g_mean);
    add_to(&ll, wp, sb, LOSS);
    add_to(&ll, 1.0 / s as f64, sb, RECON);
    let g_mean = times(&g_mean, wp, sb * g);

    // Back through γ to φ and 1/φ.
    let g_rate = bin(Binary::Mul, &g_mean, &gamma, sb * g);
    let g_gamma = bin(Binary::Mul, &g_mean, &rate_e, sb * g);
    let ta = bin(Binary::Mul, &t3, &coef_a, sb * g);
    let tn = bin(Binary::Mul, &t2, h.normals, sb * g);
    let tb = bin(Binary::Mul, &tn, &coef_b, sb * g);
    let dgamma = bin(Binary::Add, &ta, &tb, sb * g);
    let gp = bin(Binary::Mul, &g_gamma, &dgamma, sb * g);
    let g_phi = sum(Axis::Cols, &gp, sb, g);
    let g_inv = bin(Binary::Mul, &g_phi, &phi2, g);
    let g_px_r_inv = bin(Binary::Sub, &g_px_r_inv, &g_inv, g);

    // Back to the decoder's output, the proportions and π.
    let g_px_scale = rows(Binary::Mul, &g_rate, &tt_rep, sb, g);
    let gs = bin(Binary::Mul, &g_rate, h.px_scale, sb * g);
    let g_tt = sum(Axis::Cols, &sum(Axis::Rows, &gs, sb, g), s, b);
    let spread = zeros(sb * k * g);
    dev.csr_mm(&lay.pool(&lay.ones), &g_rate, g, true, &spread);
    let gw_n = bin(Binary::Mul, &spread, h.px_scale_n, sb * k * g);
    let g_w = sum(Axis::Cols, &sum(Axis::Rows, &gw_n, sb * k, g), s, b * k);
    let g_pi = {
        let gw = rows(Binary::Mul, &g_w, &dl, b, k);
        bin(Binary::Add, &g_pi, &gw, b * k)
    };
    let g_dl = sum(Axis::Rows, &bin(Binary::Mul, &g_w, &pi, b * k), b, k);
    let g_bgc = sum(Axis::Cols, &g_mean, s, b * g);
    let g_bl = sum(Axis::Rows, &bin(Binary::Mul, &g_bgc, &profile, b * g), b, g);
    let g_profile = rows(Binary::Mul, &g_bgc, &bl, b, g);
    let gb = zeros(e * g);
    let gt = Gemm {
        trans_a: true,
        ..Gemm::new(e, g, b)
    };
    dev.gemm(gt, h.batch, &g_profile, &gb);
    let g_background = bin(Binary::Add, &g_background, &gb, e * g);
    for (j, gj) in [g_tt, g_dl, g_bl].iter().enumerate() {
        let v = bin(Binary::Mul, gj, h.lib, b);
        dev.scatter_add(&v, &lay.cols[j], &g_m);
    }
    let g_map = zeros(b * k);
    dev.softmax_backward(&pi, &g_pi, b, k, &g_map);

    // z: kl_weight × (log p(z) − log q(z)).
    let kw = wp * h.kl_weight as f64;
    let mix = mixture_logp(
        dev,
        prior::Dims { b: sb, k: c, d: l },
        h.z,
        h.mu,
        h.u,
        h.u_offset,
        h.sigma,
    );
    add_to(&mix.logp, kw, sb, LOSS);
    // log q = −½ log 2πv − (z − m)²/2v, summed.
    let zr = bin(Binary::Sub, h.z, h.qm, sb * l);
    let v_rep = rep(h.qv, b * l);
    let zv = bin(Binary::Div, &zr, &v_rep, sb * l);
    let zr2 = bin(Binary::Mul, &zr, &zv, sb * l);
    let lv = zeros(sb * l);
    dev.unary(Unary::Log, &v_rep, &lv);
    let lq = bin(
        Binary::Add,
        &bin(Binary::Add, &lv, &zr2, sb * l),
        &sc((2.0 * std::f64::consts::PI).ln()),
        sb * l,
    );
    add_to(&lq, 0.5 * kw, sb * l, LOSS);
    let g_z = bin(
        Binary::Add,
        &times(&mix.gz, kw, sb * l),
        &times(&zv, kw, sb * l),
        sb * l,
    );
    let g_qm = times(&sum(Axis::Cols, &zv, s, b * l), -kw, b * l);
    // ∂(−log q)/∂v = 1/2v − (z − m)²/2v² (times kw, which is negative).
    let inv_v = bin(
        Binary::Div,
        &bin(Binary::Add, &zeros(sb * l), &sc(1.0), sb * l),
        &v_rep,
        sb * l,
    );
    let zv2 = bin(Binary::Mul, &zv, &zv, sb * l);
    let dv = bin(Binary::Sub, &inv_v, &zv2, sb * l);
    let g_qv = times(&sum(Axis::Cols, &dv, s, b * l), 0.5 * kw, b * l);

    // The labelled cells' 50 × log p(label).
    let logits = h.classes.map(|(logits, target, mask)| {
        let n = lay.dims.labels;
        let (lse, p) = (zeros(sb), zeros(sb * n));
        dev.reduce(Reduce::LogSumExp, Axis::Rows, logits, sb, n, &lse);
        let lp = rows(Binary::Sub, logits, &lse, sb, n);
        let coef = 50.0 * wp;
        add_to(&bin(Binary::Mul, &lp, target, sb * n), coef, sb * n, LOSS);
        dev.softmax_rows(logits, sb, n, &p);
        let mp = rows(Binary::Mul, &p, mask, sb, n);
        times(&bin(Binary::Sub, target, &mp, sb * n), coef, sb * n)
    });

    HeadGrad {
        z: g_z,
        qm: g_qm,
        qv: g_qv,
        px_scale: g_px_scale,
        m: g_m,
        map: g_map,
        px_r_inv: g_px_r_inv,
        background: g_background,
        mu: times(&mix.gmu, kw, c * l),
        u: times(&mix.gu, kw, c),
        logits,
    }
}

/// Each neighbour's offset min(√(d/median), 10) in π's logits, its
/// concentration c = 30 (exp(−min(κ d/median, 20)) + 1e-3) and dc/dκ, from
/// squared distances.
pub fn neighbour_terms(d2: &[f32], median: f64, kappa: f64) -> [Vec<f32>; 3] {
    let mut out: [Vec<f32>; 3] = std::array::from_fn(|_| Vec::with_capacity(d2.len()));
    for &d in d2 {
        let r = d as f64 / median;
        let t = kappa * r;
        let ex = (-t.min(20.0)).exp();
        out[0].push(r.sqrt().min(10.0) as f32);
        out[1].push((30.0 * (ex + 1e-3)) as f32);
        out[2].push(if t < 20.0 {
            (-30.0 * ex * r) as f32
        } else {
            0.0
        });
    }
    out
}

/// The model's scalar sites, held on the host: sparsity σ, the three
/// concentrations a = (true, diffused, background), the diffusion scale κ.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scalars {
    pub sparsity: f64,
    pub alpha: [f64; 3],
    pub kappa: f64,
}

/// The priors' parameters (RESOLVI's defaults).
pub const PROPORTIONS_RATE: f64 = 10.0;
pub const SPARSITY_PRIOR: f64 = 3.0;
pub const PRIOR_TRUE: f64 = 1.0;
pub const PRIOR_DIFFUSION: f64 = 0.3;

impl Scalars {
    /// The guide's starting values.
    pub fn start() -> Scalars {
        Scalars {
            sparsity: 20.0,
            alpha: [5.0, 3.0, 0.5],
            kappa: 1.0,
        }
    }

    /// The priors' part of the loss (−log p) and its gradient in
    /// (σ, a₀, a₁, a₂, κ):
    /// σ ~ Gamma(10, 10/3); a_j ~ Gamma(10, 10/(σ p_j)) with
    /// p = (1, 0.3, 10·background_ratio + 1e-3); κ ~ Exponential(1).
    pub fn prior_loss(&self, background_ratio: f64) -> (f64, [f64; 5]) {
        let r0 = PROPORTIONS_RATE;
        let gamma_lp =
            |x: f64, rate: f64| r0 * rate.ln() - lgamma(r0) + (r0 - 1.0) * x.ln() - rate * x;
        let s = self.sparsity;
        let mut lp = gamma_lp(s, r0 / SPARSITY_PRIOR);
        let mut g = [0.0; 5];
        g[0] = (r0 - 1.0) / s - r0 / SPARSITY_PRIOR;
        let p = [
            PRIOR_TRUE,
            PRIOR_DIFFUSION,
            10.0 * background_ratio * PRIOR_TRUE + 1e-3,
        ];
        for j in 0..3 {
            let a = self.alpha[j];
            let rate = r0 / (s * p[j]);
            lp += gamma_lp(a, rate);
            g[1 + j] = (r0 - 1.0) / a - rate;
            g[0] += (a * rate - r0) / s;
        }
        lp -= self.kappa;
        g[4] = -1.0;
        (-lp, g.map(|v| -v))
    }
}
