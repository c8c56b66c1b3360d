//! `tessera multiomics`: the joint transcript + protein method with the
//! preprint's command line, and its synthetic benchmark (`--demo`).

use std::path::{Path, PathBuf};

use tessera_core::io::{self, npy};
use tessera_core::models::multiomics::{self, annotate, demo, joint, pair, Options, Pairing};
use tessera_core::models::nmf::Loss;
use tessera_core::spatial::niche;

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

fn options(a: &Args) -> Result<Options, io::Error> {
    let pick = |flag: &str, v: &str, all: &[&str]| -> Result<String, io::Error> {
        all.iter()
            .find(|p| p.eq_ignore_ascii_case(v))
            .map(|p| p.to_string())
            .ok_or_else(|| {
                bad(
                    flag,
                    format!("unknown value {v:?}: expected one of {}", all.join(", ")),
                )
            })
    };
    let tx_platform = pick("--tx-platform", &a.tx_platform, &multiomics::TX_PLATFORMS)?;
    let prot_platform = pick(
        "--prot-platform",
        &a.prot_platform,
        &multiomics::PROT_PLATFORMS,
    )?;
    let pairing = match pick("--pair", &a.pair, &["auto", "id", "nearest", "bin"])?.as_str() {
        "id" => Pairing::Id,
        "nearest" => Pairing::Nearest,
        "bin" => Pairing::Bin,
        _ => Pairing::Auto,
    };
    let unmatched = match pick("--unmatched", &a.unmatched, &["drop", "pad"])?.as_str() {
        "pad" => pair::Unmatched::Pad,
        _ => pair::Unmatched::Drop,
    };
    let normalise = match pick("--normalise", &a.normalise, &["log1p", "minmax"])?.as_str() {
        "minmax" => joint::Normalise::MinMax,
        _ => joint::Normalise::Log1p,
    };
    let loss = Loss::parse(&a.loss.to_lowercase()).ok_or_else(|| {
        bad(
            "--loss",
            format!(
                "unknown loss {:?}: expected frobenius or kullback-leibler",
                a.loss
            ),
        )
    })?;
    let solver = match pick("--solver", &a.solver, &["cd", "mu"])?.as_str() {
        "mu" => joint::Solver::Mu(loss),
        _ if loss == Loss::KullbackLeibler => {
            return Err(bad("--loss", "the Kullback-Leibler loss needs --solver mu"))
        }
        _ => joint::Solver::Cd,
    };
    let annotation =
        match pick("--annotation", &a.annotation, &["weighted", "correlation"])?.as_str() {
            "correlation" => annotate::Method::Correlation,
            _ => annotate::Method::Weighted,
        };
    Ok(Options {
        pairing,
        tx_platform,
        prot_platform,
        pair_radius: a.pair_radius,
        spot_radius: a.spot_radius,
        bin_mean: a.bin_mean,
        unmatched,
        joint: joint::Options {
            n_factors: a.n_factors,
            n_hvg: a.n_hvg,
            normalise,
            balance: !a.no_balance,
            solver,
            restarts: a.restarts,
            max_iter: a.max_iter,
            seed: a.seed,
            ..joint::Options::default()
        },
        annotation,
        radius: a.radius,
    })
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
    let j = &out.joint;
    let k = j.k;
    let mut labels = String::from("cell_id,x,y,cell_type,factor,score\n");
    for (i, id) in out.ids.iter().enumerate() {
        let (f, s) = out.cells[i];
        labels.push_str(&format!(
            "{},{},{},{},{},{s:.4}\n",
            io::csv_field(id),
            out.coords[i][0],
            out.coords[i][1],
            io::csv_field(&out.factors[f].cell_type),
            f + 1
        ));
    }
    write(&dir.join("shared_labels.csv"), labels.as_bytes())?;
    write(
        &dir.join("co_localization.csv"),
        niche::colocalization_csv(&out.labels, &out.colocalization).as_bytes(),
    )?;
    write(
        &dir.join("niche_composition.csv"),
        niche::niches_csv(&out.ids, &out.labels, &out.niches).as_bytes(),
    )?;
    write(
        &dir.join("W_transcript.npy"),
        &npy::write(&[out.gene_names.len(), k], &j.w_transcript),
    )?;
    write(
        &dir.join("W_protein.npy"),
        &npy::write(&[out.protein_names.len(), k], &j.w_protein),
    )?;
    let h: Vec<f32> = (0..k * j.n_cells)
        .map(|i| j.cell_loadings[(i % j.n_cells) * k + i / j.n_cells])
        .collect();
    write(&dir.join("H_shared.npy"), &npy::write(&[k, j.n_cells], &h))?;
    let mut factors = String::from("factor,cell_type,score,n_cells,top_genes,top_proteins\n");
    for (f, l) in out.factors.iter().enumerate() {
        let n = out.cells.iter().filter(|c| c.0 == f).count();
        factors.push_str(&format!(
            "{},{},{:.4},{n},{},{}\n",
            f + 1,
            io::csv_field(&l.cell_type),
            l.score,
            io::csv_field(&l.top_genes.join(";")),
            io::csv_field(&l.top_proteins.join(";"))
        ));
    }
    write(&dir.join("nmf_factors.csv"), factors.as_bytes())?;
    let names = |v: &[String]| {
        v.iter()
            .map(|s| io::csv_field(s) + "\n")
            .collect::<String>()
    };
    write(
        &dir.join("genes.csv"),
        format!("gene\n{}", names(&out.gene_names)).as_bytes(),
    )?;
    write(
        &dir.join("proteins.csv"),
        format!("protein\n{}", names(&out.protein_names)).as_bytes(),
    )?;
    let summary = serde_json::json!({
        "pairing": out.pairing,
        "matched": out.paired.matched,
        "padded": out.paired.padded,
        "dropped": out.paired.dropped,
        "n_cells": j.n_cells,
        "n_genes": out.gene_names.len(),
        "n_proteins": out.protein_names.len(),
        "n_factors": k,
        "n_iter": j.n_iter,
        "reconstruction_err": j.reconstruction_err,
        "restart_errors": j.restart_errors,
        "cell_types": out.labels.categories,
    });
    write(
        &dir.join("summary.json"),
        serde_json::to_string_pretty(&summary)
            .expect("json")
            .as_bytes(),
    )?;
    eprintln!(
        "wrote shared_labels.csv, co_localization.csv, niche_composition.csv, W_transcript.npy, W_protein.npy, H_shared.npy, nmf_factors.csv to {}",
        dir.display()
    );
    Ok(())
}
