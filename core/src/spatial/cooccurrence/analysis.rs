//! Co-occurrence as an analysis of the registry: squidpy's `co_occurrence`
//! with its `uns` arrays, the long table spreadsheets read, and one line
//! panel per cell type.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::analysis::{checks, Analysis, Cards, Data, Input, Progress, LABELLED_CELLS};
use crate::bundle::{Matrix, Plot, Results};
use crate::compute::Device;
use crate::data::{Dataset, Value};
use crate::io::{csv_field, npy, Error};
use crate::spatial::inputs::{by_type, cell_types, coords};
use crate::spatial::{number, Labels};

pub struct Cooccurrence;

/// squidpy's `co_occurrence` (interval 50 distances).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
// Missing fields take the defaults (`tessera run` takes partial JSON).
#[serde(default, deny_unknown_fields)]
pub struct CooccurrenceParams {
    pub cluster_key: String,
    pub interval: usize,
}

impl Default for CooccurrenceParams {
    fn default() -> Self {
        CooccurrenceParams {
            cluster_key: String::new(),
            interval: 50,
        }
    }
}

impl CooccurrenceParams {
    pub fn validate(&self) -> Result<(), String> {
        checks::key(&self.cluster_key)?;
        if !(2..=1000).contains(&self.interval) {
            return Err(format!("interval {}: expected 2 to 1000", self.interval));
        }
        Ok(())
    }
}

/// `co_occurrence{tag}_occ.npy`, `_interval.npy`, `_categories.csv` (as
/// squidpy's `uns` arrays) and `co_occurrence{tag}.csv`, the long table
/// (cluster, condition, distance, ratio) that spreadsheets read.
pub fn files(tag: &str, labels: &Labels, co: &super::CoOccurrence) -> Vec<(String, Vec<u8>)> {
    let k = labels.n_types();
    let r = co.radii();
    let mut long = String::from("cluster,condition,distance,ratio\n");
    for a in 0..k {
        for b in 0..k {
            for (ri, d) in co.interval[1..].iter().enumerate() {
                long.push_str(&format!(
                    "{},{},{d},{}\n",
                    csv_field(&labels.categories[a]),
                    csv_field(&labels.categories[b]),
                    number(co.at(a, b, ri))
                ));
            }
        }
    }
    vec![
        (format!("co_occurrence{tag}.csv"), long.into_bytes()),
        (
            format!("co_occurrence{tag}_occ.npy"),
            npy::write(&[k, k, r], &co.occ),
        ),
        (
            format!("co_occurrence{tag}_interval.npy"),
            npy::write(&[co.interval.len()], &co.interval),
        ),
        (
            format!("co_occurrence{tag}_categories.csv"),
            crate::io::list_csv("category", &labels.categories).into_bytes(),
        ),
    ]
}

/// Co-occurrence in the browser: one line plot per cell type (squidpy's
/// `pl.co_occurrence` panels), the types in space.
pub fn results(
    name: &str,
    ds: &Dataset,
    p: &CooccurrenceParams,
    params: serde_json::Value,
) -> Result<Results, Error> {
    p.validate().map_err(|e| Error::new(name, "", e))?;
    let coords = coords(name, ds)?;
    let l = cell_types(name, ds, &p.cluster_key)?;
    let co = super::co_occurrence(&coords, &l, p.interval)
        .map_err(|e| Error::new(name, "obsm/spatial", e))?;
    let k = l.n_types();
    let r = co.radii();
    let distances: Vec<String> = co.interval[1..].iter().map(|d| d.to_string()).collect();
    let mut res = by_type(Cooccurrence::NAME, ds, &coords, &p.cluster_key, &l, params);
    res.matrices = (0..k)
        .map(|a| Matrix {
            name: format!("co-occurrence ratio given {}", l.categories[a]),
            rows: l.categories.clone(),
            cols: distances.clone(),
            values: (0..k)
                .flat_map(|b| (0..r).map(move |ri| (b, ri)))
                .map(|(b, ri)| co.at(a, b, ri))
                .collect(),
            plot: Plot::Lines,
        })
        .collect();
    res.files = files("", &l, &co);
    // squidpy's uns['{key}_co_occurrence'] = {occ, interval}.
    let mut out = ds.clone();
    out.uns.insert(
        format!("{}_co_occurrence", p.cluster_key),
        Value::Dict(BTreeMap::from([
            (
                "occ".to_string(),
                Value::Floats {
                    shape: vec![k, k, r],
                    data: co.occ.clone(),
                },
            ),
            (
                "interval".to_string(),
                Value::Floats {
                    shape: vec![co.interval.len()],
                    data: co.interval.iter().map(|&v| v as f64).collect(),
                },
            ),
        ])),
    );
    res.files.push((
        "sp_co_occurrence.h5ad".into(),
        crate::io::h5ad_write::write(&out)?,
    ));
    Ok(res)
}

impl Analysis for Cooccurrence {
    const NAME: &'static str = "cooccurrence";
    const TITLE: &'static str = "Co-occurrence — cell types together over distance (squidpy)";
    const HELP: &'static str = "squidpy's co_occurrence: how much more likely each type is within a distance of another, at 49 distances.";
    const INPUTS: &'static [Input] = &[LABELLED_CELLS];
    const GPU: bool = false;
    type Params = CooccurrenceParams;

    fn validate(p: &CooccurrenceParams) -> Result<(), String> {
        p.validate()
    }

    fn check(p: &CooccurrenceParams, cards: &Cards) -> Result<String, String> {
        p.validate()?;
        let (n, k) = checks::spatial_labels(cards.sp, &p.cluster_key)?;
        Ok(format!(
            "{n} cells, {k} cell types, ratios at {} distances",
            p.interval - 1
        ))
    }

    async fn run<D: Device>(
        _dev: &D,
        p: &CooccurrenceParams,
        data: Data,
        params: serde_json::Value,
        progress: &mut Progress<'_>,
    ) -> Result<Results, String> {
        progress("counting pairs over distance", 0, 1, None);
        let (name, ds) = &data.sp;
        results(name, ds, p, params).map_err(|e| e.to_string())
    }
}
