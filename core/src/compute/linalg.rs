//! The CPU device's Cholesky factorisation and triangular solves, blocked
//! so that nearly all the work is matrixmultiply's GEMM: unblocked loops
//! run at a tenth of its speed for the M ≈ 1,000 kernel matrices of a GP.
//! The loops inside a block accumulate in f64.

/// Block size: small enough that the unblocked part stays a few percent.
const NB: usize = 64;

/// C (m×n, row stride `ldc`) −= A · B with A and B given by pointer and
/// (row, column) strides; the regions may share one allocation as long as
/// C does not overlap A or B.
///
/// # Safety
/// Every strided index must lie inside the allocations the pointers come from.
#[allow(clippy::too_many_arguments)]
unsafe fn sub_gemm(
    m: usize,
    k: usize,
    n: usize,
    a: *const f32,
    (rsa, csa): (usize, usize),
    b: *const f32,
    (rsb, csb): (usize, usize),
    c: *mut f32,
    ldc: usize,
) {
    if m == 0 || n == 0 || k == 0 {
        return;
    }
    matrixmultiply::sgemm(
        m,
        k,
        n,
        -1.0,
        a,
        rsa as isize,
        csa as isize,
        b,
        rsb as isize,
        csb as isize,
        1.0,
        c,
        ldc as isize,
        1,
    );
}

/// Lower Cholesky factor of the row-major n×n `a` in place (upper triangle
/// zeroed). Returns 0, or the 1-based column of the first pivot that was
/// not positive; from there on the factor is NaN.
pub fn cholesky(a: &mut [f32], n: usize) -> u32 {
    assert!(a.len() >= n * n, "cholesky: buffer too small");
    let mut info = 0u32;
    for kb in (0..n).step_by(NB) {
        let w = NB.min(n - kb);
        // Taken afresh each block: the loops below write through the slice.
        let p = a.as_mut_ptr();
        // Left-looking: the block column meets every column already factored.
        // SAFETY: rows kb.. of columns 0..kb (read) and of columns kb..kb+w
        // (written) are disjoint regions of the n×n matrix.
        unsafe {
            sub_gemm(
                n - kb,
                kb,
                w,
                p.add(kb * n),
                (n, 1),
                p.add(kb * n),
                (1, n),
                p.add(kb * n + kb),
                n,
            );
        }
        for j in kb..kb + w {
            let mut d = a[j * n + j] as f64;
            for q in kb..j {
                d -= (a[j * n + q] as f64).powi(2);
            }
            let d = if d > 0.0 {
                d.sqrt()
            } else {
                if info == 0 {
                    info = j as u32 + 1;
                }
                f64::NAN
            };
            a[j * n + j] = d as f32;
            for i in j + 1..n {
                let mut s = a[i * n + j] as f64;
                for q in kb..j {
                    s -= a[i * n + q] as f64 * a[j * n + q] as f64;
                }
                a[i * n + j] = (s / d) as f32;
            }
        }
    }
    for i in 0..n {
        a[i * n + i + 1..(i + 1) * n].fill(0.0);
    }
    info
}

/// Solves L X = B (Lᵀ X = B when `transpose`) in place in the row-major n×k `b`.
pub fn trsm(l: &[f32], b: &mut [f32], n: usize, k: usize, transpose: bool) {
    assert!(
        l.len() >= n * n && b.len() >= n * k,
        "trsm: buffer too small"
    );
    let blocks: Vec<usize> = (0..n).step_by(NB).collect();
    let order: Vec<usize> = if transpose {
        blocks.into_iter().rev().collect()
    } else {
        blocks
    };
    for ib in order {
        let w = NB.min(n - ib);
        // Taken afresh each block: the loops below write through the slice.
        let bp = b.as_mut_ptr();
        // SAFETY: the rows solved already (read) and the block's rows
        // (written) are disjoint; l is only read.
        unsafe {
            if transpose {
                let rest = ib + w;
                sub_gemm(
                    w,
                    n - rest,
                    k,
                    l.as_ptr().add(rest * n + ib),
                    (1, n),
                    bp.add(rest * k),
                    (k, 1),
                    bp.add(ib * k),
                    k,
                );
            } else {
                sub_gemm(
                    w,
                    ib,
                    k,
                    l.as_ptr().add(ib * n),
                    (n, 1),
                    bp,
                    (k, 1),
                    bp.add(ib * k),
                    k,
                );
            }
        }
        let rows: Vec<usize> = if transpose {
            (ib..ib + w).rev().collect()
        } else {
            (ib..ib + w).collect()
        };
        let mut acc = vec![0f64; k];
        for &i in &rows {
            for (c, v) in acc.iter_mut().enumerate() {
                *v = b[i * k + c] as f64;
            }
            let done: Box<dyn Iterator<Item = usize>> = if transpose {
                Box::new(i + 1..ib + w)
            } else {
                Box::new(ib..i)
            };
            for q in done {
                let lq = if transpose {
                    l[q * n + i]
                } else {
                    l[i * n + q]
                } as f64;
                for (c, v) in acc.iter_mut().enumerate() {
                    *v -= lq * b[q * k + c] as f64;
                }
            }
            let d = l[i * n + i] as f64;
            for (c, v) in acc.iter().enumerate() {
                b[i * k + c] = (v / d) as f32;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A well-conditioned SPD matrix: a Gram matrix plus n on the diagonal.
    fn spd(n: usize, seed: u64) -> Vec<f32> {
        let g: Vec<f64> = (0..n * n)
            .map(|i| (((i as u64 * 2654435761 + seed) % 1000) as f64) / 1000.0 - 0.5)
            .collect();
        let mut a = vec![0f32; n * n];
        for i in 0..n {
            for j in 0..n {
                let s: f64 = (0..n).map(|t| g[i * n + t] * g[j * n + t]).sum();
                a[i * n + j] = (s + if i == j { n as f64 * 0.1 } else { 0.0 }) as f32;
            }
        }
        a
    }

    #[test]
    fn factor_times_its_transpose_is_the_matrix_across_blocks() {
        for n in [1, 5, 64, 150] {
            let a = spd(n, 7);
            let mut l = a.clone();
            assert_eq!(cholesky(&mut l, n), 0);
            for i in 0..n {
                for j in 0..n {
                    if j > i {
                        assert_eq!(l[i * n + j], 0.0);
                        continue;
                    }
                    let s: f64 = (0..=j)
                        .map(|t| l[i * n + t] as f64 * l[j * n + t] as f64)
                        .sum();
                    let want = a[i * n + j] as f64;
                    assert!(
                        (s - want).abs() < 1e-4 * (1.0 + want.abs()),
                        "{n}: {i},{j} {s} {want}"
                    );
                }
            }
        }
    }

    #[test]
    fn solves_invert_the_factor_both_ways() {
        let (n, k) = (150, 7);
        let mut l = spd(n, 3);
        cholesky(&mut l, n);
        let x: Vec<f32> = (0..n * k).map(|i| ((i % 13) as f32) - 6.0).collect();
        for transpose in [false, true] {
            // b = L x (or Lᵀ x), then solve back.
            let mut b = vec![0f32; n * k];
            for i in 0..n {
                for c in 0..k {
                    b[i * k + c] = (0..n)
                        .map(|q| {
                            let lv = if transpose {
                                l[q * n + i]
                            } else {
                                l[i * n + q]
                            };
                            lv as f64 * x[q * k + c] as f64
                        })
                        .sum::<f64>() as f32;
                }
            }
            trsm(&l, &mut b, n, k, transpose);
            for (got, want) in b.iter().zip(&x) {
                assert!((got - want).abs() < 1e-3, "{transpose}: {got} {want}");
            }
        }
    }

    #[test]
    fn a_matrix_that_is_not_positive_definite_names_its_column() {
        let mut a = vec![4.0, 2.0, 0.0, 2.0, 1.0, 0.0, 0.0, 0.0, 1.0];
        assert_eq!(cholesky(&mut a, 3), 2);
        assert!(a[4].is_nan() && a[8].is_nan());
        let mut b = vec![-1.0];
        assert_eq!(cholesky(&mut b, 1), 1);
    }
}
