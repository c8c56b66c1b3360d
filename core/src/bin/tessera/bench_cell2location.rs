//! `tessera bench cell2location`: steps/s of the spatial mapping model per
//! device at two sizes: the reference run's (rctd_visium_hippocampus, 313
//! spots x 124 genes x 17 types, cell2location 0.1.5 on PyTorch with 2 CPU
//! threads: 0.328 s per step) and the lymph-node tutorial's (4,035 x 10,217
//! x 34, simulated: 30,000 steps took 32 min on the tutorial's GPU).

use std::path::PathBuf;
use std::time::Instant;

use serde::Serialize;
use tessera_core::compute::{philox, Device};
use tessera_core::io::{self, FileSet, TableOptions};
use tessera_core::models::cell2location::{self as c2l, fit, Options};
use tessera_core::models::checkpoint::{Kept, Resume};
use tessera_core::models::named::Named;

use crate::device::{self, on_device};

#[derive(Serialize)]
pub struct Row {
    pub size: String,
    pub shape: String,
    pub device: String,
    pub steps: usize,
    pub seconds: f64,
    pub steps_per_s: f64,
    /// Projected time of the default 30,000 steps.
    pub projected_30k_s: f64,
    pub reference_s_per_step: Option<f64>,
    /// Reference seconds per step over ours.
    pub speedup_vs_reference: Option<f64>,
    pub device_gib: f64,
}

fn bad(m: String) -> io::Error {
    io::Error::new("tessera bench cell2location", "", m)
}

/// The lymph-node shape with made-up signatures and counts (timing only).
struct Synthetic {
    x: Vec<f32>,
    sig: Vec<f32>,
    spots: usize,
    genes: usize,
    types: usize,
}

fn synthetic(spots: usize, genes: usize, types: usize) -> Synthetic {
    let sig: Vec<f32> = (0..types * genes)
        .map(|i| (1.5 * philox::normal(11, 0, i) - 2.0).exp())
        .collect();
    let mut x = vec![0f32; spots * genes];
    for s in 0..spots {
        // A few types per spot, a handful of cells each.
        let w: Vec<f32> = (0..types)
            .map(|t| {
                let u = philox::uniform(12, 0, s * types + t);
                if u < 0.15 {
                    8.0 * u / 0.15
                } else {
                    0.0
                }
            })
            .collect();
        for g in 0..genes {
            let mean: f32 = (0..types).map(|t| w[t] * sig[t * genes + g]).sum();
            x[s * genes + g] = (mean + philox::uniform(13, 0, s * genes + g)).floor();
        }
    }
    Synthetic {
        x,
        sig,
        spots,
        genes,
        types,
    }
}

fn time_synthetic<D: Device>(dev: &D, d: &Synthetic, steps: usize) -> Result<Row, io::Error> {
    let data = fit::MapData {
        x: &d.x,
        spots: d.spots,
        genes: d.genes,
        signatures: &d.sig,
        types: d.types,
        batch: &vec![0; d.spots],
        n_batches: 1,
    };
    let mut p = fit::Priors::new(30.0, 20.0, 1);
    p.detection_mean = vec![0.5];
    let train = fit::Train {
        max_epochs: steps,
        ..fit::Train::default()
    };
    let t0 = Instant::now();
    let mut drop = |_| {};
    let none = Resume::none(&mut drop);
    let r = pollster::block_on(fit::fit(
        dev,
        &data,
        &p,
        &train,
        &mut |_, _, _| {},
        None,
        none,
    ))
    .map_err(|e| io::Error::new("tessera bench cell2location", "", e))?;
    let seconds = t0.elapsed().as_secs_f64();
    assert_eq!(r.elbo_history.len(), steps);
    Ok(row(
        "lymph node (simulated)",
        format!("{} x {} x {}", d.spots, d.genes, d.types),
        dev.name(),
        steps,
        seconds,
        None,
        fit::footprint(d.spots, d.genes, d.types, 1, 50),
    ))
}

fn row(
    size: &str,
    shape: String,
    device: String,
    steps: usize,
    seconds: f64,
    reference: Option<f64>,
    bytes: u64,
) -> Row {
    let per = seconds / steps.max(1) as f64;
    Row {
        size: size.into(),
        shape,
        device,
        steps,
        seconds,
        steps_per_s: 1.0 / per,
        projected_30k_s: 30_000.0 * per,
        reference_s_per_step: reference,
        speedup_vs_reference: reference.map(|r| r / per),
        device_gib: bytes as f64 / (1u64 << 30) as f64,
    }
}

/// The reference run's pair: its spots and its posterior-mean signatures.
struct RefPair {
    sp: tessera_core::data::Dataset,
    sig: tessera_core::models::regression::Signatures,
    s_per_step: f64,
}

fn ref_pair(data: &std::path::Path) -> Result<RefPair, io::Error> {
    let dir = data.join("ref/cell2location/rctd_visium_hippocampus");
    let read = |p: PathBuf| {
        std::fs::read_to_string(&p)
            .map_err(|e| bad(format!("{}: {e} (set --data or TESSERA_DATA)", p.display())))
    };
    let summary: serde_json::Value = serde_json::from_str(&read(dir.join("summary.json"))?)
        .map_err(|e| bad(format!("summary.json: {e}")))?;
    let sig_path = dir.join("reference_signatures_means_per_cluster_mu_fg.csv");
    let sig = c2l::signatures_from_csv(&sig_path.display().to_string(), &read(sig_path.clone())?)?;
    let sp_path = data.join("rctd_visium_hippocampus/derived/spatial.h5ad");
    let sp = io::read(FileSet::from_path(&sp_path)?, &TableOptions::default())?.dataset;
    Ok(RefPair {
        sp,
        sig,
        s_per_step: summary["cell2location"]["sec_per_epoch"]
            .as_f64()
            .unwrap_or(f64::NAN),
    })
}

fn time_ref<D: Device>(dev: &D, r: &RefPair, steps: usize) -> Result<Row, io::Error> {
    let mut opts = Options::new(10.0, 20.0);
    opts.train.max_epochs = steps;
    opts.num_samples = 10;
    let t0 = Instant::now();
    let m = pollster::block_on(c2l::map(
        dev,
        Named::new("spatial.h5ad", &r.sp),
        "signatures",
        &r.sig,
        &opts,
        &mut |_, _, _| {},
        &mut Kept::default(),
    ))?;
    let seconds = t0.elapsed().as_secs_f64();
    let (s, g, f) = (m.spots.len(), m.genes.len(), m.cell_types.len());
    Ok(row(
        "reference run",
        format!("{s} x {g} x {f}"),
        dev.name(),
        steps,
        seconds,
        Some(r.s_per_step),
        fit::footprint(s, g, f, 1, 50),
    ))
}

pub struct Args {
    pub devices: Vec<String>,
    pub data: Option<PathBuf>,
    pub steps: usize,
    pub lymph_steps: usize,
    pub quick: bool,
    pub json: bool,
}

pub fn run(a: Args) -> Result<(), io::Error> {
    let data = a
        .data
        .or_else(|| std::env::var_os("TESSERA_DATA").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("../shared/data"));
    let pair = ref_pair(&data)?;
    // --quick: a tenth of the lymph node's genes, for smoke tests.
    let lymph = synthetic(4035, if a.quick { 1022 } else { 10_217 }, 34);
    let mut rows = vec![];
    for dev in device::bench_devices(&a.devices)? {
        eprintln!("reference-run size on {}...", dev.name());
        rows.push(on_device!(&dev, |d| time_ref(d, &pair, a.steps))?);
        eprintln!("lymph-node size on {}...", dev.name());
        rows.push(on_device!(&dev, |d| time_synthetic(
            d,
            &lymph,
            a.lymph_steps
        ))?);
    }
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&rows).expect("rows serialise")
        );
        return Ok(());
    }
    println!(
        "{:<24} {:<20} {:<36} {:>7} {:>9} {:>10} {:>12} {:>13} {:>8}",
        "size",
        "spots x genes x types",
        "device",
        "steps",
        "steps/s",
        "s/step",
        "30k steps",
        "vs reference",
        "GiB"
    );
    for r in &rows {
        println!(
            "{:<24} {:<20} {:<36} {:>7} {:>9.2} {:>10.4} {:>11.0}s {:>13} {:>8.2}",
            r.size,
            r.shape,
            r.device.chars().take(36).collect::<String>(),
            r.steps,
            r.steps_per_s,
            1.0 / r.steps_per_s,
            r.projected_30k_s,
            r.speedup_vs_reference
                .map_or("-".to_string(), |x| format!("{x:.1}x")),
            r.device_gib
        );
    }
    Ok(())
}
