//! `tessera bench nsf`: the NSF family's fits at the sizes, per
//! device: the simulation S1 (1,296 × 200, L = 4, M = 1,296) and the
//! Visium CytAssist set (2,898 spots, top 2,000 genes, L = 12, M = 500),
//! plus a memory row at M = 3,000 (the set tiled twice). Each row gives
//! epochs/s, the time to convergence (or to the epoch cap), the peak
//! memory above the data, and the ratio of a GP epoch to this machine's
//! floor: the epoch's large products at the GEMM rate measured in the
//! same run.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;
use tessera_core::compute::{Device, Gemm};
use tessera_core::data::Dataset;
use tessera_core::io::{self, FileSet, TableOptions};
use tessera_core::models::nsf::run::{self as nsf_run, Model, Options};

use crate::device::{self, on_device};
use crate::rss;

#[derive(Serialize)]
pub struct Row {
    pub data: String,
    pub model: String,
    pub shape: String,
    pub device: String,
    pub epochs: usize,
    pub converged: bool,
    pub seconds: f64,
    pub epochs_per_s: f64,
    /// Seconds per epoch of the large products at the measured GEMM rate.
    pub floor_s: f64,
    pub vs_floor: f64,
    pub peak_gib: f64,
    pub validation_deviance: f64,
}

fn bad(m: String) -> io::Error {
    io::Error::new("tessera bench nsf", "", m)
}

fn load(p: &Path) -> Result<Dataset, io::Error> {
    Ok(io::read(FileSet::from_path(p)?, &TableOptions::default())?.dataset)
}

/// The set tiled `k` times side by side (coordinates shifted past the
/// previous copy), for sizes the data does not reach.
pub fn tiled(ds: &Dataset, k: usize) -> Result<Dataset, io::Error> {
    use tessera_core::data::Annotation;
    let n = ds.n_obs();
    let rows: Vec<usize> = (0..k).flat_map(|_| 0..n).collect();
    let mut out = ds.clone();
    out.x = ds.x.as_ref().map(|x| x.take_rows(&rows));
    out.layers.clear();
    out.obs = ds.obs.take(&rows);
    out.obs.index = (0..k * n)
        .map(|i| format!("{}-{}", ds.obs.index[i % n], i / n))
        .collect();
    let xy = ds
        .spatial()
        .ok_or_else(|| bad("the set to tile has no coordinates".into()))?;
    let width = xy.column(0).iter().cloned().fold(f64::MIN, f64::max)
        - xy.column(0).iter().cloned().fold(f64::MAX, f64::min);
    let mut t = tessera_core::data::Dense::<f64>::zeros((k * n, 2));
    for i in 0..k * n {
        t[[i, 0]] = xy[[i % n, 0]] + (i / n) as f64 * width * 1.1;
        t[[i, 1]] = xy[[i % n, 1]];
    }
    out.obsm.clear();
    out.obsm.insert("spatial".into(), Annotation::Array(t));
    Ok(out)
}

/// GEMM rate (flop/s) of `dev` on an n×n×n product.
pub fn gemm_rate<D: Device>(dev: &D, n: usize) -> f64 {
    let (a, b, c) = (
        dev.upload(&vec![0.5; n * n]),
        dev.upload(&vec![0.25; n * n]),
        dev.zeros(n * n),
    );
    let g = Gemm::new(n, n, n);
    dev.gemm(g, &a, &b, &c);
    dev.sync();
    let t = Instant::now();
    let reps = 3;
    for _ in 0..reps {
        dev.gemm(g, &a, &b, &c);
    }
    dev.sync();
    reps as f64 * g.flops() / t.elapsed().as_secs_f64()
}

fn time_fit<D: Device>(
    dev: &D,
    label: &str,
    ds: &Dataset,
    o: &Options,
    rate: f64,
) -> Result<Row, io::Error> {
    let base = rss::reset_peak();
    let t0 = Instant::now();
    let f = pollster::block_on(nsf_run::run(dev, label, ds, o, &mut |e, max, loss| {
        if e % 100 == 0 {
            eprintln!(
                "  epoch {e}/{max}: loss {loss:.4} ({:.0} s)",
                t0.elapsed().as_secs_f64()
            );
        }
        true
    }))?;
    let seconds = t0.elapsed().as_secs_f64();
    let peak = rss::status_kib("VmHWM:")
        .zip(base)
        .map(|(p, b)| p.saturating_sub(b));
    let (n, m, t) = (f.train.len() as f64, f.inducing.len() as f64, f.t as f64);
    // Per epoch: αᵀΩ, αᵀ(gΣ ⊙ ·) and K⁻¹Ω, each half a full product (Ω is
    // triangular): 2 flops × (2 N M² + M³) / 2 per spatial factor.
    let flops = t * (2.0 * n * m * m + m * m * m);
    let epochs = f.history.loss.len();
    Ok(Row {
        data: label.into(),
        model: o.model_name().into(),
        shape: format!(
            "{} x {}, L={}, M={}",
            f.obs.len(),
            f.genes.len(),
            o.factors,
            f.inducing.len()
        ),
        device: dev.name(),
        epochs,
        converged: f.history.converged,
        seconds,
        epochs_per_s: epochs as f64 / seconds,
        floor_s: if t > 0.0 { flops / rate } else { f64::NAN },
        vs_floor: if t > 0.0 {
            (seconds / epochs as f64) / (flops / rate)
        } else {
            f64::NAN
        },
        peak_gib: rss::gib(peak),
        validation_deviance: f.deviance_validation.map_or(f64::NAN, |d| d.mean),
    })
}

pub fn run(
    data: Option<PathBuf>,
    devices: &[String],
    epochs: usize,
    quick: bool,
    json: bool,
) -> Result<(), io::Error> {
    let data = data
        .or_else(|| std::env::var_os("TESSERA_DATA").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("../shared/data"));
    let s1 = io::h5ad::read_file(&data.join("nsf_simulations/S1.h5ad"))?;
    let visium = load(&data.join("visium_cytassist_mouse"))
        .map_err(|e| bad(format!("the Visium CytAssist set: {e}")))?;
    let sim = Options {
        factors: 4,
        inducing: 1296,
        shuffle: false,
        flip_y: false,
        epochs,
        ..Options::default()
    };
    let vis = Options {
        factors: 12,
        inducing: 500,
        genes: 2000,
        epochs,
        ..Options::default()
    };
    let mut rows = vec![];
    for dev in device::bench_devices(devices)? {
        let rate = on_device!(&dev, |d| gemm_rate(d, 1024));
        eprintln!(
            "{}: GEMM at {:.1} GFLOP/s (the floor's rate)",
            dev.name(),
            rate / 1e9
        );
        let mut runs: Vec<(&str, Dataset, Options)> = vec![
            (
                "S1",
                s1.clone(),
                Options {
                    model: Model::Pnmf,
                    ..sim.clone()
                },
            ),
            ("S1", s1.clone(), sim.clone()),
            ("visium_cytassist", visium.clone(), vis.clone()),
        ];
        if !quick {
            runs.push((
                "visium_cytassist x2",
                tiled(&visium, 2)?,
                Options {
                    inducing: 3000,
                    epochs: 3,
                    ..vis.clone()
                },
            ));
        }
        for (label, ds, o) in &runs {
            let o = if quick {
                Options {
                    epochs: o.epochs.min(20),
                    ..o.clone()
                }
            } else {
                o.clone()
            };
            eprintln!("{label} {} on {}...", o.model_name(), dev.name());
            rows.push(on_device!(&dev, |d| time_fit(d, label, ds, &o, rate))?);
        }
    }
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&rows).expect("rows serialise")
        );
        return Ok(());
    }
    println!(
        "{:<20} {:<5} {:<28} {:<28} {:>7} {:>5} {:>9} {:>9} {:>9} {:>8} {:>8} {:>8}",
        "data",
        "model",
        "shape",
        "device",
        "epochs",
        "conv",
        "seconds",
        "epochs/s",
        "floor s",
        "x floor",
        "peak GiB",
        "val dev"
    );
    for r in &rows {
        println!(
            "{:<20} {:<5} {:<28} {:<28} {:>7} {:>5} {:>9.1} {:>9.2} {:>9.4} {:>8.1} {:>8.2} {:>8.3}",
            r.data,
            r.model,
            r.shape,
            r.device.chars().take(28).collect::<String>(),
            r.epochs,
            if r.converged { "yes" } else { "no" },
            r.seconds,
            r.epochs_per_s,
            r.floor_s,
            r.vs_floor,
            r.peak_gib,
            r.validation_deviance
        );
    }
    println!(
        "The paper's own benchmark (its hardware, TensorFlow 2.5): Visium brain 2,363 x 2,000, L = 12: 122 s at M = 500, 2,183 s at M = all spots."
    );
    Ok(())
}
