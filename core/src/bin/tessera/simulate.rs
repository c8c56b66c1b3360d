//! `tessera simulate visium|tutorial|spillover`: data with known truth for benchmarks
//! and accuracy tests.

use std::path::PathBuf;

use tessera_core::io::{self, csv_field, h5ad_write};
use tessera_core::models::named::Named;
use tessera_core::simulate::spillover::{self, SpilloverSim};
use tessera_core::simulate::tutorial::{self, TutorialSim};
use tessera_core::simulate::{self, VisiumSim};

use crate::{load, write, TableArgs};

#[derive(clap::Subcommand)]
pub enum Simulate {
    /// Visium-like spots from a labelled single-cell reference (cell2location paper design)
    Visium(Box<VisiumArgs>),
    /// Segmentation spill-over added to single-cell spatial counts (neighbours' diffusion and background), the clean counts kept as truth
    Spillover(SpilloverArgs),
    /// A reference + spots pair of the cell2location tutorial's shape (or any size), no input needed
    Tutorial(TutorialArgs),
}

#[derive(clap::Args)]
pub struct SpilloverArgs {
    /// Single-cell-resolved counts with coordinates (.h5ad or a cell table)
    #[arg(long)]
    data: PathBuf,
    /// Each cell's diffused share is uniform on [0, this]
    #[arg(long, default_value_t = 0.3)]
    diffusion: f64,
    /// Each cell's background share is uniform on [0, this]
    #[arg(long, default_value_t = 0.15)]
    background: f64,
    /// Cells with fewer counts are left out
    #[arg(long, default_value_t = 5.0)]
    min_counts: f64,
    #[arg(long, default_value_t = 0)]
    seed: u32,
    /// Output folder: spillover.h5ad (X observed, layers['clean'] truth, obs true/diffused/background_fraction)
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    table: TableArgs,
}

#[derive(clap::Args)]
pub struct TutorialArgs {
    #[arg(long, default_value_t = 73_260)]
    cells: usize,
    #[arg(long, default_value_t = 10_237)]
    genes: usize,
    #[arg(long, default_value_t = 34)]
    types: usize,
    /// Reference samples (batches), obs['Sample']
    #[arg(long, default_value_t = 4)]
    samples: usize,
    #[arg(long, default_value_t = 4_035)]
    spots: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output folder: reference.h5ad, sp.h5ad, truth_abundance.csv
    #[arg(long)]
    out: PathBuf,
}

#[derive(clap::Args)]
pub struct VisiumArgs {
    /// Single-cell reference with raw counts
    #[arg(long = "ref", required = true, num_args = 1..)]
    reference: Vec<PathBuf>,
    /// obs column with the cell-type labels
    #[arg(long)]
    labels: String,
    #[arg(long, default_value_t = 2000)]
    spots: usize,
    /// Tissue zones that zonal cell types are tied to
    #[arg(long, default_value_t = 12)]
    zones: usize,
    #[arg(long, default_value_t = 0)]
    seed: u32,
    /// Output folder
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    table: TableArgs,
}

pub fn run(s: Simulate) -> Result<(), io::Error> {
    match s {
        Simulate::Visium(a) => visium(*a),
        Simulate::Tutorial(a) => tutorial_pair(a),
        Simulate::Spillover(a) => spillover(a),
    }
}

fn spillover(a: SpilloverArgs) -> Result<(), io::Error> {
    let name = a.data.display().to_string();
    let d = load(std::slice::from_ref(&a.data), &a.table)?.dataset;
    let p = SpilloverSim {
        diffusion_max: a.diffusion,
        background_max: a.background,
        min_counts: a.min_counts,
        seed: a.seed,
        ..SpilloverSim::default()
    };
    let sim = spillover::spillover(&name, &d, &p)?;
    mkdir(&a.out)?;
    write(
        &a.out.join("spillover.h5ad"),
        &h5ad_write::write(&sim.dataset)?,
    )?;
    eprintln!(
        "{} of {} cells (at least {} counts) with spill-over -> {}",
        sim.kept.len(),
        d.n_obs(),
        a.min_counts,
        a.out.join("spillover.h5ad").display()
    );
    Ok(())
}

fn mkdir(p: &std::path::Path) -> Result<(), io::Error> {
    std::fs::create_dir_all(p)
        .map_err(|e| io::Error::new(&p.display().to_string(), "", e.to_string()))
}

fn tutorial_pair(a: TutorialArgs) -> Result<(), io::Error> {
    let p = TutorialSim {
        cells: a.cells,
        genes: a.genes,
        types: a.types,
        samples: a.samples,
        spots: a.spots,
        seed: a.seed,
    };
    let sim =
        tutorial::tutorial(&p).map_err(|e| io::Error::new("tessera simulate tutorial", "", e))?;
    mkdir(&a.out)?;
    let nnz = sim.reference.x.as_ref().map_or(0, |x| x.values().len());
    write(
        &a.out.join("reference.h5ad"),
        &h5ad_write::write(&sim.reference)?,
    )?;
    write(&a.out.join("sp.h5ad"), &h5ad_write::write(&sim.spatial)?)?;
    let csv = io::table_csv("", &sim.cell_types, &sim.spatial.obs.index, &sim.abundance);
    write(&a.out.join("truth_abundance.csv"), csv.as_bytes())?;
    eprintln!(
        "reference {} cells x {} genes ({nnz} non-zeros, {} types, {} samples; labels obs['Subset'], batches obs['Sample']); \
         {} spots, {:.1} cells per spot -> {}",
        a.cells,
        a.genes,
        a.types,
        a.samples,
        a.spots,
        sim.abundance.iter().sum::<f64>() / a.spots as f64,
        a.out.display()
    );
    Ok(())
}

fn visium(a: VisiumArgs) -> Result<(), io::Error> {
    let name = a.reference[0].display().to_string();
    let reference = load(&a.reference, &a.table)?.dataset;
    let p = VisiumSim {
        n_spots: a.spots,
        n_zones: a.zones,
        seed: a.seed,
        ..VisiumSim::default()
    };
    let sim = simulate::visium(Named::new(&name, &reference), &a.labels, &p)?;
    mkdir(&a.out)?;
    write(&a.out.join("sp.h5ad"), &h5ad_write::write(&sim.spatial)?)?;
    write(
        &a.out.join("reference_train.h5ad"),
        &h5ad_write::write(&sim.training)?,
    )?;
    let t = sim.cell_types.len();
    let csv = io::table_csv("", &sim.cell_types, &sim.spatial.obs.index, &sim.abundance);
    write(&a.out.join("truth_abundance.csv"), csv.as_bytes())?;
    let mut types = String::from("cell_type,zone\n");
    for (c, z) in sim.cell_types.iter().zip(&sim.type_zone) {
        let z = z.map_or("uniform".to_string(), |z| z.to_string());
        types.push_str(&format!("{},{z}\n", csv_field(c)));
    }
    write(&a.out.join("cell_types.csv"), types.as_bytes())?;
    let cells: f64 = sim.abundance.iter().sum();
    eprintln!(
        "{} spots x {} genes, {} cell types, {:.2} cells per spot; {} training cells -> {}",
        a.spots,
        sim.spatial.n_vars(),
        t,
        cells / a.spots as f64,
        sim.training.n_obs(),
        a.out.display()
    );
    Ok(())
}
