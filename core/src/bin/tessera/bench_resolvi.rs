//! `tessera bench resolvi`: RESOLVI's training on the Xenium mouse brain
//! set (its cells with at least 5 counts × 248 genes) per device, and a
//! memory row on the set tiled 4 times (about 146,000 cells, one epoch).
//! Each row gives seconds per epoch, the projected time of scvi's 50
//! epochs, the peak memory above the data, and the ratio of a step to this
//! machine's floor: the step's matrix products at the GEMM rate measured in
//! the same run.

use std::path::PathBuf;
use std::time::Instant;

use serde::Serialize;
use tessera_core::compute::Device;
use tessera_core::data::Dataset;
use tessera_core::io;
use tessera_core::models::checkpoint::Resume;
use tessera_core::models::resolvi::fit::{self, Options};
use tessera_core::models::resolvi::model::{Config, Model};
use tessera_core::models::resolvi::prep::N_NEIGHBORS;
use tessera_core::models::resolvi::run;

use crate::bench_nsf;
use crate::device::{self, on_device};
use crate::rss;

#[derive(Serialize)]
pub struct Row {
    pub data: String,
    pub cells: usize,
    pub genes: usize,
    pub device: String,
    pub epochs: usize,
    pub seconds_per_epoch: f64,
    /// Seconds for scvi's default 50 epochs at this rate.
    pub projected_50: f64,
    pub floor_s_per_epoch: f64,
    pub vs_floor: f64,
    pub peak_gib: f64,
}

fn bad(m: String) -> io::Error {
    io::Error::new("tessera bench resolvi", "", m)
}

/// Flops of one step's matrix products: each network's layers forward
/// (2 flops a multiply-add) and, where trained, twice more backward.
fn step_flops(c: &Config, b: usize, g: usize) -> f64 {
    let (s, k, l) = (c.particles, N_NEIGHBORS, c.n_latent);
    let (he, hd) = (c.n_hidden_encoder, c.n_hidden);
    let encoder = (g * he + he * he + 2 * he * l) as f64;
    let diffusion = (g * he + he * he + 2 * he * 3) as f64;
    let decoder = (l * hd + hd * hd + hd * g) as f64;
    let rows = |r: usize| r as f64;
    2.0 * (3.0 * rows(b) * (encoder + diffusion)
        + rows(b * k) * encoder
        + 3.0 * rows(s * b) * decoder
        + rows(s * b * k) * decoder)
}

fn time_fit<D: Device>(
    dev: &D,
    label: &str,
    ds: &Dataset,
    epochs: usize,
    rate: f64,
) -> Result<Row, io::Error> {
    let o = Options {
        batch_key: None,
        labels_key: None,
        unlabeled: "unknown".into(),
        min_counts: 5.0,
        config: Config {
            epochs,
            ..Config::default()
        },
    };
    let ds = fit::cells(label, ds, &o)?;
    let p = fit::prepare(label, &ds, &o)?;
    let data = p.data();
    let (n, g) = data.x.shape();
    let base = rss::reset_peak();
    let t0 = Instant::now();
    let mut model = Model::new(dev, o.config, &data);
    let mut keep = |_| {};
    pollster::block_on(run::train(
        dev,
        &mut model,
        &data,
        &mut |e, max, loss| {
            eprintln!(
                "  epoch {e}/{max}: -ELBO {loss:.1} ({:.0} s)",
                t0.elapsed().as_secs_f64()
            );
            true
        },
        Resume::none(&mut keep),
    ))
    .map_err(|e| io::Error::new(label, "training", e))?;
    dev.sync();
    let seconds = t0.elapsed().as_secs_f64();
    let peak = rss::status_kib("VmHWM:")
        .zip(base)
        .map(|(p, b)| p.saturating_sub(b));
    let c = o.config;
    let floor: f64 = (0..n)
        .step_by(c.batch_size)
        .map(|s| step_flops(&c, c.batch_size.min(n - s), g))
        .sum::<f64>()
        / rate;
    let per = seconds / epochs as f64;
    Ok(Row {
        data: label.into(),
        cells: n,
        genes: g,
        device: dev.name(),
        epochs,
        seconds_per_epoch: per,
        projected_50: 50.0 * per,
        floor_s_per_epoch: floor,
        vs_floor: per / floor,
        peak_gib: rss::gib(peak),
    })
}

pub fn run(
    data: Option<PathBuf>,
    devices: &[String],
    epochs: usize,
    quick: bool,
    json: bool,
) -> Result<(), io::Error> {
    if epochs == 0 {
        return Err(bad("--epochs must be at least 1".into()));
    }
    let data = data
        .or_else(|| std::env::var_os("TESSERA_DATA").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("../shared/data"));
    let xenium = io::h5ad::read_file(&data.join("xenium_mouse_brain_small/derived/xenium.h5ad"))?;
    let mut sets = vec![("xenium", xenium.clone(), epochs)];
    if !quick {
        sets.push(("xenium x4", bench_nsf::tiled(&xenium, 4)?, 1));
    }
    let mut rows = vec![];
    for dev in device::bench_devices(devices)? {
        let rate = on_device!(&dev, |d| bench_nsf::gemm_rate(d, 1024));
        eprintln!(
            "{}: GEMM at {:.1} GFLOP/s (the floor's rate)",
            dev.name(),
            rate / 1e9
        );
        for (label, ds, e) in &sets {
            eprintln!("{label} on {}...", dev.name());
            rows.push(on_device!(&dev, |d| time_fit(d, label, ds, *e, rate))?);
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
        "{:<12} {:>8} {:>6} {:<28} {:>7} {:>9} {:>11} {:>9} {:>8} {:>8}",
        "data",
        "cells",
        "genes",
        "device",
        "epochs",
        "s/epoch",
        "50 epochs s",
        "floor s",
        "x floor",
        "peak GiB"
    );
    for r in &rows {
        println!(
            "{:<12} {:>8} {:>6} {:<28} {:>7} {:>9.2} {:>11.0} {:>9.3} {:>8.1} {:>8.2}",
            r.data,
            r.cells,
            r.genes,
            r.device.chars().take(28).collect::<String>(),
            r.epochs,
            r.seconds_per_epoch,
            r.projected_50,
            r.floor_s_per_epoch,
            r.vs_floor,
            r.peak_gib
        );
    }
    println!("No scvi-tools RESOLVI run is in $TESSERA_DATA/ref to compare with on this machine.");
    Ok(())
}
