//! Neighbourhood enrichment as an analysis of the registry: squidpy's
//! `spatial_neighbors` + `nhood_enrichment` + `centrality_scores` as one
//! run, with the tables and AnnData the command line writes too.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::analysis::{checks, Analysis, Cards, Data, Input, Progress, LABELLED_CELLS};
use crate::bundle::{Matrix, Results};
use crate::compute::Device;
use crate::data::{Dataset, Value};
use crate::io::{csv_field, Error};
use crate::spatial::inputs::{by_type, cell_types, coords, obs_labels};
use crate::spatial::{centrality, graph, square_csv, Graph, Options};

pub struct Nhood;

/// Neighbourhood enrichment as the form shows it (squidpy's defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
// Missing fields take the defaults (`tessera run` takes partial JSON).
#[serde(default, deny_unknown_fields)]
pub struct NhoodParams {
    pub cluster_key: String,
    pub library_key: Option<String>,
    /// knn, radius, delaunay or grid (Visium).
    pub graph: String,
    pub n_neighs: usize,
    pub radius: Option<f64>,
    pub n_perms: usize,
    pub seed: u32,
}

impl Default for NhoodParams {
    fn default() -> Self {
        NhoodParams {
            cluster_key: String::new(),
            library_key: None,
            graph: "knn".into(),
            n_neighs: 6,
            radius: None,
            n_perms: 1000,
            seed: 0,
        }
    }
}

impl NhoodParams {
    /// The graph's options, or what is wrong with a field.
    pub fn graph_options(&self) -> Result<Options, String> {
        checks::key(&self.cluster_key)?;
        if !(1..=100_000).contains(&self.n_perms) {
            return Err(format!("n_perms {}: expected 1 to 100000", self.n_perms));
        }
        Options::from_form(&self.graph, self.n_neighs, self.radius)
    }
}

/// `nhood_enrichment_zscore.csv`, `nhood_enrichment_count.csv`,
/// `interaction_matrix.csv` and `centrality_scores.csv`, as squidpy's frames.
pub fn tables(
    categories: &[String],
    e: &super::Enrichment,
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

/// The run the page makes: the tables, the AnnData with squidpy's `uns`
/// keys, the heatmaps.
pub fn results(
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
    let e = super::enrichment(&g, &l, libs.as_ref(), p.n_perms, p.seed, progress)
        .map_err(|e| Error::new(name, "", e))?;
    let scores = centrality::scores(&g, &l);
    let c = &l.categories;
    let k = c.len();
    let mut files: Vec<(String, Vec<u8>)> = tables(c, &e, &scores)
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
    let mut res = by_type(Nhood::NAME, ds, &coords, &p.cluster_key, &l, params);
    res.matrices = vec![
        Matrix::heatmap("nhood enrichment z-score", c, c, e.zscore.clone()),
        Matrix::heatmap("neighbour counts", c, c, e.count.clone()),
    ];
    res.files = files;
    Ok(res)
}

impl Analysis for Nhood {
    const NAME: &'static str = "nhood";
    const TITLE: &'static str =
        "Neighbourhood enrichment — which cell types sit together (squidpy)";
    const HELP: &'static str = "squidpy's nhood_enrichment: neighbour counts between cell types against label permutations (z-scores), with centrality scores.";
    const INPUTS: &'static [Input] = &[LABELLED_CELLS];
    const GPU: bool = false;
    type Params = NhoodParams;

    fn validate(p: &NhoodParams) -> Result<(), String> {
        checks::text("the cluster key", &p.cluster_key)?;
        if let Some(l) = &p.library_key {
            checks::text("the library key", l)?;
        }
        p.graph_options().map(|_| ())
    }

    fn check(p: &NhoodParams, cards: &Cards) -> Result<String, String> {
        p.graph_options()?;
        let (n, k) = checks::spatial_labels(cards.sp, &p.cluster_key)?;
        Ok(format!(
            "{n} cells, {k} cell types, {} graph, {} permutations",
            p.graph, p.n_perms
        ))
    }

    async fn run<D: Device>(
        _dev: &D,
        p: &NhoodParams,
        data: Data,
        params: serde_json::Value,
        progress: &mut Progress<'_>,
    ) -> Result<Results, String> {
        let (name, ds) = &data.sp;
        results(name, ds, p, params, |done| {
            progress("permutations", done, p.n_perms, None)
        })
        .map_err(|e| e.to_string())
    }
}
