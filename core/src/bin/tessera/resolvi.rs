//! `tessera resolvi`: RESOLVI's correction of segmentation spill-over,
//! writing latent.csv, fractions.csv, predictions.csv (with labels),
//! elbo_history.csv, corrected.h5ad, summary.json and model.json; and
//! `tessera resolvi de`: differential expression and niche abundance from
//! a saved model, without refitting.

use std::path::PathBuf;

use tessera_core::io;
use tessera_core::models::resolvi::de::Change;
use tessera_core::models::resolvi::fit::SavedFit;
use tessera_core::models::resolvi::fit::{self, Options};
use tessera_core::models::resolvi::model::{Config, Model};

use crate::device::{self, on_device};
use crate::progress::Bar;
use crate::{load, write, TableArgs};

#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct Args {
    #[command(subcommand)]
    de: Option<Sub>,
    /// Single-cell-resolved spatial data (Xenium, MERSCOPE, CosMx) with raw counts and coordinates: .h5ad (layers['counts'] when present, else X) or a cell table
    #[arg(long, required = true)]
    data: Option<PathBuf>,
    /// obs column of batches (neighbours are found within a batch; each has its own background)
    #[arg(long)]
    batch_key: Option<String>,
    /// obs column of cell-type labels: semi-supervised mode, predictions.csv
    #[arg(long)]
    labels: Option<String>,
    /// The label value of unlabelled cells
    #[arg(long, default_value = "unknown")]
    unlabeled_value: String,
    /// Leave out cells with fewer counts first (0: keep every cell, as scvi-tools, which refuses cells without counts)
    #[arg(long, default_value_t = 0.0)]
    min_counts: f64,
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
    #[arg(long, required = true)]
    out: Option<PathBuf>,
    #[command(flatten)]
    table: TableArgs,
}

#[derive(clap::Subcommand)]
pub enum Sub {
    /// Differential expression (scvi's change mode) and, with labels, differential niche abundance between two groups, from a saved model
    De(DeArgs),
}

#[derive(clap::Args)]
pub struct DeArgs {
    /// The folder `tessera resolvi` wrote (its model.json)
    #[arg(long)]
    model: PathBuf,
    /// The data the model was trained on (default: the folder's corrected.h5ad, which has them and the fit's obs columns)
    #[arg(long)]
    data: Option<PathBuf>,
    /// obs column that defines the groups (resolvi_leiden: the latent space's clusters; resolvi_predicted: the predicted labels)
    #[arg(long)]
    groupby: String,
    #[arg(long)]
    group1: String,
    /// Default: every cell not in group 1
    #[arg(long)]
    group2: Option<String>,
    /// The smallest |log2 fold change| that counts
    #[arg(long, default_value_t = 0.25)]
    delta: f64,
    #[arg(long, default_value_t = 0.05)]
    fdr: f64,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// cpu, gpu, cuda or auto
    #[arg(long)]
    device: Option<String>,
    /// Output folder (default: the model's)
    #[arg(long)]
    out: Option<PathBuf>,
    #[command(flatten)]
    table: TableArgs,
}

fn bad(flag: &str, m: impl Into<String>) -> io::Error {
    io::Error::new("tessera resolvi", flag, m)
}

pub fn run(a: Args) -> Result<(), io::Error> {
    if let Some(Sub::De(d)) = a.de {
        return de(d);
    }
    let (Some(data), Some(out)) = (a.data.clone(), a.out.clone()) else {
        return Err(bad("--data", "tessera resolvi needs --data and --out"));
    };
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
        min_counts: a.min_counts,
        config: Config {
            epochs: a.epochs,
            n_latent: a.latent,
            batch_size: a.batch_size,
            seed: a.seed,
            ..Config::default()
        },
    };
    let dev = device::open(a.device.as_deref())?;
    let loaded = load(std::slice::from_ref(&data), &a.table)?;
    let name = data.display().to_string();
    let all = loaded.dataset;
    let ds = fit::cells(&name, &all, &o)?;
    let ds = ds.as_ref();
    if ds.n_obs() < all.n_obs() {
        eprintln!(
            "{} of {} cells have at least {} counts",
            ds.n_obs(),
            all.n_obs(),
            o.min_counts
        );
    }
    let mut bar = Bar::new("epochs");
    let t0 = std::time::Instant::now();
    let (fitted, saved) = on_device!(&dev, kept, |d| pollster::block_on(fit::fit_kept(
        d,
        &name,
        ds,
        &o,
        &mut |e, max, loss| {
            bar.update_with(e, max, &format!("-ELBO {loss:.1}"));
            true
        },
        kept
    )))?;
    for note in &fitted.notes {
        eprintln!("note: {note}");
    }
    let secs = t0.elapsed().as_secs_f64();
    let params = serde_json::to_value(&o).expect("parameters serialise");
    let mut files = fit::results(&fitted, ds, params, Some(secs), None)?.files;
    let abs = std::fs::canonicalize(&data).unwrap_or(data.clone());
    let model = SavedFit {
        data: abs.display().to_string(),
        options: o.clone(),
        saved,
    };
    files.push((
        "model.json".into(),
        serde_json::to_vec(&model).expect("model serialises"),
    ));
    std::fs::create_dir_all(&out)
        .map_err(|e| io::Error::new(&out.display().to_string(), "", e.to_string()))?;
    for (file, bytes) in &files {
        write(&out.join(file), bytes)?;
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
    eprintln!("wrote {} to {}", names.join(", "), out.display());
    Ok(())
}

fn de(a: DeArgs) -> Result<(), io::Error> {
    let path = a.model.join("model.json");
    let where_ = path.display().to_string();
    let text = std::fs::read(&path).map_err(|e| {
        io::Error::new(
            &where_,
            "",
            format!("{e}: --model names the folder tessera resolvi wrote"),
        )
    })?;
    let m = fit::read_model(&where_, &text)?;
    if !(a.delta.is_finite() && a.delta > 0.0) {
        return Err(bad("--delta", "must be a positive number"));
    }
    if !(a.fdr > 0.0 && a.fdr < 1.0) {
        return Err(bad("--fdr", "must be between 0 and 1"));
    }
    let data = a
        .data
        .clone()
        .unwrap_or_else(|| a.model.join("corrected.h5ad"));
    let name = data.display().to_string();
    let all = load(std::slice::from_ref(&data), &a.table)?.dataset;
    let ds = fit::cells(&name, &all, &m.options)?;
    let ds = ds.as_ref();
    let (c1, c2) = fit::groups(&name, ds, &a.groupby, &a.group1, a.group2.as_deref())?;
    let prepared = fit::prepare(&name, ds, &m.options)?;
    let dev = device::open(a.device.as_deref())?;
    let change = Change {
        delta: a.delta,
        fdr: a.fdr,
        seed: a.seed,
        ..Change::default()
    };
    let genes = ds.var.index.clone();
    let d = on_device!(&dev, |d| pollster::block_on(async {
        let model = Model::load(d, &m.saved, &prepared.data())
            .map_err(|e| io::Error::new(&where_, "", e))?;
        Ok::<_, io::Error>(
            fit::differential(d, &model, &prepared, &genes, (&c1, &c2), &change).await,
        )
    }))?;
    let out = a.out.clone().unwrap_or(a.model.clone());
    std::fs::create_dir_all(&out)
        .map_err(|e| io::Error::new(&out.display().to_string(), "", e.to_string()))?;
    let files = fit::differential_files(&d, a.fdr);
    for (file, bytes) in &files {
        write(&out.join(file), bytes)?;
    }
    let called = d.expression.iter().filter(|r| r.is_de).count();
    let g2 = a.group2.clone().unwrap_or_else(|| "the rest".into());
    eprintln!(
        "{} ({} cells) vs {g2} ({} cells): {called} of {} genes DE at FDR {}; top {}",
        a.group1,
        c1.len(),
        c2.len(),
        genes.len(),
        a.fdr,
        d.expression
            .iter()
            .take(5)
            .map(|r| format!("{} ({:+.2})", r.feature, r.lfc_mean))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let names: Vec<&str> = files.iter().map(|f| f.0.as_str()).collect();
    eprintln!("wrote {} to {}", names.join(", "), out.display());
    Ok(())
}
