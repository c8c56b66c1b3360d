//! cell2location's preprocessing and reference signatures against the
//! reference run in $TESSERA_DATA/ref/cell2location (cell2location 0.1.5).

mod common;

use common::pearson;

use std::path::Path;

use tessera_core::io::{self, FileSet, TableOptions};
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
    let d = RegressionData {
        x: &x,
        cells,
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
    let a = pollster::block_on(fit(&Cpu, &d, &train, &mut |_, _, _| {}, None));
    let b = pollster::block_on(fit(&gpu, &d, &train, &mut |_, _, _| {}, None));
    for (x, y) in a.means.iter().zip(&b.means) {
        assert!((x - y).abs() < 1e-3 * x.abs().max(1.0), "{x} vs {y}");
    }
    for (x, y) in a.elbo_history.iter().zip(&b.elbo_history) {
        assert!((x - y).abs() < 1e-3 * x.abs().max(1.0), "loss {x} vs {y}");
    }
}
