//! What the fuzz targets share: the link encoder the `link` target feeds
//! JSON through, the demo data a fuzzed RESOLVI model loads onto, and the
//! seeds each target writes into its corpus at start-up (run.sh names the
//! corpus in `TESSERA_FUZZ_SEEDS`), so no seed file is kept in the repo.

use std::io::Write;
use std::sync::OnceLock;

use tessera_core::analysis::{Params, ALL};
use tessera_core::bundle::{self, Curve, Image, Layer, Matrix, Results};
use tessera_core::compute::cpu::Cpu;
use tessera_core::demo::{demo_pair, DemoSpec};
use tessera_core::models::resolvi::fit::{self, Options, Prepared, SavedFit};
use tessera_core::models::resolvi::model::Config;
use tessera_core::share::{DeviceChoice, Inputs, Link, Run, Source, View, VERSION};

/// Bytes as a link's payload: deflated, then base64url, as `Link::encode`.
pub fn encode_link(json: &[u8]) -> String {
    use base64::Engine;
    let mut z = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
    z.write_all(json).expect("in-memory deflate");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(z.finish().expect("deflate"))
}

fn demo_options() -> Options {
    Options {
        batch_key: None,
        labels_key: None,
        unlabeled: "unknown".into(),
        min_counts: 0.0,
        config: Config {
            epochs: 1,
            batch_size: 64,
            n_hidden: 8,
            n_hidden_encoder: 8,
            mixture_k: 4,
            particles: 1,
            ..Config::default()
        },
    }
}

fn demo_tissue() -> tessera_core::data::Dataset {
    demo_pair(DemoSpec {
        grid: 10,
        n_genes: 12,
        ..DemoSpec::default()
    })
    .0
}

/// The small demo tissue, prepared for RESOLVI once per process.
pub fn demo_resolvi() -> &'static Prepared {
    static P: OnceLock<Prepared> = OnceLock::new();
    P.get_or_init(|| fit::prepare("demo", &demo_tissue(), &demo_options()).expect("demo prepares"))
}

/// Writes `target`'s seeds into `$TESSERA_FUZZ_SEEDS` when it is set.
pub fn seed(target: &str) {
    let Ok(dir) = std::env::var("TESSERA_FUZZ_SEEDS") else {
        return;
    };
    let dir = std::path::Path::new(&dir);
    let _ = std::fs::create_dir_all(dir);
    let put = |name: &str, bytes: &[u8]| {
        let _ = std::fs::write(dir.join(format!("seed-{name}")), bytes);
    };
    match target {
        "link" => {
            for (i, info) in ALL.iter().map(|f| f()).enumerate() {
                let link = link_of(Params::default_of(info.name).expect("defaults"));
                put(
                    &format!("{i}-payload"),
                    &[&[0u8][..], link.encode().as_bytes()].concat(),
                );
                let json = serde_json::to_vec(&link).expect("serialises");
                put(&format!("{i}-json"), &[&[1u8][..], &json].concat());
            }
        }
        "bundle" => put("full", &bundle::write(&sample()).expect("bundle")),
        "resolvi_model" => {
            let o = demo_options();
            let (_, saved) = pollster::block_on(fit::fit(
                &Cpu,
                "demo",
                &demo_tissue(),
                &o,
                &mut |_, _, _| true,
            ))
            .expect("the demo fits");
            let saved = SavedFit {
                data: "demo.h5ad".into(),
                options: o,
                saved,
            };
            put("demo", &serde_json::to_vec(&saved).expect("serialises"));
        }
        _ => {}
    }
}

fn link_of(params: Params) -> Link {
    let info = params.info();
    let mut inputs = Inputs {
        sc: None,
        sp: Source::Demo,
        prot: None,
    };
    for i in info.inputs {
        match i.slot {
            tessera_core::analysis::Slot::Reference => {
                inputs.sc = Some(Source::Url {
                    url: "https://example.org/sc.h5ad".into(),
                })
            }
            tessera_core::analysis::Slot::Proteins => {
                inputs.prot = Some(Source::Local {
                    files: vec!["proteins.csv".into()],
                })
            }
            tessera_core::analysis::Slot::Spatial => {}
        }
    }
    Link {
        v: VERSION,
        run: Run {
            params,
            inputs,
            device: DeviceChoice::Cpu,
        },
        view: View {
            color: Some("Gene001".into()),
            center: Some([1.5, -2.0]),
            overlay: vec!["a".into(), "b".into()],
            layer: Some("q05".into()),
            ..View::default()
        },
    }
}

/// Results with every part a bundle holds.
fn sample() -> Results {
    Results {
        analysis: "tangram".into(),
        params: serde_json::json!({"analysis": "tangram", "seed": 42, "lr": 0.1}),
        view: serde_json::json!({"color": "CA1", "zoom": 2.0}),
        names: vec!["a".into(), "b,c".into(), "d".into()],
        xy: vec![0.0, 1.0, 2.0, 3.0, 4.5, -5.0],
        layers: vec![Layer {
            name: "tangram_ct_pred".into(),
            columns: vec!["CA1".into(), "DG".into()],
            values: vec![0.1, 0.9, 0.5, 0.5, 1.0, 0.0],
        }],
        curves: vec![Curve {
            name: "total_loss".into(),
            values: vec![-0.5, -0.7, -0.9],
        }],
        matrices: vec![Matrix::heatmap(
            "zscore",
            &["CA1".into(), "DG".into()],
            &["CA1".into(), "DG".into()],
            vec![3.5, -1.0, -1.0, 2.0],
        )],
        files: vec![("tangram_ct_pred.csv".into(), b",CA1,DG\n".to_vec())],
        image: Some(Image {
            width: 2,
            height: 1,
            rgba: vec![255, 0, 0, 255, 0, 0, 255, 255],
            scale: 0.15,
        }),
    }
}
