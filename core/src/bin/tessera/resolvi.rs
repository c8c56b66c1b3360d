//! `tessera resolvi`: RESOLVI's correction of segmentation spill-over,
//! writing latent.csv, fractions.csv, predictions.csv (with labels),
//! elbo_history.csv, corrected.h5ad and summary.json.

use std::path::PathBuf;

use tessera_core::io;
use tessera_core::models::resolvi::fit::{self, Options};
use tessera_core::models::resolvi::model::Config;

use crate::device::{self, on_device};
use crate::progress::Bar;
use crate::{load, write, TableArgs};

#[derive(clap::Args)]
pub struct Args {
    /// Single-cell-resolved spatial data (Xenium, MERSCOPE, CosMx) with raw counts and coordinates: .h5ad (layers['counts'] when present, else X) or a cell table
    #[arg(long)]
    data: PathBuf,
    /// obs column of batches (neighbours are found within a batch; each has its own background)
    #[arg(long)]
    batch_key: Option<String>,
    /// obs column of cell-type labels: semi-supervised mode, predictions.csv
    #[arg(long)]
    labels: Option<String>,
    /// The label value of unlabelled cells
    #[arg(long, default_value = "unknown")]
    unlabeled_value: String,
    #[arg(long, default_value_t = 50)]
    epochs: usize,
    /// Dimensions of the latent space
    #[arg(long, default_value_t = 10)]
    latent: usize,
    #[arg(long, default_value_t = 512)]
    batch_size: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// cpu, gpu, cuda or auto
    #[arg(long)]
    device: Option<String>,
    /// Output folder
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    table: TableArgs,
}

fn bad(flag: &str, m: impl Into<String>) -> io::Error {
    io::Error::new("tessera resolvi", flag, m)
}

pub fn run(a: Args) -> Result<(), io::Error> {
    if a.epochs == 0 {
        return Err(bad("--epochs", "must be at least 1"));
    }
    if a.latent == 0 {
        return Err(bad("--latent", "must be at least 1"));
    }
    if a.batch_size == 0 {
        return Err(bad("--batch-size", "must be at least 1"));
    }
    let o = Options {
        batch_key: a.batch_key.clone(),
        labels_key: a.labels.clone(),
        unlabeled: a.unlabeled_value.clone(),
        config: Config {
            epochs: a.epochs,
            n_latent: a.latent,
            batch_size: a.batch_size,
            seed: a.seed,
            ..Config::default()
        },
    };
    let dev = device::open(a.device.as_deref())?;
    let loaded = load(std::slice::from_ref(&a.data), &a.table)?;
    let name = a.data.display().to_string();
    let ds = loaded.dataset;
    let mut bar = Bar::new("epochs");
    let t0 = std::time::Instant::now();
    let fitted = on_device!(&dev, |d| pollster::block_on(fit::fit(
        d,
        &name,
        &ds,
        &o,
        &mut |e, max, loss| {
            bar.update_with(e, max, &format!("-ELBO {loss:.1}"));
            true
        }
    )))?;
    let secs = t0.elapsed().as_secs_f64();
    let params = serde_json::to_value(&o).expect("parameters serialise");
    let files = fit::files(&fitted, &ds, params, secs)?;
    std::fs::create_dir_all(&a.out)
        .map_err(|e| io::Error::new(&a.out.display().to_string(), "", e.to_string()))?;
    for (file, bytes) in &files {
        write(&a.out.join(file), bytes)?;
    }
    let fr = &fitted.outputs.fractions;
    let n = fitted.obs_names.len().max(1);
    let mean = |j: usize| fr.iter().skip(j).step_by(3).map(|&v| v as f64).sum::<f64>() / n as f64;
    eprintln!(
        "RESOLVI on {} cells x {} genes: {} epochs in {secs:.1} s on {}; mean fractions true {:.3}, diffused {:.3}, background {:.3}",
        fitted.obs_names.len(),
        fitted.genes.len(),
        fitted.history.loss.len(),
        dev.name(),
        mean(0),
        mean(1),
        mean(2)
    );
    let names: Vec<&str> = files.iter().map(|f| f.0.as_str()).collect();
    eprintln!("wrote {} to {}", names.join(", "), a.out.display());
    Ok(())
}
