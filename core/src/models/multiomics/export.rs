//! What a multi-omics run leaves behind: the preprint's files (labels,
//! factors, niches, co-localization, the factor matrices) for the command
//! line, and the same files plus an AnnData and the plots for the browser.

use std::collections::BTreeMap;

use super::Output;
use crate::bundle::{Layer, Matrix, Plot, Results};
use crate::data::{dense, Annotation, Column, Dataset, Frame, Value};
use crate::io::{csv_field, list_csv, npy, Error};
use crate::spatial::inputs::onehot;
use crate::spatial::niche;
use crate::spatial::niche::analysis::{colocalization_matrix, niche_dots};

/// The factor's column name: its number and the type it was named after.
fn factor_name(out: &Output, f: usize) -> String {
    format!("F{} {}", f + 1, out.factors[f].cell_type)
}

fn shared_labels_csv(out: &Output) -> String {
    let mut s = String::from("cell_id,x,y,cell_type,factor,score\n");
    for (i, id) in out.ids.iter().enumerate() {
        let (f, score) = out.cells[i];
        s.push_str(&format!(
            "{},{},{},{},{},{score:.4}\n",
            csv_field(id),
            out.coords[i][0],
            out.coords[i][1],
            csv_field(&out.factors[f].cell_type),
            f + 1
        ));
    }
    s
}

fn factors_csv(out: &Output) -> String {
    let mut s = String::from("factor,cell_type,score,n_cells,top_genes,top_proteins\n");
    for (f, l) in out.factors.iter().enumerate() {
        let n = out.cells.iter().filter(|c| c.0 == f).count();
        s.push_str(&format!(
            "{},{},{:.4},{n},{},{}\n",
            f + 1,
            csv_field(&l.cell_type),
            l.score,
            csv_field(&l.top_genes.join(";")),
            csv_field(&l.top_proteins.join(";"))
        ));
    }
    s
}

/// The command line's output folder, file by file, `shared_labels.csv` first.
pub fn files(out: &Output) -> Vec<(String, Vec<u8>)> {
    let j = &out.joint;
    let k = j.k;
    // H as the preprint stores it: factors x cells.
    let h: Vec<f32> = (0..k * j.n_cells)
        .map(|i| j.cell_loadings[(i % j.n_cells) * k + i / j.n_cells])
        .collect();
    let summary = serde_json::json!({
        "pairing": out.pairing,
        "matched": out.paired.matched,
        "padded": out.paired.padded,
        "dropped": out.paired.dropped,
        "n_cells": j.n_cells,
        "n_genes": out.gene_names.len(),
        "n_proteins": out.protein_names.len(),
        "n_factors": k,
        "n_iter": j.n_iter,
        "reconstruction_err": j.reconstruction_err,
        "restart_errors": j.restart_errors,
        "cell_types": out.labels.categories,
    });
    vec![
        (
            "shared_labels.csv".into(),
            shared_labels_csv(out).into_bytes(),
        ),
        ("nmf_factors.csv".into(), factors_csv(out).into_bytes()),
        (
            "co_localization.csv".into(),
            niche::colocalization_csv(&out.labels, &out.colocalization).into_bytes(),
        ),
        (
            "niche_composition.csv".into(),
            niche::niches_csv(&out.ids, &out.labels, &out.niches).into_bytes(),
        ),
        (
            "W_transcript.npy".into(),
            npy::write(&[out.gene_names.len(), k], &j.w_transcript),
        ),
        (
            "W_protein.npy".into(),
            npy::write(&[out.protein_names.len(), k], &j.w_protein),
        ),
        ("H_shared.npy".into(), npy::write(&[k, j.n_cells], &h)),
        (
            "genes.csv".into(),
            list_csv("gene", &out.gene_names).into_bytes(),
        ),
        (
            "proteins.csv".into(),
            list_csv("protein", &out.protein_names).into_bytes(),
        ),
        (
            "summary.json".into(),
            serde_json::to_vec_pretty(&summary).expect("json"),
        ),
    ]
}

/// The kept transcript cells as AnnData: X as read, obs `cell_type`,
/// `factor`, `factor_score` and `niche_type`, obsm `spatial` and `X_nmf`
/// (the shared loadings), uns `multiomics` (factor names, protein loadings).
pub fn anndata(out: &Output, tx: &Dataset) -> Dataset {
    let j = &out.joint;
    let (n, k) = (j.n_cells, j.k);
    let names: Vec<String> = out
        .cells
        .iter()
        .map(|&(f, _)| out.factors[f].cell_type.clone())
        .collect();
    let niche_types: Vec<String> = out
        .niches
        .iter()
        .map(|nc| {
            nc.niche_type.map_or("none".to_string(), |t| {
                out.labels.categories[t as usize].clone()
            })
        })
        .collect();
    let mut obs = Frame::with_index(out.ids.clone());
    obs.columns = vec![
        ("cell_type".into(), Column::categorical_from(&names)),
        (
            "factor".into(),
            Column::Int(out.cells.iter().map(|c| c.0 as i64 + 1).collect()),
        ),
        (
            "factor_score".into(),
            Column::Float(out.cells.iter().map(|c| c.1).collect()),
        ),
        ("niche_type".into(), Column::categorical_from(&niche_types)),
    ];
    let mut obsm = BTreeMap::new();
    let xy: Vec<f64> = out.coords.iter().flat_map(|c| [c[0], c[1]]).collect();
    obsm.insert(
        "spatial".to_string(),
        Annotation::Array(dense(n, 2, xy).expect("n x 2")),
    );
    let h: Vec<f64> = j.cell_loadings.iter().map(|&v| v as f64).collect();
    obsm.insert(
        "X_nmf".to_string(),
        Annotation::Array(dense(n, k, h).expect("n x k")),
    );
    let factor_names: Vec<String> = (0..k).map(|f| factor_name(out, f)).collect();
    let uns = BTreeMap::from([(
        "multiomics".to_string(),
        Value::Dict(BTreeMap::from([
            ("factors".to_string(), Value::Strings(factor_names)),
            (
                "proteins".to_string(),
                Value::Strings(out.protein_names.clone()),
            ),
            (
                "W_protein".to_string(),
                Value::Floats {
                    shape: vec![out.protein_names.len(), k],
                    data: j.w_protein.iter().map(|&v| v as f64).collect(),
                },
            ),
            ("pairing".to_string(), Value::Str(out.pairing.clone())),
        ])),
    )]);
    Dataset {
        x: tx.x.as_ref().map(|x| x.take_rows(&out.paired.rows)),
        x_dtype: tx.x_dtype.clone(),
        var: tx.var.clone(),
        obs,
        obsm,
        uns,
        ..Default::default()
    }
}

/// The browser's results: cells coloured by type or by factor loading,
/// the factor x protein loadings, niches and co-localization.
pub fn results(out: &Output, tx: &Dataset, params: serde_json::Value) -> Result<Results, Error> {
    let j = &out.joint;
    let k = j.k;
    let factor_names: Vec<String> = (0..k).map(|f| factor_name(out, f)).collect();
    let mut files = files(out);
    files.push((
        "multiomics.h5ad".into(),
        crate::io::h5ad_write::write(&anndata(out, tx))?,
    ));
    let mut protein = Matrix::heatmap(
        "protein loadings (W_protein, each factor scaled to its largest)",
        &out.protein_names,
        &factor_names,
        vec![0.0; out.protein_names.len() * k],
    );
    for f in 0..k {
        let col: Vec<f64> = (0..out.protein_names.len())
            .map(|p| j.w_protein[p * k + f] as f64)
            .collect();
        let top = col
            .iter()
            .fold(0f64, |a, &v| a.max(v))
            .max(f64::MIN_POSITIVE);
        for (p, v) in col.iter().enumerate() {
            protein.values[p * k + f] = v / top;
        }
    }
    protein.plot = Plot::Dots;
    Ok(Results {
        analysis: <super::analysis::Multiomics as crate::analysis::Analysis>::NAME.into(),
        params,
        view: serde_json::Value::Null,
        names: out.ids.clone(),
        xy: out
            .coords
            .iter()
            .flat_map(|c| [c[0] as f32, c[1] as f32])
            .collect(),
        layers: vec![
            Layer {
                name: "cell_type".into(),
                columns: out.labels.categories.clone(),
                values: onehot(&out.labels),
            },
            Layer {
                name: "X_nmf (factor loadings)".into(),
                columns: factor_names,
                values: j.cell_loadings.clone(),
            },
        ],
        curves: vec![],
        matrices: vec![
            colocalization_matrix(&out.labels, &out.colocalization),
            niche_dots(&out.labels, &out.niches),
            protein,
        ],
        files,
        image: None,
    })
}
