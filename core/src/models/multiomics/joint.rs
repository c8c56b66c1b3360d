//! The joint factorisation: each modality normalised on its own, the most
//! variable genes kept with every protein, the two blocks weighted so each
//! carries the same share of the loss, and one NMF of [genes | proteins]
//! over the paired cells, best of several starts.
//!
//! Weighting: with 2,000 genes and 30 proteins an unweighted Frobenius loss
//! is almost all genes. Each block is scaled to the same Frobenius norm
//! (√cells), so a protein panel weighs as much as the transcriptome.

use crate::compute::Device;
use crate::models::nmf::{self, fit_cd, fit_mu, Loss, Nmf, NmfFit};
use crate::models::numpy_rng::LegacyNormal;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Normalise {
    Log1p,
    /// Each feature scaled to [0, 1] (the preprint's code).
    MinMax,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Solver {
    /// Coordinate descent (HALS-type), Frobenius loss.
    Cd,
    Mu(Loss),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    pub n_factors: usize,
    pub n_hvg: usize,
    pub normalise: Normalise,
    /// Scale the blocks to equal norms (false: use them as normalised).
    pub balance: bool,
    pub solver: Solver,
    pub restarts: usize,
    pub max_iter: usize,
    pub tol: f64,
    pub seed: u32,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            n_factors: 15,
            n_hvg: 2000,
            normalise: Normalise::Log1p,
            balance: true,
            solver: Solver::Cd,
            restarts: 5,
            max_iter: 500,
            tol: 1e-4,
            seed: 0,
        }
    }
}

/// The fit: cells × k loadings (H_shared transposed) and each modality's
/// feature loadings.
#[derive(Debug, Clone, PartialEq)]
pub struct Joint {
    pub n_cells: usize,
    pub k: usize,
    /// Genes kept (indices into the transcript features), in column order.
    pub genes: Vec<usize>,
    /// cells × k.
    pub cell_loadings: Vec<f32>,
    /// genes × k and proteins × k.
    pub w_transcript: Vec<f32>,
    pub w_protein: Vec<f32>,
    /// Normalised, weighted blocks as factorised (cells × genes, cells × proteins).
    pub x_transcript: Vec<f32>,
    pub x_protein: Vec<f32>,
    pub reconstruction_err: f64,
    /// Error of every start (the first is nndsvda).
    pub restart_errors: Vec<f64>,
    pub n_iter: usize,
}

/// Normalises an n × p block in place.
pub fn normalise(x: &mut [f32], n: usize, p: usize, how: Normalise) {
    match how {
        Normalise::Log1p => x.iter_mut().for_each(|v| *v = v.max(0.0).ln_1p()),
        Normalise::MinMax => {
            for j in 0..p {
                let (mut lo, mut hi) = (f32::INFINITY, f32::NEG_INFINITY);
                for i in 0..n {
                    lo = lo.min(x[i * p + j]);
                    hi = hi.max(x[i * p + j]);
                }
                let span = hi - lo;
                for i in 0..n {
                    x[i * p + j] = if span > 0.0 {
                        (x[i * p + j] - lo) / span
                    } else {
                        0.0
                    };
                }
            }
        }
    }
}

/// The `top` columns with the largest variance, in column order.
pub fn top_variance(x: &[f32], n: usize, p: usize, top: usize) -> Vec<usize> {
    let var: Vec<f64> = (0..p)
        .map(|j| {
            let mean = (0..n).map(|i| x[i * p + j] as f64).sum::<f64>() / n as f64;
            (0..n)
                .map(|i| (x[i * p + j] as f64 - mean).powi(2))
                .sum::<f64>()
                / n as f64
        })
        .collect();
    let mut idx: Vec<usize> = (0..p).collect();
    idx.sort_by(|&a, &b| var[b].total_cmp(&var[a]).then(a.cmp(&b)));
    idx.truncate(top.min(p));
    idx.retain(|&j| var[j] > 0.0);
    idx.sort_unstable();
    idx
}

/// Fits the joint model. `tx` is n × g raw values, `prot` n × p, both for
/// the same n paired cells.
#[allow(clippy::too_many_arguments)]
pub async fn fit<D: Device>(
    dev: &D,
    tx: &[f32],
    g: usize,
    prot: &[f32],
    p: usize,
    n: usize,
    o: &Options,
    mut progress: impl FnMut(usize, usize),
) -> Result<Joint, String> {
    if n < 2 {
        return Err(format!("{n} paired cells; at least 2 are needed"));
    }
    let k = o.n_factors;
    if k == 0 || k > n {
        return Err(format!(
            "n_factors must be between 1 and the number of paired cells ({n}), got {k}"
        ));
    }
    if let Some(v) = tx.iter().chain(prot).find(|v| !v.is_finite()) {
        return Err(format!("the tables hold a non-finite value ({v})"));
    }
    let (mut t, mut q) = (tx.to_vec(), prot.to_vec());
    normalise(&mut t, n, g, o.normalise);
    normalise(&mut q, n, p, o.normalise);
    let genes = top_variance(&t, n, g, o.n_hvg);
    if genes.is_empty() && p == 0 {
        return Err("no feature varies across the paired cells".into());
    }
    let gk = genes.len();
    let mut xt: Vec<f32> = (0..n)
        .flat_map(|i| genes.iter().map(move |&j| (i, j)))
        .map(|(i, j)| t[i * g + j])
        .collect();
    if o.balance {
        for block in [&mut xt, &mut q] {
            let norm = block
                .iter()
                .map(|&v| (v as f64).powi(2))
                .sum::<f64>()
                .sqrt();
            if norm > 0.0 {
                let s = ((n as f64).sqrt() / norm) as f32;
                block.iter_mut().for_each(|v| *v *= s);
            }
        }
    }
    let cols = gk + p;
    let x: Vec<f32> = (0..n)
        .flat_map(|i| {
            xt[i * gk..(i + 1) * gk]
                .iter()
                .chain(&q[i * p..(i + 1) * p])
                .copied()
                .collect::<Vec<_>>()
        })
        .collect();
    if n * cols > dev.max_buffer_len() {
        return Err(format!(
            "{n} cells x {cols} features ({:.1} GiB) exceed this device's largest buffer; use fewer genes (--n-hvg) or the CPU device",
            (n * cols * 4) as f64 / (1u64 << 30) as f64
        ));
    }
    let params = Nmf {
        max_iter: o.max_iter,
        tol: o.tol,
        ..Nmf::new(k)
    };
    let mut best: Option<NmfFit> = None;
    let mut errors = Vec::new();
    let mut rng = LegacyNormal::new(o.seed);
    for r in 0..o.restarts.max(1) {
        let (w0, h0) = if r == 0 {
            nmf::nndsvd(&x, n, cols, k, true)
        } else {
            nmf::random_init(&x, n, cols, k, &mut rng)
        };
        let f = match o.solver {
            Solver::Cd => fit_cd(dev, &params, &x, n, cols, &w0, &h0).await,
            Solver::Mu(loss) => fit_mu(dev, &params, loss, &x, n, cols, &w0, &h0).await,
        };
        errors.push(f.reconstruction_err);
        if best
            .as_ref()
            .is_none_or(|b| f.reconstruction_err < b.reconstruction_err)
        {
            best = Some(f);
        }
        progress(r + 1, o.restarts.max(1));
    }
    let f = best.expect("at least one start");
    let split = |range: std::ops::Range<usize>| -> Vec<f32> {
        range
            .flat_map(|j| (0..k).map(move |t| (j, t)))
            .map(|(j, t)| f.h[t * cols + j])
            .collect()
    };
    Ok(Joint {
        n_cells: n,
        k,
        w_transcript: split(0..gk),
        w_protein: split(gk..cols),
        genes,
        cell_loadings: f.w.clone(),
        x_transcript: xt,
        x_protein: q,
        reconstruction_err: f.reconstruction_err,
        restart_errors: errors,
        n_iter: f.n_iter,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers() {
        let mut x = vec![0.0, 10.0, 5.0, 20.0, 10.0, 10.0];
        normalise(&mut x, 3, 2, Normalise::MinMax);
        assert_eq!(x, vec![0.0, 0.0, 0.5, 1.0, 1.0, 0.0]);
        let v = vec![1.0, 5.0, 1.0, 1.0, 0.0, 9.0, 1.0, 2.0];
        assert_eq!(top_variance(&v, 4, 2, 1), vec![1]);
        assert_eq!(top_variance(&[3.0, 3.0], 2, 1, 5), Vec::<usize>::new());
    }
}
