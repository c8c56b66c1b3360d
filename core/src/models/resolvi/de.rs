//! scvi-tools' "change" mode of differential testing on posterior samples
//! (`DifferentialComputation.get_bayes_factors` and `_de_core`), as RESOLVI
//! uses it for differential expression and for differential niche
//! abundance. Samples of each group's values (normalised expression or
//! neighbour composition) are paired at random; the log2 fold change of
//! each pair, with a pseudocount, gives P(|LFC| ≥ δ) per feature, its Bayes
//! factor and the LFC's summary; features are called at an expected false
//! discovery rate.

use crate::compute::philox;

/// scvi's defaults.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Change {
    pub delta: f64,
    pub fdr: f64,
    /// Random pairs of samples (m_permutation).
    pub pairs: usize,
    /// None: estimated from the features absent in a group.
    pub pseudocounts: Option<f64>,
    pub seed: u64,
}

impl Default for Change {
    fn default() -> Change {
        Change {
            delta: 0.25,
            fdr: 0.05,
            pairs: 10_000,
            pseudocounts: None,
            seed: 0,
        }
    }
}

/// One feature's statistics, in scvi's column order.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Row {
    pub feature: String,
    /// The feature's column in the samples.
    pub index: usize,
    pub proba_de: f64,
    pub proba_not_de: f64,
    pub bayes_factor: f64,
    pub scale1: f64,
    pub scale2: f64,
    pub pseudocounts: f64,
    pub delta: f64,
    pub lfc_mean: f64,
    pub lfc_median: f64,
    pub lfc_std: f64,
    pub lfc_min: f64,
    pub lfc_max: f64,
    pub is_de: bool,
}

/// Below this mean count a feature counts as absent from a group.
pub const THRESHOLD_COUNTS: f64 = 0.01;

/// The pseudocount scvi estimates: per group, the 0.9 quantile of the
/// largest sample value of the features the group does not express; the
/// larger of the two, at least 1e-5.
pub fn estimate_pseudocounts(
    s1: &[f32],
    s2: &[f32],
    f: usize,
    absent1: &[bool],
    absent2: &[bool],
) -> f64 {
    let eps = |s: &[f32], absent: &[bool]| -> f64 {
        let mut max = vec![f64::NEG_INFINITY; f];
        for row in s.chunks_exact(f) {
            for (m, &v) in max.iter_mut().zip(row) {
                *m = m.max(v as f64);
            }
        }
        let mut art: Vec<f64> = (0..f).filter(|&j| absent[j]).map(|j| max[j]).collect();
        if art.is_empty() {
            return 1e-5;
        }
        art.sort_by(f64::total_cmp);
        quantile(&art, 0.9)
    };
    eps(s1, absent1).max(eps(s2, absent2)).max(1e-5)
}

/// numpy's linear-interpolation quantile of sorted values.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// The change-mode test of samples s1 (n1 × f) against s2 (n2 × f),
/// sorted by proba_de, highest first.
pub fn change(
    s1: &[f32],
    s2: &[f32],
    features: &[String],
    pseudocounts: f64,
    c: &Change,
) -> Vec<Row> {
    let f = features.len();
    let (n1, n2) = (s1.len() / f, s2.len() / f);
    let mean = |s: &[f32], n: usize, j: usize| {
        s.chunks_exact(f).map(|r| r[j] as f64).sum::<f64>() / n as f64
    };
    let u: Vec<usize> = (0..c.pairs)
        .map(|i| ((philox::uniform(c.seed, 1, i) as f64 * n1 as f64) as usize).min(n1 - 1))
        .collect();
    let v: Vec<usize> = (0..c.pairs)
        .map(|i| ((philox::uniform(c.seed, 2, i) as f64 * n2 as f64) as usize).min(n2 - 1))
        .collect();
    let mut rows = Vec::with_capacity(f);
    let mut lfc = vec![0f64; c.pairs];
    for j in 0..f {
        let (mut plus, mut minus) = (0usize, 0usize);
        for (&a, &b) in u.iter().zip(&v) {
            let d = ((s1[a * f + j] as f64 + pseudocounts).log2())
                - ((s2[b * f + j] as f64 + pseudocounts).log2());
            plus += usize::from(d >= c.delta);
            minus += usize::from(d < -c.delta);
        }
        let (p1, p2) = (plus as f64 / c.pairs as f64, minus as f64 / c.pairs as f64);
        let proba = p1.max(p2);
        let sign = (p1 - p2).signum() * f64::from(p1 != p2);
        // The LFC's summary with a thousandth of the pseudocount.
        let small = 1e-3 * pseudocounts;
        for (k, (&a, &b)) in u.iter().zip(&v).enumerate() {
            lfc[k] =
                ((s1[a * f + j] as f64 + small).log2()) - ((s2[b * f + j] as f64 + small).log2());
        }
        let m = lfc.iter().sum::<f64>() / c.pairs as f64;
        let sd = (lfc.iter().map(|x| (x - m).powi(2)).sum::<f64>() / c.pairs as f64).sqrt();
        let mut sorted = lfc.clone();
        sorted.sort_by(f64::total_cmp);
        let eps = 1e-8;
        rows.push(Row {
            feature: features[j].clone(),
            index: j,
            proba_de: proba,
            proba_not_de: 1.0 - proba,
            bayes_factor: sign * ((proba + eps).ln() - (1.0 - proba + eps).ln()),
            scale1: mean(s1, n1, j),
            scale2: mean(s2, n2, j),
            pseudocounts,
            delta: c.delta,
            lfc_mean: m,
            lfc_median: quantile(&sorted, 0.5),
            lfc_std: sd,
            lfc_min: sorted[0],
            lfc_max: sorted[c.pairs - 1],
            is_de: false,
        });
    }
    rows.sort_by(|a, b| b.proba_de.total_cmp(&a.proba_de));
    // The largest set whose mean (1 − proba_de) stays within the target.
    let mut acc = 0.0;
    let mut called = 0;
    for (k, r) in rows.iter().enumerate() {
        acc += 1.0 - r.proba_de;
        if acc / (k + 1) as f64 <= c.fdr {
            called = k + 1;
        }
    }
    for r in rows.iter_mut().take(called) {
        r.is_de = true;
    }
    rows
}

/// The rows as scvi's DataFrame writes them, with the raw-count columns
/// when given (per feature: mean, share of non-zero cells, mean of counts
/// scaled to 10⁴ per cell, for each group).
pub fn csv(rows: &[Row], fdr: f64, raw: Option<&[[f64; 6]]>) -> String {
    let mut s = format!(
        ",proba_de,proba_not_de,bayes_factor,scale1,scale2,pseudocounts,delta,lfc_mean,lfc_median,lfc_std,lfc_min,lfc_max{},is_de_fdr_{fdr}\n",
        if raw.is_some() {
            ",raw_mean1,raw_mean2,non_zeros_proportion1,non_zeros_proportion2,raw_normalized_mean1,raw_normalized_mean2"
        } else {
            ""
        }
    );
    for r in rows {
        s.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{},{},{},{}",
            crate::io::csv_field(&r.feature),
            r.proba_de,
            r.proba_not_de,
            r.bayes_factor,
            r.scale1,
            r.scale2,
            r.pseudocounts,
            r.delta,
            r.lfc_mean,
            r.lfc_median,
            r.lfc_std,
            r.lfc_min,
            r.lfc_max
        ));
        if let Some(raw) = raw {
            for v in raw[r.index] {
                s.push_str(&format!(",{v}"));
            }
        }
        s.push_str(if r.is_de { ",True\n" } else { ",False\n" });
    }
    s
}
