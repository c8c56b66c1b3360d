//! What a fit gives the user (`utils/postprocess.py`'s outputs): the
//! factors and loadings as tables, NSFH's spatial importance per gene and
//! per observation, the ELBO trace, a summary, and the AnnData with
//! `obsm['nsf_factors']`, `varm['nsf_loadings']`, `var`/`obs`
//! `['spatial_importance']` and `uns['nsf']`; and the page's view of it.

use serde_json::json;

use super::fit::interpret_nonneg;
use super::run::{Fitted, Model};
use crate::bundle::{Curve, Layer, Matrix, Plot, Results};
use crate::data::{Annotation, Column, Dataset, Dense, Value};
use crate::io::Error;
use crate::spatial::number;

/// Column names of the L factors: spatial first.
pub fn factor_names(f: &Fitted) -> Vec<String> {
    let l = f.options.factors;
    (0..l)
        .map(|c| match f.options.model {
            Model::Nsfh if c < f.t => format!("spatial {}", c + 1),
            Model::Nsfh => format!("nonspatial {}", c + 1 - f.t),
            _ => format!("factor {}", c + 1),
        })
        .collect()
}

/// NSFH's share of each gene's and each observation's expression that the
/// spatial factors carry (`interpret_nsfh`): the spatial totals over all,
/// per gene with loadings normalised by gene, per observation with factors
/// normalised by observation. On the training observations, as the paper
/// (held-out ones have no posterior of their nonspatial factors): NaN for
/// the others.
pub fn spatial_importance(f: &Fitted) -> Option<(Vec<f64>, Vec<f64>)> {
    if f.options.model != Model::Nsfh {
        return None;
    }
    let (l, t) = (f.options.factors, f.t);
    let k = l - t;
    let (n, j) = (f.train.len(), f.genes.len());
    let part = |m: &[f64], rows: usize, cols: std::ops::Range<usize>| -> Vec<f64> {
        (0..rows)
            .flat_map(|r| cols.clone().map(move |c| m[r * l + c]))
            .collect()
    };
    let (fs, fn_) = (
        part(&f.factors_mean_log, n, 0..t),
        part(&f.factors_mean_log, n, t..l),
    );
    let (ws, wn) = (part(&f.loadings, j, 0..t), part(&f.loadings, j, t..l));
    let share = |lda: bool| -> Vec<f64> {
        let a = interpret_nonneg(&fs, &ws, t, lda).totals;
        let b = interpret_nonneg(&fn_, &wn, k, lda).totals;
        a.iter().zip(&b).map(|(x, y)| x / (x + y)).collect()
    };
    let mut obs = share(true);
    obs.resize(f.obs.len(), f64::NAN);
    Some((share(false), obs))
}

/// A named table as CSV, values as pandas writes them (NaN empty).
fn csv_table(first: &str, rows: &[String], cols: &[String], values: &[f64]) -> Vec<u8> {
    let values: Vec<String> = values.iter().map(|&v| number(v)).collect();
    crate::io::table_csv(first, cols, rows, &values).into_bytes()
}

/// The run as `uns['nsf']` and `summary.json` describe it.
pub fn summary(f: &Fitted) -> serde_json::Value {
    let dev = |d: &super::fit::DevianceSummary| json!({"mean": d.mean, "median": d.median, "max": d.max, "argmax": f.genes[d.argmax]});
    json!({
        "model": f.options.model,
        "options": f.options,
        "spatial_factors": f.t,
        "inducing_points": f.inducing.len(),
        "observations": f.obs.len(),
        "train": f.train.len(),
        "validation": f.validation.len(),
        "genes": f.genes.len(),
        "epochs": f.history.loss.len(),
        "converged": f.history.converged,
        "stopped": f.history.stopped,
        "restarts": f.history.restarts.iter().map(|(e, why)| json!({"epoch": e, "why": why})).collect::<Vec<_>>(),
        "final_lr": f.history.lr,
        "final_loss": f.history.loss.last(),
        "deviance_train": dev(&f.deviance_train),
        "deviance_validation": f.deviance_validation.as_ref().map(dev),
        "rmse_train": f.rmse_train,
        "rmse_validation": f.rmse_validation,
        "amplitude": f.amplitude,
        "length_scale": f.length_scale,
        "notes": f.notes,
    })
}

/// Top genes per factor for the heatmap.
const TOP_GENES: usize = 5;

/// Every file `tessera nsf` writes, and the page's layers, curve and tables.
pub fn results(f: &Fitted, ds: &Dataset, params: serde_json::Value) -> Result<Results, Error> {
    let l = f.options.factors;
    let names = factor_names(f);
    let n_all = ds.n_obs();
    let imp = spatial_importance(f);
    // Rows back in the file's order; observations left out get NaN.
    let mut at = vec![usize::MAX; n_all];
    for (i, &r) in f.rows.iter().enumerate() {
        at[r] = i;
    }
    let at = &at;
    let by_obs = |vals: &[f64], width: usize| -> Vec<f64> {
        (0..n_all)
            .flat_map(|r| {
                (0..width).map(move |c| {
                    if at[r] == usize::MAX {
                        f64::NAN
                    } else {
                        vals[at[r] * width + c]
                    }
                })
            })
            .collect()
    };
    let factors_all = by_obs(&f.factors, l);
    let mut files = vec![];
    let fitted_names: Vec<String> = (0..n_all)
        .filter(|&r| at[r] != usize::MAX)
        .map(|r| ds.obs.index[r].clone())
        .collect();
    let fitted_vals: Vec<f64> = (0..n_all)
        .filter(|&r| at[r] != usize::MAX)
        .flat_map(|r| f.factors[at[r] * l..(at[r] + 1) * l].to_vec())
        .collect();
    files.push((
        "factors.csv".to_string(),
        csv_table("obs", &fitted_names, &names, &fitted_vals),
    ));
    files.push((
        "loadings.csv".to_string(),
        csv_table("gene", &f.genes, &names, &f.loadings),
    ));
    if let Some((genes, obs)) = &imp {
        let ordered: Vec<f64> = (0..n_all)
            .filter(|&r| at[r] != usize::MAX)
            .map(|r| obs[at[r]])
            .collect();
        let mut s = String::from("kind,name,spatial_importance\n");
        for (g, v) in f.genes.iter().zip(genes) {
            s.push_str(&format!(
                "gene,{},{}\n",
                crate::io::csv_field(g),
                number(*v)
            ));
        }
        for (o, v) in fitted_names.iter().zip(&ordered) {
            s.push_str(&format!("obs,{},{}\n", crate::io::csv_field(o), number(*v)));
        }
        files.push(("spatial_importance.csv".to_string(), s.into_bytes()));
    }
    let mut trace = String::from("epoch,elbo\n");
    for (e, v) in f.history.loss.iter().enumerate() {
        trace.push_str(&format!("{},{}\n", e + 1, number(-v)));
    }
    files.push(("elbo_history.csv".to_string(), trace.into_bytes()));
    let sum = summary(f);
    files.push((
        "summary.json".to_string(),
        serde_json::to_vec_pretty(&sum).expect("summary serialises"),
    ));
    // The AnnData: every observation and gene of the file, NaN where the
    // fit did not reach.
    let mut out = ds.clone();
    let g_all = ds.n_vars();
    let gene_at: std::collections::HashMap<&str, usize> = f
        .genes
        .iter()
        .enumerate()
        .map(|(i, g)| (g.as_str(), i))
        .collect();
    let mut load_all = vec![f64::NAN; g_all * l];
    let mut gene_imp = vec![f64::NAN; g_all];
    for (gi, g) in ds.var.index.iter().enumerate() {
        if let Some(&i) = gene_at.get(g.as_str()) {
            load_all[gi * l..(gi + 1) * l].copy_from_slice(&f.loadings[i * l..(i + 1) * l]);
            if let Some((genes, _)) = &imp {
                gene_imp[gi] = genes[i];
            }
        }
    }
    let dense = |rows, v: Vec<f64>| Dense::from_shape_vec((rows, l), v).expect("rows × L");
    out.obsm.insert(
        "nsf_factors".into(),
        Annotation::Array(dense(n_all, factors_all.clone())),
    );
    out.varm.insert(
        "nsf_loadings".into(),
        Annotation::Array(dense(g_all, load_all)),
    );
    if let Some((_, obs)) = &imp {
        out.var.set("spatial_importance", Column::Float(gene_imp));
        out.obs
            .set("spatial_importance", Column::Float(by_obs(obs, 1)));
    }
    let mut uns = sum.clone();
    uns["factor_names"] = json!(names);
    uns["elbo"] = json!(f.history.loss.iter().map(|v| -v).collect::<Vec<_>>());
    out.uns.insert("nsf".into(), Value::from_json(&uns));
    files.push(("nsf.h5ad".to_string(), crate::io::h5ad_write::write(&out)?));

    // One panel per factor: the page's *Show* picks the factor.
    let mut layers: Vec<Layer> = names
        .iter()
        .enumerate()
        .map(|(c, name)| Layer {
            name: name.clone(),
            columns: vec![name.clone()],
            values: (0..n_all).map(|r| factors_all[r * l + c] as f32).collect(),
        })
        .collect();
    if let Some((_, obs)) = &imp {
        layers.push(Layer {
            name: "spatial importance".into(),
            columns: vec!["spatial importance".into()],
            values: by_obs(obs, 1).iter().map(|&v| v as f32).collect(),
        });
    }
    // The heatmap: each factor's top genes by loading.
    let mut top: Vec<usize> = vec![];
    for c in 0..l {
        let mut order: Vec<usize> = (0..f.genes.len()).collect();
        order.sort_by(|&a, &b| f.loadings[b * l + c].total_cmp(&f.loadings[a * l + c]));
        for g in order.into_iter().take(TOP_GENES) {
            if !top.contains(&g) {
                top.push(g);
            }
        }
    }
    let mut matrices = vec![Matrix {
        name: format!("loadings of each factor's top {TOP_GENES} genes"),
        rows: top.iter().map(|&g| f.genes[g].clone()).collect(),
        cols: names.clone(),
        values: top
            .iter()
            .flat_map(|&g| f.loadings[g * l..(g + 1) * l].to_vec())
            .collect(),
        plot: Plot::Heatmap,
    }];
    if let Some((genes, _)) = &imp {
        let mut order: Vec<usize> = (0..genes.len()).collect();
        order.sort_by(|&a, &b| genes[b].total_cmp(&genes[a]));
        order.truncate(30);
        matrices.push(Matrix {
            name: "genes ranked by spatial importance".into(),
            rows: order.iter().map(|&g| f.genes[g].clone()).collect(),
            cols: vec!["spatial importance".into()],
            values: order.iter().map(|&g| genes[g]).collect(),
            plot: Plot::Bars,
        });
    }
    let view = crate::share::View {
        layer: names.first().cloned(),
        color: names.first().cloned(),
        ..Default::default()
    };
    Ok(Results {
        analysis: <super::analysis::Nsf as crate::analysis::Analysis>::NAME.into(),
        params,
        view: serde_json::to_value(view).expect("view serialises"),
        names: ds.obs.index.clone(),
        xy: crate::spatial::inputs::coords("", ds)
            .map(|c| crate::spatial::inputs::flat(&c))
            .unwrap_or_else(|_| vec![0.0; 2 * n_all]),
        layers,
        curves: vec![Curve {
            name: "ELBO".into(),
            values: f.history.loss.iter().map(|v| -v).collect(),
        }],
        matrices,
        files,
        image: crate::bundle::tissue_image(ds),
    })
}
