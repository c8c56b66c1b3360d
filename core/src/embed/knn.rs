//! Exact k nearest neighbours in Euclidean space (scanpy's `neighbors`
//! below its approximate-search threshold): each point's k nearest points,
//! itself first at distance 0. Squared distances come from the Device's
//! GEMM (|a|² + |b|² − 2 a·b) one row block at a time; the selection runs on
//! the host, so memory is one block of distances, never n x n.

use crate::compute::{Device, Gemm};

/// Neighbour indices and distances, n x k each, nearest first.
#[derive(Debug, Clone, PartialEq)]
pub struct Knn {
    pub n: usize,
    pub k: usize,
    pub indices: Vec<u32>,
    pub distances: Vec<f32>,
}

/// `x` is n x d row-major; k counts the point itself.
pub async fn knn<D: Device>(dev: &D, x: &[f32], n: usize, d: usize, k: usize) -> Knn {
    let k = k.min(n).max(1);
    let norms: Vec<f32> = (0..n)
        .map(|i| x[i * d..(i + 1) * d].iter().map(|v| v * v).sum())
        .collect();
    let xb = dev.upload(x);
    let block = (dev.max_buffer_len() / n.max(1))
        .clamp(1, 4096)
        .min(n.max(1));
    let prod = dev.zeros(block * n);
    let (mut indices, mut distances) = (Vec::with_capacity(n * k), Vec::with_capacity(n * k));
    let mut cand: Vec<(f32, u32)> = Vec::with_capacity(n);
    let mut r0 = 0;
    while r0 < n {
        let rows = block.min(n - r0);
        // This block's rows as their own buffer (A), every point as B.
        let a = dev.upload(&x[r0 * d..(r0 + rows) * d]);
        let g = Gemm {
            trans_b: true,
            ..Gemm::new(rows, n, d)
        };
        dev.gemm(g, &a, &xb, &prod);
        let p = dev.read(&prod).await;
        for i in 0..rows {
            let gi = r0 + i;
            // One candidate buffer for every row (was n values allocated per row).
            cand.clear();
            cand.extend((0..n).map(|j| {
                let d2 = if j == gi {
                    0.0
                } else {
                    (norms[gi] + norms[j] - 2.0 * p[i * n + j]).max(0.0)
                };
                (d2, j as u32)
            }));
            // Self first (distance 0, ties broken by index: self wins when equal).
            let key = |c: &(f32, u32)| (c.0, c.1 != gi as u32, c.1);
            if k < n {
                cand.select_nth_unstable_by(k - 1, |a, b| {
                    key(a).partial_cmp(&key(b)).expect("finite distances")
                });
                cand.truncate(k);
            }
            cand.sort_by(|a, b| key(a).partial_cmp(&key(b)).expect("finite distances"));
            for &(d2, j) in &cand[..k] {
                indices.push(j);
                distances.push(d2.sqrt());
            }
        }
        r0 += rows;
    }
    Knn {
        n,
        k,
        indices,
        distances,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compute::cpu::Cpu;

    #[test]
    fn matches_brute_force() {
        let (n, d, k) = (57, 5, 6);
        let x: Vec<f32> = (0..n * d)
            .map(|i| crate::compute::philox::uniform(3, 0, i) * 10.0)
            .collect();
        let got = pollster::block_on(knn(&Cpu, &x, n, d, k));
        for i in 0..n {
            let mut all: Vec<(f64, usize)> = (0..n)
                .map(|j| {
                    let s: f64 = (0..d)
                        .map(|t| (x[i * d + t] as f64 - x[j * d + t] as f64).powi(2))
                        .sum();
                    (s.sqrt(), j)
                })
                .collect();
            all.sort_by(|a, b| a.0.total_cmp(&b.0));
            assert_eq!(got.indices[i * k], i as u32, "self first");
            for (t, want) in all.iter().take(k).enumerate() {
                assert_eq!(got.indices[i * k + t] as usize, want.1, "row {i} rank {t}");
                assert!((got.distances[i * k + t] as f64 - want.0).abs() < 1e-3);
            }
        }
    }
}
