//! `tessera simulate visium`: spots with known abundances for benchmarking.

use std::path::PathBuf;

use tessera_core::io::{self, csv_field, h5ad_write};
use tessera_core::models::named::Named;
use tessera_core::simulate::{self, VisiumSim};

use crate::{load, write, TableArgs};

#[derive(clap::Subcommand)]
pub enum Simulate {
    /// Visium-like spots from a labelled single-cell reference (cell2location paper design)
    Visium(Box<VisiumArgs>),
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
    let Simulate::Visium(a) = s;
    let name = a.reference[0].display().to_string();
    let reference = load(&a.reference, &a.table)?.dataset;
    let p = VisiumSim {
        n_spots: a.spots,
        n_zones: a.zones,
        seed: a.seed,
        ..VisiumSim::default()
    };
    let sim = simulate::visium(Named::new(&name, &reference), &a.labels, &p)?;
    std::fs::create_dir_all(&a.out)
        .map_err(|e| io::Error::new(&a.out.display().to_string(), "", e.to_string()))?;
    write(&a.out.join("sp.h5ad"), &h5ad_write::write(&sim.spatial)?)?;
    write(
        &a.out.join("reference_train.h5ad"),
        &h5ad_write::write(&sim.training)?,
    )?;
    let t = sim.cell_types.len();
    let mut csv = String::new();
    for c in &sim.cell_types {
        csv.push(',');
        csv.push_str(&csv_field(c));
    }
    csv.push('\n');
    for (s, spot) in sim.spatial.obs.index.iter().enumerate() {
        csv.push_str(spot);
        for k in 0..t {
            csv.push_str(&format!(",{}", sim.abundance[s * t + k]));
        }
        csv.push('\n');
    }
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
