//! Goodness of fit and interpretation as the paper's benchmark computes
//! them (`utils/misc.py`, `utils/postprocess.py`), so that a Tessera fit and
//! a published row are the same numbers.

/// Per-gene Poisson deviance of means `mu` for counts `y` (both n x g,
/// row-major) as `misc.poisson_deviance(y, mu, agg="mean")`: the finite
/// y log(y/μ) terms (those of non-zero counts) are averaged over the whole
/// matrix into one number c, and gene j's deviance is c + mean_i(μ_ij −
/// y_ij). (No factor 2, and c shared by all genes: this is what the
/// published `dev_*` columns hold; the textbook per-gene deviance differs.)
pub fn deviance_published(y: &[f64], mu: &[f64], genes: usize) -> Vec<f64> {
    assert_eq!(
        y.len(),
        mu.len(),
        "deviance_published: y and mu differ in size"
    );
    let n = y.len().checked_div(genes).unwrap_or(0);
    let (mut t, mut terms) = (0.0, 0usize);
    let mut rest = vec![0f64; genes];
    for (i, (&yv, &m)) in y.iter().zip(mu).enumerate() {
        let v = yv * (yv / m).ln();
        if v.is_finite() {
            t += v;
            terms += 1;
        }
        rest[i % genes] += m - yv;
    }
    let c = if terms > 0 {
        t / terms as f64
    } else {
        f64::NAN
    };
    rest.into_iter().map(|r| c + r / n as f64).collect()
}

/// `misc.reverse_normalization(transform=expm1, round_int=True)`: the
/// Gaussian models' n×g means on the normalised scale (`feature_means`
/// added back first when the data were centred) to counts, each row
/// rescaled to its observed `totals` and rounded, which is how the paper
/// scores those models with the Poisson deviance.
pub fn to_counts(mean: &mut [f64], genes: usize, feature_means: Option<&[f64]>, totals: &[f64]) {
    for (row, &t) in mean.chunks_exact_mut(genes.max(1)).zip(totals) {
        for (g, v) in row.iter_mut().enumerate() {
            *v = (*v + feature_means.map_or(0.0, |f| f[g])).exp_m1();
        }
        let s: f64 = row.iter().sum();
        // numpy rounds half to even.
        row.iter_mut()
            .for_each(|v| *v = (*v * t / s).round_ties_even());
    }
}

/// `misc.dev2ss`'s summary of per-gene deviances: mean, argmax, max, median.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct DevianceSummary {
    pub mean: f64,
    pub argmax: usize,
    pub max: f64,
    pub median: f64,
}

pub fn summarise(dev: &[f64]) -> DevianceSummary {
    let (mut argmax, mut max) = (0, f64::NEG_INFINITY);
    for (j, &d) in dev.iter().enumerate() {
        if d > max {
            (argmax, max) = (j, d);
        }
    }
    DevianceSummary {
        mean: dev.iter().sum::<f64>() / dev.len() as f64,
        argmax,
        max,
        median: super::prep::median(dev),
    }
}

/// Nonnegative factors and loadings rescaled so that they read as parts
/// (`postprocess.interpret_nonneg`).
#[derive(Debug, Clone, PartialEq)]
pub struct Interpreted {
    /// n x L, row-major.
    pub factors: Vec<f64>,
    /// g x L, row-major.
    pub loadings: Vec<f64>,
    /// Per gene (spatialDE mode) or per observation (LDA mode): the scale
    /// taken out when the rows were normalised.
    pub totals: Vec<f64>,
    /// Components by decreasing weight; `factors` and `loadings` are in
    /// this order.
    pub order: Vec<usize>,
}

/// `interpret_nonneg(factors, loadings, lda_mode)`, sorted. spatialDE mode
/// (`lda_mode` false, the paper's default): each factor's column sums to 1,
/// its scale moves into the loadings, whose rows are then normalised (the
/// totals per gene); components ordered by the normalised loadings' column
/// sums. LDA mode swaps the roles of factors and loadings.
pub fn interpret_nonneg(
    factors: &[f64],
    loadings: &[f64],
    components: usize,
    lda_mode: bool,
) -> Interpreted {
    let l = components;
    // The side normalised by columns, and the side that takes the scale.
    let (cols, rows) = if lda_mode {
        (loadings, factors)
    } else {
        (factors, loadings)
    };
    let col_sum = |m: &[f64]| {
        let mut s = vec![0f64; l];
        for r in m.chunks_exact(l.max(1)) {
            for (a, v) in s.iter_mut().zip(r) {
                *a += v;
            }
        }
        s
    };
    let cs = col_sum(cols);
    let cols: Vec<f64> = cols
        .iter()
        .enumerate()
        .map(|(i, v)| v / cs[i % l])
        .collect();
    let mut rows: Vec<f64> = rows
        .iter()
        .enumerate()
        .map(|(i, v)| v * cs[i % l])
        .collect();
    let mut totals = vec![];
    for r in rows.chunks_exact_mut(l.max(1)) {
        let t: f64 = r.iter().sum();
        r.iter_mut().for_each(|v| *v /= t);
        totals.push(t);
    }
    // Weighed after the rows are normalised, as the paper sorts.
    let weight = col_sum(&rows);
    let mut order: Vec<usize> = (0..l).collect();
    order.sort_by(|&a, &b| weight[b].total_cmp(&weight[a]));
    let permute = |m: &[f64]| -> Vec<f64> {
        m.chunks_exact(l.max(1))
            .flat_map(|r| order.iter().map(move |&k| r[k]))
            .collect()
    };
    let (cols, rows) = (permute(&cols), permute(&rows));
    let (factors, loadings) = if lda_mode { (rows, cols) } else { (cols, rows) };
    Interpreted {
        factors,
        loadings,
        totals,
        order,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn to_counts_undoes_centring_and_log1p_then_matches_totals() {
        // Row 0: means ln 2, ln 4 less feature means 0.5, 1: back to 1, 3,
        // total 8 → 2, 6. Row 1: back to 0.5, 1, total 7 → 2.33, 4.67 → 2, 5.
        let mut m = vec![
            2f64.ln() - 0.5,
            4f64.ln() - 1.0,
            1.5f64.ln() - 0.5,
            2f64.ln() - 1.0,
        ];
        to_counts(&mut m, 2, Some(&[0.5, 1.0]), &[8.0, 7.0]);
        assert_eq!(m, vec![2.0, 6.0, 2.0, 5.0]);
    }

    #[test]
    fn deviance_shares_one_log_term_over_the_matrix() {
        // y = [[2, 0], [1, 1]], μ = 1 everywhere: the finite terms are
        // 2 ln 2, 0, 0 (y = 0 gives NaN and is left out), so c = 2 ln 2 / 3;
        // mean(μ − y) is −0.5 for gene 0 and 0.5 for gene 1.
        let d = deviance_published(&[2.0, 0.0, 1.0, 1.0], &[1.0; 4], 2);
        let c = 2.0 * 2f64.ln() / 3.0;
        assert!(
            (d[0] - (c - 0.5)).abs() < 1e-15 && (d[1] - (c + 0.5)).abs() < 1e-15,
            "{d:?}"
        );
        let s = summarise(&d);
        assert_eq!((s.argmax, s.max), (1, d[1]));
        assert!((s.median - 0.5 * (d[0] + d[1])).abs() < 1e-15);
    }

    #[test]
    fn interpretation_moves_the_scale_and_sorts_by_weight() {
        // Two observations, three genes, two components.
        let f = [1.0, 2.0, 3.0, 2.0];
        let w = [1.0, 0.0, 0.0, 1.0, 2.0, 1.0];
        let r = interpret_nonneg(&f, &w, 2, false);
        // Factor sums 4 and 4: factors /4, loadings ×4, rows normalised:
        // column sums 5/3 and 4/3, so the order is unchanged.
        assert_eq!(r.order, vec![0, 1]);
        assert_eq!(r.factors, vec![0.25, 0.5, 0.75, 0.5]);
        assert_eq!(r.totals, vec![4.0, 4.0, 12.0]);
        assert_eq!(r.loadings, vec![1.0, 0.0, 0.0, 1.0, 8.0 / 12.0, 4.0 / 12.0]);
        // LDA mode: loadings' sums 3 and 2; factors ×(3, 2) = [[3, 4], [9, 4]],
        // weights 12 and 8; rows normalised by 7 and 13.
        let r = interpret_nonneg(&f, &w, 2, true);
        assert_eq!(r.totals, vec![7.0, 13.0]);
        assert_eq!(
            r.factors,
            vec![3.0 / 7.0, 4.0 / 7.0, 9.0 / 13.0, 4.0 / 13.0]
        );
        // A component with more weight comes first.
        let r = interpret_nonneg(&[1.0, 1.0], &[1.0, 5.0], 2, false);
        assert_eq!(r.order, vec![1, 0]);
        assert_eq!(r.loadings, vec![5.0 / 6.0, 1.0 / 6.0]);
    }
}
