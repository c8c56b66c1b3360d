//! `tessera cell2location`: the lymph-node tutorial's steps as commands.

use std::path::PathBuf;

use tessera_core::data::Column;
use tessera_core::io::{self, h5ad_write};
use tessera_core::models::named::Named;
use tessera_core::models::regression;
use tessera_core::prep::filter::{self, FilterGenes};

use tessera_core::models::regression::nb::Train;

use crate::device::{self, on_device};
use crate::progress::Bar;
use crate::{load, write, TableArgs};

#[derive(clap::Subcommand)]
pub enum Cell2location {
    /// Reference cell-type signatures (inf_aver) from a labelled single-cell reference
    Signatures(Box<SignaturesArgs>),
}

#[derive(clap::Args)]
pub struct SignaturesArgs {
    /// Single-cell reference with raw counts
    #[arg(long = "ref", required = true, num_args = 1..)]
    reference: Vec<PathBuf>,
    /// obs column with the cell-type labels
    #[arg(long)]
    labels: String,
    /// regression (cell2location's NB model) or average (per-cluster means)
    #[arg(long, default_value = "regression")]
    method: String,
    /// obs column with the batch (sample) of each cell
    #[arg(long)]
    batch: Option<String>,
    /// Extra categorical covariates (obs columns, comma-separated)
    #[arg(long, value_delimiter = ',')]
    covariates: Vec<String>,
    /// Epochs (default: scvi's min(20000 / cells x 1000, 1000); the tutorial uses 250)
    #[arg(long)]
    epochs: Option<usize>,
    #[arg(long, default_value_t = 2500)]
    batch_size: usize,
    #[arg(long, default_value_t = 0.002)]
    lr: f32,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// cpu, gpu, cuda or auto
    #[arg(long)]
    device: Option<String>,
    /// filter_genes: cell_count_cutoff
    #[arg(long, default_value_t = 15.0)]
    cell_count_cutoff: f64,
    /// filter_genes: cell_percentage_cutoff2
    #[arg(long, default_value_t = 0.05)]
    cell_percentage_cutoff2: f64,
    /// filter_genes: nonz_mean_cutoff
    #[arg(long, default_value_t = 1.12)]
    nonz_mean_cutoff: f64,
    /// Keep every gene (skip filter_genes)
    #[arg(long)]
    no_filter: bool,
    /// Output folder
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    table: TableArgs,
}

pub fn run(c: Cell2location) -> Result<(), io::Error> {
    match c {
        Cell2location::Signatures(a) => signatures(*a),
    }
}

fn signatures(a: SignaturesArgs) -> Result<(), io::Error> {
    let name = a.reference[0].display().to_string();
    if a.method != "average" && a.method != "regression" {
        return Err(io::Error::new(
            "tessera cell2location signatures",
            "--method",
            format!(
                "unknown method {:?}: expected regression or average",
                a.method
            ),
        ));
    }
    let mut reference = load(&a.reference, &a.table)?.dataset;
    let x = filter::check_x(&name, &reference, filter::Need::Counts)?;
    let n0 = reference.n_vars();
    if !a.no_filter {
        let f = filter::filter_genes(
            x,
            FilterGenes {
                cell_count_cutoff: a.cell_count_cutoff,
                cell_percentage_cutoff2: a.cell_percentage_cutoff2,
                nonz_mean_cutoff: a.nonz_mean_cutoff,
            },
        );
        let mut report = String::from("gene,n_cells,nonz_mean,kept\n");
        for (g, gene) in reference.var.index.iter().enumerate() {
            report.push_str(&format!(
                "{},{},{},{}\n",
                io::csv_field(gene),
                f.n_cells[g],
                f.nonz_mean[g],
                if f.keep[g] { "True" } else { "False" }
            ));
        }
        std::fs::create_dir_all(&a.out)
            .map_err(|e| io::Error::new(&a.out.display().to_string(), "", e.to_string()))?;
        write(&a.out.join("filter_genes.csv"), report.as_bytes())?;
        let kept = f.kept();
        if kept.is_empty() {
            return Err(io::Error::new(
                &name,
                "X",
                "filter_genes kept no gene; lower --cell-count-cutoff / --cell-percentage-cutoff2 or pass --no-filter",
            ));
        }
        filter::subset_genes(&mut reference, &kept);
        reference.var.set(
            "n_cells",
            Column::Int(kept.iter().map(|&g| f.n_cells[g] as i64).collect()),
        );
        reference.var.set(
            "nonz_mean",
            Column::Float(kept.iter().map(|&g| f.nonz_mean[g]).collect()),
        );
    }
    eprintln!("filter_genes kept {} of {n0} genes", reference.n_vars());
    std::fs::create_dir_all(&a.out)
        .map_err(|e| io::Error::new(&a.out.display().to_string(), "", e.to_string()))?;
    let named = Named::new(&name, &reference);
    let s = if a.method == "average" {
        let s = regression::cluster_averages(named, &a.labels)?;
        let sc = regression::with_signatures(&reference, &s, "cluster_averages");
        write(&a.out.join("sc.h5ad"), &h5ad_write::write(&sc)?)?;
        s
    } else {
        let dev = device::open(a.device.as_deref())?;
        let train = Train {
            max_epochs: a
                .epochs
                .unwrap_or_else(|| regression::default_epochs(reference.n_obs())),
            batch_size: a.batch_size,
            lr: a.lr,
            seed: a.seed,
        };
        eprintln!(
            "NB regression on {}: {} epochs",
            dev.name(),
            train.max_epochs
        );
        let mut bar = Bar::new("epochs");
        let r = on_device!(&dev, |d| pollster::block_on(regression::regression(
            d,
            named,
            &a.labels,
            a.batch.as_deref(),
            &a.covariates,
            &train,
            &mut |done, total, loss| bar.update_with(done, total, &format!("loss {loss:.1}")),
        )))?;
        let mut sc = regression::with_signatures(&reference, &r.means, "means_per_cluster_mu_fg");
        for (key, v) in [("stds", &r.stds), ("q05", &r.q05), ("q95", &r.q95)] {
            let s = regression::Signatures {
                values: v.clone(),
                ..r.means.clone()
            };
            let k = format!("{key}_per_cluster_mu_fg");
            sc.varm.insert(
                k.clone(),
                tessera_core::data::Annotation::Frame(s.to_frame(&format!("{k}_"))),
            );
        }
        write(&a.out.join("sc.h5ad"), &h5ad_write::write(&sc)?)?;
        let mut h = String::from("epoch,elbo_train\n");
        for (e, v) in r.elbo_history.iter().enumerate() {
            h.push_str(&format!("{e},{v}\n"));
        }
        write(&a.out.join("elbo_history.csv"), h.as_bytes())?;
        // plot_QC's data: one row per (observed bin, expected bin) with cells x genes in it.
        let (nb, step) = (regression::QC_BINS, r.qc_max / regression::QC_BINS as f64);
        let mut q = String::from("log10_observed_from,log10_expected_from,bin_width,count\n");
        for (i, &n) in r.qc_histogram.iter().enumerate() {
            if n > 0 {
                let (o, e) = ((i / nb) as f64 * step, (i % nb) as f64 * step);
                q.push_str(&format!("{o},{e},{step},{n}\n"));
            }
        }
        write(&a.out.join("qc_reconstruction.csv"), q.as_bytes())?;
        r.means
    };
    write(&a.out.join("inf_aver.csv"), s.to_csv().as_bytes())?;
    eprintln!(
        "{} genes x {} cell types ({} cells) -> {}",
        s.genes.len(),
        s.cell_types.len(),
        s.n_cells.iter().sum::<usize>(),
        a.out.display()
    );
    Ok(())
}
