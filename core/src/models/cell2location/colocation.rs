//! cell2location's `run_colocation` (`CoLocatedGroupsSklearnNMF`): NMF of
//! the spots x cell types abundance matrix (q05 by default, unscaled) into
//! groups of co-located cell types, for a range of factor numbers, each
//! with several restarts.
//!
//! As the reference: scikit-learn's NMF with `init='random'`, `alpha_W`
//! 0.1 (the class default; run_colocation does not set it), `alpha_H` the
//! same, l1_ratio 0.5, max_iter 20,000, tol 1e-5; numpy's global generator
//! seeded once per factor number, so restart k starts from the k-th draw;
//! the last restart is the result. Stability (plotted by the reference) is
//! reported as numbers: for each later restart, the mean correlation of its
//! factors with the first restart's, factors matched one to one.

use std::collections::BTreeMap;

use crate::compute::Device;
use crate::data::{Annotation, Column, Dataset, Value};
use crate::io::{csv_field, Error};
use crate::models::named::Named;
use crate::models::nmf::{fit_cd, random_init, Nmf, NmfFit};
use crate::models::numpy_rng::LegacyNormal;

#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    pub n_fact: Vec<usize>,
    pub restarts: usize,
    pub alpha: f64,
    pub l1_ratio: f64,
    pub max_iter: usize,
    pub tol: f64,
    pub seed: u32,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            n_fact: vec![30],
            restarts: 5,
            alpha: 0.1,
            l1_ratio: 0.5,
            max_iter: 20_000,
            tol: 1e-5,
            seed: 0,
        }
    }
}

/// One factor number's result.
pub struct Groups {
    pub n_fact: usize,
    /// Every restart; the last one is the result.
    pub restarts: Vec<NmfFit>,
    /// Restarts 2.. against restart 1: mean matched correlation of the cell
    /// type loadings (over types) and of the location loadings (over spots).
    pub stability_cell_types: Vec<f64>,
    pub stability_locations: Vec<f64>,
    pub spots: usize,
    pub types: usize,
}

impl Groups {
    pub fn result(&self) -> &NmfFit {
        self.restarts.last().expect("at least one restart")
    }

    /// Factors the regularisation has emptied (all of W's column or H's row
    /// zero): scikit-learn scales alpha by the number of spots and types, so
    /// small abundances can lose every factor.
    pub fn empty_factors(&self) -> usize {
        let (k, f) = (self.n_fact, self.types);
        let fit = self.result();
        (0..k)
            .filter(|&r| {
                (0..self.spots).all(|s| fit.w[s * k + r] == 0.0)
                    || fit.h[r * f..(r + 1) * f].iter().all(|&v| v == 0.0)
            })
            .count()
    }

    /// W (spots x factors).
    pub fn location_factors(&self) -> Vec<f64> {
        self.result().w.iter().map(|&v| v as f64).collect()
    }

    /// Hᵀ (types x factors).
    pub fn cell_type_factors(&self) -> Vec<f64> {
        let (k, f) = (self.n_fact, self.types);
        let h = &self.result().h;
        (0..f * k).map(|i| h[(i % k) * f + i / k] as f64).collect()
    }

    /// W_sr · Σ_f H_rf: the cells each factor accounts for in each spot.
    pub fn numi_factors(&self) -> Vec<f64> {
        let (k, f) = (self.n_fact, self.types);
        let h = &self.result().h;
        let tot: Vec<f64> = (0..k)
            .map(|r| h[r * f..(r + 1) * f].iter().map(|&v| v as f64).sum())
            .collect();
        self.result()
            .w
            .iter()
            .enumerate()
            .map(|(i, &w)| w as f64 * tot[i % k])
            .collect()
    }

    /// Each cell type's loadings divided by their sum over factors (NaN for
    /// a type no factor uses, as the reference gives).
    pub fn cell_type_fractions(&self) -> Vec<f64> {
        let k = self.n_fact;
        let mut c = self.cell_type_factors();
        for row in c.chunks_mut(k) {
            let s: f64 = row.iter().sum();
            for v in row.iter_mut() {
                *v /= s;
            }
        }
        c
    }
}

/// The spots x types abundance matrix in `obsm[key]` (a frame, as
/// cell2location writes it, or an array with `uns['mod']['factor_names']`),
/// with the cell-type names.
pub fn abundance(sp: Named, key: &str) -> Result<(Vec<String>, Vec<f32>), Error> {
    let err = |m: String| Error::new(sp.name, &format!("obsm['{key}']"), m);
    let (types, rows, values): (Vec<String>, usize, Vec<f64>) = match sp.data.obsm.get(key) {
        None => {
            let have: Vec<&str> = sp.data.obsm.keys().map(|k| k.as_str()).collect();
            return Err(err(format!(
                "not found; run `tessera cell2location map` first (obsm has: {})",
                if have.is_empty() {
                    "nothing".to_string()
                } else {
                    have.join(", ")
                }
            )));
        }
        Some(Annotation::Frame(fr)) => {
            // Columns are '{k}cell_abundance_w_sf_{type}'.
            let prefix = format!("{}_", key.replace("_cell_abundance", "cell_abundance"));
            let mut types = vec![];
            let mut v = vec![0f64; fr.len() * fr.columns.len()];
            let nc = fr.columns.len();
            for (j, (name, col)) in fr.columns.iter().enumerate() {
                types.push(name.strip_prefix(&prefix).unwrap_or(name).to_string());
                let vals: Vec<f64> = match col {
                    Column::Float(x) => x.clone(),
                    Column::Int(x) => x.iter().map(|&i| i as f64).collect(),
                    other => {
                        return Err(err(format!(
                            "column '{name}' is {}, expected numbers",
                            other.kind()
                        )))
                    }
                };
                for (i, x) in vals.into_iter().enumerate() {
                    v[i * nc + j] = x;
                }
            }
            (types, fr.len(), v)
        }
        Some(Annotation::Array(a)) => {
            let names = sp
                .data
                .uns
                .get("mod")
                .and_then(|m| m.get("factor_names"))
                .and_then(|v| match v {
                    Value::Strings(s) if s.len() == a.ncols() => Some(s.clone()),
                    _ => None,
                })
                .unwrap_or_else(|| (0..a.ncols()).map(|j| format!("type_{j}")).collect());
            (names, a.nrows(), a.iter().copied().collect())
        }
    };
    if types.is_empty() || rows == 0 {
        return Err(err("is empty".into()));
    }
    if let Some(bad) = values.iter().find(|v| !v.is_finite() || **v < 0.0) {
        return Err(err(format!(
            "holds {bad}; abundances must be finite and non-negative"
        )));
    }
    Ok((types, values.into_iter().map(|v| v as f32).collect()))
}

/// Adds one factor number's result as the reference does:
/// `uns['mod_coloc_n_fact{k}']` and obs columns `mean_nUMI_factorsfact_{r}`.
pub fn annotate(sp: &mut Dataset, g: &Groups, cell_types: &[String]) {
    let k = g.n_fact;
    let fact_names: Vec<String> = (0..k).map(|r| format!("fact_{r}")).collect();
    let arr = |rows: usize, data: Vec<f64>| Value::Floats {
        shape: vec![rows, k],
        data,
    };
    let numi = g.numi_factors();
    let mut means = BTreeMap::new();
    means.insert(
        "location_factors".into(),
        arr(g.spots, g.location_factors()),
    );
    means.insert(
        "cell_type_factors".into(),
        arr(g.types, g.cell_type_factors()),
    );
    means.insert("nUMI_factors".into(), arr(g.spots, numi.clone()));
    let mut m = BTreeMap::new();
    m.insert(
        "mod_name".into(),
        Value::Str("CoLocatedGroupsSklearnNMF".into()),
    );
    m.insert("fact_names".into(), Value::Strings(fact_names.clone()));
    m.insert("var_names".into(), Value::Strings(cell_types.to_vec()));
    m.insert("obs_names".into(), Value::Strings(sp.obs.index.clone()));
    m.insert("post_sample_means".into(), Value::Dict(means));
    sp.uns
        .insert(format!("mod_coloc_n_fact{k}"), Value::Dict(m));
    for (r, f) in fact_names.iter().enumerate() {
        sp.obs.set(
            &format!("mean_nUMI_factors{f}"),
            Column::Float((0..g.spots).map(|s| numi[s * k + r]).collect()),
        );
    }
}

/// `cell_type_fractions_mean/n_fact{k}.csv`: types x factors.
pub fn fractions_csv(g: &Groups, cell_types: &[String]) -> String {
    let columns: Vec<String> = (0..g.n_fact)
        .map(|r| format!("mean_cell_type_factorsfact_{r}"))
        .collect();
    crate::io::table_csv("", &columns, cell_types, &g.cell_type_fractions())
}

/// `location_factors_mean/n_fact{k}.csv`: spots x factors (nUMI factors).
pub fn locations_csv(g: &Groups, spots: &[String]) -> String {
    let columns: Vec<String> = (0..g.n_fact)
        .map(|r| format!("mean_nUMI_factorsfact_{r}"))
        .collect();
    crate::io::table_csv("", &columns, spots, &g.numi_factors())
}

/// `factor_markers/n_fact{k}.csv`: per factor, the cell types with the
/// largest fractions in it ("type: 0.81"), best first.
pub fn markers_csv(g: &Groups, cell_types: &[String], top: usize) -> String {
    let k = g.n_fact;
    let frac = g.cell_type_fractions();
    let top = top.min(cell_types.len());
    let mut out = String::new();
    for i in 1..=top {
        out.push_str(&format!(",top-{i}"));
    }
    out.push('\n');
    for r in 0..k {
        let mut order: Vec<usize> = (0..cell_types.len()).collect();
        let at = |t: usize| {
            let v = frac[t * k + r];
            if v.is_nan() {
                f64::NEG_INFINITY
            } else {
                v
            }
        };
        order.sort_by(|&a, &b| at(b).total_cmp(&at(a)));
        out.push_str(&format!("fact_{r}"));
        for &t in &order[..top] {
            out.push(',');
            out.push_str(&csv_field(&format!(
                "{}: {:.2}",
                cell_types[t],
                frac[t * k + r]
            )));
        }
        out.push('\n');
    }
    out
}

/// Columns of a (n x k) and b (n x k): the mean correlation of a one-to-one
/// greedy matching of a's factors to b's, best pairs first.
fn matched_correlation(a: &[f64], b: &[f64], n: usize, k: usize) -> f64 {
    let col = |m: &[f64], j: usize| -> Vec<f64> { (0..n).map(|i| m[i * k + j]).collect() };
    let pearson = |x: &[f64], y: &[f64]| {
        let r = crate::models::pearson(x, y);
        // As the reference: an undefined correlation counts as −1.
        if r.is_finite() {
            r
        } else {
            -1.0
        }
    };
    let (ca, cb): (Vec<_>, Vec<_>) = (
        (0..k).map(|j| col(a, j)).collect(),
        (0..k).map(|j| col(b, j)).collect(),
    );
    let mut pairs: Vec<(f64, usize, usize)> = vec![];
    for (i, x) in ca.iter().enumerate() {
        for (j, y) in cb.iter().enumerate() {
            pairs.push((pearson(x, y), i, j));
        }
    }
    pairs.sort_by(|x, y| y.0.total_cmp(&x.0));
    let (mut used_a, mut used_b, mut sum) = (vec![false; k], vec![false; k], 0.0);
    for (r, i, j) in pairs {
        if !used_a[i] && !used_b[j] {
            used_a[i] = true;
            used_b[j] = true;
            sum += r;
        }
    }
    sum / k.max(1) as f64
}

/// Runs every factor number; `progress(done, total)` after each restart.
pub async fn run<D: Device>(
    dev: &D,
    x: &[f32],
    spots: usize,
    types: usize,
    o: &Options,
    progress: &mut dyn FnMut(usize, usize),
) -> Vec<Groups> {
    let total = o.n_fact.len() * o.restarts.max(1);
    let mut done = 0;
    let mut out = vec![];
    for &k in &o.n_fact {
        let p = Nmf {
            n_components: k,
            alpha_w: o.alpha,
            alpha_h: None,
            l1_ratio: o.l1_ratio,
            max_iter: o.max_iter,
            tol: o.tol,
        };
        let mut rng = LegacyNormal::new(o.seed);
        let mut restarts = vec![];
        for _ in 0..o.restarts.max(1) {
            let (w0, h0) = random_init(x, spots, types, k, &mut rng);
            restarts.push(fit_cd(dev, &p, x, spots, types, &w0, &h0).await);
            done += 1;
            progress(done, total);
        }
        let mut g = Groups {
            n_fact: k,
            restarts,
            stability_cell_types: vec![],
            stability_locations: vec![],
            spots,
            types,
        };
        let first_w: Vec<f64> = g.restarts[0].w.iter().map(|&v| v as f64).collect();
        let ht = |fit: &NmfFit| -> Vec<f64> {
            (0..types * k)
                .map(|i| fit.h[(i % k) * types + i / k] as f64)
                .collect()
        };
        let first_h = ht(&g.restarts[0]);
        for fit in &g.restarts[1..] {
            let w: Vec<f64> = fit.w.iter().map(|&v| v as f64).collect();
            g.stability_cell_types
                .push(matched_correlation(&first_h, &ht(fit), types, k));
            g.stability_locations
                .push(matched_correlation(&first_w, &w, spots, k));
        }
        out.push(g);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compute::cpu::Cpu;
    use crate::data::Frame;

    #[test]
    fn abundance_reads_frames_and_names_bad_input() {
        let mut d = Dataset {
            obs: Frame::with_index(vec!["s1".into(), "s2".into()]),
            ..Dataset::default()
        };
        let key = "q05_cell_abundance_w_sf";
        let e = abundance(Named::new("sp.h5ad", &d), key)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("obsm['q05_cell_abundance_w_sf']") && e.contains("not found"),
            "{e}"
        );
        let mut fr = Frame::with_index(d.obs.index.clone());
        fr.set("q05cell_abundance_w_sf_B", Column::Float(vec![1.0, 2.0]));
        fr.set("q05cell_abundance_w_sf_T", Column::Int(vec![0, 3]));
        d.obsm.insert(key.into(), Annotation::Frame(fr.clone()));
        let (types, x) = abundance(Named::new("sp.h5ad", &d), key).unwrap();
        assert_eq!(types, vec!["B", "T"]);
        assert_eq!(x, vec![1.0, 0.0, 2.0, 3.0]);
        fr.set("q05cell_abundance_w_sf_T", Column::Float(vec![0.0, -1.0]));
        d.obsm.insert(key.into(), Annotation::Frame(fr.clone()));
        let e = abundance(Named::new("sp.h5ad", &d), key)
            .unwrap_err()
            .to_string();
        assert!(e.contains("non-negative"), "{e}");
        fr.set(
            "q05cell_abundance_w_sf_T",
            Column::Str(vec!["a".into(), "b".into()]),
        );
        d.obsm.insert(key.into(), Annotation::Frame(fr));
        let e = abundance(Named::new("sp.h5ad", &d), key)
            .unwrap_err()
            .to_string();
        assert!(e.contains("expected numbers"), "{e}");
    }

    #[test]
    fn co_located_types_share_a_factor() {
        // Types 0-2 live in the left half of the spots, 3-5 in the right.
        let (spots, types) = (60, 6);
        let x: Vec<f32> = (0..spots * types)
            .map(|i| {
                let (s, t) = (i / types, i % types);
                let inside = (s < spots / 2) == (t < 3);
                if inside {
                    2.0 + ((i * 7) % 5) as f32 * 0.3
                } else {
                    0.05
                }
            })
            .collect();
        let o = Options {
            n_fact: vec![2, 3],
            restarts: 3,
            max_iter: 2000,
            ..Options::default()
        };
        let runs = pollster::block_on(run(&Cpu, &x, spots, types, &o, &mut |_, _| {}));
        assert_eq!(runs.len(), 2);
        let two = &runs[0];
        let frac = two.cell_type_fractions();
        // Each type sits mostly in one factor, and 0-2 share theirs.
        let main: Vec<usize> = (0..types)
            .map(|t| if frac[t * 2] > frac[t * 2 + 1] { 0 } else { 1 })
            .collect();
        for t in 0..types {
            assert!(
                frac[t * 2].max(frac[t * 2 + 1]) > 0.8,
                "type {t}: {:?}",
                &frac[t * 2..t * 2 + 2]
            );
        }
        assert!(
            main[0] == main[1] && main[1] == main[2] && main[3] == main[4] && main[0] != main[3]
        );
        assert_eq!(two.stability_cell_types.len(), 2);
        assert!(
            two.stability_cell_types.iter().all(|&r| r > 0.95),
            "{:?}",
            two.stability_cell_types
        );
        // nUMI factors add up to the fitted cells per spot.
        let numi = two.numi_factors();
        let fit = two.result();
        for s in 0..spots {
            let fitted: f64 = (0..types)
                .map(|t| {
                    (0..2)
                        .map(|r| fit.w[s * 2 + r] as f64 * fit.h[r * types + t] as f64)
                        .sum::<f64>()
                })
                .sum();
            let total: f64 = numi[s * 2..s * 2 + 2].iter().sum();
            assert!((fitted - total).abs() < 1e-6 * fitted.max(1.0));
        }
    }
}
