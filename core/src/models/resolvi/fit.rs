//! RESOLVI on a dataset, as the command line (and later the page) runs it:
//! the counts, batches, labels and coordinates read with named errors, the
//! model trained, and its results as the files `tessera resolvi` writes.

use super::de;
use super::model::{Config, Data, Model, Saved};
use super::prep::{self, N_NEIGHBORS};
use super::run::{self, History, Outputs, Progress};
use crate::bundle::{Curve, Layer, Matrix as BundleMatrix, Plot, Results};
use crate::compute::cpu::Cpu;
use crate::compute::Device;
use crate::data::{dense, Annotation, Column, Dataset, Matrix};
use crate::io::{self, Error};
use crate::models::checkpoint::{Keeper, Kept, Resume};
use crate::prep::filter::subset_cells;
use crate::spatial::inputs::coords;
use std::borrow::Cow;

/// What a run takes beyond the model's defaults.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Options {
    pub batch_key: Option<String>,
    /// obs column of cell-type labels (semi-supervised), and the value that
    /// marks a cell as unlabelled.
    pub labels_key: Option<String>,
    pub unlabeled: String,
    /// Cells with fewer counts are left out first (scanpy's
    /// `filter_cells(min_counts=…)`); 0 keeps every cell, as scvi-tools.
    #[serde(default)]
    pub min_counts: f64,
    pub config: Config,
}

/// The dataset's cells with at least `o.min_counts` counts (all of them,
/// uncopied, when it is 0).
pub fn cells<'a>(name: &str, ds: &'a Dataset, o: &Options) -> Result<Cow<'a, Dataset>, Error> {
    if o.min_counts <= 0.0 {
        return Ok(Cow::Borrowed(ds));
    }
    let (key, x) = counts(name, ds)?;
    let sums = x.row_sums();
    let keep: Vec<usize> = (0..sums.len())
        .filter(|&i| sums[i] >= o.min_counts)
        .collect();
    if keep.len() <= N_NEIGHBORS {
        return Err(Error::new(
            name,
            key,
            format!(
                "{} of {} cells have at least {} counts; RESOLVI needs more than {N_NEIGHBORS}",
                keep.len(),
                sums.len(),
                o.min_counts
            ),
        ));
    }
    Ok(Cow::Owned(subset_cells(ds, &keep)))
}

/// The counts RESOLVI reads: layers['counts'] when present, else X.
fn counts<'a>(name: &str, ds: &'a Dataset) -> Result<(&'static str, &'a Matrix), Error> {
    match ds.layers.get("counts") {
        Some(c) => Ok(("layers['counts']", c)),
        None => Ok((
            "X",
            ds.x.as_ref().ok_or_else(|| {
                Error::new(name, "X", "RESOLVI needs counts in X or layers['counts']")
            })?,
        )),
    }
}

/// What `model.json` holds: the fit's data file, its options and weights.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct SavedFit {
    pub data: String,
    pub options: Options,
    pub saved: Saved,
}

/// Reads a `model.json` (a file from disk or a stranger: every size and
/// weight is checked before it is allocated or used).
pub fn read_model(source: &str, bytes: &[u8]) -> Result<SavedFit, Error> {
    let bad = |m: String| Error::new(source, "", m);
    let m: SavedFit =
        serde_json::from_slice(bytes).map_err(|e| bad(format!("not a RESOLVI model: {e}")))?;
    m.options
        .config
        .validate()
        .map_err(|e| bad(format!("options.config: {e}")))?;
    let s = &m.saved;
    if s.config != m.options.config {
        return Err(bad("saved.config differs from options.config".into()));
    }
    if s.genes == 0 || s.n_obs == 0 || s.n_batch == 0 {
        return Err(bad("the model has no genes, cells or batches".into()));
    }
    if s.weights.iter().flatten().any(|w| !w.is_finite())
        || s.scalars.iter().any(|v| !v.is_finite())
    {
        return Err(bad("the weights are not all finite numbers".into()));
    }
    Ok(m)
}

pub struct Fitted {
    pub outputs: Outputs,
    pub history: History,
    pub priors: prep::Priors,
    pub scalars: super::elbo::Scalars,
    pub label_names: Vec<String>,
    pub batch_names: Vec<String>,
    pub obs_names: Vec<String>,
    pub genes: Vec<String>,
    /// Leiden clusters and the UMAP of the latent space (scanpy's defaults,
    /// 15 neighbours), up to [`EMBED_MAX`] cells.
    pub clusters: Option<Vec<usize>>,
    pub umap: Option<Vec<[f64; 2]>>,
    /// What the user should know about the run (a move to the CPU).
    pub notes: Vec<String>,
}

/// The most cells the latent space is clustered and embedded for (the
/// neighbour search is exact, quadratic in the cells).
pub const EMBED_MAX: usize = 60_000;

/// The obs column of the latent space's Leiden clusters.
pub const LEIDEN_KEY: &str = "resolvi_leiden";

/// Leiden clusters and UMAP of the latent means (n × l).
async fn embed<D: Device>(
    dev: &D,
    latent: &[f32],
    n: usize,
    l: usize,
    seed: u64,
) -> (Vec<usize>, Vec<[f64; 2]>) {
    use crate::embed::{knn, leiden, umap};
    let nn = knn::knn(dev, latent, n, l, 15).await;
    let g = umap::connectivities(&nn);
    let seed = seed as u32;
    let clusters = leiden::leiden(
        &g,
        &leiden::Leiden {
            resolution: 1.0,
            seed,
        },
    );
    let layout = umap::layout(
        &g,
        &umap::Layout {
            seed,
            ..umap::Layout::default()
        },
    );
    (clusters, layout)
}

/// A categorical obs column's codes and names.
fn categories(name: &str, ds: &Dataset, key: &str) -> Result<(Vec<String>, Vec<String>), Error> {
    let col = crate::spatial::inputs::obs_column(name, ds, key)?;
    let text: Vec<String> = (0..col.len()).map(|i| col.text(i)).collect();
    let mut names = text.clone();
    names.sort();
    names.dedup();
    Ok((text, names))
}

/// A dataset read for RESOLVI: counts (CSR), libraries, neighbours,
/// batches, labels and the data-set priors.
pub struct Prepared {
    pub x: Matrix,
    pub lib: Vec<f64>,
    pub nb: prep::Neighbours,
    pub batch: Vec<u32>,
    pub batch_names: Vec<String>,
    pub labels: Option<Vec<Option<u32>>>,
    pub label_names: Vec<String>,
    pub priors: prep::Priors,
}

impl Prepared {
    pub fn data(&self) -> Data<'_> {
        Data {
            x: &self.x,
            lib: &self.lib,
            nb: &self.nb,
            batch: &self.batch,
            n_batch: self.batch_names.len(),
            labels: self.labels.as_deref().map(|l| (l, self.label_names.len())),
            priors: self.priors,
        }
    }
}

/// A categorical's missing value ("") or a float column's NaN, as text.
fn is_missing(t: &str) -> bool {
    t.is_empty() || t.eq_ignore_ascii_case("nan")
}

pub fn prepare(name: &str, ds: &Dataset, o: &Options) -> Result<Prepared, Error> {
    let (key, x) = counts(name, ds)?;
    if !x.check_values().is_counts() {
        return Err(Error::new(
            name,
            key,
            "RESOLVI needs raw counts (non-negative whole numbers)",
        ));
    }
    let x = x.to_csr();
    let lib = prep::libraries(name, key, &x, &ds.obs.index)?;
    let xy = coords(name, ds)?;
    if let Some(i) = xy
        .iter()
        .position(|p| !(p[0].is_finite() && p[1].is_finite()))
    {
        return Err(Error::new(
            name,
            "obsm['spatial']",
            format!("cell {} has no finite coordinates", ds.obs.index[i]),
        ));
    }
    let n = lib.len();
    let (batch, batch_names) = match &o.batch_key {
        Some(k) => {
            let (text, names) = categories(name, ds, k)?;
            let missing = text.iter().filter(|t| is_missing(t)).count();
            if missing > 0 {
                return Err(Error::new(
                    name,
                    &format!("obs['{k}']"),
                    format!("{missing} cells have no batch; give every cell one"),
                ));
            }
            let codes = text
                .iter()
                .map(|t| names.binary_search(t).expect("listed") as u32)
                .collect();
            (codes, names)
        }
        None => (vec![0u32; n], vec!["all".to_string()]),
    };
    let nb = prep::neighbours(name, &xy, &batch, &batch_names)?;
    let priors = prep::priors(&x, &lib, &nb);
    if priors.median_distance.is_nan() || priors.median_distance <= 0.0 {
        return Err(Error::new(
            name,
            "obsm['spatial']",
            "most cells share their coordinates with neighbours (the median neighbour distance is 0)",
        ));
    }
    let (labels, label_names) = match &o.labels_key {
        Some(k) => {
            let (text, mut names) = categories(name, ds, k)?;
            // Missing labels count as unlabelled, as the named value does.
            names.retain(|t| *t != o.unlabeled && !is_missing(t));
            if names.len() < 2 {
                return Err(Error::new(
                    name,
                    &format!("obs['{k}']"),
                    format!(
                        "semi-supervised RESOLVI needs at least two labels besides '{}'; found {}",
                        o.unlabeled,
                        names.len()
                    ),
                ));
            }
            let codes: Vec<Option<u32>> = text
                .iter()
                .map(|t| names.binary_search(t).ok().map(|c| c as u32))
                .collect();
            (Some(codes), names)
        }
        None => (None, vec![]),
    };
    Ok(Prepared {
        x,
        lib,
        nb,
        batch,
        batch_names,
        labels,
        label_names,
        priors,
    })
}

pub async fn fit<D: Device>(
    dev: &D,
    name: &str,
    ds: &Dataset,
    o: &Options,
    progress: Progress<'_>,
) -> Result<(Fitted, Saved), Error> {
    fit_kept(dev, name, ds, o, progress, &mut Kept::default()).await
}

/// [`fit`], starting from `kept.from` when given (a stopped run's last
/// checkpoint) and showing each checkpoint to `kept`.
pub async fn fit_kept<D: Device>(
    dev: &D,
    name: &str,
    ds: &Dataset,
    o: &Options,
    progress: Progress<'_>,
    kept: &mut Kept,
) -> Result<(Fitted, Saved), Error> {
    let p = prepare(name, ds, o)?;
    let data = p.data();
    let train = |e: String| Error::new(name, "training", e);
    // On a GPU that is lost or full mid-run, the fit goes on from its last
    // checkpoint on the CPU.
    let (mut keeper, from, note) = Keeper::start(kept, None);
    let mut notes: Vec<String> = note.into_iter().collect();
    let mut model = Model::new(dev, o.config, &data);
    let history = {
        let save = &mut keeper.sink();
        let resume = Resume { from, save };
        run::train(dev, &mut model, &data, &mut *progress, resume).await
    }
    .map_err(train)?;
    // The outputs and weights too are the GPU's only if it lasted through them.
    let on_gpu = if dev.lost().is_none() {
        let outputs = run::outputs(dev, &model, &data).await;
        let saved = model.save(dev).await;
        dev.lost()
            .is_none()
            .then(|| (history, outputs, model.scalars(), saved))
    } else {
        None
    };
    let (history, outputs, scalars, saved) = match on_gpu {
        Some(done) => done,
        None => {
            drop(model);
            let (from, note) = keeper.moved(&dev.lost().unwrap_or_default());
            let mut model = Model::new(&Cpu, o.config, &data);
            let save = &mut keeper.sink();
            let resume = Resume { from, save };
            let history = run::train(&Cpu, &mut model, &data, &mut *progress, resume)
                .await
                .map_err(train)?;
            let outputs = run::outputs(&Cpu, &model, &data).await;
            notes.push(note);
            (history, outputs, model.scalars(), model.save(&Cpu).await)
        }
    };
    if !history.loss.iter().all(|v| v.is_finite()) || !outputs.latent.iter().all(|v| v.is_finite())
    {
        return Err(Error::new(
            name,
            "",
            "the fit diverged (a non-finite loss or latent space); try another --seed or fewer --epochs",
        ));
    }
    // Graph work after a loss (or one during it) is the CPU's.
    let n = data.n_obs();
    let (clusters, umap) = if n > EMBED_MAX {
        (None, None)
    } else {
        let (l, seed) = (o.config.n_latent, o.config.seed);
        let mut got = None;
        if dev.lost().is_none() {
            let on_gpu = embed(dev, &outputs.latent, n, l, seed).await;
            got = dev.lost().is_none().then_some(on_gpu);
        }
        let (c, u) = match got {
            Some(done) => done,
            None => embed(&Cpu, &outputs.latent, n, l, seed).await,
        };
        (Some(c), Some(u))
    };
    // Unless the fit itself moved (its note starts with the reason).
    if let Some(why) = dev
        .lost()
        .filter(|w| !notes.iter().any(|n| n.starts_with(w)))
    {
        notes.push(format!("{why}: the rest of the run went on on the CPU"));
    }
    let fitted = Fitted {
        outputs,
        history,
        priors: p.priors,
        scalars,
        notes,
        label_names: p.label_names.clone(),
        batch_names: p.batch_names.clone(),
        obs_names: ds.obs.index.clone(),
        genes: ds.var.index.clone(),
        clusters,
        umap,
    };
    Ok((fitted, saved))
}

pub const FRACTIONS: [&str; 3] = ["true_fraction", "diffused_fraction", "background_fraction"];

/// latent.csv, fractions.csv, predictions.csv (with labels),
/// elbo_history.csv, corrected.h5ad and summary.json.
/// The input with RESOLVI's results as scvi-tools and scanpy name them:
/// layers resolvi_corrected, resolvi_own_counts and resolvi_normalized,
/// obsm X_resolVI and X_umap, obs fractions, resolvi_predicted and
/// resolvi_leiden.
pub fn annotated(f: &Fitted, ds: &Dataset, predicted: &[String]) -> Result<Dataset, Error> {
    let o = &f.outputs;
    let (n, g) = (f.obs_names.len(), f.genes.len());
    let l = o.latent.len() / n.max(1);
    let mut d = ds.clone();
    let bad = |e: String| Error::new("corrected.h5ad", "", e);
    for (key, v) in [
        ("resolvi_corrected", &o.corrected),
        ("resolvi_own_counts", &o.own_counts),
        ("resolvi_normalized", &o.normalized),
    ] {
        d.layers.insert(
            key.into(),
            Matrix::Dense(dense(n, g, v.clone()).map_err(bad)?),
        );
    }
    let lat: Vec<f64> = o.latent.iter().map(|&v| v as f64).collect();
    d.obsm.insert(
        "X_resolVI".into(),
        Annotation::Array(dense(n, l, lat).map_err(bad)?),
    );
    if let Some(u) = &f.umap {
        let flat = u.iter().flat_map(|p| *p).collect();
        d.obsm.insert(
            "X_umap".into(),
            Annotation::Array(dense(n, 2, flat).map_err(bad)?),
        );
    }
    for (j, key) in FRACTIONS.iter().enumerate() {
        let v = (0..n).map(|i| o.fractions[i * 3 + j] as f64).collect();
        d.obs.set(key, Column::Float(v));
    }
    if !predicted.is_empty() {
        d.obs
            .set("resolvi_predicted", Column::categorical_from(predicted));
    }
    if let Some(c) = &f.clusters {
        let names: Vec<String> = c.iter().map(|c| c.to_string()).collect();
        d.obs.set(LEIDEN_KEY, Column::categorical_from(&names));
    }
    Ok(d)
}

/// Genes shown raw and corrected on the page: the most counted.
const SHOWN_GENES: usize = 12;

/// Every file `tessera resolvi` writes (and the DE tables when asked), and
/// the page's layers: the three fractions, the predicted labels, the most
/// counted genes raw and corrected; the ELBO curve; the DE tables.
pub fn results(
    f: &Fitted,
    ds: &Dataset,
    params: serde_json::Value,
    seconds: Option<f64>,
    de: Option<&Differential>,
) -> Result<Results, Error> {
    let mut files = files(f, ds, params.clone(), seconds)?;
    let o = &f.outputs;
    let (n, g) = (f.obs_names.len(), f.genes.len());
    let mut layers: Vec<Layer> = FRACTIONS
        .iter()
        .enumerate()
        .map(|(j, key)| Layer {
            name: key.replace('_', " "),
            columns: vec![key.replace('_', " ")],
            values: (0..n).map(|i| o.fractions[i * 3 + j]).collect(),
        })
        .collect();
    if let Some(p) = &o.probabilities {
        layers.insert(
            0,
            Layer {
                name: "predicted cell type".into(),
                columns: f.label_names.clone(),
                values: p.clone(),
            },
        );
    }
    if let Some(c) = &f.clusters {
        let k = c.iter().max().map_or(0, |m| m + 1);
        let mut v = vec![0f32; n * k];
        for (i, &ci) in c.iter().enumerate() {
            v[i * k + ci] = 1.0;
        }
        layers.push(Layer {
            name: "latent clusters (Leiden)".into(),
            columns: (0..k).map(|j| format!("cluster {j}")).collect(),
            values: v,
        });
    }
    let x = ds.layers.get("counts").or(ds.x.as_ref());
    if let Some(x) = x {
        let totals = x.col_sums();
        let mut order: Vec<usize> = (0..g).collect();
        order.sort_by(|&a, &b| totals[b].total_cmp(&totals[a]));
        for &j in order.iter().take(SHOWN_GENES) {
            let raw: Vec<f32> = x.columns_dense(&[j]);
            layers.push(Layer {
                name: format!("{} raw", f.genes[j]),
                columns: vec![format!("{} counts", f.genes[j])],
                values: raw,
            });
            layers.push(Layer {
                name: format!("{} corrected", f.genes[j]),
                columns: vec![format!("{} corrected counts", f.genes[j])],
                values: (0..n).map(|i| o.corrected[i * g + j]).collect(),
            });
        }
    }
    let mut matrices = vec![];
    if let Some(d) = de {
        files.extend(differential_files(d, de::Change::default().fdr));
        let top: Vec<&de::Row> = d.expression.iter().take(30).collect();
        matrices.push(BundleMatrix {
            name: "differential expression: the 30 most probable genes (proba_de, lfc_mean)".into(),
            rows: top.iter().map(|r| r.feature.clone()).collect(),
            cols: vec!["proba_de".into(), "lfc_mean".into(), "bayes_factor".into()],
            values: top
                .iter()
                .flat_map(|r| [r.proba_de, r.lfc_mean, r.bayes_factor])
                .collect(),
            plot: Plot::Bars,
        });
        if let Some(nr) = &d.niche {
            matrices.push(BundleMatrix {
                name: "differential niche abundance (proba_de, lfc_mean)".into(),
                rows: nr.iter().map(|r| r.feature.clone()).collect(),
                cols: vec!["proba_de".into(), "lfc_mean".into(), "bayes_factor".into()],
                values: nr
                    .iter()
                    .flat_map(|r| [r.proba_de, r.lfc_mean, r.bayes_factor])
                    .collect(),
                plot: Plot::Bars,
            });
        }
    }
    let first = layers[0].name.clone();
    let view = crate::share::View {
        layer: Some(first),
        ..Default::default()
    };
    Ok(Results {
        analysis: <super::analysis::Resolvi as crate::analysis::Analysis>::NAME.into(),
        params,
        view: serde_json::to_value(view).expect("view serialises"),
        names: ds.obs.index.clone(),
        xy: coords("", ds)
            .map(|c| crate::spatial::inputs::flat(&c))
            .unwrap_or_else(|_| vec![0.0; 2 * n]),
        layers,
        curves: vec![Curve {
            name: "ELBO per epoch".into(),
            values: f.history.loss.iter().map(|v| -v).collect(),
        }],
        matrices,
        files,
        image: crate::bundle::tissue_image(ds),
    })
}

fn files(
    f: &Fitted,
    ds: &Dataset,
    params: serde_json::Value,
    seconds: Option<f64>,
) -> Result<Vec<(String, Vec<u8>)>, Error> {
    let o = &f.outputs;
    let n = f.obs_names.len();
    let l = o.latent.len() / n.max(1);
    let g = f.genes.len();
    let mut out = vec![];
    let fr_cols: Vec<String> = FRACTIONS.iter().map(|s| s.to_string()).collect();
    out.push((
        "fractions.csv".to_string(),
        io::table_csv("", &fr_cols, &f.obs_names, &o.fractions).into_bytes(),
    ));
    let latent_cols: Vec<String> = (0..l).map(|j| format!("latent_{j}")).collect();
    out.push((
        "latent.csv".to_string(),
        io::table_csv("", &latent_cols, &f.obs_names, &o.latent).into_bytes(),
    ));
    let mut predicted = vec![];
    if let Some(p) = &o.probabilities {
        let k = f.label_names.len();
        let mut csv = String::from("cell,predicted");
        for c in &f.label_names {
            csv.push(',');
            csv.push_str(&io::csv_field(c));
        }
        csv.push('\n');
        for (i, row) in p.chunks_exact(k).enumerate() {
            let best = (0..k).fold(0, |b, c| if row[c] > row[b] { c } else { b });
            predicted.push(f.label_names[best].clone());
            csv.push_str(&io::csv_field(&f.obs_names[i]));
            csv.push(',');
            csv.push_str(&io::csv_field(&f.label_names[best]));
            for v in row {
                csv.push_str(&format!(",{v}"));
            }
            csv.push('\n');
        }
        out.push(("predictions.csv".to_string(), csv.into_bytes()));
    }
    let mut hist = String::from("epoch,elbo_train,reconstruction_loss_train\n");
    for (e, (loss, rec)) in f
        .history
        .loss
        .iter()
        .zip(&f.history.reconstruction)
        .enumerate()
    {
        hist.push_str(&format!("{},{loss},{}\n", e + 1, -rec));
    }
    out.push(("elbo_history.csv".to_string(), hist.into_bytes()));

    let d = annotated(f, ds, &predicted)?;
    out.push(("corrected.h5ad".to_string(), io::h5ad_write::write(&d)?));
    let summary = serde_json::json!({
        "model": "RESOLVI",
        "cells": n,
        "genes": g,
        "epochs": f.history.loss.len(),
        "seconds": seconds,
        "mean_fractions": FRACTIONS.iter().enumerate().map(|(j, k)| {
            let m = (0..n).map(|i| f.outputs.fractions[i * 3 + j] as f64).sum::<f64>() / n.max(1) as f64;
            (k.to_string(), m)
        }).collect::<std::collections::BTreeMap<_, _>>(),
        "final_elbo": f.history.loss.last(),
        "notes": f.notes,
        "priors": f.priors,
        "scalars": {
            "sparsity_diffusion": f.scalars.sparsity,
            "true_proportion": f.scalars.alpha[0],
            "diffusion_proportion": f.scalars.alpha[1],
            "background_proportion": f.scalars.alpha[2],
            "diffuse_scale": f.scalars.kappa,
        },
        "batches": f.batch_names,
        "labels": f.label_names,
        "parameters": params,
    });
    out.push((
        "summary.json".to_string(),
        serde_json::to_vec_pretty(&summary).expect("json"),
    ));
    Ok(out)
}

/// Samples per group (scvi's n_samples_overall).
pub const DE_SAMPLES: usize = 5000;

/// The cells of two groups of an obs column: `group1`, and `group2` or
/// every other cell.
pub fn groups(
    name: &str,
    ds: &Dataset,
    key: &str,
    group1: &str,
    group2: Option<&str>,
) -> Result<(Vec<usize>, Vec<usize>), Error> {
    let (text, names) = categories(name, ds, key)?;
    let pick = |g: &str| -> Result<Vec<usize>, Error> {
        if !names.iter().any(|n| n == g) {
            return Err(Error::new(
                name,
                &format!("obs['{key}']"),
                format!("no cell is '{g}'; the values are {}", names.join(", ")),
            ));
        }
        Ok((0..text.len()).filter(|&i| text[i] == g).collect())
    };
    let a = pick(group1)?;
    let b = match group2 {
        Some(g) => pick(g)?,
        None => (0..text.len()).filter(|&i| text[i] != group1).collect(),
    };
    if b.is_empty() {
        return Err(Error::new(
            name,
            &format!("obs['{key}']"),
            format!("every cell is '{group1}': there is no second group"),
        ));
    }
    Ok((a, b))
}

/// Differential expression (and neighbour abundance, with labels) of two
/// groups: scvi's change mode on the decoder's expression and on the
/// neighbours' predicted composition.
pub struct Differential {
    pub expression: Vec<de::Row>,
    /// Per gene: raw_mean1/2, non_zeros_proportion1/2, raw_normalized_mean1/2.
    pub raw: Vec<[f64; 6]>,
    pub niche: Option<Vec<de::Row>>,
}

pub async fn differential<D: Device>(
    dev: &D,
    model: &Model<D>,
    p: &Prepared,
    genes: &[String],
    (c1, c2): (&[usize], &[usize]),
    change: &de::Change,
) -> Differential {
    let data = p.data();
    let g = genes.len();
    let stats = |cells: &[usize]| -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let (mut mean, mut nz, mut norm) = (vec![0.0; g], vec![0.0; g], vec![0.0; g]);
        for &r in cells {
            let scale = 1e4 / p.lib[r];
            p.x.for_row(r, |c, v| {
                mean[c] += v as f64;
                nz[c] += f64::from(u8::from(v != 0.0));
                norm[c] += v as f64 * scale;
            });
        }
        let n = cells.len() as f64;
        for v in [&mut mean, &mut nz, &mut norm] {
            v.iter_mut().for_each(|x| *x /= n);
        }
        (mean, nz, norm)
    };
    let (s1, s2) = (stats(c1), stats(c2));
    let raw: Vec<[f64; 6]> = (0..g)
        .map(|j| [s1.0[j], s2.0[j], s1.1[j], s2.1[j], s1.2[j], s2.2[j]])
        .collect();
    let seed = change.seed;
    let sample =
        |cells, niche, s| run::group_samples(dev, model, &data, cells, DE_SAMPLES, niche, s);
    let e1 = sample(c1, false, seed ^ 11).await.expect("expression");
    let e2 = sample(c2, false, seed ^ 12).await.expect("expression");
    let pc = change.pseudocounts.unwrap_or_else(|| {
        let absent = |m: &[f64]| {
            m.iter()
                .map(|&v| v < de::THRESHOLD_COUNTS)
                .collect::<Vec<_>>()
        };
        de::estimate_pseudocounts(&e1, &e2, g, &absent(&s1.0), &absent(&s2.0))
    });
    let expression = de::change(&e1, &e2, genes, pc, change);
    let niche = match (
        sample(c1, true, seed ^ 13).await,
        sample(c2, true, seed ^ 14).await,
    ) {
        (Some(a), Some(b)) => Some(de::change(
            &a,
            &b,
            &p.label_names,
            NICHE_PSEUDOCOUNTS,
            change,
        )),
        _ => None,
    };
    Differential {
        expression,
        raw,
        niche,
    }
}

/// differential_niche_abundance's pseudocount.
pub const NICHE_PSEUDOCOUNTS: f64 = 1e-3;

/// de.csv and, with labels, niche_abundance.csv.
pub fn differential_files(d: &Differential, fdr: f64) -> Vec<(String, Vec<u8>)> {
    let mut out = vec![(
        "de.csv".to_string(),
        de::csv(&d.expression, fdr, Some(&d.raw)).into_bytes(),
    )];
    if let Some(n) = &d.niche {
        out.push((
            "niche_abundance.csv".to_string(),
            de::csv(n, fdr, None).into_bytes(),
        ));
    }
    out
}
