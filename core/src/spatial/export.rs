//! Neighbourhood enrichment as one run: graph, enrichment, centrality, and
//! the tables and AnnData they leave behind, shared by the command line and
//! the browser so both write the same files.

use std::collections::BTreeMap;

use super::{centrality, graph, nhood, square_csv, Graph, Labels};
use crate::bundle::{Layer, Matrix, Results};
use crate::data::{Column, Dataset, Value};
use crate::io::{csv_field, Error};
use crate::share::NhoodParams;

/// `nhood_enrichment_zscore.csv`, `nhood_enrichment_count.csv`,
/// `interaction_matrix.csv` and `centrality_scores.csv`, as squidpy's frames.
pub fn nhood_tables(
    categories: &[String],
    e: &nhood::Enrichment,
    scores: &[[f64; 3]],
) -> Vec<(String, String)> {
    let mut cent = format!(",{}\n", centrality::COLUMNS.join(","));
    for (name, s) in categories.iter().zip(scores) {
        cent.push_str(&format!("{},{},{},{}\n", csv_field(name), s[0], s[1], s[2]));
    }
    vec![
        (
            "nhood_enrichment_zscore.csv".into(),
            square_csv(categories, &e.zscore),
        ),
        (
            "nhood_enrichment_count.csv".into(),
            square_csv(categories, &e.count),
        ),
        // The unnormalised interaction matrix is the enrichment's observed count.
        (
            "interaction_matrix.csv".into(),
            square_csv(categories, &e.count),
        ),
        ("centrality_scores.csv".into(), cent),
    ]
}

/// Each cell's (x, y), or a named error when there are none.
pub fn coords(name: &str, ds: &Dataset) -> Result<Vec<[f64; 2]>, Error> {
    let xy = ds.spatial().ok_or_else(|| {
        Error::new(
            name,
            "obsm",
            "no spatial coordinates (obsm 'spatial', 'X_spatial' or 'spatial_coords'; x/y columns for tables)",
        )
    })?;
    if xy.cols < 2 {
        return Err(Error::new(
            name,
            "obsm/spatial",
            format!("has {} column(s), expected x and y", xy.cols),
        ));
    }
    Ok((0..xy.rows).map(|i| [xy.row(i)[0], xy.row(i)[1]]).collect())
}

/// An obs column, or an error listing the columns there are.
pub fn obs_column<'a>(name: &str, ds: &'a Dataset, key: &str) -> Result<&'a Column, Error> {
    ds.obs.column(key).ok_or_else(|| {
        let have: Vec<&str> = ds.obs.columns.iter().map(|(n, _)| n.as_str()).collect();
        Error::new(
            name,
            &format!("obs/{key}"),
            format!(
                "no such obs column; the obs columns are: {}",
                have.join(", ")
            ),
        )
    })
}

/// An obs column read as labels (libraries, FOVs, cell types).
pub fn obs_labels(name: &str, ds: &Dataset, key: &str) -> Result<Labels, Error> {
    Labels::from_column(key, obs_column(name, ds, key)?).map_err(|e| Error::new(name, key, e))
}

/// Cell-type labels: at least two types, or there is nothing to compare.
pub fn cell_types(name: &str, ds: &Dataset, key: &str) -> Result<Labels, Error> {
    let l = obs_labels(name, ds, key)?;
    if l.n_types() < 2 {
        return Err(Error::new(
            name,
            key,
            format!("has {} cell type(s); at least 2 are needed", l.n_types()),
        ));
    }
    Ok(l)
}

/// The run the browser's "Spatial statistics" page makes.
pub fn nhood_results(
    name: &str,
    ds: &Dataset,
    p: &NhoodParams,
    params: serde_json::Value,
    progress: impl FnMut(usize),
) -> Result<Results, Error> {
    let opts = p.graph_options().map_err(|e| Error::new(name, "", e))?;
    let coords = coords(name, ds)?;
    let l = cell_types(name, ds, &p.cluster_key)?;
    let libs = p
        .library_key
        .as_deref()
        .filter(|k| !k.is_empty())
        .map(|k| obs_labels(name, ds, k))
        .transpose()?;
    let g: Graph = graph::build(&coords, libs.as_ref().map(|l| &l.codes[..]), &opts)
        .map_err(|e| Error::new(name, "obsm/spatial", e))?;
    let e = nhood::enrichment(&g, &l, libs.as_ref(), p.n_perms, p.seed, progress)
        .map_err(|e| Error::new(name, "", e))?;
    let scores = centrality::scores(&g, &l);
    let k = l.n_types();
    let c = &l.categories;
    let mut files: Vec<(String, Vec<u8>)> = nhood_tables(c, &e, &scores)
        .into_iter()
        .map(|(n, t)| (n, t.into_bytes()))
        .collect();
    // squidpy's uns keys, so scanpy users find the result where they expect.
    let mut out = ds.clone();
    let square = |v: &[f64]| Value::Floats {
        shape: vec![k, k],
        data: v.to_vec(),
    };
    out.uns.insert(
        format!("{}_nhood_enrichment", p.cluster_key),
        Value::Dict(BTreeMap::from([
            ("zscore".to_string(), square(&e.zscore)),
            ("count".to_string(), square(&e.count)),
        ])),
    );
    files.push(("sp_nhood.h5ad".into(), crate::io::h5ad_write::write(&out)?));
    let mut onehot = vec![0f32; coords.len() * k];
    for (i, &code) in l.codes.iter().enumerate() {
        if (code as usize) < k {
            onehot[i * k + code as usize] = 1.0;
        }
    }
    Ok(Results {
        analysis: "nhood_enrichment".into(),
        params,
        view: serde_json::Value::Null,
        names: ds.obs.index.clone(),
        xy: coords
            .iter()
            .flat_map(|c| [c[0] as f32, c[1] as f32])
            .collect(),
        layers: vec![Layer {
            name: p.cluster_key.clone(),
            columns: c.clone(),
            values: onehot,
        }],
        curves: vec![],
        matrices: vec![
            Matrix {
                name: "nhood enrichment z-score".into(),
                rows: c.clone(),
                cols: c.clone(),
                values: e.zscore.clone(),
            },
            Matrix {
                name: "neighbour counts".into(),
                rows: c.clone(),
                cols: c.clone(),
                values: e.count.clone(),
            },
        ],
        files,
    })
}
