//! NMF's coordinate-descent solver against scikit-learn 1.9.1 on real counts
//! ($TESSERA_DATA/ref/nmf): same start (the reference's nndsvda W0/H0), same
//! settings, reconstruction error and iteration count compared.

mod common;

use tessera_core::compute::{cpu::Cpu, Device};
use tessera_core::io::{self, npy, FileSet, TableOptions};
use tessera_core::models::nmf::{fit_cd, Nmf};

fn npy_f32(path: &std::path::Path) -> (Vec<usize>, Vec<f32>) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let (shape, v) = npy::read(&path.display().to_string(), &bytes).unwrap();
    (shape, v.into_iter().map(|x| x as f32).collect())
}

fn check<D: Device>(dev: &D, data: &std::path::Path) -> (usize, f64, f64) {
    let dir = data.join("ref/nmf/rctd_visium_hippocampus");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    let sp = io::read(
        FileSet::from_path(&data.join("rctd_visium_hippocampus/derived/spatial.h5ad")).unwrap(),
        &TableOptions::default(),
    )
    .unwrap()
    .dataset;
    // The reference's genes (all-zero genes dropped), in its order.
    let genes: Vec<String> = std::fs::read_to_string(dir.join("genes_used.csv"))
        .unwrap()
        .lines()
        .skip(1)
        .map(String::from)
        .collect();
    let cols: Vec<usize> = genes
        .iter()
        .map(|g| sp.var.index.iter().position(|v| v == g).unwrap())
        .collect();
    let x = sp.x.as_ref().unwrap().columns_dense(&cols);
    let (rows, ncol) = (sp.n_obs(), cols.len());
    let (ws, w0) = npy_f32(&dir.join("init_nndsvda_W0.npy"));
    let (_, h0) = npy_f32(&dir.join("init_nndsvda_H0.npy"));
    assert_eq!(ws, vec![rows, 10]);
    let p = Nmf {
        max_iter: 500,
        tol: 1e-4,
        ..Nmf::new(10)
    };
    let fit = pollster::block_on(fit_cd(dev, &p, &x, rows, ncol, &w0, &h0));
    let want = summary["frobenius_cd"]["reconstruction_err_"]
        .as_f64()
        .unwrap();
    (fit.n_iter, fit.reconstruction_err, want)
}

#[test]
fn cd_solver_matches_scikit_learn_on_real_counts() {
    let Some(data) = common::data_dir("cd_solver_matches_scikit_learn_on_real_counts") else {
        return;
    };
    let (n_iter, err, want) = check(&Cpu, &data);
    eprintln!(
        "CPU: {n_iter} iterations (scikit-learn 163), error {err:.3} (scikit-learn {want:.3})"
    );
    // Same start, same sweeps: the same answer up to float32 rounding.
    assert!((err / want - 1.0).abs() < 1e-3, "{err} vs {want}");
    assert!((158..=168).contains(&n_iter), "{n_iter} iterations");
    let gpu = pollster::block_on(tessera_core::compute::gpu::Gpu::new())
        .expect("a wgpu adapter (lavapipe in CI)");
    let (gi, gerr, _) = check(&gpu, &data);
    eprintln!("wgpu: {gi} iterations, error {gerr:.3}");
    assert!((gerr / want - 1.0).abs() < 1e-3, "{gerr} vs {want}");
    assert!((158..=168).contains(&gi), "{gi} iterations");
}
