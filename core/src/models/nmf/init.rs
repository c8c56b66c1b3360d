//! scikit-learn's `init='nndsvd'` / `'nndsvda'` start for NMF: the
//! nonnegative parts of the leading singular vectors (Boutsidis & Gallopoulos
//! 2008). The SVD is a randomized range finder (k + 10 columns, power
//! iterations re-orthonormalised each time) and the exact SVD of the small
//! projected matrix, in f64 on the host. nndsvd itself does not depend on
//! the singular vectors' signs, so it matches scikit-learn's start wherever
//! both SVDs have converged.

use crate::compute::philox;

/// C (m × n) = A (m × k) · B (k × n), all row-major, or Aᵀ · B with A k × m.
fn mul(a: &[f64], b: &[f64], m: usize, k: usize, n: usize, trans_a: bool) -> Vec<f64> {
    let mut c = vec![0.0; m * n];
    let (rsa, csa) = if trans_a {
        (1, m as isize)
    } else {
        (k as isize, 1)
    };
    // SAFETY: the slices hold m·k, k·n and m·n values with these strides.
    unsafe {
        matrixmultiply::dgemm(
            m,
            k,
            n,
            1.0,
            a.as_ptr(),
            rsa,
            csa,
            b.as_ptr(),
            n as isize,
            1,
            0.0,
            c.as_mut_ptr(),
            n as isize,
            1,
        );
    }
    c
}

/// Orthonormalises the columns of y (m × p) in place (modified Gram–Schmidt).
fn orthonormalise(y: &mut [f64], m: usize, p: usize) {
    for j in 0..p {
        for i in 0..j {
            let dot: f64 = (0..m).map(|r| y[r * p + i] * y[r * p + j]).sum();
            for r in 0..m {
                y[r * p + j] -= dot * y[r * p + i];
            }
        }
        let norm = (0..m).map(|r| y[r * p + j].powi(2)).sum::<f64>().sqrt();
        for r in 0..m {
            y[r * p + j] = if norm > 0.0 { y[r * p + j] / norm } else { 0.0 };
        }
    }
}

/// Eigenvalues (descending) and eigenvectors (columns) of a symmetric p × p
/// matrix by cyclic Jacobi rotations.
fn jacobi(mut a: Vec<f64>, p: usize) -> (Vec<f64>, Vec<f64>) {
    let mut v = vec![0.0; p * p];
    for i in 0..p {
        v[i * p + i] = 1.0;
    }
    for _sweep in 0..100 {
        let off: f64 = (0..p)
            .flat_map(|i| (0..p).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i * p + j].powi(2))
            .sum();
        let scale: f64 = (0..p).map(|i| a[i * p + i].powi(2)).sum::<f64>();
        if off <= 1e-30 * scale.max(1e-300) {
            break;
        }
        for i in 0..p {
            for j in i + 1..p {
                let aij = a[i * p + j];
                if aij == 0.0 {
                    continue;
                }
                let theta = (a[j * p + j] - a[i * p + i]) / (2.0 * aij);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for r in 0..p {
                    let (x, y) = (a[r * p + i], a[r * p + j]);
                    a[r * p + i] = c * x - s * y;
                    a[r * p + j] = s * x + c * y;
                }
                for r in 0..p {
                    let (x, y) = (a[i * p + r], a[j * p + r]);
                    a[i * p + r] = c * x - s * y;
                    a[j * p + r] = s * x + c * y;
                }
                for r in 0..p {
                    let (x, y) = (v[r * p + i], v[r * p + j]);
                    v[r * p + i] = c * x - s * y;
                    v[r * p + j] = s * x + c * y;
                }
            }
        }
    }
    let mut order: Vec<usize> = (0..p).collect();
    order.sort_by(|&x, &y| a[y * p + y].total_cmp(&a[x * p + x]));
    let vals = order.iter().map(|&i| a[i * p + i]).collect();
    let mut vecs = vec![0.0; p * p];
    for (c, &i) in order.iter().enumerate() {
        for r in 0..p {
            vecs[r * p + c] = v[r * p + i];
        }
    }
    (vals, vecs)
}

/// The leading k singular triplets of X (m × n): U (m × k), S (k), Vᵀ (k × n).
pub fn truncated_svd(
    x: &[f32],
    m: usize,
    n: usize,
    k: usize,
    seed: u64,
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let xd: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    let p = (k + 10).min(m.min(n)).max(k);
    let omega: Vec<f64> = (0..n * p)
        .map(|i| philox::normal(seed, 0, i) as f64)
        .collect();
    let mut q = mul(&xd, &omega, m, n, p, false);
    orthonormalise(&mut q, m, p);
    for _ in 0..10 {
        let mut z = mul(&xd, &q, n, m, p, true);
        orthonormalise(&mut z, n, p);
        q = mul(&xd, &z, m, n, p, false);
        orthonormalise(&mut q, m, p);
    }
    // B = Qᵀ X (p × n); its SVD from the eigenvectors of B Bᵀ.
    let bm = mul(&q, &xd, p, m, n, true);
    let mut bbt = vec![0.0; p * p];
    for i in 0..p {
        for j in 0..p {
            bbt[i * p + j] = (0..n).map(|c| bm[i * n + c] * bm[j * n + c]).sum();
        }
    }
    let (vals, ub) = jacobi(bbt, p);
    let s: Vec<f64> = vals[..k].iter().map(|v| v.max(0.0).sqrt()).collect();
    let mut u = vec![0.0; m * k];
    for r in 0..m {
        for c in 0..k {
            u[r * k + c] = (0..p).map(|t| q[r * p + t] * ub[t * p + c]).sum();
        }
    }
    let mut vt = vec![0.0; k * n];
    for c in 0..k {
        if s[c] == 0.0 {
            continue;
        }
        for j in 0..n {
            vt[c * n + j] = (0..p).map(|t| ub[t * p + c] * bm[t * n + j]).sum::<f64>() / s[c];
        }
    }
    (u, s, vt)
}

/// nndsvd (`fill_average` false) or nndsvda (zeros set to mean(X)).
pub fn nndsvd(x: &[f32], m: usize, n: usize, k: usize, fill_average: bool) -> (Vec<f32>, Vec<f32>) {
    let (u, s, vt) = truncated_svd(x, m, n, k, 0);
    let mut w = vec![0.0f64; m * k];
    let mut h = vec![0.0f64; k * n];
    for j in 0..k {
        let col: Vec<f64> = (0..m).map(|r| u[r * k + j]).collect();
        let row = &vt[j * n..(j + 1) * n];
        let norm = |v: &mut dyn Iterator<Item = f64>| v.map(|a| a * a).sum::<f64>().sqrt();
        let (uv, vv, sigma) = if j == 0 {
            (
                col.iter().map(|a| a.abs()).collect::<Vec<_>>(),
                row.iter().map(|a| a.abs()).collect::<Vec<_>>(),
                1.0,
            )
        } else {
            let (xp, xn): (Vec<f64>, Vec<f64>) =
                col.iter().map(|&a| (a.max(0.0), (-a).max(0.0))).unzip();
            let (yp, yn): (Vec<f64>, Vec<f64>) =
                row.iter().map(|&a| (a.max(0.0), (-a).max(0.0))).unzip();
            let (xpn, ypn) = (norm(&mut xp.iter().copied()), norm(&mut yp.iter().copied()));
            let (xnn, ynn) = (norm(&mut xn.iter().copied()), norm(&mut yn.iter().copied()));
            let (mp, mn) = (xpn * ypn, xnn * ynn);
            let unit = |v: Vec<f64>, d: f64| -> Vec<f64> {
                v.into_iter()
                    .map(|a| if d > 0.0 { a / d } else { 0.0 })
                    .collect()
            };
            if mp > mn {
                (unit(xp, xpn), unit(yp, ypn), mp)
            } else {
                (unit(xn, xnn), unit(yn, ynn), mn)
            }
        };
        let lbd = (s[j] * sigma).sqrt();
        for r in 0..m {
            w[r * k + j] = lbd * uv[r];
        }
        for c in 0..n {
            h[j * n + c] = lbd * vv[c];
        }
    }
    let avg = x.iter().map(|&v| v as f64).sum::<f64>() / (m * n).max(1) as f64;
    let fix = |v: f64| {
        let v = if v < 1e-6 { 0.0 } else { v };
        (if v == 0.0 && fill_average { avg } else { v }) as f32
    };
    (
        w.into_iter().map(fix).collect(),
        h.into_iter().map(fix).collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn svd_recovers_a_known_spectrum() {
        // X = U diag(s) Vᵀ with orthonormal U, V built from Gram–Schmidt.
        let (m, n, k) = (40, 25, 3);
        let mut u: Vec<f64> = (0..m * k).map(|i| philox::normal(5, 0, i) as f64).collect();
        orthonormalise(&mut u, m, k);
        let mut v: Vec<f64> = (0..n * k).map(|i| philox::normal(6, 0, i) as f64).collect();
        orthonormalise(&mut v, n, k);
        let s = [9.0, 4.0, 1.5];
        let x: Vec<f32> = (0..m * n)
            .map(|i| {
                (0..k)
                    .map(|t| u[(i / n) * k + t] * s[t] * v[(i % n) * k + t])
                    .sum::<f64>() as f32
            })
            .collect();
        let (uu, ss, vt) = truncated_svd(&x, m, n, k, 1);
        for t in 0..k {
            assert!((ss[t] - s[t]).abs() < 1e-5, "{ss:?}");
            let dot: f64 = (0..m).map(|r| uu[r * k + t] * u[r * k + t]).sum();
            assert!((dot.abs() - 1.0).abs() < 1e-6, "u{t}: {dot}");
            let dotv: f64 = (0..n).map(|c| vt[t * n + c] * v[c * k + t]).sum();
            assert!((dotv.abs() - 1.0).abs() < 1e-6, "v{t}: {dotv}");
        }
        let (w, h) = nndsvd(
            &x.iter().map(|v| v.abs()).collect::<Vec<_>>(),
            m,
            n,
            k,
            true,
        );
        assert!(w.iter().chain(&h).all(|&v| v > 0.0));
    }
}
