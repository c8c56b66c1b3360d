//! Reference cell-type signatures for cell2location (spec §1a).
//!
//! `cluster_averages` is `cell2location.cluster_averages.compute_cluster_averages`:
//! the mean raw count of each gene over the cells of each label, labels in
//! sorted order (`np.unique`). It is also the NB regression model's starting
//! point (`use_average_as_initial`).

use crate::data::{Column, Dataset, Frame};
use crate::io::Error;
use crate::models::named::{self as labels_of, Named};

/// Genes x cell types, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Signatures {
    pub genes: Vec<String>,
    pub cell_types: Vec<String>,
    /// genes x cell types.
    pub values: Vec<f64>,
    /// Cells behind each cell type.
    pub n_cells: Vec<usize>,
}

impl Signatures {
    /// `inf_aver` as CSV: first column the gene, one column per cell type.
    pub fn to_csv(&self) -> String {
        let quote = |s: &str| {
            if s.contains([',', '"', '\n']) {
                format!("\"{}\"", s.replace('"', "\"\""))
            } else {
                s.to_string()
            }
        };
        let t = self.cell_types.len();
        let mut out = String::new();
        for c in &self.cell_types {
            out.push(',');
            out.push_str(&quote(c));
        }
        out.push('\n');
        for (g, name) in self.genes.iter().enumerate() {
            out.push_str(&quote(name));
            for j in 0..t {
                out.push_str(&format!(",{}", self.values[g * t + j]));
            }
            out.push('\n');
        }
        out
    }

    /// A var-indexed frame with columns `{prefix}{cell type}` (anndata varm).
    pub fn to_frame(&self, prefix: &str) -> Frame {
        let t = self.cell_types.len();
        let mut f = Frame::with_index(self.genes.clone());
        for (j, c) in self.cell_types.iter().enumerate() {
            f.set(
                &format!("{prefix}{c}"),
                Column::Float(
                    (0..self.genes.len())
                        .map(|g| self.values[g * t + j])
                        .collect(),
                ),
            );
        }
        f
    }
}

/// Mean raw counts per label (cells with a missing label are left out).
pub fn cluster_averages(reference: Named, labels_key: &str) -> Result<Signatures, Error> {
    let x = reference
        .data
        .x
        .as_ref()
        .ok_or_else(|| Error::new(reference.name, "X", "has no expression matrix"))?;
    let labels = labels_of::labels(reference, labels_key)?;
    let mut types = labels_of::unique(&labels);
    types.sort();
    if types.is_empty() {
        return Err(Error::new(
            reference.name,
            &format!("obs['{labels_key}']"),
            "has no labels (every value is missing)",
        ));
    }
    let (rows, g) = x.shape();
    let t = types.len();
    let of: std::collections::HashMap<&str, usize> = types
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), i))
        .collect();
    let mut sums = vec![0f64; g * t];
    let mut n_cells = vec![0usize; t];
    let all: Vec<usize> = (0..g).collect();
    // Row blocks keep the dense copy small for large references.
    for r0 in (0..rows).step_by(4096) {
        let r1 = (r0 + 4096).min(rows);
        let block = x
            .take_rows(&(r0..r1).collect::<Vec<_>>())
            .columns_dense(&all);
        for r in r0..r1 {
            let Some(&c) = of.get(labels[r].as_str()) else {
                continue;
            };
            n_cells[c] += 1;
            for (gi, &v) in block[(r - r0) * g..(r - r0 + 1) * g].iter().enumerate() {
                sums[gi * t + c] += v as f64;
            }
        }
    }
    let values = sums
        .iter()
        .enumerate()
        .map(|(i, &s)| s / n_cells[i % t] as f64)
        .collect();
    Ok(Signatures {
        genes: reference.data.var.index.clone(),
        cell_types: types,
        values,
        n_cells,
    })
}

/// The reference with its signatures in `varm`, ready to write as `sc.h5ad`.
pub fn with_signatures(reference: &Dataset, s: &Signatures, key: &str) -> Dataset {
    let mut d = reference.clone();
    d.varm.insert(
        key.into(),
        crate::data::Annotation::Frame(s.to_frame(&format!("{key}_"))),
    );
    d
}
