//! `tessera info` prints, for the datasets in `$TESSERA_DATA`, the shape and
//! keys the data README lists; `tessera convert` writes a readable h5ad.

mod common;

use std::process::Command;

use tessera_core::io::npz;

fn tessera(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn info_prints_shapes_and_keys() {
    let Some(dir) = common::data_dir("info_prints_shapes_and_keys") else {
        return;
    };
    let d = |r: &str| dir.join(r).display().to_string();
    let (ok, text, err) = tessera(&["info", &d("scanpy_visium_test")]);
    assert!(ok, "{err}");
    assert!(text.contains("n_obs x n_vars = 100 x 100"), "{text}");
    assert!(
        text.contains("spatial: obsm['spatial'], x [2787, 11380], y [2885, 11026]"),
        "{text}"
    );
    assert!(text.contains("image: custom/hires 2000 x 2000"), "{text}");
    let (ok, json, err) = tessera(&[
        "info",
        "--json",
        &d("xenium_mouse_brain_small/cell_feature_matrix.h5"),
        &d("xenium_mouse_brain_small/cells.csv.gz"),
    ]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(
        (v["n_obs"].as_u64(), v["n_vars"].as_u64()),
        (Some(36602), Some(248))
    );
    assert_eq!(v["x"]["kind"], "csr");
    assert_eq!(v["x"]["raw_counts"], true);
    assert_eq!(v["spatial"]["key"], "spatial");
    let (ok, json, _) = tessera(&[
        "info",
        "--json",
        &d("seqfish_cortex_tasic/derived/tasic_reference.h5ad"),
    ]);
    assert!(ok);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let cats: Vec<(String, u64)> = v["obs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_string(),
                c["n_categories"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(
        cats,
        vec![("cell_type".to_string(), 8), ("layer".to_string(), 10)]
    );
    // Bad input: a clear message and a failing exit code.
    let (ok, _, err) = tessera(&["info", &d("README.md")]);
    assert!(!ok && err.contains("not a recognised input"), "{err}");
}

#[test]
fn convert_writes_h5ad() {
    let Some(dir) = common::data_dir("convert_writes_h5ad") else {
        return;
    };
    let out = std::env::temp_dir().join(format!("tessera-convert-{}.h5ad", std::process::id()));
    let src = dir.join("merscope_small").display().to_string();
    let (ok, _, err) = tessera(&["convert", &src, "--out", &out.display().to_string()]);
    assert!(ok, "{err}");
    let (ok, text, err) = tessera(&["info", &out.display().to_string()]);
    assert!(ok, "{err}");
    assert!(
        text.contains("n_obs x n_vars = 450 x 20") && text.contains("obsm: spatial"),
        "{text}"
    );
    std::fs::remove_file(out).ok();
}

/// One input per dataset folder of the data README, with its shape.
const EVERY_DATASET: &[(&[&str], usize, usize)] = &[
    (&["codex_spleen_goltsev/BALBc-1.csv"], 82382, 0),
    (&["cosmx_lung_small"], 453, 20),
    (&["cycif_hodgkin_scimap/example_data.csv"], 3029, 48),
    (
        &["cycif_mcmicro_exemplar001/exemplar-001--unmicst_cell.csv"],
        11201,
        12,
    ),
    (&["merscope_small"], 450, 20),
    (&["mibi_tnbc_ark/example_cell_table.csv"], 3262, 43),
    (
        &[
            "mibi_tnbc_cytocommunity/patient1_Coordinates.txt",
            "mibi_tnbc_cytocommunity/patient1_CellTypeLabel.txt",
        ],
        5240,
        0,
    ),
    (&["nsf_simulations/S1.h5ad"], 1296, 200),
    (
        &[
            "rctd_merfish_hypothalamus/spatial/counts.csv",
            "rctd_merfish_hypothalamus/spatial/coords.csv",
        ],
        750,
        134,
    ),
    (
        &[
            "rctd_slideseq_cerebellum/spatial/MappedDGEForR.csv",
            "rctd_slideseq_cerebellum/spatial/BeadLocationsForR.csv",
        ],
        100,
        378,
    ),
    (
        &[
            "rctd_visium_hippocampus/spatial/counts.csv",
            "rctd_visium_hippocampus/spatial/coords.csv",
        ],
        313,
        276,
    ),
    (
        &["scanpy_pbmc68k_reduced/10x_pbmc68k_reduced.h5ad"],
        700,
        765,
    ),
    (&["scanpy_visium_test"], 100, 100),
    (
        &[
            "seqfish_cortex_tasic/seqfish_normalized_cortex_b2_testing.txt",
            "seqfish_cortex_tasic/fcortex.coordinates.txt",
        ],
        1597,
        113,
    ),
    (&["squidpy_test_visium"], 100, 100),
    (
        &["tangram_merfish_mop/test_ad_sp_readytomap.h5ad"],
        2150,
        253,
    ),
    (&["tangram_osmfish_ssp/smFISH_anndata.h5ad"], 4840, 22),
    (&["visium_cytassist_mouse"], 2898, 19465),
    (&["visium_spe_sections/section2/outs"], 49, 50),
    (
        &[
            "xenium_mouse_brain_small/cell_feature_matrix.h5",
            "xenium_mouse_brain_small/cells.csv.gz",
        ],
        36602,
        248,
    ),
];

#[test]
fn info_reads_every_dataset() {
    let Some(dir) = common::data_dir("info_reads_every_dataset") else {
        return;
    };
    for (paths, n_obs, n_vars) in EVERY_DATASET {
        let mut args = vec!["info".to_string(), "--json".to_string()];
        args.extend(paths.iter().map(|p| dir.join(p).display().to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (ok, json, err) = tessera(&args);
        assert!(ok, "{paths:?}: {err}");
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(
            (v["n_obs"].as_u64(), v["n_vars"].as_u64()),
            (Some(*n_obs as u64), Some(*n_vars as u64)),
            "{paths:?}"
        );
        let spatial_expected = !paths[0].contains("pbmc68k") && !paths[0].contains("tangram");
        assert_eq!(
            v["spatial"].is_object(),
            spatial_expected,
            "{paths:?}: spatial coordinates"
        );
    }
}

#[test]
fn bench_ops_prints_one_row_per_op_and_shape() {
    for device in ["cpu", "gpu"] {
        let (ok, json, err) = tessera(&["bench", "ops", "--quick", "--json", "--device", device]);
        assert!(ok, "{device}: {err}");
        let rows: Vec<serde_json::Value> = serde_json::from_str(&json).unwrap();
        let ops: Vec<&str> = rows.iter().map(|r| r["op"].as_str().unwrap()).collect();
        for want in [
            "gemm_nn",
            "gemm_nt",
            "gemm_tn",
            "csr_mm",
            "softmax_rows",
            "nb_loglik_grad",
            "adam",
            "philox_normal",
        ] {
            assert!(ops.contains(&want), "{device}: no {want} row in {ops:?}");
        }
        for r in &rows {
            assert!(r["median_ms"].as_f64().unwrap() > 0.0, "{r}");
            assert!(r["gflops"].is_number() || r["gbps"].is_number(), "{r}");
            assert!(r["max_abs_err"].as_f64().unwrap() < 1e-3, "{device}: {r}");
            assert!(r["device"].as_str().unwrap().starts_with(device), "{r}");
        }
    }
    let (ok, _, err) = tessera(&["bench", "ops", "--device", "tpu"]);
    assert!(!ok && err.contains("expected cpu, gpu or cuda"), "{err}");
}

#[test]
fn tangram_writes_every_output_and_bench_reports_ratios() {
    let Some(data) = common::data_dir("tangram_writes_every_output") else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("tessera-tangram-{}", std::process::id()));
    let sc = data.join("rctd_visium_hippocampus/derived/reference.h5ad");
    let sp = data.join("rctd_visium_hippocampus/derived/spatial.h5ad");
    let genes = dir.join("markers.txt");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(&genes, "gene\nMbp\nCST3\nPtgds\nnot_a_gene\n").unwrap();
    let out = dir.join("clusters");
    let (ok, _, err) = tessera(&[
        "tangram",
        "--sc",
        sc.to_str().unwrap(),
        "--sp",
        sp.to_str().unwrap(),
        "--mode",
        "clusters",
        "--cluster-label",
        "cell_type",
        "--epochs",
        "300",
        "--seed",
        "0",
        "--device",
        "cpu",
        "--project-genes",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    assert!(
        err.contains("epochs [") && err.contains("300/300"),
        "no progress bar: {err}"
    );
    for f in [
        "mapping.npy",
        "tangram_ct_pred.csv",
        "train_genes.csv",
        "history.csv",
        "sp_mapped.h5ad",
        "sp_imputed.h5ad",
        "summary.json",
    ] {
        assert!(out.join(f).exists(), "{f} missing");
    }
    let ct = std::fs::read_to_string(out.join("tangram_ct_pred.csv")).unwrap();
    let mut lines = ct.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(header[0], "");
    assert_eq!(header.len(), 18, "17 cell types + index");
    assert_eq!(lines.count(), 313);
    let hist = std::fs::read_to_string(out.join("history.csv")).unwrap();
    assert_eq!(hist.lines().count(), 301);
    assert!(hist.starts_with("epoch,total_loss,main_loss,vg_reg,kl_reg,entropy_reg"));
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["seed"], 0);
    assert!(summary["final_score"].as_f64().unwrap() > 0.9);
    // The h5ad opens in anndata with the keys scanpy users expect.
    let py = common::repo_root().join(".venv/bin/python");
    let check = Command::new(&py)
        .args([
            "-c",
            "import sys, anndata as ad; a = ad.read_h5ad(sys.argv[1]); p = a.obsm['tangram_ct_pred']; \
             assert p.shape == (313, 17), p.shape; assert abs(p.values.sum() - 17) < 1e-3, p.values.sum(); \
             assert len(a.uns['training_genes']) > 100; b = ad.read_h5ad(sys.argv[2]); assert b.var['is_training'].sum() > 100",
            out.join("sp_mapped.h5ad").to_str().unwrap(),
            out.join("sp_imputed.h5ad").to_str().unwrap(),
        ])
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", py.display()));
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );

    // A marker list: case-insensitive, unknown names reported.
    let (ok, _, err) = tessera(&[
        "tangram",
        "--sc",
        sc.to_str().unwrap(),
        "--sp",
        sp.to_str().unwrap(),
        "--genes",
        genes.to_str().unwrap(),
        "--epochs",
        "20",
        "--device",
        "cpu",
        "--out",
        dir.join("markers").to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    assert!(
        err.contains("3 training genes") && err.contains("not_a_gene"),
        "{err}"
    );
    // A gene list with no genes in it is named.
    let empty = dir.join("empty.txt");
    std::fs::write(&empty, "# markers\n\n").unwrap();
    let (ok, _, err) = tessera(&[
        "tangram",
        "--sc",
        sc.to_str().unwrap(),
        "--sp",
        sp.to_str().unwrap(),
        "--genes",
        empty.to_str().unwrap(),
        "--out",
        dir.join("y").to_str().unwrap(),
    ]);
    assert!(
        !ok && err.contains("empty.txt") && err.contains("lists no genes"),
        "{err}"
    );
    // Bad arguments are named.
    let (ok, _, err) = tessera(&[
        "tangram",
        "--sc",
        sc.to_str().unwrap(),
        "--sp",
        sp.to_str().unwrap(),
        "--mode",
        "cluster",
        "--out",
        dir.join("x").to_str().unwrap(),
    ]);
    assert!(
        !ok && err.contains("--mode") && err.contains("expected cells, clusters or constrained"),
        "{err}"
    );

    let (ok, json, err) = tessera(&[
        "bench",
        "tangram",
        "--device",
        "cpu",
        "--epochs",
        "20",
        "--json",
        "--data",
        data.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    let rows: Vec<serde_json::Value> = serde_json::from_str(&json).unwrap();
    assert_eq!(rows.len(), 2, "clusters and cells");
    for r in &rows {
        assert_eq!(r["pair"], "seqfish_cortex_tasic", "the largest pair");
        assert!(r["epochs_per_s"].as_f64().unwrap() > 0.0);
        assert!(r["speedup_vs_reference"].as_f64().unwrap() > 0.0);
        assert!(r["reference_seconds"].as_f64().unwrap() > 40.0);
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn cell2location_signatures_write_inf_aver() {
    let Some(data) = common::data_dir("cell2location_signatures_write_inf_aver") else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("tessera-c2l-{}", std::process::id()));
    let reference = data.join("rctd_visium_hippocampus/derived/reference.h5ad");
    let r = reference.to_str().unwrap();
    let (ok, _, err) = tessera(&[
        "cell2location",
        "signatures",
        "--ref",
        r,
        "--labels",
        "cell_type",
        "--method",
        "average",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    let inf = std::fs::read_to_string(dir.join("inf_aver.csv")).unwrap();
    let header: Vec<&str> = inf.lines().next().unwrap().split(',').collect();
    assert_eq!(header.len(), 18);
    assert_eq!(inf.lines().count(), 308, "307 genes kept + header");
    assert!(dir.join("sc.h5ad").exists() && dir.join("filter_genes.csv").exists());
    // The NB regression (the default method): posterior summaries in varm.
    let (ok, _, err) = tessera(&[
        "cell2location",
        "signatures",
        "--ref",
        r,
        "--labels",
        "cell_type",
        "--epochs",
        "30",
        "--device",
        "cpu",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    assert!(err.contains("30/30") && err.contains("loss"), "{err}");
    let (ok, out, err) = tessera(&["info", dir.join("sc.h5ad").to_str().unwrap(), "--json"]);
    assert!(ok, "{err}");
    let info: serde_json::Value = serde_json::from_str(&out).unwrap();
    for k in ["means", "stds", "q05", "q95"] {
        let key = format!("{k}_per_cluster_mu_fg");
        assert!(
            info["varm"].as_array().unwrap().iter().any(|v| v == &key),
            "no varm {key}"
        );
    }
    assert_eq!(
        std::fs::read_to_string(dir.join("elbo_history.csv"))
            .unwrap()
            .lines()
            .count(),
        31
    );
    assert!(dir.join("qc_reconstruction.csv").exists());
    let (ok, _, err) = tessera(&[
        "cell2location",
        "signatures",
        "--ref",
        r,
        "--labels",
        "celltype",
        "--method",
        "average",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert!(!ok && err.contains("obs['celltype']"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn cell2location_map_writes_abundances_like_export_posterior() {
    let Some(data) = common::data_dir("cell2location_map_writes_abundances_like_export_posterior")
    else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("tessera-c2l-map-{}", std::process::id()));
    let d = data.join("rctd_visium_hippocampus/derived");
    let (ok, _, err) = tessera(&[
        "cell2location",
        "signatures",
        "--ref",
        d.join("reference.h5ad").to_str().unwrap(),
        "--labels",
        "cell_type",
        "--method",
        "average",
        "--out",
        dir.join("sig").to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    let inf = dir.join("sig/inf_aver.csv");
    let sp = d.join("spatial.h5ad");
    let out = dir.join("map");
    let (ok, _, err) = tessera(&[
        "cell2location",
        "map",
        "--sp",
        sp.to_str().unwrap(),
        "--signatures",
        inf.to_str().unwrap(),
        "--n-cells-per-location",
        "10",
        "--detection-alpha",
        "20",
        "--epochs",
        "200",
        "--num-samples",
        "50",
        "--expected-per-cell-type",
        "--device",
        "cpu",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    assert!(err.contains("200/200") && err.contains("-ELBO"), "{err}");
    let q05 = std::fs::read_to_string(out.join("q05_cell_abundance_w_sf.csv")).unwrap();
    assert_eq!(q05.lines().count(), 314);
    assert_eq!(q05.lines().next().unwrap().split(',').count(), 18);
    assert_eq!(
        std::fs::read_to_string(out.join("elbo_history.csv"))
            .unwrap()
            .lines()
            .count(),
        201
    );
    for f in [
        "qc_reconstruction.csv",
        "spot_qc.csv",
        "means_cell_abundance_w_sf.csv",
    ] {
        assert!(out.join(f).exists(), "{f}");
    }
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["genes"], 124);
    assert!(summary["detection_mean"][0].as_f64().unwrap() > 0.0);
    // scanpy users continue from sp.h5ad with the keys cell2location writes.
    let py = common::repo_root().join(".venv/bin/python");
    let check = Command::new(&py)
        .args([
            "-c",
            "import sys, anndata as ad; a = ad.read_h5ad(sys.argv[1]); \
             q = a.obsm['q05_cell_abundance_w_sf']; assert q.shape == (313, 17), q.shape; \
             assert 'q05cell_abundance_w_sf_CA1' in q.columns, list(q.columns); \
             m = a.obsm['means_cell_abundance_w_sf']; assert (m.values > q.values).all(); \
             p = a.uns['mod']['post_sample_means']; assert p['w_sf'].shape == (313, 17); \
             assert p['u_sf_mRNA_factors'].shape == (313, 17); assert len(a.uns['mod']['factor_names']) == 17; \
             assert a.layers['CA1'].shape == a.X.shape",
            out.join("sp.h5ad").to_str().unwrap(),
        ])
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", py.display()));
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    // Bad inputs are named.
    let (ok, _, err) = tessera(&[
        "cell2location",
        "map",
        "--sp",
        sp.to_str().unwrap(),
        "--signatures",
        inf.to_str().unwrap(),
        "--n-cells-per-location",
        "10",
        "--detection-alpha",
        "sample9=200",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!ok && err.contains("sample9"), "{err}");
    let other = dir.join("other.csv");
    std::fs::write(&other, ",A,B\nNotAGene,1,2\n").unwrap();
    let (ok, _, err) = tessera(&[
        "cell2location",
        "map",
        "--sp",
        sp.to_str().unwrap(),
        "--signatures",
        other.to_str().unwrap(),
        "--n-cells-per-location",
        "10",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!ok && err.contains("no gene in common"), "{err}");
    // Co-location NMF on the abundances, like run_colocation.
    let coloc = dir.join("coloc");
    let (ok, _, err) = tessera(&[
        "cell2location",
        "colocation",
        "--sp",
        out.join("sp.h5ad").to_str().unwrap(),
        "--n-fact",
        "3..5",
        "--restarts",
        "2",
        "--alpha",
        "0.001",
        "--device",
        "cpu",
        "--out",
        coloc.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    assert!(err.contains("6/6"), "{err}");
    for k in 3..=5 {
        let f =
            std::fs::read_to_string(coloc.join(format!("cell_type_fractions_mean/n_fact{k}.csv")))
                .unwrap();
        assert_eq!(f.lines().count(), 18);
        // Each cell type's fractions sum to one over the factors.
        for l in f.lines().skip(1) {
            let s: f64 = l
                .split(',')
                .skip(1)
                .map(|v| v.parse::<f64>().unwrap())
                .sum();
            assert!((s - 1.0).abs() < 1e-6, "{l}");
        }
        assert!(coloc
            .join(format!("location_factors_mean/n_fact{k}.csv"))
            .exists());
        assert!(coloc.join(format!("factor_markers/n_fact{k}.csv")).exists());
    }
    assert_eq!(
        std::fs::read_to_string(coloc.join("stability.csv"))
            .unwrap()
            .lines()
            .count(),
        7
    );
    let check = Command::new(&py)
        .args([
            "-c",
            "import sys, anndata as ad; a = ad.read_h5ad(sys.argv[1]); \
             m = a.uns['mod_coloc_n_fact4']['post_sample_means']; assert m['nUMI_factors'].shape == (313, 4); \
             assert m['cell_type_factors'].shape == (17, 4); assert 'mean_nUMI_factorsfact_4' in a.obs",
            coloc.join("anndata/sp.h5ad").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    // Tissue regions: Leiden on the abundances' kNN graph, and a UMAP.
    let regions = dir.join("regions");
    let (ok, _, err) = tessera(&[
        "cell2location",
        "regions",
        "--sp",
        out.join("sp.h5ad").to_str().unwrap(),
        "--device",
        "cpu",
        "--out",
        regions.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    let table = std::fs::read_to_string(regions.join("regions.csv")).unwrap();
    assert_eq!(table.lines().count(), 314);
    let k = table
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(1).unwrap().parse::<usize>().unwrap())
        .max()
        .unwrap()
        + 1;
    assert!((2..=40).contains(&k), "{k} regions");
    let check = Command::new(&py)
        .args([
            "-c",
            "import sys, anndata as ad, numpy as np; a = ad.read_h5ad(sys.argv[1]); \
             assert a.obs['region_cluster'].dtype == 'category'; u = a.obsm['X_umap']; \
             assert u.shape == (313, 2) and np.isfinite(u).all()",
            regions.join("sp.h5ad").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let (ok, _, err) = tessera(&[
        "cell2location",
        "colocation",
        "--sp",
        out.join("sp.h5ad").to_str().unwrap(),
        "--n-fact",
        "9..4",
        "--out",
        coloc.to_str().unwrap(),
    ]);
    assert!(!ok && err.contains("--n-fact"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn bench_cell2location_prints_steps_and_ratios() {
    let Some(data) = common::data_dir("bench_cell2location_prints_steps_and_ratios") else {
        return;
    };
    let (ok, out, err) = tessera(&[
        "bench",
        "cell2location",
        "--device",
        "cpu",
        "--data",
        data.to_str().unwrap(),
        "--steps",
        "20",
        "--lymph-steps",
        "1",
        "--quick",
        "--json",
    ]);
    assert!(ok, "{err}");
    let rows: serde_json::Value = serde_json::from_str(&out).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["shape"], "313 x 124 x 17");
    assert!(rows[0]["speedup_vs_reference"].as_f64().unwrap() > 0.0);
    assert_eq!(rows[1]["shape"], "4035 x 1022 x 34");
    assert!(rows[1]["steps_per_s"].as_f64().unwrap() > 0.0);
}

#[test]
fn simulate_visium_writes_counts_and_truth() {
    let Some(data) = common::data_dir("simulate_visium_writes_counts_and_truth") else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("tessera-sim-{}", std::process::id()));
    let reference = data.join("rctd_visium_hippocampus/derived/reference.h5ad");
    let (ok, _, err) = tessera(&[
        "simulate",
        "visium",
        "--ref",
        reference.to_str().unwrap(),
        "--labels",
        "cell_type",
        "--spots",
        "300",
        "--zones",
        "4",
        "--seed",
        "7",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    let truth = std::fs::read_to_string(dir.join("truth_abundance.csv")).unwrap();
    assert_eq!(truth.lines().count(), 301);
    assert_eq!(truth.lines().next().unwrap().split(',').count(), 18);
    let (ok, out, err) = tessera(&["info", dir.join("sp.h5ad").to_str().unwrap(), "--json"]);
    assert!(ok, "{err}");
    let s: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(s["n_obs"], 300);
    assert_eq!(s["x"]["raw_counts"], true);
    assert!(dir.join("reference_train.h5ad").exists() && dir.join("cell_types.csv").exists());
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn spatial_commands_write_squidpy_layouts() {
    let Some(data) = common::data_dir("spatial_commands_write_squidpy_layouts") else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("tessera-spatial-{}", std::process::id()));
    let seqfish = data.join("seqfish_cortex_tasic/derived/seqfish_spatial.h5ad");
    let mibi = data.join("mibi_tnbc_ark/derived/mibi_tnbc.h5ad");
    let refs = data.join("ref/squidpy");
    let s = |p: &std::path::Path| p.to_str().unwrap().to_string();
    // nhood on the radius-100 graph: the z-scores are squidpy's (same shuffles).
    let nh = dir.join("nhood");
    let (ok, _, err) = tessera(&[
        "spatial",
        "nhood",
        &s(&seqfish),
        "--labels",
        "cell_type",
        "--graph",
        "radius",
        "--radius",
        "100",
        "--out",
        &s(&nh),
    ]);
    assert!(ok, "{err}");
    for (ours, theirs) in [
        (
            "nhood_enrichment_zscore.csv",
            "radius100_nhood_enrichment_zscore.csv",
        ),
        (
            "nhood_enrichment_count.csv",
            "radius100_nhood_enrichment_count.csv",
        ),
        ("interaction_matrix.csv", "radius100_interaction_matrix.csv"),
    ] {
        let a = std::fs::read_to_string(nh.join(ours)).unwrap();
        let b = std::fs::read_to_string(refs.join("seqfish_cortex").join(theirs)).unwrap();
        assert_eq!(a.lines().next(), b.lines().next(), "{ours}: header");
        for (la, lb) in a.lines().zip(b.lines()).skip(1) {
            let (fa, fb): (Vec<&str>, Vec<&str>) =
                (la.split(',').collect(), lb.split(',').collect());
            assert_eq!(fa[0], fb[0]);
            for (x, y) in fa[1..].iter().zip(&fb[1..]) {
                let (x, y): (f64, f64) = (x.parse().unwrap(), y.parse().unwrap());
                assert!(
                    (x - y).abs() <= 1e-9 * y.abs().max(1.0),
                    "{ours}: {la} vs {lb}"
                );
            }
        }
    }
    assert!(nh.join("centrality_scores.csv").exists() && nh.join("summary.json").exists());
    // Co-occurrence per FOV, as the reference ran it.
    let co = dir.join("co");
    let (ok, _, err) = tessera(&[
        "spatial",
        "cooccurrence",
        &s(&mibi),
        "--labels",
        "cell_type",
        "--library-key",
        "SampleID",
        "--out",
        &s(&co),
    ]);
    assert!(ok, "{err}");
    let npy = |p: std::path::PathBuf| {
        tessera_core::io::npy::read("occ", &std::fs::read(p).unwrap()).unwrap()
    };
    let (shape, ours) = npy(co.join("co_occurrence_2_occ.npy"));
    let (want_shape, theirs) = npy(refs.join("mibi_tnbc_ark/co_occurrence_2_occ.npy"));
    assert_eq!(shape, want_shape);
    assert!(ours.iter().zip(&theirs).all(|(a, b)| (a - b).abs() < 1e-4));
    // The graph files open with scipy as CSR.
    let gr = dir.join("graph");
    let (ok, _, err) = tessera(&[
        "spatial",
        "neighbors",
        &s(&seqfish),
        "--graph",
        "delaunay",
        "--out",
        &s(&gr),
    ]);
    assert!(ok, "{err}");
    let py = common::repo_root().join(".venv/bin/python");
    let check = Command::new(&py)
        .args([
            "-c",
            "import sys, scipy.sparse as sp; a = sp.load_npz(sys.argv[1]); b = sp.load_npz(sys.argv[2]); \
             assert a.format == 'csr' and a.shape == (1597, 1597) and a.nnz == 9540, (a.format, a.shape, a.nnz); \
             assert (a != a.T).nnz == 0 and b.nnz == 9540 and b.data.min() > 0",
            gr.join("connectivities.npz").to_str().unwrap(),
            gr.join("distances.npz").to_str().unwrap(),
        ])
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", py.display()));
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    // Visium spots from a Space Ranger folder get the grid graph; squidpy
    // 1.8.2 (coord_type='grid', n_rings=2, run once in a scratch venv) gives
    // 15,988 ring-1 and 29,818 ring-2 entries on this slide.
    let vg = dir.join("visium_grid");
    let (ok, _, err) = tessera(&[
        "spatial",
        "neighbors",
        &s(&data.join("visium_cytassist_mouse")),
        "--n-rings",
        "2",
        "--out",
        &s(&vg),
    ]);
    assert!(ok && err.contains("grid graph"), "{err}");
    let d = npz::read_csr(
        "distances.npz",
        &std::fs::read(vg.join("distances.npz")).unwrap(),
    )
    .unwrap();
    let ring = |r: f64| d.data.iter().filter(|&&v| v == r).count();
    assert_eq!(
        (d.shape[0], ring(1.0), ring(2.0), d.data.len()),
        (2898, 15988, 29818, 45806)
    );
    // Niches and autocorrelation write their tables.
    let (ok, _, err) = tessera(&[
        "spatial",
        "niche",
        &s(&seqfish),
        "--labels",
        "cell_type",
        "--radius",
        "150",
        "--out",
        &s(&dir.join("niche")),
    ]);
    assert!(ok, "{err}");
    let niche = std::fs::read_to_string(dir.join("niche/niche_composition.csv")).unwrap();
    assert_eq!(niche.lines().count(), 1598);
    let (ok, _, err) = tessera(&[
        "spatial",
        "autocorr",
        &s(&seqfish),
        "--genes",
        "acta2,abca15",
        "--mode",
        "geary",
        "--out",
        &s(&dir.join("ac")),
    ]);
    assert!(ok, "{err}");
    let ac = std::fs::read_to_string(dir.join("ac/gearyC.csv")).unwrap();
    assert!(
        ac.starts_with(",C,pval_norm,var_norm,pval_norm_fdr_bh\nacta2,0.669"),
        "{ac}"
    );
    // Bad inputs name the file, the key and what was expected.
    let (ok, _, err) = tessera(&[
        "spatial",
        "nhood",
        &s(&seqfish),
        "--labels",
        "celltype",
        "--out",
        &s(&dir.join("x")),
    ]);
    assert!(
        !ok && err.contains("obs/celltype") && err.contains("cell_type, cluster, field"),
        "{err}"
    );
    let (ok, _, err) = tessera(&[
        "spatial",
        "nhood",
        &s(&seqfish),
        "--labels",
        "cell_type",
        "--graph",
        "ring",
        "--out",
        &s(&dir.join("x")),
    ]);
    assert!(
        !ok && err.contains("expected knn, radius, delaunay or grid"),
        "{err}"
    );
    let (ok, _, err) = tessera(&[
        "spatial",
        "autocorr",
        &s(&seqfish),
        "--genes",
        "nope",
        "--out",
        &s(&dir.join("x")),
    ]);
    assert!(!ok && err.contains("\"nope\" is not in var_names"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

/// `tessera run` reaches the analyses through the registry, as the page
/// does: the same files as the dedicated subcommands, from parameters or a
/// share link, and a bundle that names the run.
#[test]
fn run_replays_parameters_and_links_through_the_registry() {
    use tessera_core::share::{Inputs, Link, Params, Run, Source, View, VERSION};
    let Some(data) = common::data_dir("run_replays_parameters_and_links_through_the_registry")
    else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("tessera-run-{}", std::process::id()));
    let seqfish = data.join("seqfish_cortex_tasic/derived/seqfish_spatial.h5ad");
    let s = |p: &std::path::Path| p.to_str().unwrap().to_string();
    // Niches from JSON parameters against `tessera spatial niche`.
    let (ok, _, err) = tessera(&[
        "run",
        r#"{"analysis": "niche", "cluster_key": "cell_type", "radius": 150}"#,
        "--sp",
        &s(&seqfish),
        "--out",
        &s(&dir.join("run_niche")),
    ]);
    assert!(ok, "{err}");
    let (ok, _, err) = tessera(&[
        "spatial",
        "niche",
        &s(&seqfish),
        "--labels",
        "cell_type",
        "--radius",
        "150",
        "--out",
        &s(&dir.join("niche")),
    ]);
    assert!(ok, "{err}");
    for f in ["niche_composition.csv", "co_localization.csv"] {
        assert_eq!(
            std::fs::read(dir.join("run_niche").join(f)).unwrap(),
            std::fs::read(dir.join("niche").join(f)).unwrap(),
            "{f}"
        );
    }
    // Enrichment from a share link (the whole address) against `spatial nhood`.
    let mut p = serde_json::to_value(Params::default_of("nhood").unwrap()).unwrap();
    p["cluster_key"] = "cell_type".into();
    p["graph"] = "radius".into();
    p["radius"] = 100.0.into();
    p["n_perms"] = 50.into();
    let link = Link {
        v: VERSION,
        run: Run {
            params: serde_json::from_value(p).unwrap(),
            inputs: Inputs {
                sc: None,
                sp: Source::Url {
                    url: "https://example.org/seqfish.h5ad".into(),
                },
                prot: None,
            },
            device: Default::default(),
        },
        view: View::default(),
    };
    let url = format!("https://tessera.example/#link={}", link.encode());
    let (ok, _, err) = tessera(&[
        "run",
        &url,
        "--sp",
        &s(&seqfish),
        "--out",
        &s(&dir.join("run_nhood")),
    ]);
    assert!(ok, "{err}");
    let (ok, _, err) = tessera(&[
        "spatial",
        "nhood",
        &s(&seqfish),
        "--labels",
        "cell_type",
        "--graph",
        "radius",
        "--radius",
        "100",
        "--n-perms",
        "50",
        "--out",
        &s(&dir.join("nhood")),
    ]);
    assert!(ok, "{err}");
    for f in ["nhood_enrichment_zscore.csv", "centrality_scores.csv"] {
        assert_eq!(
            std::fs::read_to_string(dir.join("run_nhood").join(f)).unwrap(),
            std::fs::read_to_string(dir.join("nhood").join(f)).unwrap(),
            "{f}"
        );
    }
    let bytes = std::fs::read(dir.join("run_nhood/tessera_results.zip")).unwrap();
    let r = tessera_core::bundle::read("tessera_results.zip", &bytes).unwrap();
    assert_eq!(r.analysis, "nhood");
    let run: Run = serde_json::from_value(r.params).unwrap();
    assert_eq!(run.params, link.run.params);
    assert_eq!(
        run.inputs.sp,
        Source::Local {
            files: vec!["seqfish_spatial.h5ad".into()]
        }
    );
    // Bad input: named, never a panic.
    let (ok, _, err) = tessera(&[
        "run",
        r#"{"analysis": "tangram"}"#,
        "--sp",
        &s(&seqfish),
        "--out",
        &s(&dir.join("x")),
    ]);
    assert!(!ok && err.contains("cluster label"), "{err}");
    let (ok, _, err) = tessera(&[
        "run",
        r#"{"analysis": "tangram", "cluster_label": "cell_type"}"#,
        "--sp",
        &s(&seqfish),
        "--out",
        &s(&dir.join("x")),
    ]);
    assert!(!ok && err.contains("--sc"), "{err}");
    let (ok, _, err) = tessera(&["run", "#link=%%%", "--sp", &s(&seqfish), "--out", "x"]);
    assert!(!ok && err.contains("base64url"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn bench_spatial_prints_ratios_against_squidpy() {
    let Some(data) = common::data_dir("bench_spatial_prints_ratios_against_squidpy") else {
        return;
    };
    let (ok, out, err) = tessera(&[
        "bench",
        "spatial",
        "--data",
        data.to_str().unwrap(),
        "--cells",
        "20000",
        "--perms",
        "20",
        "--json",
    ]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let rows = v["tasks"].as_array().unwrap();
    assert_eq!(rows.len(), 8);
    for r in rows {
        assert!(
            r["seconds"].as_f64().unwrap() > 0.0 && r["squidpy_s"].as_f64().unwrap() > 0.0,
            "{r}"
        );
        let ratio = r["squidpy_s"].as_f64().unwrap() / r["seconds"].as_f64().unwrap();
        assert!(
            (r["speedup"].as_f64().unwrap() - ratio).abs() < 1e-9 * ratio,
            "{r}"
        );
    }
    assert_eq!(rows[6]["cells"], 20000);
    assert_eq!(rows[6]["edges"], 120000);
    assert_eq!(rows[7]["squidpy_measured"], false);
    // The k-d tree against kiddo: both timed; radius queries agree exactly
    // (kNN may differ only where distances tie).
    let trees = v["kdtree"].as_array().unwrap();
    assert_eq!(trees.len(), 2);
    for t in trees {
        assert!(t["ours_s"].as_f64().unwrap() > 0.0 && t["kiddo_s"].as_f64().unwrap() > 0.0);
        assert!(t["rows_differ"].as_u64().unwrap() <= 20000);
    }
    assert_eq!(trees[1]["rows_differ"], 0, "{}", trees[1]);
}

#[test]
fn multiomics_runs_the_preprints_command_line() {
    use tessera_core::models::multiomics::demo;
    let dir = std::env::temp_dir().join(format!("tessera-mo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // Inputs as users bring them: transcripts as .h5ad, proteins as a cell table.
    let d = demo::generate(&demo::Spec {
        seed: 3,
        ..Default::default()
    });
    let tx = dir.join("tx.h5ad");
    std::fs::write(
        &tx,
        tessera_core::io::h5ad_write::write(&d.transcripts).unwrap(),
    )
    .unwrap();
    let p = &d.proteins;
    let xy = p.spatial().unwrap();
    let x =
        p.x.as_ref()
            .unwrap()
            .columns_dense(&(0..p.n_vars()).collect::<Vec<_>>());
    let mut csv = format!("cell_id,x,y,{}\n", p.var.index.join(","));
    for i in 0..p.n_obs() {
        let vals: Vec<String> = x[i * p.n_vars()..(i + 1) * p.n_vars()]
            .iter()
            .map(|v| v.to_string())
            .collect();
        // Protein centroids 1 unit off the transcript ones: paired by position.
        csv.push_str(&format!(
            "prot_{i},{},{},{}\n",
            xy.row(i)[0] + 1.0,
            xy.row(i)[1],
            vals.join(",")
        ));
    }
    let prot = dir.join("codex.csv");
    std::fs::write(&prot, csv).unwrap();
    let mut markers = serde_json::Map::new();
    for (t, (g, pr)) in &d.markers.types {
        markers.insert(t.clone(), serde_json::json!({"genes": g, "proteins": pr}));
    }
    let m = dir.join("markers.json");
    std::fs::write(&m, serde_json::Value::Object(markers).to_string()).unwrap();
    let out = dir.join("out");
    let s = |p: &std::path::Path| p.to_str().unwrap().to_string();
    let (ok, _, err) = tessera(&[
        "multiomics",
        "--tx",
        &s(&tx),
        "--prot",
        &s(&prot),
        "--tx-platform",
        "MERFISH",
        "--prot-platform",
        "CODEX",
        "--n-factors",
        "4",
        "--radius",
        "50",
        "--output",
        &s(&out),
        "--markers",
        &s(&m),
        "--device",
        "cpu",
    ]);
    assert!(ok, "{err}");
    assert!(
        err.contains("nearest protein cell within 5") && err.contains("200 matched"),
        "{err}"
    );
    let labels = std::fs::read_to_string(out.join("shared_labels.csv")).unwrap();
    assert!(labels.starts_with("cell_id,x,y,cell_type"));
    let assigned: Vec<String> = labels
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(3).unwrap().to_string())
        .collect();
    assert!(demo::accuracy(&assigned, &d.truth) > 0.9);
    let npy = |f: &str| {
        tessera_core::io::npy::read(f, &std::fs::read(out.join(f)).unwrap())
            .unwrap()
            .0
    };
    assert_eq!(npy("W_transcript.npy"), vec![500, 4]);
    assert_eq!(npy("W_protein.npy"), vec![10, 4]);
    assert_eq!(npy("H_shared.npy"), vec![4, 200]);
    for f in [
        "co_localization.csv",
        "niche_composition.csv",
        "nmf_factors.csv",
        "summary.json",
    ] {
        assert!(out.join(f).exists(), "{f}");
    }
    let coloc = std::fs::read_to_string(out.join("co_localization.csv")).unwrap();
    assert_eq!(coloc.lines().count(), 1 + 10, "4 types: 10 pairs");
    // The demo prints its accuracy; bad flags are named.
    let (ok, stdout, err) = tessera(&["multiomics", "--demo", "--device", "cpu"]);
    assert!(ok && stdout.contains("mean assignment accuracy"), "{err}");
    let (ok, _, err) = tessera(&["multiomics", "--demo", "--loss", "kl"]);
    assert!(!ok && err.contains("needs --solver mu"), "{err}");
    let (ok, _, err) = tessera(&[
        "multiomics",
        "--tx",
        &s(&tx),
        "--prot",
        &s(&prot),
        "--tx-platform",
        "Slide",
        "--output",
        &s(&out),
    ]);
    assert!(
        !ok && err.contains("expected one of Visium, MERFISH"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// `tessera nsf` runs every model of the family on the real Visium set
/// (short fits: the accuracy tests are in tests/nsf.rs), writing every
/// output with one row per spot and gene; RSF and NSF also under the
/// Gaussian likelihood.
#[test]
fn nsf_runs_every_model_on_visium() {
    let data = common::data_dir("nsf_runs_every_model_on_visium").expect("data");
    let visium = data.join("visium_cytassist_mouse").display().to_string();
    let root = std::env::temp_dir().join(format!("tessera-nsf-{}", std::process::id()));
    for (model, lik) in [
        ("nsf", "poisson"),
        ("nsfh", "nb"),
        ("pnmf", "poisson"),
        ("rsf", "poisson"),
        ("rsf", "gaussian"),
        ("nsf", "gaussian"),
        ("nsfh", "gaussian"),
        ("pnmf", "gaussian"),
    ] {
        let out = root.join(format!("{model}-{lik}"));
        let (ok, _, err) = tessera(&[
            "nsf",
            "--data",
            &visium,
            "--model",
            model,
            "--likelihood",
            lik,
            "--factors",
            "4",
            "--genes",
            "150",
            "--inducing",
            "80",
            "--epochs",
            "20",
            "--device",
            "cpu",
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(ok, "{model} {lik}: {err}");
        let lines = |f: &str| {
            std::fs::read_to_string(out.join(f))
                .unwrap_or_else(|e| panic!("{model} {lik}: {f}: {e}"))
                .lines()
                .count()
        };
        let summary: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap())
                .unwrap();
        // A header and one row per spot with counts, or per gene.
        let spots = summary["observations"].as_u64().unwrap() as usize;
        assert!(spots > 2800, "{model} {lik}: {spots} spots");
        assert_eq!(lines("factors.csv"), spots + 1, "{model} {lik}");
        assert_eq!(lines("loadings.csv"), 151, "{model} {lik}");
        let epochs = summary["epochs"].as_u64().unwrap() as usize;
        assert!((1..=20).contains(&epochs), "{model} {lik}: {epochs} epochs");
        assert_eq!(lines("elbo_history.csv"), epochs + 1, "{model} {lik}");
        assert_eq!(out.join("spatial_importance.csv").exists(), model == "nsfh");
        let dv = summary["deviance_validation"]["mean"].as_f64();
        assert!(dv.is_some_and(f64::is_finite), "{model} {lik}: {summary}");
        assert!(out.join("nsf.h5ad").exists());
    }
    // An unknown likelihood is refused with the choices.
    let (ok, _, err) = tessera(&[
        "nsf",
        "--data",
        &visium,
        "--likelihood",
        "laplace",
        "--out",
        "x",
    ]);
    assert!(
        !ok && err.contains("--likelihood") && err.contains("gaussian"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&root);
}

/// `tessera resolvi` on real Xenium cells: the full file's empty cells are
/// refused by name; spill-over is simulated from it; a labelled strip is
/// fitted (semi-supervised, 2 epochs) and every file is written; `resolvi
/// de` tests two groups from the saved model, with named errors for an
/// unknown group and a missing model.
#[test]
fn resolvi_runs_on_xenium_with_de_and_niche_abundance() {
    use tessera_core::data::Column;
    let data = common::data_dir("resolvi_runs_on_xenium").expect("data");
    let xenium = data.join("xenium_mouse_brain_small/derived/xenium.h5ad");
    let root = std::env::temp_dir().join(format!("tessera-resolvi-{}", std::process::id()));
    std::fs::create_dir_all(&root).unwrap();
    let path = |p: &std::path::Path| p.to_str().unwrap().to_string();

    let (ok, _, err) = tessera(&[
        "resolvi",
        "--data",
        &path(&xenium),
        "--out",
        &path(&root.join("x")),
    ]);
    assert!(
        !ok && err.contains("cells have no counts") && err.contains("--min-counts 5"),
        "{err}"
    );
    // With them left out, the whole file (one epoch).
    let whole = root.join("whole");
    let (ok, _, err) = tessera(&[
        "resolvi",
        "--data",
        &path(&xenium),
        "--min-counts",
        "5",
        "--epochs",
        "1",
        "--device",
        "cpu",
        "--out",
        &path(&whole),
    ]);
    assert!(
        ok && err.contains("36447 of 36602 cells have at least 5 counts"),
        "{err}"
    );
    let f = std::fs::read_to_string(whole.join("fractions.csv")).unwrap();
    assert_eq!(f.lines().count(), 36448);
    for line in f.lines().skip(1).step_by(997) {
        let v: Vec<f64> = line
            .split(',')
            .skip(1)
            .map(|x| x.parse().unwrap())
            .collect();
        let s: f64 = v.iter().sum();
        assert!(
            v.iter().all(|x| *x > 0.0) && (s - 1.013).abs() < 0.01,
            "{line}"
        );
    }

    let sim = root.join("sim");
    let (ok, _, err) = tessera(&[
        "simulate",
        "spillover",
        "--data",
        &path(&xenium),
        "--out",
        &path(&sim),
    ]);
    assert!(ok, "{err}");
    let s = tessera_core::io::h5ad::read_file(&sim.join("spillover.h5ad")).unwrap();
    assert_eq!(s.n_obs(), 36447, "cells with at least 5 counts");
    assert!(s.layers.contains_key("clean"));
    for key in ["true_fraction", "diffused_fraction", "background_fraction"] {
        assert!(matches!(s.obs.column(key), Some(Column::Float(_))), "{key}");
    }

    // A strip with three regions as labels, every third cell unlabelled.
    let mut strip = common::xenium_strip(0.1);
    let sums = strip.x.as_ref().unwrap().row_sums();
    let keep: Vec<usize> = (0..sums.len()).filter(|&i| sums[i] >= 5.0).collect();
    let xy = tessera_core::spatial::inputs::coords("strip", &strip).unwrap();
    strip = common::subset(&strip, &keep, &xy);
    let ys: Vec<f64> = keep.iter().map(|&i| xy[i][1]).collect();
    let mut sorted = ys.clone();
    sorted.sort_by(f64::total_cmp);
    let (t1, t2) = (sorted[ys.len() / 3], sorted[2 * ys.len() / 3]);
    let region: Vec<String> = ys
        .iter()
        .enumerate()
        .map(|(i, &y)| {
            if i % 3 == 2 {
                "unknown".into()
            } else if y < t1 {
                "a".into()
            } else if y < t2 {
                "b".into()
            } else {
                "c".into()
            }
        })
        .collect();
    strip.obs.set("region", Column::categorical_from(&region));
    let file = root.join("strip.h5ad");
    std::fs::write(&file, tessera_core::io::h5ad_write::write(&strip).unwrap()).unwrap();
    let n = strip.n_obs();

    let out = root.join("fit");
    let (ok, _, err) = tessera(&[
        "resolvi",
        "--data",
        &path(&file),
        "--labels",
        "region",
        "--epochs",
        "2",
        "--device",
        "cpu",
        "--out",
        &path(&out),
    ]);
    assert!(ok, "{err}");
    let lines =
        |f: &str| std::fs::read_to_string(out.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
    assert_eq!(lines("latent.csv").lines().count(), n + 1);
    assert_eq!(lines("fractions.csv").lines().count(), n + 1);
    assert_eq!(lines("elbo_history.csv").lines().count(), 3);
    let pred = lines("predictions.csv");
    assert_eq!(pred.lines().next().unwrap(), "cell,predicted,a,b,c");
    assert_eq!(pred.lines().count(), n + 1);
    let c = tessera_core::io::h5ad::read_file(&out.join("corrected.h5ad")).unwrap();
    assert_eq!(c.obs.index, strip.obs.index);
    for layer in [
        "resolvi_corrected",
        "resolvi_normalized",
        "resolvi_own_counts",
    ] {
        assert_eq!(c.layers[layer].shape(), (n, 248), "{layer}");
    }
    assert!(c.obsm.contains_key("X_resolVI") && c.obsm.contains_key("X_umap"));
    assert!(
        c.obs.column("resolvi_leiden").is_some() && c.obs.column("resolvi_predicted").is_some()
    );
    let summary: serde_json::Value = serde_json::from_str(&lines("summary.json")).unwrap();
    assert_eq!(summary["epochs"], 2);
    assert_eq!(summary["labels"], serde_json::json!(["a", "b", "c"]));
    assert!(out.join("model.json").exists());

    let model = path(&out);
    let de_run = |args: &[&str]| {
        let mut all = vec!["resolvi", "de", "--model", model.as_str()];
        all.extend_from_slice(args);
        tessera(&all)
    };
    let (ok, _, err) = de_run(&["--groupby", "region", "--group1", "a", "--group2", "b"]);
    assert!(ok, "{err}");
    let de = lines("de.csv");
    let head: Vec<&str> = de.lines().next().unwrap().split(',').collect();
    for col in [
        "proba_de",
        "bayes_factor",
        "lfc_mean",
        "lfc_std",
        "raw_mean1",
        "non_zeros_proportion2",
        "is_de_fdr_0.05",
    ] {
        assert!(head.contains(&col), "{col} in {head:?}");
    }
    assert_eq!(de.lines().count(), 249);
    // Sorted by the probability of DE, each a probability.
    let p: Vec<f64> = de
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(1).unwrap().parse().unwrap())
        .collect();
    assert!(p.windows(2).all(|w| w[0] >= w[1]) && p.iter().all(|v| (0.0..=1.0).contains(v)));
    let niche = lines("niche_abundance.csv");
    assert_eq!(niche.lines().count(), 4, "{niche}");

    // The latent space's clusters from the fit's own AnnData.
    let leiden = path(&root.join("leiden"));
    let (ok, _, err) = de_run(&[
        "--groupby",
        "resolvi_leiden",
        "--group1",
        "0",
        "--out",
        &leiden,
    ]);
    assert!(ok && err.contains("vs the rest"), "{err}");
    let de = std::fs::read_to_string(root.join("leiden/de.csv")).unwrap();
    assert_eq!(de.lines().count(), 249);
    let (ok, _, err) = de_run(&["--groupby", "region", "--group1", "zzz"]);
    assert!(
        !ok && err.contains("no cell is 'zzz'") && err.contains("a, b, c"),
        "{err}"
    );
    let (ok, _, err) = tessera(&[
        "resolvi",
        "de",
        "--model",
        &path(&root.join("nothing")),
        "--groupby",
        "region",
        "--group1",
        "a",
    ]);
    assert!(!ok && err.contains("model.json"), "{err}");
    let _ = std::fs::remove_dir_all(&root);
}
