//! RESOLVI on a dataset, as the command line (and later the page) runs it:
//! the counts, batches, labels and coordinates read with named errors, the
//! model trained, and its results as the files `tessera resolvi` writes.

use super::model::{Config, Data, Model};
use super::prep;
use super::run::{self, History, Outputs, Progress};
use crate::compute::Device;
use crate::data::{dense, Annotation, Column, Dataset, Matrix};
use crate::io::{self, Error};
use crate::spatial::inputs::coords;

/// What a run takes beyond the model's defaults.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Options {
    pub batch_key: Option<String>,
    /// obs column of cell-type labels (semi-supervised), and the value that
    /// marks a cell as unlabelled.
    pub labels_key: Option<String>,
    pub unlabeled: String,
    pub config: Config,
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
}

/// A categorical obs column's codes and names.
fn categories(name: &str, ds: &Dataset, key: &str) -> Result<(Vec<String>, Vec<String>), Error> {
    let col = ds.obs.column(key).ok_or_else(|| {
        let have: Vec<&str> = ds.obs.columns.iter().map(|c| c.0.as_str()).collect();
        Error::new(
            name,
            &format!("obs['{key}']"),
            format!("no such column; obs has {}", have.join(", ")),
        )
    })?;
    let text: Vec<String> = (0..col.len()).map(|i| col.text(i)).collect();
    let mut names = text.clone();
    names.sort();
    names.dedup();
    Ok((text, names))
}

pub async fn fit<D: Device>(
    dev: &D,
    name: &str,
    ds: &Dataset,
    o: &Options,
    progress: Progress<'_>,
) -> Result<Fitted, Error> {
    let (key, x) = match ds.layers.get("counts") {
        Some(c) => ("layers['counts']", c),
        None => (
            "X",
            ds.x.as_ref().ok_or_else(|| {
                Error::new(name, "X", "RESOLVI needs counts in X or layers['counts']")
            })?,
        ),
    };
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
    let n = lib.len();
    let (batch, batch_names) = match &o.batch_key {
        Some(k) => {
            let (text, names) = categories(name, ds, k)?;
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
    let (labels, label_names) = match &o.labels_key {
        Some(k) => {
            let (text, mut names) = categories(name, ds, k)?;
            names.retain(|t| *t != o.unlabeled);
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
    let data = Data {
        x: &x,
        lib: &lib,
        nb: &nb,
        batch: &batch,
        n_batch: batch_names.len(),
        labels: labels.as_deref().map(|l| (l, label_names.len())),
        priors,
    };
    let mut model = Model::new(dev, o.config, &data);
    let history = run::train(dev, &mut model, &data, progress).await;
    let outputs = run::outputs(dev, &model, &data).await;
    let genes = ds.var.index.clone();
    Ok(Fitted {
        outputs,
        history,
        priors,
        scalars: model.scalars(),
        label_names,
        batch_names,
        obs_names: ds.obs.index.clone(),
        genes,
    })
}

pub const FRACTIONS: [&str; 3] = ["true_fraction", "diffused_fraction", "background_fraction"];

/// latent.csv, fractions.csv, predictions.csv (with labels),
/// elbo_history.csv, corrected.h5ad and summary.json.
pub fn files(
    f: &Fitted,
    ds: &Dataset,
    params: serde_json::Value,
    seconds: f64,
) -> Result<Vec<(String, Vec<u8>)>, Error> {
    let o = &f.outputs;
    let n = f.obs_names.len();
    let l = o.latent.len() / n.max(1);
    let g = f.genes.len();
    let mut out = vec![];
    let latent_cols: Vec<String> = (0..l).map(|j| format!("latent_{j}")).collect();
    out.push((
        "latent.csv".to_string(),
        io::table_csv("", &latent_cols, &f.obs_names, &o.latent).into_bytes(),
    ));
    let fr_cols: Vec<String> = FRACTIONS.iter().map(|s| s.to_string()).collect();
    out.push((
        "fractions.csv".to_string(),
        io::table_csv("", &fr_cols, &f.obs_names, &o.fractions).into_bytes(),
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

    let mut d = ds.clone();
    let bad = |e: String| Error::new("corrected.h5ad", "", e);
    d.layers.insert(
        "resolvi_corrected".into(),
        Matrix::Dense(dense(n, g, o.corrected.clone()).map_err(bad)?),
    );
    d.layers.insert(
        "resolvi_normalized".into(),
        Matrix::Dense(dense(n, g, o.normalized.clone()).map_err(bad)?),
    );
    let lat: Vec<f64> = o.latent.iter().map(|&v| v as f64).collect();
    d.obsm.insert(
        "X_resolVI".into(),
        Annotation::Array(dense(n, l, lat).map_err(bad)?),
    );
    for (j, key) in FRACTIONS.iter().enumerate() {
        let v = (0..n).map(|i| o.fractions[i * 3 + j] as f64).collect();
        d.obs.set(key, Column::Float(v));
    }
    if !predicted.is_empty() {
        d.obs
            .set("resolvi_predicted", Column::categorical_from(&predicted));
    }
    out.push(("corrected.h5ad".to_string(), io::h5ad_write::write(&d)?));
    let summary = serde_json::json!({
        "model": "RESOLVI",
        "cells": n,
        "genes": g,
        "epochs": f.history.loss.len(),
        "seconds": seconds,
        "final_elbo": f.history.loss.last(),
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
