//! RESOLVI's prior on the latent z: a mixture of K Gaussians with learnable
//! means μ_k and logits u, and one fixed scale σ for every component and
//! dimension (the buffer exp(−1) + 1e-4; 1 + 1e-4 in semi-supervised
//! mode). Labelled cells add an offset to the logits of their own
//! component (10 · onehot), so their mixture weights are per cell.
//!
//! log p(z_i) = logsumexp_k [log π_ik − ‖z_i − μ_k‖² / 2σ² − D/2 · log 2πσ²],
//! π_i = softmax(u + offset_i), with its gradients in z, μ and u by hand.

use crate::compute::{Axis, Binary, Device, Gemm, Reduce, Unary};

/// Sizes: B cells, K components, D latent dimensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dims {
    pub b: usize,
    pub k: usize,
    pub d: usize,
}

/// Σ_i log p(z_i)'s parts: each cell's log-density and the gradients of
/// their sum.
pub struct MixtureGrad<D: Device> {
    /// B log-densities.
    pub logp: D::Buf,
    /// B×D, K×D and K.
    pub gz: D::Buf,
    pub gmu: D::Buf,
    pub gu: D::Buf,
}

/// The log-density of z (B×D) under the mixture of means `mu` (K×D),
/// logits `u` (K) plus the per-cell `offset` (B×K) when given, scale
/// `sigma`; and the gradients of Σ_i log p(z_i).
pub fn mixture_logp<D: Device>(
    dev: &D,
    Dims { b, k, d }: Dims,
    z: &D::Buf,
    mu: &D::Buf,
    u: &D::Buf,
    offset: Option<&D::Buf>,
    sigma: f32,
) -> MixtureGrad<D> {
    let s = |v: f32| dev.upload(&[v]);
    let bk = || dev.zeros(b * k);
    // log π_ik.
    let (a, lp, pi) = (bk(), bk(), bk());
    match offset {
        Some(o) => dev.binary(Binary::Add, o, u, &a),
        None => dev.binary(Binary::Add, &bk(), u, &a),
    }
    let lse = dev.zeros(b);
    dev.reduce(Reduce::LogSumExp, Axis::Rows, &a, b, k, &lse);
    dev.binary_rows(Binary::Sub, &a, &lse, b, k, &lp);
    dev.unary(Unary::Exp, &lp, &pi);
    // ‖z_i − μ_k‖² = ‖z_i‖² + ‖μ_k‖² − 2 z_i·μ_k.
    let (z2, mu2, zn, mn) = (
        dev.zeros(b * d),
        dev.zeros(k * d),
        dev.zeros(b),
        dev.zeros(k),
    );
    dev.binary(Binary::Mul, z, z, &z2);
    dev.binary(Binary::Mul, mu, mu, &mu2);
    dev.reduce(Reduce::Sum, Axis::Rows, &z2, b, d, &zn);
    dev.reduce(Reduce::Sum, Axis::Rows, &mu2, k, d, &mn);
    let (cross, d0, d2) = (bk(), bk(), bk());
    let g = Gemm {
        trans_b: true,
        alpha: -2.0,
        ..Gemm::new(b, k, d)
    };
    dev.gemm(g, z, mu, &cross);
    dev.binary(Binary::Add, &cross, &mn, &d0);
    dev.binary_rows(Binary::Add, &d0, &zn, b, k, &d2);
    // L = log π − d²/2σ² − D/2 log 2πσ².
    let var = (sigma as f64).powi(2);
    let c = -0.5 * d as f64 * (2.0 * std::f64::consts::PI * var).ln();
    let (l0, l1, l) = (bk(), bk(), bk());
    dev.binary(Binary::Mul, &d2, &s((-0.5 / var) as f32), &l0);
    dev.binary(Binary::Add, &l0, &lp, &l1);
    dev.binary(Binary::Add, &l1, &s(c as f32), &l);
    let logp = dev.zeros(b);
    dev.reduce(Reduce::LogSumExp, Axis::Rows, &l, b, k, &logp);
    // Responsibilities r = softmax(L); gz = (r μ − z)/σ²,
    // gμ = (rᵀ z − colsum(r) ∘ μ)/σ², gu = colsum(r − π).
    let r = bk();
    dev.softmax_rows(&l, b, k, &r);
    let inv_var = s((1.0 / var) as f32);
    let (rm, dz, gz) = (dev.zeros(b * d), dev.zeros(b * d), dev.zeros(b * d));
    dev.gemm(Gemm::new(b, d, k), &r, mu, &rm);
    dev.binary(Binary::Sub, &rm, z, &dz);
    dev.binary(Binary::Mul, &dz, &inv_var, &gz);
    let (rz, rs, smu, dmu, gmu) = (
        dev.zeros(k * d),
        dev.zeros(k),
        dev.zeros(k * d),
        dev.zeros(k * d),
        dev.zeros(k * d),
    );
    let g = Gemm {
        trans_a: true,
        ..Gemm::new(k, d, b)
    };
    dev.gemm(g, &r, z, &rz);
    dev.reduce(Reduce::Sum, Axis::Cols, &r, b, k, &rs);
    dev.binary_rows(Binary::Mul, mu, &rs, k, d, &smu);
    dev.binary(Binary::Sub, &rz, &smu, &dmu);
    dev.binary(Binary::Mul, &dmu, &inv_var, &gmu);
    let (rp, gu) = (bk(), dev.zeros(k));
    dev.binary(Binary::Sub, &r, &pi, &rp);
    dev.reduce(Reduce::Sum, Axis::Cols, &rp, b, k, &gu);
    MixtureGrad { logp, gz, gmu, gu }
}
