//! The tutorial's two steps as runs that leave their files behind, shared by
//! the command line and the browser: reference signatures (`filter_genes`,
//! then the NB regression or per-cluster averages) and the spatial mapping.

use super::{abundance_csv, expected_per_cell_type, export, map, spot_qc_csv, Mapping, Options};
use crate::bundle::{Curve, Layer, Matrix, Plot, Results};
use crate::compute::Device;
use crate::data::{Column, Dataset};
use crate::io::{csv_field, h5ad_write, Error};
use crate::models::checkpoint::Kept;
use crate::models::named::Named;
use crate::models::regression::{self, nb::Train, Signatures, QC_BINS};
use crate::prep::filter::{self, FilterGenes};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// cell2location's `RegressionModel` (posterior means of μ_fg).
    Regression,
    /// Per-cluster mean counts (`compute_cluster_averages`).
    Average,
}

impl Method {
    pub fn parse(s: &str) -> Option<Method> {
        match s {
            "regression" => Some(Method::Regression),
            "average" => Some(Method::Average),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SignatureOptions {
    pub labels: String,
    pub method: Method,
    pub batch: Option<String>,
    pub covariates: Vec<String>,
    /// None keeps every gene.
    pub filter: Option<FilterGenes>,
    pub train: Train,
}

/// Signatures and the files that go with them.
pub struct SignatureRun {
    pub signatures: Signatures,
    /// `filter_genes.csv` (when filtered), `inf_aver.csv`, and for the
    /// regression `elbo_history.csv` and `qc_reconstruction.csv`.
    pub files: Vec<(String, Vec<u8>)>,
    /// `sc.h5ad`: the reference with its signatures in varm, kept as a
    /// dataset so the command line can stream it to disk.
    pub sc: Dataset,
    /// The regression's -ELBO per epoch (empty for averages).
    pub elbo: Vec<f64>,
    /// `plot_QC`'s histogram and its range (regression only).
    pub qc: Option<(Vec<u64>, f64)>,
    /// Genes kept by `filter_genes`, of how many.
    pub genes: (usize, usize),
    /// Where the regression did not run from start to end on its device.
    pub notes: Vec<String>,
}

fn elbo_csv(h: &[f64]) -> String {
    let mut s = String::from("epoch,elbo_train\n");
    for (e, v) in h.iter().enumerate() {
        s.push_str(&format!("{e},{v}\n"));
    }
    s
}

/// Reference signatures from raw counts labelled by `o.labels`.
pub async fn signatures<D: Device>(
    dev: &D,
    name: &str,
    mut reference: Dataset,
    o: &SignatureOptions,
    progress: &mut dyn FnMut(usize, usize, f64),
    kept: &mut Kept,
) -> Result<SignatureRun, Error> {
    let x = filter::check_x(name, &reference, filter::Need::Counts)?;
    let n0 = reference.n_vars();
    let mut files = Vec::new();
    if let Some(cutoffs) = o.filter {
        let f = filter::filter_genes(x, cutoffs);
        let mut report = String::from("gene,n_cells,nonz_mean,kept\n");
        for (g, gene) in reference.var.index.iter().enumerate() {
            report.push_str(&format!(
                "{},{},{},{}\n",
                csv_field(gene),
                f.n_cells[g],
                f.nonz_mean[g],
                if f.keep[g] { "True" } else { "False" }
            ));
        }
        files.push(("filter_genes.csv".to_string(), report.into_bytes()));
        let kept = f.kept();
        if kept.is_empty() {
            return Err(Error::new(
                name,
                "X",
                "filter_genes kept no gene; lower cell_count_cutoff / cell_percentage_cutoff2 or keep every gene",
            ));
        }
        filter::subset_genes(&mut reference, &kept);
        reference.var.set(
            "n_cells",
            Column::Int(kept.iter().map(|&g| f.n_cells[g] as i64).collect()),
        );
        reference.var.set(
            "nonz_mean",
            Column::Float(kept.iter().map(|&g| f.nonz_mean[g]).collect()),
        );
    }
    let genes = (reference.n_vars(), n0);
    let named = Named::new(name, &reference);
    let mut notes = vec![];
    let (signatures, sc, elbo, qc) = match o.method {
        Method::Average => {
            let s = regression::cluster_averages(named, &o.labels)?;
            let sc = regression::with_signatures(reference, &s, "cluster_averages");
            (s, sc, vec![], None)
        }
        Method::Regression => {
            let r = regression::regression(
                dev,
                named,
                &o.labels,
                o.batch.as_deref(),
                &o.covariates,
                &o.train,
                progress,
                kept,
            )
            .await?;
            notes.clone_from(&r.notes);
            let mut sc =
                regression::with_signatures(reference, &r.means, "means_per_cluster_mu_fg");
            for (key, v) in [("stds", &r.stds), ("q05", &r.q05), ("q95", &r.q95)] {
                let s = Signatures {
                    values: v.clone(),
                    ..r.means.clone()
                };
                let k = format!("{key}_per_cluster_mu_fg");
                sc.varm.insert(
                    k.clone(),
                    crate::data::Annotation::Frame(s.to_frame(&format!("{k}_"))),
                );
            }
            files.push((
                "elbo_history.csv".into(),
                elbo_csv(&r.elbo_history).into_bytes(),
            ));
            // plot_QC's data: one row per (observed bin, expected bin).
            files.push((
                "qc_reconstruction.csv".into(),
                regression::qc_csv(&r.qc_histogram, r.qc_max).into_bytes(),
            ));
            (
                r.means,
                sc,
                r.elbo_history,
                Some((r.qc_histogram, r.qc_max)),
            )
        }
    };
    files.push(("inf_aver.csv".into(), signatures.to_csv().into_bytes()));
    Ok(SignatureRun {
        signatures,
        files,
        sc,
        elbo,
        qc,
        genes,
        notes,
    })
}

/// A mapping and the files that go with it.
pub struct MapRun {
    pub mapping: Mapping,
    /// The spots as exported (`obsm['{means,stds,q05,q95}_cell_abundance_w_sf']`).
    pub exported: Dataset,
    /// `q05_cell_abundance_w_sf.csv` (first), `means_…`, `sp.h5ad`,
    /// `elbo_history.csv`, `qc_reconstruction.csv`, `spot_qc.csv`.
    pub files: Vec<(String, Vec<u8>)>,
    /// MT- genes removed (kept in obsm['MT']).
    pub mt_removed: usize,
}

/// Maps the signatures' cell types onto the spots of `sp` (raw counts).
/// `keep_mt` keeps mitochondrial genes (the tutorial removes them);
/// `expected` adds one layer per cell type (compute_expected_per_cell_type).
#[allow(clippy::too_many_arguments)]
pub async fn map_spots<D: Device>(
    dev: &D,
    name: &str,
    mut sp: Dataset,
    sig_name: &str,
    sig: &Signatures,
    opts: &Options,
    keep_mt: bool,
    expected: bool,
    progress: &mut dyn FnMut(usize, usize, f64),
    kept: &mut Kept,
) -> Result<MapRun, Error> {
    filter::check_x(name, &sp, filter::Need::Counts)?;
    let mt_removed = if keep_mt {
        0
    } else {
        filter::remove_mt_genes(&mut sp)
    };
    let mapping = map(
        dev,
        Named::new(name, &sp),
        sig_name,
        sig,
        opts,
        progress,
        kept,
    )
    .await?;
    let mut exported = export(&sp, &mapping);
    if expected {
        for (ct, layer) in expected_per_cell_type(&sp, &mapping, "q05") {
            exported.layers.insert(ct, layer);
        }
    }
    let files = vec![
        (
            "q05_cell_abundance_w_sf.csv".into(),
            abundance_csv(&mapping, "q05").into_bytes(),
        ),
        (
            "means_cell_abundance_w_sf.csv".into(),
            abundance_csv(&mapping, "means").into_bytes(),
        ),
        ("sp.h5ad".into(), h5ad_write::write(&exported)?),
        (
            "elbo_history.csv".into(),
            elbo_csv(&mapping.fit.elbo_history).into_bytes(),
        ),
        (
            "qc_reconstruction.csv".into(),
            regression::qc_csv(&mapping.qc_histogram, mapping.qc_max).into_bytes(),
        ),
        ("spot_qc.csv".into(), spot_qc_csv(&mapping).into_bytes()),
    ];
    Ok(MapRun {
        mapping,
        exported,
        files,
        mt_removed,
    })
}

/// `plot_QC`'s 2-D histogram as a plotted table: rows are log10(1 +
/// observed) bins from the top, columns log10(1 + expected) bins.
pub fn qc_matrix(name: &str, hist: &[u64], max: f64) -> Matrix {
    let step = max / QC_BINS as f64;
    let label = |i: usize| format!("{:.2}", i as f64 * step);
    let rows: Vec<usize> = (0..QC_BINS).rev().collect();
    Matrix {
        name: name.into(),
        rows: rows.iter().map(|&i| label(i)).collect(),
        cols: (0..QC_BINS).map(label).collect(),
        values: rows
            .iter()
            .flat_map(|&o| (0..QC_BINS).map(move |e| hist[o * QC_BINS + e] as f64))
            .collect(),
        plot: Plot::Histogram2d,
    }
}

/// The browser's results: abundances to colour the spots by (q05 first, as
/// the tutorial plots them), the -ELBO curves, the QC histograms, and every
/// file of both steps (the mapping's first; the reference's prefixed `ref_`
/// where the names meet).
pub fn results(
    sig: &SignatureRun,
    m: &MapRun,
    params: serde_json::Value,
) -> Result<Results, Error> {
    let map = &m.mapping;
    let xy = crate::bundle::points(&m.exported);
    let s = map.abundance();
    let layer = |name: &str, v: &[f64]| Layer {
        name: name.into(),
        columns: map.cell_types.clone(),
        values: v.iter().map(|&x| x as f32).collect(),
    };
    let mut curves = vec![Curve {
        name: "-ELBO per step (mapping)".into(),
        values: map.fit.elbo_history.clone(),
    }];
    if !sig.elbo.is_empty() {
        curves.push(Curve {
            name: "-ELBO per epoch (reference regression)".into(),
            values: sig.elbo.clone(),
        });
    }
    let mut matrices = vec![qc_matrix(
        "mapping QC: observed (rows) against expected (columns) counts, log10(1 + x)",
        &map.qc_histogram,
        map.qc_max,
    )];
    if let Some((h, max)) = &sig.qc {
        matrices.push(qc_matrix(
            "reference QC: observed (rows) against expected (columns) counts, log10(1 + x)",
            h,
            *max,
        ));
    }
    let mut files = m.files.clone();
    let sc = h5ad_write::write(&sig.sc)?;
    let named = sig
        .files
        .iter()
        .map(|(n, b)| (n.clone(), b.clone()))
        .chain([("sc.h5ad".to_string(), sc)]);
    for (n, b) in named {
        let taken = files.iter().any(|(f, _)| *f == n);
        files.push((if taken { format!("ref_{n}") } else { n }, b));
    }
    // A fit that moved to the CPU, or went on from a stopped run, says so.
    let notes = [&sig.notes[..], &map.notes].concat();
    if !notes.is_empty() {
        files.push(("notes.txt".into(), (notes.join("\n") + "\n").into_bytes()));
    }
    Ok(Results {
        analysis: <super::analysis::Cell2location as crate::analysis::Analysis>::NAME.into(),
        params,
        view: serde_json::Value::Null,
        names: map.spots.clone(),
        xy,
        layers: vec![
            layer("q05_cell_abundance_w_sf", &s.q05),
            layer("means_cell_abundance_w_sf", &s.means),
        ],
        curves,
        matrices,
        files,
        image: None,
    })
}
