//! cell2location's preprocessing and reference signatures against the
//! reference run in $TESSERA_DATA/ref/cell2location (cell2location 0.1.5).

mod common;

use common::pearson;

use std::path::Path;

use tessera_core::io::{self, FileSet, TableOptions};
use tessera_core::models::checkpoint::{Checkpoint, Kept, Resume};
use tessera_core::models::named::Named;
use tessera_core::models::regression;
use tessera_core::prep::filter::{self, FilterGenes};

fn load(dir: &Path, rel: &str) -> tessera_core::data::Dataset {
    io::read(
        FileSet::from_path(&dir.join(rel)).unwrap(),
        &TableOptions::default(),
    )
    .unwrap_or_else(|e| panic!("{rel}: {e}"))
    .dataset
}

#[test]
fn cluster_averages_track_the_reference_signatures() {
    let Some(data) = common::data_dir("cluster_averages_track_the_reference_signatures") else {
        return;
    };
    let rel = "rctd_visium_hippocampus/derived/reference.h5ad";
    let reference = load(&data, rel);
    filter::check_counts(rel, &reference).unwrap();
    let s = regression::cluster_averages(Named::new(rel, &reference), "cell_type").unwrap();
    assert_eq!(s.cell_types.len(), 17);
    assert!(
        s.cell_types.windows(2).all(|w| w[0] < w[1]),
        "np.unique order"
    );
    assert_eq!(s.n_cells.iter().sum::<usize>(), 510);
    // Posterior means of the reference's NB regression (genes x types, CSV).
    let text = std::fs::read_to_string(
        data.join("ref/cell2location/rctd_visium_hippocampus/reference_signatures_means_per_cluster_mu_fg.csv"),
    )
    .unwrap();
    let mut lines = text.lines();
    let types: Vec<String> = lines
        .next()
        .unwrap()
        .split(',')
        .skip(1)
        .map(String::from)
        .collect();
    let rows: Vec<(String, Vec<f64>)> = lines
        .map(|l| {
            let mut f = l.split(',');
            let g = f.next().unwrap().to_string();
            (g, f.map(|v| v.parse().unwrap()).collect())
        })
        .collect();
    let t = s.cell_types.len();
    for (j, ct) in types.iter().enumerate() {
        let c = s.cell_types.iter().position(|x| x == ct).unwrap();
        let (mut ours, mut theirs) = (vec![], vec![]);
        for (g, vals) in &rows {
            let gi = s.genes.iter().position(|x| x == g).unwrap();
            ours.push((s.values[gi * t + c] + 1e-3).ln());
            theirs.push((vals[j] + 1e-3).ln());
        }
        let r = pearson(&ours, &theirs);
        assert!(r >= 0.95, "{ct}: log-scale Pearson {r}");
    }
}

#[test]
fn tutorial_filter_keeps_expressed_genes_on_real_data() {
    let Some(data) = common::data_dir("tutorial_filter_keeps_expressed_genes") else {
        return;
    };
    let reference = load(&data, "rctd_visium_hippocampus/derived/reference.h5ad");
    let x = reference.x.as_ref().unwrap();
    let f = filter::filter_genes(x, FilterGenes::TUTORIAL);
    let n = x.shape().0 as f64;
    for g in 0..f.keep.len() {
        let by_share = f.n_cells[g] as f64 > 0.03 * n;
        let by_mean = f.n_cells[g] > 5 && f.nonz_mean[g] > 1.12;
        assert_eq!(
            f.keep[g],
            by_share || by_mean,
            "gene {}",
            reference.var.index[g]
        );
    }
    assert!(f.kept().len() > 200);
}

#[test]
fn simulated_spots_carry_their_truth() {
    use tessera_core::simulate::{visium, VisiumSim};
    let Some(data) = common::data_dir("simulated_spots_carry_their_truth") else {
        return;
    };
    let rel = "rctd_visium_hippocampus/derived/reference.h5ad";
    let reference = load(&data, rel);
    let p = VisiumSim {
        n_spots: 900,
        n_zones: 6,
        seed: 3,
        ..VisiumSim::default()
    };
    let a = visium(Named::new(rel, &reference), "cell_type", &p).unwrap();
    let b = visium(Named::new(rel, &reference), "cell_type", &p).unwrap();
    assert_eq!(a.spatial.x, b.spatial.x, "one seed, one result");
    let c = visium(
        Named::new(rel, &reference),
        "cell_type",
        &VisiumSim {
            seed: 4,
            ..p.clone()
        },
    )
    .unwrap();
    assert_ne!(a.spatial.x, c.spatial.x);
    let x = a.spatial.x.as_ref().unwrap();
    assert_eq!(x.shape(), (900, reference.n_vars()));
    assert!(x.check_values().is_counts());
    // Half of every type's 30 cells is held out for training.
    assert_eq!(a.training.n_obs(), 17 * 15);
    // Spot totals follow the number of cells in them.
    let t = a.cell_types.len();
    let cells: Vec<f64> = (0..900)
        .map(|s| a.abundance[s * t..(s + 1) * t].iter().sum())
        .collect();
    let totals = x.row_sums();
    // (loosely: cell types differ several-fold in size)
    assert!(
        pearson(&cells, &totals) > 0.5,
        "{}",
        pearson(&cells, &totals)
    );
    // Zonal types live in their zone: mean abundance in spots of that zone
    // beats the mean elsewhere; uniform types are everywhere.
    let Some(tessera_core::data::Column::Int(zone)) = a.spatial.obs.column("zone") else {
        panic!("obs zone")
    };
    for (k, z) in a.type_zone.iter().enumerate() {
        let (mut inside, mut outside, mut ni, mut no) = (0f64, 0f64, 0f64, 0f64);
        for (s, &zs) in zone.iter().enumerate() {
            let v = a.abundance[s * t + k];
            if z.is_some_and(|z| zs == z as i64) {
                inside += v;
                ni += 1.0;
            } else {
                outside += v;
                no += 1.0;
            }
        }
        match z {
            Some(_) => assert!(
                inside / ni.max(1.0) > 2.0 * outside / no.max(1.0),
                "type {k}"
            ),
            None => assert!(outside / no > 0.3, "uniform type {k} is rare"),
        }
    }
    // Labels that are not there are named.
    let Err(e) = visium(Named::new(rel, &reference), "celltype", &p) else {
        panic!("a missing label column must fail")
    };
    let e = e.to_string();
    assert!(e.contains("obs['celltype']"), "{e}");
}

/// Reads a genes x types CSV of the reference run.
fn ref_signatures(data: &Path, kind: &str) -> (Vec<String>, Vec<(String, Vec<f64>)>) {
    let text = std::fs::read_to_string(data.join(format!(
        "ref/cell2location/rctd_visium_hippocampus/reference_signatures_{kind}_per_cluster_mu_fg.csv"
    )))
    .unwrap();
    let mut lines = text.lines();
    let types = lines
        .next()
        .unwrap()
        .split(',')
        .skip(1)
        .map(String::from)
        .collect();
    let rows = lines
        .map(|l| {
            let mut f = l.split(',');
            let g = f.next().unwrap().to_string();
            (g, f.map(|v| v.parse().unwrap()).collect())
        })
        .collect();
    (types, rows)
}

#[test]
fn nb_regression_matches_the_reference_signatures() {
    use tessera_core::compute::cpu::Cpu;
    use tessera_core::models::regression::nb::Train;
    let Some(data) = common::data_dir("nb_regression_matches_the_reference_signatures") else {
        return;
    };
    let rel = "rctd_visium_hippocampus/derived/reference.h5ad";
    let mut reference = load(&data, rel);
    // The reference run fitted the 124 genes shared with the spatial data.
    let used: Vec<String> = std::fs::read_to_string(
        data.join("ref/cell2location/rctd_visium_hippocampus/genes_used.csv"),
    )
    .unwrap()
    .lines()
    .skip(1)
    .map(String::from)
    .collect();
    let cols: Vec<usize> = used
        .iter()
        .map(|g| reference.var.index.iter().position(|x| x == g).unwrap())
        .collect();
    filter::subset_genes(&mut reference, &cols);
    // 1000 epochs, one batch of all 510 cells, lr 0.002, like the reference.
    let train = Train {
        max_epochs: 1000,
        ..Train::default()
    };
    let mut last = f64::NAN;
    let r = pollster::block_on(regression::regression(
        &Cpu,
        Named::new(rel, &reference),
        "cell_type",
        None,
        &[],
        &train,
        &mut |_, _, l| last = l,
        &mut Kept::default(),
    ))
    .unwrap();
    let h = &r.elbo_history;
    assert!(
        h.last().unwrap() < &h[0],
        "loss {} -> {}",
        h[0],
        h.last().unwrap()
    );
    // The same model and data give the same loss scale: the reference's
    // elbo_train went from 124095 to 103729 (one stochastic draw per epoch).
    let (first, final_) = (h[0], h[h.len() - 10..].iter().sum::<f64>() / 10.0);
    eprintln!("NB regression loss: first {first:.0}, last 10 epochs {final_:.0} (reference 124095 -> 103729)");
    assert!(
        (first - 124_095.0).abs() < 0.02 * 124_095.0,
        "first loss {first}"
    );
    assert!(
        (final_ - 103_729.0).abs() < 0.02 * 103_729.0,
        "final loss {final_}"
    );
    assert!(last.is_finite());
    let (types, rows) = ref_signatures(&data, "means");
    let s = &r.means;
    let t = s.cell_types.len();
    let mut worst = 1.0f64;
    for (j, ct) in types.iter().enumerate() {
        let c = s.cell_types.iter().position(|x| x == ct).unwrap();
        let (mut ours, mut theirs) = (vec![], vec![]);
        for (g, vals) in &rows {
            let gi = s.genes.iter().position(|x| x == g).unwrap();
            ours.push((s.values[gi * t + c] + 1e-3).ln());
            theirs.push((vals[j] + 1e-3).ln());
        }
        worst = worst.min(pearson(&ours, &theirs));
    }
    eprintln!(
        "NB regression: worst per-type log-scale Pearson {worst:.4}, y_e {:?}",
        r.detection_y_e
    );
    assert!(worst >= 0.95, "worst per-type log-scale Pearson {worst}");
    // The reconstruction QC: every cell x gene counted once, mostly near the diagonal.
    let nb = regression::QC_BINS;
    let total: u64 = r.qc_histogram.iter().sum();
    assert_eq!(total, 510 * 124);
    let near: u64 = (0..nb * nb)
        .filter(|i| (i / nb).abs_diff(i % nb) <= 5)
        .map(|i| r.qc_histogram[i])
        .sum();
    assert!(
        near as f64 > 0.8 * total as f64,
        "{near} of {total} near the diagonal"
    );
    // Posterior intervals contain the means.
    for i in 0..s.values.len() {
        assert!(r.q05[i] <= s.values[i] && s.values[i] <= r.q95[i] && r.stds[i] > 0.0);
    }
}

#[test]
fn nb_regression_runs_on_the_gpu_like_the_cpu() {
    use tessera_core::compute::{cpu::Cpu, gpu::Gpu};
    use tessera_core::models::regression::nb::{fit, RegressionData, Train};
    let gpu = pollster::block_on(Gpu::new()).expect("a wgpu adapter (lavapipe in CI)");
    let (cells, genes, f, e) = (40, 9, 3, 2);
    let x: Vec<f32> = (0..cells * genes).map(|i| ((i * 7) % 11) as f32).collect();
    let label: Vec<usize> = (0..cells).map(|c| c % f).collect();
    let batch: Vec<usize> = (0..cells).map(|c| (c / 5) % e).collect();
    let init_mu: Vec<f32> = (0..f * genes).map(|i| 1.0 + (i % 4) as f32).collect();
    let levels: Vec<Vec<usize>> = (0..cells).map(|c| vec![c % 3]).collect();
    let x = tessera_core::data::dense(cells, genes, x)
        .map(tessera_core::data::Matrix::Dense)
        .unwrap();
    let rows: Vec<usize> = (0..cells).collect();
    let d = RegressionData {
        x: &x,
        rows: &rows,
        genes,
        label: &label,
        n_labels: f,
        batch: &batch,
        n_batches: e,
        init_mu: &init_mu,
        levels: &levels,
        n_levels: 3,
    };
    let train = Train {
        max_epochs: 30,
        batch_size: 16,
        lr: 0.01,
        seed: 5,
    };
    let a = pollster::block_on(fit(
        &Cpu,
        &d,
        &train,
        &mut |_, _, _| {},
        None,
        Resume::none(&mut |_| {}),
    ))
    .unwrap();
    let b = pollster::block_on(fit(
        &gpu,
        &d,
        &train,
        &mut |_, _, _| {},
        None,
        Resume::none(&mut |_| {}),
    ))
    .unwrap();
    for (x, y) in a.means.iter().zip(&b.means) {
        assert!((x - y).abs() < 1e-3 * x.abs().max(1.0), "{x} vs {y}");
    }
    for (x, y) in a.elbo_history.iter().zip(&b.elbo_history) {
        assert!((x - y).abs() < 1e-3 * x.abs().max(1.0), "loss {x} vs {y}");
    }
}

/// Per-spot abundances of the reference run (spots x types) with its type names.
fn ref_abundance(data: &Path, stat: &str) -> (Vec<String>, Vec<String>, Vec<f64>) {
    let text = std::fs::read_to_string(data.join(format!(
        "ref/cell2location/rctd_visium_hippocampus/spot_{stat}_cell_abundance_w_sf.csv"
    )))
    .unwrap();
    let mut lines = text.lines();
    let prefix = format!("{stat}cell_abundance_w_sf_");
    let types = lines
        .next()
        .unwrap()
        .split(',')
        .skip(1)
        .map(|c| c.trim_start_matches(&prefix).to_string())
        .collect();
    let (mut spots, mut v) = (vec![], vec![]);
    for l in lines {
        let mut f = l.split(',');
        spots.push(f.next().unwrap().to_string());
        v.extend(f.map(|x| x.parse::<f64>().unwrap()));
    }
    (spots, types, v)
}

#[test]
fn mapping_agrees_with_the_reference_run() {
    use tessera_core::compute::cpu::Cpu;
    use tessera_core::models::cell2location::{self as c2l, Options};
    let Some(data) = common::data_dir("mapping_agrees_with_the_reference_run") else {
        return;
    };
    let rel = "rctd_visium_hippocampus/derived/spatial.h5ad";
    let sp = load(&data, rel);
    let sig_rel = "ref/cell2location/rctd_visium_hippocampus/reference_signatures_means_per_cluster_mu_fg.csv";
    let text = std::fs::read_to_string(data.join(sig_rel)).unwrap();
    let mut sig = c2l::signatures_from_csv(sig_rel, &text).unwrap();
    sig.cell_types = sig
        .cell_types
        .iter()
        .map(|c| c.trim_start_matches("means_per_cluster_mu_fg_").to_string())
        .collect();
    // The reference run: N_cells_per_location=10, detection_alpha=20, 1000 steps.
    let mut opts = Options::new(10.0, 20.0);
    opts.train.max_epochs = 1000;
    opts.num_samples = 100;
    let m = pollster::block_on(c2l::map(
        &Cpu,
        Named::new(rel, &sp),
        sig_rel,
        &sig,
        &opts,
        &mut |_, _, _| {},
        &mut Kept::default(),
    ))
    .unwrap();
    assert_eq!(m.genes.len(), 124);
    let (spots, types, want) = ref_abundance(&data, "means");
    assert_eq!(types, m.cell_types);
    let f = types.len();
    let ours = &m.abundance().means;
    let mut cors = vec![];
    for (i, name) in spots.iter().enumerate() {
        let s = m.spots.iter().position(|x| x == name).expect("same spots");
        cors.push(pearson(
            &ours[s * f..(s + 1) * f],
            &want[i * f..(i + 1) * f],
        ));
    }
    cors.sort_by(f64::total_cmp);
    let mean = cors.iter().sum::<f64>() / cors.len() as f64;
    let total = ours.iter().sum::<f64>() / spots.len() as f64;
    let h = &m.fit.elbo_history;
    eprintln!(
        "per-spot Pearson vs cell2location: mean {mean:.3}, median {:.3}, 10th pct {:.3}, min {:.3}; \
         mean cells per spot {total:.2} (reference 11.03); -ELBO first {:.0} last {:.0} (reference 369616 -> 155972)",
        cors[cors.len() / 2],
        cors[cors.len() / 10],
        cors[0],
        h[0],
        h[h.len() - 1],
    );
    assert!(mean >= 0.9, "mean per-spot correlation {mean}");
    assert!((8.0..14.0).contains(&total), "{total} cells per spot");
    // Same model, same start: the first loss is the reference's to a few percent.
    assert!(
        (h[0] / 369_616.0 - 1.0).abs() < 0.05,
        "first -ELBO {}",
        h[0]
    );
    // The AnnData export carries the reference's keys and column names.
    let out = c2l::export(&sp, &m);
    for k in ["means", "stds", "q05", "q95"] {
        let Some(tessera_core::data::Annotation::Frame(fr)) =
            out.obsm.get(&format!("{k}_cell_abundance_w_sf"))
        else {
            panic!("obsm {k}_cell_abundance_w_sf")
        };
        assert!(fr.column(&format!("{k}cell_abundance_w_sf_CA1")).is_some());
    }
    let q05 = &m.abundance().q05;
    let q95 = &m.abundance().q95;
    assert!((0..ours.len()).all(|i| q05[i] < ours[i] && ours[i] < q95[i]));
    // compute_expected_per_cell_type: the types' shares of each count add up
    // to the count less the background's share.
    let layers = c2l::expected_per_cell_type(&sp, &m, "q05");
    assert_eq!(layers.len(), 17);
    let x = sp.x.as_ref().unwrap().to_csr();
    let tessera_core::data::Matrix::Csr(x) = x else {
        unreachable!()
    };
    let parts: Vec<&tessera_core::data::Sparse> = layers
        .iter()
        .map(|(_, l)| match l {
            tessera_core::data::Matrix::Csr(s) => s,
            _ => panic!("sparse layers"),
        })
        .collect();
    let shared: std::collections::HashSet<&str> = m.genes.iter().map(|g| g.as_str()).collect();
    let (mut total, mut observed) = (0.0, 0.0);
    for k in 0..x.data.len() {
        let gene = &sp.var.index[x.indices[k] as usize];
        if shared.contains(gene.as_str()) {
            observed += x.data[k] as f64;
        }
    }
    for p in &parts {
        assert!(p.data.iter().all(|&v| v >= 0.0));
        total += p.data.iter().map(|&v| v as f64).sum::<f64>();
    }
    assert!(
        total <= observed * (1.0 + 1e-6) && total > 0.8 * observed,
        "{total} of {observed}"
    );
}

/// Area under the precision-recall curve (average precision) of `score`
/// for the positives `truth`.
fn pr_auc(score: &[f64], truth: &[bool]) -> f64 {
    let mut idx: Vec<usize> = (0..score.len()).collect();
    idx.sort_by(|&a, &b| score[b].total_cmp(&score[a]));
    let pos = truth.iter().filter(|&&t| t).count() as f64;
    let (mut tp, mut ap) = (0.0, 0.0);
    for (k, &i) in idx.iter().enumerate() {
        if truth[i] {
            tp += 1.0;
            ap += tp / (k + 1) as f64;
        }
    }
    ap / pos.max(1.0)
}

/// Simulates spots from `reference`, makes signatures from the held-out
/// half, maps, and returns (Pearson over spots x types, mean PR-AUC of
/// presence over the types that are neither everywhere nor nowhere).
fn simulate_and_map(
    reference: &tessera_core::data::Dataset,
    seed: u32,
    spots: usize,
    steps: usize,
) -> (f64, f64) {
    use tessera_core::compute::cpu::Cpu;
    use tessera_core::models::cell2location::{self as c2l, Options};
    use tessera_core::simulate::{visium, VisiumSim};
    let sim = visium(
        Named::new("reference", reference),
        "cell_type",
        &VisiumSim {
            n_spots: spots,
            n_zones: 6,
            seed,
            ..VisiumSim::default()
        },
    )
    .unwrap();
    let sig =
        regression::cluster_averages(Named::new("training", &sim.training), "cell_type").unwrap();
    let t = sim.cell_types.len();
    let s_n = sim.spatial.n_obs();
    // The user's guess of cells per spot: the truth's mean, rounded.
    let n_cells = sim.abundance.iter().sum::<f64>() / s_n as f64;
    let mut opts = Options::new(n_cells.round().max(1.0), 20.0);
    opts.train.max_epochs = steps;
    opts.train.lr = 0.01;
    opts.num_samples = 50;
    let m = pollster::block_on(c2l::map(
        &Cpu,
        Named::new("sim", &sim.spatial),
        "signatures",
        &sig,
        &opts,
        &mut |_, _, _| {},
        &mut Kept::default(),
    ))
    .unwrap();
    let col: Vec<usize> = sim
        .cell_types
        .iter()
        .map(|c| m.cell_types.iter().position(|x| x == c).unwrap())
        .collect();
    let f = m.cell_types.len();
    let est = &m.abundance().means;
    let (mut a, mut b, mut aucs) = (vec![], vec![], vec![]);
    for k in 0..t {
        let score: Vec<f64> = (0..s_n).map(|s| est[s * f + col[k]]).collect();
        let truth: Vec<f64> = (0..s_n).map(|s| sim.abundance[s * t + k]).collect();
        a.extend(&score);
        b.extend(&truth);
        let present: Vec<bool> = truth.iter().map(|&v| v > 0.0).collect();
        if present.iter().any(|&p| p) && !present.iter().all(|&p| p) {
            aucs.push(pr_auc(&score, &present));
        }
    }
    (
        pearson(&a, &b),
        aucs.iter().sum::<f64>() / aucs.len() as f64,
    )
}

#[test]
fn mapping_recovers_simulated_abundances() {
    // Tessera's synthetic reference (6 types, 200 genes): the bar.
    let (_, reference) = tessera_core::demo::demo_pair(Default::default());
    for seed in [1, 2, 3] {
        let (r, auc) = simulate_and_map(&reference, seed, 300, 3000);
        eprintln!("demo reference, seed {seed}: Pearson vs truth {r:.3}, mean PR-AUC {auc:.3}");
        assert!(r >= 0.8, "seed {seed}: correlation {r}");
        assert!(auc >= 0.75, "seed {seed}: PR-AUC {auc}");
    }
}

#[test]
fn mapping_recovers_abundances_simulated_from_a_real_reference() {
    // 17 hippocampus types of 30 cells (15 left to make signatures) and 307
    // genes: far less information than a Visium section against an atlas,
    // which caps any method (NNLS on the same spots: Pearson 0.59). The
    // floor guards what the model reaches here (0.65 / 0.82; 0.71 / 0.83
    // with 300 spots and 3000 steps).
    let Some(data) =
        common::data_dir("mapping_recovers_abundances_simulated_from_a_real_reference")
    else {
        return;
    };
    let reference = load(&data, "rctd_visium_hippocampus/derived/reference.h5ad");
    let (r, auc) = simulate_and_map(&reference, 1, 200, 2000);
    eprintln!("hippocampus reference, seed 1: Pearson vs truth {r:.3}, mean PR-AUC {auc:.3}");
    assert!(r >= 0.62, "correlation {r}");
    assert!(auc >= 0.75, "PR-AUC {auc}");
}

#[test]
fn mapping_runs_on_the_gpu_like_the_cpu() {
    use tessera_core::compute::{cpu::Cpu, gpu::Gpu};
    use tessera_core::models::cell2location::fit::{fit, MapData, Priors, Train};
    let gpu = pollster::block_on(Gpu::new()).expect("a wgpu adapter (lavapipe in CI)");
    let (spots, genes, f, e) = (11, 9, 3, 2);
    let x: Vec<f32> = (0..spots * genes).map(|i| ((i * 7) % 13) as f32).collect();
    let sig: Vec<f32> = (0..f * genes).map(|i| 0.3 + (i % 5) as f32).collect();
    let batch: Vec<usize> = (0..spots).map(|s| s % e).collect();
    let d = MapData {
        x: &x,
        spots,
        genes,
        signatures: &sig,
        types: f,
        batch: &batch,
        n_batches: e,
    };
    let mut p = Priors::new(5.0, 20.0, e);
    p.n_groups = 6;
    p.detection_mean = vec![0.5, 0.8];
    let train = Train {
        max_epochs: 25,
        lr: 0.01,
        seed: 2,
        block_rows: Some(4),
    };
    let a = pollster::block_on(fit(
        &Cpu,
        &d,
        &p,
        &train,
        &mut |_, _, _| {},
        None,
        Resume::none(&mut |_| {}),
    ))
    .unwrap();
    let b = pollster::block_on(fit(
        &gpu,
        &d,
        &p,
        &train,
        &mut |_, _, _| {},
        None,
        Resume::none(&mut |_| {}),
    ))
    .unwrap();
    for ((name, _, x), (_, _, y)) in a.sites.iter().zip(&b.sites) {
        for (u, v) in x.means.iter().zip(&y.means) {
            assert!(
                (u - v).abs() < 2e-3 * u.abs().max(1.0),
                "{name}: {u} vs {v}"
            );
        }
    }
    for (u, v) in a.elbo_history.iter().zip(&b.elbo_history) {
        assert!((u - v).abs() < 1e-3 * u.abs().max(1.0), "loss {u} vs {v}");
    }
}

/// Both fits checkpoint (the regression every 10 epochs, the mapping every
/// 500 steps). Resumed from one on the same device, each ends as the whole
/// fit does, bit for bit, and another fit's checkpoint is refused; a
/// mapping whose GPU is destroyed at step 700 goes on on the CPU from its
/// checkpoint at step 500, says so, and ends near the CPU's own mapping.
#[test]
fn the_fits_resume_from_checkpoints_and_survive_losing_the_gpu() {
    use tessera_core::compute::{cpu::Cpu, gpu::Gpu, Device};
    use tessera_core::models::cell2location::{self as c2l, Options};
    use tessera_core::models::regression::nb::{self, RegressionData, Train};
    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    let wrong = |cp: &Checkpoint| Checkpoint {
        fit: "another fit".into(),
        ..cp.clone()
    };

    // The regression.
    let (cells, genes, f, e) = (40, 7, 3, 2);
    let x: Vec<f32> = (0..cells * genes).map(|i| ((i * 7) % 11) as f32).collect();
    let x = tessera_core::data::dense(cells, genes, x)
        .map(tessera_core::data::Matrix::Dense)
        .unwrap();
    let (rows, label, batch): (Vec<usize>, Vec<usize>, Vec<usize>) =
        (0..cells).map(|c| (c, c % f, (c / 5) % e)).collect();
    let init_mu: Vec<f32> = (0..f * genes).map(|i| 1.0 + (i % 4) as f32).collect();
    let d = RegressionData {
        x: &x,
        rows: &rows,
        genes,
        label: &label,
        n_labels: f,
        batch: &batch,
        n_batches: e,
        init_mu: &init_mu,
        levels: &vec![vec![]; cells],
        n_levels: 0,
    };
    let train = Train {
        max_epochs: 25,
        batch_size: 16,
        lr: 0.01,
        seed: 5,
    };
    let reg = |from: Option<Checkpoint>, save: &mut dyn FnMut(Checkpoint)| {
        let resume = Resume { from, save };
        pollster::block_on(nb::fit(&Cpu, &d, &train, &mut |_, _, _| {}, None, resume))
    };
    let mut kept = vec![];
    let whole = reg(None, &mut |c| kept.push(c)).unwrap();
    assert_eq!(kept.iter().map(|c| c.epoch).collect::<Vec<_>>(), [10, 20]);
    let resumed = reg(Some(kept[0].clone()), &mut |_| {}).unwrap();
    assert_eq!(bits(&resumed.means), bits(&whole.means));
    assert_eq!(bits(&resumed.elbo_history), bits(&whole.elbo_history));
    let e_other = reg(Some(wrong(&kept[0])), &mut |_| {})
        .err()
        .unwrap_or_default();
    assert!(e_other.contains("another fit"), "{e_other}");

    // The mapping, on a small simulated section of the demo tissue.
    let (_, reference) = tessera_core::demo::demo_pair(Default::default());
    let sim = tessera_core::simulate::visium(
        Named::new("reference", &reference),
        "cell_type",
        &tessera_core::simulate::VisiumSim {
            n_spots: 24,
            n_zones: 3,
            seed: 4,
            ..Default::default()
        },
    )
    .unwrap();
    let sig =
        regression::cluster_averages(Named::new("training", &sim.training), "cell_type").unwrap();
    let mut opts = Options::new(8.0, 20.0);
    opts.train.max_epochs = 1100;
    opts.train.lr = 0.01;
    opts.num_samples = 20;
    let on = |kept: &mut Kept, at: &mut dyn FnMut(usize)| {
        pollster::block_on(c2l::map(
            &Cpu,
            Named::new("sim", &sim.spatial),
            "signatures",
            &sig,
            &opts,
            &mut |s, _, _| at(s),
            kept,
        ))
        .unwrap()
    };
    let seen = std::rc::Rc::new(std::cell::RefCell::new(vec![]));
    let into = seen.clone();
    let mut kept = Kept::new(
        None,
        vec![],
        Some(Box::new(move |c: &Checkpoint, _: &[Checkpoint]| {
            into.borrow_mut().push(c.clone())
        })),
    );
    let whole = on(&mut kept, &mut |_| {});
    let seen = seen.take();
    assert_eq!(
        seen.iter().map(Checkpoint::at).collect::<Vec<_>>(),
        ["step 500", "step 1000"]
    );
    let resumed = on(
        &mut Kept::new(Some(seen[0].clone()), vec![], None),
        &mut |_| {},
    );
    assert_eq!(
        bits(&resumed.fit.elbo_history),
        bits(&whole.fit.elbo_history)
    );
    assert_eq!(
        bits(&resumed.abundance().means),
        bits(&whole.abundance().means)
    );
    assert!(resumed
        .notes
        .iter()
        .any(|n| n.contains("stopped run left at step 500")));
    // The mapping's checkpoint is not the regression's: a run of both
    // starts the regression from the beginning.
    let mut both = Kept::new(Some(seen[0].clone()), vec![], None);
    assert!(both.take_for(&nb::fit_name(&d)).is_none() && both.from.is_some());

    let gpu = pollster::block_on(Gpu::new()).expect("a wgpu adapter (lavapipe in CI)");
    let lost = pollster::block_on(c2l::map(
        &gpu,
        Named::new("sim", &sim.spatial),
        "signatures",
        &sig,
        &opts,
        &mut |s, _, _| {
            if s == 700 {
                gpu.destroy();
            }
        },
        &mut Kept::default(),
    ))
    .unwrap();
    assert!(gpu.lost().is_some_and(|w| w.contains("destroyed")));
    assert!(
        lost.notes
            .iter()
            .any(|n| n.contains("resumed on the CPU from its checkpoint at step 500")),
        "{:?}",
        lost.notes
    );
    assert_eq!(lost.fit.elbo_history.len(), 1100);
    let r = pearson(&lost.abundance().means, &whole.abundance().means);
    eprintln!("cell2location mapping on a GPU destroyed at step 700, resumed on the CPU: abundance r = {r:.5} with the CPU's");
    assert!(r > 0.99, "abundance r = {r}");
}

/// The browser's cell2location run: the two steps' files (the command
/// line's names, the reference's prefixed where they meet), the plotted
/// abundances equal to the tables, the QC histograms counting every
/// (spot, gene) pair, and the page's parameters refusing bad values.
#[test]
fn browser_run_holds_both_steps_files_and_plots() {
    use tessera_core::bundle::Plot;
    use tessera_core::compute::cpu::Cpu;
    use tessera_core::models::cell2location::run;
    let (sp, sc) = tessera_core::demo::demo_pair(Default::default());
    let p = tessera_core::models::cell2location::analysis::Cell2locationParams {
        labels: "cell_type".into(),
        reference_epochs: Some(20),
        epochs: 200,
        ..Default::default()
    };
    let (sig_opts, map_opts) = p.options(sc.n_obs()).unwrap();
    let mut seen = 0;
    let sig = pollster::block_on(run::signatures(
        &Cpu,
        "ref",
        sc,
        &sig_opts,
        &mut |d, t, _| {
            assert_eq!(t, 20);
            seen = d;
        },
        &mut Kept::default(),
    ))
    .unwrap();
    assert_eq!(seen, 20);
    let m = pollster::block_on(run::map_spots(
        &Cpu,
        "sp",
        sp,
        "inf_aver.csv",
        &sig.signatures,
        &map_opts,
        false,
        false,
        &mut |_, _, _| {},
        &mut Kept::default(),
    ))
    .unwrap();
    let r = run::results(&sig, &m, serde_json::Value::Null).unwrap();
    let names: Vec<&str> = r.files.iter().map(|f| f.0.as_str()).collect();
    assert_eq!(names[0], "q05_cell_abundance_w_sf.csv");
    for f in [
        "sp.h5ad",
        "inf_aver.csv",
        "sc.h5ad",
        "elbo_history.csv",
        "ref_elbo_history.csv",
        "ref_qc_reconstruction.csv",
        "filter_genes.csv",
    ] {
        assert!(names.contains(&f), "{f} in {names:?}");
    }
    let q05 = String::from_utf8(r.files[0].1.clone()).unwrap();
    let first: Vec<f64> = q05
        .lines()
        .nth(1)
        .unwrap()
        .split(',')
        .skip(1)
        .map(|v| v.parse().unwrap())
        .collect();
    let k = r.layers[0].columns.len();
    assert_eq!(r.layers[0].name, "q05_cell_abundance_w_sf");
    for (j, v) in first.iter().enumerate() {
        assert!((r.layers[0].values[j] as f64 - v).abs() <= 1e-5 * v.abs().max(1.0));
    }
    assert_eq!(k, first.len());
    assert_eq!(r.curves[0].values.len(), 200);
    assert_eq!(r.curves[1].values.len(), 20);
    let qc = &r.matrices[0];
    assert_eq!(qc.plot, Plot::Histogram2d);
    let pairs = m.mapping.spots.len() * m.mapping.genes.len();
    assert_eq!(qc.values.iter().sum::<f64>() as usize, pairs);
    // Bad values are named before anything runs.
    let bad = tessera_core::models::cell2location::analysis::Cell2locationParams {
        detection_alpha: 0.0,
        ..p.clone()
    };
    assert!(bad.options(10).unwrap_err().contains("detection_alpha"));
    let bad = tessera_core::models::cell2location::analysis::Cell2locationParams {
        method: "magic".into(),
        ..p
    };
    assert!(bad
        .options(10)
        .unwrap_err()
        .contains("regression or average"));
}

/// The tutorial's whole path on its generated shape (small): NB regression
/// with batches on the sparse reference, then the mapping; the signatures
/// track the generator's μ_tg and the abundances its truth.
#[test]
fn tutorial_shaped_pair_recovers_its_signatures_and_abundances() {
    use tessera_core::compute::cpu::Cpu;
    use tessera_core::models::cell2location::{self as c2l, Options};
    use tessera_core::models::regression::nb::Train;
    use tessera_core::simulate::tutorial::{tutorial, TutorialSim};
    let p = TutorialSim {
        cells: 3000,
        genes: 400,
        types: 6,
        samples: 3,
        spots: 300,
        seed: 2,
    };
    let sim = tutorial(&p).unwrap();
    let train = Train {
        max_epochs: 60,
        batch_size: 500,
        ..Train::default()
    };
    let r = pollster::block_on(regression::regression(
        &Cpu,
        Named::new("reference", &sim.reference),
        "Subset",
        Some("Sample"),
        &[],
        &train,
        &mut |_, _, _| {},
        &mut Kept::default(),
    ))
    .unwrap();
    let s = &r.means;
    assert_eq!((s.genes.len(), s.cell_types.len()), (400, 6));
    // Signatures (genes x types) against the generator's μ_tg (types x genes),
    // on the log scale; the batch's detection factor is not identifiable
    // from μ, so the comparison is a correlation.
    let pairs: Vec<(f64, f64)> = (0..400 * 6)
        .map(|i| {
            let (g, t) = (i / 6, i % 6);
            (
                (s.values[i] + 1e-3).ln(),
                (sim.signatures[t * 400 + g] + 1e-3).ln(),
            )
        })
        .collect();
    let (a, b): (Vec<f64>, Vec<f64>) = pairs.into_iter().unzip();
    let sig_r = pearson(&a, &b);
    assert!(sig_r > 0.95, "signature correlation {sig_r}");
    let n_cells = sim.abundance.iter().sum::<f64>() / 300.0;
    let mut opts = Options::new(n_cells.round().max(1.0), 20.0);
    opts.train.max_epochs = 1500;
    opts.train.lr = 0.01;
    opts.num_samples = 20;
    let m = pollster::block_on(c2l::map(
        &Cpu,
        Named::new("sp", &sim.spatial),
        "signatures",
        s,
        &opts,
        &mut |_, _, _| {},
        &mut Kept::default(),
    ))
    .unwrap();
    let est = &m.abundance().means;
    let f = m.cell_types.len();
    let pairs: Vec<(f64, f64)> = (0..300 * 6)
        .map(|i| {
            let (sp, t) = (i / 6, i % 6);
            let col = m
                .cell_types
                .iter()
                .position(|c| c == &sim.cell_types[t])
                .unwrap();
            (est[sp * f + col], sim.abundance[i])
        })
        .collect();
    let (a, b): (Vec<f64>, Vec<f64>) = pairs.into_iter().unzip();
    let ab_r = pearson(&a, &b);
    eprintln!("tutorial-shaped: signatures r {sig_r:.3}, abundances r {ab_r:.3}");
    assert!(ab_r > 0.85, "abundance correlation {ab_r}");
}
