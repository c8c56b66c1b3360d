//! `tessera tangram`: map single cells onto space and write what the
//! reference tool would leave in its AnnData objects, as plain files.

use std::path::{Path, PathBuf};
use std::time::Instant;

use tessera_core::compute::Device;
use tessera_core::io::{self, csv_field, h5ad_write, npy};
use tessera_core::models::tangram::export::num;
use tessera_core::models::tangram::{self, project, DensityPrior, Mapping, Mode, Named, Options};

use crate::device::{self, on_device};
use crate::progress::Bar;
use crate::{load, write, TableArgs};

#[derive(clap::Args)]
pub struct TangramArgs {
    /// Single-cell reference: .h5ad, 10x folder/.zip/.h5, or cell tables
    #[arg(long, required = true, num_args = 1..)]
    sc: Vec<PathBuf>,
    /// Spatial data, in any format the readers accept
    #[arg(long, required = true, num_args = 1..)]
    sp: Vec<PathBuf>,
    /// cells, clusters or constrained
    #[arg(long, default_value = "cells")]
    mode: String,
    /// obs column of the reference that defines clusters (clusters mode)
    #[arg(long)]
    cluster_label: Option<String>,
    /// Training genes, one per line (e.g. markers); default: every shared gene
    #[arg(long)]
    genes: Option<PathBuf>,
    /// rna_count_based, uniform or none
    #[arg(long, default_value = "rna_count_based")]
    density: String,
    #[arg(long, default_value_t = 1000)]
    epochs: usize,
    #[arg(long, default_value_t = 0.1)]
    lr: f32,
    /// Seed of the initial logits (numpy's stream: seed 42 reproduces
    /// tangram's random_state=42); default: a fresh seed, reported
    #[arg(long)]
    seed: Option<u32>,
    /// cpu, gpu, cuda or auto
    #[arg(long)]
    device: Option<String>,
    #[arg(long, default_value_t = 1.0)]
    lambda_g1: f32,
    #[arg(long, default_value_t = 0.0)]
    lambda_g2: f32,
    /// Density term weight (set to 1 whenever a density prior is used and this is 0)
    #[arg(long, default_value_t = 0.0)]
    lambda_d: f32,
    #[arg(long, default_value_t = 0.0)]
    lambda_r: f32,
    /// Constrained mode
    #[arg(long, default_value_t = 1.0)]
    lambda_count: f32,
    /// Constrained mode
    #[arg(long, default_value_t = 1.0)]
    lambda_f_reg: f32,
    /// Constrained mode: how many cells to keep (default: the number of spots)
    #[arg(long)]
    target_count: Option<f64>,
    /// Clusters mode: mean instead of sum of each cluster's cells
    #[arg(long)]
    no_scale: bool,
    /// obs column to project as tangram_ct_pred (default: the cluster label, or cell_type)
    #[arg(long)]
    annotation: Option<String>,
    /// Also write every reference gene projected onto space (sp_imputed.h5ad)
    #[arg(long)]
    project_genes: bool,
    /// Cross-validate over training genes: loo or 10fold
    #[arg(long)]
    cv: Option<String>,
    /// Output folder
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    table: TableArgs,
}

fn bad(key: &str, m: impl Into<String>) -> io::Error {
    io::Error::new("tessera tangram", key, m)
}

fn options(a: &TangramArgs) -> Result<Options, io::Error> {
    let mode = Mode::parse(&a.mode).ok_or_else(|| {
        bad(
            "--mode",
            format!(
                "unknown mode {:?}: expected cells, clusters or constrained",
                a.mode
            ),
        )
    })?;
    let density_prior = DensityPrior::parse(&a.density).ok_or_else(|| {
        bad(
            "--density",
            format!(
                "unknown prior {:?}: expected rna_count_based, uniform or none",
                a.density
            ),
        )
    })?;
    let genes = match &a.genes {
        Some(p) => Some(read_gene_list(p)?),
        None => None,
    };
    let mut o = Options {
        mode,
        cluster_label: a.cluster_label.clone(),
        genes,
        density_prior,
        scale: !a.no_scale,
        target_count: a.target_count,
        seed: a.seed,
        annotation: a.annotation.clone(),
        ..Options::default()
    };
    let h = &mut o.hyper;
    h.num_epochs = a.epochs;
    h.learning_rate = a.lr;
    h.lambda_g1 = a.lambda_g1;
    h.lambda_g2 = a.lambda_g2;
    h.lambda_d = a.lambda_d;
    h.lambda_r = a.lambda_r;
    h.lambda_count = a.lambda_count;
    h.lambda_f_reg = a.lambda_f_reg;
    Ok(o)
}

/// One gene per line; a first column of a CSV also works; `#` starts a comment.
fn read_gene_list(p: &Path) -> Result<Vec<String>, io::Error> {
    let name = p.display().to_string();
    let text = std::fs::read_to_string(p).map_err(|e| io::Error::new(&name, "", e.to_string()))?;
    let genes: Vec<String> = text
        .lines()
        .map(|l| {
            l.split([',', '\t'])
                .next()
                .unwrap_or("")
                .trim()
                .trim_matches('"')
        })
        .filter(|g| !g.is_empty() && !g.starts_with('#'))
        .map(String::from)
        .collect();
    if genes.is_empty() {
        return Err(io::Error::new(
            &name,
            "",
            "lists no genes (expected one gene name per line)",
        ));
    }
    Ok(genes)
}

pub fn run(a: TangramArgs) -> Result<(), io::Error> {
    let opts = options(&a)?;
    let sc = load(&a.sc, &a.table)?;
    let sp = load(&a.sp, &a.table)?;
    let (sc_name, sp_name) = (a.sc[0].display().to_string(), a.sp[0].display().to_string());
    let scn = Named::new(&sc_name, &sc.dataset);
    let spn = Named::new(&sp_name, &sp.dataset);
    let dev = device::open(a.device.as_deref())?;
    std::fs::create_dir_all(&a.out)
        .map_err(|e| io::Error::new(&a.out.display().to_string(), "", e.to_string()))?;
    eprintln!(
        "tangram: {} ({} x {}) onto {} ({} x {}), mode {}, on {}",
        sc_name,
        sc.dataset.n_obs(),
        sc.dataset.n_vars(),
        sp_name,
        sp.dataset.n_obs(),
        sp.dataset.n_vars(),
        opts.mode.name(),
        dev.name()
    );
    on_device!(&dev, |d| run_on(d, scn, spn, &opts, &a))
}

fn run_on<D: Device>(
    dev: &D,
    sc: Named,
    sp: Named,
    opts: &Options,
    a: &TangramArgs,
) -> Result<(), io::Error> {
    let t0 = Instant::now();
    let mut bar = Bar::new("epochs");
    let m = pollster::block_on(tangram::map_cells_to_space(
        dev,
        sc,
        sp,
        opts,
        &mut |done, total, _| bar.update(done, total),
    ))?;
    let fit_s = t0.elapsed().as_secs_f64();
    if !m.prep.missing.is_empty() {
        eprintln!(
            "note: {} requested genes are not expressed in both datasets and were skipped (e.g. {})",
            m.prep.missing.len(),
            m.prep.missing.iter().take(5).cloned().collect::<Vec<_>>().join(", ")
        );
    }
    let score = m.history.main_loss.last().copied().unwrap_or(f64::NAN);
    let kl = m.history.kl_reg.last().copied().unwrap_or(f64::NAN);
    eprintln!(
        "{} training genes, final score {score:.4}, KL {kl:.2e}, seed {}, {fit_s:.1} s",
        m.training_genes.len(),
        m.seed
    );
    write_outputs(dev, sc, sp, &m, opts, a, fit_s)
}

#[allow(clippy::too_many_arguments)]
fn write_outputs<D: Device>(
    dev: &D,
    sc: Named,
    sp: Named,
    m: &Mapping,
    opts: &Options,
    a: &TangramArgs,
    fit_s: f64,
) -> Result<(), io::Error> {
    let out = &a.out;
    let ns = m.spots.len();
    write(
        &out.join("mapping.npy"),
        &npy::write(&[m.rows.len(), ns], &m.matrix),
    )?;
    let list = io::list_csv;
    write(
        &out.join("mapping_rows.csv"),
        list("row", &m.rows).as_bytes(),
    )?;
    write(
        &out.join("mapping_cols.csv"),
        list("spot", &m.spots).as_bytes(),
    )?;
    write(&out.join("train_genes.csv"), m.train_genes_csv().as_bytes())?;
    write(&out.join("history.csv"), m.history_csv().as_bytes())?;

    if let Some(f) = &m.f_out {
        let mut t = String::from("cell,F_out\n");
        for (r, v) in m.rows.iter().zip(f) {
            t.push_str(&format!("{},{v}\n", csv_field(r)));
        }
        write(&out.join("f_out.csv"), t.as_bytes())?;
    }

    // The spatial data with the transferred annotation, as scanpy users expect.
    match m.ct_pred_csv() {
        Some(csv) => write(&out.join("tangram_ct_pred.csv"), csv.as_bytes())?,
        None => eprintln!(
            "note: no annotation to project (the reference has no cell_type column); pass --annotation COLUMN for tangram_ct_pred"
        ),
    }
    let mapped = m.mapped(sp.data);
    write(&out.join("sp_mapped.h5ad"), &h5ad_write::write(&mapped)?)?;

    if a.project_genes {
        let imputed = pollster::block_on(project::project_genes(dev, sc, sp, m, opts.scale))?;
        write(&out.join("sp_imputed.h5ad"), &h5ad_write::write(&imputed)?)?;
        let df = project::compare_spatial_geneexp(&imputed, sc, sp, m, None);
        let mut t = String::from("gene,score,is_training,sparsity_sp,sparsity_sc,sparsity_diff\n");
        for g in &df {
            t.push_str(&format!(
                "{},{},{},{},{},{}\n",
                csv_field(&g.gene),
                num(g.score),
                if g.is_training { "True" } else { "False" },
                g.sparsity_sp,
                g.sparsity_sc,
                g.sparsity_diff
            ));
        }
        write(&out.join("compare_spatial_geneexp.csv"), t.as_bytes())?;
        eprintln!("projected {} genes onto {} spots", imputed.n_vars(), ns);
    }

    let mut cv_json = serde_json::Value::Null;
    if let Some(cv) = &a.cv {
        let mode = match cv.as_str() {
            "loo" => project::CvMode::Loo,
            "10fold" => project::CvMode::TenFold,
            other => {
                return Err(bad(
                    "--cv",
                    format!("unknown mode {other:?}: expected loo or 10fold"),
                ))
            }
        };
        let mut bar = Bar::new("folds");
        let r = pollster::block_on(project::cross_val(dev, sc, sp, opts, mode, &mut |d, t| {
            bar.update(d, t)
        }))?;
        let mut t = String::from("gene,test_score,sparsity_sp\n");
        for g in &r.test_genes {
            t.push_str(&format!(
                "{},{},{}\n",
                csv_field(&g.gene),
                num(g.score),
                g.sparsity_sp
            ));
        }
        write(&out.join("cv_test_genes.csv"), t.as_bytes())?;
        cv_json = serde_json::json!({
            "cv_mode": cv,
            "avg_test_score": r.avg_test_score,
            "avg_train_score": r.avg_train_score,
            "sp_sparsity_score": r.metrics.sp_sparsity_score,
            "auc_score": r.metrics.auc_score,
        });
        eprintln!(
            "cross-validation ({cv}): test score {:.4}, train score {:.4}",
            r.avg_test_score, r.avg_train_score
        );
    }

    let hp = m.hyper;
    let summary = serde_json::json!({
        "mode": m.mode.name(),
        "device": dev.name(),
        "n_rows": m.rows.len(),
        "n_spots": ns,
        "n_training_genes": m.training_genes.len(),
        "seed": m.seed,
        "density_prior": m.density_prior.name(),
        "annotation": m.annotation,
        "hyperparameters": {
            "learning_rate": hp.learning_rate, "num_epochs": hp.num_epochs,
            "lambda_g1": hp.lambda_g1, "lambda_g2": hp.lambda_g2, "lambda_d": hp.lambda_d,
            "lambda_r": hp.lambda_r, "lambda_count": hp.lambda_count, "lambda_f_reg": hp.lambda_f_reg,
            "target_count": opts.target_count, "scale": opts.scale,
        },
        "final_score": m.history.main_loss.last(),
        "final_total_loss": m.history.total_loss.last(),
        "final_kl_reg": m.history.kl_reg.last().filter(|v| v.is_finite()),
        "fit_seconds": fit_s,
        "cross_validation": cv_json,
    });
    write(
        &out.join("summary.json"),
        serde_json::to_string_pretty(&summary)
            .expect("json")
            .as_bytes(),
    )?;
    eprintln!("wrote {}", out.display());
    Ok(())
}
