//! Gene selection and raw-count checks for the count models (cell2location's
//! `filter_genes`, the tutorial's MT-gene removal, gene intersection).

use std::collections::HashMap;

use crate::data::{dense, Annotation, Dataset, Matrix};
use crate::io::Error;

/// `cell2location.utils.filtering.filter_genes` thresholds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FilterGenes {
    pub cell_count_cutoff: f64,
    pub cell_percentage_cutoff2: f64,
    pub nonz_mean_cutoff: f64,
}

impl Default for FilterGenes {
    /// The function's defaults (the lymph-node tutorial uses [`FilterGenes::TUTORIAL`]).
    fn default() -> Self {
        FilterGenes {
            cell_count_cutoff: 15.0,
            cell_percentage_cutoff2: 0.05,
            nonz_mean_cutoff: 1.12,
        }
    }
}

impl FilterGenes {
    pub const TUTORIAL: FilterGenes = FilterGenes {
        cell_count_cutoff: 5.0,
        cell_percentage_cutoff2: 0.03,
        nonz_mean_cutoff: 1.12,
    };
}

/// Per-gene statistics and the decision, as `var['n_cells']`, `var['nonz_mean']`.
#[derive(Debug, Clone, PartialEq)]
pub struct GeneFilter {
    pub n_cells: Vec<usize>,
    /// Mean over the cells that express the gene (NaN when none do).
    pub nonz_mean: Vec<f64>,
    pub keep: Vec<bool>,
}

impl GeneFilter {
    pub fn kept(&self) -> Vec<usize> {
        (0..self.keep.len()).filter(|&g| self.keep[g]).collect()
    }
}

/// Keeps gene g iff n_cells_g > N·cell_percentage_cutoff2, or n_cells_g >
/// cell_count_cutoff and nonz_mean_g > nonz_mean_cutoff — compared in log10
/// with strict inequalities, as the reference does.
pub fn filter_genes(x: &Matrix, f: FilterGenes) -> GeneFilter {
    let (rows, _) = x.shape();
    let n_cells = x.col_nonzero();
    let sums = x.col_sums();
    let nonz_mean: Vec<f64> = sums
        .iter()
        .zip(&n_cells)
        .map(|(&s, &n)| if n == 0 { f64::NAN } else { s / n as f64 })
        .collect();
    let c1 = f.cell_count_cutoff.log10();
    let c2 = (rows as f64 * f.cell_percentage_cutoff2).log10();
    let c3 = f.nonz_mean_cutoff.log10();
    let keep = n_cells
        .iter()
        .zip(&nonz_mean)
        .map(|(&n, &m)| {
            let ln = (n as f64).log10();
            ln > c2 || (ln > c1 && m.log10() > c3)
        })
        .collect();
    GeneFilter {
        n_cells,
        nonz_mean,
        keep,
    }
}

/// What a model needs of X.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Counts or normalised counts: finite and non-negative (Tangram).
    NonNegative,
    /// Raw counts: also whole numbers (cell2location, the count models).
    Counts,
}

/// X of `d` when it holds what `need` asks for, else a named error.
pub fn check_x<'a>(name: &str, d: &'a Dataset, need: Need) -> Result<&'a Matrix, Error> {
    let advice = match need {
        Need::NonNegative => "Tangram needs non-negative expression (counts or normalised counts, not scaled or centred data)",
        Need::Counts => "cell2location needs raw counts (use the raw layer or the unnormalised file)",
    };
    let x =
        d.x.as_ref()
            .ok_or_else(|| Error::new(name, "X", format!("has no expression matrix; {advice}")))?;
    let v = x.check_values();
    let what = if v.nan > 0 {
        format!("has {} NaN values", v.nan)
    } else if v.negative > 0 {
        format!("has {} negative values (minimum {})", v.negative, v.min)
    } else if v.non_integer > 0 && need == Need::Counts {
        format!(
            "has {} non-integer values (e.g. normalised or log data)",
            v.non_integer
        )
    } else {
        return Ok(x);
    };
    Err(Error::new(name, "X", format!("{what}; {advice}")))
}

/// The count models need raw counts: finite, non-negative whole numbers.
pub fn check_counts(name: &str, d: &Dataset) -> Result<(), Error> {
    check_x(name, d, Need::Counts).map(|_| ())
}

/// Drops mitochondrial genes (names starting `MT-`, any case) from X and
/// keeps their counts in `obsm['MT']`, as the tutorial does. Returns how many.
pub fn remove_mt_genes(d: &mut Dataset) -> usize {
    let Some(x) = &d.x else {
        return 0;
    };
    let (rows, cols) = x.shape();
    let is_mt: Vec<bool> = d
        .var
        .index
        .iter()
        .map(|g| g.to_ascii_uppercase().starts_with("MT-"))
        .collect();
    let mt: Vec<usize> = (0..cols).filter(|&c| is_mt[c]).collect();
    if mt.is_empty() {
        return 0;
    }
    let keep: Vec<usize> = (0..cols).filter(|&c| !is_mt[c]).collect();
    let counts = x.columns_dense(&mt);
    d.obsm.insert(
        "MT".into(),
        Annotation::Array(
            dense(rows, mt.len(), counts.iter().map(|&v| v as f64).collect())
                .expect("rows x cols values"),
        ),
    );
    subset_genes(d, &keep);
    mt.len()
}

/// Keeps the genes `cols` (in that order) in X, var and varm.
pub fn subset_genes(d: &mut Dataset, cols: &[usize]) {
    d.x = d.x.take().map(|x| x.into_columns(cols));
    d.var = d.var.take(cols);
    d.varm.clear();
    d.raw_x = None;
    d.layers.clear();
}

/// Keeps the cells `rows` (in that order) in X, raw X, layers, obs and
/// obsm.
pub fn subset_cells(d: &Dataset, rows: &[usize]) -> Dataset {
    let obsm = d
        .obsm
        .iter()
        .map(|(k, a)| {
            let a = match a {
                Annotation::Array(a) => Annotation::Array(a.select(ndarray::Axis(0), rows)),
                Annotation::Frame(f) => Annotation::Frame(f.take(rows)),
            };
            (k.clone(), a)
        })
        .collect();
    Dataset {
        x: d.x.as_ref().map(|x| x.take_rows(rows)),
        x_dtype: d.x_dtype.clone(),
        raw_x: d.raw_x.as_ref().map(|x| x.take_rows(rows)),
        layers: d
            .layers
            .iter()
            .map(|(k, m)| (k.clone(), m.take_rows(rows)))
            .collect(),
        obs: d.obs.take(rows),
        var: d.var.clone(),
        obsm,
        varm: d.varm.clone(),
        uns: d.uns.clone(),
    }
}

/// Genes of `a` that `b` also has (exact names, `a`'s order), as column pairs.
pub fn shared_genes(a: &Dataset, b: &Dataset) -> Vec<(usize, usize)> {
    let pos: HashMap<&str, usize> = b
        .var
        .index
        .iter()
        .enumerate()
        .map(|(i, g)| (g.as_str(), i))
        .collect();
    a.var
        .index
        .iter()
        .enumerate()
        .filter_map(|(i, g)| pos.get(g.as_str()).map(|&j| (i, j)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Frame;

    fn ds(rows: usize, cols: usize, data: Vec<f32>, genes: &[&str]) -> Dataset {
        Dataset {
            x: Some(Matrix::Dense(
                dense(rows, cols, data).expect("rows x cols values"),
            )),
            obs: Frame::with_index((0..rows).map(|i| format!("c{i}")).collect()),
            var: Frame::with_index(genes.iter().map(|s| s.to_string()).collect()),
            ..Dataset::default()
        }
    }

    #[test]
    fn filter_rule_is_the_references() {
        // 100 cells. g0: in 6 cells (> 5% of 100), kept by the percentage rule.
        // g1: in 5 cells (not > 5) with mean 3: dropped. g2: in 16 cells with
        // mean 1.0 (<= 1.12): but 16 > 5% of 100 → kept. g3: nowhere: dropped.
        let (rows, cols) = (100, 4);
        let mut x = vec![0f32; rows * cols];
        for r in 0..6 {
            x[r * cols] = 1.0;
        }
        for r in 0..5 {
            x[r * cols + 1] = 3.0;
        }
        for r in 0..16 {
            x[r * cols + 2] = 1.0;
        }
        let f = filter_genes(
            &Matrix::Dense(dense(rows, cols, x.clone()).expect("rows x cols values")),
            FilterGenes::default(),
        );
        assert_eq!(f.keep, vec![true, false, true, false]);
        assert_eq!(f.n_cells, vec![6, 5, 16, 0]);
        assert!(f.nonz_mean[3].is_nan());
        // With a 20% percentage cutoff only the count/mean rule is left: g2's
        // mean 1.0 fails it, g0's 6 cells do not exceed 15.
        let strict = FilterGenes {
            cell_percentage_cutoff2: 0.2,
            ..FilterGenes::default()
        };
        let f = filter_genes(
            &Matrix::Dense(dense(rows, cols, x).expect("rows x cols values")),
            strict,
        );
        assert_eq!(f.keep, vec![false, false, false, false]);
    }

    #[test]
    fn mt_genes_move_to_obsm_and_counts_are_checked() {
        let mut d = ds(
            2,
            3,
            vec![1., 2., 3., 4., 5., 6.],
            &["Actb", "MT-CO1", "mt-Nd1"],
        );
        assert!(check_counts("a.h5ad", &d).is_ok());
        assert_eq!(remove_mt_genes(&mut d), 2);
        assert_eq!(d.var.index, vec!["Actb"]);
        let Some(Annotation::Array(mt)) = d.obsm.get("MT") else {
            panic!("no obsm MT")
        };
        assert_eq!(mt.iter().copied().collect::<Vec<_>>(), vec![2., 3., 5., 6.]);
        let bad = ds(1, 2, vec![1.5, 2.0], &["a", "b"]);
        let e = check_counts("b.h5ad", &bad).unwrap_err().to_string();
        assert!(
            e.contains("b.h5ad: X:") && e.contains("1 non-integer") && e.contains("raw counts"),
            "{e}"
        );
        let neg = ds(1, 2, vec![-1.0, 2.0], &["a", "b"]);
        assert!(check_counts("c", &neg)
            .unwrap_err()
            .to_string()
            .contains("negative"));
    }

    #[test]
    fn shared_genes_keep_the_first_order() {
        let a = ds(1, 3, vec![0.; 3], &["x", "y", "z"]);
        let b = ds(1, 3, vec![0.; 3], &["z", "q", "x"]);
        assert_eq!(shared_genes(&a, &b), vec![(0, 2), (2, 0)]);
    }
}
