//! Starting values as the paper's benchmark sets them (`init_loadings`
//! with shrinkage 0.3): NMF (KL, multiplicative updates, nndsvda; for the
//! Gaussian likelihood Frobenius, coordinate descent, nndsvd) shrunk
//! toward uniform and moved onto the log scale of the factors' prior;
//! spatial factors smoothed to the inducing points by k-nearest-neighbour
//! regression with a linear trend for the GP mean; NSFH's factors ordered
//! by Moran's I so the most spatial T go to the GPs. Ω starts as the
//! Cholesky factor of 0.01²·SSᵀ for a Gaussian S, drawn directly by
//! Bartlett's decomposition (no M×M factorisation, no failure).

use super::model::{Likelihood, Params, DIAG_SHIFT};
use crate::compute::{philox, Device};
use crate::models::nmf::init::truncated_svd;
use crate::models::nmf::{fit_cd, fit_mu, nndsvd, Loss, Nmf};
use crate::models::svi::mix;
use crate::spatial::graph::{self, Options as GraphOptions};
use crate::spatial::{autocorr, kdtree::KdTree};

/// The log-normal approximation of a flat Dirichlet over `l` factors (the
/// prior of the factors' scale): (μ0, σ0), σ0² = ln 2L − ln(L + 1),
/// μ0 = −ln L − σ0²/2.
pub fn dirichlet_lognormal(l: usize) -> (f64, f64) {
    let l = (l as f64).max(1.1);
    let s2 = (2.0 * l).ln() - (l + 1.0).ln();
    (-l.ln() - s2 / 2.0, s2.sqrt())
}

/// The inverse of softplus, for starting values given on the natural scale.
pub fn softplus_inv(y: f64) -> f64 {
    if y > 20.0 {
        y
    } else {
        y.exp_m1().ln()
    }
}

/// The per-feature likelihood parameter's raw start: NB's φ = 0.01, the
/// Gaussian's σ = 1 (`likelihoods.init_lik`).
pub fn disp_init(lik: Likelihood, j: usize) -> Vec<f32> {
    match lik {
        Likelihood::Poisson => vec![],
        Likelihood::Nb => vec![softplus_inv(0.01) as f32; j],
        Likelihood::Gaussian => vec![softplus_inv(1.0) as f32; j],
    }
}

/// `regularized_nmf`: log-scale factors (N×L) and loadings (J×L) of the
/// nonnegative data `y` (N×J): counts, or normalised values for the
/// Gaussian likelihood (`choose_nmf_pars`).
pub async fn regularized_nmf<D: Device>(
    dev: &D,
    y: &[f32],
    (n, j, l): (usize, usize, usize),
    sz: &[f64],
    shrinkage: f64,
    lik: Likelihood,
) -> (Vec<f64>, Vec<f64>) {
    let fit = if lik == Likelihood::Gaussian {
        let (w0, h0) = nndsvd(y, n, j, l, false);
        fit_cd(dev, &Nmf::new(l), y, n, j, &w0, &h0).await
    } else {
        let (w0, h0) = nndsvd(y, n, j, l, true);
        fit_mu(dev, &Nmf::new(l), Loss::KullbackLeibler, y, n, j, &w0, &h0).await
    };
    let a = shrinkage;
    let shrink = 0.0 < a && a < 1.0;
    // Loadings J×L from H (L×J), shrunk toward their column means.
    let mut w: Vec<f64> = (0..j * l)
        .map(|i| fit.h[(i % l) * j + i / l] as f64)
        .collect();
    let mut wsum = vec![0.0; l];
    for (i, v) in w.iter().enumerate() {
        wsum[i % l] += v;
    }
    if shrink {
        for (i, v) in w.iter_mut().enumerate() {
            *v = *v * (1.0 - a) + a * wsum[i % l] / j as f64;
        }
    }
    // Shrinking keeps the column sums.
    let mut ef: Vec<f64> = (0..n * l).map(|i| fit.w[i] as f64 * wsum[i % l]).collect();
    if shrink {
        for row in ef.chunks_exact_mut(l) {
            let s: f64 = row.iter().sum();
            row.iter_mut()
                .for_each(|v| *v = *v * (1.0 - a) + a * s / l as f64);
        }
    }
    let mut f: Vec<f64> = ef
        .iter()
        .enumerate()
        .map(|(i, &v)| (1e-2 + v).ln() - sz[i / l].ln())
        .collect();
    // Centre each factor's mean on the prior's, the difference moved into W.
    let (mu0, _) = dirichlet_lognormal(l);
    let mut wt = vec![0.0; l];
    for (i, v) in f.iter().enumerate() {
        wt[i % l] += v / n as f64;
    }
    wt.iter_mut().for_each(|v| *v -= mu0);
    for (i, v) in f.iter_mut().enumerate() {
        *v -= wt[i % l];
    }
    // A component NMF left empty has zero loadings whatever the scale.
    for (i, v) in w.iter_mut().enumerate() {
        *v *= (wt[i % l] - wsum[i % l].max(f64::MIN_POSITIVE).ln()).exp();
    }
    (f, w)
}

/// Columns of the N×L `f` by decreasing Moran's I on squidpy's default
/// graph (6 nearest neighbours) over `x`.
pub fn moran_order(f: &[f64], l: usize, x: &[[f64; 2]]) -> Result<Vec<usize>, String> {
    let g = graph::build(x, None, &GraphOptions::default())?;
    let features: Vec<(String, Vec<f64>)> = (0..l)
        .map(|c| {
            (
                c.to_string(),
                f.iter().skip(c).step_by(l).copied().collect(),
            )
        })
        .collect();
    let rows = autocorr::run(&g, &features, &autocorr::Options::default(), |_| {})?;
    Ok(rows
        .iter()
        .map(|r| r.name.parse().expect("a column index"))
        .collect())
}

/// `smooth_spatial_factors`: the GP mean (intercept, slopes) by least
/// squares of each column of `f` (N×T) on `x`, and the inducing values as
/// the mean of the max(2, ⌈N/M⌉) nearest observations to each of `z`.
/// Returns (δ T×M, β0 T, β T×2).
pub fn smooth_to_inducing(
    f: &[f64],
    t: usize,
    x: &[[f64; 2]],
    z: &[[f64; 2]],
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let (n, m) = (x.len(), z.len());
    // Normal equations of [1, x, y] in centred form.
    let mean = |v: &dyn Fn(usize) -> f64| (0..n).map(v).sum::<f64>() / n as f64;
    let (mx, my) = (mean(&|i| x[i][0]), mean(&|i| x[i][1]));
    let (mut sxx, mut sxy, mut syy) = (0.0, 0.0, 0.0);
    for p in x {
        let (a, b) = (p[0] - mx, p[1] - my);
        sxx += a * a;
        sxy += a * b;
        syy += b * b;
    }
    let det = sxx * syy - sxy * sxy;
    let (mut beta0, mut beta) = (vec![0.0; t], vec![0.0; 2 * t]);
    for c in 0..t {
        let col = |i: usize| f[i * t + c];
        let mf = mean(&col);
        let (mut sxf, mut syf) = (0.0, 0.0);
        for (i, p) in x.iter().enumerate() {
            sxf += (p[0] - mx) * (col(i) - mf);
            syf += (p[1] - my) * (col(i) - mf);
        }
        let (b1, b2) = if det.abs() > 1e-12 * (sxx * syy).max(1e-300) {
            ((syy * sxf - sxy * syf) / det, (sxx * syf - sxy * sxf) / det)
        } else {
            (0.0, 0.0)
        };
        beta[2 * c] = b1;
        beta[2 * c + 1] = b2;
        beta0[c] = mf - b1 * mx - b2 * my;
    }
    let k = 2.max(n.div_ceil(m.max(1))).min(n);
    let tree = KdTree::new(x);
    let mut delta = vec![0.0; t * m];
    for (r, q) in z.iter().enumerate() {
        let near = tree.nearest(*q, k, None);
        for c in 0..t {
            delta[c * m + r] =
                near.iter().map(|&(i, _)| f[i * t + c]).sum::<f64>() / near.len() as f64;
        }
    }
    (delta, beta0, beta)
}

/// T stacked M×M raws of Ω: Bartlett's factor of 0.01²·SSᵀ (S M×M
/// Gaussian): L_ii = 0.01·√χ²(M − i), L_ij = 0.01·N(0, 1) below the
/// diagonal, the diagonal stored as softplus⁻¹(L_ii − 1e-5).
pub fn omega_init(t: usize, m: usize, seed: u64) -> Vec<f32> {
    let mut out = vec![0f32; t * m * m];
    let mut draw = 0usize;
    let mut normal = || {
        draw += 1;
        philox::normal(mix(seed, 5, 0), 0, draw - 1) as f64
    };
    for l in 0..t {
        for i in 0..m {
            let base = l * m * m + i * m;
            for j in 0..i {
                out[base + j] = (0.01 * normal()) as f32;
            }
            let chi2: f64 = (0..m - i).map(|_| normal().powi(2)).sum();
            let d = (0.01 * chi2.sqrt()).max(2.0 * DIAG_SHIFT as f64);
            out[base + i] = softplus_inv(d - DIAG_SHIFT as f64) as f32;
        }
    }
    out
}

/// What [`initial_params`] needs besides the counts.
pub struct InitInput<'a> {
    pub y: &'a [f32],
    pub n: usize,
    pub j: usize,
    pub sz: &'a [f64],
    pub x: &'a [[f64; 2]],
    pub z: &'a [[f64; 2]],
    /// Spatial factors T and all factors L (T = L: NSF, T = 0: PNMF).
    pub t: usize,
    pub l: usize,
    pub likelihood: Likelihood,
    /// False for RSF's real-valued factors, which the paper starts at random
    /// (loadings from a truncated SVD for the Gaussian likelihood).
    pub nonneg: bool,
    pub shrinkage: f64,
    pub seed: u64,
}

/// RSF's starting values: δ normal, β0 = β = 0, and W normal for count
/// likelihoods or the top right singular vectors of the (centred) data
/// for the Gaussian (`TruncatedSVD`). The paper draws δ and W standard
/// normal; with a log link that puts rates at e^{±4} for four factors and
/// the first steps diverge, so for counts they start at a tenth of that
/// scale (rates near the size factors).
fn real_params(inp: &InitInput<'_>) -> Params {
    let (t, m, j) = (inp.t, inp.z.len(), inp.j);
    let gaussian = inp.likelihood == Likelihood::Gaussian;
    let sd = if gaussian { 1.0 } else { 0.1 };
    let normal = |site: u64, len: usize| -> Vec<f32> {
        (0..len)
            .map(|i| sd * philox::normal(mix(inp.seed, site, 0), 0, i))
            .collect()
    };
    let w = if gaussian {
        let (_, _, vt) = truncated_svd(inp.y, inp.n, j, t, inp.seed);
        (0..j * t).map(|i| vt[(i % t) * j + i / t] as f32).collect()
    } else {
        normal(8, j * t)
    };
    Params {
        delta: normal(7, t * m),
        omega: omega_init(t, m, inp.seed),
        beta0: vec![0.0; t],
        beta: vec![0.0; 2 * t],
        amp: vec![softplus_inv(1.0) as f32; t],
        ls: vec![softplus_inv(0.1) as f32; t],
        w,
        disp: disp_init(inp.likelihood, j),
        ..Params::default()
    }
}

/// The starting parameters, and the NMF components in the order used
/// (spatial first).
pub async fn initial_params<D: Device>(dev: &D, inp: &InitInput<'_>) -> Result<Params, String> {
    if !inp.nonneg {
        return Ok(real_params(inp));
    }
    let (n, j, t, l) = (inp.n, inp.j, inp.t, inp.l);
    let k = l - t;
    let (f, w) =
        regularized_nmf(dev, inp.y, (n, j, l), inp.sz, inp.shrinkage, inp.likelihood).await;
    let order: Vec<usize> = if t > 0 && k > 0 {
        moran_order(&f, l, inp.x)?
    } else {
        (0..l).collect()
    };
    let cols = |m: &[f64], rows: usize, which: &[usize]| -> Vec<f64> {
        (0..rows)
            .flat_map(|r| which.iter().map(move |&c| m[r * l + c]))
            .collect()
    };
    let (sp, nsp) = order.split_at(t);
    let f32s = |v: Vec<f64>| -> Vec<f32> { v.into_iter().map(|x| x as f32).collect() };
    let mut p = Params::default();
    if t > 0 {
        let fs = cols(&f, n, sp);
        let (delta, beta0, beta) = smooth_to_inducing(&fs, t, inp.x, inp.z);
        p.delta = f32s(delta);
        p.beta0 = f32s(beta0);
        p.beta = f32s(beta);
        p.omega = omega_init(t, inp.z.len(), inp.seed);
        p.amp = vec![softplus_inv(1.0) as f32; t];
        p.ls = vec![softplus_inv(0.1) as f32; t];
        p.w = f32s(cols(&w, j, sp));
    }
    if k > 0 {
        let fh = cols(&f, n, nsp);
        let (_, s0) = dirichlet_lognormal(k);
        let mut ploc = vec![0.0; k];
        for (i, v) in fh.iter().enumerate() {
            ploc[i % k] += v / n as f64;
        }
        p.qscale = (0..n * k)
            .map(|i| {
                let e = philox::normal(mix(inp.seed, 6, 0), 0, i) as f64;
                softplus_inv((s0.ln() + 0.01 * e).exp()) as f32
            })
            .collect();
        p.qloc = f32s(fh);
        p.ploc = f32s(ploc);
        p.pscale = vec![softplus_inv(s0) as f32; k];
        p.v = f32s(cols(&w, j, nsp));
    }
    p.disp = disp_init(inp.likelihood, j);
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prior_is_the_papers_lognormal() {
        let (mu, s) = dirichlet_lognormal(4);
        let s2 = 8f64.ln() - 5f64.ln();
        assert!((s * s - s2).abs() < 1e-12 && (mu - (-(4f64.ln()) - s2 / 2.0)).abs() < 1e-12);
        assert!((softplus_inv(0.1).exp().ln_1p() - 0.1).abs() < 1e-12);
    }

    #[test]
    fn bartlett_draws_have_the_wishart_diagonal() {
        // E[L_ii²] = 0.01² (M − i): check the mean over many factors.
        let (t, m) = (400, 6);
        let o = omega_init(t, m, 3);
        for i in 0..m {
            let mean: f64 = (0..t)
                .map(|l| {
                    let d = (o[l * m * m + i * m + i] as f64).exp().ln_1p() + DIAG_SHIFT as f64;
                    (d / 0.01).powi(2)
                })
                .sum::<f64>()
                / t as f64;
            let want = (m - i) as f64;
            assert!(
                (mean - want).abs() < 0.25 * want + 0.3,
                "row {i}: {mean} vs {want}"
            );
            assert!((i + 1..m).all(|j| o[i * m + j] == 0.0));
        }
    }

    #[test]
    fn smoothing_recovers_a_linear_trend() {
        let x: Vec<[f64; 2]> = (0..25).map(|i| [(i % 5) as f64, (i / 5) as f64]).collect();
        let f: Vec<f64> = x.iter().map(|p| 1.0 + 2.0 * p[0] - 0.5 * p[1]).collect();
        let (delta, b0, b) = smooth_to_inducing(&f, 1, &x, &x[..5]);
        assert!(
            (b0[0] - 1.0).abs() < 1e-12 && (b[0] - 2.0).abs() < 1e-12 && (b[1] + 0.5).abs() < 1e-12
        );
        // 25 points, 5 inducing: the mean of the 5 nearest.
        assert_eq!(delta.len(), 5);
        assert!(delta.iter().all(|v| v.is_finite()));
    }
}
