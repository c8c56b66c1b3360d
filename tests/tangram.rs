//! Tangram against the reference runs in $TESSERA_DATA/ref/tangram (tangram-sc
//! 1.0.4, seed 42, all shared genes, defaults otherwise): the exact optimiser
//! inputs, the seeded initial logits, and the fitted maps in both modes.
//! Tolerances are the issue's: per-spot Pearson of tangram_ct_pred >= 0.95
//! (median over spots) and the final training score within 0.01.

mod common;

use common::pearson;

use std::path::{Path, PathBuf};

use tessera_core::compute::cpu::Cpu;
use tessera_core::compute::gpu::Gpu;
use tessera_core::data::{dense, Column, Dataset, Frame, Matrix};
use tessera_core::io::{self, npy, FileSet, TableOptions};
use tessera_core::models::numpy_rng::LegacyNormal;
use tessera_core::models::tangram::{self, fit, prep, project, Mapping, Mode, Named, Options};

const PAIRS: [(&str, &str, &str); 2] = [
    (
        "rctd_visium_hippocampus",
        "rctd_visium_hippocampus/derived/reference.h5ad",
        "rctd_visium_hippocampus/derived/spatial.h5ad",
    ),
    (
        "seqfish_cortex_tasic",
        "seqfish_cortex_tasic/derived/tasic_reference.h5ad",
        "seqfish_cortex_tasic/derived/seqfish_spatial.h5ad",
    ),
];

fn block<F: std::future::Future>(f: F) -> F::Output {
    pollster::block_on(f)
}

fn load(dir: &Path, rel: &str) -> Dataset {
    let set = FileSet::from_path(&dir.join(rel)).unwrap();
    io::read(set, &TableOptions::default())
        .unwrap_or_else(|e| panic!("{rel}: {e}"))
        .dataset
}

fn npy_file(p: &Path) -> (Vec<usize>, Vec<f64>) {
    let bytes = std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    npy::read(&p.display().to_string(), &bytes).unwrap()
}

fn lines(p: &Path) -> Vec<String> {
    std::fs::read_to_string(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .lines()
        .skip(1)
        .map(|l| l.trim_matches('"').to_string())
        .collect()
}

/// (column names, row names, values) of a pandas CSV with an index column.
fn frame_csv(p: &Path) -> (Vec<String>, Vec<String>, Vec<Vec<f64>>) {
    let text = std::fs::read_to_string(p).unwrap();
    let mut it = text.lines();
    let cols: Vec<String> = it
        .next()
        .unwrap()
        .split(',')
        .skip(1)
        .map(String::from)
        .collect();
    let (mut rows, mut vals) = (vec![], vec![]);
    for l in it {
        let mut f = l.split(',');
        rows.push(f.next().unwrap().to_string());
        vals.push(f.map(|v| v.parse::<f64>().unwrap_or(f64::NAN)).collect());
    }
    (cols, rows, vals)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Median over spots of the Pearson correlation of our ct_pred with the reference's.
fn ct_pred_agreement(m: &Mapping, ref_csv: &Path) -> f64 {
    let (names, ours) = m.ct_pred.as_ref().expect("ct_pred");
    let (cols, spots, vals) = frame_csv(ref_csv);
    assert_eq!(spots, m.spots, "spot order");
    let idx: Vec<usize> = cols
        .iter()
        .map(|c| {
            names
                .iter()
                .position(|n| n == c)
                .unwrap_or_else(|| panic!("type {c}"))
        })
        .collect();
    let t = names.len();
    median(
        (0..spots.len())
            .map(|s| {
                let a: Vec<f64> = idx.iter().map(|&j| ours[s * t + j] as f64).collect();
                pearson(&a, &vals[s])
            })
            .collect(),
    )
}

fn ref_dir(data: &Path, pair: &str, mode: &str) -> PathBuf {
    data.join("ref/tangram").join(pair).join(mode)
}

fn final_score(dir: &Path) -> f64 {
    let text = std::fs::read_to_string(dir.join("summary.json")).unwrap();
    let key = "\"final_training_score_last_epoch_main_loss\":";
    let at = text.find(key).unwrap() + key.len();
    text[at..]
        .split([',', '\n'])
        .next()
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

fn opts(mode: Mode) -> Options {
    Options {
        mode,
        cluster_label: (mode == Mode::Clusters).then(|| "cell_type".to_string()),
        seed: Some(42),
        ..Options::default()
    }
}

#[test]
fn seeded_logits_are_numpys() {
    let Some(data) = common::data_dir("seeded_logits_are_numpys") else {
        return;
    };
    for (pair, _, _) in PAIRS {
        let (shape, want) = npy_file(&ref_dir(&data, pair, "clusters").join("init_M_logits.npy"));
        let got = LegacyNormal::new(42).normals_f32(shape.iter().product());
        assert!(
            got.iter().zip(&want).all(|(&g, &w)| g == w as f32),
            "{pair}: initial logits differ from np.random.seed(42); normal(0, 1)"
        );
    }
}

#[test]
fn preprocessing_matches_the_reference_inputs() {
    let Some(data) = common::data_dir("preprocessing_matches_the_reference_inputs") else {
        return;
    };
    for (pair, sc_rel, sp_rel) in PAIRS {
        let (sc, sp) = (load(&data, sc_rel), load(&data, sp_rel));
        let (scn, spn) = (Named::new(sc_rel, &sc), Named::new(sp_rel, &sp));
        let p = prep::prepare(scn, spn, None).unwrap();
        let dir = ref_dir(&data, pair, "clusters");
        let ref_genes = lines(&dir.join("training_genes.csv"));
        let ours: Vec<String> = p.genes.iter().map(|g| g.to_lowercase()).collect();
        let (mut a, mut b) = (ours.clone(), ref_genes.clone());
        a.sort();
        b.sort();
        assert_eq!(a, b, "{pair}: training genes");
        // G, column by column in the reference's gene order.
        let (gshape, g) = npy_file(&dir.join("input_G.npy"));
        let k = gshape[1];
        for (rj, gene) in ref_genes.iter().enumerate() {
            let j = ours.iter().position(|x| x == gene).unwrap();
            for s in 0..gshape[0] {
                assert_eq!(
                    p.g[s * k + j] as f64,
                    g[s * k + rj],
                    "{pair}: G[{s}, {gene}]"
                );
            }
        }
        let (_, d) = npy_file(&dir.join("input_density_rna_count_based.npy"));
        for (x, y) in p.rna_count_based.iter().zip(&d) {
            // The reference sums float32 counts in float32.
            assert!((x - y).abs() <= 1e-6 * y, "{pair}: density {x} vs {y}");
        }
        // Cluster profiles and fractions, rows in the reference's order.
        let labels = prep::labels(scn, "cell_type").unwrap();
        let cl = prep::clusters(&labels, prep::categories(scn, "cell_type").as_deref());
        assert_eq!(
            cl.names,
            lines(&dir.join("input_cluster_order.csv")),
            "{pair}: cluster order"
        );
        let agg = prep::aggregate(&cl, &p.s, k, true);
        let (_, s_ref) = npy_file(&dir.join("input_S_clusters.npy"));
        for (r, name) in cl.names.iter().enumerate() {
            for (rj, gene) in ref_genes.iter().enumerate() {
                let j = ours.iter().position(|x| x == gene).unwrap();
                let (x, y) = (agg[r * k + j] as f64, s_ref[r * k + rj]);
                assert!(
                    (x - y).abs() <= 1e-5 * y.abs().max(1.0),
                    "{pair}: S[{name}, {gene}] {x} vs {y}"
                );
            }
        }
        let (_, ds) = npy_file(&dir.join("input_d_source.npy"));
        for (x, y) in cl.density.iter().zip(&ds) {
            assert!((x - y).abs() < 1e-12, "{pair}: cluster density");
        }
    }
}

/// Runs one mode on the CPU and checks it against the reference run.
fn check_mode(pair: &str, sc_rel: &str, sp_rel: &str, mode: Mode) {
    let Some(data) = common::data_dir(&format!("tangram {pair} {}", mode.name())) else {
        return;
    };
    let (sc, sp) = (load(&data, sc_rel), load(&data, sp_rel));
    let (scn, spn) = (Named::new(sc_rel, &sc), Named::new(sp_rel, &sp));
    let mut ticks = Vec::new();
    let m = block(tangram::map_cells_to_space(
        &Cpu,
        scn,
        spn,
        &opts(mode),
        &mut |done, _, loss| ticks.push((done, loss)),
    ))
    .unwrap();
    assert!(
        ticks.len() >= 10,
        "progress was reported {} times",
        ticks.len()
    );
    // The live loss is the history's total at that epoch.
    for &(done, loss) in &ticks {
        assert_eq!(loss, m.history.total_loss[done - 1], "epoch {done}");
    }
    let dir = ref_dir(&data, pair, mode.name());
    let agreement = ct_pred_agreement(&m, &dir.join("tangram_ct_pred.csv"));
    let score = *m.history.main_loss.last().unwrap();
    let want = final_score(&dir);
    eprintln!(
        "{pair} {}: ct_pred median Pearson {agreement:.4}, score {score:.5} (reference {want:.5})",
        mode.name()
    );
    assert!(
        agreement >= 0.95,
        "{pair} {}: median per-spot Pearson {agreement}",
        mode.name()
    );
    assert!(
        (score - want).abs() <= 0.01,
        "{pair} {}: final score {score} vs {want}",
        mode.name()
    );
    // train_genes_df agrees with the history and is sorted.
    let mean: f64 =
        m.train_genes_df.iter().map(|g| g.train_score).sum::<f64>() / m.train_genes_df.len() as f64;
    assert!(
        (mean - score).abs() < 2e-3,
        "train_genes_df mean {mean} vs last score {score}"
    );
    assert!(m
        .train_genes_df
        .windows(2)
        .all(|w| w[0].train_score >= w[1].train_score));
    // Rows of the map are distributions.
    let ns = m.spots.len();
    for r in m.matrix.chunks(ns) {
        assert!((r.iter().map(|&v| v as f64).sum::<f64>() - 1.0).abs() < 1e-4);
    }
    // Same start, same optimiser: the map itself is close to the reference's.
    let (_, want_map) = npy_file(&dir.join("mapping_matrix.npy"));
    // Clusters: the reference numbers its rows; ours are the cluster names.
    let rows = match mode {
        Mode::Clusters => lines(&dir.join("input_cluster_order.csv")),
        _ => lines(&dir.join("mapping_rows.csv")),
    };
    assert_eq!(rows, m.rows, "{pair}: row order");
    let max = m
        .matrix
        .iter()
        .zip(&want_map)
        .map(|(&a, &b)| (a as f64 - b).abs())
        .fold(0.0, f64::max);
    eprintln!("{pair} {}: max |P - P_ref| = {max:.2e}", mode.name());
}

#[test]
fn clusters_mode_matches_the_reference_on_both_pairs() {
    for (pair, sc, sp) in PAIRS {
        check_mode(pair, sc, sp, Mode::Clusters);
    }
}

#[test]
fn cells_mode_matches_the_reference_on_both_pairs() {
    for (pair, sc, sp) in PAIRS {
        check_mode(pair, sc, sp, Mode::Cells);
    }
}

/// A small synthetic pair: cells of 3 types with distinct profiles, spots mixing them.
fn toy() -> (Dataset, Dataset) {
    let (genes, cells, spots) = (12, 30, 20);
    let profile = |t: usize, g: usize| {
        if g % 3 == t {
            5.0
        } else {
            0.5 + (g % 2) as f32
        }
    };
    let mut x = vec![];
    let mut labels = vec![];
    for c in 0..cells {
        let t = c % 3;
        labels.push(format!("type{t}"));
        for g in 0..genes {
            x.push(profile(t, g) * (1.0 + (c % 5) as f32 * 0.1));
        }
    }
    let mut y = vec![];
    for s in 0..spots {
        let w = [(s % 4) as f32, ((s + 1) % 3) as f32, 1.0];
        for g in 0..genes {
            y.push((0..3).map(|t| w[t] * profile(t, g)).sum::<f32>().round());
        }
    }
    let names = |p: &str, n: usize| (0..n).map(|i| format!("{p}{i}")).collect::<Vec<_>>();
    let mut obs = Frame::with_index(names("cell", cells));
    obs.set("cell_type", Column::Str(labels));
    let sc = Dataset {
        x: Some(Matrix::Dense(
            dense(cells, genes, x).expect("rows x cols values"),
        )),
        obs,
        var: Frame::with_index(names("Gene", genes)),
        ..Dataset::default()
    };
    let sp = Dataset {
        x: Some(Matrix::Dense(
            dense(spots, genes, y).expect("rows x cols values"),
        )),
        obs: Frame::with_index(names("spot", spots)),
        var: Frame::with_index(names("GENE", genes)),
        ..Dataset::default()
    };
    (sc, sp)
}

fn toy_named<'a>(sc: &'a Dataset, sp: &'a Dataset) -> (Named<'a>, Named<'a>) {
    (Named::new("sc", sc), Named::new("sp", sp))
}

#[test]
fn every_mode_runs_on_the_gpu_like_the_cpu() {
    let gpu = block(Gpu::new()).expect("a wgpu adapter (lavapipe in CI)");
    let (sc, sp) = toy();
    let (scn, spn) = toy_named(&sc, &sp);
    for mode in [Mode::Cells, Mode::Clusters, Mode::Constrained] {
        let mut o = opts(mode);
        o.hyper.num_epochs = 200;
        o.hyper.lambda_g2 = 0.5;
        o.hyper.lambda_r = 1e-3;
        o.target_count = (mode == Mode::Constrained).then_some(15.0);
        let a = block(tangram::map_cells_to_space(
            &Cpu,
            scn,
            spn,
            &o,
            &mut |_, _, _| {},
        ))
        .unwrap();
        let b = block(tangram::map_cells_to_space(
            &gpu,
            scn,
            spn,
            &o,
            &mut |_, _, _| {},
        ))
        .unwrap();
        let max = a
            .matrix
            .iter()
            .zip(&b.matrix)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max);
        assert!(max < 2e-3, "{mode:?}: CPU and GPU maps differ by {max}");
        for (h, g) in a.history.total_loss.iter().zip(&b.history.total_loss) {
            assert!(
                (h - g).abs() < 1e-3 * h.abs().max(1.0),
                "{mode:?}: loss {h} vs {g}"
            );
        }
        // The loss went down and the map explains the genes.
        let hist = &a.history.total_loss;
        assert!(
            hist.last().unwrap() < &hist[0],
            "{mode:?}: {} -> {}",
            hist[0],
            hist.last().unwrap()
        );
        assert!(*a.history.main_loss.last().unwrap() > 0.9, "{mode:?}");
        if mode == Mode::Constrained {
            let f = a.f_out.as_ref().unwrap();
            let kept: f32 = f.iter().sum();
            assert!(
                (kept - 15.0).abs() < 3.0,
                "filter keeps {kept} cells, target 15"
            );
            assert!(a.history.count_reg.iter().all(|v| v.is_finite()));
        }
        assert!(a
            .history
            .entropy_reg
            .iter()
            .all(|v| v.is_finite() && *v < 0.0));
        assert!(a.history.vg_reg.iter().all(|v| v.is_finite()));
    }
}

/// Gradient of the whole loss (every term on, two row blocks) against
/// central differences of the logged loss.
#[test]
fn loss_gradient_matches_finite_differences() {
    let (n, ns, k) = (5, 4, 3);
    let s: Vec<f32> = (0..n * k)
        .map(|i| 0.2 + ((i * 7) % 5) as f32 * 0.4)
        .collect();
    let g: Vec<f32> = (0..ns * k)
        .map(|i| 0.1 + ((i * 3) % 7) as f32 * 0.3)
        .collect();
    let d: Vec<f64> = vec![0.1, 0.2, 0.3, 0.4];
    let src: Vec<f64> = vec![0.1, 0.3, 0.2, 0.25, 0.15];
    let m0: Vec<f32> = (0..n * ns)
        .map(|i| ((i * 5 % 9) as f32 - 4.0) * 0.3)
        .collect();
    let f0: Vec<f32> = (0..n).map(|i| (i as f32 - 2.0) * 0.5).collect();
    let hp = fit::Hyper {
        learning_rate: 1e-3,
        num_epochs: 1,
        lambda_g1: 1.0,
        lambda_g2: 0.7,
        lambda_d: 0.9,
        lambda_r: 0.3,
        lambda_count: 0.5,
        lambda_f_reg: 0.8,
    };
    for constrained in [false, true] {
        let run = |m: &[f32], f: &[f32]| {
            let pb = fit::Problem {
                s: &s,
                g: &g,
                rows: n,
                spots: ns,
                genes: k,
                density: Some(&d),
                source: (!constrained).then_some(&src[..]),
                target_count: constrained.then_some(2.5),
                init_m: m.to_vec(),
                init_f: constrained.then(|| f.to_vec()),
                block_rows: Some(2),
                read_gradient: true,
            };
            block(fit::fit(&Cpu, &pb, &hp, &mut |_, _, _| {}))
        };
        let base = run(&m0, &f0);
        let (gm, gf) = base.gradient.unwrap();
        let loss = |m: &[f32], f: &[f32]| run(m, f).history.total_loss[0];
        let h = 1e-2f32;
        for i in 0..n * ns {
            let (mut mp, mut mm) = (m0.clone(), m0.clone());
            mp[i] += h;
            mm[i] -= h;
            let fd = (loss(&mp, &f0) - loss(&mm, &f0)) / (2.0 * h as f64);
            assert!(
                (gm[i] as f64 - fd).abs() < 2e-3 * fd.abs().max(1.0),
                "constrained {constrained}: dL/dM[{i}] {} vs {fd}",
                gm[i]
            );
        }
        if constrained {
            for i in 0..n {
                let (mut fp, mut fm) = (f0.clone(), f0.clone());
                fp[i] += h;
                fm[i] -= h;
                let fd = (loss(&m0, &fp) - loss(&m0, &fm)) / (2.0 * h as f64);
                assert!(
                    (gf[i] as f64 - fd).abs() < 2e-3 * fd.abs().max(1.0),
                    "dL/dF[{i}] {} vs {fd}",
                    gf[i]
                );
            }
        }
    }
}

fn expect_err(sc: &Dataset, sp: &Dataset, o: &Options) -> String {
    let (scn, spn) = (Named::new("sc.h5ad", sc), Named::new("sp.h5ad", sp));
    match block(tangram::map_cells_to_space(
        &Cpu,
        scn,
        spn,
        o,
        &mut |_, _, _| {},
    )) {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn bad_inputs_get_named_errors() {
    let (sc, sp) = toy();
    let mut o = opts(Mode::Cells);
    o.hyper.num_epochs = 5;
    // No shared genes.
    let mut other = sp.clone();
    other.var = Frame::with_index((0..12).map(|i| format!("other{i}")).collect());
    let e = expect_err(&sc, &other, &o);
    assert!(
        e.contains("share no expressed genes") && e.contains("Gene0") && e.contains("other0"),
        "{e}"
    );
    // A cluster label that does not exist.
    let mut c = opts(Mode::Clusters);
    c.cluster_label = Some("celltype".into());
    let e = expect_err(&sc, &sp, &c);
    assert!(
        e.contains("obs['celltype']") && e.contains("cell_type"),
        "{e}"
    );
    // Negative values.
    let mut neg = sp.clone();
    if let Some(Matrix::Dense(d)) = &mut neg.x {
        d[[0, 3]] = -2.0;
    }
    let e = expect_err(&sc, &neg, &o);
    assert!(
        e.starts_with("sp.h5ad: X:") && e.contains("1 negative"),
        "{e}"
    );
    // Requested genes that are nowhere.
    let mut g = o.clone();
    g.genes = Some(vec!["nope".into()]);
    let e = expect_err(&sc, &sp, &g);
    assert!(e.contains("none of the requested training genes"), "{e}");
    // Too many cells x spots for the device: the size needed, and clusters mode.
    let big = |n: usize, p: &str| Dataset {
        x: Some(Matrix::Dense(
            dense(n, 1, vec![1.0; n]).expect("rows x cols values"),
        )),
        obs: Frame::with_index((0..n).map(|i| format!("{p}{i}")).collect()),
        var: Frame::with_index(vec!["g".into()]),
        ..Dataset::default()
    };
    let e = expect_err(&big(200_000, "c"), &big(200_000, "s"), &o);
    assert!(e.contains("GiB") && e.contains("--mode clusters"), "{e}");
}

#[test]
fn row_blocks_give_the_same_fit_as_one_block() {
    let (sc, sp) = toy();
    let (scn, spn) = toy_named(&sc, &sp);
    let p = prep::prepare(scn, spn, None).unwrap();
    let hp = fit::Hyper {
        num_epochs: 50,
        lambda_d: 1.0,
        lambda_r: 0.01,
        ..fit::Hyper::default()
    };
    let run = |rows: Option<usize>| {
        let pb = fit::Problem {
            s: &p.s,
            g: &p.g,
            rows: p.n_cells,
            spots: p.n_spots,
            genes: p.genes.len(),
            density: Some(&p.rna_count_based),
            source: None,
            target_count: None,
            init_m: LegacyNormal::new(1).normals_f32(p.n_cells * p.n_spots),
            init_f: None,
            block_rows: rows,
            read_gradient: false,
        };
        block(fit::fit(&Cpu, &pb, &hp, &mut |_, _, _| {}))
    };
    let (one, many) = (run(None), run(Some(7)));
    for (a, b) in one.mapping.iter().zip(&many.mapping) {
        assert!((a - b).abs() < 1e-5, "{a} vs {b}");
    }
    for (a, b) in one.history.total_loss.iter().zip(&many.history.total_loss) {
        assert!((a - b).abs() < 1e-5, "{a} vs {b}");
    }
}

#[test]
fn projections_and_cross_validation_on_the_visium_pair() {
    let Some(data) = common::data_dir("projections_and_cross_validation") else {
        return;
    };
    let (pair, sc_rel, sp_rel) = PAIRS[0];
    let (sc, sp) = (load(&data, sc_rel), load(&data, sp_rel));
    let (scn, spn) = (Named::new(sc_rel, &sc), Named::new(sp_rel, &sp));
    let o = opts(Mode::Clusters);
    let m = block(tangram::map_cells_to_space(
        &Cpu,
        scn,
        spn,
        &o,
        &mut |_, _, _| {},
    ))
    .unwrap();
    // project_genes on the training genes equals the reference's.
    let proj = block(project::project_genes(&Cpu, scn, spn, &m, true)).unwrap();
    let dir = ref_dir(&data, pair, "clusters");
    let (shape, want) = npy_file(&dir.join("projected_genes_training.npy"));
    let genes = lines(&dir.join("training_genes.csv"));
    let Some(Matrix::Dense(x)) = &proj.x else {
        panic!("dense projection")
    };
    let lower: Vec<String> = proj.var.index.iter().map(|g| g.to_lowercase()).collect();
    let mut worst = 0f64;
    for (rj, g) in genes.iter().enumerate() {
        let j = lower.iter().position(|x| x == g).unwrap();
        let col: Vec<f64> = x.column(j).iter().map(|&v| v as f64).collect();
        let refc: Vec<f64> = (0..shape[0]).map(|s| want[s * shape[1] + rj]).collect();
        worst = worst.max(1.0 - pearson(&col, &refc));
    }
    assert!(worst < 1e-3, "projected genes differ: 1 - r = {worst}");
    // Scores of the training genes are the training scores.
    let df = project::compare_spatial_geneexp(&proj, scn, spn, &m, None);
    assert_eq!(df.len(), m.prep.overlap.len());
    for g in m.train_genes_df.iter().take(5) {
        let c = df.iter().find(|d| d.gene == g.gene).unwrap();
        assert!((c.score - g.train_score).abs() < 1e-4 && c.is_training);
    }
    // Ten-fold CV with few epochs: held-out genes score, below the training score.
    let mut cv = o.clone();
    cv.hyper.num_epochs = 200;
    let r = block(project::cross_val(
        &Cpu,
        scn,
        spn,
        &cv,
        project::CvMode::TenFold,
        &mut |_, _| {},
    ))
    .unwrap();
    assert_eq!(r.test_genes.len(), m.training_genes.len());
    assert!(
        r.avg_test_score > 0.5 && r.avg_test_score < r.avg_train_score,
        "{} {}",
        r.avg_test_score,
        r.avg_train_score
    );
    assert!(r.metrics.auc_score.is_finite() && (0.0..=1.0).contains(&r.metrics.auc_score));
    assert!(r.metrics.sp_sparsity_score > 0.5);
}

#[test]
fn density_priors_follow_the_reference_rules() {
    let (sc, sp) = toy();
    let (scn, spn) = toy_named(&sc, &sp);
    let run = |mode: Mode, prior: tangram::DensityPrior| {
        let mut o = opts(mode);
        o.hyper.num_epochs = 30;
        o.density_prior = prior;
        block(tangram::map_cells_to_space(
            &Cpu,
            scn,
            spn,
            &o,
            &mut |_, _, _| {},
        ))
        .unwrap()
    };
    use tangram::DensityPrior::{None as NoPrior, RnaCountBased, Uniform};
    // A prior forces lambda_d to 1; none leaves the KL term off in cells mode.
    let u = run(Mode::Cells, Uniform);
    assert_eq!(u.hyper.lambda_d, 1.0);
    assert!(u.history.kl_reg.iter().all(|v| v.is_finite() && *v >= 0.0));
    let r = run(Mode::Cells, RnaCountBased);
    assert!(
        (r.history.kl_reg[0] - u.history.kl_reg[0]).abs() > 1e-6,
        "the priors differ"
    );
    let n = run(Mode::Cells, NoPrior);
    assert_eq!(n.hyper.lambda_d, 0.0);
    assert!(n.history.kl_reg.iter().all(|v| v.is_nan()));
    // Clusters mode falls back to uniform.
    let c = run(Mode::Clusters, NoPrior);
    assert_eq!(c.density_prior, Uniform);
    assert!(c.history.kl_reg.iter().all(|v| v.is_finite()));
    // Explicit lambda_d without a prior is an error.
    let mut o = opts(Mode::Cells);
    o.density_prior = NoPrior;
    o.hyper.lambda_d = 0.5;
    let e = expect_err(&sc, &sp, &o);
    assert!(e.contains("density prior is none"), "{e}");
}
