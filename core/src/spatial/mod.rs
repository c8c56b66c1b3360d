//! Spatial statistics of labelled cells, squidpy's `gr` module on the
//! Device-free CPU path: neighbour graphs, neighbourhood enrichment,
//! interaction counts, co-occurrence, centrality, spatial
//! autocorrelation, and the multi-omics method's niche composition and
//! co-localization score.

pub mod autocorr;
pub mod centrality;
pub mod cooccurrence;
pub mod graph;
pub mod inputs;
pub mod kdtree;
pub mod nhood;
pub mod niche;

pub use graph::{Graph, Kind, Options};

use crate::data::Column;

/// Cell-type labels as codes into sorted categories (how pandas orders a
/// categorical made from strings, and so squidpy's rows and columns).
#[derive(Debug, Clone, PartialEq)]
pub struct Labels {
    pub codes: Vec<u32>,
    pub categories: Vec<String>,
}

impl Labels {
    pub fn from_strings(labels: &[String]) -> Labels {
        let mut categories = labels.to_vec();
        categories.sort();
        categories.dedup();
        let codes = labels
            .iter()
            .map(|l| categories.binary_search(l).expect("present") as u32)
            .collect();
        Labels { codes, categories }
    }

    /// Labels from an obs column; `name` is used in the error for a missing value.
    pub fn from_column(name: &str, col: &Column) -> Result<Labels, String> {
        if let Column::Float(v) = col {
            if v.iter().any(|x| x.fract() != 0.0) {
                return Err(format!(
                    "obs column '{name}' holds non-integer numbers; expected cell-type labels"
                ));
            }
        }
        if let Column::Categorical { codes, .. } = col {
            if let Some(i) = codes.iter().position(|&c| c < 0) {
                return Err(format!(
                    "obs column '{name}' has a missing label at row {i} ({} missing in all); label every cell or drop those rows",
                    codes.iter().filter(|&&c| c < 0).count()
                ));
            }
        }
        let labels: Vec<String> = (0..col.len()).map(|i| col.text(i)).collect();
        Ok(Labels::from_strings(&labels))
    }

    pub fn n_types(&self) -> usize {
        self.categories.len()
    }

    /// Cells per category.
    pub fn counts(&self) -> Vec<usize> {
        let mut c = vec![0; self.n_types()];
        for &l in &self.codes {
            c[l as usize] += 1;
        }
        c
    }

    /// The rows in `rows`, with categories nobody keeps removed.
    pub fn take(&self, rows: &[usize]) -> Labels {
        let names: Vec<String> = rows
            .iter()
            .map(|&r| self.categories[self.codes[r] as usize].clone())
            .collect();
        Labels::from_strings(&names)
    }
}

/// A k x k table with category names on both axes, as a CSV with the
/// names as header and index (pandas' `to_csv`; NaN as an empty field).
pub fn square_csv(categories: &[String], values: &[f64]) -> String {
    let k = categories.len();
    let mut out = String::new();
    for c in categories {
        out.push(',');
        out.push_str(&crate::io::csv_field(c));
    }
    out.push('\n');
    for (a, name) in categories.iter().enumerate() {
        out.push_str(&crate::io::csv_field(name));
        for b in 0..k {
            out.push(',');
            out.push_str(&number(values[a * k + b]));
        }
        out.push('\n');
    }
    out
}

/// A float as pandas writes it: NaN empty, infinities as `inf`.
pub fn number(v: f64) -> String {
    if v.is_nan() {
        String::new()
    } else if v.is_infinite() {
        if v > 0.0 { "inf" } else { "-inf" }.to_string()
    } else {
        format!("{v}")
    }
}
