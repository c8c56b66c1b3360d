//! The multi-omics method on the preprint's synthetic benchmark: cells
//! assigned the type of their dominant joint factor, named from the planted
//! markers, must match the truth (mean over 10 seeds >= 0.94, the
//! preprint's claim), at its size (200 cells, 4 types) and at 2,000 cells
//! with 8 types.

use tessera_core::compute::cpu::Cpu;
use tessera_core::models::multiomics::{self, demo, pair::Unmatched, Options, Pairing};

fn run(spec: demo::Spec) -> f64 {
    let d = demo::generate(&spec);
    let mut o = Options {
        pairing: Pairing::Auto,
        tx_platform: "MERFISH".into(),
        unmatched: Unmatched::Drop,
        ..Options::default()
    };
    // One factor per planted type; the default 5 starts (nndsvda + 4 random).
    o.joint.n_factors = spec.types;
    let out = pollster::block_on(multiomics::run(
        &Cpu,
        &d.transcripts,
        &d.proteins,
        Some(&d.markers),
        &o,
        |_, _| {},
    ))
    .unwrap();
    assert_eq!(out.paired.matched, spec.cells, "paired by shared id");
    let assigned: Vec<String> = out
        .cells
        .iter()
        .map(|&(f, _)| out.factors[f].cell_type.clone())
        .collect();
    demo::accuracy(&assigned, &d.truth)
}

fn mean_accuracy(cells: usize, types: usize) -> f64 {
    let accs: Vec<f64> = (0..10)
        .map(|seed| {
            run(demo::Spec {
                cells,
                types,
                seed,
                ..Default::default()
            })
        })
        .collect();
    let mean = accs.iter().sum::<f64>() / accs.len() as f64;
    eprintln!("{cells} cells, {types} types: accuracy per seed {accs:.3?}, mean {mean:.3}");
    mean
}

#[test]
fn synthetic_benchmark_at_the_preprints_size() {
    assert!(mean_accuracy(200, 4) >= 0.94);
}

#[test]
fn synthetic_benchmark_at_2000_cells_and_8_types() {
    assert!(mean_accuracy(2000, 8) >= 0.94);
}

#[test]
fn correlation_annotation_names_the_planted_types() {
    let d = demo::generate(&demo::Spec {
        seed: 4,
        ..Default::default()
    });
    let mut o = Options {
        tx_platform: "MERFISH".into(),
        annotation: multiomics::annotate::Method::Correlation,
        ..Options::default()
    };
    o.joint.n_factors = 4;
    let out = pollster::block_on(multiomics::run(
        &Cpu,
        &d.transcripts,
        &d.proteins,
        Some(&d.markers),
        &o,
        |_, _| {},
    ))
    .unwrap();
    let mut names: Vec<&str> = out.factors.iter().map(|f| f.cell_type.as_str()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        ["Epithelial", "Fibroblasts", "Macrophages", "T cells"]
    );
    assert!(
        out.factors.iter().all(|f| f.score > 0.5),
        "{:?}",
        out.factors
    );
    let assigned: Vec<String> = out
        .cells
        .iter()
        .map(|&(f, _)| out.factors[f].cell_type.clone())
        .collect();
    assert!(demo::accuracy(&assigned, &d.truth) >= 0.94);
    // Without markers the factors are numbered and cells still get one.
    let plain = pollster::block_on(multiomics::run(
        &Cpu,
        &d.transcripts,
        &d.proteins,
        None,
        &o,
        |_, _| {},
    ))
    .unwrap();
    assert_eq!(plain.factors[0].cell_type, "Factor_1");
    assert_eq!(plain.factors[0].top_genes.len(), 10);
}

/// The page's run: the command line's files (shared_labels.csv first), an
/// AnnData that reads back with the labels and loadings, and the plots.
#[test]
fn browser_results_hold_the_cli_files_and_an_anndata() {
    use tessera_core::bundle::Plot;
    use tessera_core::data::{Annotation, Column};
    use tessera_core::io::{FileSet, TableOptions};
    use tessera_core::models::multiomics::export;
    let d = demo::generate(&demo::BROWSER);
    assert_eq!(
        demo::markers(&demo::BROWSER),
        d.markers,
        "the page's markers"
    );
    let p = tessera_core::models::multiomics::analysis::MultiomicsParams {
        tx_platform: "MERFISH".into(),
        n_factors: demo::BROWSER.types,
        markers: Some(d.markers.to_json()),
        ..Default::default()
    };
    let (o, markers) = p.options().unwrap();
    assert_eq!(markers.as_ref(), Some(&d.markers));
    let out = pollster::block_on(multiomics::run(
        &Cpu,
        &d.transcripts,
        &d.proteins,
        markers.as_ref(),
        &o,
        |_, _| {},
    ))
    .unwrap();
    let r = export::results(&out, &d.transcripts, serde_json::Value::Null).unwrap();
    let names: Vec<&str> = r.files.iter().map(|f| f.0.as_str()).collect();
    assert_eq!(names[0], "shared_labels.csv");
    for f in [
        "nmf_factors.csv",
        "co_localization.csv",
        "niche_composition.csv",
        "W_protein.npy",
        "H_shared.npy",
        "multiomics.h5ad",
    ] {
        assert!(names.contains(&f), "{f} in {names:?}");
    }
    let n = demo::BROWSER.cells;
    assert_eq!(r.n_points(), n);
    assert_eq!(r.layers[0].name, "cell_type");
    assert_eq!(r.layers[1].columns.len(), demo::BROWSER.types);
    assert_eq!(
        r.matrices.iter().map(|m| m.plot).collect::<Vec<_>>(),
        [Plot::Heatmap, Plot::Dots, Plot::Dots]
    );
    let ad = tessera_core::io::read(
        FileSet::single(
            "multiomics.h5ad",
            r.file("multiomics.h5ad").unwrap().to_vec(),
        ),
        &TableOptions::default(),
    )
    .unwrap()
    .dataset;
    assert_eq!(ad.n_obs(), n);
    assert_eq!(ad.n_vars(), d.transcripts.n_vars());
    let Some(Column::Categorical {
        codes, categories, ..
    }) = ad.obs.column("cell_type")
    else {
        panic!("obs['cell_type'] missing");
    };
    let assigned: Vec<String> = codes
        .iter()
        .map(|&c| categories[c as usize].clone())
        .collect();
    assert!(demo::accuracy(&assigned, &d.truth) >= 0.9);
    assert!(
        matches!(ad.obsm.get("X_nmf"), Some(Annotation::Array(a)) if a.ncols() == demo::BROWSER.types)
    );
    // The page's parameters refuse what the command line refuses.
    let bad = tessera_core::models::multiomics::analysis::MultiomicsParams {
        loss: "kl".into(),
        ..Default::default()
    };
    assert!(bad.options().unwrap_err().contains("needs --solver mu"));
    let bad = tessera_core::models::multiomics::analysis::MultiomicsParams {
        markers: Some("{\"T\": [".into()),
        ..Default::default()
    };
    assert!(bad.options().unwrap_err().contains("not valid JSON"));
}
