//! Preprocessing like `tg.pp_adatas` and `adata_to_cluster_expression`:
//! genes expressed nowhere are dropped from each side, names are compared in
//! lower case (made unique the anndata way), training genes are the user's
//! list (or every gene) present in both, and the density priors come from
//! the spatial totals. Unlike the reference, the user's datasets are never
//! modified: the original gene names are kept for every output.

use std::collections::{HashMap, HashSet};

use crate::data::{var_names_make_unique, Dataset, Matrix};
use crate::io::Error;
pub use crate::models::named::{categories, labels, unique, Named};
use crate::prep::filter::{check_x, Need};

/// One side after filtering: X, and for each kept gene its column and the
/// lower-case unique name used for matching.
struct Side<'a> {
    x: &'a Matrix,
    /// Lower-case unique name -> column in X.
    by_name: HashMap<String, usize>,
    /// Kept columns in file order with their lower-case names.
    kept: Vec<(usize, String)>,
    nonzero: Vec<usize>,
}

fn side<'a>(d: Named<'a>) -> Result<Side<'a>, Error> {
    let x = check_x(d.name, d.data, Need::NonNegative)?;
    let nonzero = x.col_nonzero();
    let names = &d.data.var.index;
    // sc.pp.filter_genes(min_cells=1), then lower-case and make unique.
    let cols: Vec<usize> = (0..names.len()).filter(|&c| nonzero[c] > 0).collect();
    let mut lower: Vec<String> = cols.iter().map(|&c| names[c].to_lowercase()).collect();
    var_names_make_unique(&mut lower);
    let kept: Vec<(usize, String)> = cols.into_iter().zip(lower).collect();
    let by_name = kept.iter().map(|(c, n)| (n.clone(), *c)).collect();
    Ok(Side {
        x,
        by_name,
        kept,
        nonzero,
    })
}

/// Genes shared by both sides and the optimiser's inputs.
pub struct Prepared {
    /// Training genes as the single-cell data names them.
    pub genes: Vec<String>,
    pub sc_cols: Vec<usize>,
    pub sp_cols: Vec<usize>,
    /// Every shared gene (training or not), sorted by lower-case name:
    /// (single-cell name, sc column, sp column).
    pub overlap: Vec<(String, usize, usize)>,
    /// Training genes the user asked for that are missing on either side.
    pub missing: Vec<String>,
    pub n_cells: usize,
    pub n_spots: usize,
    /// Single cells x training genes, row-major.
    pub s: Vec<f32>,
    /// Spots x training genes, row-major.
    pub g: Vec<f32>,
    /// obs['rna_count_based_density']: each spot's share of all counts.
    pub rna_count_based: Vec<f64>,
    /// 1 − fraction of cells (spots) expressing each training gene.
    pub sparsity_sc: Vec<f64>,
    pub sparsity_sp: Vec<f64>,
    /// Cells (spots) expressing each gene of X, for every column: the
    /// projection and comparison reuse them instead of scanning X again.
    pub sc_nonzero: Vec<usize>,
    pub sp_nonzero: Vec<usize>,
}

pub fn prepare(sc: Named, sp: Named, genes: Option<&[String]>) -> Result<Prepared, Error> {
    let (a, b) = (side(sc)?, side(sp)?);
    let wanted: Option<HashSet<String>> =
        genes.map(|g| g.iter().map(|s| s.trim().to_lowercase()).collect());
    let mut chosen = Vec::new();
    for (c, lname) in &a.kept {
        if let Some(&spc) = b.by_name.get(lname) {
            if wanted.as_ref().is_none_or(|w| w.contains(lname)) {
                chosen.push((*c, spc));
            }
        }
    }
    let missing = match genes {
        Some(g) => g
            .iter()
            .filter(|n| {
                let l = n.trim().to_lowercase();
                !(a.by_name.contains_key(&l) && b.by_name.contains_key(&l))
            })
            .cloned()
            .collect(),
        None => vec![],
    };
    if chosen.is_empty() {
        let ex = |s: &Side, d: &Dataset| {
            s.kept
                .iter()
                .take(3)
                .map(|(c, _)| d.var.index[*c].clone())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let what = if genes.is_some() {
            "none of the requested training genes is expressed in both datasets"
        } else {
            "the datasets share no expressed genes"
        };
        return Err(Error::new(
            sc.name,
            "var_names",
            format!(
                "{what} (names compared case-insensitively): {} has e.g. {}, {} has e.g. {}",
                sc.name,
                ex(&a, sc.data),
                sp.name,
                ex(&b, sp.data)
            ),
        ));
    }
    let mut overlap: Vec<(String, String, usize, usize)> = a
        .kept
        .iter()
        .filter_map(|(c, l)| {
            b.by_name
                .get(l)
                .map(|&s| (l.clone(), sc.data.var.index[*c].clone(), *c, s))
        })
        .collect();
    overlap.sort();
    let sc_cols: Vec<usize> = chosen.iter().map(|c| c.0).collect();
    let sp_cols: Vec<usize> = chosen.iter().map(|c| c.1).collect();
    let (n_cells, n_spots) = (a.x.shape().0, b.x.shape().0);
    if n_cells == 0 || n_spots == 0 {
        let which = if n_cells == 0 { sc } else { sp };
        return Err(Error::new(which.name, "X", "has no observations"));
    }
    let totals = b.x.row_sums();
    let total: f64 = totals.iter().sum();
    if total <= 0.0 {
        return Err(Error::new(
            sp.name,
            "X",
            "all spots have zero counts; the rna_count_based density prior is undefined (use --density uniform)",
        ));
    }
    Ok(Prepared {
        genes: sc_cols
            .iter()
            .map(|&c| sc.data.var.index[c].clone())
            .collect(),
        s: a.x.columns_dense(&sc_cols),
        g: b.x.columns_dense(&sp_cols),
        sparsity_sc: sc_cols
            .iter()
            .map(|&c| 1.0 - a.nonzero[c] as f64 / n_cells as f64)
            .collect(),
        sparsity_sp: sp_cols
            .iter()
            .map(|&c| 1.0 - b.nonzero[c] as f64 / n_spots as f64)
            .collect(),
        sc_cols,
        sp_cols,
        overlap: overlap.into_iter().map(|(_, n, c, s)| (n, c, s)).collect(),
        missing,
        n_cells,
        n_spots,
        rna_count_based: totals.iter().map(|t| t / total).collect(),
        sc_nonzero: a.nonzero,
        sp_nonzero: b.nonzero,
    })
}

/// Cluster-level profiles like `adata_to_cluster_expression`.
pub struct Clusters {
    /// Cluster names, most cells first (pandas `value_counts` order; ties by first appearance).
    pub names: Vec<String>,
    /// Each cell's cluster (None where the label is missing).
    pub of_cell: Vec<Option<usize>>,
    /// Fraction of labelled cells in each cluster (`cluster_density`).
    pub density: Vec<f64>,
}

pub fn clusters(labels: &[String], categories: Option<&[String]>) -> Clusters {
    // Ties keep pandas' order: category order for a categorical, else first appearance.
    let first = match categories {
        Some(cats) => {
            let present: HashSet<&str> = labels.iter().map(|s| s.as_str()).collect();
            cats.iter()
                .filter(|c| present.contains(c.as_str()))
                .cloned()
                .collect()
        }
        None => unique(labels),
    };
    let mut count: HashMap<&str, usize> = HashMap::new();
    for l in labels.iter().filter(|l| !l.is_empty()) {
        *count.entry(l.as_str()).or_default() += 1;
    }
    let mut names = first.clone();
    names.sort_by_key(|n| std::cmp::Reverse(count[n.as_str()]));
    let pos: HashMap<&str, usize> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), i))
        .collect();
    let labelled = count.values().sum::<usize>().max(1) as f64;
    Clusters {
        of_cell: labels
            .iter()
            .map(|l| pos.get(l.as_str()).copied())
            .collect(),
        density: names
            .iter()
            .map(|n| count[n.as_str()] as f64 / labelled)
            .collect(),
        names,
    }
}

/// Per-cluster sums (scale) or means of the rows of `x` (cells x k).
pub fn aggregate(c: &Clusters, x: &[f32], k: usize, scale: bool) -> Vec<f32> {
    let n = c.names.len();
    let mut acc = vec![0f64; n * k];
    let mut size = vec![0usize; n];
    for (i, cl) in c.of_cell.iter().enumerate() {
        if let Some(cl) = *cl {
            size[cl] += 1;
            for j in 0..k {
                acc[cl * k + j] += x[i * k + j] as f64;
            }
        }
    }
    acc.iter()
        .enumerate()
        .map(|(i, &v)| {
            if scale {
                v as f32
            } else {
                (v / size[i / k].max(1) as f64) as f32
            }
        })
        .collect()
}
