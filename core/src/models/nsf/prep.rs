//! The paper's preprocessing (`utils/preprocess.py`): genes ranked by
//! Poisson deviance, size factors, coordinates rescaled into a box of side
//! 4, and the train/validation split.

use crate::data::Matrix;

/// How each observation's counts are scaled (`sz` in the paper).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SizeFactors {
    /// 1 for every observation.
    Constant,
    /// The observation's mean count over genes.
    Mean,
    /// The observation's total count over the median total (scanpy's
    /// `normalize_total` target).
    Scanpy,
}

/// Each observation's total count (f64, whatever X stores).
fn row_sums(x: &Matrix) -> Vec<f64> {
    (0..x.shape().0)
        .map(|r| {
            let mut s = 0.0;
            x.for_row(r, |_, v| s += v as f64);
            s
        })
        .collect()
}

/// numpy's median: the mean of the two middle values when their number is
/// even; NaN for none.
pub fn median(v: &[f64]) -> f64 {
    let mut sorted = v.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => sorted[n / 2],
        _ => 0.5 * (sorted[n / 2 - 1] + sorted[n / 2]),
    }
}

/// Size factors of the rows of `x`. An observation with no counts gets a
/// zero factor under `Mean` and `Scanpy`: callers reject such rows first.
pub fn size_factors(x: &Matrix, kind: SizeFactors) -> Vec<f64> {
    let (n, g) = x.shape();
    match kind {
        SizeFactors::Constant => vec![1.0; n],
        SizeFactors::Mean => row_sums(x).into_iter().map(|s| s / g as f64).collect(),
        SizeFactors::Scanpy => {
            let sums = row_sums(x);
            let m = if n == 0 { 1.0 } else { median(&sums) };
            sums.into_iter().map(|s| s / m).collect()
        }
    }
}

/// scanpy's `normalize_total` (each row scaled to the median of `totals`,
/// its count over all genes) then `log1p`, of the dense n×j counts `y`:
/// the data the paper's Gaussian models read.
pub fn log_normalise(y: &[f32], j: usize, totals: &[f64]) -> Vec<f32> {
    let target = median(totals);
    y.chunks_exact(j.max(1))
        .zip(totals)
        .flat_map(|(row, &t)| {
            row.iter()
                .map(move |&v| (v as f64 * target / t).ln_1p() as f32)
        })
        .collect()
}

/// Poisson deviance of each gene against a null model of constant
/// expression scaled by `sz` (the paper's `deviancePoisson`): 2 (ll_sat −
/// ll_null), ll_null = s log(s / Σ sz), s the gene's total,
/// ll_sat = Σ_{y>0} y log(y / sz). A gene with no counts has no null model:
/// an error naming it, as the paper's code raises one.
pub fn poisson_deviance(x: &Matrix, sz: &[f64]) -> Result<Vec<f64>, String> {
    let (n, g) = x.shape();
    assert_eq!(sz.len(), n, "poisson_deviance: one size factor per row");
    let (mut total, mut sat) = (vec![0f64; g], vec![0f64; g]);
    for (r, &s) in sz.iter().enumerate() {
        x.for_row(r, |j, v| {
            let y = v as f64;
            if y > 0.0 {
                total[j] += y;
                sat[j] += y * (y / s).ln();
            }
        });
    }
    let sz_sum: f64 = sz.iter().sum();
    (0..g)
        .map(|j| {
            if total[j] == 0.0 {
                return Err(format!("gene {j} has no counts: its deviance is undefined (filter genes expressed nowhere first)"));
            }
            Ok(2.0 * (sat[j] - total[j] * (total[j] / sz_sum).ln()))
        })
        .collect()
}

/// Indices of the `keep` genes of largest deviance, largest first (ties in
/// gene order).
pub fn top_genes(deviance: &[f64], keep: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..deviance.len()).collect();
    order.sort_by(|&a, &b| deviance[b].total_cmp(&deviance[a]));
    order.truncate(keep);
    order
}

/// `rescale_spatial_coords`: coordinates (n x 2, row-major) shifted to start
/// at 0, scaled so that the geometric mean of the extents is 4 (the aspect
/// kept), then centred; with `flip_y` the y axis is negated first (image
/// rows grow downwards).
pub fn rescale_coords(xy: &[f64], flip_y: bool) -> Vec<f64> {
    let n = xy.len() / 2;
    let mut out: Vec<f64> = xy
        .chunks_exact(2)
        .flat_map(|p| [p[0], if flip_y { -p[1] } else { p[1] }])
        .collect();
    if n == 0 {
        return out;
    }
    let (mut lo, mut hi) = ([f64::INFINITY; 2], [f64::NEG_INFINITY; 2]);
    for p in out.chunks_exact(2) {
        for d in 0..2 {
            lo[d] = lo[d].min(p[d]);
            hi[d] = hi[d].max(p[d]);
        }
    }
    // One extent of zero (points on a line) leaves the scale to the other.
    let extents: Vec<f64> = (0..2).map(|d| hi[d] - lo[d]).filter(|&e| e > 0.0).collect();
    let scale = if extents.is_empty() {
        1.0
    } else {
        4.0 / (extents.iter().map(|e| e.ln()).sum::<f64>() / extents.len() as f64).exp()
    };
    let mut mean = [0.0; 2];
    for p in out.chunks_exact_mut(2) {
        for d in 0..2 {
            p[d] = (p[d] - lo[d]) * scale;
            mean[d] += p[d] / n as f64;
        }
    }
    for p in out.chunks_exact_mut(2) {
        for d in 0..2 {
            p[d] -= mean[d];
        }
    }
    out
}

/// The paper's split of `n` observations in their stored order: the first
/// round((100 − validation_pct)% of n) train, the rest validate (Python's
/// round: halves to even).
pub fn split(n: usize, validation_pct: f64) -> (std::ops::Range<usize>, std::ops::Range<usize>) {
    let t = (100.0 - validation_pct) / 100.0 * n as f64;
    let train = (t.round_ties_even() as usize).min(n);
    (0..train, train..n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Matrix;

    fn m(rows: usize, cols: usize, v: &[f32]) -> Matrix {
        Matrix::Dense(crate::data::dense(rows, cols, v.to_vec()).unwrap())
    }

    #[test]
    fn log_normalise_scales_rows_to_the_median_total() {
        // Totals 2, 4, 6 over all genes: median 4.
        let y = [1.0, 1.0, 2.0, 2.0, 3.0, 0.0];
        let got = log_normalise(&y, 2, &[2.0, 4.0, 6.0]);
        let want = [
            2f64.ln_1p(),
            2f64.ln_1p(),
            2f64.ln_1p(),
            2f64.ln_1p(),
            2f64.ln_1p(),
            0.0,
        ];
        for (g, w) in got.iter().zip(want) {
            assert!((*g as f64 - w).abs() < 1e-6, "{got:?}");
        }
    }

    #[test]
    fn size_factors_follow_their_definitions() {
        let x = m(3, 2, &[1.0, 3.0, 0.0, 2.0, 6.0, 0.0]);
        assert_eq!(size_factors(&x, SizeFactors::Constant), vec![1.0; 3]);
        assert_eq!(size_factors(&x, SizeFactors::Mean), vec![2.0, 1.0, 3.0]);
        // Totals 4, 2, 6: median 4.
        assert_eq!(size_factors(&x, SizeFactors::Scanpy), vec![1.0, 0.5, 1.5]);
        let even = m(2, 1, &[1.0, 3.0]);
        assert_eq!(size_factors(&even, SizeFactors::Scanpy), vec![0.5, 1.5]);
    }

    #[test]
    fn deviance_by_hand_and_a_gene_without_counts() {
        // Gene 0: y = (2, 0), sz = (1, 1): ll_sat = 2 ln 2, ll_null = 2 ln(2/2) = 0.
        // Gene 1: y = (1, 1): ll_sat = 0, ll_null = 2 ln(2/2) = 0: a flat gene.
        let x = m(2, 2, &[2.0, 1.0, 0.0, 1.0]);
        let d = poisson_deviance(&x, &[1.0, 1.0]).unwrap();
        assert!((d[0] - 4.0 * 2f64.ln()).abs() < 1e-12, "{d:?}");
        assert!(d[1].abs() < 1e-12, "{d:?}");
        assert_eq!(top_genes(&d, 1), vec![0]);
        let e = poisson_deviance(&m(2, 2, &[1.0, 0.0, 2.0, 0.0]), &[1.0, 1.0]).unwrap_err();
        assert!(e.contains("gene 1 has no counts"), "{e}");
    }

    #[test]
    fn coordinates_fill_a_box_of_side_four_about_the_origin() {
        // A 2 x 1 rectangle: extents' geometric mean √2, so the sides become
        // 4√2 and 2√2; y flipped.
        let xy = [10.0, 5.0, 12.0, 5.0, 10.0, 6.0, 12.0, 6.0];
        let r = rescale_coords(&xy, true);
        let s = 4.0 / 2f64.sqrt();
        let want = [-s, s / 2.0, s, s / 2.0, -s, -s / 2.0, s, -s / 2.0];
        for (a, b) in r.iter().zip(want) {
            assert!((a - b).abs() < 1e-12, "{r:?}");
        }
        assert_eq!(rescale_coords(&[3.0, 4.0], false), vec![0.0, 0.0]);
    }

    #[test]
    fn the_split_rounds_as_python_does() {
        assert_eq!(split(1296, 5.0), (0..1231, 1231..1296));
        assert_eq!(split(2898, 5.0), (0..2753, 2753..2898));
        // 0.95 · 10 = 9.5 rounds to the even 10 (Python's round), and
        // 0.95 · 30 = 28.5 to 28.
        assert_eq!(split(10, 5.0).0, 0..10);
        assert_eq!(split(30, 5.0), (0..28, 28..30));
        assert_eq!(split(0, 5.0), (0..0, 0..0));
    }
}
