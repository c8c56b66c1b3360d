//! Co-occurrence of cell types over distance (squidpy's `co_occurrence`):
//! for each radius r, occ[a, b, r] = P(b | a, within r) / P(b | within r),
//! counted over ordered pairs of distinct cells within distance r
//! (cumulative disks). The radii are squidpy's: `interval` values from a
//! small to a large distance found from the extreme points, the first one
//! dropped.
//!
//! Pairs are visited once each in x order, stopping at the largest radius,
//! and only k x k x radii counts are kept: memory O(n + k² R), not O(n²).

pub mod analysis;

use super::Labels;

#[derive(Debug, Clone, PartialEq)]
pub struct CoOccurrence {
    pub n_types: usize,
    /// occ[(a * k + b) * radii + r], radii = interval.len() − 1.
    pub occ: Vec<f64>,
    /// The distances, float32 as squidpy stores them.
    pub interval: Vec<f32>,
}

impl CoOccurrence {
    pub fn radii(&self) -> usize {
        self.interval.len() - 1
    }

    pub fn at(&self, a: usize, b: usize, r: usize) -> f64 {
        self.occ[(a * self.n_types + b) * self.radii() + r]
    }
}

/// squidpy's distances: the two points with the smallest x + y give the
/// first (their distance), half the distance from the smallest-(x + y)
/// point to the largest gives the last; `n` values evenly in between,
/// computed in float32.
pub fn thresholds(coords: &[[f64; 2]], n: usize) -> Result<Vec<f32>, String> {
    if coords.len() < 2 {
        return Err(format!(
            "co-occurrence needs at least 2 cells, got {}",
            coords.len()
        ));
    }
    if n < 2 {
        return Err(format!("interval must be at least 2, got {n}"));
    }
    let sums: Vec<f64> = coords.iter().map(|p| p[0] + p[1]).collect();
    // The two smallest sums in ascending order (the lower index on ties),
    // the largest (the first index on ties).
    let mut order: Vec<usize> = (0..coords.len()).collect();
    order.sort_by(|&a, &b| sums[a].total_cmp(&sums[b]).then(a.cmp(&b)));
    let (lo, lo2) = (order[0], order[1]);
    let hi = (0..coords.len())
        .reduce(|best, i| if sums[i] > sums[best] { i } else { best })
        .expect("non-empty");
    let dist = |a: usize, b: usize| {
        ((coords[a][0] - coords[b][0]).powi(2) + (coords[a][1] - coords[b][1]).powi(2)).sqrt()
    };
    let (t0, t1) = (dist(lo, lo2) as f32, (dist(lo, hi) / 2.0) as f32);
    // numpy's linspace: start + i * step, the last value set to stop.
    let step = (t1 - t0) / (n - 1) as f32;
    let mut t: Vec<f32> = (0..n).map(|i| t0 + i as f32 * step).collect();
    t[n - 1] = t1;
    Ok(t)
}

pub fn co_occurrence(
    coords: &[[f64; 2]],
    labels: &Labels,
    interval: usize,
) -> Result<CoOccurrence, String> {
    if labels.codes.len() != coords.len() {
        return Err(format!(
            "{} labels for {} cells",
            labels.codes.len(),
            coords.len()
        ));
    }
    if let Some(i) = coords
        .iter()
        .position(|p| !p[0].is_finite() || !p[1].is_finite())
    {
        return Err(format!(
            "cell {i} has a non-finite coordinate {:?}",
            coords[i]
        ));
    }
    // squidpy works on float32 coordinates.
    let coords: Vec<[f64; 2]> = coords
        .iter()
        .map(|p| [p[0] as f32 as f64, p[1] as f32 as f64])
        .collect();
    let coords = &coords[..];
    let t = thresholds(coords, interval)?;
    let radii = &t[1..];
    let m = radii.len();
    let k = labels.n_types();
    let counts = pair_counts(coords, &labels.codes, k, radii);
    // Cumulative over radii, then normalise each radius's k x k table.
    let mut occ = vec![0.0; k * k * m];
    let mut cum = vec![0u64; k * k];
    for r in 0..m {
        for c in 0..k * k {
            cum[c] += counts[c * m + r];
        }
        let total: f64 = cum.iter().map(|&v| v as f64).sum();
        let row: Vec<f64> = (0..k)
            .map(|a| cum[a * k..(a + 1) * k].iter().map(|&v| v as f64).sum())
            .collect();
        let col: Vec<f64> = (0..k)
            .map(|b| (0..k).map(|a| cum[a * k + b] as f64).sum())
            .collect();
        // P(b | a, r) / P(b | r); 0 where a or b has no pairs (squidpy's convention).
        for a in 0..k {
            for b in 0..k {
                if row[a] > 0.0 && col[b] > 0.0 {
                    occ[(a * k + b) * m + r] = (cum[a * k + b] as f64 / row[a]) / (col[b] / total);
                }
            }
        }
    }
    Ok(CoOccurrence {
        n_types: k,
        occ,
        interval: t,
    })
}

/// Ordered-pair counts per (type a, type b) and the first radius that
/// holds the pair: counts[(a * k + b) * radii + r]. Squared distances and
/// squared radii are compared in float32, as squidpy's kernel does.
fn pair_counts(coords: &[[f64; 2]], codes: &[u32], k: usize, radii: &[f32]) -> Vec<u64> {
    let m = radii.len();
    let r2: Vec<f32> = radii.iter().map(|r| r * r).collect();
    let mut order: Vec<usize> = (0..coords.len()).collect();
    order.sort_by(|&a, &b| coords[a][0].total_cmp(&coords[b][0]));
    let xs: Vec<[f32; 2]> = order
        .iter()
        .map(|&i| [coords[i][0] as f32, coords[i][1] as f32])
        .collect();
    let ls: Vec<usize> = order.iter().map(|&i| codes[i] as usize).collect();
    let (rmax2, xgap) = (r2[m - 1], radii[m - 1] as f64 * (1.0 + 1e-6) + 1e-6);
    let part = |t: usize, of: usize| {
        let mut c = vec![0u64; k * k * m];
        for i in (t..xs.len()).step_by(of) {
            let (p, li) = (xs[i], ls[i]);
            for j in i + 1..xs.len() {
                let dx = xs[j][0] - p[0];
                // Sorted by x: no later point can be within the largest radius.
                if dx as f64 > xgap {
                    break;
                }
                let dy = xs[j][1] - p[1];
                let d2 = dx * dx + dy * dy;
                if d2 > rmax2 {
                    continue;
                }
                let r = r2.partition_point(|&v| v < d2);
                let lj = ls[j];
                c[(li * k + lj) * m + r] += 1;
                c[(lj * k + li) * m + r] += 1;
            }
        }
        c
    };
    let threads = crate::compute::cpu::threads();
    if threads == 1 || xs.len() < 2000 {
        return part(0, 1);
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        let parts: Vec<Vec<u64>> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..threads)
                .map(|t| {
                    let part = &part;
                    s.spawn(move || part(t, threads))
                })
                .collect();
            hs.into_iter().map(|h| h.join().expect("worker")).collect()
        });
        let mut c = vec![0u64; k * k * m];
        for p in parts {
            for (a, b) in c.iter_mut().zip(p) {
                *a += b;
            }
        }
        c
    }
    #[cfg(target_arch = "wasm32")]
    part(0, 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_match_brute_force_and_mixing_is_one() {
        // A checkerboard of two types: at large radii the types mix evenly.
        let mut pts = Vec::new();
        let mut names = Vec::new();
        for i in 0..30 {
            for j in 0..30 {
                pts.push([i as f64 * 1.5 + 0.01 * j as f64, j as f64]);
                names.push(if (i + j) % 2 == 0 { "a" } else { "b" }.to_string());
            }
        }
        let labels = Labels::from_strings(&names);
        let co = co_occurrence(&pts, &labels, 20).unwrap();
        let m = co.radii();
        let radii: Vec<f64> = co.interval[1..].iter().map(|&v| v as f64).collect();
        // Brute force at one radius.
        let r = 7;
        let mut n = [[0f64; 2]; 2];
        for i in 0..pts.len() {
            for j in 0..pts.len() {
                let d = ((pts[i][0] - pts[j][0]).powi(2) + (pts[i][1] - pts[j][1]).powi(2)).sqrt();
                if i != j && d <= radii[r] {
                    n[labels.codes[i] as usize][labels.codes[j] as usize] += 1.0;
                }
            }
        }
        let tot: f64 = n.iter().flatten().sum();
        let want = (n[0][1] / tot) / ((n[0][0] + n[0][1]) / tot) / ((n[0][1] + n[1][1]) / tot);
        assert!(
            (co.at(0, 1, r) - want).abs() < 1e-12,
            "{} {want}",
            co.at(0, 1, r)
        );
        assert!((co.at(0, 0, m - 1) - 1.0).abs() < 0.05);
        assert!(co.interval.windows(2).all(|w| w[0] < w[1]));
        assert!(co_occurrence(&pts[..1], &labels.take(&[0]), 50).is_err());
    }
}
