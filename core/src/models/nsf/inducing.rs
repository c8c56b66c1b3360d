//! Inducing points of the spatial factors (`misc.kmeans_inducing_pts`):
//! every distinct location when there are at most `m` of them, else the
//! centres of k-means with `m` clusters.

use crate::compute::philox;

/// Distinct rows of `xy` (n x 2, row-major), sorted as `np.unique(axis=0)`.
pub fn unique_locations(xy: &[f64]) -> Vec<f64> {
    let mut pts: Vec<[f64; 2]> = xy.chunks_exact(2).map(|p| [p[0], p[1]]).collect();
    pts.sort_by(|a, b| a[0].total_cmp(&b[0]).then(a[1].total_cmp(&b[1])));
    pts.dedup();
    pts.concat()
}

/// The inducing points for `m` of them: the distinct locations when `m`
/// covers them all (the paper's choice, so M may come out smaller than
/// asked), else k-means centres (k-means++ seeding, Lloyd's iterations to
/// scikit-learn's tolerance: centre shifts below 1e-4 of the data's
/// variance, at most 300 rounds), deterministic for a seed.
pub fn inducing_points(xy: &[f64], m: usize, seed: u64) -> Vec<f64> {
    let unique = unique_locations(xy);
    if m >= unique.len() / 2 {
        return unique;
    }
    // On every location, repeats included: they weigh, as in the paper.
    let pts: Vec<[f64; 2]> = xy.chunks_exact(2).map(|p| [p[0], p[1]]).collect();
    kmeans(&pts, m.max(1), seed)
}

fn dist2(a: &[f64; 2], b: &[f64; 2]) -> f64 {
    (a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)
}

fn kmeans(pts: &[[f64; 2]], k: usize, seed: u64) -> Vec<f64> {
    let n = pts.len();
    let mut draw = 0usize;
    let mut uniform = || {
        draw += 1;
        philox::uniform(seed, 0, draw - 1) as f64
    };
    // k-means++: each next centre drawn in proportion to its squared
    // distance from the nearest centre so far.
    let mut centres = vec![pts[((uniform() * n as f64) as usize).min(n - 1)]];
    let mut near: Vec<f64> = pts.iter().map(|p| dist2(p, &centres[0])).collect();
    while centres.len() < k {
        let total: f64 = near.iter().sum();
        let mut target = uniform() * total;
        // Rounding can run past the end: then the last point not yet a centre.
        let mut pick = near.iter().rposition(|&d| d > 0.0).unwrap_or(n - 1);
        for (i, &d) in near.iter().enumerate() {
            if target < d {
                pick = i;
                break;
            }
            target -= d;
        }
        let c = pts[pick];
        for (d, p) in near.iter_mut().zip(pts) {
            *d = d.min(dist2(p, &c));
        }
        centres.push(c);
    }
    let mean = [0, 1].map(|d| pts.iter().map(|p| p[d]).sum::<f64>() / n as f64);
    let variance = pts.iter().map(|p| dist2(p, &mean)).sum::<f64>() / (2 * n) as f64;
    let mut label = vec![0usize; n];
    for _ in 0..300 {
        for (l, p) in label.iter_mut().zip(pts) {
            *l = (0..k)
                .min_by(|&a, &b| dist2(p, &centres[a]).total_cmp(&dist2(p, &centres[b])))
                .expect("k >= 1");
        }
        let (mut sum, mut count) = (vec![[0.0; 2]; k], vec![0usize; k]);
        for (&l, p) in label.iter().zip(pts) {
            sum[l][0] += p[0];
            sum[l][1] += p[1];
            count[l] += 1;
        }
        let mut shift = 0.0;
        for c in 0..k {
            // An emptied cluster keeps its centre.
            if count[c] > 0 {
                let next = [sum[c][0] / count[c] as f64, sum[c][1] / count[c] as f64];
                shift += dist2(&next, &centres[c]);
                centres[c] = next;
            }
        }
        if shift <= 1e-4 * variance {
            break;
        }
    }
    centres.concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distinct_locations_when_they_are_few_enough() {
        let xy = [1.0, 2.0, 0.0, 5.0, 1.0, 2.0, 0.0, 1.0];
        assert_eq!(unique_locations(&xy), vec![0.0, 1.0, 0.0, 5.0, 1.0, 2.0]);
        assert_eq!(
            inducing_points(&xy, 3, 0),
            vec![0.0, 1.0, 0.0, 5.0, 1.0, 2.0]
        );
        assert_eq!(inducing_points(&xy, 10, 0).len(), 6);
    }

    #[test]
    fn kmeans_finds_separated_blobs_the_same_way_each_time() {
        // Three blobs of 30 points around (0,0), (10,0), (0,10).
        let centres = [[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]];
        let xy: Vec<f64> = (0..90)
            .flat_map(|i| {
                let c = centres[i % 3];
                let (u, v) = (
                    philox::uniform(9, 0, 2 * i),
                    philox::uniform(9, 0, 2 * i + 1),
                );
                [c[0] + u as f64 - 0.5, c[1] + v as f64 - 0.5]
            })
            .collect();
        let z = inducing_points(&xy, 3, 4);
        assert_eq!(z.len(), 6);
        for c in centres {
            let best = z
                .chunks_exact(2)
                .map(|p| dist2(&[p[0], p[1]], &c))
                .fold(f64::INFINITY, f64::min);
            assert!(best < 0.1, "no centre near {c:?}: {z:?}");
        }
        assert_eq!(z, inducing_points(&xy, 3, 4));
    }
}
