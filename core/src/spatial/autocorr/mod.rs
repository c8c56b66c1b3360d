//! Spatial autocorrelation of features (squidpy's `spatial_autocorr`):
//! Moran's I and Geary's C on the neighbour graph, row-normalised by
//! default, with the analytic variance under normality, optional
//! permutation p-values (the weight rows are shuffled), and
//! Benjamini–Hochberg corrected p-values.

pub mod analysis;

use super::Graph;
use crate::compute::special::norm_cdf;
use crate::models::numpy_rng::LegacyNormal;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Moran,
    Geary,
}

impl Mode {
    pub fn column(self) -> &'static str {
        match self {
            Mode::Moran => "I",
            Mode::Geary => "C",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    pub mode: Mode,
    /// Row-normalise the weights (L1).
    pub transformation: bool,
    /// 0 = no permutation test.
    pub n_perms: usize,
    pub two_tailed: bool,
    pub seed: u32,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            mode: Mode::Moran,
            transformation: true,
            n_perms: 0,
            two_tailed: false,
            seed: 0,
        }
    }
}

/// One feature's statistics; the permutation fields are NaN without permutations.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub name: String,
    pub score: f64,
    pub pval_norm: f64,
    pub var_norm: f64,
    pub pval_z_sim: f64,
    pub pval_sim: f64,
    pub var_sim: f64,
    pub pval_norm_fdr_bh: f64,
    pub pval_z_sim_fdr_bh: f64,
    pub pval_sim_fdr_bh: f64,
}

/// A feature with its deviations from the mean and their sum of squares,
/// computed once for the statistic and all its permutations.
struct Centred<'a> {
    x: &'a [f64],
    z: Vec<f64>,
    ss: f64,
}

impl<'a> Centred<'a> {
    fn new(x: &'a [f64]) -> Centred<'a> {
        let mean = x.iter().sum::<f64>() / x.len() as f64;
        let z: Vec<f64> = x.iter().map(|v| v - mean).collect();
        let ss = z.iter().map(|v| v * v).sum();
        Centred { x, z, ss }
    }
}

/// Sparse weights in CSR form, after the optional row normalisation.
struct Weights {
    indptr: Vec<usize>,
    indices: Vec<u32>,
    w: Vec<f64>,
    s0: f64,
    s1: f64,
    s2: f64,
}

impl Weights {
    fn new(graph: &Graph, transformation: bool) -> Weights {
        let mut w = vec![1.0; graph.n_edges()];
        if transformation {
            for i in 0..graph.n {
                let span = graph.indptr[i]..graph.indptr[i + 1];
                let deg = span.len() as f64;
                for v in &mut w[span] {
                    *v /= deg;
                }
            }
        }
        let n = graph.n;
        let s0: f64 = w.iter().sum();
        // S1 = ½ Σ (w_ij + w_ji)²; S2 = Σ_i (w_i· + w_·i)².
        let mut pair = std::collections::HashMap::new();
        let (mut rows, mut cols) = (vec![0.0; n], vec![0.0; n]);
        for (i, row) in rows.iter_mut().enumerate() {
            let span = graph.indptr[i]..graph.indptr[i + 1];
            for (&j, &we) in graph.indices[span.clone()].iter().zip(&w[span]) {
                let j = j as usize;
                *pair.entry((i.min(j), i.max(j))).or_insert(0.0) += we;
                *row += we;
                cols[j] += we;
            }
        }
        let s1 = pair
            .iter()
            .map(|(&(i, j), &v): (&(usize, usize), &f64)| if i == j { 2.0 * v * v } else { v * v })
            .sum::<f64>();
        let s2 = rows.iter().zip(&cols).map(|(r, c)| (r + c).powi(2)).sum();
        Weights {
            indptr: graph.indptr.clone(),
            indices: graph.indices.clone(),
            w,
            s0,
            s1,
            s2,
        }
    }

    /// The statistic with row i of W taken from row `rows[i]`.
    fn score(&self, mode: Mode, f: &Centred, rows: Option<&[usize]>) -> f64 {
        let (x, z, ss) = (f.x, &f.z, f.ss);
        let n = x.len();
        let mut num = 0.0;
        for i in 0..n {
            let r = rows.map_or(i, |p| p[i]);
            for e in self.indptr[r]..self.indptr[r + 1] {
                let j = self.indices[e] as usize;
                num += self.w[e]
                    * match mode {
                        Mode::Moran => z[i] * z[j],
                        Mode::Geary => (x[i] - x[j]).powi(2),
                    };
            }
        }
        let nf = n as f64;
        match mode {
            Mode::Moran => nf / self.s0 * num / ss,
            Mode::Geary => (nf - 1.0) * num / (2.0 * self.s0 * ss),
        }
    }

    fn expected(&self, mode: Mode, n: f64) -> f64 {
        match mode {
            Mode::Moran => -1.0 / (n - 1.0),
            Mode::Geary => 1.0,
        }
    }

    fn variance(&self, mode: Mode, n: f64) -> f64 {
        let s02 = self.s0 * self.s0;
        match mode {
            Mode::Moran => {
                (n * n * self.s1 - n * self.s2 + 3.0 * s02) / ((n - 1.0) * (n + 1.0) * s02)
                    - (1.0 / (n - 1.0)).powi(2)
            }
            Mode::Geary => {
                ((2.0 * self.s1 + self.s2) * (n - 1.0) - 4.0 * s02) / (2.0 * (n + 1.0) * s02)
            }
        }
    }
}

/// The smaller normal tail of z (doubled when two-tailed).
fn tail(z: f64, two_tailed: bool) -> f64 {
    let p = if z > 0.0 {
        1.0 - norm_cdf(z)
    } else {
        norm_cdf(z)
    };
    if two_tailed {
        2.0 * p
    } else {
        p
    }
}

/// Statistics of each feature in `features` (name, n values), sorted like
/// squidpy: Moran's I descending, Geary's C ascending.
pub fn run(
    graph: &Graph,
    features: &[(String, Vec<f64>)],
    opts: &Options,
    mut progress: impl FnMut(usize),
) -> Result<Vec<Row>, String> {
    if graph.n < 3 {
        return Err(format!(
            "spatial autocorrelation needs at least 3 cells, got {}",
            graph.n
        ));
    }
    if graph.n_edges() == 0 {
        return Err("the neighbour graph has no edges".into());
    }
    if let Some((name, v)) = features.iter().find(|f| f.1.len() != graph.n) {
        return Err(format!(
            "feature '{name}' has {} values for {} cells",
            v.len(),
            graph.n
        ));
    }
    let w = Weights::new(graph, opts.transformation);
    let n = graph.n as f64;
    let (expected, var_norm) = (w.expected(opts.mode, n), w.variance(opts.mode, n));
    let mut rng = LegacyNormal::new(opts.seed);
    let mut rows = Vec::with_capacity(features.len());
    for (f, (name, x)) in features.iter().enumerate() {
        let centred = Centred::new(x);
        let score = w.score(opts.mode, &centred, None);
        let pval_norm = tail((score - expected) / var_norm.sqrt(), opts.two_tailed);
        let (mut pval_z_sim, mut pval_sim, mut var_sim) = (f64::NAN, f64::NAN, f64::NAN);
        if opts.n_perms > 0 {
            let mut order: Vec<usize> = (0..graph.n).collect();
            let sims: Vec<f64> = (0..opts.n_perms)
                .map(|_| {
                    rng.shuffle(&mut order);
                    w.score(opts.mode, &centred, Some(&order))
                })
                .collect();
            let np = opts.n_perms as f64;
            let larger = sims.iter().filter(|&&s| s >= score).count() as f64;
            pval_sim = (larger.min(np - larger) + 1.0) / (np + 1.0);
            let mean = sims.iter().sum::<f64>() / np;
            var_sim = sims.iter().map(|s| (s - mean).powi(2)).sum::<f64>() / np;
            pval_z_sim = tail((score - mean) / var_sim.sqrt(), false);
        }
        rows.push(Row {
            name: name.clone(),
            score,
            pval_norm,
            var_norm,
            pval_z_sim,
            pval_sim,
            var_sim,
            pval_norm_fdr_bh: f64::NAN,
            pval_z_sim_fdr_bh: f64::NAN,
            pval_sim_fdr_bh: f64::NAN,
        });
        progress(f + 1);
    }
    let adjust = |get: fn(&Row) -> f64| bh(&rows.iter().map(get).collect::<Vec<_>>());
    let (a, b, c) = (
        adjust(|r| r.pval_norm),
        adjust(|r| r.pval_z_sim),
        adjust(|r| r.pval_sim),
    );
    for (i, r) in rows.iter_mut().enumerate() {
        r.pval_norm_fdr_bh = a[i];
        r.pval_z_sim_fdr_bh = b[i];
        r.pval_sim_fdr_bh = c[i];
    }
    // Constant features (NaN statistic) go last, as pandas sorts them.
    let desc = opts.mode == Mode::Moran;
    rows.sort_by(|a, b| match (a.score.is_nan(), b.score.is_nan()) {
        (false, false) if desc => b.score.total_cmp(&a.score),
        (false, false) => a.score.total_cmp(&b.score),
        (x, y) => x.cmp(&y),
    });
    Ok(rows)
}

/// Benjamini–Hochberg adjusted p-values; NaN stays NaN and is not counted.
pub fn bh(p: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..p.len()).filter(|&i| !p[i].is_nan()).collect();
    idx.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
    let m = idx.len() as f64;
    let mut out = vec![f64::NAN; p.len()];
    let mut running = 1.0f64;
    for (rank, &i) in idx.iter().enumerate().rev() {
        running = running.min(p[i] * m / (rank + 1) as f64);
        out[i] = running.min(1.0);
    }
    out
}

/// The rows as squidpy's `uns['moranI']` / `uns['gearyC']` table.
pub fn to_csv(rows: &[Row], mode: Mode, with_perms: bool) -> String {
    let mut cols = vec![mode.column(), "pval_norm", "var_norm"];
    if with_perms {
        cols.extend(["pval_z_sim", "pval_sim", "var_sim"]);
    }
    cols.push("pval_norm_fdr_bh");
    if with_perms {
        cols.extend(["pval_z_sim_fdr_bh", "pval_sim_fdr_bh"]);
    }
    let mut out = format!(",{}\n", cols.join(","));
    for r in rows {
        let mut vals = vec![r.score, r.pval_norm, r.var_norm];
        if with_perms {
            vals.extend([r.pval_z_sim, r.pval_sim, r.var_sim]);
        }
        vals.push(r.pval_norm_fdr_bh);
        if with_perms {
            vals.extend([r.pval_z_sim_fdr_bh, r.pval_sim_fdr_bh]);
        }
        out.push_str(&crate::io::csv_field(&r.name));
        for v in vals {
            out.push(',');
            out.push_str(&super::number(v));
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spatial::graph::{build, Kind, Options as GraphOptions};

    #[test]
    fn gradients_correlate_checkerboards_anticorrelate_constants_go_last() {
        let pts: Vec<[f64; 2]> = (0..100)
            .map(|i| [(i % 10) as f64, (i / 10) as f64])
            .collect();
        let g = build(
            &pts,
            None,
            &GraphOptions {
                kind: Kind::Radius { r: 1.0 },
                percentile: None,
            },
        )
        .unwrap();
        let features = vec![
            ("flat".to_string(), vec![2.0; 100]),
            (
                "checker".to_string(),
                (0..100).map(|i| ((i % 10 + i / 10) % 2) as f64).collect(),
            ),
            (
                "gradient".to_string(),
                (0..100).map(|i| (i % 10) as f64).collect(),
            ),
        ];
        let opts = Options {
            n_perms: 99,
            ..Options::default()
        };
        let rows = run(&g, &features, &opts, |_| {}).unwrap();
        let names: Vec<&str> = rows.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["gradient", "checker", "flat"]);
        assert!(
            rows[0].score > 0.8 && rows[0].pval_norm < 1e-10 && rows[0].pval_sim <= 0.01 + 1e-12
        );
        assert!((rows[1].score + 1.0).abs() < 1e-12, "{}", rows[1].score);
        assert!(rows[2].score.is_nan() && rows[2].pval_norm_fdr_bh.is_nan());
        let geary = run(
            &g,
            &features,
            &Options {
                mode: Mode::Geary,
                ..opts
            },
            |_| {},
        )
        .unwrap();
        assert_eq!(geary[0].name, "gradient");
        assert!(geary[0].score < 0.2 && geary[1].score > 1.5);
        // BH by hand: sorted 0.01, 0.03, 0.04 of m = 3 -> 0.03, 0.04, 0.04.
        let adj = bh(&[0.01, 0.04, f64::NAN, 0.03]);
        assert!((adj[0] - 0.03).abs() < 1e-15 && (adj[1] - 0.04).abs() < 1e-15);
        assert!(adj[2].is_nan() && (adj[3] - 0.04).abs() < 1e-15);
    }
}
