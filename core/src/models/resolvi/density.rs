//! The Dirichlet log-density on the Device, with its gradients in the
//! point and the concentrations: RESOLVI's priors on each cell's mixture
//! proportions (true, diffused, background) and on which neighbours its
//! diffused signal comes from.
//!
//! log Dir(x | α) = lgamma(Σ α) − Σ lgamma(α_k) + Σ (α_k − 1) log x_k,
//! d/dx_k = (α_k − 1)/x_k, d/dα_k = ψ(Σ α) − ψ(α_k) + log x_k.

use crate::compute::{Axis, Binary, Device, Reduce, Unary};

/// Per-row log-densities and the gradients of their sum.
pub struct DirichletGrad<D: Device> {
    /// rows values.
    pub logp: D::Buf,
    /// rows × k each (a shared α's gradient is the sum of galpha's rows).
    pub gx: D::Buf,
    pub galpha: D::Buf,
}

/// The Dirichlet log-density of each row of x (rows × k, on the simplex)
/// with concentrations `alpha`: rows × k, or k shared by every row.
pub fn dirichlet_logp<D: Device>(
    dev: &D,
    x: &D::Buf,
    alpha: &D::Buf,
    rows: usize,
    k: usize,
) -> DirichletGrad<D> {
    let full = || dev.zeros(rows * k);
    let row = || dev.zeros(rows);
    // α as a full rows × k matrix (a shared vector broadcasts).
    let a = full();
    dev.binary(Binary::Add, &full(), alpha, &a);
    let (sa, lg_sa, lg_a, slg) = (row(), row(), full(), row());
    dev.reduce(Reduce::Sum, Axis::Rows, &a, rows, k, &sa);
    dev.unary(Unary::Lgamma, &sa, &lg_sa);
    dev.unary(Unary::Lgamma, &a, &lg_a);
    dev.reduce(Reduce::Sum, Axis::Rows, &lg_a, rows, k, &slg);
    let (lx, am1, t, st) = (full(), full(), full(), row());
    dev.unary(Unary::Log, x, &lx);
    dev.binary(Binary::Sub, &a, &dev.upload(&[1.0]), &am1);
    dev.binary(Binary::Mul, &am1, &lx, &t);
    dev.reduce(Reduce::Sum, Axis::Rows, &t, rows, k, &st);
    let (norm, logp) = (row(), row());
    dev.binary(Binary::Sub, &lg_sa, &slg, &norm);
    dev.binary(Binary::Add, &norm, &st, &logp);
    let gx = full();
    dev.binary(Binary::Div, &am1, x, &gx);
    let (ps, pa, d0, galpha) = (row(), full(), full(), full());
    dev.unary(Unary::Digamma, &sa, &ps);
    dev.unary(Unary::Digamma, &a, &pa);
    dev.binary(Binary::Sub, &lx, &pa, &d0);
    dev.binary_rows(Binary::Add, &d0, &ps, rows, k, &galpha);
    DirichletGrad { logp, gx, galpha }
}
