//! Reference cell-type signatures for cell2location (spec §1a).
//!
//! `cluster_averages` is `cell2location.cluster_averages.compute_cluster_averages`:
//! the mean raw count of each gene over the cells of each label, labels in
//! sorted order (`np.unique`). It is also the NB regression model's starting
//! point (`use_average_as_initial`).

pub mod nb;

use std::collections::HashMap;

use crate::compute::cpu::Cpu;
use crate::compute::Device;
use crate::data::{Column, Dataset, Frame, Matrix};
use crate::io::{csv_field, Error};
use crate::models::checkpoint::{Keeper, Kept, Resume};
use crate::models::named::{self as labels_of, Named};
use crate::prep::filter::{check_x, Need};

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
        let t = self.cell_types.len();
        let mut out = String::new();
        for c in &self.cell_types {
            out.push(',');
            out.push_str(&csv_field(c));
        }
        out.push('\n');
        for (g, name) in self.genes.iter().enumerate() {
            out.push_str(&csv_field(name));
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
    // CSC is read row by row after one conversion; CSR and dense in place.
    let csr;
    let x = if let Matrix::Csc(_) = x {
        csr = x.to_csr();
        &csr
    } else {
        x
    };
    let mut sums = vec![0f64; g * t];
    let mut n_cells = vec![0usize; t];
    for (r, label) in labels.iter().enumerate().take(rows) {
        let Some(&c) = of.get(label.as_str()) else {
            continue;
        };
        n_cells[c] += 1;
        x.for_row(r, |gi, v| sums[gi * t + c] += v as f64);
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

/// The reference with its signatures in `varm`, ready to write as `sc.h5ad`
/// (taken, not copied: a reference can be most of the memory in use).
pub fn with_signatures(reference: Dataset, s: &Signatures, key: &str) -> Dataset {
    let mut d = reference;
    d.varm.insert(
        key.into(),
        crate::data::Annotation::Frame(s.to_frame(&format!("{key}_"))),
    );
    d
}

/// Posterior summaries of the NB regression's μ_fg, genes x cell types each.
pub struct RegressionSignatures {
    pub means: Signatures,
    pub stds: Vec<f64>,
    pub q05: Vec<f64>,
    pub q95: Vec<f64>,
    pub elbo_history: Vec<f64>,
    pub batches: Vec<String>,
    pub detection_y_e: Vec<f64>,
    /// `plot_QC`'s data: counts of (observed, expected) pairs on a grid of
    /// log10(1 + value), `QC_BINS` x `QC_BINS` bins up to `qc_max`.
    pub qc_histogram: Vec<u64>,
    pub qc_max: f64,
    /// Where the fit did not run from start to end on its device.
    pub notes: Vec<String>,
}

pub const QC_BINS: usize = 50;

/// 2-D histogram of log10(1 + observed) against log10(1 + expected).
pub fn qc_histogram(pairs: impl Iterator<Item = (f64, f64)> + Clone) -> (Vec<u64>, f64) {
    qc_histogram_weighted(pairs.map(|(o, e)| (o, e, 1)))
}

/// [`qc_histogram`] of (observed, expected, how many such pairs).
pub fn qc_histogram_weighted(
    pairs: impl Iterator<Item = (f64, f64, u64)> + Clone,
) -> (Vec<u64>, f64) {
    let max = pairs
        .clone()
        .filter(|p| p.2 > 0)
        .map(|(o, e, _)| (1.0 + o).log10().max((1.0 + e).log10()))
        .fold(0.0f64, f64::max)
        .max(1e-9);
    let mut h = vec![0u64; QC_BINS * QC_BINS];
    let bin = |v: f64| (((1.0 + v).log10() / max * QC_BINS as f64) as usize).min(QC_BINS - 1);
    for (o, e, n) in pairs {
        h[bin(o) * QC_BINS + bin(e)] += n;
    }
    (h, max)
}

/// A QC histogram as CSV: one row per non-empty (observed, expected) bin.
pub fn qc_csv(hist: &[u64], max: f64) -> String {
    let step = max / QC_BINS as f64;
    let mut q = String::from("log10_observed_from,log10_expected_from,bin_width,count\n");
    for (i, &n) in hist.iter().enumerate() {
        if n > 0 {
            let (o, e) = ((i / QC_BINS) as f64 * step, (i % QC_BINS) as f64 * step);
            q.push_str(&format!("{o},{e},{step},{n}\n"));
        }
    }
    q
}

/// scvi's default epoch count for a reference of `cells` cells.
pub fn default_epochs(cells: usize) -> usize {
    ((20_000.0 / cells.max(1) as f64 * 1000.0).round() as usize).clamp(1, 1000)
}

/// The fit on `dev`; on a GPU that is lost or full mid-run it goes on from
/// its last checkpoint on the CPU.
async fn fit_on<D: Device>(
    dev: &D,
    data: &nb::RegressionData<'_>,
    name: &str,
    train: &nb::Train,
    progress: &mut dyn FnMut(usize, usize, f64),
    kept: &mut Kept,
    notes: &mut Vec<String>,
) -> Result<nb::RegressionFit, String> {
    let (mut keeper, from, note) = Keeper::start(kept, Some(name));
    notes.extend(note);
    let first = {
        let save = &mut keeper.sink();
        nb::fit(
            dev,
            data,
            train,
            &mut *progress,
            None,
            Resume { from, save },
        )
        .await
    };
    match dev.lost() {
        None => first,
        Some(why) => {
            let (from, note) = keeper.moved(&why);
            notes.push(note);
            let save = &mut keeper.sink();
            nb::fit(&Cpu, data, train, progress, None, Resume { from, save }).await
        }
    }
}

/// cell2location's `RegressionModel`: signatures as posterior means of μ_fg.
#[allow(clippy::too_many_arguments)]
pub async fn regression<D: Device>(
    dev: &D,
    reference: Named<'_>,
    labels_key: &str,
    batch_key: Option<&str>,
    covariate_keys: &[String],
    train: &nb::Train,
    progress: &mut dyn FnMut(usize, usize, f64),
    kept: &mut Kept,
) -> Result<RegressionSignatures, Error> {
    let x = check_x(reference.name, reference.data, Need::Counts)?;
    let avg = cluster_averages(reference, labels_key)?;
    let labels = labels_of::labels(reference, labels_key)?;
    let batch_labels = match batch_key {
        Some(k) => labels_of::labels(reference, k)?,
        None => vec!["0".to_string(); labels.len()],
    };
    let mut batches = labels_of::unique(&batch_labels);
    batches.sort();
    // Cells with a missing label or batch are left out.
    let keep: Vec<usize> = (0..labels.len())
        .filter(|&c| !labels[c].is_empty() && !batch_labels[c].is_empty())
        .collect();
    let pos = |v: &[String], s: &str| v.iter().position(|x| x == s).expect("known");
    let label: Vec<usize> = keep
        .iter()
        .map(|&c| pos(&avg.cell_types, &labels[c]))
        .collect();
    let batch: Vec<usize> = keep
        .iter()
        .map(|&c| pos(&batches, &batch_labels[c]))
        .collect();
    // Extra categorical covariates: every level of every key, one index each.
    let mut levels: Vec<Vec<usize>> = vec![vec![]; keep.len()];
    let mut n_levels = 0;
    for key in covariate_keys {
        let vals = labels_of::labels(reference, key)?;
        let mut names = labels_of::unique(&vals);
        names.sort();
        for (i, &c) in keep.iter().enumerate() {
            if let Some(p) = names.iter().position(|x| x == &vals[c]) {
                levels[i].push(n_levels + p);
            }
        }
        n_levels += names.len();
    }
    let g = avg.genes.len();
    let csr;
    let x = if let Matrix::Csc(_) = x {
        csr = x.to_csr();
        &csr
    } else {
        x
    };
    let t = avg.cell_types.len();
    // μ is labels x genes on the device; the averages are genes x labels.
    let init_mu: Vec<f32> = (0..t * g)
        .map(|i| avg.values[(i % g) * t + i / g] as f32)
        .collect();
    let data = nb::RegressionData {
        x,
        rows: &keep,
        genes: g,
        label: &label,
        n_labels: t,
        batch: &batch,
        n_batches: batches.len(),
        init_mu: &init_mu,
        levels: &levels,
        n_levels,
    };
    let name = nb::fit_name(&data);
    let training = |e: String| Error::new(reference.name, "training", e);
    let mut notes = vec![];
    let done = kept.finished(&name, |done| {
        let note = match &kept.after {
            None => format!(
                "the reference regression is the one a stopped run of the same inputs had finished ({} epochs)",
                done.epoch
            ),
            Some(why) => {
                format!("the reference regression had finished before {why}; its result stands")
            }
        };
        (note, nb::RegressionFit::from_checkpoint(done, &data, train.max_epochs))
    });
    let fit = match done {
        Some((note, fit)) => {
            notes.push(note);
            fit.map_err(training)?
        }
        None => {
            let fit = fit_on(dev, &data, &name, train, progress, kept, &mut notes)
                .await
                .map_err(training)?;
            kept.finish(fit.to_checkpoint(name));
            fit
        }
    };
    // The reconstruction QC at the posterior means. Expected counts depend
    // on a cell's label, batch and levels only: one per group and gene, and
    // each group's zeros are binned at once (the reference stays sparse).
    let mut group_of: HashMap<(usize, usize, &[usize]), usize> = HashMap::new();
    let mut keys = vec![];
    let group: Vec<usize> = (0..keep.len())
        .map(|c| {
            let key = (label[c], batch[c], levels[c].as_slice());
            *group_of.entry(key).or_insert_with(|| {
                keys.push(key);
                keys.len() - 1
            })
        })
        .collect();
    let k = keys.len();
    let expected: Vec<f64> = keys
        .iter()
        .flat_map(|&(lf, b, lv)| {
            let fit = &fit;
            (0..g).map(move |j| {
                let factor: f64 = if lv.is_empty() {
                    1.0
                } else {
                    lv.iter().map(|&t| fit.y_tg[t * g + j]).sum()
                };
                (fit.means[lf * g + j] + fit.s_eg[b * g + j]) * fit.detection_y_e[b] * factor
            })
        })
        .collect();
    let mut zeros = vec![0u64; k * g];
    for &gi in &group {
        for z in &mut zeros[gi * g..(gi + 1) * g] {
            *z += 1;
        }
    }
    for (c, &r) in keep.iter().enumerate() {
        // saturating: a non-canonical CSR may store one entry twice.
        x.for_row(r, |j, _| {
            let z = &mut zeros[group[c] * g + j];
            *z = z.saturating_sub(1);
        });
    }
    let (expected, group) = (&expected, &group);
    let stored = keep.iter().enumerate().flat_map(move |(c, &r)| {
        let mut row = vec![];
        x.for_row(r, |j, v| {
            row.push((v as f64, expected[group[c] * g + j], 1))
        });
        row
    });
    let (qc_histogram, qc_max) = qc_histogram_weighted(
        (0..k * g)
            .map(|i| (0.0, expected[i], zeros[i]))
            .chain(stored),
    );
    let to_genes_by_types =
        |v: &[f64]| -> Vec<f64> { (0..g * t).map(|i| v[(i % t) * g + i / t]).collect() };
    Ok(RegressionSignatures {
        means: Signatures {
            values: to_genes_by_types(&fit.means),
            ..avg
        },
        stds: to_genes_by_types(&fit.stds),
        q05: to_genes_by_types(&fit.q05),
        q95: to_genes_by_types(&fit.q95),
        elbo_history: fit.elbo_history,
        batches,
        detection_y_e: fit.detection_y_e,
        qc_histogram,
        qc_max,
        notes,
    })
}
