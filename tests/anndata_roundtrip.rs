//! Files we write open in Python's anndata (a real client, not our reader):
//! same shapes, obs categories, obsm keys and values. Uses the venv that the
//! test command creates (`$TESSERA_PYTHON`, default `.venv/bin/python`).

mod common;

use std::process::Command;

use tessera_core::data::{Annotation, Column};
use tessera_core::io::{self, FileSet, TableOptions};

fn python() -> std::path::PathBuf {
    std::env::var_os("TESSERA_PYTHON")
        .map(Into::into)
        .unwrap_or_else(|| common::repo_root().join(".venv/bin/python"))
}

const CHECK: &str = r#"
import sys, json, anndata as ad, numpy as np, scipy.sparse as sp
a = ad.read_h5ad(sys.argv[1])
x = a.X.toarray() if sp.issparse(a.X) else np.asarray(a.X)
out = {
  "shape": list(a.shape), "sparse": bool(sp.issparse(a.X)),
  "x_sum": float(x.sum()), "x_first_row": [float(v) for v in x[0, :5]],
  "obs_names": list(a.obs_names[:3]), "var_names": list(a.var_names[:3]),
  "obs": {c: str(a.obs[c].dtype) for c in a.obs.columns},
  "categories": {c: list(map(str, a.obs[c].cat.categories)) for c in a.obs.columns if str(a.obs[c].dtype) == "category"},
  "obsm": {k: list(np.asarray(v).shape) for k, v in a.obsm.items()},
  "spatial_first": [float(v) for v in np.asarray(a.obsm["spatial"])[0]] if "spatial" in a.obsm else None,
  "uns": sorted(a.uns.keys()),
}
print(json.dumps(out))
"#;

fn anndata_view(path: &std::path::Path) -> serde_json::Value {
    let py = python();
    let out = Command::new(&py)
        .args(["-c", CHECK])
        .arg(path)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {} ({e}); the test command creates it",
                py.display()
            )
        });
    assert!(
        out.status.success(),
        "anndata failed on {}:\n{}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn written_h5ad_opens_in_anndata() {
    let Some(dir) = common::data_dir("written_h5ad_opens_in_anndata") else {
        return;
    };
    let tmp = std::env::temp_dir().join(format!("tessera-roundtrip-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    for (rel, dense) in [
        ("visium_cytassist_mouse", false),
        ("mibi_tnbc_ark/derived/mibi_tnbc.h5ad", true),
        ("squidpy_test_visium/test_data.h5ad", false),
    ] {
        let loaded = io::read(
            FileSet::from_path(&dir.join(rel)).unwrap(),
            &TableOptions::default(),
        )
        .unwrap();
        let ds = loaded.dataset;
        let path = tmp.join("out.h5ad");
        std::fs::write(&path, io::h5ad_write::write(&ds).unwrap()).unwrap();
        let v = anndata_view(&path);
        assert_eq!(
            v["shape"],
            serde_json::json!([ds.n_obs(), ds.n_vars()]),
            "{rel}"
        );
        assert_eq!(v["sparse"], !dense, "{rel}");
        let x = ds.x.as_ref().unwrap();
        let sum: f64 = x.row_sums().iter().sum();
        assert!(
            (v["x_sum"].as_f64().unwrap() - sum).abs() <= 1e-4 * sum.abs().max(1.0),
            "{rel}: X sum"
        );
        let first: Vec<f64> = (0..5).map(|j| x.get(0, j) as f64).collect();
        let theirs: Vec<f64> = serde_json::from_value(v["x_first_row"].clone()).unwrap();
        for (a, b) in theirs.iter().zip(&first) {
            assert!(
                (a - b).abs() <= 1e-6 * b.abs().max(1.0),
                "{rel}: X[0, :5] {theirs:?} vs {first:?}"
            );
        }
        assert_eq!(
            v["obs_names"],
            serde_json::json!(ds.obs.index[..3]),
            "{rel}"
        );
        assert_eq!(
            v["var_names"],
            serde_json::json!(ds.var.index[..3]),
            "{rel}"
        );
        for (name, col) in &ds.obs.columns {
            let dtype = v["obs"][name]
                .as_str()
                .unwrap_or_else(|| panic!("{rel}: obs column {name} missing"));
            let want = match col {
                Column::Categorical { categories, .. } => {
                    assert_eq!(
                        v["categories"][name],
                        serde_json::json!(categories),
                        "{rel}: {name}"
                    );
                    "category"
                }
                Column::Int(_) => "int64",
                Column::Float(_) => "float64",
                Column::Bool(_) => "bool",
                Column::Str(_) => "object",
            };
            assert!(
                dtype == want || (want == "object" && dtype == "str"),
                "{rel}: {name} is {dtype}, want {want}"
            );
        }
        for (k, a) in &ds.obsm {
            if let Annotation::Array(d) = a {
                assert_eq!(
                    v["obsm"][k],
                    serde_json::json!([d.nrows(), d.ncols()]),
                    "{rel}: obsm {k}"
                );
            }
        }
        if let Some(s) = ds.spatial() {
            assert_eq!(
                v["spatial_first"],
                serde_json::json!(s.row(0).to_vec()),
                "{rel}"
            );
        }
        let uns: Vec<String> = ds.uns.keys().cloned().collect();
        assert_eq!(v["uns"], serde_json::json!(uns), "{rel}: uns keys");
        // And our own reader gives back what we wrote.
        let back = io::h5ad::read("out.h5ad", std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(back.x, ds.x, "{rel}");
        assert_eq!(back.obs, ds.obs.clone().tap_index_name(), "{rel}");
        assert_eq!(back.obsm, ds.obsm, "{rel}");
    }
    std::fs::remove_dir_all(&tmp).ok();
}

trait TapIndexName {
    fn tap_index_name(self) -> Self;
}

impl TapIndexName for tessera_core::data::Frame {
    /// The writer always names the index `_index`.
    fn tap_index_name(mut self) -> Self {
        self.index_name = Some("_index".into());
        self
    }
}
