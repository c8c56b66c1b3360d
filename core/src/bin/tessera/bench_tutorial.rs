//! `tessera bench cell2location --size tutorial`: the lymph-node tutorial's
//! two fits at full size on a generated pair (`tessera simulate tutorial`'s):
//! seconds per regression epoch and per mapping step, peak memory of each,
//! and the ratio to a floor measured on this machine in the same run.
//!
//! The floor is what the machine cannot beat for the work: every non-zero
//! (regression) or every spot-gene count (mapping) read once at the
//! measured memory bandwidth, one logarithm per distinct mean at the
//! measured rate, and the mapping's three spots x types x genes products at
//! the CPU device's measured GEMM rate; the largest of these.

use std::time::Instant;

use serde::Serialize;
use tessera_core::compute::cpu::{threads, Cpu};
use tessera_core::compute::{Device, Gemm};
use tessera_core::io;
use tessera_core::models::cell2location::{self as c2l, run, Options};
use tessera_core::models::checkpoint::Kept;
use tessera_core::models::named::Named;
use tessera_core::models::regression::nb::Train;
use tessera_core::prep::filter::{shared_genes, subset_genes, FilterGenes};
use tessera_core::simulate::tutorial::{self, TutorialSim};

use crate::device::{self, on_device};
use crate::rss;

/// Genes the tutorial's mapping fits: its Visium section and signatures share 5,905.
const TUTORIAL_MAP_GENES: usize = 5_905;

#[derive(Serialize)]
pub struct Row {
    pub step: String,
    pub shape: String,
    pub device: String,
    /// Seconds per epoch (regression) or per step (mapping), setup excluded.
    pub seconds_per: f64,
    /// The first epoch or step with the setup before it.
    pub first_s: f64,
    /// Peak resident memory above the inputs already loaded.
    pub peak_gib: f64,
    pub floor_s: f64,
    pub vs_floor: f64,
    /// The tutorial's length: 250 epochs or 30,000 steps.
    pub projected_s: f64,
}

#[derive(Serialize)]
pub struct Machine {
    pub threads: usize,
    pub bandwidth_gb_s: f64,
    pub logs_per_s: f64,
    pub gemm_gflop_s: f64,
}

fn bad(m: String) -> io::Error {
    io::Error::new("tessera bench cell2location --size tutorial", "", m)
}

/// Read bandwidth, logarithm rate (all threads) and GEMM rate of this machine.
fn machine() -> Machine {
    let t = threads();
    let n = 1 << 26; // 256 MiB of f32
    let data: Vec<f32> = (0..n).map(|i| (i % 7) as f32).collect();
    let per = n / t;
    let time = |f: &(dyn Fn(&[f32]) -> f64 + Sync)| {
        let t0 = Instant::now();
        let s: f64 = std::thread::scope(|sc| {
            let hs: Vec<_> = data.chunks(per).map(|c| sc.spawn(move || f(c))).collect();
            hs.into_iter().map(|h| h.join().unwrap_or(0.0)).sum()
        });
        (t0.elapsed().as_secs_f64(), s)
    };
    let sum = |c: &[f32]| -> f64 {
        let mut acc = [0f32; 16];
        for ch in c.chunks_exact(16) {
            for k in 0..16 {
                acc[k] += ch[k];
            }
        }
        acc.iter().map(|&v| v as f64).sum()
    };
    let bw = (0..3).map(|_| time(&sum).0).fold(f64::INFINITY, f64::min);
    let logs = 1 << 24;
    let ln = |c: &[f32]| -> f64 {
        c[..(logs / t).min(c.len())]
            .iter()
            .map(|&v| (v as f64 + 1.5).ln())
            .sum::<f64>()
    };
    let lt = (0..3).map(|_| time(&ln).0).fold(f64::INFINITY, f64::min);
    let m = 1024;
    let (a, b, c) = (
        Cpu.upload(&data[..m * m]),
        Cpu.upload(&data[m..m + m * m]),
        Cpu.zeros(m * m),
    );
    let g = Gemm::new(m, m, m);
    Cpu.gemm(g, &a, &b, &c);
    let t0 = Instant::now();
    Cpu.gemm(g, &a, &b, &c);
    Machine {
        threads: t,
        bandwidth_gb_s: (n * 4) as f64 / bw / 1e9,
        logs_per_s: logs as f64 / lt,
        gemm_gflop_s: g.flops() / t0.elapsed().as_secs_f64() / 1e9,
    }
}

/// Mean interval between progress calls after the first, and the first.
fn intervals(stamps: &[f64]) -> (f64, f64) {
    let first = stamps.first().copied().unwrap_or(f64::NAN);
    let per = if stamps.len() > 1 {
        (stamps[stamps.len() - 1] - stamps[0]) / (stamps.len() - 1) as f64
    } else {
        first
    };
    (per, first)
}

pub struct Args {
    pub devices: Vec<String>,
    pub epochs: usize,
    pub steps: usize,
    pub quick: bool,
    pub json: bool,
}

pub fn run(a: Args) -> Result<(), io::Error> {
    let sim = if a.quick {
        TutorialSim {
            cells: 7_326,
            genes: 2_048,
            spots: 807,
            ..TutorialSim::default()
        }
    } else {
        TutorialSim::default()
    };
    eprintln!(
        "generating the pair: {} cells x {} genes, {} spots...",
        sim.cells, sim.genes, sim.spots
    );
    let pair = tutorial::tutorial(&sim).map_err(bad)?;
    let nnz = pair.reference.x.as_ref().map_or(0, |x| x.values().len());
    let csr_gib = (nnz * 8 + sim.cells * 8) as f64 / (1u64 << 30) as f64;
    eprintln!("measuring the machine...");
    let m = machine();
    let mut rows = vec![];
    for dev in device::bench_devices(&a.devices)? {
        let name = dev.name();
        eprintln!("regression ({} epochs) on {name}...", a.epochs);
        // The whole CLI path: filter, fit, QC and sc.h5ad written.
        let opts = run::SignatureOptions {
            labels: "Subset".into(),
            method: run::Method::Regression,
            batch: Some("Sample".into()),
            covariates: vec![],
            filter: Some(FilterGenes::TUTORIAL),
            train: Train {
                max_epochs: a.epochs,
                ..Train::default()
            },
        };
        let reference = pair.reference.clone();
        let base = rss::reset_peak();
        let t0 = Instant::now();
        let mut stamps = vec![];
        let sig = on_device!(&dev, |d| pollster::block_on(run::signatures(
            d,
            "reference.h5ad",
            reference,
            &opts,
            &mut |_, _, _| stamps.push(t0.elapsed().as_secs_f64()),
            &mut Kept::default(),
        )))?;
        let sc_path =
            std::env::temp_dir().join(format!("tessera-bench-{}.h5ad", std::process::id()));
        let genes = sig.signatures.genes.len();
        let signatures = sig.signatures;
        // The generated spots have every gene: map the tutorial's share.
        let shared: Vec<usize> = shared_genes(&sig.sc, &pair.spatial)
            .into_iter()
            .map(|(_, j)| j)
            .take(TUTORIAL_MAP_GENES)
            .collect();
        io::h5ad_write::write_file(sig.sc, &sc_path)?;
        let _ = std::fs::remove_file(&sc_path);
        let peak = rss::gib(rss::status_kib("VmHWM:")) - rss::gib(base);
        let (per, first) = intervals(&stamps);
        let kept_nnz = nnz as f64 * genes as f64 / sim.genes as f64;
        let groups = (sim.types * sim.samples) as f64;
        let batches = sim.cells.div_ceil(2500) as f64;
        let floor = (kept_nnz * 8.0 / (m.bandwidth_gb_s * 1e9))
            .max(batches * groups * genes as f64 / m.logs_per_s);
        rows.push(Row {
            step: "regression epoch".into(),
            shape: format!("{} cells x {genes} genes x {} types", sim.cells, sim.types),
            device: name.clone(),
            seconds_per: per,
            first_s: first,
            peak_gib: peak,
            floor_s: floor,
            vs_floor: per / floor,
            projected_s: 250.0 * per,
        });

        let mut spatial = pair.spatial.clone();
        subset_genes(&mut spatial, &shared);
        eprintln!("mapping ({} steps) on {name}...", a.steps);
        let mut o = Options::new(30.0, 20.0);
        o.train.max_epochs = a.steps;
        o.num_samples = 2;
        let base = rss::reset_peak();
        let t0 = Instant::now();
        let mut stamps = vec![];
        let mp = on_device!(&dev, |d| pollster::block_on(c2l::map(
            d,
            Named::new("sp.h5ad", &spatial),
            "signatures",
            &signatures,
            &o,
            &mut |_, _, _| stamps.push(t0.elapsed().as_secs_f64()),
            &mut Kept::default(),
        )))?;
        let peak = rss::gib(rss::status_kib("VmHWM:")) - rss::gib(base);
        let (per, first) = intervals(&stamps);
        let (s, g, f) = (mp.spots.len(), mp.genes.len(), mp.cell_types.len());
        let sg = (s * g) as f64;
        let floor = (sg * 4.0 / (m.bandwidth_gb_s * 1e9))
            .max(sg / m.logs_per_s)
            .max(3.0 * 2.0 * sg * f as f64 / (m.gemm_gflop_s * 1e9));
        rows.push(Row {
            step: "mapping step".into(),
            shape: format!("{s} spots x {g} genes x {f} types"),
            device: name,
            seconds_per: per,
            first_s: first,
            peak_gib: peak,
            floor_s: floor,
            vs_floor: per / floor,
            projected_s: 30_000.0 * per,
        });
    }
    if a.json {
        let out = serde_json::json!({ "machine": m, "csr_gib": csr_gib, "rows": rows });
        println!(
            "{}",
            serde_json::to_string_pretty(&out).expect("rows serialise")
        );
        return Ok(());
    }
    println!(
        "machine: {} threads, read {:.1} GB/s, {:.0} M logs/s, CPU GEMM {:.1} GFLOP/s; \
         reference CSR {:.2} GiB ({nnz} non-zeros); +GiB: peak memory above the loaded inputs",
        m.threads,
        m.bandwidth_gb_s,
        m.logs_per_s / 1e6,
        m.gemm_gflop_s,
        csr_gib
    );
    println!(
        "{:<18} {:<36} {:<28} {:>10} {:>9} {:>9} {:>9} {:>9} {:>11}",
        "step", "shape", "device", "s each", "first s", "+GiB", "floor s", "x floor", "tutorial"
    );
    for r in &rows {
        println!(
            "{:<18} {:<36} {:<28} {:>10.4} {:>9.2} {:>9.2} {:>9.4} {:>9.1} {:>10.0}s",
            r.step,
            r.shape,
            r.device.chars().take(28).collect::<String>(),
            r.seconds_per,
            r.first_s,
            r.peak_gib,
            r.floor_s,
            r.vs_floor,
            r.projected_s
        );
    }
    Ok(())
}
