//! The cell2location spatial mapping model (spec §1b), fitted by SVI on a
//! [`Device`] with full-batch steps.
//!
//! ```text
//! m̄ ~ Gamma(1, 1)   m_inv ~ Exp(3)   m_g ~ Gamma(a, a/m̄), a = 1/m_inv²    gene level
//! n_s ~ Gamma(N r, r)   b_s ~ Gamma(B, 1)   z_sr ~ Gamma(b_s/R, b_s/n_s)  cells, zones
//! k_r ~ Gamma(A/B, 1)   x_rf ~ Gamma(k_r/F, k_r)                          zone → type
//! w_sf ~ Gamma(v μ_sf, v),  μ = z x                                       abundances
//! y_e ~ Gamma(10, 10/ȳ_e)   y_s ~ Gamma(α_d, α_d / y_e(s))                detection
//! s_eg, a_hyp, m_e, s_inv as in the regression model                      background
//! φ ~ Gamma(9, 3)   ainv_eg ~ Exp(φ),  α_eg = 1/ainv²                     overdispersion
//! D_sg ~ NB(mean (m_g Σ_f w_sf g_fg + s_e(s),g) y_s, concentration α_e(s),g)
//! ```
//!
//! Everything is initialised at its prior mean given its parents' (Pyro's
//! `init_to_mean`). Spots are processed in row blocks under the device's
//! buffer limit; the per-spot sites (n, b, z, w, y) live with their block
//! and the global gradients accumulate across blocks, so only spots x genes
//! tensors are ever allocated, never spots x types x genes.

use crate::compute::special::{digamma, lgamma};
use crate::compute::{AdamParams, Axis, Binary, Density, Device, Gemm, Reduce, Unary};
use crate::models::checkpoint::{Resume, EVERY_STEPS};
use crate::models::svi::{gamma_lp, Consts, GuideSlots, HostSite, Site, Sites, Summary, Tally};

/// Counts, signatures and batches of one fit.
pub struct MapData<'a> {
    /// spots x genes raw counts, row-major.
    pub x: &'a [f32],
    pub spots: usize,
    pub genes: usize,
    /// Reference signatures g_fg, cell types x genes.
    pub signatures: &'a [f32],
    pub types: usize,
    /// Batch index of each spot.
    pub batch: &'a [usize],
    pub n_batches: usize,
}

/// The model's hyperparameters (cell2location's constructor arguments).
#[derive(Debug, Clone, PartialEq)]
pub struct Priors {
    pub n_cells_per_location: f64,
    pub n_cells_mean_var_ratio: f64,
    pub a_factors_per_location: f64,
    pub b_groups_per_location: f64,
    pub n_groups: usize,
    /// α_d per batch.
    pub detection_alpha: Vec<f64>,
    /// Prior mean of y_e per batch.
    pub detection_mean: Vec<f64>,
    pub detection_mean_alpha: f64,
    pub m_g_mean: f64,
    pub m_g_mean_var_ratio: f64,
    pub m_g_alpha_mean: f64,
    pub w_sf_mean_var_ratio: f64,
}

impl Priors {
    /// cell2location's defaults for `n_batches` batches.
    pub fn new(n_cells_per_location: f64, detection_alpha: f64, n_batches: usize) -> Priors {
        Priors {
            n_cells_per_location,
            n_cells_mean_var_ratio: 1.0,
            a_factors_per_location: 7.0,
            b_groups_per_location: 7.0,
            n_groups: 50,
            detection_alpha: vec![detection_alpha; n_batches],
            detection_mean: vec![1.0; n_batches],
            detection_mean_alpha: 10.0,
            m_g_mean: 1.0,
            m_g_mean_var_ratio: 1.0,
            m_g_alpha_mean: 3.0,
            w_sf_mean_var_ratio: 5.0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Train {
    pub max_epochs: usize,
    pub lr: f32,
    pub seed: u64,
    /// Spots per block; None picks the largest the device allows.
    pub block_rows: Option<usize>,
}

impl Default for Train {
    fn default() -> Self {
        Train {
            max_epochs: 30_000,
            lr: 0.002,
            seed: 0,
            block_rows: None,
        }
    }
}

/// Names and shapes of the sites, in [`Probe`] and [`MapFit::sites`] order.
pub const SITES: [&str; 17] = [
    "m_g",
    "k_r_factors_per_groups",
    "x_fr_group2fact",
    "s_g_gene_add",
    "alpha_g_inverse",
    "n_s_cells_per_location",
    "b_s_groups_per_location",
    "z_sr_groups_factors",
    "w_sf",
    "detection_y_s",
    "m_g_mean",
    "m_g_alpha_e_inv",
    "detection_mean_y_e",
    "s_g_gene_add_alpha_hyp",
    "s_g_gene_add_mean",
    "s_g_gene_add_alpha_e_inv",
    "alpha_g_phi_hyp",
];

/// The posterior and the loss history.
pub struct MapFit {
    /// Every site's summary with its shape, in [`SITES`] order.
    pub sites: Vec<(&'static str, [usize; 2], Summary)>,
    /// −ELBO of every step.
    pub elbo_history: Vec<f64>,
    /// Guide loc and σ of w_sf (spots x types) and m_g, for derived values.
    pub w_guide: (Vec<f64>, Vec<f64>),
    pub m_guide: (Vec<f64>, Vec<f64>),
}

impl MapFit {
    pub fn site(&self, name: &str) -> &Summary {
        &self
            .sites
            .iter()
            .find(|s| s.0 == name)
            .expect("a site of the model")
            .2
    }
}

/// One step's sampled sites and ∂(log joint)/∂z in [`SITES`] order (the
/// per-spot sites concatenated over blocks), for gradient checks.
#[derive(Debug, Clone, Default)]
pub struct Probe {
    pub z: Vec<Vec<f64>>,
    pub gz: Vec<Vec<f64>>,
}

/// Bytes the fit allocates on the device.
pub fn footprint(spots: usize, genes: usize, types: usize, batches: usize, groups: usize) -> u64 {
    let sg = spots * genes * if batches > 1 { 8 } else { 6 };
    // Each site holds 12 copies (loc, raw, 4 moments, ε, σ, z, gz, 3 scratch).
    let sites = 13 * (genes + groups * (types + 1) + 2 * batches * genes)
        + 13 * spots * (3 + groups + types);
    let small =
        6 * spots * types.max(groups) + 12 * spots + 3 * types * genes + 2 * batches * genes;
    4 * (sg + sites + small) as u64
}

#[derive(Clone, Copy)]
enum Slot {
    LogLik,
    WPrior,
    ZPrior,
    NPrior,
    BPrior,
    XPrior,
    KPrior,
    LogM,
    SumM,
    SumAinv,
    U,
    LogSigma,
    Eps2,
    /// Per batch from here: Σ y_s, Σ log y_s, Σ_g log s_eg, Σ_g s_eg.
    SumY,
    LogY,
    LogS,
    SumS,
}
const SCALARS: usize = Slot::SumY as usize;
const GUIDE: GuideSlots = GuideSlots {
    u: Slot::U as usize,
    log_sigma: Slot::LogSigma as usize,
    eps2: Slot::Eps2 as usize,
};

/// The spots of one row block and their sites.
struct Block<D: Device> {
    rows: usize,
    x: D::Buf,
    /// rows x batches one-hot.
    oh_e: D::Buf,
    /// α_d − 1 of each spot.
    alpha_m1: D::Buf,
    n: Site<D>,
    b: Site<D>,
    z: Site<D>,
    w: Site<D>,
    y: Site<D>,
}

/// A Gamma(α_i, β_i) prior on the rows of a rows x cols site, α and β one
/// value per row. Sets the site's gz to `pull` + (α − 1)/z − β, and per row
/// writes `out` = [∂/∂α, ∂/∂β, log-density]:
///
/// ```text
/// ∂/∂α = Σ_j log z + cols (log β − ψ(α))     ∂/∂β = cols α/β − Σ_j z
/// lp   = cols (α log β − lgamma α) + (α − 1) Σ_j log z − β Σ_j z
/// ```
///
/// `shape` is (rows, cols, cols as a device scalar); `t` is scratch at
/// least `rows` long.
fn gamma_rows<D: Device>(
    dev: &D,
    site: &Site<D>,
    shape: (usize, usize, &D::Buf),
    (alpha, beta, pull): (&D::Buf, &D::Buf, &D::Buf),
    t: &[D::Buf; 7],
    out: [&D::Buf; 3],
    one: &D::Buf,
) {
    let (rows, cols, c_cols) = shape;
    let [am1, log_sum, sum, log_beta, a, b, c] = t;
    let [d_alpha, d_beta, lp] = out;
    dev.binary(Binary::Sub, alpha, one, am1);
    dev.binary(Binary::Div, &site.ones, &site.z, &site.t[1]);
    dev.binary_rows(Binary::Mul, &site.t[1], am1, rows, cols, &site.t[2]);
    dev.binary_rows(Binary::Sub, &site.t[2], beta, rows, cols, &site.t[1]);
    dev.binary(Binary::Add, pull, &site.t[1], &site.gz);
    dev.unary(Unary::Log, &site.z, &site.t[2]);
    dev.reduce(Reduce::Sum, Axis::Rows, &site.t[2], rows, cols, log_sum);
    dev.reduce(Reduce::Sum, Axis::Rows, &site.z, rows, cols, sum);
    dev.unary(Unary::Log, beta, log_beta);
    dev.unary(Unary::Digamma, alpha, a);
    dev.binary(Binary::Sub, log_beta, a, b);
    dev.binary(Binary::Mul, b, c_cols, a);
    dev.binary(Binary::Add, log_sum, a, d_alpha);
    dev.binary(Binary::Div, alpha, beta, a);
    dev.binary(Binary::Mul, a, c_cols, b);
    dev.binary(Binary::Sub, b, sum, d_beta);
    dev.binary(Binary::Mul, alpha, log_beta, a);
    dev.unary(Unary::Lgamma, alpha, b);
    dev.binary(Binary::Sub, a, b, c);
    dev.binary(Binary::Mul, c, c_cols, a);
    dev.binary(Binary::Mul, am1, log_sum, b);
    dev.binary(Binary::Add, a, b, c);
    dev.binary(Binary::Mul, beta, sum, a);
    dev.binary(Binary::Sub, c, a, lp);
}

/// Fits the model; `progress(step, steps, loss)` after every step. Starts
/// from `resume.from` when given and leaves a checkpoint every
/// [`EVERY_STEPS`] steps; a lost device ends it with its reason.
pub async fn fit<D: Device>(
    dev: &D,
    data: &MapData<'_>,
    pr: &Priors,
    train: &Train,
    progress: &mut dyn FnMut(usize, usize, f64),
    mut probe: Option<&mut dyn FnMut(&Probe)>,
    resume: Resume<'_>,
) -> Result<MapFit, String> {
    let (s_n, g, f, e, r) = (
        data.spots,
        data.genes,
        data.types,
        data.n_batches,
        pr.n_groups,
    );
    let (gf, ff, rf) = (g as f64, f as f64, r as f64);
    let c = Consts::new(dev);
    let up = |v: f64| dev.upload(&[v as f32]);
    let z = |len: usize| dev.zeros(len);
    let big = |n: usize| dev.zeros(n.max(1));
    let nn = pr.n_cells_per_location;
    let ratio = pr.n_cells_mean_var_ratio;
    let (ab, bg) = (
        pr.a_factors_per_location / pr.b_groups_per_location,
        pr.b_groups_per_location,
    );
    let v = pr.w_sf_mean_var_ratio;

    // Global sites at their prior means.
    let m = Site::new(dev, 1, &vec![pr.m_g_mean as f32; g]);
    let k = Site::new(dev, 2, &vec![ab as f32; r]);
    let xs = Site::new(dev, 3, &vec![(1.0 / ff) as f32; r * f]);
    let s = Site::new(dev, 4, &vec![0.01; e * g]);
    let ainv = Site::new(dev, 5, &vec![1.0 / 3.0; e * g]);
    let mut mm = HostSite::new(&[pr.m_g_mean]);
    let mut ma = HostSite::new(&[1.0 / pr.m_g_alpha_mean]);
    let mut ye = HostSite::new(&pr.detection_mean);
    let mut ah = HostSite::new(&[3.0]);
    let mut sm = HostSite::new(&vec![0.01; e]);
    let mut sinv = HostSite::new(&vec![1.0 / 3.0; e]);
    let mut phi = HostSite::new(&[3.0]);

    // Row blocks of near-equal size under the buffer limit.
    let widest = g.max(r).max(f).max(1);
    let cap = (dev.max_buffer_len() / widest).max(1);
    let cap = train.block_rows.unwrap_or(cap).clamp(1, cap);
    let n_blocks = s_n.div_ceil(cap).max(1);
    let rb = s_n.div_ceil(n_blocks).max(1);
    let mut n_e = vec![0f64; e];
    for &b in data.batch {
        n_e[b] += 1.0;
    }
    let blocks: Vec<Block<D>> = (0..n_blocks)
        .map(|bi| {
            let (r0, r1) = (bi * rb, ((bi + 1) * rb).min(s_n));
            let rows = r1 - r0;
            let mut oh = vec![0f32; rows * e];
            let mut am1 = vec![0f32; rows];
            let mut y0 = vec![0f32; rows];
            for i in 0..rows {
                let b = data.batch[r0 + i];
                oh[i * e + b] = 1.0;
                am1[i] = (pr.detection_alpha[b] - 1.0) as f32;
                y0[i] = pr.detection_mean[b] as f32;
            }
            let id = 32 + 8 * bi as u64;
            Block {
                rows,
                x: dev.upload(&data.x[r0 * g..r1 * g]),
                oh_e: dev.upload(&oh),
                alpha_m1: dev.upload(&am1),
                n: Site::new(dev, id, &vec![nn as f32; rows]),
                b: Site::new(dev, id + 1, &vec![bg as f32; rows]),
                z: Site::new(dev, id + 2, &vec![(nn / rf) as f32; rows * r]),
                w: Site::new(dev, id + 3, &vec![(nn / ff) as f32; rows * f]),
                y: Site::new(dev, id + 4, &y0),
            }
        })
        .collect();

    // Scratch: spots x genes (the memory that matters), then smaller.
    let (ta, base, mean, gmu, gth) = (
        big(rb * g),
        big(rb * g),
        big(rb * g),
        big(rb * g),
        big(rb * g),
    );
    let (sx, thx) = if e > 1 {
        (big(rb * g), big(rb * g))
    } else {
        (z(1), z(1))
    };
    let (mu_sf, aw, dmu, t1, t2) = (z(rb * f), z(rb * f), z(rb * f), z(rb * f), z(rb * f));
    let vb: Vec<D::Buf> = (0..8).map(|_| z(rb)).collect();
    let vs: [D::Buf; 7] = std::array::from_fn(|_| z(rb));
    let (ll, e1) = (z(rb), z(e));
    let sig = dev.upload(data.signatures);
    let (gm, b_acc, fg) = (z(f * g), z(f * g), z(f * g));
    let (th, s_acc, th_acc) = (z(e * g), z(e * g), z(e * g));
    let x_acc = z(r * f);
    let rv: Vec<D::Buf> = (0..8).map(|_| z(r)).collect();
    let rs: [D::Buf; 7] = std::array::from_fn(|_| z(r));
    let (c_v, c_lnv, c_inv_r, c_r, c_bm1, c_nrm1, c_ratio, c_nr) = (
        up(v),
        up(v.ln()),
        up(1.0 / rf),
        up(rf),
        up(bg - 1.0),
        up(nn * ratio - 1.0),
        up(ratio),
        up(nn * ratio),
    );
    let (c_inv_f, c_f, c_abm1, c_ab, c_bg, c_m2) =
        (up(1.0 / ff), up(ff), up(ab - 1.0), up(ab), up(bg), up(-2.0));
    let mut segs = vec![1; SCALARS];
    segs.extend([e; 4]);
    let mut tally = Tally::new(dev, &segs);
    let n_params = (g + r + r * f + 2 * e * g + s_n * (3 + r + f) + 4 + 3 * e) as f64;
    let q_const = 0.5 * (2.0 * std::f64::consts::PI).ln() * n_params;
    let lgamma_alpha: Vec<f64> = pr.detection_alpha.iter().map(|&a| lgamma(a)).collect();

    // Spot sites are kept whole: another device may block them otherwise.
    let sites = Sites {
        fit: fit_name(data, pr),
        device: [&m, &k, &xs, &s, &ainv]
            .into_iter()
            .map(|site| vec![site])
            .chain((0..5).map(|kind| {
                blocks
                    .iter()
                    .map(|bl| [&bl.n, &bl.b, &bl.z, &bl.w, &bl.y][kind])
                    .collect()
            }))
            .collect(),
    };
    let mut history = Vec::with_capacity(train.max_epochs);
    let mut first = 1;
    if let Some(cp) = &resume.from {
        let mut host = [
            &mut mm, &mut ma, &mut ye, &mut ah, &mut sm, &mut sinv, &mut phi,
        ];
        let (done, losses) = sites.restore(dev, cp, &mut host)?;
        (first, history) = (done + 1, losses);
    }
    for step in first..=train.max_epochs as u64 {
        tally.reset(dev);
        for site in [&m, &k, &xs, &s, &ainv] {
            site.draw(dev, train.seed, step, &tally, GUIDE);
        }
        for bl in &blocks {
            for site in [&bl.n, &bl.b, &bl.z, &bl.w, &bl.y] {
                site.draw(dev, train.seed, step, &tally, GUIDE);
            }
        }
        let host = [
            &mut mm, &mut ma, &mut ye, &mut ah, &mut sm, &mut sinv, &mut phi,
        ];
        for (id, h) in host.into_iter().enumerate() {
            h.draw(train.seed, 16 + id as u64, step);
        }
        let guide_host: f64 = [&mm, &ma, &ye, &ah, &sm, &sinv, &phi]
            .iter()
            .map(|h| h.guide_terms())
            .sum();
        let a_m = 1.0 / (ma.z[0] * ma.z[0]);
        let b_m = a_m / mm.z[0];
        let k_e: Vec<f64> = sinv.z.iter().map(|v| 1.0 / (v * v)).collect();
        let yrate: Vec<f32> = (0..e)
            .map(|j| (pr.detection_alpha[j] / ye.z[j]) as f32)
            .collect();
        let yrate = dev.upload(&yrate);

        // Shared by every block: g ∘ m and the overdispersion.
        dev.binary(Binary::Mul, &sig, &m.z, &gm);
        dev.binary(Binary::Mul, &ainv.z, &ainv.z, &ainv.t[0]);
        dev.binary(Binary::Div, &ainv.ones, &ainv.t[0], &th);
        for (bi, bl) in blocks.iter().enumerate() {
            let rows = bl.rows;
            let beta = if bi == 0 { 0.0 } else { 1.0 };
            // Sums over this block's spots: accumulated across blocks, or not.
            let acc = |beta: f32, m_: usize, n_: usize| Gemm {
                trans_a: true,
                beta,
                ..Gemm::new(m_, n_, rows)
            };
            let [v0, v1, v2, v3, v4, v6, v7, v8] = &vb[..] else {
                unreachable!()
            };
            // Expected counts and the likelihood.
            dev.gemm(Gemm::new(rows, g, f), &bl.w.z, &gm, &ta);
            let (s_full, th_full) = if e > 1 {
                dev.gemm(Gemm::new(rows, g, e), &bl.oh_e, &s.z, &sx);
                dev.gemm(Gemm::new(rows, g, e), &bl.oh_e, &th, &thx);
                (&sx, &thx)
            } else {
                (&s.z, &th)
            };
            dev.binary(Binary::Add, &ta, s_full, &base);
            dev.binary_rows(Binary::Mul, &base, &bl.y.z, rows, g, &mean);
            dev.nb_loglik_grad(&bl.x, &mean, th_full, rows, g, &ll, &gmu, &gth);
            tally.sum(dev, &ll, rows, Slot::LogLik as usize);
            // y_s: Σ_g ∂ℓ/∂μ (base) + (α_d − 1)/y − α_d/y_e.
            dev.binary(Binary::Mul, &gmu, &base, &mean);
            // (The last op of each per-spot gradient reads a buffer of the
            // block's exact length: scratch is sized for the largest block.)
            let yt = &bl.y.t;
            dev.reduce(Reduce::Sum, Axis::Rows, &mean, rows, g, &yt[0]);
            dev.gemm(Gemm::new(rows, 1, e), &bl.oh_e, &yrate, v1);
            dev.binary(Binary::Div, &bl.alpha_m1, &bl.y.z, v2);
            dev.binary(Binary::Add, &yt[0], v2, &yt[1]);
            dev.binary(Binary::Sub, &yt[1], v1, &bl.y.gz);
            dev.gemm(acc(0.0, e, 1), &bl.oh_e, &bl.y.z, &e1);
            tally.add(dev, &e1, Slot::SumY as usize);
            dev.unary(Unary::Log, &bl.y.z, v2);
            dev.gemm(acc(0.0, e, 1), &bl.oh_e, v2, &e1);
            tally.add(dev, &e1, Slot::LogY as usize);
            // The likelihood's pull on w, m, s and ainv.
            dev.binary_rows(Binary::Mul, &gmu, &bl.y.z, rows, g, &ta);
            let t_b = Gemm {
                trans_b: true,
                ..Gemm::new(rows, f, g)
            };
            dev.gemm(t_b, &ta, &gm, &bl.w.t[0]);
            dev.gemm(acc(beta, f, g), &bl.w.z, &ta, &b_acc);
            dev.gemm(acc(beta, e, g), &bl.oh_e, &ta, &s_acc);
            dev.gemm(acc(beta, e, g), &bl.oh_e, &gth, &th_acc);
            // w_sf ~ Gamma(v μ, v), μ = z x.
            dev.gemm(Gemm::new(rows, f, r), &bl.z.z, &xs.z, &mu_sf);
            dev.binary(Binary::Mul, &mu_sf, &c_v, &aw);
            dev.binary(Binary::Sub, &aw, &c.one, &t1);
            dev.binary(Binary::Div, &t1, &bl.w.z, &t2);
            dev.binary(Binary::Sub, &t2, &c_v, &t1);
            dev.binary(Binary::Add, &bl.w.t[0], &t1, &bl.w.gz);
            dev.log_density(Density::Gamma, &bl.w.z, &aw, &c_v, &bl.w.t[1]);
            tally.sum(dev, &bl.w.t[1], rows * f, Slot::WPrior as usize);
            // ∂/∂μ = v (log v − ψ(v μ) + log w), on to z and x.
            dev.unary(Unary::Digamma, &aw, &t1);
            dev.unary(Unary::Log, &bl.w.z, &bl.w.t[1]);
            dev.binary(Binary::Sub, &bl.w.t[1], &t1, &t2);
            dev.binary(Binary::Add, &t2, &c_lnv, &t1);
            dev.binary(Binary::Mul, &t1, &c_v, &dmu);
            let t_x = Gemm {
                trans_b: true,
                ..Gemm::new(rows, r, f)
            };
            dev.gemm(t_x, &dmu, &xs.z, &bl.z.t[0]);
            dev.gemm(acc(beta, r, f), &bl.z.z, &dmu, &x_acc);
            // z_sr ~ Gamma(α, β), α = b/R, β = b/n.
            dev.binary(Binary::Mul, &bl.b.z, &c_inv_r, v0);
            dev.binary(Binary::Div, &bl.b.z, &bl.n.z, v1);
            let (d_alpha, d_beta, lp) = (v7, v6, v8);
            gamma_rows(
                dev,
                &bl.z,
                (rows, r, &c_r),
                (v0, v1, &bl.z.t[0]),
                &vs,
                [d_alpha, d_beta, lp],
                &c.one,
            );
            tally.sum(dev, lp, rows, Slot::ZPrior as usize);
            // b_s: dα/R + dβ/n + (B − 1)/b − 1.
            dev.binary(Binary::Mul, v7, &c_inv_r, v2);
            dev.binary(Binary::Div, v6, &bl.n.z, v3);
            dev.binary(Binary::Add, v2, v3, v4);
            let bt = &bl.b.t;
            dev.binary(Binary::Div, &bl.b.ones, &bl.b.z, &bt[0]);
            dev.binary(Binary::Mul, &bt[0], &c_bm1, &bt[1]);
            dev.binary(Binary::Add, &bt[1], v4, &bt[2]);
            dev.binary(Binary::Sub, &bt[2], &c.one, &bl.b.gz);
            // n_s: −dβ b/n² + (N r − 1)/n − r.
            dev.binary(Binary::Div, v1, &bl.n.z, v2);
            dev.binary(Binary::Mul, v6, v2, v3);
            let nt = &bl.n.t;
            dev.binary(Binary::Div, &bl.n.ones, &bl.n.z, &nt[0]);
            dev.binary(Binary::Mul, &nt[0], &c_nrm1, &nt[1]);
            dev.binary(Binary::Sub, &nt[1], v3, &nt[2]);
            dev.binary(Binary::Sub, &nt[2], &c_ratio, &bl.n.gz);
            dev.log_density(Density::Gamma, &bl.n.z, &c_nr, &c_ratio, v2);
            tally.sum(dev, v2, rows, Slot::NPrior as usize);
            dev.log_density(Density::Gamma, &bl.b.z, &c_bg, &c.one, v2);
            tally.sum(dev, v2, rows, Slot::BPrior as usize);
        }

        // m_g: Σ_f g_fg B_fg + (a − 1)/m − a/m̄.
        dev.binary(Binary::Mul, &sig, &b_acc, &fg);
        dev.reduce(Reduce::Sum, Axis::Cols, &fg, f, g, &m.t[0]);
        dev.binary(Binary::Div, &m.ones, &m.z, &m.t[1]);
        dev.binary(Binary::Mul, &m.t[1], &up(a_m - 1.0), &m.t[2]);
        dev.binary(Binary::Add, &m.t[0], &m.t[2], &m.t[1]);
        dev.binary(Binary::Sub, &m.t[1], &up(b_m), &m.gz);
        dev.unary(Unary::Log, &m.z, &m.t[0]);
        tally.sum(dev, &m.t[0], g, Slot::LogM as usize);
        tally.sum(dev, &m.z, g, Slot::SumM as usize);
        // s_eg: likelihood + (k_e − 1)/s − k_e/m_e.
        let km1: Vec<f32> = k_e.iter().map(|k| (k - 1.0) as f32).collect();
        let rate: Vec<f32> = k_e.iter().zip(&sm.z).map(|(k, m)| (k / m) as f32).collect();
        dev.binary(Binary::Div, &s.ones, &s.z, &s.t[0]);
        dev.binary_rows(Binary::Mul, &s.t[0], &dev.upload(&km1), e, g, &s.t[1]);
        dev.binary_rows(Binary::Sub, &s.t[1], &dev.upload(&rate), e, g, &s.t[0]);
        dev.binary(Binary::Add, &s_acc, &s.t[0], &s.gz);
        dev.unary(Unary::Log, &s.z, &s.t[0]);
        dev.reduce(Reduce::Sum, Axis::Rows, &s.t[0], e, g, &e1);
        tally.add(dev, &e1, Slot::LogS as usize);
        dev.reduce(Reduce::Sum, Axis::Rows, &s.z, e, g, &e1);
        tally.add(dev, &e1, Slot::SumS as usize);
        // ainv: ∂ℓ/∂α · (−2/ainv³) − φ.
        dev.binary(Binary::Mul, &ainv.t[0], &ainv.z, &ainv.t[1]);
        dev.binary(Binary::Div, &ainv.ones, &ainv.t[1], &ainv.t[0]);
        dev.binary(Binary::Mul, &ainv.t[0], &c_m2, &ainv.t[1]);
        dev.binary(Binary::Mul, &th_acc, &ainv.t[1], &ainv.t[0]);
        dev.binary(Binary::Sub, &ainv.t[0], &up(phi.z[0]), &ainv.gz);
        tally.sum(dev, &ainv.z, e * g, Slot::SumAinv as usize);
        // x_rf ~ Gamma(α_r, β_r), α = k/F, β = k; k_r ~ Gamma(A/B, 1).
        let [r0, r5, r6, r7, r8, d_alpha, d_beta, lp] = &rv[..] else {
            unreachable!()
        };
        dev.binary(Binary::Mul, &k.z, &c_inv_f, r0);
        gamma_rows(
            dev,
            &xs,
            (r, f, &c_f),
            (r0, &k.z, &x_acc),
            &rs,
            [d_alpha, d_beta, lp],
            &c.one,
        );
        tally.sum(dev, lp, r, Slot::XPrior as usize);
        // k_r: dα/F + dβ + (A/B − 1)/k − 1.
        dev.binary(Binary::Mul, d_alpha, &c_inv_f, r7);
        dev.binary(Binary::Add, r7, d_beta, r6);
        dev.binary(Binary::Div, &k.ones, &k.z, r7);
        dev.binary(Binary::Mul, r7, &c_abm1, r8);
        dev.binary(Binary::Add, r6, r8, r7);
        dev.binary(Binary::Sub, r7, &c.one, &k.gz);
        dev.log_density(Density::Gamma, &k.z, &c_ab, &c.one, r5);
        tally.sum(dev, r5, r, Slot::KPrior as usize);

        let t = tally.read(dev).await;
        let at = |s: Slot| t.at(s as usize);
        // Host sites: their priors and their pull from the device sums.
        let mut lp = 0.0;
        for j in 0..e {
            let (a, y) = (pr.detection_alpha[j], ye.z[j]);
            let (sy, sly) = (t.seg(Slot::SumY as usize)[j], t.seg(Slot::LogY as usize)[j]);
            let (ya, yb) = (
                pr.detection_mean_alpha,
                pr.detection_mean_alpha / pr.detection_mean[j],
            );
            ye.gz[j] = -a * n_e[j] / y + a * sy / (y * y) + (ya - 1.0) / y - yb;
            lp += n_e[j] * (a * (a / y).ln() - lgamma_alpha[j]) + (a - 1.0) * sly - a / y * sy;
            lp += gamma_lp(y, ya, yb);
        }
        // m_g ~ Gamma(a, b), b = a / m̄: derivatives w.r.t. a and b.
        let (log_m, sum_m) = (at(Slot::LogM), at(Slot::SumM));
        let d_a = gf * (b_m.ln() - digamma(a_m)) + log_m;
        let d_b = gf * a_m / b_m - sum_m;
        let (mr, mmean) = (pr.m_g_mean_var_ratio, pr.m_g_mean);
        let mm0 = mm.z[0];
        mm.gz[0] = (mr * mmean - 1.0) / mm0 - mr + d_b * (-a_m / (mm0 * mm0));
        let ma0 = ma.z[0];
        ma.gz[0] = -pr.m_g_alpha_mean + (d_a + d_b / mm0) * (-2.0 / (ma0 * ma0 * ma0));
        lp += gamma_lp(mm0, mr * mmean, mr) + pr.m_g_alpha_mean.ln() - pr.m_g_alpha_mean * ma0;
        lp += gf * (a_m * b_m.ln() - lgamma(a_m)) + (a_m - 1.0) * log_m - b_m * sum_m;
        // Background hyperparameters and the overdispersion's φ.
        let (a_h, ph) = (ah.z[0], phi.z[0]);
        let egf = (e * g) as f64;
        ah.gz[0] = 8.0 / a_h - 3.0;
        phi.gz[0] = 8.0 / ph - 3.0 + egf / ph - at(Slot::SumAinv);
        lp += gamma_lp(a_h, 9.0, 3.0) + gamma_lp(ph, 9.0, 3.0) + egf * ph.ln()
            - ph * at(Slot::SumAinv);
        for (j, &kj) in k_e.iter().enumerate() {
            let (si, mj) = (sinv.z[j], sm.z[j]);
            let bj = kj / mj;
            let (sum_log_s, sum_s) = (t.seg(Slot::LogS as usize)[j], t.seg(Slot::SumS as usize)[j]);
            lp += gamma_lp(mj, 1.0, 100.0) + a_h.ln() - a_h * si;
            ah.gz[0] += 1.0 / a_h - si;
            let d_k = gf * (bj.ln() - digamma(kj)) + sum_log_s;
            let d_b = gf * kj / bj - sum_s;
            sinv.gz[j] = -a_h + (d_k + d_b / mj) * (-2.0 / (si * si * si));
            sm.gz[j] = -100.0 + d_b * (-kj / (mj * mj));
            lp += gf * (kj * bj.ln() - lgamma(kj)) + (kj - 1.0) * sum_log_s - bj * sum_s;
        }
        if let Some(p) = probe.as_mut() {
            let mut out = Probe::default();
            for site in [&m, &k, &xs, &s, &ainv] {
                let (z, gz) = site.probe(dev).await;
                out.z.push(z);
                out.gz.push(gz);
            }
            for kind in 0..5 {
                let (mut z, mut gz) = (vec![], vec![]);
                for bl in &blocks {
                    let site = [&bl.n, &bl.b, &bl.z, &bl.w, &bl.y][kind];
                    let (a, b) = site.probe(dev).await;
                    z.extend(a);
                    gz.extend(b);
                }
                out.z.push(z);
                out.gz.push(gz);
            }
            for h in [&mm, &ma, &ye, &ah, &sm, &sinv, &phi] {
                out.z.push(h.z.clone());
                out.gz.push(h.gz.clone());
            }
            p(&out);
        }
        let adam = AdamParams {
            lr: train.lr,
            step: step as u32,
            ..AdamParams::default()
        };
        for site in [&m, &k, &xs, &s, &ainv] {
            site.step(dev, &c, adam);
        }
        for bl in &blocks {
            for site in [&bl.n, &bl.b, &bl.z, &bl.w, &bl.y] {
                site.step(dev, &c, adam);
            }
        }
        for h in [
            &mut mm, &mut ma, &mut ye, &mut ah, &mut sm, &mut sinv, &mut phi,
        ] {
            h.step(adam);
        }
        let device_lp = [
            Slot::WPrior,
            Slot::ZPrior,
            Slot::NPrior,
            Slot::BPrior,
            Slot::XPrior,
            Slot::KPrior,
        ]
        .iter()
        .map(|&s| at(s))
        .sum::<f64>();
        let guide = at(Slot::U) + at(Slot::LogSigma) + 0.5 * at(Slot::Eps2) + guide_host;
        let elbo = at(Slot::LogLik) + device_lp + lp + guide + q_const;
        history.push(-elbo);
        if let Some(why) = dev.lost() {
            return Err(why);
        }
        progress(step as usize, train.max_epochs, -elbo);
        if (step as usize).is_multiple_of(EVERY_STEPS) && (step as usize) < train.max_epochs {
            let host = [&mm, &ma, &ye, &ah, &sm, &sinv, &phi];
            let cp = sites
                .checkpoint(dev, step as usize, true, step, &host, &history)
                .await;
            if let Some(why) = dev.lost() {
                return Err(why);
            }
            (resume.save)(cp);
        }
    }

    let mut summaries = vec![];
    for (name, site, shape) in [
        ("m_g", &m, [1, g]),
        ("k_r_factors_per_groups", &k, [r, 1]),
        ("x_fr_group2fact", &xs, [r, f]),
        ("s_g_gene_add", &s, [e, g]),
        ("alpha_g_inverse", &ainv, [e, g]),
    ] {
        summaries.push((name, shape, site.summary(dev).await));
    }
    for (kind, name) in SITES[5..10].iter().enumerate() {
        let mut sum = Summary::default();
        for bl in &blocks {
            sum.extend([&bl.n, &bl.b, &bl.z, &bl.w, &bl.y][kind].summary(dev).await);
        }
        let cols = [1, 1, r, f, 1][kind];
        summaries.push((*name, [s_n, cols], sum));
    }
    for (name, h, shape) in [
        ("m_g_mean", &mm, [1, 1]),
        ("m_g_alpha_e_inv", &ma, [1, 1]),
        ("detection_mean_y_e", &ye, [e, 1]),
        ("s_g_gene_add_alpha_hyp", &ah, [1, 1]),
        ("s_g_gene_add_mean", &sm, [e, 1]),
        ("s_g_gene_add_alpha_e_inv", &sinv, [e, 1]),
        ("alpha_g_phi_hyp", &phi, [1, 1]),
    ] {
        summaries.push((name, shape, h.summary()));
    }
    let mut w_guide = (vec![], vec![]);
    for bl in &blocks {
        let (l, sd) = bl.w.guide(dev).await;
        w_guide.0.extend(l);
        w_guide.1.extend(sd);
    }
    Ok(MapFit {
        sites: summaries,
        elbo_history: history,
        w_guide,
        m_guide: m.guide(dev).await,
    })
}

/// What a checkpoint of this fit names itself: the model, its sizes and a
/// hash of the signatures (a regression run again on another device gives
/// other signatures, and a mapping of them starts afresh).
pub fn fit_name(data: &MapData, pr: &Priors) -> String {
    let hash = data
        .signatures
        .iter()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, v| {
            (h ^ v.to_bits() as u64).wrapping_mul(0x0100_0000_01b3)
        });
    format!(
        "cell2location mapping of {} spots x {} genes, {} cell types, {} batches, {} groups, signatures {hash:016x}",
        data.spots, data.genes, data.types, data.n_batches, pr.n_groups
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compute::cpu::{nb_terms, Cpu};

    /// The log joint at given site values (SITES order), written
    /// independently in f64.
    fn log_joint(d: &MapData, p: &Priors, z: &[Vec<f64>]) -> f64 {
        let (s_n, g, f, e, r) = (d.spots, d.genes, d.types, d.n_batches, p.n_groups);
        let [m, k, x, s, ainv, n, b, zz, w, y, mm, ma, ye, ah, sm, sinv, ph] = z else {
            panic!("17 sites")
        };
        let mut lj = 0.0;
        for sp in 0..s_n {
            let eb = d.batch[sp];
            for j in 0..g {
                let sum_f: f64 = (0..f)
                    .map(|t| w[sp * f + t] * d.signatures[t * g + j] as f64)
                    .sum();
                let mean = (m[j] * sum_f + s[eb * g + j]) * y[sp];
                let theta = 1.0 / (ainv[eb * g + j] * ainv[eb * g + j]);
                lj += nb_terms(d.x[sp * g + j] as f64, mean, theta).0;
            }
        }
        let a = 1.0 / (ma[0] * ma[0]);
        lj += gamma_lp(mm[0], 1.0, 1.0) + 3f64.ln() - 3.0 * ma[0];
        lj += m.iter().map(|&v| gamma_lp(v, a, a / mm[0])).sum::<f64>();
        let nr = p.n_cells_per_location;
        for sp in 0..s_n {
            lj += gamma_lp(n[sp], nr, 1.0) + gamma_lp(b[sp], p.b_groups_per_location, 1.0);
            for q in 0..r {
                lj += gamma_lp(zz[sp * r + q], b[sp] / r as f64, b[sp] / n[sp]);
            }
            for t in 0..f {
                let mu: f64 = (0..r).map(|q| zz[sp * r + q] * x[q * f + t]).sum();
                lj += gamma_lp(w[sp * f + t], 5.0 * mu, 5.0);
            }
            let al = p.detection_alpha[d.batch[sp]];
            lj += gamma_lp(y[sp], al, al / ye[d.batch[sp]]);
        }
        for q in 0..r {
            lj += gamma_lp(
                k[q],
                p.a_factors_per_location / p.b_groups_per_location,
                1.0,
            );
            for t in 0..f {
                lj += gamma_lp(x[q * f + t], k[q] / f as f64, k[q]);
            }
        }
        for j in 0..e {
            lj += gamma_lp(ye[j], 10.0, 10.0 / p.detection_mean[j]);
            lj += gamma_lp(sm[j], 1.0, 100.0) + ah[0].ln() - ah[0] * sinv[j];
            let shape = 1.0 / (sinv[j] * sinv[j]);
            for q in 0..g {
                lj += gamma_lp(s[j * g + q], shape, shape / sm[j]);
            }
        }
        lj += gamma_lp(ah[0], 9.0, 3.0) + gamma_lp(ph[0], 9.0, 3.0);
        lj + ainv.iter().map(|v| ph[0].ln() - ph[0] * v).sum::<f64>()
    }

    #[test]
    fn gradients_match_finite_differences_of_the_log_joint() {
        let (spots, genes, f, e) = (7, 5, 3, 2);
        let x: Vec<f32> = (0..spots * genes).map(|i| ((i * 7) % 11) as f32).collect();
        let sig: Vec<f32> = (0..f * genes).map(|i| 0.2 + (i % 4) as f32 * 0.7).collect();
        let batch: Vec<usize> = (0..spots).map(|s| s % e).collect();
        let d = MapData {
            x: &x,
            spots,
            genes,
            signatures: &sig,
            types: f,
            batch: &batch,
            n_batches: e,
        };
        let mut p = Priors::new(6.0, 20.0, e);
        p.n_groups = 4;
        p.detection_alpha = vec![20.0, 7.0];
        p.detection_mean = vec![0.8, 1.3];
        // Three blocks of at most 3 spots: accumulation across blocks is checked.
        let train = Train {
            max_epochs: 2,
            lr: 0.05,
            seed: 5,
            block_rows: Some(3),
        };
        let mut probes = vec![];
        let mut keep = |p: &Probe| probes.push(p.clone());
        pollster::block_on(fit(
            &Cpu,
            &d,
            &p,
            &train,
            &mut |_, _, _| {},
            Some(&mut keep),
            Resume::none(&mut |_| {}),
        ))
        .unwrap();
        // The second step: sites have moved off their starting values.
        let pb = &probes[1];
        assert_eq!(pb.z.len(), SITES.len());
        let mut checked = 0;
        for site in 0..SITES.len() {
            for i in 0..pb.z[site].len() {
                let h = 1e-4;
                let at = |du: f64| {
                    let mut z = pb.z.clone();
                    z[site][i] *= du.exp();
                    log_joint(&d, &p, &z)
                };
                let fd = (at(h) - at(-h)) / (2.0 * h);
                let ours = pb.z[site][i] * pb.gz[site][i];
                assert!(
                    (ours - fd).abs() < 2e-3 * fd.abs().max(1.0),
                    "{} element {i}: {ours} vs {fd}",
                    SITES[site]
                );
                checked += 1;
            }
        }
        let r = 4;
        assert_eq!(
            checked,
            genes + r + r * f + 2 * e * genes + spots * (3 + r + f) + 4 + 3 * e
        );
    }

    #[test]
    fn a_large_section_fits_an_80_gb_card() {
        // The maintainers' ceiling for the reference on an A100 80 GB.
        let need = footprint(60_000, 18_000, 50, 1, 50);
        assert!(need < 40 << 30, "{} GiB", need >> 30);
        // Spots x genes tensors dominate: doubling the genes nearly doubles it.
        assert!(footprint(60_000, 36_000, 50, 1, 50) > need * 19 / 10);
    }

    #[test]
    fn loss_falls_and_abundances_follow_the_signal() {
        // Half the spots hold 8 cells of type 0, half 8 of type 1; each type
        // expresses its own 20 genes; counts are the expected values.
        let (spots, genes, f) = (12, 40, 2);
        let sig: Vec<f32> = (0..f * genes)
            .map(|i| {
                if (i % genes < 20) == (i / genes == 0) {
                    2.0
                } else {
                    0.05
                }
            })
            .collect();
        let x: Vec<f32> = (0..spots * genes)
            .map(|i| {
                let t = usize::from(i / genes >= spots / 2);
                (8.0 * sig[t * genes + i % genes]).round()
            })
            .collect();
        let d = MapData {
            x: &x,
            spots,
            genes,
            signatures: &sig,
            types: f,
            batch: &[0; 12],
            n_batches: 1,
        };
        let p = Priors::new(8.0, 20.0, 1);
        let train = Train {
            max_epochs: 3000,
            lr: 0.01,
            ..Train::default()
        };
        let fit = pollster::block_on(fit(
            &Cpu,
            &d,
            &p,
            &train,
            &mut |_, _, _| {},
            None,
            Resume::none(&mut |_| {}),
        ))
        .unwrap();
        let h = &fit.elbo_history;
        assert!(h.iter().all(|v| v.is_finite()));
        let early: f64 = h[..50].iter().sum::<f64>() / 50.0;
        let late: f64 = h[h.len() - 50..].iter().sum::<f64>() / 50.0;
        assert!(late < early, "loss {early} -> {late}");
        let w = &fit.site("w_sf").means;
        for s in 0..spots {
            let (own, other) = if s < spots / 2 { (0, 1) } else { (1, 0) };
            assert!(
                w[s * f + own] > 5.0 * w[s * f + other] && w[s * f + own] > 4.0,
                "spot {s}: {:?}",
                &w[s * f..s * f + f]
            );
        }
    }
}
