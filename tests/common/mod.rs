//! Shared helpers for the workspace tests: where the real data lives.

#![allow(dead_code)]

use std::path::PathBuf;

/// `$TESSERA_DATA`, else `../shared/data` beside the checkout. When the folder
/// is missing the test fails under `TESSERA_REQUIRE_DATA=1` (CI) and otherwise
/// says loudly that it did not run.
pub fn data_dir(test: &str) -> Option<PathBuf> {
    let dir = std::env::var_os("TESSERA_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data"));
    if dir.join("README.md").exists() {
        return Some(dir);
    }
    if std::env::var("TESSERA_REQUIRE_DATA").as_deref() == Ok("1") {
        panic!(
            "{test}: test data not found at {} (TESSERA_REQUIRE_DATA=1)",
            dir.display()
        );
    }
    eprintln!(
        "\n*** {test} DID NOT RUN: no test data at {} (set TESSERA_DATA) ***\n",
        dir.display()
    );
    None
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Pearson correlation (the core's; not every test uses it).
#[allow(unused_imports)]
pub use tessera_core::models::pearson;

/// A dataset of `rows` of `d` with coordinates `xy` in obsm['spatial'].
pub fn subset(
    d: &tessera_core::data::Dataset,
    rows: &[usize],
    xy: &[[f64; 2]],
) -> tessera_core::data::Dataset {
    let spatial: Vec<f64> = rows.iter().flat_map(|&i| xy[i]).collect();
    let mut obsm = std::collections::BTreeMap::new();
    obsm.insert(
        "spatial".to_string(),
        tessera_core::data::Annotation::Array(
            tessera_core::data::dense(rows.len(), 2, spatial).unwrap(),
        ),
    );
    tessera_core::data::Dataset {
        x: Some(d.x.as_ref().unwrap().take_rows(rows)),
        x_dtype: d.x_dtype.clone(),
        raw_x: None,
        layers: Default::default(),
        obs: d.obs.take(rows),
        var: d.var.clone(),
        obsm,
        varm: Default::default(),
        uns: Default::default(),
    }
}

/// Cells of the Xenium set in the left `share` of its width.
pub fn xenium_strip(share: f64) -> tessera_core::data::Dataset {
    let dir = data_dir("xenium_strip").expect("data");
    let d = tessera_core::io::h5ad::read_file(
        &dir.join("xenium_mouse_brain_small/derived/xenium.h5ad"),
    )
    .unwrap();
    let xy = tessera_core::spatial::inputs::coords("xenium.h5ad", &d).unwrap();
    let mut xs: Vec<f64> = xy.iter().map(|p| p[0]).collect();
    xs.sort_by(f64::total_cmp);
    let cut = xs[(xs.len() as f64 * share) as usize];
    let rows: Vec<usize> = (0..xy.len()).filter(|&i| xy[i][0] < cut).collect();
    subset(&d, &rows, &xy)
}
