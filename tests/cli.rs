//! `tessera info` prints, for the datasets in `$TESSERA_DATA`, the shape and
//! keys the data README lists; `tessera convert` writes a readable h5ad.

mod common;

use std::process::Command;

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
