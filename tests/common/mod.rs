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
