//! Neighbourhood enrichment as one run: graph, enrichment, centrality, and
//! the tables and AnnData they leave behind, shared by the command line and
//! the browser so both write the same files.

use std::collections::BTreeMap;

use super::{
    autocorr, centrality, cooccurrence, graph, nhood, niche, number, square_csv, Graph, Labels,
};
use crate::bundle::{Layer, Matrix, Plot, Results};
use crate::data::{Column, Dataset, Value};
use crate::io::{csv_field, npy, Error};
use crate::share::{AutocorrParams, CooccurrenceParams, NhoodParams, NicheParams};

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
    let c = &l.categories;
    let k = c.len();
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
    let mut res = by_type("nhood_enrichment", ds, &coords, &p.cluster_key, &l, params);
    res.matrices = vec![
        Matrix::heatmap("nhood enrichment z-score", c, c, e.zscore.clone()),
        Matrix::heatmap("neighbour counts", c, c, e.count.clone()),
    ];
    res.files = files;
    Ok(res)
}

fn flat(coords: &[[f64; 2]]) -> Vec<f32> {
    coords
        .iter()
        .flat_map(|c| [c[0] as f32, c[1] as f32])
        .collect()
}

/// One-hot rows of labels, for colouring points by category.
pub fn onehot(labels: &Labels) -> Vec<f32> {
    let k = labels.n_types();
    let mut v = vec![0f32; labels.codes.len() * k];
    for (i, &c) in labels.codes.iter().enumerate() {
        if (c as usize) < k {
            v[i * k + c as usize] = 1.0;
        }
    }
    v
}

/// A one-dataset run's results before the analysis adds its own parts:
/// the cells coloured by their type.
fn by_type(
    analysis: &str,
    ds: &Dataset,
    coords: &[[f64; 2]],
    key: &str,
    l: &Labels,
    params: serde_json::Value,
) -> Results {
    Results {
        analysis: analysis.into(),
        params,
        view: serde_json::Value::Null,
        names: ds.obs.index.clone(),
        xy: flat(coords),
        layers: vec![Layer {
            name: key.into(),
            columns: l.categories.clone(),
            values: onehot(l),
        }],
        curves: vec![],
        matrices: vec![],
        files: vec![],
        image: None,
    }
}

/// `co_occurrence{tag}_occ.npy`, `_interval.npy`, `_categories.csv` (as
/// squidpy's `uns` arrays) and `co_occurrence{tag}.csv`, the long table
/// (cluster, condition, distance, ratio) that spreadsheets read.
pub fn cooccurrence_files(
    tag: &str,
    labels: &Labels,
    co: &cooccurrence::CoOccurrence,
) -> Vec<(String, Vec<u8>)> {
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
pub fn cooccurrence_results(
    name: &str,
    ds: &Dataset,
    p: &CooccurrenceParams,
    params: serde_json::Value,
) -> Result<Results, Error> {
    p.validate().map_err(|e| Error::new(name, "", e))?;
    let coords = coords(name, ds)?;
    let l = cell_types(name, ds, &p.cluster_key)?;
    let co = cooccurrence::co_occurrence(&coords, &l, p.interval)
        .map_err(|e| Error::new(name, "obsm/spatial", e))?;
    let k = l.n_types();
    let r = co.radii();
    let distances: Vec<String> = co.interval[1..].iter().map(|d| d.to_string()).collect();
    let mut res = by_type("co_occurrence", ds, &coords, &p.cluster_key, &l, params);
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
    res.files = cooccurrence_files("", &l, &co);
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

/// The var columns autocorrelation is computed on: the named genes, else
/// the highly variable ones when var marks them, else all.
fn autocorr_columns(name: &str, ds: &Dataset, genes: &[String]) -> Result<Vec<usize>, Error> {
    if genes.is_empty() {
        return Ok(match ds.var.column("highly_variable") {
            Some(Column::Bool(hv)) if hv.iter().any(|&b| b) => {
                (0..hv.len()).filter(|&i| hv[i]).collect()
            }
            _ => (0..ds.n_vars()).collect(),
        });
    }
    let mut at = std::collections::HashMap::new();
    for (i, g) in ds.var.index.iter().enumerate() {
        at.entry(g.as_str()).or_insert(i);
    }
    genes
        .iter()
        .map(|g| {
            at.get(g.as_str()).copied().ok_or_else(|| {
                Error::new(
                    name,
                    "var",
                    format!("gene {g:?} is not in var_names ({} genes)", ds.n_vars()),
                )
            })
        })
        .collect()
}

/// Each column's name and values, densified 256 columns at a time.
fn dense_features(
    name: &str,
    ds: &Dataset,
    cols: &[usize],
) -> Result<Vec<(String, Vec<f64>)>, Error> {
    let x =
        ds.x.as_ref()
            .ok_or_else(|| Error::new(name, "X", "the dataset has no expression matrix"))?;
    let n = ds.n_obs();
    Ok(cols
        .chunks(256)
        .flat_map(|chunk| {
            let dense = x.columns_dense(chunk);
            chunk
                .iter()
                .enumerate()
                .map(|(j, &c)| {
                    let v = (0..n).map(|i| dense[i * chunk.len() + j] as f64).collect();
                    (ds.var.index[c].clone(), v)
                })
                .collect::<Vec<_>>()
        })
        .collect())
}

/// The features autocorrelation is computed on: the named genes, else the
/// highly variable ones when var marks them, else all.
pub fn autocorr_features(
    name: &str,
    ds: &Dataset,
    genes: &[String],
) -> Result<Vec<(String, Vec<f64>)>, Error> {
    dense_features(name, ds, &autocorr_columns(name, ds, genes)?)
}

/// How many of the top-scoring features the browser keeps for colouring.
const SHOWN_FEATURES: usize = 24;

/// Moran's I / Geary's C in the browser: the table as squidpy's `uns`
/// frame, the most autocorrelated features to colour the plot by.
pub fn autocorr_results(
    name: &str,
    ds: &Dataset,
    p: &AutocorrParams,
    params: serde_json::Value,
    progress: impl FnMut(usize, usize),
) -> Result<Results, Error> {
    let (gopts, aopts) = p.options().map_err(|e| Error::new(name, "", e))?;
    let coords = coords(name, ds)?;
    let g = graph::build(&coords, None, &gopts).map_err(|e| Error::new(name, "obsm/spatial", e))?;
    let cols = autocorr_columns(name, ds, &p.genes)?;
    let features = dense_features(name, ds, &cols)?;
    // Each scored feature's place in `features` and `cols`.
    let at: std::collections::HashMap<&str, usize> = features
        .iter()
        .enumerate()
        .map(|(i, f)| (f.0.as_str(), i))
        .collect();
    let total = features.len();
    let mut progress = progress;
    let rows = autocorr::run(&g, &features, &aopts, |d| progress(d, total))
        .map_err(|e| Error::new(name, "", e))?;
    let file = match aopts.mode {
        autocorr::Mode::Moran => "moranI.csv",
        autocorr::Mode::Geary => "gearyC.csv",
    };
    let shown: Vec<&autocorr::Row> = rows
        .iter()
        .filter(|r| r.score.is_finite())
        .take(SHOWN_FEATURES)
        .collect();
    let n = coords.len();
    let mut values = vec![0f32; n * shown.len()];
    for (j, r) in shown.iter().enumerate() {
        let x = &features[at[r.name.as_str()]].1;
        for i in 0..n {
            values[i * shown.len() + j] = x[i] as f32;
        }
    }
    let stat = aopts.mode.column();
    // AnnData has no frame in uns here: the statistics go to var, one
    // column each (NaN for genes not tested), named like squidpy's frame.
    let mut out = ds.clone();
    let key = file.trim_end_matches(".csv");
    type Get = fn(&autocorr::Row) -> f64;
    let fields: [(&str, Get); 3] = [
        ("", |r| r.score),
        ("_pval_norm", |r| r.pval_norm),
        ("_pval_norm_fdr_bh", |r| r.pval_norm_fdr_bh),
    ];
    for (suffix, get) in fields {
        let mut col = vec![f64::NAN; ds.n_vars()];
        for r in &rows {
            col[cols[at[r.name.as_str()]]] = get(r);
        }
        out.var
            .columns
            .push((format!("{key}{suffix}"), Column::Float(col)));
    }
    // Genes have no "dominant" colouring: open on the top one.
    let view = crate::share::View {
        color: shown.first().map(|r| r.name.clone()),
        ..Default::default()
    };
    Ok(Results {
        analysis: "spatial_autocorr".into(),
        params,
        view: serde_json::to_value(view).expect("view serialises"),
        names: ds.obs.index.clone(),
        xy: flat(&coords),
        layers: vec![Layer {
            name: format!("top {} features by {stat}", shown.len()),
            columns: shown.iter().map(|r| r.name.clone()).collect(),
            values,
        }],
        curves: vec![],
        matrices: vec![Matrix {
            name: format!("{stat} and p-values of the top features"),
            rows: shown.iter().map(|r| r.name.clone()).collect(),
            cols: vec![stat.into(), "pval_norm".into(), "pval_norm_fdr_bh".into()],
            values: shown
                .iter()
                .flat_map(|r| [r.score, r.pval_norm, r.pval_norm_fdr_bh])
                .collect(),
            plot: Plot::Bars,
        }],
        files: vec![
            (
                file.into(),
                autocorr::to_csv(&rows, aopts.mode, aopts.n_perms > 0).into_bytes(),
            ),
            (
                "sp_autocorr.h5ad".into(),
                crate::io::h5ad_write::write(&out)?,
            ),
        ],
        image: None,
    })
}

/// Each niche type's mean composition (rows: the niche types present,
/// columns: cell types), drawn as a dot plot.
pub fn niche_dots(labels: &Labels, niches: &[niche::Niche]) -> Matrix {
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
pub fn colocalization_matrix(labels: &Labels, scores: &[niche::PairScore]) -> Matrix {
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
pub fn niche_results(
    name: &str,
    ds: &Dataset,
    p: &NicheParams,
    params: serde_json::Value,
) -> Result<Results, Error> {
    let opts = p.graph_options().map_err(|e| Error::new(name, "", e))?;
    let coords = coords(name, ds)?;
    let l = cell_types(name, ds, &p.cluster_key)?;
    let g = graph::build(&coords, None, &opts).map_err(|e| Error::new(name, "obsm/spatial", e))?;
    let ns = niche::niches(&g, &l);
    let scores = niche::colocalization(&g, &l);
    let mut res = by_type("niche", ds, &coords, &p.cluster_key, &l, params);
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
            niche::niches_csv(&ds.obs.index, &l, &ns).into_bytes(),
        ),
        (
            "co_localization.csv".into(),
            niche::colocalization_csv(&l, &scores).into_bytes(),
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
            crate::data::Dense::new(coords.len(), l.n_types(), fr).expect("n x k"),
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
