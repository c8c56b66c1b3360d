//! The NSF family's objective on a [`Device`]: T spatial factors (SVGPs at
//! M inducing points, the loadings W) and K nonspatial ones (PNMF's
//! mean-field log-factors, the loadings V), each draw's rate
//! sz · (W e^f + V e^h), and the loss the paper minimises,
//! −J · mean log p(y) + (Σ_l KL_l + Σ_i KL_i) / N, with its gradient by
//! hand. NSF is K = 0, PNMF T = 0, NSFH both; RSF is NSF with real-valued
//! factors and loadings, rate sz · exp(W f). The Gaussian likelihood reads
//! normalised data, so it has no size factors and RSF's link is the
//! identity: mean W e^f + V e^h, or W f.
//!
//! Everything a GP needs from its kernel (K_uu's factor and inverse,
//! α = K_uu⁻¹K_uf, the conditional variances) is cached by
//! [`Objective::refresh`], which the trainer calls every 10 epochs; the
//! kernel's own gradient is only formed on those epochs, as the paper's
//! trainer does. Draws are stacked (S × …) so that each product is one
//! batched GEMM, and no op writes a buffer it reads (wgpu forbids it).

use serde::{Deserialize, Serialize};

use crate::models::checkpoint::{write_all, Checkpoint};

use crate::compute::{
    AdamParams, Axis, Binary, Device, Gemm, GpKernel, KernelPart, Reduce, Tri, Unary,
};

/// K_uu's and K_ff's nugget.
pub const NUGGET: f32 = 1e-5;
/// Added to the softplus of Ω's diagonal (TFP's FillScaleTriL).
pub const DIAG_SHIFT: f32 = 1e-5;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Likelihood {
    Poisson,
    Nb,
    /// Normal(mean, σ_j) per feature, σ_j = softplus(raw) (starts at 1).
    Gaussian,
}

impl Likelihood {
    /// Has a per-feature parameter (NB's φ, the Gaussian's σ) in `disp`.
    pub fn has_disp(self) -> bool {
        self != Likelihood::Poisson
    }
}

/// Sizes: N observations, J features, T spatial and K nonspatial factors,
/// M inducing points, S draws per step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    pub n: usize,
    pub j: usize,
    pub t: usize,
    pub k: usize,
    pub m: usize,
    pub s: usize,
}

/// The parameters as optimised: softplus raws for the amplitude, length
/// scale, Ω's diagonal, the nonspatial scales and the NB dispersion.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Params {
    /// T×M variational means of u.
    pub delta: Vec<f32>,
    /// T×M×M lower-triangular scales of q(u), unconstrained (the upper
    /// triangle is unused and stays 0).
    pub omega: Vec<f32>,
    pub beta0: Vec<f32>,
    /// T×2 slopes of the GP mean.
    pub beta: Vec<f32>,
    pub amp: Vec<f32>,
    pub ls: Vec<f32>,
    /// J×T spatial loadings.
    pub w: Vec<f32>,
    /// N×K variational means and scales of the nonspatial log-factors.
    pub qloc: Vec<f32>,
    pub qscale: Vec<f32>,
    /// K prior means and scales of the nonspatial log-factors.
    pub ploc: Vec<f32>,
    pub pscale: Vec<f32>,
    /// J×K nonspatial loadings.
    pub v: Vec<f32>,
    /// J NB dispersions φ (var = μ + φμ²) or Gaussian scales σ, softplus
    /// raws; empty for Poisson.
    pub disp: Vec<f32>,
}

/// The training data and fixed geometry, on the host.
pub struct Data<'a> {
    /// N×J counts.
    pub y: &'a [f32],
    pub sz: &'a [f32],
    /// N×2 coordinates and M×2 inducing points.
    pub x: &'a [[f64; 2]],
    pub z: &'a [[f64; 2]],
}

/// A parameter with its gradient and Adam moments.
pub struct Var<D: Device> {
    pub x: D::Buf,
    pub g: D::Buf,
    m: D::Buf,
    v: D::Buf,
}

impl<D: Device> Var<D> {
    fn new(dev: &D, x: &[f32]) -> Var<D> {
        Var {
            x: dev.upload(x),
            g: dev.zeros(x.len()),
            m: dev.zeros(x.len()),
            v: dev.zeros(x.len()),
        }
    }
}

/// The loss split as the paper reports it (per training observation).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Loss {
    /// −J · mean log-likelihood.
    pub nll: f64,
    pub kl_spatial: f64,
    pub kl_nonspatial: f64,
}

impl Loss {
    pub fn total(&self) -> f64 {
        self.nll + self.kl_spatial + self.kl_nonspatial
    }
}

/// A failed refresh: K_uu of this factor is not positive definite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotPositiveDefinite {
    pub factor: usize,
    pub column: usize,
}

/// Pairwise distances between the rows of a and b.
pub fn distances(a: &[[f64; 2]], b: &[[f64; 2]]) -> Vec<f32> {
    let mut d = Vec::with_capacity(a.len() * b.len());
    for p in a {
        for q in b {
            d.push(((p[0] - q[0]).powi(2) + (p[1] - q[1]).powi(2)).sqrt() as f32);
        }
    }
    d
}

#[allow(clippy::too_many_arguments)]
fn gm(
    m: usize,
    n: usize,
    k: usize,
    ta: bool,
    tb: bool,
    alpha: f32,
    beta: f32,
    batch: usize,
) -> Gemm {
    Gemm {
        m,
        n,
        k,
        trans_a: ta,
        trans_b: tb,
        alpha,
        beta,
        batch,
    }
}

/// Named device buffers of the spatial part.
struct Spatial<D: Device> {
    delta: Var<D>,
    omega: Var<D>,
    beta0: Var<D>,
    beta: Var<D>,
    amp: Var<D>,
    ls: Var<D>,
    w: Var<D>,
    x: D::Buf,
    z: D::Buf,
    /// The inducing points on the host, for predictions at new points.
    z_host: Vec<[f64; 2]>,
    dzz: D::Buf,
    dxz: D::Buf,
    /// 1 strictly below the diagonal of an M×M matrix.
    mask: D::Buf,
    /// Positions of the T·M diagonal entries of T stacked M×M matrices.
    diag: D::Index,
    nugget: D::Buf,
    ones_tm: D::Buf,
    // Kernel cache (refresh).
    lu: D::Buf,
    kinv: D::Buf,
    /// T×N×M: αᵀ = K_fu K_uu⁻¹.
    a: D::Buf,
    /// K_ff − ‖L_u⁻¹K_uf‖² per factor and observation.
    kdiag: D::Buf,
    logdet: Vec<f64>,
    // Per-step values kept for the kernel gradient.
    om: D::Buf,
    kinv_om: D::Buf,
    p: D::Buf,
    r: D::Buf,
    vk: D::Buf,
    sd: D::Buf,
    gmu: D::Buf,
    gsig: D::Buf,
    // Scratch.
    mm: [D::Buf; 3],
    nm: [D::Buf; 3],
    /// Stacked draws S×T×N.
    e: D::Buf,
    w_rep: D::Buf,
    gw_rep: D::Buf,
}

struct NonSpatial<D: Device> {
    qloc: Var<D>,
    qscale: Var<D>,
    ploc: Var<D>,
    pscale: Var<D>,
    v: Var<D>,
    /// Stacked S×N×K.
    e: D::Buf,
    /// Numerators of the reciprocals (K and N×K ones).
    ones_k: D::Buf,
    ones_nk: D::Buf,
    v_rep: D::Buf,
    gv_rep: D::Buf,
    qsc: D::Buf,
}

pub struct Objective<'d, D: Device> {
    dev: &'d D,
    pub shape: Shape,
    kernel: GpKernel,
    /// NSF's nonnegative factors (rate sz · W e^f, W ≥ 0); false is RSF's
    /// real ones (W free).
    nonneg: bool,
    lik: Likelihood,
    /// RSF with a count likelihood: rate sz · exp(W f).
    log_link: bool,
    /// S×N×J scratch: exp of the log-rates, or the Gaussian residuals.
    tmp: D::Buf,
    /// The counts repeated for each draw (S·N × J).
    y_rep: D::Buf,
    sz_rep: D::Buf,
    ones_s: D::Buf,
    sp: Option<Spatial<D>>,
    ns: Option<NonSpatial<D>>,
    disp: Option<Var<D>>,
    /// S×N×J rates, their gradient, the gradient scaled to the loss.
    rate: D::Buf,
    grate: D::Buf,
    gl: D::Buf,
    gtheta: D::Buf,
    ll: D::Buf,
    consts: Consts<D>,
    /// Has `refresh` filled the kernel cache (it is then kept, stale, until
    /// the next refresh, as the paper's cached factorisation is).
    fresh: bool,
}

struct Consts<D: Device> {
    zero: D::Buf,
    one: D::Buf,
    half: D::Buf,
    minus_one: D::Buf,
    inv_n: D::Buf,
    two: D::Buf,
    diag_shift: D::Buf,
    nugget: D::Buf,
    /// −1/(S·N): d loss / d log-likelihood.
    neg_inv_sn: D::Buf,
    /// 1/(2N): the KL's ½ log|K| and ½ tr terms in K̄.
    inv_2n: D::Buf,
    /// −J/2 · log 2π: the Gaussian log-density's constant per row.
    neg_half_j_log_2pi: D::Buf,
}

impl<'d, D: Device> Objective<'d, D> {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        dev: &'d D,
        shape: Shape,
        lik: Likelihood,
        kernel: GpKernel,
        nonneg: bool,
        data: &Data,
        p: &Params,
    ) -> Objective<'d, D> {
        assert!(
            nonneg || shape.k == 0,
            "real-valued factors are spatial only (RSF)"
        );
        let Shape { n, j, t, k, m, s } = shape;
        let up = |v: &[f32]| dev.upload(v);
        let gaussian = lik == Likelihood::Gaussian;
        let sz_rep: Vec<f32> = if gaussian {
            vec![1.0; s * n]
        } else {
            (0..s).flat_map(|_| data.sz.iter().copied()).collect()
        };
        let log_link = !nonneg && !gaussian;
        let sp = (t > 0).then(|| {
            let mut mask = vec![0f32; m * m];
            for r in 0..m {
                mask[r * m..r * m + r].fill(1.0);
            }
            let diag: Vec<u32> = (0..t)
                .flat_map(|l| (0..m).map(move |i| (l * m * m + i * m + i) as u32))
                .collect();
            let flat = |pts: &[[f64; 2]]| -> Vec<f32> {
                pts.iter()
                    .flat_map(|q| [q[0] as f32, q[1] as f32])
                    .collect()
            };
            Spatial {
                delta: Var::new(dev, &p.delta),
                omega: Var::new(dev, &p.omega),
                beta0: Var::new(dev, &p.beta0),
                beta: Var::new(dev, &p.beta),
                amp: Var::new(dev, &p.amp),
                ls: Var::new(dev, &p.ls),
                w: Var::new(dev, &p.w),
                x: up(&flat(data.x)),
                z: up(&flat(data.z)),
                z_host: data.z.to_vec(),
                dzz: dev.upload_owned(distances(data.z, data.z)),
                dxz: dev.upload_owned(distances(data.x, data.z)),
                mask: dev.upload_owned(mask),
                diag: dev.upload_index_owned(diag),
                nugget: dev.upload_owned(vec![NUGGET; t * m]),
                ones_tm: dev.upload_owned(vec![1.0; t * m]),
                lu: dev.zeros(t * m * m),
                kinv: dev.zeros(t * m * m),
                a: dev.zeros(t * n * m),
                kdiag: dev.zeros(t * n),
                logdet: vec![0.0; t],
                om: dev.zeros(t * m * m),
                kinv_om: dev.zeros(t * m * m),
                p: dev.zeros(t * n * m),
                r: dev.zeros(t * m),
                vk: dev.zeros(t * m),
                sd: dev.zeros(t * n),
                gmu: dev.zeros(t * n),
                gsig: dev.zeros(t * n),
                mm: std::array::from_fn(|_| dev.zeros(t * m * m)),
                nm: std::array::from_fn(|_| dev.zeros(t * n * m)),
                e: dev.zeros(s * t * n),
                w_rep: dev.zeros(s * j * t),
                gw_rep: dev.zeros(s * j * t),
            }
        });
        let ns = (k > 0).then(|| NonSpatial {
            qloc: Var::new(dev, &p.qloc),
            qscale: Var::new(dev, &p.qscale),
            ploc: Var::new(dev, &p.ploc),
            pscale: Var::new(dev, &p.pscale),
            v: Var::new(dev, &p.v),
            e: dev.zeros(s * n * k),
            ones_k: dev.upload_owned(vec![1.0; k]),
            ones_nk: dev.upload_owned(vec![1.0; n * k]),
            v_rep: dev.zeros(s * j * k),
            gv_rep: dev.zeros(s * j * k),
            qsc: dev.zeros(n * k),
        });
        Objective {
            dev,
            shape,
            kernel,
            nonneg,
            lik,
            log_link,
            tmp: dev.zeros(if log_link || gaussian { s * n * j } else { 1 }),
            y_rep: dev.upload_owned((0..s).flat_map(|_| data.y.iter().copied()).collect()),
            sz_rep: dev.upload_owned(sz_rep),
            ones_s: dev.upload_owned(vec![1.0; s]),
            sp,
            ns,
            disp: lik.has_disp().then(|| Var::new(dev, &p.disp)),
            rate: dev.zeros(s * n * j),
            grate: dev.zeros(s * n * j),
            gl: dev.zeros(s * n * j),
            gtheta: dev.zeros(if lik == Likelihood::Nb { s * n * j } else { 1 }),
            ll: dev.zeros(s * n),
            consts: Consts {
                zero: up(&[0.0]),
                one: up(&[1.0]),
                half: up(&[0.5]),
                minus_one: up(&[-1.0]),
                inv_n: up(&[1.0 / n as f32]),
                two: up(&[2.0]),
                diag_shift: up(&[DIAG_SHIFT]),
                nugget: up(&[NUGGET]),
                neg_inv_sn: up(&[-1.0 / (s * n) as f32]),
                inv_2n: up(&[0.5 / n as f32]),
                neg_half_j_log_2pi: up(&[-0.5 * j as f32 * (2.0 * std::f32::consts::PI).ln()]),
            },
            fresh: false,
        }
    }

    fn g(&self, g: Gemm, a: &D::Buf, b: &D::Buf, c: &D::Buf) {
        self.dev.gemm(g, a, b, c);
    }

    fn bin(&self, op: Binary, a: &D::Buf, b: &D::Buf, out: &D::Buf) {
        self.dev.binary(op, a, b, out);
    }

    /// Sums over the S stacked draws of an S×len buffer.
    fn sum_draws(&self, x: &D::Buf, len: usize, out: &D::Buf) {
        self.g(
            gm(1, len, self.shape.s, false, false, 1.0, 0.0, 1),
            &self.ones_s,
            x,
            out,
        );
    }

    /// Refreshes the kernel cache from the current amplitude and length
    /// scale; fails when a K_uu is not positive definite.
    pub async fn refresh(&mut self) -> Result<(), NotPositiveDefinite> {
        self.fresh = true;
        let Some(sp) = &self.sp else { return Ok(()) };
        let (dev, c) = (self.dev, &self.consts);
        let Shape { n, t, m, .. } = self.shape;
        let (amp, ls) = (&dev.zeros(t), &dev.zeros(t));
        dev.unary(Unary::Softplus, &sp.amp.x, amp);
        dev.unary(Unary::Softplus, &sp.ls.x, ls);
        dev.gp_kernel(self.kernel, KernelPart::Value, &sp.dzz, amp, ls, t, &sp.lu);
        dev.scatter_add(&sp.nugget, &sp.diag, &sp.lu);
        let info = dev.zeros(t);
        dev.cholesky(&sp.lu, m, t, &info);
        let info = dev.read(&info).await;
        if let Some((factor, &col)) = info.iter().enumerate().find(|(_, &c)| c != 0.0) {
            self.fresh = false;
            return Err(NotPositiveDefinite {
                factor,
                column: col as usize,
            });
        }
        let kinv = dev.zeros(t * m * m);
        dev.scatter_add(&sp.ones_tm, &sp.diag, &kinv);
        dev.trsm(&sp.lu, &kinv, m, m, t, false);
        dev.trsm(&sp.lu, &kinv, m, m, t, true);
        let kfu = &sp.nm[0];
        dev.gp_kernel(self.kernel, KernelPart::Value, &sp.dxz, amp, ls, t, kfu);
        self.g(gm(n, m, m, false, false, 1.0, 0.0, t), kfu, &kinv, &sp.a);
        self.bin(Binary::Mul, &sp.a, kfu, &sp.nm[1]);
        let q0 = dev.zeros(t * n);
        dev.reduce(Reduce::Sum, Axis::Rows, &sp.nm[1], t * n, m, &q0);
        // kdiag = a² + nugget − q0, per factor.
        let (a2, a2n) = (dev.zeros(t), dev.zeros(t));
        self.bin(Binary::Mul, amp, amp, &a2);
        self.bin(Binary::Add, &a2, &c.nugget, &a2n);
        let neg = dev.zeros(t * n);
        dev.binary_rows(Binary::Sub, &q0, &a2n, t, n, &neg);
        // ≥ 0: with Z on the training locations it is the nugget less rounding.
        let kd = dev.zeros(t * n);
        self.bin(Binary::Mul, &neg, &c.minus_one, &kd);
        self.bin(Binary::Max, &kd, &c.zero, &sp.kdiag);
        let (d, ld) = (dev.zeros(t * m), dev.zeros(t * m));
        dev.gather(&sp.lu, &sp.diag, &d);
        dev.unary(Unary::Log, &d, &ld);
        let ld = dev.read(&ld).await;
        let logdet = (0..t)
            .map(|l| {
                2.0 * ld[l * m..(l + 1) * m]
                    .iter()
                    .map(|&v| v as f64)
                    .sum::<f64>()
            })
            .collect();
        if let Some(sp) = &mut self.sp {
            sp.logdet = logdet;
            sp.kinv = kinv;
        }
        Ok(())
    }

    /// The loss at standard-normal draws `eps_f` (S×T×N) and `eps_h`
    /// (S×N×K), with every gradient written to its `Var::g`; the kernel's
    /// too when `kernel_grads` (the cache must be fresh).
    pub async fn loss_grad(&mut self, eps_f: &D::Buf, eps_h: &D::Buf, kernel_grads: bool) -> Loss {
        assert!(self.fresh || self.sp.is_none(), "loss_grad before refresh");
        let dev = self.dev;
        let Shape { n, j, t, k, s, .. } = self.shape;
        if let Some(sp) = &self.sp {
            self.spatial_forward(sp, eps_f);
        }
        if let Some(ns) = &self.ns {
            dev.unary(Unary::Softplus, &ns.qscale.x, &ns.qsc);
            let (h0, h) = (dev.zeros(s * n * k), dev.zeros(s * n * k));
            self.bin(Binary::Mul, eps_h, &ns.qsc, &h0);
            self.bin(Binary::Add, &h0, &ns.qloc.x, &h);
            dev.unary(Unary::Exp, &h, &ns.e);
            self.g(
                gm(s, j * k, 1, false, false, 1.0, 0.0, 1),
                &self.ones_s,
                &ns.v.x,
                &ns.v_rep,
            );
        }
        // The rate of every draw, then the likelihood.
        if let Some(sp) = &self.sp {
            self.g(
                gm(n, j, t, true, true, 1.0, 0.0, s),
                &sp.e,
                &sp.w_rep,
                &self.grate,
            );
        }
        if let Some(ns) = &self.ns {
            let beta = if self.sp.is_some() { 1.0 } else { 0.0 };
            self.g(
                gm(n, j, k, false, true, 1.0, beta, s),
                &ns.e,
                &ns.v_rep,
                &self.grate,
            );
        }
        if self.log_link {
            // The product is the log of the rate per size factor.
            dev.unary(Unary::Exp, &self.grate, &self.tmp);
            dev.binary_rows(Binary::Mul, &self.tmp, &self.sz_rep, s * n, j, &self.rate);
        } else {
            dev.binary_rows(Binary::Mul, &self.grate, &self.sz_rep, s * n, j, &self.rate);
        }
        match self.lik {
            Likelihood::Poisson => {
                dev.poisson_loglik_grad(&self.y_rep, &self.rate, s * n, j, &self.ll, &self.grate)
            }
            Likelihood::Nb => self.nb_likelihood(),
            Likelihood::Gaussian => self.gaussian_likelihood(),
        }
        // d loss / d (the product W e^f, or W f) = −1/(S·N) · d ll / d rate
        // times sz, or times the rate itself under RSF's log link.
        let scale = &self.consts.neg_inv_sn;
        if self.log_link {
            self.bin(Binary::Mul, &self.grate, &self.rate, &self.tmp);
            self.bin(Binary::Mul, &self.tmp, scale, &self.gl);
        } else {
            let szc = dev.zeros(s * n);
            self.bin(Binary::Mul, &self.sz_rep, scale, &szc);
            dev.binary_rows(Binary::Mul, &self.grate, &szc, s * n, j, &self.gl);
        }
        let mut loss = Loss::default();
        let ll = dev.read(&self.ll).await;
        loss.nll = -ll.iter().map(|&v| v as f64).sum::<f64>() / (s * n) as f64;
        if self.sp.is_some() {
            loss.kl_spatial = self.spatial_backward(eps_f, kernel_grads).await;
        }
        if self.ns.is_some() {
            loss.kl_nonspatial = self.nonspatial_backward(eps_h).await;
        }
        loss
    }

    /// NB log-likelihood per row into `ll`, d/d rate into `grate`, and the
    /// dispersions' gradient.
    fn nb_likelihood(&self) {
        let (dev, c) = (self.dev, &self.consts);
        let Shape { n, j, s, .. } = self.shape;
        let d = self.disp.as_ref().expect("NB dispersions");
        // θ = 1/φ = exp(−log softplus(raw)).
        let (phi, lphi, nl, th) = (dev.zeros(j), dev.zeros(j), dev.zeros(j), dev.zeros(j));
        dev.unary(Unary::Softplus, &d.x, &phi);
        dev.unary(Unary::Log, &phi, &lphi);
        self.bin(Binary::Mul, &lphi, &c.minus_one, &nl);
        dev.unary(Unary::Exp, &nl, &th);
        dev.nb_loglik_grad(
            &self.y_rep,
            &self.rate,
            &th,
            s * n,
            j,
            &self.ll,
            &self.grate,
            &self.gtheta,
        );
        // dθ/draw = −θ² σ(raw).
        let (g0, g1, g2, sg) = (dev.zeros(j), dev.zeros(j), dev.zeros(j), dev.zeros(j));
        dev.reduce(Reduce::Sum, Axis::Cols, &self.gtheta, s * n, j, &g0);
        self.bin(Binary::Mul, &g0, &c.neg_inv_sn, &g1);
        self.bin(Binary::Mul, &th, &th, &g2);
        self.bin(Binary::Mul, &g1, &g2, &g0);
        dev.unary(Unary::Sigmoid, &d.x, &sg);
        self.bin(Binary::Mul, &g0, &sg, &g1);
        self.bin(Binary::Mul, &g1, &c.minus_one, &d.g);
    }

    /// Normal(mean, σ_j) log-likelihood per row into `ll`, d/d mean =
    /// (y − mean)/σ² into `grate`, and the scales' gradient; `gl` is
    /// scratch here.
    fn gaussian_likelihood(&self) {
        let (dev, c) = (self.dev, &self.consts);
        let Shape { n, j, s, .. } = self.shape;
        let d = self.disp.as_ref().expect("Gaussian scales");
        let (sig, lsig, l2, ivar, isig) = (
            dev.zeros(j),
            dev.zeros(j),
            dev.zeros(j),
            dev.zeros(j),
            dev.zeros(j),
        );
        dev.unary(Unary::Softplus, &d.x, &sig);
        dev.unary(Unary::Log, &sig, &lsig);
        self.bin(Binary::Mul, &lsig, &c.minus_one, &l2);
        dev.unary(Unary::Exp, &l2, &isig);
        self.bin(Binary::Mul, &isig, &isig, &ivar);
        // r = y − mean; d ll/d mean = r/σ².
        self.bin(Binary::Sub, &self.y_rep, &self.rate, &self.tmp);
        self.bin(Binary::Mul, &self.tmp, &ivar, &self.grate);
        self.bin(Binary::Mul, &self.tmp, &self.tmp, &self.gl);
        // ll = −½ Σ_j r²/σ² − Σ_j log σ − J/2 · log 2π per row.
        let q = dev.zeros(s * n);
        self.g(
            gm(s * n, 1, j, false, false, -0.5, 0.0, 1),
            &self.gl,
            &ivar,
            &q,
        );
        let (sl, cst) = (dev.zeros(1), dev.zeros(1));
        dev.reduce(Reduce::Sum, Axis::Rows, &lsig, 1, j, &sl);
        self.bin(Binary::Sub, &c.neg_half_j_log_2pi, &sl, &cst);
        self.bin(Binary::Add, &q, &cst, &self.ll);
        // d loss/d raw_j = (1/σ − Σ r²/(S·N σ³)) · sigmoid(raw).
        let (rss, a, b, e, sg) = (
            dev.zeros(j),
            dev.zeros(j),
            dev.zeros(j),
            dev.zeros(j),
            dev.zeros(j),
        );
        dev.reduce(Reduce::Sum, Axis::Cols, &self.gl, s * n, j, &rss);
        self.bin(Binary::Mul, &rss, &ivar, &a);
        self.bin(Binary::Mul, &a, &c.neg_inv_sn, &b);
        self.bin(Binary::Add, &b, &c.one, &a);
        self.bin(Binary::Mul, &a, &isig, &e);
        dev.unary(Unary::Sigmoid, &d.x, &sg);
        self.bin(Binary::Mul, &e, &sg, &d.g);
    }

    /// Ω = strict lower part of the raws + softplus of their diagonal + 1e-5,
    /// into `sp.om`; returns the diagonal.
    fn omega_matrix(&self, sp: &Spatial<D>) -> D::Buf {
        let (dev, c) = (self.dev, &self.consts);
        let Shape { t, m, .. } = self.shape;
        let (dr, dsp, od) = (dev.zeros(t * m), dev.zeros(t * m), dev.zeros(t * m));
        dev.gather(&sp.omega.x, &sp.diag, &dr);
        dev.unary(Unary::Softplus, &dr, &dsp);
        self.bin(Binary::Add, &dsp, &c.diag_shift, &od);
        self.bin(Binary::Mul, &sp.omega.x, &sp.mask, &sp.om);
        dev.scatter_add(&od, &sp.diag, &sp.om);
        od
    }

    /// The GP means β0 + βᵀx at the `rows` points of `x` (rows×2), T×rows.
    fn gp_mean(&self, sp: &Spatial<D>, x: &D::Buf, rows: usize) -> D::Buf {
        let (dev, t) = (self.dev, self.shape.t);
        let (m0, m1) = (dev.zeros(t * rows), dev.zeros(t * rows));
        self.g(gm(t, rows, 2, false, true, 1.0, 0.0, 1), &sp.beta.x, x, &m0);
        dev.binary_rows(Binary::Add, &m0, &sp.beta0.x, t, rows, &m1);
        m1
    }

    /// Ω from its raws, the GP's marginals at the data and the S draws
    /// e = exp(μ̃ + √Σ̃ ε), plus W repeated per draw.
    fn spatial_forward(&self, sp: &Spatial<D>, eps_f: &D::Buf) {
        let (dev, c) = (self.dev, &self.consts);
        let Shape { n, j, t, m, s, .. } = self.shape;
        self.omega_matrix(sp);
        // r = δ − m(Z), μ̃ = m(X) + αᵀ r.
        let mz = self.gp_mean(sp, &sp.z, m);
        let mx = self.gp_mean(sp, &sp.x, n);
        self.bin(Binary::Sub, &sp.delta.x, &mz, &sp.r);
        let mu0 = dev.zeros(t * n);
        self.g(gm(n, 1, m, false, false, 1.0, 0.0, t), &sp.a, &sp.r, &mu0);
        let mu = dev.zeros(t * n);
        self.bin(Binary::Add, &mu0, &mx, &mu);
        // Σ̃ = kdiag + ‖Ωᵀα‖², P = αᵀΩ.
        self.dev.gemm_tri(
            gm(n, m, m, false, false, 1.0, 0.0, t),
            Tri::LowerB,
            &sp.a,
            &sp.om,
            &sp.p,
        );
        self.bin(Binary::Mul, &sp.p, &sp.p, &sp.nm[0]);
        let (q, sig, lsig, hl) = (
            dev.zeros(t * n),
            dev.zeros(t * n),
            dev.zeros(t * n),
            dev.zeros(t * n),
        );
        dev.reduce(Reduce::Sum, Axis::Rows, &sp.nm[0], t * n, m, &q);
        self.bin(Binary::Add, &sp.kdiag, &q, &sig);
        dev.unary(Unary::Log, &sig, &lsig);
        self.bin(Binary::Mul, &lsig, &c.half, &hl);
        dev.unary(Unary::Exp, &hl, &sp.sd);
        let (f0, f) = (dev.zeros(s * t * n), dev.zeros(s * t * n));
        self.bin(Binary::Mul, eps_f, &sp.sd, &f0);
        if self.nonneg {
            self.bin(Binary::Add, &f0, &mu, &f);
            dev.unary(Unary::Exp, &f, &sp.e);
        } else {
            self.bin(Binary::Add, &f0, &mu, &sp.e);
        }
        self.g(
            gm(s, j * t, 1, false, false, 1.0, 0.0, 1),
            &self.ones_s,
            &sp.w.x,
            &sp.w_rep,
        );
    }

    /// Gradients of the spatial part from `gl`; returns Σ_l KL_l / N.
    async fn spatial_backward(&mut self, eps_f: &D::Buf, kernel_grads: bool) -> f64 {
        let dev = self.dev;
        let Shape { n, j, t, m, s, .. } = self.shape;
        let sp = self.sp.as_ref().expect("spatial part");
        let c = &self.consts;
        // W: Σ_s gl_sᵀ e_sᵀ; e: W_sᵀ gl_sᵀ.
        self.g(
            gm(j, t, n, true, true, 1.0, 0.0, s),
            &self.gl,
            &sp.e,
            &sp.gw_rep,
        );
        self.sum_draws(&sp.gw_rep, j * t, &sp.w.g);
        let (ge, gfe) = (dev.zeros(s * t * n), dev.zeros(s * t * n));
        self.g(
            gm(t, n, j, true, true, 1.0, 0.0, s),
            &sp.w_rep,
            &self.gl,
            &ge,
        );
        // d/df: through e = exp(f) for NSF; RSF's e is f itself.
        let gf = if self.nonneg {
            let gf = dev.zeros(s * t * n);
            self.bin(Binary::Mul, &ge, &sp.e, &gf);
            gf
        } else {
            ge
        };
        self.sum_draws(&gf, t * n, &sp.gmu);
        self.bin(Binary::Mul, &gf, eps_f, &gfe);
        let (gsd, g0) = (dev.zeros(t * n), dev.zeros(t * n));
        self.sum_draws(&gfe, t * n, &gsd);
        self.bin(Binary::Div, &gsd, &sp.sd, &g0);
        self.bin(Binary::Mul, &g0, &c.half, &sp.gsig);
        // r = δ − m(Z): δ's gradient is αᵀ-transported gμ plus K⁻¹r / N.
        let (u, vn) = (dev.zeros(t * m), dev.zeros(t * m));
        self.g(gm(m, 1, n, true, false, 1.0, 0.0, t), &sp.a, &sp.gmu, &u);
        self.g(
            gm(m, 1, m, false, false, 1.0, 0.0, t),
            &sp.kinv,
            &sp.r,
            &sp.vk,
        );
        self.bin(Binary::Mul, &sp.vk, &c.inv_n, &vn);
        self.bin(Binary::Add, &u, &vn, &sp.delta.g);
        let (b0a, b0b) = (dev.zeros(t), dev.zeros(t));
        dev.reduce(Reduce::Sum, Axis::Rows, &sp.gmu, t, n, &b0a);
        dev.reduce(Reduce::Sum, Axis::Rows, &sp.delta.g, t, m, &b0b);
        self.bin(Binary::Sub, &b0a, &b0b, &sp.beta0.g);
        self.g(
            gm(t, 2, n, false, false, 1.0, 0.0, 1),
            &sp.gmu,
            &sp.x,
            &sp.beta.g,
        );
        self.g(
            gm(t, 2, m, false, false, -1.0, 1.0, 1),
            &sp.delta.g,
            &sp.z,
            &sp.beta.g,
        );
        // Ω: 2 α (gΣ ⊙ P) + K⁻¹Ω / N, then the diagonal's −1/(N Ω_mm) and softplus.
        let gom = &sp.mm[0];
        self.g(
            gm(m, m, m, false, false, 1.0, 0.0, t),
            &sp.kinv,
            &sp.om,
            &sp.kinv_om,
        );
        self.bin(Binary::Mul, &sp.kinv_om, &c.inv_n, gom);
        dev.binary_rows(Binary::Mul, &sp.p, &sp.gsig, t * n, m, &sp.nm[0]);
        // Only Ω's lower triangle is a parameter.
        self.dev.gemm_tri(
            gm(m, m, n, true, false, 2.0, 1.0, t),
            Tri::LowerC,
            &sp.a,
            &sp.nm[0],
            gom,
        );
        let (gd, od, rec, recn, gd1, dr, sg, gd2) = (
            dev.zeros(t * m),
            dev.zeros(t * m),
            dev.zeros(t * m),
            dev.zeros(t * m),
            dev.zeros(t * m),
            dev.zeros(t * m),
            dev.zeros(t * m),
            dev.zeros(t * m),
        );
        dev.gather(gom, &sp.diag, &gd);
        dev.gather(&sp.om, &sp.diag, &od);
        self.bin(Binary::Div, &sp.ones_tm, &od, &rec);
        self.bin(Binary::Mul, &rec, &c.inv_n, &recn);
        self.bin(Binary::Sub, &gd, &recn, &gd1);
        dev.gather(&sp.omega.x, &sp.diag, &dr);
        dev.unary(Unary::Sigmoid, &dr, &sg);
        self.bin(Binary::Mul, &gd1, &sg, &gd2);
        self.bin(Binary::Mul, gom, &sp.mask, &sp.omega.g);
        dev.scatter_add(&gd2, &sp.diag, &sp.omega.g);
        // KL_l = ½[tr(K⁻¹ΩΩᵀ) + rᵀK⁻¹r − M + log|K|] − Σ log Ω_mm.
        let (tr, rv, lo, t1, t2, t4) = (
            &sp.mm[1],
            dev.zeros(t * m),
            dev.zeros(t * m),
            dev.zeros(t),
            dev.zeros(t),
            dev.zeros(t),
        );
        self.bin(Binary::Mul, &sp.kinv_om, &sp.om, tr);
        dev.reduce(Reduce::Sum, Axis::Rows, tr, t, m * m, &t1);
        self.bin(Binary::Mul, &sp.r, &sp.vk, &rv);
        dev.reduce(Reduce::Sum, Axis::Rows, &rv, t, m, &t2);
        dev.unary(Unary::Log, &od, &lo);
        dev.reduce(Reduce::Sum, Axis::Rows, &lo, t, m, &t4);
        if kernel_grads {
            self.kernel_backward(&u);
        }
        let (t1, t2, t4) = (
            dev.read(&t1).await,
            dev.read(&t2).await,
            dev.read(&t4).await,
        );
        let kl: f64 = (0..t)
            .map(|l| 0.5 * (t1[l] as f64 + t2[l] as f64 - m as f64 + sp.logdet[l]) - t4[l] as f64)
            .sum();
        kl / n as f64
    }

    /// Amplitude and length-scale gradients: the loss's sensitivity to K_uu
    /// and K_fu, contracted with their derivatives. `u` = αgμ.
    fn kernel_backward(&self, u: &D::Buf) {
        let dev = self.dev;
        let Shape { n, t, m, .. } = self.shape;
        let sp = self.sp.as_ref().expect("spatial part");
        let c = &self.consts;
        let nf = n as f32;
        let (kbar, kbar2) = (&sp.mm[1], &sp.mm[2]);
        let (ag, chat, kfubar) = (&sp.nm[0], &sp.nm[1], &sp.nm[2]);
        // K̄ = −u vᵀ + Agᵀ A − 2 Agᵀ Ĉ + (−K⁻¹ΩΩᵀK⁻¹ − v vᵀ + K⁻¹) / 2N, with
        // Ag = gΣ ⊙ αᵀ and Ĉ = αᵀΩΩᵀK⁻¹ (both transposed terms folded, as
        // K̄ meets only symmetric derivatives).
        self.g(gm(m, m, 1, false, false, -1.0, 0.0, t), u, &sp.vk, kbar);
        dev.binary_rows(Binary::Mul, &sp.a, &sp.gsig, t * n, m, ag);
        self.g(gm(m, m, n, true, false, 1.0, 1.0, t), ag, &sp.a, kbar);
        self.g(
            gm(n, m, m, false, true, 1.0, 0.0, t),
            &sp.p,
            &sp.kinv_om,
            chat,
        );
        self.g(gm(m, m, n, true, false, -2.0, 1.0, t), ag, chat, kbar);
        let h = -0.5 / nf;
        self.g(
            gm(m, m, m, false, true, h, 1.0, t),
            &sp.kinv_om,
            &sp.kinv_om,
            kbar,
        );
        self.g(gm(m, m, 1, false, false, h, 1.0, t), &sp.vk, &sp.vk, kbar);
        let kh = &sp.mm[0];
        self.bin(Binary::Mul, &sp.kinv, &c.inv_2n, kh);
        self.bin(Binary::Add, kbar, kh, kbar2);
        // K̄_fu = gμ vᵀ + 2 gΣ ⊙ (Ĉ − αᵀ).
        self.g(
            gm(n, m, 1, false, false, 1.0, 0.0, t),
            &sp.gmu,
            &sp.vk,
            kfubar,
        );
        let d = &sp.p;
        self.bin(Binary::Sub, chat, &sp.a, d);
        dev.binary_rows(Binary::Mul, d, &sp.gsig, t * n, m, ag);
        self.bin(Binary::Mul, ag, &c.two, chat);
        self.bin(Binary::Add, kfubar, chat, ag);
        let kfubar = ag;
        let (amp, ls) = (dev.zeros(t), dev.zeros(t));
        dev.unary(Unary::Softplus, &sp.amp.x, &amp);
        dev.unary(Unary::Softplus, &sp.ls.x, &ls);
        for (part, var) in [
            (KernelPart::Amplitude, &sp.amp),
            (KernelPart::LengthScale, &sp.ls),
        ] {
            let (s1, s2, s12) = (dev.zeros(t), dev.zeros(t), dev.zeros(t));
            dev.gp_kernel(self.kernel, part, &sp.dzz, &amp, &ls, t, kh);
            self.bin(Binary::Mul, kh, kbar2, kbar);
            dev.reduce(Reduce::Sum, Axis::Rows, kbar, t, m * m, &s1);
            dev.gp_kernel(self.kernel, part, &sp.dxz, &amp, &ls, t, chat);
            self.bin(Binary::Mul, chat, kfubar, d);
            dev.reduce(Reduce::Sum, Axis::Rows, d, t, n * m, &s2);
            self.bin(Binary::Add, &s1, &s2, &s12);
            let total = if part == KernelPart::Amplitude {
                // K_ff = a² + nugget: 2a Σ gΣ.
                let (gs, ga, ga2, tot) = (dev.zeros(t), dev.zeros(t), dev.zeros(t), dev.zeros(t));
                dev.reduce(Reduce::Sum, Axis::Rows, &sp.gsig, t, n, &gs);
                self.bin(Binary::Mul, &gs, &amp, &ga);
                self.bin(Binary::Mul, &ga, &c.two, &ga2);
                self.bin(Binary::Add, &s12, &ga2, &tot);
                tot
            } else {
                s12
            };
            let sg = dev.zeros(t);
            dev.unary(Unary::Sigmoid, &var.x, &sg);
            self.bin(Binary::Mul, &total, &sg, &var.g);
        }
    }

    /// Gradients of the nonspatial part; returns Σ_i KL_i / N.
    async fn nonspatial_backward(&mut self, eps_h: &D::Buf) -> f64 {
        let dev = self.dev;
        let Shape { n, j, k, s, .. } = self.shape;
        let ns = self.ns.as_ref().expect("nonspatial part");
        let c = &self.consts;
        let (nk, snk) = (n * k, s * n * k);
        self.g(
            gm(j, k, n, true, false, 1.0, 0.0, s),
            &self.gl,
            &ns.e,
            &ns.gv_rep,
        );
        self.sum_draws(&ns.gv_rep, j * k, &ns.v.g);
        let (geh, gh, ghe) = (dev.zeros(snk), dev.zeros(snk), dev.zeros(snk));
        self.g(
            gm(n, k, j, false, false, 1.0, 0.0, s),
            &self.gl,
            &ns.v_rep,
            &geh,
        );
        self.bin(Binary::Mul, &geh, &ns.e, &gh);
        let (gq, gsq) = (dev.zeros(nk), dev.zeros(nk));
        self.sum_draws(&gh, nk, &gq);
        self.bin(Binary::Mul, &gh, eps_h, &ghe);
        self.sum_draws(&ghe, nk, &gsq);
        // KL(N(q, σq) ‖ N(p, σp)) summed, over N:
        // ln σp − ln σq + (σq² + (q − p)²) / 2σp² − ½.
        let z = || dev.zeros(nk);
        let zk = || dev.zeros(k);
        let (psc, p2, ivar) = (zk(), zk(), zk());
        dev.unary(Unary::Softplus, &ns.pscale.x, &psc);
        self.bin(Binary::Mul, &psc, &psc, &p2);
        self.bin(Binary::Div, &ns.ones_k, &p2, &ivar);
        let (dq, dqi, dqin, sq2, dq2, ssum) = (z(), z(), z(), z(), z(), z());
        self.bin(Binary::Sub, &ns.qloc.x, &ns.ploc.x, &dq);
        self.bin(Binary::Mul, &dq, &ivar, &dqi);
        self.bin(Binary::Mul, &dqi, &c.inv_n, &dqin);
        self.bin(Binary::Add, &gq, &dqin, &ns.qloc.g);
        // σq: −1/σq + σq/σp², over N, then softplus.
        let (inv_q, qi, dsq, dsqn, gsq2, sgq) = (z(), z(), z(), z(), z(), z());
        self.bin(Binary::Div, &ns.ones_nk, &ns.qsc, &inv_q);
        self.bin(Binary::Mul, &ns.qsc, &ivar, &qi);
        self.bin(Binary::Sub, &qi, &inv_q, &dsq);
        self.bin(Binary::Mul, &dsq, &c.inv_n, &dsqn);
        self.bin(Binary::Add, &gsq, &dsqn, &gsq2);
        dev.unary(Unary::Sigmoid, &ns.qscale.x, &sgq);
        self.bin(Binary::Mul, &gsq2, &sgq, &ns.qscale.g);
        // p: −Σ_i (q − p)/σp² / N.
        let (cs, pl) = (zk(), zk());
        dev.reduce(Reduce::Sum, Axis::Cols, &dqin, n, k, &cs);
        self.bin(Binary::Mul, &cs, &c.minus_one, &pl);
        self.bin(Binary::Add, &pl, &c.zero, &ns.ploc.g);
        // σp: [N/σp − Σ_i (σq² + (q−p)²)/σp³] / N.
        self.bin(Binary::Mul, &ns.qsc, &ns.qsc, &sq2);
        self.bin(Binary::Mul, &dq, &dq, &dq2);
        self.bin(Binary::Add, &sq2, &dq2, &ssum);
        let (col, p3, a1, a2, a3, sgp) = (zk(), zk(), zk(), zk(), zk(), zk());
        dev.reduce(Reduce::Sum, Axis::Cols, &ssum, n, k, &col);
        self.bin(Binary::Mul, &p2, &psc, &p3);
        self.bin(Binary::Div, &col, &p3, &a1);
        self.bin(Binary::Mul, &a1, &c.inv_n, &a2);
        self.bin(Binary::Div, &ns.ones_k, &psc, &a3);
        self.bin(Binary::Sub, &a3, &a2, &a1);
        dev.unary(Unary::Sigmoid, &ns.pscale.x, &sgp);
        self.bin(Binary::Mul, &a1, &sgp, &ns.pscale.g);
        let lq = z();
        dev.unary(Unary::Log, &ns.qsc, &lq);
        let lqs = zk();
        dev.reduce(Reduce::Sum, Axis::Cols, &lq, n, k, &lqs);
        let (col, psc, lqs) = (
            dev.read(&col).await,
            dev.read(&psc).await,
            dev.read(&lqs).await,
        );
        let kl: f64 = (0..k)
            .map(|l| {
                let sp = psc[l] as f64;
                n as f64 * (sp.ln() - 0.5) - lqs[l] as f64 + col[l] as f64 / (2.0 * sp * sp)
            })
            .sum();
        kl / n as f64
    }

    /// One Adam step (step number t) on every non-kernel parameter, and on
    /// the kernel's when `kernel` (at `lr_kernel`, its own step number tk);
    /// W and V are then clipped at 0.
    pub fn step(&mut self, lr: f32, lr_kernel: f32, (t, tk): (u32, u32), kernel: bool) {
        let dev = self.dev;
        let adam = |lr: f32, t: u32, v: &Var<D>| {
            let p = AdamParams {
                lr,
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-7,
                clip: None,
                lrd: 1.0,
                step: t,
            };
            dev.adam(p, &v.x, &v.g, &v.m, &v.v);
        };
        let zero = &self.consts.zero;
        if let Some(sp) = &self.sp {
            for v in [&sp.delta, &sp.omega, &sp.beta0, &sp.beta, &sp.w] {
                adam(lr, t, v);
            }
            if self.nonneg {
                let w = dev.zeros(dev.len(&sp.w.x));
                dev.binary(Binary::Max, &sp.w.x, zero, &w);
                self.sp.as_mut().expect("spatial").w.x = w;
            }
        }
        if let Some(sp) = &self.sp {
            if kernel {
                adam(lr_kernel, tk, &sp.amp);
                adam(lr_kernel, tk, &sp.ls);
            }
        }
        if let Some(ns) = &self.ns {
            for v in [&ns.qloc, &ns.qscale, &ns.ploc, &ns.pscale, &ns.v] {
                adam(lr, t, v);
            }
            let v = dev.zeros(dev.len(&ns.v.x));
            dev.binary(Binary::Max, &ns.v.x, zero, &v);
            self.ns.as_mut().expect("nonspatial").v.x = v;
        }
        if let Some(d) = &self.disp {
            adam(lr, t, d);
        }
    }

    /// The parameters as they are now (and the Adam moments stay on the device).
    pub async fn params(&self) -> Params {
        let dev = self.dev;
        let mut p = Params::default();
        if let Some(sp) = &self.sp {
            p.delta = dev.read(&sp.delta.x).await;
            p.omega = dev.read(&sp.omega.x).await;
            p.beta0 = dev.read(&sp.beta0.x).await;
            p.beta = dev.read(&sp.beta.x).await;
            p.amp = dev.read(&sp.amp.x).await;
            p.ls = dev.read(&sp.ls.x).await;
            p.w = dev.read(&sp.w.x).await;
        }
        if let Some(ns) = &self.ns {
            p.qloc = dev.read(&ns.qloc.x).await;
            p.qscale = dev.read(&ns.qscale.x).await;
            p.ploc = dev.read(&ns.ploc.x).await;
            p.pscale = dev.read(&ns.pscale.x).await;
            p.v = dev.read(&ns.v.x).await;
        }
        if let Some(d) = &self.disp {
            p.disp = dev.read(&d.x).await;
        }
        p
    }

    /// Every gradient, in [`Params`]'s layout (tests compare them with
    /// finite differences).
    pub async fn grads(&self) -> Params {
        let dev = self.dev;
        let mut p = Params::default();
        if let Some(sp) = &self.sp {
            p.delta = dev.read(&sp.delta.g).await;
            p.omega = dev.read(&sp.omega.g).await;
            p.beta0 = dev.read(&sp.beta0.g).await;
            p.beta = dev.read(&sp.beta.g).await;
            p.amp = dev.read(&sp.amp.g).await;
            p.ls = dev.read(&sp.ls.g).await;
            p.w = dev.read(&sp.w.g).await;
        }
        if let Some(ns) = &self.ns {
            p.qloc = dev.read(&ns.qloc.g).await;
            p.qscale = dev.read(&ns.qscale.g).await;
            p.ploc = dev.read(&ns.ploc.g).await;
            p.pscale = dev.read(&ns.pscale.g).await;
            p.v = dev.read(&ns.v.g).await;
        }
        if let Some(d) = &self.disp {
            p.disp = dev.read(&d.g).await;
        }
        p
    }

    fn vars(&self) -> Vec<&Var<D>> {
        let mut v = vec![];
        if let Some(sp) = &self.sp {
            v.extend([
                &sp.delta, &sp.omega, &sp.beta0, &sp.beta, &sp.amp, &sp.ls, &sp.w,
            ]);
        }
        if let Some(ns) = &self.ns {
            v.extend([&ns.qloc, &ns.qscale, &ns.ploc, &ns.pscale, &ns.v]);
        }
        v.extend(self.disp.as_ref());
        v
    }

    /// Every parameter and its Adam moments, in a fixed order.
    pub fn state(&self) -> Vec<&D::Buf> {
        self.vars()
            .into_iter()
            .flat_map(|v| [&v.x, &v.m, &v.v])
            .collect()
    }

    /// What a checkpoint of this objective names itself.
    pub fn fit_name(&self) -> String {
        let s = self.shape;
        format!(
            "nsf n{} j{} t{} k{} m{} s{} {:?} {:?} nonneg {}",
            s.n, s.j, s.t, s.k, s.m, s.s, self.lik, self.kernel, self.nonneg
        )
    }

    /// Puts a host checkpoint back (the kernel cache is refreshed after).
    pub fn restore_host(&mut self, cp: &Checkpoint) -> Result<(), String> {
        write_all(self.dev, &self.fit_name(), cp, &self.state())?;
        self.fresh = false;
        Ok(())
    }

    /// A device-side copy of every parameter and its Adam moments.
    pub fn snapshot(&self) -> Snapshot<D> {
        let dev = self.dev;
        let copy = |b: &D::Buf| {
            let out = dev.zeros(dev.len(b));
            dev.binary(Binary::Add, b, &self.consts.zero, &out);
            out
        };
        Snapshot(
            self.vars()
                .into_iter()
                .flat_map(|v| [copy(&v.x), copy(&v.m), copy(&v.v)])
                .collect(),
        )
    }

    /// Puts a snapshot back (the kernel cache must be refreshed after).
    pub fn restore(&mut self, snap: &Snapshot<D>) {
        let (dev, zero) = (self.dev, &self.consts.zero);
        for (v, b) in self.vars().into_iter().zip(snap.0.chunks_exact(3)) {
            dev.binary(Binary::Add, &b[0], zero, &v.x);
            dev.binary(Binary::Add, &b[1], zero, &v.m);
            dev.binary(Binary::Add, &b[2], zero, &v.v);
        }
        self.fresh = false;
    }

    /// The spatial factors' posterior means and variances (T×rows each) at
    /// the points `x`, from the current parameters (the cache is refreshed).
    pub async fn latent_at(
        &mut self,
        x: &[[f64; 2]],
    ) -> Result<(Vec<f32>, Vec<f32>), NotPositiveDefinite> {
        self.refresh().await?;
        let dev = self.dev;
        let Shape { t, m, .. } = self.shape;
        let sp = self.sp.as_ref().expect("spatial part");
        let rows = x.len();
        let xb = dev.upload(
            &x.iter()
                .flat_map(|q| [q[0] as f32, q[1] as f32])
                .collect::<Vec<_>>(),
        );
        let dxz = dev.upload_owned(distances(x, &sp.z_host));
        let (amp, ls) = (dev.zeros(t), dev.zeros(t));
        dev.unary(Unary::Softplus, &sp.amp.x, &amp);
        dev.unary(Unary::Softplus, &sp.ls.x, &ls);
        let big = || dev.zeros(t * rows * m);
        let (kfu, a, prod) = (big(), big(), big());
        dev.gp_kernel(self.kernel, KernelPart::Value, &dxz, &amp, &ls, t, &kfu);
        self.g(
            gm(rows, m, m, false, false, 1.0, 0.0, t),
            &kfu,
            &sp.kinv,
            &a,
        );
        self.omega_matrix(sp);
        let mz = self.gp_mean(sp, &sp.z, m);
        let mx = self.gp_mean(sp, &xb, rows);
        let r = dev.zeros(t * m);
        self.bin(Binary::Sub, &sp.delta.x, &mz, &r);
        let small = || dev.zeros(t * rows);
        let (mu0, mu, q0, q, a2) = (small(), small(), small(), small(), dev.zeros(t));
        self.g(gm(rows, 1, m, false, false, 1.0, 0.0, t), &a, &r, &mu0);
        self.bin(Binary::Add, &mu0, &mx, &mu);
        self.bin(Binary::Mul, &a, &kfu, &prod);
        dev.reduce(Reduce::Sum, Axis::Rows, &prod, t * rows, m, &q0);
        dev.gemm_tri(
            gm(rows, m, m, false, false, 1.0, 0.0, t),
            Tri::LowerB,
            &a,
            &sp.om,
            &kfu,
        );
        self.bin(Binary::Mul, &kfu, &kfu, &prod);
        dev.reduce(Reduce::Sum, Axis::Rows, &prod, t * rows, m, &q);
        self.bin(Binary::Mul, &amp, &amp, &a2);
        let (mu, q0, q, a2) = (
            dev.read(&mu).await,
            dev.read(&q0).await,
            dev.read(&q).await,
            dev.read(&a2).await,
        );
        let var = (0..t * rows)
            .map(|i| a2[i / rows] + NUGGET - q0[i] + q[i])
            .collect();
        Ok((mu, var))
    }
}

/// Parameters and Adam moments copied on the device (a checkpoint).
pub struct Snapshot<D: Device>(Vec<D::Buf>);
