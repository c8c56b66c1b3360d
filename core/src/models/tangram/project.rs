//! What a map is for: cell annotations and gene expression carried onto
//! space (`project_cell_annotations`, `project_genes`), per-gene agreement
//! with the measured data (`compare_spatial_geneexp`), cross-validation over
//! training genes (`cross_val`) and its summary (`eval_metric`).

use crate::compute::{Csr, Device, Gemm};
use crate::data::{dense, Column, Dataset, Frame, Matrix, Value};
use crate::io::Error;

use super::prep::{self, Named};
use super::{map_cells_to_space, Mapping, Mode, Options};

/// The annotation label of every row of the map.
pub fn row_labels(
    sc: Named,
    column: &str,
    mode: Mode,
    rows: &[String],
) -> Result<Vec<String>, Error> {
    if mode == Mode::Clusters {
        // Rows are clusters; only the cluster label itself can be projected.
        return Ok(rows.to_vec());
    }
    prep::labels(sc, column)
}

/// `tangram_ct_pred` = Pᵀ · onehot(labels): spots x annotation names (first
/// appearance order). With a filter, rows at or below the threshold are left out.
pub fn cell_annotations(
    map: &[f32],
    rows: usize,
    spots: usize,
    labels: &[String],
    filter: Option<(&[f32], f32)>,
) -> (Vec<String>, Vec<f32>) {
    let names = prep::unique(labels);
    let pos: std::collections::HashMap<&str, usize> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), i))
        .collect();
    let t = names.len();
    let mut acc = vec![0f64; spots * t];
    for i in 0..rows {
        if filter.is_some_and(|(f, thr)| f[i] <= thr) {
            continue;
        }
        if let Some(&c) = pos.get(labels[i].as_str()) {
            for j in 0..spots {
                acc[j * t + c] += map[i * spots + j] as f64;
            }
        }
    }
    (names, acc.into_iter().map(|v| v as f32).collect())
}

/// `project_genes`: spots x every expressed single-cell gene, X = Pᵀ X_sc
/// (cluster sums or means in clusters mode), computed on the device.
pub async fn project_genes<D: Device>(
    dev: &D,
    sc: Named<'_>,
    sp: Named<'_>,
    m: &Mapping,
    scale: bool,
) -> Result<Dataset, Error> {
    let x = sc
        .data
        .x
        .as_ref()
        .ok_or_else(|| Error::new(sc.name, "X", "has no expression matrix"))?;
    let nonzero = &m.prep.sc_nonzero;
    let cols: Vec<usize> = (0..nonzero.len()).filter(|&c| nonzero[c] > 0).collect();
    let genes: Vec<String> = cols.iter().map(|&c| sc.data.var.index[c].clone()).collect();
    let (ns, gk) = (m.spots.len(), cols.len());
    let mut out = vec![0f32; ns * gk];
    let n = m.rows.len();
    let max = dev.max_buffer_len();
    // Gene chunks and row blocks keep every buffer within one binding.
    let gc = (max / ns.max(n).max(1)).clamp(1, gk.max(1));
    let per = (max / ns.max(gc).max(1)).clamp(1, n.max(1));
    let csr = match (&m.cell_cluster, x.to_csr()) {
        (None, Matrix::Csr(s)) => Some(s),
        _ => None,
    };
    for g0 in (0..gk).step_by(gc) {
        let chunk = &cols[g0..(g0 + gc).min(gk)];
        let w = chunk.len();
        match &m.cell_cluster {
            Some(of_cell) => {
                let cl = prep::Clusters {
                    names: m.rows.clone(),
                    of_cell: of_cell.clone(),
                    density: vec![],
                };
                let agg = prep::aggregate(&cl, &x.columns_dense(chunk), w, scale);
                let c = dev.zeros(ns * w);
                let g = Gemm {
                    trans_a: true,
                    ..Gemm::new(ns, w, n)
                };
                dev.gemm(g, &dev.upload(&m.matrix), &dev.upload(&agg), &c);
                let part = dev.read(&c).await;
                for j in 0..ns {
                    out[j * gk + g0..j * gk + g0 + w].copy_from_slice(&part[j * w..(j + 1) * w]);
                }
            }
            None => {
                // Row blocks of cells: out += (X_bᵀ P_b)ᵀ with X_b sparse.
                let csr = csr.as_ref().expect("CSR copy of X");
                let mut slot = vec![u32::MAX; nonzero.len()];
                for (j, &c) in chunk.iter().enumerate() {
                    slot[c] = j as u32;
                }
                for r0 in (0..n).step_by(per) {
                    let nb = per.min(n - r0);
                    let (mut ip, mut ix, mut dv) = (vec![0u32], vec![], vec![]);
                    for r in r0..r0 + nb {
                        for i in csr.indptr[r] as usize..csr.indptr[r + 1] as usize {
                            let j = slot[csr.indices[i] as usize];
                            if j != u32::MAX && csr.data[i] != 0.0 {
                                ix.push(j);
                                dv.push(csr.data[i]);
                            }
                        }
                        ip.push(ix.len() as u32);
                    }
                    let (ipb, ixb, dvb) = (
                        dev.upload_index(&ip),
                        dev.upload_index(&ix),
                        dev.upload(&dv),
                    );
                    let a = Csr {
                        rows: nb,
                        cols: w,
                        indptr: &ipb,
                        indices: &ixb,
                        data: &dvb,
                    };
                    let pb = dev.upload(&m.matrix[r0 * ns..(r0 + nb) * ns]);
                    let c = dev.zeros(w * ns);
                    dev.csr_mm(&a, &pb, ns, true, &c);
                    let part = dev.read(&c).await;
                    for g in 0..w {
                        for j in 0..ns {
                            out[j * gk + g0 + g] += part[g * ns + j];
                        }
                    }
                }
            }
        }
    }
    let training: std::collections::HashSet<&str> =
        m.training_genes.iter().map(|s| s.as_str()).collect();
    let mut var = Frame::with_index(genes.clone());
    var.set(
        "is_training",
        Column::Bool(
            genes
                .iter()
                .map(|g| training.contains(g.as_str()))
                .collect(),
        ),
    );
    let mut ds = Dataset {
        x: Some(Matrix::Dense(
            dense(ns, gk, out).expect("rows x cols values"),
        )),
        x_dtype: "float32".into(),
        obs: Frame::with_index(sp.data.obs.index.clone()),
        var,
        ..Dataset::default()
    };
    ds.uns.insert(
        "training_genes".into(),
        Value::Strings(m.training_genes.clone()),
    );
    if let Some(a) = sp.data.spatial() {
        ds.obsm
            .insert("spatial".into(), crate::data::Annotation::Array(a.clone()));
    }
    Ok(ds)
}

/// One row of `compare_spatial_geneexp`.
#[derive(Debug, Clone, PartialEq)]
pub struct GeneComparison {
    pub gene: String,
    pub score: f64,
    pub is_training: bool,
    pub sparsity_sp: f64,
    pub sparsity_sc: f64,
    pub sparsity_diff: f64,
}

/// Cosine between projected and measured expression of every shared gene
/// (or of `genes`), best first.
pub fn compare_spatial_geneexp(
    projected: &Dataset,
    sc: Named,
    sp: Named,
    m: &Mapping,
    genes: Option<&[String]>,
) -> Vec<GeneComparison> {
    let px = projected.x.as_ref().expect("projection has X");
    let pcol: std::collections::HashMap<&str, usize> = projected
        .var
        .index
        .iter()
        .enumerate()
        .map(|(i, g)| (g.as_str(), i))
        .collect();
    let spx = sp.data.x.as_ref().expect("checked in prepare");
    let scx = sc.data.x.as_ref().expect("checked in prepare");
    let (sp_nz, sc_nz) = (&m.prep.sp_nonzero, &m.prep.sc_nonzero);
    let (n_sp, n_sc) = (spx.shape().0 as f64, scx.shape().0 as f64);
    let wanted: Option<std::collections::HashSet<String>> =
        genes.map(|g| g.iter().map(|s| s.to_lowercase()).collect());
    let training: std::collections::HashSet<&str> =
        m.training_genes.iter().map(|s| s.as_str()).collect();
    let chosen: Vec<&(String, usize, usize)> = m
        .prep
        .overlap
        .iter()
        .filter(|(g, _, _)| {
            wanted
                .as_ref()
                .is_none_or(|w| w.contains(&g.to_lowercase()))
        })
        .filter(|(g, _, _)| pcol.contains_key(g.as_str()))
        .collect();
    let a = px.columns_dense(
        &chosen
            .iter()
            .map(|(g, _, _)| pcol[g.as_str()])
            .collect::<Vec<_>>(),
    );
    let b = spx.columns_dense(&chosen.iter().map(|c| c.2).collect::<Vec<_>>());
    let k = chosen.len();
    let rows = px.shape().0;
    let mut out: Vec<GeneComparison> = chosen
        .iter()
        .enumerate()
        .map(|(j, (g, scc, spc))| {
            let (mut ab, mut aa, mut bb) = (0f64, 0f64, 0f64);
            for i in 0..rows {
                let (x, y) = (a[i * k + j] as f64, b[i * k + j] as f64);
                ab += x * y;
                aa += x * x;
                bb += y * y;
            }
            let sparsity_sp = 1.0 - sp_nz[*spc] as f64 / n_sp;
            let sparsity_sc = 1.0 - sc_nz[*scc] as f64 / n_sc;
            GeneComparison {
                gene: g.clone(),
                score: ab / (aa.sqrt() * bb.sqrt()),
                is_training: training.contains(g.as_str()),
                sparsity_sp,
                sparsity_sc,
                sparsity_diff: sparsity_sp - sparsity_sc,
            }
        })
        .collect();
    out.sort_by(|x, y| y.score.total_cmp(&x.score));
    out
}

/// `eval_metric`'s summary of held-out genes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Metrics {
    pub avg_test_score: f64,
    pub avg_train_score: f64,
    /// Test scores weighted by 1 − spatial sparsity.
    pub sp_sparsity_score: f64,
    /// Area under the degree-2 fit of sparsity_sp against score on [0, 1].
    pub auc_score: f64,
}

/// Summary of a comparison table: test genes are `test` or, when None, the
/// non-training genes. The reference's AUC step drops its end point and
/// can hand sklearn a non-monotone curve; here the fitted polynomial,
/// clamped to [0, 1], is integrated over [0, 1] directly.
pub fn eval_metric(df: &[GeneComparison], test: Option<&[String]>) -> Metrics {
    let is_test = |g: &GeneComparison| match test {
        Some(t) => t.iter().any(|x| x.eq_ignore_ascii_case(&g.gene)),
        None => !g.is_training,
    };
    let tests: Vec<&GeneComparison> = df.iter().filter(|g| is_test(g)).collect();
    let trains: Vec<&GeneComparison> = df.iter().filter(|g| g.is_training).collect();
    let mean = |v: &[&GeneComparison]| {
        if v.is_empty() {
            f64::NAN
        } else {
            v.iter().map(|g| g.score).sum::<f64>() / v.len() as f64
        }
    };
    let wsum: f64 = tests.iter().map(|g| 1.0 - g.sparsity_sp).sum();
    let sp_sparsity_score = tests
        .iter()
        .map(|g| g.score * (1.0 - g.sparsity_sp))
        .sum::<f64>()
        / wsum;
    let xs: Vec<f64> = tests.iter().map(|g| g.score).collect();
    let ys: Vec<f64> = tests.iter().map(|g| g.sparsity_sp).collect();
    let auc_score = match polyfit2(&xs, &ys) {
        Some(c) => {
            let steps = 1000;
            let f = |x: f64| (c[0] + c[1] * x + c[2] * x * x).clamp(0.0, 1.0);
            (0..steps)
                .map(|i| {
                    let (a, b) = (i as f64 / steps as f64, (i + 1) as f64 / steps as f64);
                    0.5 * (f(a) + f(b)) * (b - a)
                })
                .sum()
        }
        None => f64::NAN,
    };
    Metrics {
        avg_test_score: mean(&tests),
        avg_train_score: mean(&trains),
        sp_sparsity_score,
        auc_score,
    }
}

/// Least-squares c0 + c1 x + c2 x²; None with fewer than 3 distinct points.
fn polyfit2(x: &[f64], y: &[f64]) -> Option<[f64; 3]> {
    if x.len() < 3 {
        return None;
    }
    let mut a = [[0f64; 4]; 3];
    for (&xi, &yi) in x.iter().zip(y) {
        let p = [1.0, xi, xi * xi];
        for r in 0..3 {
            for c in 0..3 {
                a[r][c] += p[r] * p[c];
            }
            a[r][3] += p[r] * yi;
        }
    }
    // Gaussian elimination with partial pivoting.
    for col in 0..3 {
        let piv = (col..3).max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))?;
        a.swap(col, piv);
        if a[col][col].abs() < 1e-12 {
            return None;
        }
        let pivot = a[col];
        for (r, row) in a.iter_mut().enumerate() {
            if r != col {
                let f = row[col] / pivot[col];
                for (x, p) in row.iter_mut().zip(pivot).skip(col) {
                    *x -= f * p;
                }
            }
        }
    }
    Some([a[0][3] / a[0][0], a[1][3] / a[1][1], a[2][3] / a[2][2]])
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CvMode {
    /// Leave one gene out.
    Loo,
    /// Ten contiguous folds (sklearn's KFold without shuffling).
    TenFold,
}

/// Result of `cross_val`.
pub struct CrossVal {
    pub avg_test_score: f64,
    pub avg_train_score: f64,
    /// Every held-out gene with its test score.
    pub test_genes: Vec<GeneComparison>,
    pub metrics: Metrics,
}

/// Train/test splits of the training genes.
pub fn folds(genes: &[String], mode: CvMode) -> Vec<(Vec<String>, Vec<String>)> {
    let n = genes.len();
    let k = match mode {
        CvMode::Loo => n,
        CvMode::TenFold => 10.min(n),
    };
    let mut out = Vec::new();
    let mut start = 0;
    for f in 0..k {
        let size = n / k + usize::from(f < n % k);
        let test: Vec<String> = genes[start..start + size].to_vec();
        let train: Vec<String> = genes[..start]
            .iter()
            .chain(&genes[start + size..])
            .cloned()
            .collect();
        out.push((train, test));
        start += size;
    }
    out
}

/// `tg.cross_val`: one fit per fold on the training part, scored on the
/// held-out genes of its projection.
pub async fn cross_val<D: Device>(
    dev: &D,
    sc: Named<'_>,
    sp: Named<'_>,
    opts: &Options,
    mode: CvMode,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<CrossVal, Error> {
    let all = prep::prepare(sc, sp, opts.genes.as_deref())?.genes;
    if all.len() < 2 {
        return Err(Error::new(
            sc.name,
            "var_names",
            "cross-validation needs at least two training genes",
        ));
    }
    let splits = folds(&all, mode);
    let (mut tests, mut train_scores, mut fold_scores) = (Vec::new(), Vec::new(), Vec::new());
    let total = splits.len();
    for (i, (train, test)) in splits.into_iter().enumerate() {
        let o = Options {
            genes: Some(train),
            ..opts.clone()
        };
        let m = map_cells_to_space(dev, sc, sp, &o, &mut |_, _, _| {}).await?;
        let proj = project_genes(dev, sc, sp, &m, opts.scale).await?;
        let df = compare_spatial_geneexp(&proj, sc, sp, &m, Some(&test));
        let s: Vec<f64> = df
            .iter()
            .map(|g| g.score)
            .filter(|v| v.is_finite())
            .collect();
        if !s.is_empty() {
            fold_scores.push(s.iter().sum::<f64>() / s.len() as f64);
        }
        if let Some(&last) = m.history.main_loss.last() {
            train_scores.push(last);
        }
        tests.extend(df);
        progress(i + 1, total);
    }
    let nanmean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let names: Vec<String> = tests.iter().map(|g| g.gene.clone()).collect();
    let metrics = eval_metric(&tests, Some(&names));
    Ok(CrossVal {
        avg_test_score: nanmean(&fold_scores),
        avg_train_score: nanmean(&train_scores),
        test_genes: tests,
        metrics,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_cover_every_gene_once() {
        let genes: Vec<String> = (0..23).map(|i| format!("g{i}")).collect();
        for mode in [CvMode::Loo, CvMode::TenFold] {
            let f = folds(&genes, mode);
            assert_eq!(f.len(), if mode == CvMode::Loo { 23 } else { 10 });
            let mut seen: Vec<String> = f.iter().flat_map(|(_, t)| t.clone()).collect();
            seen.sort();
            let mut want = genes.clone();
            want.sort();
            assert_eq!(seen, want);
            for (train, test) in &f {
                assert_eq!(train.len() + test.len(), 23);
            }
        }
        // sklearn KFold: the first n % 10 folds get one extra gene.
        let f = folds(&genes, CvMode::TenFold);
        assert_eq!(f[0].1.len(), 3);
        assert_eq!(f[9].1.len(), 2);
    }

    #[test]
    fn polyfit_recovers_a_quadratic_and_auc_integrates_it() {
        let xs: Vec<f64> = (0..20).map(|i| i as f64 / 19.0).collect();
        let ys: Vec<f64> = xs.iter().map(|x| 0.9 - 0.5 * x * x).collect();
        let c = polyfit2(&xs, &ys).unwrap();
        assert!((c[0] - 0.9).abs() < 1e-9 && c[1].abs() < 1e-9 && (c[2] + 0.5).abs() < 1e-9);
        let df: Vec<GeneComparison> = xs
            .iter()
            .zip(&ys)
            .map(|(&x, &y)| GeneComparison {
                gene: format!("{x}"),
                score: x,
                is_training: false,
                sparsity_sp: y,
                sparsity_sc: 0.0,
                sparsity_diff: 0.0,
            })
            .collect();
        let m = eval_metric(&df, None);
        // ∫0^1 0.9 − 0.5x² dx = 0.9 − 1/6.
        assert!(
            (m.auc_score - (0.9 - 1.0 / 6.0)).abs() < 1e-5,
            "{}",
            m.auc_score
        );
        assert!(m.avg_train_score.is_nan());
        assert!((m.avg_test_score - 0.5).abs() < 1e-12);
    }
}
