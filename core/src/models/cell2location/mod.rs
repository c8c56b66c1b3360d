//! cell2location's spatial mapping (spec §1b): cell abundances per spot
//! from raw spot counts and reference signatures (`inf_aver`), and the
//! AnnData export the Python tool writes.
//!
//! The genes are those shared by the spots and the signatures, in the
//! spots' order. `detection_mean` is computed from the data as the
//! reference does: (mean total count per spot / N) / (mean total of a
//! signature), over all spots or per batch.

pub mod analysis;
pub mod colocation;
pub mod fit;
pub mod run;

use std::collections::{BTreeMap, HashMap};

use crate::compute::cpu::Cpu;
use crate::compute::{philox, Device};
use crate::data::{Annotation, Column, Dataset, Frame, Value};
use crate::io::Error;
use crate::models::checkpoint::{Keeper, Kept, Resume};
use crate::models::named::{self, Named};
use crate::models::regression::{self, Signatures};
use crate::models::svi::Summary;
use crate::prep::filter::{check_x, Need};

pub use fit::{MapFit, Priors, Train};

/// What the user chooses (cell2location's constructor and `train`).
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    pub n_cells_per_location: f64,
    /// One α_d for every batch, and per-batch overrides by batch name.
    pub detection_alpha: f64,
    pub detection_alpha_per_batch: BTreeMap<String, f64>,
    pub batch_key: Option<String>,
    pub detection_mean_per_sample: bool,
    pub n_cells_mean_var_ratio: f64,
    pub a_factors_per_location: f64,
    pub b_groups_per_location: f64,
    pub n_groups: usize,
    pub train: Train,
    /// Posterior draws for the derived u_sf_mRNA_factors quantiles.
    pub num_samples: usize,
}

impl Options {
    pub fn new(n_cells_per_location: f64, detection_alpha: f64) -> Options {
        Options {
            n_cells_per_location,
            detection_alpha,
            detection_alpha_per_batch: BTreeMap::new(),
            batch_key: None,
            detection_mean_per_sample: false,
            n_cells_mean_var_ratio: 1.0,
            a_factors_per_location: 7.0,
            b_groups_per_location: 7.0,
            n_groups: 50,
            train: Train::default(),
            num_samples: 1000,
        }
    }
}

/// A finished mapping.
pub struct Mapping {
    pub spots: Vec<String>,
    pub cell_types: Vec<String>,
    pub genes: Vec<String>,
    pub batches: Vec<String>,
    /// Batch index of each spot.
    pub batch: Vec<usize>,
    pub detection_mean: Vec<f64>,
    pub priors: Priors,
    pub fit: MapFit,
    /// w_sf · Σ_g g_fg m_g (spots x types), from posterior draws.
    pub u_sf: Summary,
    /// Total counts of each spot over the genes used.
    pub total_counts: Vec<f64>,
    /// The signatures g_fg used (types x genes).
    pub signatures: Vec<f32>,
    /// `plot_QC`'s data at the posterior means.
    pub qc_histogram: Vec<u64>,
    pub qc_max: f64,
    /// Where the fit did not run from start to end on its device.
    pub notes: Vec<String>,
}

impl Mapping {
    pub fn abundance(&self) -> &Summary {
        self.fit.site("w_sf")
    }
}

/// Reads `inf_aver.csv`: genes as rows (first column), cell types as columns.
pub fn signatures_from_csv(name: &str, text: &str) -> Result<Signatures, Error> {
    let mut rd = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(text.as_bytes());
    let head = rd
        .headers()
        .map_err(|e| Error::new(name, "header", e.to_string()))?
        .clone();
    if head.len() < 2 {
        return Err(Error::new(
            name,
            "header",
            "expected a gene column followed by one column per cell type",
        ));
    }
    let cell_types: Vec<String> = head.iter().skip(1).map(str::to_string).collect();
    let (mut genes, mut values) = (vec![], vec![]);
    for (i, rec) in rd.records().enumerate() {
        let line = i + 2;
        let rec = rec.map_err(|e| Error::new(name, &format!("line {line}"), e.to_string()))?;
        genes.push(rec[0].to_string());
        for (j, v) in rec.iter().skip(1).enumerate() {
            let x: f64 = v.trim().parse().map_err(|_| {
                Error::new(
                    name,
                    &format!("line {line}, column '{}'", cell_types[j]),
                    format!("{v:?} is not a number"),
                )
            })?;
            if !x.is_finite() || x < 0.0 {
                return Err(Error::new(
                    name,
                    &format!("line {line}, column '{}'", cell_types[j]),
                    format!("signatures must be finite and non-negative, got {x}"),
                ));
            }
            values.push(x);
        }
    }
    if genes.is_empty() {
        return Err(Error::new(name, "rows", "has no genes"));
    }
    let t = cell_types.len();
    Ok(Signatures {
        genes,
        cell_types,
        values,
        n_cells: vec![0; t],
    })
}

/// The genes shared by the spots and the signatures: (spot column, signature row).
fn match_genes(sp: Named, sig_name: &str, s: &Signatures) -> Result<Vec<(usize, usize)>, Error> {
    let pos: HashMap<&str, usize> = s
        .genes
        .iter()
        .enumerate()
        .map(|(i, g)| (g.as_str(), i))
        .collect();
    let shared: Vec<(usize, usize)> = sp
        .data
        .var
        .index
        .iter()
        .enumerate()
        .filter_map(|(i, g)| pos.get(g.as_str()).map(|&j| (i, j)))
        .collect();
    if shared.is_empty() {
        let ex = |v: &[String]| v.iter().take(3).cloned().collect::<Vec<_>>().join(", ");
        return Err(Error::new(
            sp.name,
            "var_names",
            format!(
                "no gene in common with {sig_name} (spots have e.g. {}; signatures have e.g. {}); \
                 both must use the same gene identifiers",
                ex(&sp.data.var.index),
                ex(&s.genes)
            ),
        ));
    }
    Ok(shared)
}

/// Maps cell types onto the spots of `sp` (raw counts).
pub async fn map<D: Device>(
    dev: &D,
    sp: Named<'_>,
    sig_name: &str,
    sig: &Signatures,
    opts: &Options,
    progress: &mut dyn FnMut(usize, usize, f64),
    kept: &mut Kept,
) -> Result<Mapping, Error> {
    let x = check_x(sp.name, sp.data, Need::Counts)?;
    let positive = |v: f64| v > 0.0 && v.is_finite();
    if !positive(opts.n_cells_per_location) || !positive(opts.detection_alpha) {
        return Err(Error::new(
            sp.name,
            "options",
            "N_cells_per_location and detection_alpha must be positive numbers",
        ));
    }
    let shared = match_genes(sp, sig_name, sig)?;
    let (spots, g, f) = (sp.data.n_obs(), shared.len(), sig.cell_types.len());
    if spots == 0 {
        return Err(Error::new(sp.name, "obs", "has no spots"));
    }
    let batch_labels = match &opts.batch_key {
        Some(k) => named::labels(sp, k)?,
        None => vec!["0".to_string(); spots],
    };
    if let Some(i) = batch_labels.iter().position(|b| b.is_empty()) {
        return Err(Error::new(
            sp.name,
            &format!("obs['{}']", opts.batch_key.as_deref().unwrap_or("")),
            format!("spot {} has no batch", sp.data.obs.index[i]),
        ));
    }
    let mut batches = named::unique(&batch_labels);
    batches.sort();
    for b in opts.detection_alpha_per_batch.keys() {
        if !batches.contains(b) {
            return Err(Error::new(
                sp.name,
                "detection_alpha",
                format!(
                    "names batch {b:?}, which is not among {}",
                    batches.join(", ")
                ),
            ));
        }
    }
    let batch: Vec<usize> = batch_labels
        .iter()
        .map(|b| batches.iter().position(|x| x == b).expect("a batch"))
        .collect();
    let e = batches.len();
    let cols: Vec<usize> = shared.iter().map(|p| p.0).collect();
    let dense = x.columns_dense(&cols);
    let signatures: Vec<f32> = (0..f * g)
        .map(|i| sig.values[shared[i % g].1 * f + i / g] as f32)
        .collect();

    // detection_mean = (mean total per spot / N) / (mean total of a signature).
    let total_counts: Vec<f64> = (0..spots)
        .map(|s| dense[s * g..(s + 1) * g].iter().map(|&v| v as f64).sum())
        .collect();
    let sig_total: f64 = signatures.iter().map(|&v| v as f64).sum::<f64>() / f as f64;
    if sig_total <= 0.0 {
        return Err(Error::new(
            sig_name,
            "values",
            "signatures are zero on every shared gene",
        ));
    }
    let mean_total = |sel: &dyn Fn(usize) -> bool| {
        let (sum, n) = (0..spots)
            .filter(|&s| sel(s))
            .fold((0.0, 0usize), |(a, n), s| (a + total_counts[s], n + 1));
        sum / n.max(1) as f64
    };
    let detection_mean: Vec<f64> = (0..e)
        .map(|j| {
            let m = if opts.detection_mean_per_sample {
                mean_total(&|s| batch[s] == j)
            } else {
                mean_total(&|_| true)
            };
            (m / opts.n_cells_per_location / sig_total).max(1e-6)
        })
        .collect();
    let mut priors = Priors::new(opts.n_cells_per_location, opts.detection_alpha, e);
    priors.n_cells_mean_var_ratio = opts.n_cells_mean_var_ratio;
    priors.a_factors_per_location = opts.a_factors_per_location;
    priors.b_groups_per_location = opts.b_groups_per_location;
    priors.n_groups = opts.n_groups.max(1);
    priors.detection_mean = detection_mean.clone();
    for (j, b) in batches.iter().enumerate() {
        if let Some(&a) = opts.detection_alpha_per_batch.get(b) {
            priors.detection_alpha[j] = a;
        }
    }
    if let Some(budget) = dev.memory_budget() {
        let need = fit::footprint(spots, g, f, e, priors.n_groups);
        if need > budget {
            return Err(Error::new(
                sp.name,
                "X",
                format!(
                    "{spots} spots x {g} genes need about {:.1} GiB on {}, which has {:.1} GiB free",
                    need as f64 / (1u64 << 30) as f64,
                    dev.name(),
                    budget as f64 / (1u64 << 30) as f64
                ),
            ));
        }
    }
    let data = fit::MapData {
        x: &dense,
        spots,
        genes: g,
        signatures: &signatures,
        types: f,
        batch: &batch,
        n_batches: e,
    };
    // On a GPU that is lost or full mid-run, the fit goes on from its last
    // checkpoint on the CPU.
    let name = fit::fit_name(&data, &priors);
    let (mut keeper, from, note) = Keeper::start(kept, Some(&name));
    let mut notes: Vec<String> = note.into_iter().collect();
    let (pr, train) = (&priors, &opts.train);
    let first = {
        let save = &mut keeper.sink();
        fit::fit(
            dev,
            &data,
            pr,
            train,
            &mut *progress,
            None,
            Resume { from, save },
        )
        .await
    };
    let training = |e: String| Error::new(sp.name, "training", e);
    let result = match dev.lost() {
        None => first.map_err(training)?,
        Some(why) => {
            let (from, note) = keeper.moved(&why);
            notes.push(note);
            let save = &mut keeper.sink();
            fit::fit(
                &Cpu,
                &data,
                pr,
                train,
                progress,
                None,
                Resume { from, save },
            )
            .await
            .map_err(training)?
        }
    };
    let u_sf = mrna_factors(&result, &signatures, g, opts.num_samples, opts.train.seed);

    // Expected counts at the posterior means, for the reconstruction QC.
    let (w, m) = (&result.site("w_sf").means, &result.site("m_g").means);
    let (s_eg, y_s) = (
        &result.site("s_g_gene_add").means,
        &result.site("detection_y_s").means,
    );
    let expected = |i: usize| {
        let (s, j) = (i / g, i % g);
        let sum_f: f64 = (0..f)
            .map(|t| w[s * f + t] * signatures[t * g + j] as f64)
            .sum();
        (m[j] * sum_f + s_eg[batch[s] * g + j]) * y_s[s]
    };
    let (qc_histogram, qc_max) =
        regression::qc_histogram((0..spots * g).map(|i| (dense[i] as f64, expected(i))));
    Ok(Mapping {
        spots: sp.data.obs.index.clone(),
        cell_types: sig.cell_types.clone(),
        genes: shared
            .iter()
            .map(|p| sp.data.var.index[p.0].clone())
            .collect(),
        batches,
        batch,
        detection_mean,
        priors,
        fit: result,
        u_sf,
        total_counts,
        signatures,
        qc_histogram,
        qc_max,
        notes,
    })
}

/// `compute_expected_per_cell_type`: each spot's observed counts split
/// among the cell types in proportion to their expected share,
/// D_sg · w_sf g_fg m_g / (m_g Σ_f w_sf g_fg + s_eg) (no detection y_s, as
/// the reference), with one posterior summary (`stat`: "q05" as the
/// tutorial, or "means") of every site. One sparse spots x genes matrix per
/// cell type, over all of `sp`'s genes (zero where a gene was not used).
pub fn expected_per_cell_type(
    sp: &Dataset,
    m: &Mapping,
    stat: &str,
) -> Vec<(String, crate::data::Matrix)> {
    use crate::data::{Matrix, Sparse};
    let pick = |name: &str| -> Vec<f64> {
        let s = m.fit.site(name);
        if stat == "means" {
            s.means.clone()
        } else {
            s.q05.clone()
        }
    };
    let (w, mg, seg) = (pick("w_sf"), pick("m_g"), pick("s_g_gene_add"));
    let (f, g) = (m.cell_types.len(), m.genes.len());
    let pos: HashMap<&str, usize> = m
        .genes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), i))
        .collect();
    let col_gene: Vec<Option<usize>> = sp
        .var
        .index
        .iter()
        .map(|n| pos.get(n.as_str()).copied())
        .collect();
    let Some(Matrix::Csr(x)) = sp.x.as_ref().map(|x| x.to_csr()) else {
        return vec![];
    };
    let mut out: Vec<Sparse> = (0..f)
        .map(|_| Sparse {
            rows: x.rows,
            cols: x.cols,
            indptr: vec![0],
            ..Sparse::default()
        })
        .collect();
    for s in 0..x.rows {
        for k in x.indptr[s] as usize..x.indptr[s + 1] as usize {
            let (j, d) = (x.indices[k] as usize, x.data[k] as f64);
            let Some(gi) = col_gene[j] else { continue };
            let parts: Vec<f64> = (0..f)
                .map(|t| w[s * f + t] * m.signatures[t * g + gi] as f64 * mg[gi])
                .collect();
            let mu = parts.iter().sum::<f64>() + seg[m.batch[s] * g + gi];
            if d == 0.0 || mu <= 0.0 {
                continue;
            }
            for (t, o) in out.iter_mut().enumerate() {
                o.indices.push(j as u32);
                o.data.push((d * parts[t] / mu) as f32);
            }
        }
        for o in out.iter_mut() {
            o.indptr.push(o.data.len() as u64);
        }
    }
    m.cell_types
        .iter()
        .cloned()
        .zip(out.into_iter().map(Matrix::Csr))
        .collect()
}

/// u_sf = w_sf Σ_g g_fg m_g: its mean in closed form (w and m are
/// independent under the guide), its spread from `samples` joint draws.
fn mrna_factors(fit: &MapFit, sig: &[f32], g: usize, samples: usize, seed: u64) -> Summary {
    let (wl, ws) = &fit.w_guide;
    let (ml, ms) = &fit.m_guide;
    let f = sig.len() / g.max(1);
    let spots = wl.len() / f.max(1);
    let samples = samples.max(2);
    // Σ_g g_fg m_g for each draw of m.
    let mut v = vec![0f64; samples * f];
    for d in 0..samples {
        for j in 0..g {
            let mj = (ml[j] + ms[j] * philox::normal(seed ^ 0x5eed, d as u32, j) as f64).exp();
            for t in 0..f {
                v[d * f + t] += sig[t * g + j] as f64 * mj;
            }
        }
    }
    let mut out = Summary::default();
    let mut draws = vec![0f64; samples];
    for i in 0..spots * f {
        let t = i % f;
        for (d, x) in draws.iter_mut().enumerate() {
            let eps = philox::normal(seed ^ 0xabcd, d as u32, i) as f64;
            *x = (wl[i] + ws[i] * eps).exp() * v[d * f + t];
        }
        let mean = draws.iter().sum::<f64>() / samples as f64;
        let var = draws.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / samples as f64;
        out.means.push(mean);
        out.stds.push(var.sqrt());
        out.q05.push(quantile(&mut draws, 0.05));
        out.q95.push(quantile(&mut draws, 0.95));
    }
    out
}

/// numpy's default (linear) quantile; reorders `x`.
fn quantile(x: &mut [f64], q: f64) -> f64 {
    let pos = q * (x.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let (_, a, rest) = x.select_nth_unstable_by(lo, f64::total_cmp);
    let a = *a;
    let frac = pos - lo as f64;
    if frac == 0.0 || rest.is_empty() {
        return a;
    }
    let b = rest.iter().copied().fold(f64::INFINITY, f64::min);
    a + frac * (b - a)
}

/// The spots with cell2location's outputs added, as `export_posterior`
/// leaves them: `obsm['{means,stds,q05,q95}_cell_abundance_w_sf']`
/// (columns `'{k}cell_abundance_w_sf_{type}'`) and `uns['mod']`.
pub fn export(sp: &Dataset, m: &Mapping) -> Dataset {
    let mut d = sp.clone();
    let f = m.cell_types.len();
    for (k, v) in m.abundance().parts() {
        let mut fr = Frame::with_index(m.spots.clone());
        for (t, ct) in m.cell_types.iter().enumerate() {
            fr.set(
                &format!("{k}cell_abundance_w_sf_{ct}"),
                Column::Float((0..m.spots.len()).map(|s| v[s * f + t]).collect()),
            );
        }
        d.obsm
            .insert(format!("{k}_cell_abundance_w_sf"), Annotation::Frame(fr));
    }
    let mut md = BTreeMap::new();
    md.insert("factor_names".into(), Value::Strings(m.cell_types.clone()));
    md.insert("var_names".into(), Value::Strings(m.genes.clone()));
    md.insert("obs_names".into(), Value::Strings(m.spots.clone()));
    md.insert("batch_names".into(), Value::Strings(m.batches.clone()));
    md.insert(
        "model_name".into(),
        Value::Str("LocationModelLinearDependentWMultiExperimentLocationBackgroundNormLevelGeneAlphaPyroModel".into()),
    );
    md.insert(
        "detection_mean".into(),
        Value::Floats {
            shape: vec![m.detection_mean.len()],
            data: m.detection_mean.clone(),
        },
    );
    let n = m.fit.elbo_history.len();
    md.insert(
        "elbo_train".into(),
        Value::Floats {
            shape: vec![n],
            data: m.fit.elbo_history.clone(),
        },
    );
    for (i, stat) in ["means", "stds", "q05", "q95"].iter().enumerate() {
        let mut sites = BTreeMap::new();
        for (name, shape, s) in &m.fit.sites {
            sites.insert(
                name.to_string(),
                Value::Floats {
                    shape: shape.to_vec(),
                    data: s.parts()[i].1.to_vec(),
                },
            );
        }
        sites.insert(
            "u_sf_mRNA_factors".into(),
            Value::Floats {
                shape: vec![m.spots.len(), f],
                data: m.u_sf.parts()[i].1.to_vec(),
            },
        );
        md.insert(format!("post_sample_{stat}"), Value::Dict(sites));
    }
    d.uns.insert("mod".into(), Value::Dict(md));
    d
}

/// `plot_spatial_QC_across_batches`' data, one row per spot: batch, total
/// counts, total abundance Σ_f w_sf (posterior mean) and detection y_s (q05).
pub fn spot_qc_csv(m: &Mapping) -> String {
    let f = m.cell_types.len();
    let w = &m.abundance().means;
    let y = &m.fit.site("detection_y_s").q05;
    let mut out = String::from("spot,batch,total_counts,total_abundance,detection_y_s_q05\n");
    for (s, name) in m.spots.iter().enumerate() {
        let tot: f64 = w[s * f..(s + 1) * f].iter().sum();
        out.push_str(&format!(
            "{},{},{},{},{}\n",
            crate::io::csv_field(name),
            crate::io::csv_field(&m.batches[m.batch[s]]),
            m.total_counts[s],
            tot,
            y[s]
        ));
    }
    out
}

/// One summary of the abundances as CSV (spots x types, like the
/// reference's `q05_cell_abundance_w_sf` table).
pub fn abundance_csv(m: &Mapping, stat: &str) -> String {
    let s = m.abundance();
    let v = match stat {
        "means" => &s.means,
        "stds" => &s.stds,
        "q95" => &s.q95,
        _ => &s.q05,
    };
    crate::io::table_csv("spot", &m.cell_types, &m.spots, v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_match_numpy_linear() {
        let mut x: Vec<f64> = (0..11).map(|i| (10 - i) as f64).collect();
        assert_eq!(quantile(&mut x, 0.05), 0.5);
        assert_eq!(quantile(&mut x, 0.95), 9.5);
        let mut y = vec![3.0, 1.0];
        assert_eq!(quantile(&mut y, 0.5), 2.0);
    }

    #[test]
    fn signature_csv_errors_name_the_place() {
        let ok = signatures_from_csv("s.csv", ",A,B\ng1,1,2\ng2,0.5,0\n").unwrap();
        assert_eq!(ok.cell_types, vec!["A", "B"]);
        assert_eq!(ok.values, vec![1.0, 2.0, 0.5, 0.0]);
        let e = signatures_from_csv("s.csv", ",A,B\ng1,1,x\n").unwrap_err();
        assert!(e.to_string().contains("line 2, column 'B'"), "{e}");
        let e = signatures_from_csv("s.csv", ",A\ng1,-1\n").unwrap_err();
        assert!(e.to_string().contains("non-negative"), "{e}");
    }
}
