//! Nonnegative matrix factorisation X ≈ W H on a [`Device`], with
//! scikit-learn's coordinate-descent solver (`solver='cd'`, Frobenius loss)
//! and its regularisation:
//!
//! ```text
//! ½‖X − WH‖² + α_W ρ F ‖W‖₁ + ½ α_W (1−ρ) F ‖W‖² + α_H ρ S ‖H‖₁ + ½ α_H (1−ρ) S ‖H‖²
//! ```
//!
//! (X is S×F, ρ = l1_ratio.) Each iteration sweeps every coordinate of W,
//! then of H, in component order; it stops when the summed projected
//! gradient falls to `tol` times the first iteration's. The sweeps run
//! row-parallel on the device (`nmf_cd_rows`): rows are independent given
//! the Gram matrices, so the result is scikit-learn's up to float rounding.

pub mod init;
pub mod mu;

pub use init::nndsvd;
pub use mu::{fit_mu, Loss};

use crate::compute::{Binary, Device, Gemm};
use crate::models::numpy_rng::LegacyNormal;
use crate::models::svi::Tally;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Nmf {
    pub n_components: usize,
    pub alpha_w: f64,
    /// None: the same as `alpha_w` (scikit-learn's `alpha_H='same'`).
    pub alpha_h: Option<f64>,
    pub l1_ratio: f64,
    pub max_iter: usize,
    pub tol: f64,
}

impl Nmf {
    /// scikit-learn's defaults for `n_components` factors.
    pub fn new(n_components: usize) -> Nmf {
        Nmf {
            n_components,
            alpha_w: 0.0,
            alpha_h: None,
            l1_ratio: 0.0,
            max_iter: 200,
            tol: 1e-4,
        }
    }
}

impl Nmf {
    /// The (l1, l2) penalties of W and of H for an S × F matrix: alpha
    /// scaled by F for W and by S for H, split by l1_ratio (scikit-learn).
    pub fn penalties(&self, rows: usize, cols: usize) -> ((f64, f64), (f64, f64)) {
        let alpha_h = self.alpha_h.unwrap_or(self.alpha_w);
        let split = |alpha: f64, n: usize| {
            let a = alpha * n as f64;
            (a * self.l1_ratio, a * (1.0 - self.l1_ratio))
        };
        (split(self.alpha_w, cols), split(alpha_h, rows))
    }
}

/// A fitted factorisation: W (S×k) and H (k×F), row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct NmfFit {
    pub w: Vec<f32>,
    pub h: Vec<f32>,
    pub n_iter: usize,
    /// ‖X − WH‖_F (scikit-learn's `reconstruction_err_`).
    pub reconstruction_err: f64,
}

/// scikit-learn's `init='random'`: |N(0,1)| · sqrt(mean(X) / k), H drawn
/// before W from numpy's legacy normal stream.
pub fn random_init(
    x: &[f32],
    rows: usize,
    cols: usize,
    k: usize,
    rng: &mut LegacyNormal,
) -> (Vec<f32>, Vec<f32>) {
    let mean = x.iter().map(|&v| v as f64).sum::<f64>() / (rows * cols).max(1) as f64;
    let avg = (mean / k.max(1) as f64).sqrt();
    let mut draw = |n: usize| -> Vec<f32> {
        (0..n)
            .map(|_| (avg * rng.next_normal()).abs() as f32)
            .collect()
    };
    let h = draw(k * cols);
    let w = draw(rows * k);
    (w, h)
}

/// ‖X − WH‖_F on the host, in f64.
pub fn frobenius_error(x: &[f32], w: &[f32], h: &[f32], rows: usize, cols: usize, k: usize) -> f64 {
    let mut sum = 0.0;
    for i in 0..rows {
        for j in 0..cols {
            let v: f64 = (0..k)
                .map(|t| w[i * k + t] as f64 * h[t * cols + j] as f64)
                .sum();
            let d = x[i * cols + j] as f64 - v;
            sum += d * d;
        }
    }
    sum.sqrt()
}

/// Fits X (rows × cols, dense) from the given start, W (rows × k) and H (k × cols).
pub async fn fit_cd<D: Device>(
    dev: &D,
    p: &Nmf,
    x: &[f32],
    rows: usize,
    cols: usize,
    w0: &[f32],
    h0: &[f32],
) -> NmfFit {
    let k = p.n_components;
    let ((l1_w, l2_w), (l1_h, l2_h)) = p.penalties(rows, cols);
    let diag = |l2: f64| {
        let mut d = vec![0f32; k * k];
        for t in 0..k {
            d[t * k + t] = l2 as f32;
        }
        dev.upload(&d)
    };
    let (d_w, d_h) = (diag(l2_w), diag(l2_h));
    let (c_l1w, c_l1h) = (dev.upload(&[l1_w as f32]), dev.upload(&[l1_h as f32]));
    let xb = dev.upload(x);
    let w = dev.upload(w0);
    // H is kept transposed (cols × k) so both half-steps update rows.
    let ht: Vec<f32> = (0..cols * k).map(|i| h0[(i % k) * cols + i / k]).collect();
    let ht = dev.upload(&ht);
    let (gram, gram2) = (dev.zeros(k * k), dev.zeros(k * k));
    let (xw, xw2) = (dev.zeros(rows.max(cols) * k), dev.zeros(rows.max(cols) * k));
    let viol = dev.zeros(rows.max(cols));
    // Both half-steps' violations, read back once per iteration.
    let mut total = Tally::new(dev, &[1, 1]);
    let mut first = None;
    let mut n_iter = 0;
    for it in 1..=p.max_iter {
        n_iter = it;
        total.reset(dev);
        // W: Gram HHᵀ (+ l2 on its diagonal), XHᵀ (− l1).
        dev.gemm(
            Gemm {
                trans_a: true,
                ..Gemm::new(k, k, cols)
            },
            &ht,
            &ht,
            &gram,
        );
        dev.binary(Binary::Add, &gram, &d_w, &gram2);
        dev.gemm(Gemm::new(rows, k, cols), &xb, &ht, &xw);
        dev.binary(Binary::Sub, &xw, &c_l1w, &xw2);
        dev.nmf_cd_rows(&w, &gram2, &xw2, rows, k, &viol);
        total.sum(dev, &viol, rows, 0);
        // H: Gram WᵀW, XᵀW.
        dev.gemm(
            Gemm {
                trans_a: true,
                ..Gemm::new(k, k, rows)
            },
            &w,
            &w,
            &gram,
        );
        dev.binary(Binary::Add, &gram, &d_h, &gram2);
        dev.gemm(
            Gemm {
                trans_a: true,
                ..Gemm::new(cols, k, rows)
            },
            &xb,
            &w,
            &xw,
        );
        dev.binary(Binary::Sub, &xw, &c_l1h, &xw2);
        dev.nmf_cd_rows(&ht, &gram2, &xw2, cols, k, &viol);
        total.sum(dev, &viol, cols, 1);
        let t = total.read(dev).await;
        let v = t.at(0) + t.at(1);
        let v0 = *first.get_or_insert(v);
        if v0 == 0.0 || v / v0 <= p.tol {
            break;
        }
    }
    let w = dev.read(&w).await[..rows * k].to_vec();
    let ht = dev.read(&ht).await;
    let h: Vec<f32> = (0..k * cols)
        .map(|i| ht[(i % cols) * k + i / cols])
        .collect();
    let reconstruction_err = frobenius_error(x, &w, &h, rows, cols, k);
    NmfFit {
        w,
        h,
        n_iter,
        reconstruction_err,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compute::cpu::Cpu;

    #[test]
    fn recovers_an_exact_low_rank_matrix() {
        let (rows, cols, k) = (30, 12, 3);
        let mut rng = LegacyNormal::new(4);
        let wt: Vec<f32> = (0..rows * k)
            .map(|_| rng.next_normal().abs() as f32)
            .collect();
        let ht: Vec<f32> = (0..k * cols)
            .map(|_| rng.next_normal().abs() as f32)
            .collect();
        let mut x = vec![0f32; rows * cols];
        for i in 0..rows {
            for j in 0..cols {
                x[i * cols + j] = (0..k).map(|t| wt[i * k + t] * ht[t * cols + j]).sum();
            }
        }
        let p = Nmf {
            max_iter: 2000,
            tol: 1e-7,
            ..Nmf::new(k)
        };
        let (w0, h0) = random_init(&x, rows, cols, k, &mut LegacyNormal::new(0));
        let start = frobenius_error(&x, &w0, &h0, rows, cols, k);
        let fit = pollster::block_on(fit_cd(&Cpu, &p, &x, rows, cols, &w0, &h0));
        let norm = x.iter().map(|v| (*v as f64).powi(2)).sum::<f64>().sqrt();
        assert!(
            fit.reconstruction_err < 1e-2 * norm,
            "{} of {norm} (start {start})",
            fit.reconstruction_err
        );
        assert!(fit.w.iter().chain(&fit.h).all(|&v| v >= 0.0));
    }

    #[test]
    fn l1_regularisation_sparsifies() {
        let (rows, cols, k) = (40, 10, 4);
        let x: Vec<f32> = (0..rows * cols).map(|i| ((i * 37) % 11) as f32).collect();
        let (w0, h0) = random_init(&x, rows, cols, k, &mut LegacyNormal::new(1));
        let zeros = |p: Nmf| {
            let f = pollster::block_on(fit_cd(&Cpu, &p, &x, rows, cols, &w0, &h0));
            f.w.iter().filter(|&&v| v == 0.0).count()
        };
        let plain = zeros(Nmf {
            max_iter: 300,
            ..Nmf::new(k)
        });
        let l1 = zeros(Nmf {
            max_iter: 300,
            alpha_w: 0.5,
            l1_ratio: 1.0,
            ..Nmf::new(k)
        });
        assert!(l1 > plain, "{l1} zeros with l1 vs {plain} without");
    }
}
