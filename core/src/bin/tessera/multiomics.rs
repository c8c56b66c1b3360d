//! `tessera multiomics`: the joint transcript + protein method with the
//! preprint's command line, and its synthetic benchmark (`--demo`).

use std::path::{Path, PathBuf};

use tessera_core::io;
use tessera_core::models::multiomics::analysis::MultiomicsParams;
use tessera_core::models::multiomics::{self, annotate, demo, export, Options, Pairing};

use crate::device::{self, on_device};
use crate::progress::Bar;
use crate::{load, write, TableArgs};

#[derive(clap::Args)]
pub struct Args {
    /// Transcript data: .h5ad, Space Ranger folder/.zip, 10x .h5, or a cell table
    #[arg(long, required_unless_present = "demo")]
    tx: Option<PathBuf>,
    /// Protein data: .h5ad or a cell table (CODEX, MIBI, IMC, CyCIF exports)
    #[arg(long, required_unless_present = "demo")]
    prot: Option<PathBuf>,
    /// Visium, MERFISH, Xenium, Stereo-seq or generic (Visium bins protein cells into spots)
    #[arg(long, default_value = "Visium")]
    tx_platform: String,
    /// CODEX, MIBI, IMC, CyCIF or generic
    #[arg(long, default_value = "CODEX")]
    prot_platform: String,
    #[arg(long, default_value_t = 15)]
    n_factors: usize,
    /// Niche and co-localization radius (coordinate units)
    #[arg(long, default_value_t = 50.0)]
    radius: f64,
    /// Output folder
    #[arg(long)]
    output: Option<PathBuf>,
    /// Marker sets: JSON {"type": {"genes": [...], "proteins": [...]}} or CSV cell_type,marker[,modality]
    #[arg(long)]
    markers: Option<PathBuf>,
    /// auto, id, nearest or bin
    #[arg(long, default_value = "auto")]
    pair: String,
    /// Nearest-neighbour pairing radius
    #[arg(long, default_value_t = 5.0)]
    pair_radius: f64,
    /// Spot radius for binning (default: half of Space Ranger's spot_diameter_fullres, else 27.5)
    #[arg(long)]
    spot_radius: Option<f64>,
    /// Average protein intensities within a spot (default: sum)
    #[arg(long)]
    bin_mean: bool,
    /// drop or pad transcript rows without a protein partner
    #[arg(long, default_value = "drop")]
    unmatched: String,
    /// log1p or minmax, per modality
    #[arg(long, default_value = "log1p")]
    normalise: String,
    /// Most variable genes kept
    #[arg(long, default_value_t = 2000)]
    n_hvg: usize,
    /// Keep the blocks as normalised (no weighting of proteins against genes)
    #[arg(long)]
    no_balance: bool,
    /// cd (coordinate descent, Frobenius) or mu (multiplicative updates)
    #[arg(long, default_value = "cd")]
    solver: String,
    /// frobenius or kullback-leibler (mu only)
    #[arg(long, default_value = "frobenius")]
    loss: String,
    /// Starts: nndsvda, then random ones; the lowest error wins
    #[arg(long, default_value_t = 5)]
    restarts: usize,
    #[arg(long, default_value_t = 500)]
    max_iter: usize,
    /// weighted (top-marker overlap) or correlation
    #[arg(long, default_value = "weighted")]
    annotation: String,
    #[arg(long, default_value_t = 0)]
    seed: u32,
    /// cpu, gpu, cuda or auto
    #[arg(long)]
    device: Option<String>,
    /// Run the preprint's synthetic benchmark and print the assignment accuracy
    #[arg(long)]
    demo: bool,
    /// Benchmark size: cells and types (the preprint's: 200 and 4)
    #[arg(long, default_value_t = 200)]
    demo_cells: usize,
    #[arg(long, default_value_t = 4)]
    demo_types: usize,
    /// Benchmark seeds to average over
    #[arg(long, default_value_t = 1)]
    demo_seeds: u32,
    #[command(flatten)]
    table: TableArgs,
}

fn bad(what: &str, m: impl Into<String>) -> io::Error {
    io::Error::new(what, "", m)
}

/// The flags as the page's parameters, so both are checked by one parser.
fn params(a: &Args) -> MultiomicsParams {
    MultiomicsParams {
        tx_platform: a.tx_platform.clone(),
        prot_platform: a.prot_platform.clone(),
        n_factors: a.n_factors,
        radius: a.radius,
        pair: a.pair.clone(),
        pair_radius: a.pair_radius,
        spot_radius: a.spot_radius,
        bin_mean: a.bin_mean,
        unmatched: a.unmatched.clone(),
        normalise: a.normalise.clone(),
        n_hvg: a.n_hvg,
        balance: !a.no_balance,
        solver: a.solver.clone(),
        loss: a.loss.clone(),
        restarts: a.restarts,
        max_iter: a.max_iter,
        annotation: a.annotation.clone(),
        seed: a.seed,
        markers: None,
    }
}

fn options(a: &Args) -> Result<Options, io::Error> {
    let (o, _) = params(a).options().map_err(|e| {
        let (flag, msg) = e.split_once(": ").unwrap_or(("tessera multiomics", &e));
        bad(flag, msg)
    })?;
    Ok(o)
}

pub fn run(a: Args) -> Result<(), io::Error> {
    let mut o = options(&a)?;
    let dev = device::open(a.device.as_deref())?;
    if a.demo {
        o.joint.n_factors = a.demo_types;
        o.pairing = Pairing::Auto;
        o.tx_platform = "MERFISH".into();
        let mut accs = Vec::new();
        for seed in 0..a.demo_seeds.max(1) {
            let d = demo::generate(&demo::Spec {
                cells: a.demo_cells,
                types: a.demo_types,
                seed,
                ..Default::default()
            });
            let t = std::time::Instant::now();
            let out = on_device!(&dev, |d2| pollster::block_on(multiomics::run(
                d2,
                &d.transcripts,
                &d.proteins,
                Some(&d.markers),
                &o,
                |_, _| {}
            )))
            .map_err(|e| bad("tessera multiomics --demo", e))?;
            let assigned: Vec<String> = out
                .cells
                .iter()
                .map(|&(f, _)| out.factors[f].cell_type.clone())
                .collect();
            let acc = demo::accuracy(&assigned, &d.truth);
            println!(
                "seed {seed}: {} cells, {} types: assignment accuracy {:.3} ({:.1} s)",
                a.demo_cells,
                a.demo_types,
                acc,
                t.elapsed().as_secs_f64()
            );
            accs.push(acc);
            if let (Some(dir), 0) = (&a.output, seed) {
                write_outputs(dir, &out)?;
            }
        }
        println!(
            "mean assignment accuracy over {} seed(s): {:.3} (the preprint reports 0.94)",
            accs.len(),
            accs.iter().sum::<f64>() / accs.len() as f64
        );
        return Ok(());
    }
    let (txp, prp) = (
        a.tx.clone().expect("clap: --tx"),
        a.prot.clone().expect("clap: --prot"),
    );
    let out_dir = a
        .output
        .clone()
        .ok_or_else(|| bad("tessera multiomics", "--output DIR is required"))?;
    let tx = load(std::slice::from_ref(&txp), &a.table)?.dataset;
    let prot = load(std::slice::from_ref(&prp), &a.table)?.dataset;
    let markers = match &a.markers {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .map_err(|e| bad(&p.display().to_string(), e.to_string()))?;
            Some(
                annotate::Markers::parse(&p.display().to_string(), &text)
                    .map_err(|e| bad(&p.display().to_string(), e))?,
            )
        }
        None => None,
    };
    let mut bar = Bar::new("NMF starts");
    let out = on_device!(&dev, |d| pollster::block_on(multiomics::run(
        d,
        &tx,
        &prot,
        markers.as_ref(),
        &o,
        |done, total| bar.update(done, total)
    )))
    .map_err(|e| bad(&format!("{} + {}", txp.display(), prp.display()), e))?;
    eprintln!("paired by {}: {}", out.pairing, out.paired.report());
    write_outputs(&out_dir, &out)?;
    Ok(())
}

fn write_outputs(dir: &Path, out: &multiomics::Output) -> Result<(), io::Error> {
    std::fs::create_dir_all(dir).map_err(|e| bad(&dir.display().to_string(), e.to_string()))?;
    let files = export::files(out);
    for (name, bytes) in &files {
        write(&dir.join(name), bytes)?;
    }
    let names: Vec<&str> = files.iter().map(|f| f.0.as_str()).collect();
    eprintln!("wrote {} to {}", names.join(", "), dir.display());
    Ok(())
}
