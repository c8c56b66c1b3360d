//! `tessera cell2location`: the lymph-node tutorial's steps as commands.

use std::path::PathBuf;

use tessera_core::io::{self, h5ad_write};
use tessera_core::models::cell2location::{self as c2l, run, Options};
use tessera_core::models::named::Named;
use tessera_core::models::regression;
use tessera_core::prep::filter::FilterGenes;

use tessera_core::models::regression::nb::Train;

use crate::device::{self, on_device};
use crate::progress::Bar;
use crate::{load, write, TableArgs};

#[derive(clap::Subcommand)]
pub enum Cell2location {
    /// Reference cell-type signatures (inf_aver) from a labelled single-cell reference
    Signatures(Box<SignaturesArgs>),
    /// Cell abundances per spot (the spatial mapping model) from spot counts and inf_aver.csv
    Map(Box<MapArgs>),
    /// Groups of co-located cell types (NMF of the abundances, like run_colocation)
    Colocation(Box<ColocationArgs>),
    /// Tissue regions: Leiden clusters of the spots' abundances (kNN graph) and a UMAP
    Regions(Box<RegionsArgs>),
}

#[derive(clap::Args)]
pub struct RegionsArgs {
    /// sp.h5ad from `tessera cell2location map` (or cell2location's own)
    #[arg(long)]
    sp: PathBuf,
    /// The abundance summary to cluster (obsm key)
    #[arg(long, default_value = "q05_cell_abundance_w_sf")]
    abundance: String,
    /// Neighbours per spot, the spot itself included (scanpy's n_neighbors)
    #[arg(long, default_value_t = 15)]
    n_neighbors: usize,
    /// Leiden resolution (the tutorial's 1.1)
    #[arg(long, default_value_t = 1.1)]
    resolution: f64,
    #[arg(long, default_value_t = 0)]
    seed: u32,
    /// cpu, gpu, cuda or auto (the kNN distances)
    #[arg(long)]
    device: Option<String>,
    /// Output folder
    #[arg(long)]
    out: PathBuf,
}

#[derive(clap::Args)]
pub struct ColocationArgs {
    /// sp.h5ad from `tessera cell2location map` (or cell2location's own)
    #[arg(long)]
    sp: PathBuf,
    /// Factor numbers: a range like 5..30 (inclusive) or a list like 10,20,30
    #[arg(long, default_value = "30")]
    n_fact: String,
    #[arg(long, default_value_t = 5)]
    restarts: usize,
    /// The abundance summary to factorise (obsm key)
    #[arg(long, default_value = "q05_cell_abundance_w_sf")]
    abundance: String,
    /// NMF alpha_W (alpha_H the same)
    #[arg(long, default_value_t = 0.1)]
    alpha: f64,
    #[arg(long, default_value_t = 0.5)]
    l1_ratio: f64,
    #[arg(long, default_value_t = 20_000)]
    max_iter: usize,
    #[arg(long, default_value_t = 1e-5)]
    tol: f64,
    #[arg(long, default_value_t = 0)]
    seed: u32,
    /// cpu, gpu, cuda or auto
    #[arg(long)]
    device: Option<String>,
    /// Output folder
    #[arg(long)]
    out: PathBuf,
}

#[derive(clap::Args)]
pub struct MapArgs {
    /// Spatial data with raw counts (.h5ad, Space Ranger folder or .zip, tables)
    #[arg(long, required = true, num_args = 1..)]
    sp: Vec<PathBuf>,
    /// Reference signatures: inf_aver.csv from `tessera cell2location signatures`
    #[arg(long)]
    signatures: PathBuf,
    /// Expected cells per spot (the tutorial uses 30; cell2location's default is 8)
    #[arg(long)]
    n_cells_per_location: f64,
    /// Tightness of per-spot detection around the batch mean (try 20 and 200);
    /// per batch as NAME=VALUE pairs, a plain number for the rest
    #[arg(long, value_delimiter = ',', default_value = "20")]
    detection_alpha: Vec<String>,
    /// obs column with the batch (sample) of each spot
    #[arg(long)]
    batch: Option<String>,
    /// Compute detection_mean per batch instead of over all spots
    #[arg(long)]
    detection_mean_per_sample: bool,
    /// Full-batch training steps
    #[arg(long, default_value_t = 30_000)]
    epochs: usize,
    #[arg(long, default_value_t = 0.002)]
    lr: f32,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[arg(long, default_value_t = 7.0)]
    a_factors_per_location: f64,
    #[arg(long, default_value_t = 7.0)]
    b_groups_per_location: f64,
    /// Tissue zones of the factorised prior
    #[arg(long, default_value_t = 50)]
    n_groups: usize,
    #[arg(long, default_value_t = 1.0)]
    n_cells_mean_var_ratio: f64,
    /// Posterior draws for the u_sf_mRNA_factors quantiles
    #[arg(long, default_value_t = 1000)]
    num_samples: usize,
    /// Keep mitochondrial (MT-) genes (the tutorial removes them)
    #[arg(long)]
    keep_mt: bool,
    /// Also split the counts among cell types (compute_expected_per_cell_type
    /// with q05, one layer per cell type in sp.h5ad)
    #[arg(long)]
    expected_per_cell_type: bool,
    /// cpu, gpu, cuda or auto
    #[arg(long)]
    device: Option<String>,
    /// Output folder
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    table: TableArgs,
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
        Cell2location::Map(a) => map(*a),
        Cell2location::Colocation(a) => colocation(*a),
        Cell2location::Regions(a) => regions(*a),
    }
}

fn signatures(a: SignaturesArgs) -> Result<(), io::Error> {
    let name = a.reference[0].display().to_string();
    let method = run::Method::parse(&a.method).ok_or_else(|| {
        io::Error::new(
            "tessera cell2location signatures",
            "--method",
            format!(
                "unknown method {:?}: expected regression or average",
                a.method
            ),
        )
    })?;
    let reference = load(&a.reference, &a.table)?.dataset;
    let o = run::SignatureOptions {
        labels: a.labels.clone(),
        method,
        batch: a.batch.clone(),
        covariates: a.covariates.clone(),
        filter: (!a.no_filter).then_some(FilterGenes {
            cell_count_cutoff: a.cell_count_cutoff,
            cell_percentage_cutoff2: a.cell_percentage_cutoff2,
            nonz_mean_cutoff: a.nonz_mean_cutoff,
        }),
        train: Train {
            max_epochs: a
                .epochs
                .unwrap_or_else(|| regression::default_epochs(reference.n_obs())),
            batch_size: a.batch_size,
            lr: a.lr,
            seed: a.seed,
        },
    };
    let dev = device::open(a.device.as_deref())?;
    if method == run::Method::Regression {
        eprintln!(
            "NB regression on {}: {} epochs",
            dev.name(),
            o.train.max_epochs
        );
    }
    let mut bar = Bar::new("epochs");
    // A CUDA failure goes on on the CPU from the last checkpoint, with the
    // reference a second time (held only on CUDA).
    let mut spare = dev.is_cuda().then(|| reference.clone());
    let mut reference = Some(reference);
    let r = on_device!(&dev, kept, |d| pollster::block_on(run::signatures(
        d,
        &name,
        reference
            .take()
            .or_else(|| spare.take())
            .unwrap_or_default(),
        &o,
        &mut |done, total, loss| bar.update_with(done, total, &format!("loss {loss:.1}")),
        kept,
    )))?;
    drop(spare);
    for n in &r.notes {
        eprintln!("note: {n}");
    }
    eprintln!("filter_genes kept {} of {} genes", r.genes.0, r.genes.1);
    mkdir(&a.out)?;
    for (f, bytes) in &r.files {
        write(&a.out.join(f), bytes)?;
    }
    let s = &r.signatures;
    let summary = format!(
        "{} genes x {} cell types ({} cells) -> {}",
        s.genes.len(),
        s.cell_types.len(),
        s.n_cells.iter().sum::<usize>(),
        a.out.display()
    );
    h5ad_write::write_file(r.sc, &a.out.join("sc.h5ad"))?;
    eprintln!("{summary}");
    Ok(())
}

fn mkdir(p: &std::path::Path) -> Result<(), io::Error> {
    std::fs::create_dir_all(p)
        .map_err(|e| io::Error::new(&p.display().to_string(), "", e.to_string()))
}

/// `--detection-alpha 20` or `--detection-alpha 20,sample2=200`.
fn detection_alpha(args: &[String], opts: &mut Options) -> Result<(), io::Error> {
    let bad = |v: &str| {
        io::Error::new(
            "tessera cell2location map",
            "--detection-alpha",
            format!("{v:?} is not a positive number or NAME=NUMBER"),
        )
    };
    for a in args {
        let (name, v) = match a.split_once('=') {
            Some((n, v)) => (Some(n.trim()), v),
            None => (None, a.as_str()),
        };
        let x: f64 = v.trim().parse().map_err(|_| bad(a))?;
        if !(x > 0.0 && x.is_finite()) {
            return Err(bad(a));
        }
        match name {
            Some(n) => {
                opts.detection_alpha_per_batch.insert(n.to_string(), x);
            }
            None => opts.detection_alpha = x,
        }
    }
    Ok(())
}

fn map(a: MapArgs) -> Result<(), io::Error> {
    let name = a.sp[0].display().to_string();
    let sig_name = a.signatures.display().to_string();
    let text = std::fs::read_to_string(&a.signatures)
        .map_err(|e| io::Error::new(&sig_name, "", e.to_string()))?;
    let sig = c2l::signatures_from_csv(&sig_name, &text)?;
    let sp = load(&a.sp, &a.table)?.dataset;
    let mut opts = Options::new(a.n_cells_per_location, 20.0);
    detection_alpha(&a.detection_alpha, &mut opts)?;
    opts.batch_key = a.batch.clone();
    opts.detection_mean_per_sample = a.detection_mean_per_sample;
    opts.a_factors_per_location = a.a_factors_per_location;
    opts.b_groups_per_location = a.b_groups_per_location;
    opts.n_groups = a.n_groups;
    opts.n_cells_mean_var_ratio = a.n_cells_mean_var_ratio;
    opts.num_samples = a.num_samples;
    opts.train = c2l::Train {
        max_epochs: a.epochs,
        lr: a.lr,
        seed: a.seed,
        block_rows: None,
    };
    let dev = device::open(a.device.as_deref())?;
    eprintln!(
        "cell2location on {}: {} spots, {} cell types, {} steps",
        dev.name(),
        sp.n_obs(),
        sig.cell_types.len(),
        a.epochs
    );
    let mut bar = Bar::new("steps");
    // As for the signatures: the spots a second time, on CUDA only.
    let mut spare = dev.is_cuda().then(|| sp.clone());
    let mut sp = Some(sp);
    let r = on_device!(&dev, kept, |d| pollster::block_on(run::map_spots(
        d,
        &name,
        sp.take().or_else(|| spare.take()).unwrap_or_default(),
        &sig_name,
        &sig,
        &opts,
        a.keep_mt,
        a.expected_per_cell_type,
        &mut |done, total, loss| bar.update_with(done, total, &format!("-ELBO {loss:.1}")),
        kept,
    )))?;
    drop(spare);
    for n in &r.mapping.notes {
        eprintln!("note: {n}");
    }
    if r.mt_removed > 0 {
        eprintln!(
            "removed {} MT- genes (kept in obsm['MT']; --keep-mt keeps them)",
            r.mt_removed
        );
    }
    mkdir(&a.out)?;
    for (f, bytes) in &r.files {
        write(&a.out.join(f), bytes)?;
    }
    let m = &r.mapping;
    let total: f64 = m.abundance().means.iter().sum::<f64>() / m.spots.len().max(1) as f64;
    let summary = serde_json::json!({
        "spots": m.spots.len(),
        "genes": m.genes.len(),
        "cell_types": m.cell_types,
        "batches": m.batches,
        "detection_mean": m.detection_mean,
        "detection_alpha": m.priors.detection_alpha,
        "n_cells_per_location": a.n_cells_per_location,
        "steps": a.epochs,
        "seed": a.seed,
        "device": dev.name(),
        "final_elbo": m.fit.elbo_history.last(),
        "mean_total_abundance": total,
    });
    write(
        &a.out.join("summary.json"),
        serde_json::to_string_pretty(&summary)
            .expect("json")
            .as_bytes(),
    )?;
    eprintln!(
        "{} spots x {} cell types, mean {total:.1} cells per spot -> {}",
        m.spots.len(),
        m.cell_types.len(),
        a.out.display()
    );
    Ok(())
}

/// `5..30` (inclusive), `10,20,30` or `30`.
fn factor_numbers(s: &str) -> Result<Vec<usize>, io::Error> {
    let bad = || {
        io::Error::new(
            "tessera cell2location colocation",
            "--n-fact",
            format!("{s:?}: expected a number, a range like 5..30 or a list like 10,20,30"),
        )
    };
    let num = |t: &str| {
        t.trim()
            .parse::<usize>()
            .ok()
            .filter(|&n| n > 0)
            .ok_or_else(bad)
    };
    let v = if let Some((a, b)) = s.split_once("..") {
        let (a, b) = (num(a)?, num(b.trim_start_matches('='))?);
        if a > b {
            return Err(bad());
        }
        (a..=b).collect()
    } else {
        s.split(',').map(num).collect::<Result<Vec<_>, _>>()?
    };
    Ok(v)
}

fn colocation(a: ColocationArgs) -> Result<(), io::Error> {
    use tessera_core::models::cell2location::colocation as coloc;
    let name = a.sp.display().to_string();
    let mut sp = load(std::slice::from_ref(&a.sp), &TableArgs::default())?.dataset;
    let (types, x) = coloc::abundance(Named::new(&name, &sp), &a.abundance)?;
    let o = coloc::Options {
        n_fact: factor_numbers(&a.n_fact)?,
        restarts: a.restarts.max(1),
        alpha: a.alpha,
        l1_ratio: a.l1_ratio,
        max_iter: a.max_iter,
        tol: a.tol,
        seed: a.seed,
    };
    if let Some(&k) = o.n_fact.iter().find(|&&k| k > sp.n_obs()) {
        return Err(io::Error::new(
            "tessera cell2location colocation",
            "--n-fact",
            format!(
                "{k} factors for {} spots: at most one factor per spot",
                sp.n_obs()
            ),
        ));
    }
    let dev = device::open(a.device.as_deref())?;
    eprintln!(
        "co-location NMF on {}: {} spots x {} cell types, {} factor numbers x {} restarts",
        dev.name(),
        sp.n_obs(),
        types.len(),
        o.n_fact.len(),
        o.restarts
    );
    let mut bar = Bar::new("fits");
    let (spots, f) = (sp.n_obs(), types.len());
    let runs = on_device!(&dev, |d| pollster::block_on(coloc::run(
        d,
        &x,
        spots,
        f,
        &o,
        &mut |done, total| bar.update(done, total)
    )));
    let mut summary = vec![];
    for sub in [
        "cell_type_fractions_mean",
        "location_factors_mean",
        "factor_markers",
        "anndata",
    ] {
        mkdir(&a.out.join(sub))?;
    }
    let mut stab = String::from("n_fact,restart,n_iter,reconstruction_err,cell_type_factors_vs_restart_1,location_factors_vs_restart_1\n");
    for g in &runs {
        let k = g.n_fact;
        let file = format!("n_fact{k}.csv");
        write(
            &a.out.join("cell_type_fractions_mean").join(&file),
            coloc::fractions_csv(g, &types).as_bytes(),
        )?;
        write(
            &a.out.join("location_factors_mean").join(&file),
            coloc::locations_csv(g, &sp.obs.index).as_bytes(),
        )?;
        write(
            &a.out.join("factor_markers").join(&file),
            coloc::markers_csv(g, &types, 10).as_bytes(),
        )?;
        for (i, fit) in g.restarts.iter().enumerate() {
            let (c, l) = if i == 0 {
                (1.0, 1.0)
            } else {
                (g.stability_cell_types[i - 1], g.stability_locations[i - 1])
            };
            stab.push_str(&format!(
                "{k},{},{},{},{c},{l}\n",
                i + 1,
                fit.n_iter,
                fit.reconstruction_err
            ));
        }
        coloc::annotate(&mut sp, g, &types);
        let mean = |v: &[f64]| {
            if v.is_empty() {
                None
            } else {
                Some(v.iter().sum::<f64>() / v.len() as f64)
            }
        };
        let empty = g.empty_factors();
        if empty > 0 {
            eprintln!(
                "warning: n_fact {k}: {empty} of {k} factors are all zero: alpha {} (scaled by \
                 the numbers of spots and cell types, as scikit-learn does) outweighs abundances \
                 this small; try a smaller --alpha",
                o.alpha
            );
        }
        summary.push(serde_json::json!({
            "n_fact": k,
            "empty_factors": empty,
            "n_iter": g.result().n_iter,
            "reconstruction_err": g.result().reconstruction_err,
            "stability_cell_type_factors": mean(&g.stability_cell_types),
            "stability_location_factors": mean(&g.stability_locations),
        }));
    }
    write(&a.out.join("stability.csv"), stab.as_bytes())?;
    write(&a.out.join("anndata/sp.h5ad"), &h5ad_write::write(&sp)?)?;
    write(
        &a.out.join("summary.json"),
        serde_json::to_string_pretty(&serde_json::json!({
            "cell_types": types,
            "restarts": o.restarts,
            "alpha": o.alpha,
            "l1_ratio": o.l1_ratio,
            "device": dev.name(),
            "runs": summary,
        }))
        .expect("json")
        .as_bytes(),
    )?;
    for s in &summary {
        eprintln!(
            "n_fact {}: error {:.3}, {} iterations, stability across restarts (cell types) {}",
            s["n_fact"],
            s["reconstruction_err"].as_f64().unwrap_or(f64::NAN),
            s["n_iter"],
            s["stability_cell_type_factors"]
                .as_f64()
                .map_or("-".into(), |v| format!("{v:.3}"))
        );
    }
    eprintln!("-> {}", a.out.display());
    Ok(())
}

fn regions(a: RegionsArgs) -> Result<(), io::Error> {
    use tessera_core::data::{dense, Annotation};
    use tessera_core::embed::{knn, leiden, umap};
    use tessera_core::models::cell2location::colocation as coloc;
    let name = a.sp.display().to_string();
    let mut sp = load(std::slice::from_ref(&a.sp), &TableArgs::default())?.dataset;
    let (types, x) = coloc::abundance(Named::new(&name, &sp), &a.abundance)?;
    if a.n_neighbors < 2 {
        return Err(io::Error::new(
            "tessera cell2location regions",
            "--n-neighbors",
            "needs at least 2 (the spot itself and one neighbour)",
        ));
    }
    let n = sp.n_obs();
    let dev = device::open(a.device.as_deref())?;
    eprintln!(
        "regions: {n} spots x {} cell types, {} neighbours, resolution {}",
        types.len(),
        a.n_neighbors,
        a.resolution
    );
    let nn = on_device!(&dev, |d| pollster::block_on(knn::knn(
        d,
        &x,
        n,
        types.len(),
        a.n_neighbors
    )));
    let g = umap::connectivities(&nn);
    let clusters = leiden::leiden(
        &g,
        &leiden::Leiden {
            resolution: a.resolution,
            seed: a.seed,
        },
    );
    let y = umap::layout(
        &g,
        &umap::Layout {
            seed: a.seed,
            ..umap::Layout::default()
        },
    );
    let labels: Vec<String> = clusters.iter().map(|c| c.to_string()).collect();
    sp.obs.set(
        "region_cluster",
        tessera_core::data::Column::categorical_from(&labels),
    );
    sp.obsm.insert(
        "X_umap".into(),
        Annotation::Array(
            dense(n, 2, y.iter().flat_map(|v| [v[0], v[1]]).collect()).expect("rows x cols values"),
        ),
    );
    mkdir(&a.out)?;
    let mut csv = String::from("spot,region_cluster,umap_1,umap_2\n");
    for (i, spot) in sp.obs.index.iter().enumerate() {
        csv.push_str(&format!(
            "{},{},{},{}\n",
            io::csv_field(spot),
            clusters[i],
            y[i][0],
            y[i][1]
        ));
    }
    write(&a.out.join("regions.csv"), csv.as_bytes())?;
    write(&a.out.join("sp.h5ad"), &h5ad_write::write(&sp)?)?;
    let k = clusters.iter().max().map_or(0, |m| m + 1);
    let mut sizes = vec![0usize; k];
    for &c in &clusters {
        sizes[c] += 1;
    }
    eprintln!(
        "{k} regions (spots per region: {}) -> {}",
        sizes
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .join(", "),
        a.out.display()
    );
    Ok(())
}
