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

/// Pearson correlation of two equally long series.
pub fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let (mut ab, mut aa, mut bb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        ab += (x - ma) * (y - mb);
        aa += (x - ma).powi(2);
        bb += (y - mb).powi(2);
    }
    ab / (aa.sqrt() * bb.sqrt())
}
