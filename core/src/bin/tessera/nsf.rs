//! `tessera nsf`: NSF, NSFH, PNMF and RSF with the paper's settings, writing
//! factors.csv, loadings.csv, spatial_importance.csv (NSFH),
//! elbo_history.csv, summary.json and nsf.h5ad.

use std::path::PathBuf;

use tessera_core::io;
use tessera_core::models::nsf::analysis::NsfParams;
use tessera_core::models::nsf::{export, run as nsf_run};

use crate::device::{self, on_device};
use crate::progress::Bar;
use crate::{load, write, TableArgs};

#[derive(clap::Args)]
pub struct Args {
    /// Spots or cells with coordinates and raw counts: .h5ad (layers['counts'] when present, else X), Space Ranger folder/.zip, 10x .h5, or a cell table
    #[arg(long)]
    data: PathBuf,
    /// nsf, nsfh, pnmf or rsf (real-valued spatial factors)
    #[arg(long, default_value = "nsf")]
    model: String,
    /// L, the number of factors
    #[arg(long, default_value_t = 10)]
    factors: usize,
    /// NSFH's spatial factors T (default: half of L, rounded up)
    #[arg(long)]
    spatial: Option<usize>,
    /// poisson, nb, or gaussian (on X when the counts are in layers['counts'], else normalize_total + log1p of the counts; centred for rsf)
    #[arg(long, default_value = "poisson")]
    likelihood: String,
    /// matern32 or rbf
    #[arg(long, default_value = "matern32")]
    kernel: String,
    /// M inducing points (k-means centres; every distinct location when M covers them)
    #[arg(long, default_value_t = 500)]
    inducing: usize,
    /// Top genes by Poisson deviance
    #[arg(long, default_value_t = 2000)]
    genes: usize,
    /// constant, mean or scanpy
    #[arg(long, default_value = "constant")]
    size_factors: String,
    /// The most epochs (training stops when the loss converges)
    #[arg(long, default_value_t = 5000)]
    epochs: usize,
    #[arg(long, default_value_t = 0)]
    seed: u32,
    /// Percent of the observations held out for the validation deviance
    #[arg(long, default_value_t = 5.0)]
    validation: f64,
    /// Keep the y axis as stored (the paper flips it, image rows growing downwards)
    #[arg(long)]
    no_flip_y: bool,
    /// cpu, gpu, cuda or auto
    #[arg(long)]
    device: Option<String>,
    /// Output folder
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    table: TableArgs,
}

fn bad(what: &str, m: impl Into<String>) -> io::Error {
    io::Error::new(what, "", m)
}

/// The flags as the page's parameters, so both are checked by one parser.
pub fn params(a: &Args) -> NsfParams {
    NsfParams {
        model: a.model.clone(),
        factors: a.factors,
        spatial: a.spatial,
        likelihood: a.likelihood.clone(),
        kernel: a.kernel.clone(),
        inducing: a.inducing,
        genes: a.genes,
        size_factors: a.size_factors.clone(),
        epochs: a.epochs,
        seed: a.seed,
        validation: a.validation,
        flip_y: !a.no_flip_y,
    }
}

pub fn run(a: Args) -> Result<(), io::Error> {
    let p = params(&a);
    let o = p.options().map_err(|e| {
        let (flag, msg) = e.split_once(": ").unwrap_or(("tessera nsf", &e));
        bad(flag, msg)
    })?;
    let dev = device::open(a.device.as_deref())?;
    let loaded = load(std::slice::from_ref(&a.data), &a.table)?;
    let name = a.data.display().to_string();
    let ds = loaded.dataset;
    let mut bar = Bar::new("epochs");
    let t0 = std::time::Instant::now();
    let fitted = on_device!(&dev, kept, |d| pollster::block_on(nsf_run::run_kept(
        d,
        &name,
        &ds,
        &o,
        &mut |e, max, loss| {
            bar.update_with(e, max, &format!("loss {loss:.4}"));
            true
        },
        kept
    )))?;
    let secs = t0.elapsed().as_secs_f64();
    for n in &fitted.notes {
        eprintln!("note: {n}");
    }
    let params = serde_json::to_value(&p).expect("parameters serialise");
    let results = export::results(&fitted, &ds, params)?;
    std::fs::create_dir_all(&a.out)
        .map_err(|e| bad(&a.out.display().to_string(), e.to_string()))?;
    for (file, bytes) in &results.files {
        write(&a.out.join(file), bytes)?;
    }
    let dv = fitted
        .deviance_validation
        .as_ref()
        .map_or("none".to_string(), |d| format!("{:.4}", d.mean));
    eprintln!(
        "{} {} factors: {} epochs in {secs:.1} s ({}), training deviance {:.4}, validation deviance {dv}",
        o.model_name(),
        o.factors,
        fitted.history.loss.len(),
        if fitted.history.converged { "converged" } else { "not converged" },
        fitted.deviance_train.mean
    );
    let names: Vec<&str> = results.files.iter().map(|f| f.0.as_str()).collect();
    eprintln!("wrote {} to {}", names.join(", "), a.out.display());
    Ok(())
}
