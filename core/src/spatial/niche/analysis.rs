//! Niches and co-localization as an analysis of the registry: each cell's
//! neighbour composition on a radius graph, its niche type, and a score for
//! every pair of types (`tessera spatial niche`).

use serde::{Deserialize, Serialize};

use crate::analysis::{checks, Analysis, Cards, Data, Input, Progress, LABELLED_CELLS};
use crate::bundle::{Layer, Matrix, Plot, Results};
use crate::compute::Device;
use crate::data::{Column, Dataset, Value};
use crate::io::Error;
use crate::spatial::inputs::{by_type, cell_types, coords};
use crate::spatial::{graph, Labels};

pub struct Niche;

/// Niches and co-localization on a radius graph (`tessera spatial niche`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
// Missing fields take the defaults (`tessera run` takes partial JSON).
#[serde(default, deny_unknown_fields)]
pub struct NicheParams {
    pub cluster_key: String,
    pub radius: f64,
}

impl Default for NicheParams {
    fn default() -> Self {
        NicheParams {
            cluster_key: String::new(),
            radius: 50.0,
        }
    }
}

impl NicheParams {
    pub fn graph_options(&self) -> Result<graph::Options, String> {
        checks::key(&self.cluster_key)?;
        graph::Options::from_form("radius", 1, Some(self.radius))
    }
}

/// Each niche type's mean composition (rows: the niche types present,
/// columns: cell types), drawn as a dot plot.
pub fn niche_dots(labels: &Labels, niches: &[super::Niche]) -> Matrix {
    let k = labels.n_types();
    let mut sums = vec![0.0; k * k];
    let mut counts = vec![0usize; k];
    for nc in niches {
        if let Some(t) = nc.niche_type {
            let t = t as usize;
            counts[t] += 1;
            for (s, f) in sums[t * k..(t + 1) * k].iter_mut().zip(&nc.fractions) {
                *s += f;
            }
        }
    }
    let present: Vec<usize> = (0..k).filter(|&t| counts[t] > 0).collect();
    Matrix {
        name: "niche composition (mean fraction of neighbours)".into(),
        rows: present
            .iter()
            .map(|&t| format!("niche: {}", labels.categories[t]))
            .collect(),
        cols: labels.categories.clone(),
        values: present
            .iter()
            .flat_map(|&t| {
                let c = counts[t] as f64;
                sums[t * k..(t + 1) * k].iter().map(move |s| s / c)
            })
            .collect(),
        plot: Plot::Dots,
    }
}

/// Pair scores as a symmetric type x type table.
pub fn colocalization_matrix(labels: &Labels, scores: &[super::PairScore]) -> Matrix {
    let k = labels.n_types();
    let mut v = vec![f64::NAN; k * k];
    for p in scores {
        let (a, b) = (p.a as usize, p.b as usize);
        v[a * k + b] = p.score;
        v[b * k + a] = p.score;
    }
    Matrix::heatmap(
        "co-localization score ((observed − expected) / expected edges)",
        &labels.categories,
        &labels.categories,
        v,
    )
}

/// Niches in the browser: each cell's neighbour composition to colour by,
/// its niche type, the niche x type dot plot and the pair scores.
pub fn results(
    name: &str,
    ds: &Dataset,
    p: &NicheParams,
    params: serde_json::Value,
) -> Result<Results, Error> {
    let opts = p.graph_options().map_err(|e| Error::new(name, "", e))?;
    let coords = coords(name, ds)?;
    let l = cell_types(name, ds, &p.cluster_key)?;
    let g = graph::build(&coords, None, &opts).map_err(|e| Error::new(name, "obsm/spatial", e))?;
    let ns = super::niches(&g, &l);
    let scores = super::colocalization(&g, &l);
    let mut res = by_type(Niche::NAME, ds, &coords, &p.cluster_key, &l, params);
    res.layers.insert(
        0,
        Layer {
            name: "niche composition (fraction of neighbours)".into(),
            columns: l.categories.clone(),
            values: ns
                .iter()
                .flat_map(|n| n.fractions.iter().map(|&f| f as f32))
                .collect(),
        },
    );
    res.matrices = vec![colocalization_matrix(&l, &scores), niche_dots(&l, &ns)];
    res.files = vec![
        (
            "niche_composition.csv".into(),
            super::niches_csv(&ds.obs.index, &l, &ns).into_bytes(),
        ),
        (
            "co_localization.csv".into(),
            super::colocalization_csv(&l, &scores).into_bytes(),
        ),
    ];
    let mut out = ds.clone();
    let types: Vec<String> = ns
        .iter()
        .map(|n| {
            n.niche_type
                .map_or("none".into(), |t| l.categories[t as usize].clone())
        })
        .collect();
    out.obs
        .columns
        .push(("niche_type".into(), Column::categorical_from(&types)));
    let fr: Vec<f64> = ns.iter().flat_map(|n| n.fractions.clone()).collect();
    out.obsm.insert(
        "niche_composition".into(),
        crate::data::Annotation::Array(
            crate::data::dense(coords.len(), l.n_types(), fr).expect("n x k"),
        ),
    );
    out.uns.insert(
        "niche_categories".into(),
        Value::Strings(l.categories.clone()),
    );
    res.files
        .push(("sp_niche.h5ad".into(), crate::io::h5ad_write::write(&out)?));
    Ok(res)
}

impl Analysis for Niche {
    const NAME: &'static str = "niche";
    const TITLE: &'static str = "Niches and co-localization — each cell's neighbourhood";
    const HELP: &'static str = "Each cell's neighbours within a radius: their type fractions (niche), the niche type, and a score for every pair of types.";
    const INPUTS: &'static [Input] = &[LABELLED_CELLS];
    const GPU: bool = false;
    type Params = NicheParams;

    fn validate(p: &NicheParams) -> Result<(), String> {
        p.graph_options().map(|_| ())
    }

    fn check(p: &NicheParams, cards: &Cards) -> Result<String, String> {
        p.graph_options()?;
        let (n, k) = checks::spatial_labels(cards.sp, &p.cluster_key)?;
        Ok(format!(
            "{n} cells, {k} cell types, neighbours within {}",
            p.radius
        ))
    }

    async fn run<D: Device>(
        _dev: &D,
        p: &NicheParams,
        data: Data,
        params: serde_json::Value,
        progress: &mut Progress<'_>,
    ) -> Result<Results, String> {
        progress("building the radius graph", 0, 1, None);
        let (name, ds) = &data.sp;
        results(name, ds, p, params).map_err(|e| e.to_string())
    }
}
