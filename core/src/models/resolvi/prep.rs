//! RESOLVI's data preparation (`_prepare_data`,
//! `compute_dataset_dependent_priors`): each cell's 10 nearest neighbours
//! within its batch with their squared distances, and the priors the data
//! set: the background ratio, the median neighbour distance and the
//! log-library prior of the downsampling. scanpy finds the neighbours
//! approximately (pynndescent) on large data; here they are exact.

use crate::data::Matrix;
use crate::io::Error;
use crate::spatial::graph::percentile;
use crate::spatial::kdtree::KdTree;

/// Neighbours per cell (`n_neighbors`).
pub const N_NEIGHBORS: usize = 10;

/// N×K neighbour indices (into all cells) and squared distances, nearest
/// first.
#[derive(Debug, Clone, PartialEq)]
pub struct Neighbours {
    pub index: Vec<u32>,
    pub dist2: Vec<f32>,
}

/// The priors RESOLVI computes from the data.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Priors {
    /// Mean over cells of (mean count over the lowest-total genes) / (mean
    /// count over all genes): the background's expected share.
    pub background_ratio: f64,
    /// Median over cells of the 6th-nearest neighbour's squared distance.
    pub median_distance: f64,
    /// Median and standard deviation of log1p(library size).
    pub mean_log_counts: f64,
    pub std_log_counts: f64,
}

/// Each cell's library size; a cell without counts is a named error that
/// says how many there are and what to do (scvi-tools asserts instead).
pub fn libraries(name: &str, key: &str, x: &Matrix, obs: &[String]) -> Result<Vec<f64>, Error> {
    let lib = x.row_sums();
    let empty: Vec<usize> = (0..lib.len()).filter(|&i| lib[i] <= 0.0).collect();
    if let Some(&first) = empty.first() {
        return Err(Error::new(
            name,
            key,
            format!(
                "{} of {} cells have no counts (the first is {}): remove cells with fewer than 5 counts before ResolVI (tessera resolvi --min-counts 5, or Minimum counts on the page)",
                empty.len(),
                lib.len(),
                obs[first]
            ),
        ));
    }
    Ok(lib)
}

/// The `N_NEIGHBORS` nearest other cells of each cell within its batch
/// (`batch[i]` indexes `batch_names`).
pub fn neighbours(
    name: &str,
    xy: &[[f64; 2]],
    batch: &[u32],
    batch_names: &[String],
) -> Result<Neighbours, Error> {
    let n = xy.len();
    let k = N_NEIGHBORS;
    let (mut index, mut dist2) = (vec![0u32; n * k], vec![0f32; n * k]);
    for (b, bname) in batch_names.iter().enumerate() {
        let cells: Vec<usize> = (0..n).filter(|&i| batch[i] as usize == b).collect();
        if cells.is_empty() {
            continue;
        }
        if cells.len() <= k {
            return Err(Error::new(
                name,
                "batch",
                format!(
                    "batch {bname} has {} cells: ResolVI needs at least {} in each batch for {k} neighbours",
                    cells.len(),
                    k + 1
                ),
            ));
        }
        let pts: Vec<[f64; 2]> = cells.iter().map(|&i| xy[i]).collect();
        let tree = KdTree::new(&pts);
        for (local, &i) in cells.iter().enumerate() {
            let near = tree.nearest(pts[local], k, Some(local));
            for (slot, (j, d)) in near.into_iter().enumerate() {
                index[i * k + slot] = cells[j] as u32;
                dist2[i * k + slot] = (d * d) as f32;
            }
        }
    }
    Ok(Neighbours { index, dist2 })
}

/// `compute_dataset_dependent_priors` from the counts, their library sizes
/// and the neighbours. Fewer than 50 genes would leave no "lowest" genes
/// (NaN in scvi-tools): the lowest one is used then.
pub fn priors(x: &Matrix, lib: &[f64], nb: &Neighbours) -> Priors {
    let (n, g) = x.shape();
    let totals = x.col_sums();
    let mut order: Vec<usize> = (0..g).collect();
    order.sort_by(|&a, &b| totals[a].total_cmp(&totals[b]).then(a.cmp(&b)));
    let small = (g / 50).max(1);
    let mut is_small = vec![false; g];
    order[..small].iter().for_each(|&j| is_small[j] = true);
    let mut ratio = 0.0;
    for (i, &l) in lib.iter().enumerate() {
        let mut s = 0.0;
        x.for_row(i, |j, v| {
            if is_small[j] {
                s += v as f64;
            }
        });
        ratio += (s / small as f64) / (l / g as f64);
    }
    let sixth: Vec<f64> = nb
        .dist2
        .chunks_exact(N_NEIGHBORS)
        .map(|d| d[5] as f64)
        .collect();
    let loglib: Vec<f64> = lib.iter().map(|l| l.ln_1p()).collect();
    let mean = loglib.iter().sum::<f64>() / n as f64;
    let var = loglib.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64;
    Priors {
        background_ratio: ratio / n as f64,
        median_distance: percentile(&sixth, 50.0),
        mean_log_counts: percentile(&loglib, 50.0),
        std_log_counts: var.sqrt(),
    }
}
