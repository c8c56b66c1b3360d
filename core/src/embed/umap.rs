//! UMAP as scanpy runs it: the fuzzy simplicial set of a kNN graph
//! (`sc.pp.neighbors`' connectivities) and the 2-D layout of `sc.tl.umap`
//! (min_dist 0.5, spread 1, spectral start, 500 epochs up to 10,000 points
//! and 200 beyond, 5 negative samples per edge, learning rate 1).
//!
//! Connectivities: for each point, ρ = distance to its nearest other
//! point and σ such that Σ_j exp(−(d_j − ρ)/σ) = log2(k) over its other
//! neighbours; w_ij = exp(−max(0, d_ij − ρ_i)/σ_i), then the fuzzy union
//! W + Wᵀ − W∘Wᵀ.

use super::knn::Knn;
use crate::models::numpy_rng::LegacyNormal;

/// A symmetric weighted graph without self loops, CSR.
#[derive(Debug, Clone, PartialEq)]
pub struct Graph {
    pub n: usize,
    pub indptr: Vec<usize>,
    pub indices: Vec<u32>,
    pub weights: Vec<f64>,
}

impl Graph {
    pub fn neighbours(&self, i: usize) -> impl Iterator<Item = (usize, f64)> + '_ {
        (self.indptr[i]..self.indptr[i + 1]).map(|e| (self.indices[e] as usize, self.weights[e]))
    }

    /// Builds the CSR from (i, j, w) with i ≠ j, both directions present.
    pub fn from_edges(n: usize, mut edges: Vec<(u32, u32, f64)>) -> Graph {
        edges.sort_by_key(|e| (e.0, e.1));
        let mut indptr = vec![0usize; n + 1];
        for e in &edges {
            indptr[e.0 as usize + 1] += 1;
        }
        for i in 0..n {
            indptr[i + 1] += indptr[i];
        }
        Graph {
            n,
            indptr,
            indices: edges.iter().map(|e| e.1).collect(),
            weights: edges.iter().map(|e| e.2).collect(),
        }
    }
}

const SMOOTH_TOL: f64 = 1e-5;
const MIN_K_DIST_SCALE: f64 = 1e-3;

/// scanpy's `connectivities` (method 'umap') from a kNN whose first
/// neighbour is the point itself.
pub fn connectivities(knn: &Knn) -> Graph {
    let (n, k) = (knn.n, knn.k);
    let target = (k as f64).log2();
    let mean_all = knn.distances.iter().map(|&d| d as f64).sum::<f64>() / (n * k).max(1) as f64;
    let mut directed = std::collections::HashMap::<(u32, u32), f64>::new();
    for i in 0..n {
        let d: Vec<f64> = knn.distances[i * k..(i + 1) * k]
            .iter()
            .map(|&v| v as f64)
            .collect();
        let rho = d.iter().copied().find(|&v| v > 0.0).unwrap_or(0.0);
        // Binary search for σ (umap's smooth_knn_dist, 64 rounds).
        let (mut lo, mut hi, mut mid) = (0.0f64, f64::INFINITY, 1.0f64);
        for _ in 0..64 {
            let psum: f64 = d[1..]
                .iter()
                .map(|&v| {
                    let x = v - rho;
                    if x > 0.0 {
                        (-x / mid).exp()
                    } else {
                        1.0
                    }
                })
                .sum();
            if (psum - target).abs() < SMOOTH_TOL {
                break;
            }
            if psum > target {
                hi = mid;
                mid = (lo + hi) / 2.0;
            } else {
                lo = mid;
                mid = if hi.is_infinite() {
                    mid * 2.0
                } else {
                    (lo + hi) / 2.0
                };
            }
        }
        let mean_i = d.iter().sum::<f64>() / k as f64;
        let sigma = if rho > 0.0 {
            mid.max(MIN_K_DIST_SCALE * mean_i)
        } else {
            mid.max(MIN_K_DIST_SCALE * mean_all)
        };
        for (t, &dt) in d.iter().enumerate() {
            let j = knn.indices[i * k + t];
            if j as usize == i {
                continue;
            }
            let x = dt - rho;
            let w = if x <= 0.0 || sigma == 0.0 {
                1.0
            } else {
                (-x / sigma).exp()
            };
            directed.insert((i as u32, j), w);
        }
    }
    let mut edges = Vec::with_capacity(2 * directed.len());
    for (&(i, j), &w) in &directed {
        let back = directed.get(&(j, i)).copied().unwrap_or(0.0);
        let s = w + back - w * back;
        edges.push((i, j, s));
        if back == 0.0 {
            edges.push((j, i, s));
        }
    }
    Graph::from_edges(n, edges)
}

/// (a, b) of the curve 1 / (1 + a d^{2b}) closest (least squares) to 1
/// below min_dist and exp(−(d − min_dist)/spread) above, on 300 points of
/// [0, 3·spread] (umap's `find_ab_params`).
pub fn find_ab(spread: f64, min_dist: f64) -> (f64, f64) {
    let xs: Vec<f64> = (0..300).map(|i| 3.0 * spread * i as f64 / 299.0).collect();
    let ys: Vec<f64> = xs
        .iter()
        .map(|&x| {
            if x < min_dist {
                1.0
            } else {
                (-(x - min_dist) / spread).exp()
            }
        })
        .collect();
    let loss = |a: f64, b: f64| -> f64 {
        xs.iter()
            .zip(&ys)
            .map(|(&x, &y)| (1.0 / (1.0 + a * x.powf(2.0 * b)) - y).powi(2))
            .sum()
    };
    // Coarse grid, then shrinking grids around the best point.
    let (mut a, mut b, mut best) = (1.0, 1.0, f64::INFINITY);
    for i in 1..=60 {
        for j in 1..=60 {
            let (ta, tb) = (0.1 * i as f64, 0.05 * j as f64);
            let l = loss(ta, tb);
            if l < best {
                (a, b, best) = (ta, tb, l);
            }
        }
    }
    let (mut da, mut db) = (0.1, 0.05);
    for _ in 0..40 {
        let (ca, cb) = (a, b);
        for i in -4..=4 {
            for j in -4..=4 {
                let (ta, tb) = (ca + da * i as f64 / 4.0, cb + db * j as f64 / 4.0);
                if ta <= 0.0 || tb <= 0.0 {
                    continue;
                }
                let l = loss(ta, tb);
                if l < best {
                    (a, b, best) = (ta, tb, l);
                }
            }
        }
        da /= 2.0;
        db /= 2.0;
    }
    (a, b)
}

/// Two leading non-trivial eigenvectors of the normalised adjacency
/// D^{-1/2} W D^{-1/2} (the spectral start), by subspace iteration; None
/// when the graph has isolated points or the iteration does not settle.
fn spectral(g: &Graph, seed: u32) -> Option<Vec<[f64; 2]>> {
    let n = g.n;
    let deg: Vec<f64> = (0..n).map(|i| g.neighbours(i).map(|e| e.1).sum()).collect();
    if n < 3 || deg.iter().any(|&d| d <= 0.0) {
        return None;
    }
    let inv_sqrt: Vec<f64> = deg.iter().map(|d| 1.0 / d.sqrt()).collect();
    let trivial: Vec<f64> = {
        let v: Vec<f64> = deg.iter().map(|d| d.sqrt()).collect();
        let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        v.iter().map(|x| x / norm).collect()
    };
    // (I + M)/2 has the same eigenvectors with non-negative eigenvalues.
    let apply = |v: &[f64]| -> Vec<f64> {
        (0..n)
            .map(|i| {
                let s: f64 = g.neighbours(i).map(|(j, w)| w * inv_sqrt[j] * v[j]).sum();
                0.5 * (v[i] + inv_sqrt[i] * s)
            })
            .collect()
    };
    let mut rng = LegacyNormal::new(seed);
    let mut q: Vec<Vec<f64>> = (0..2)
        .map(|_| (0..n).map(|_| rng.next_normal()).collect())
        .collect();
    let orth = |q: &mut Vec<Vec<f64>>| {
        for a in 0..q.len() {
            let mut v = q[a].clone();
            let mut basis = vec![trivial.clone()];
            basis.extend(q[..a].iter().cloned());
            for b in &basis {
                let dot: f64 = v.iter().zip(b).map(|(x, y)| x * y).sum();
                for (x, y) in v.iter_mut().zip(b) {
                    *x -= dot * y;
                }
            }
            let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
            if norm == 0.0 || !norm.is_finite() {
                return false;
            }
            q[a] = v.into_iter().map(|x| x / norm).collect();
        }
        true
    };
    if !orth(&mut q) {
        return None;
    }
    for _ in 0..300 {
        let mut next: Vec<Vec<f64>> = q.iter().map(|v| apply(v)).collect();
        if !orth(&mut next) {
            return None;
        }
        q = next;
    }
    Some((0..n).map(|i| [q[0][i], q[1][i]]).collect())
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Layout {
    pub min_dist: f64,
    pub spread: f64,
    /// None: 500 up to 10,000 points, 200 beyond.
    pub n_epochs: Option<usize>,
    pub negative_sample_rate: usize,
    pub seed: u32,
}

impl Default for Layout {
    fn default() -> Self {
        Layout {
            min_dist: 0.5,
            spread: 1.0,
            n_epochs: None,
            negative_sample_rate: 5,
            seed: 0,
        }
    }
}

fn clip(v: f64) -> f64 {
    v.clamp(-4.0, 4.0)
}

/// The 2-D embedding (n x 2) of a connectivity graph.
// (The SGD indexes two points' coordinates at once.)
#[allow(clippy::needless_range_loop)]
pub fn layout(g: &Graph, p: &Layout) -> Vec<[f64; 2]> {
    let n = g.n;
    if n == 0 {
        return vec![];
    }
    let n_epochs = p.n_epochs.unwrap_or(if n <= 10_000 { 500 } else { 200 });
    let (a, b) = find_ab(p.spread, p.min_dist);
    let mut rng = LegacyNormal::new(p.seed);
    // Start: spectral, scaled to [-10, 10] with a little noise; else uniform.
    let mut y: Vec<[f64; 2]> = match spectral(g, p.seed) {
        Some(s) => {
            let max = s
                .iter()
                .flat_map(|v| v.iter().map(|x| x.abs()))
                .fold(0.0f64, f64::max)
                .max(1e-12);
            s.iter()
                .map(|v| {
                    [
                        v[0] * 10.0 / max + 1e-4 * rng.next_normal(),
                        v[1] * 10.0 / max + 1e-4 * rng.next_normal(),
                    ]
                })
                .collect()
        }
        None => (0..n)
            .map(|_| [20.0 * rng.next_f64() - 10.0, 20.0 * rng.next_f64() - 10.0])
            .collect(),
    };
    // umap rescales the start to [0, 10] per axis.
    for d in 0..2 {
        let (lo, hi) = y
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| {
                (l.min(v[d]), h.max(v[d]))
            });
        let span = (hi - lo).max(1e-12);
        for v in y.iter_mut() {
            v[d] = 10.0 * (v[d] - lo) / span;
        }
    }
    // Edges sampled in proportion to their weight; weak ones never.
    let max_w = g.weights.iter().copied().fold(0.0f64, f64::max);
    let mut edges: Vec<(usize, usize, f64)> = vec![];
    for i in 0..n {
        for (j, w) in g.neighbours(i) {
            if w >= max_w / n_epochs as f64 {
                edges.push((i, j, max_w / w));
            }
        }
    }
    let neg_rate = p.negative_sample_rate.max(1) as f64;
    let mut next_sample: Vec<f64> = edges.iter().map(|e| e.2).collect();
    let mut next_negative: Vec<f64> = edges.iter().map(|e| e.2 / neg_rate).collect();
    let attract = |d2: f64| -> f64 {
        if d2 > 0.0 {
            -2.0 * a * b * d2.powf(b - 1.0) / (a * d2.powf(b) + 1.0)
        } else {
            0.0
        }
    };
    let repel = |d2: f64| -> f64 { 2.0 * b / ((0.001 + d2) * (a * d2.powf(b) + 1.0)) };
    for epoch in 0..n_epochs {
        let alpha = 1.0 - epoch as f64 / n_epochs as f64;
        let e_now = epoch as f64;
        for (ei, &(j, k, per)) in edges.iter().enumerate() {
            if next_sample[ei] > e_now {
                continue;
            }
            let d2 = (y[j][0] - y[k][0]).powi(2) + (y[j][1] - y[k][1]).powi(2);
            let c = attract(d2);
            for d in 0..2 {
                let grad = clip(c * (y[j][d] - y[k][d]));
                y[j][d] += grad * alpha;
                y[k][d] -= grad * alpha;
            }
            next_sample[ei] += per;
            let n_neg = ((e_now - next_negative[ei]) / (per / neg_rate))
                .floor()
                .max(0.0) as usize;
            for _ in 0..n_neg {
                let kk = ((rng.next_f64() * n as f64) as usize).min(n - 1);
                if kk == j {
                    continue;
                }
                let d2 = (y[j][0] - y[kk][0]).powi(2) + (y[j][1] - y[kk][1]).powi(2);
                let c = repel(d2);
                for d in 0..2 {
                    let grad = if c > 0.0 {
                        clip(c * (y[j][d] - y[kk][d]))
                    } else {
                        4.0
                    };
                    y[j][d] += grad * alpha;
                }
            }
            next_negative[ei] += n_neg as f64 * per / neg_rate;
        }
    }
    y
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compute::cpu::Cpu;
    use crate::embed::knn::knn;

    #[test]
    fn ab_match_umap_for_its_defaults() {
        // umap-learn's values for spread 1, min_dist 0.1.
        let (a, b) = find_ab(1.0, 0.1);
        assert!(
            (a - 1.577).abs() < 0.02 && (b - 0.895).abs() < 0.01,
            "{a} {b}"
        );
    }

    fn blobs() -> (Vec<f32>, usize, Vec<usize>) {
        // Three well separated blobs of 40 points in 4 dimensions.
        let mut rng = LegacyNormal::new(9);
        let (mut x, mut lab) = (vec![], vec![]);
        for c in 0..3 {
            for _ in 0..40 {
                for t in 0..4 {
                    let centre = if t == c { 10.0 } else { 0.0 };
                    x.push((centre + rng.next_normal()) as f32);
                }
                lab.push(c);
            }
        }
        (x, 120, lab)
    }

    #[test]
    fn connectivities_are_a_fuzzy_union() {
        let (x, n, _) = blobs();
        let k = pollster::block_on(knn(&Cpu, &x, n, 4, 15));
        let g = connectivities(&k);
        for i in 0..n {
            for (j, w) in g.neighbours(i) {
                assert!(j != i && w > 0.0 && w <= 1.0);
                let back = g.neighbours(j).find(|e| e.0 == i).map(|e| e.1);
                assert_eq!(back, Some(w), "symmetric");
            }
        }
        // Each point's own kNN memberships sum to log2(k) (before the union).
        let i = 7;
        let d: Vec<f64> = k.distances[i * 15..(i + 1) * 15]
            .iter()
            .map(|&v| v as f64)
            .collect();
        assert!(d[0] == 0.0 && d[1] > 0.0);
    }

    #[test]
    fn layout_keeps_blobs_apart() {
        let (x, n, lab) = blobs();
        let k = pollster::block_on(knn(&Cpu, &x, n, 4, 15));
        let g = connectivities(&k);
        let y = layout(&g, &Layout::default());
        assert!(y.iter().all(|v| v[0].is_finite() && v[1].is_finite()));
        let dist =
            |i: usize, j: usize| ((y[i][0] - y[j][0]).powi(2) + (y[i][1] - y[j][1]).powi(2)).sqrt();
        let (mut inside, mut across, mut ni, mut na) = (0.0, 0.0, 0.0, 0.0);
        for i in 0..n {
            for j in 0..i {
                if lab[i] == lab[j] {
                    inside += dist(i, j);
                    ni += 1.0;
                } else {
                    across += dist(i, j);
                    na += 1.0;
                }
            }
        }
        assert!(
            across / na > 3.0 * inside / ni,
            "{} vs {}",
            across / na,
            inside / ni
        );
        // One seed, one layout.
        assert_eq!(y, layout(&g, &Layout::default()));
    }
}
