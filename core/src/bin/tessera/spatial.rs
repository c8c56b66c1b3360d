//! `tessera spatial`: squidpy's graph statistics on any readable dataset,
//! written as files laid out like squidpy's outputs.

use std::path::{Path, PathBuf};
use std::time::Instant;

use tessera_core::data::Dataset;
use tessera_core::io::{self, npz};
use tessera_core::spatial::{
    autocorr, centrality, cooccurrence, graph, inputs, nhood, niche, Graph, Kind, Labels,
};

use crate::progress::Bar;
use crate::{load, write, TableArgs};

#[derive(clap::Subcommand)]
pub enum Spatial {
    /// Neighbour graph (squidpy's spatial_neighbors) as scipy .npz files
    Neighbors(Box<Args>),
    /// Neighbourhood enrichment z-scores, interaction matrix, centrality scores
    Nhood(Box<Args>),
    /// Co-occurrence of cell types over distance (per library when given)
    Cooccurrence(Box<Args>),
    /// Moran's I or Geary's C of each gene (or feature)
    Autocorr(Box<Args>),
    /// Niche composition and co-localization score on a radius graph (default radius 50)
    Niche(Box<Args>),
}

#[derive(clap::Args)]
pub struct Args {
    /// .h5ad, Space Ranger folder or .zip, 10x .h5, or cell tables
    #[arg(required = true)]
    data: Vec<PathBuf>,
    /// obs column with the cell types (nhood, cooccurrence, niche)
    #[arg(long)]
    labels: Option<String>,
    /// obs column naming each cell's image / FOV: graphs never cross it
    #[arg(long)]
    library_key: Option<String>,
    /// knn, radius, delaunay or grid (default: grid for Visium spots, else knn; radius for niche)
    #[arg(long)]
    graph: Option<String>,
    /// Neighbours per cell (knn; 6 for a hexagonal grid, 4 for a square one)
    #[arg(long)]
    k: Option<usize>,
    /// Radius of the radius graph (coordinate units)
    #[arg(long)]
    radius: Option<f64>,
    /// Rings of neighbours on a grid
    #[arg(long, default_value_t = 1)]
    n_rings: usize,
    /// Drop edges longer than this percentile of the edge lengths
    #[arg(long)]
    percentile: Option<f64>,
    /// Label permutations (nhood: 1000 by default; autocorr: none by default)
    #[arg(long)]
    n_perms: Option<usize>,
    #[arg(long, default_value_t = 0)]
    seed: u32,
    /// Distances at which co-occurrence is computed
    #[arg(long, default_value_t = 50)]
    interval: usize,
    /// moran or geary (autocorr)
    #[arg(long, default_value = "moran")]
    mode: String,
    /// Comma-separated genes (autocorr; default: highly variable genes if marked, else all)
    #[arg(long, value_delimiter = ',')]
    genes: Option<Vec<String>>,
    /// Two-tailed analytic p-values (autocorr)
    #[arg(long)]
    two_tailed: bool,
    #[command(flatten)]
    table: TableArgs,
    /// Output folder
    #[arg(long)]
    out: PathBuf,
}

fn fail(file: &Path, key: &str, msg: impl Into<String>) -> io::Error {
    io::Error::new(&file.display().to_string(), key, msg)
}

struct Input {
    name: PathBuf,
    ds: Dataset,
    coords: Vec<[f64; 2]>,
}

impl Input {
    fn read(a: &Args) -> Result<Input, io::Error> {
        let loaded = load(&a.data, &a.table)?;
        let name = a.data[0].clone();
        let ds = loaded.dataset;
        let coords = inputs::coords(&name.display().to_string(), &ds)?;
        Ok(Input { name, ds, coords })
    }

    fn file(&self) -> String {
        self.name.display().to_string()
    }

    fn labels(&self, a: &Args) -> Result<Labels, io::Error> {
        let key = a.labels.as_deref().ok_or_else(|| {
            fail(
                &self.name,
                "",
                "--labels COL is required: the obs column with the cell types",
            )
        })?;
        inputs::cell_types(&self.file(), &self.ds, key)
    }

    fn libraries(&self, a: &Args) -> Result<Option<Labels>, io::Error> {
        a.library_key
            .as_deref()
            .map(|key| inputs::obs_labels(&self.file(), &self.ds, key))
            .transpose()
    }

    /// Visium spots: squidpy's default grid graph.
    fn is_grid(&self) -> bool {
        self.ds.uns.contains_key("spatial")
    }
}

fn options(a: &Args, input: &Input, default: &str) -> Result<graph::Options, io::Error> {
    let name = match a.graph.as_deref() {
        Some(g) => g,
        None if default == "knn" && input.is_grid() => "grid",
        None => default,
    };
    let kind = match name {
        "knn" => Kind::Knn {
            k: a.k.unwrap_or(6),
        },
        "radius" => Kind::Radius {
            r: a.radius
                .unwrap_or(if default == "radius" { 50.0 } else { f64::NAN }),
        },
        "delaunay" => Kind::Delaunay,
        "grid" => Kind::Grid {
            n_neighs: a.k.unwrap_or(6),
            n_rings: a.n_rings,
        },
        other => {
            return Err(fail(
                &input.name,
                "--graph",
                format!("unknown graph {other:?}: expected knn, radius, delaunay or grid"),
            ))
        }
    };
    if let Kind::Radius { r } = kind {
        if r.is_nan() {
            return Err(fail(
                &input.name,
                "--radius",
                "a radius graph needs --radius R",
            ));
        }
    }
    Ok(graph::Options {
        kind,
        percentile: a.percentile,
    })
}

/// The graph, a summary of it, and the libraries it was built within.
fn build(
    a: &Args,
    input: &Input,
    default: &str,
) -> Result<(Graph, serde_json::Value, Option<Labels>), io::Error> {
    let opts = options(a, input, default)?;
    let libs = input.libraries(a)?;
    let t = Instant::now();
    let g = graph::build(&input.coords, libs.as_ref().map(|l| &l.codes[..]), &opts)
        .map_err(|e| fail(&input.name, "obsm/spatial", e))?;
    let info = serde_json::json!({
        "graph": opts.kind.name(),
        "params": format!("{:?}", opts.kind),
        "percentile": opts.percentile,
        "library_key": a.library_key,
        "n_cells": g.n,
        "n_edges": g.n_edges(),
        "mean_degree": g.n_edges() as f64 / g.n.max(1) as f64,
        "seconds": t.elapsed().as_secs_f64(),
    });
    eprintln!(
        "{} graph: {} cells, {} edges ({:.2} per cell)",
        opts.kind.name(),
        g.n,
        g.n_edges(),
        g.n_edges() as f64 / g.n.max(1) as f64
    );
    Ok((g, info, libs))
}

fn mkdir(p: &Path) -> Result<(), io::Error> {
    std::fs::create_dir_all(p).map_err(|e| fail(p, "", e.to_string()))
}

fn summary(out: &Path, v: serde_json::Value) -> Result<(), io::Error> {
    write(
        &out.join("summary.json"),
        serde_json::to_string_pretty(&v).expect("json").as_bytes(),
    )
}

pub fn run(s: Spatial) -> Result<(), io::Error> {
    match s {
        Spatial::Neighbors(a) => neighbors(&a),
        Spatial::Nhood(a) => nhood_cmd(&a),
        Spatial::Cooccurrence(a) => cooccurrence_cmd(&a),
        Spatial::Autocorr(a) => autocorr_cmd(&a),
        Spatial::Niche(a) => niche_cmd(&a),
    }
}

fn neighbors(a: &Args) -> Result<(), io::Error> {
    let input = Input::read(a)?;
    let (g, info, _) = build(a, &input, "knn")?;
    mkdir(&a.out)?;
    write(
        &a.out.join("connectivities.npz"),
        &npz::write_csr(&g.connectivities()),
    )?;
    write(
        &a.out.join("distances.npz"),
        &npz::write_csr(&g.distances_csr()),
    )?;
    summary(&a.out, serde_json::json!({ "neighbors": info }))?;
    eprintln!(
        "wrote connectivities.npz and distances.npz to {}",
        a.out.display()
    );
    Ok(())
}

fn nhood_cmd(a: &Args) -> Result<(), io::Error> {
    let input = Input::read(a)?;
    let labels = input.labels(a)?;
    let (g, info, libs) = build(a, &input, "knn")?;
    let n_perms = a.n_perms.unwrap_or(1000);
    let mut bar = Bar::new("permutations");
    let t = Instant::now();
    let e = nhood::enrichment(&g, &labels, libs.as_ref(), n_perms, a.seed, |d| {
        bar.update(d, n_perms)
    })
    .map_err(|e| fail(&input.name, "", e))?;
    let secs = t.elapsed().as_secs_f64();
    mkdir(&a.out)?;
    let c = &labels.categories;
    let scores = centrality::scores(&g, &labels);
    for (name, text) in nhood::analysis::tables(c, &e, &scores) {
        write(&a.out.join(name), text.as_bytes())?;
    }
    summary(
        &a.out,
        serde_json::json!({
            "neighbors": info,
            "categories": c,
            "n_perms": n_perms,
            "seed": a.seed,
            "nhood_enrichment_seconds": secs,
        }),
    )?;
    eprintln!(
        "wrote nhood_enrichment_zscore.csv, nhood_enrichment_count.csv, interaction_matrix.csv, centrality_scores.csv to {}",
        a.out.display()
    );
    Ok(())
}

fn cooccurrence_cmd(a: &Args) -> Result<(), io::Error> {
    let input = Input::read(a)?;
    let labels = input.labels(a)?;
    let libs = input.libraries(a)?;
    mkdir(&a.out)?;
    // squidpy has no library key here: one run per library, as its users do.
    let runs: Vec<(String, Vec<usize>)> = match &libs {
        None => vec![(String::new(), (0..input.coords.len()).collect())],
        Some(l) => l
            .categories
            .iter()
            .enumerate()
            .map(|(c, name)| {
                (
                    format!("_{name}"),
                    (0..l.codes.len())
                        .filter(|&i| l.codes[i] == c as u32)
                        .collect(),
                )
            })
            .collect(),
    };
    let mut runs_info = Vec::new();
    for (tag, rows) in runs {
        let coords: Vec<[f64; 2]> = rows.iter().map(|&i| input.coords[i]).collect();
        let sub = labels.take(&rows);
        let t = Instant::now();
        let co = cooccurrence::co_occurrence(&coords, &sub, a.interval).map_err(|e| {
            fail(
                &input.name,
                "obsm/spatial",
                format!("co-occurrence{tag}: {e}"),
            )
        })?;
        let k = sub.n_types();
        for (name, bytes) in cooccurrence::analysis::files(&tag, &sub, &co) {
            write(&a.out.join(name), &bytes)?;
        }
        runs_info.push(serde_json::json!({
            "run": if tag.is_empty() { "all".to_string() } else { tag[1..].to_string() },
            "n_cells": rows.len(),
            "occ_shape": [k, k, co.radii()],
            "seconds": t.elapsed().as_secs_f64(),
        }));
        eprintln!(
            "co-occurrence{tag}: {} cells, {k} types, {} distances",
            rows.len(),
            co.radii()
        );
    }
    summary(
        &a.out,
        serde_json::json!({ "co_occurrence": runs_info, "interval": a.interval }),
    )?;
    eprintln!("wrote co_occurrence_*.npy to {}", a.out.display());
    Ok(())
}

fn autocorr_cmd(a: &Args) -> Result<(), io::Error> {
    let input = Input::read(a)?;
    let (g, info, _) = build(a, &input, "knn")?;
    let mode = match a.mode.as_str() {
        "moran" => autocorr::Mode::Moran,
        "geary" => autocorr::Mode::Geary,
        m => {
            return Err(fail(
                &input.name,
                "--mode",
                format!("unknown mode {m:?}: expected moran or geary"),
            ))
        }
    };
    let features = autocorr::analysis::features(
        &input.file(),
        &input.ds,
        a.genes.as_deref().unwrap_or_default(),
    )?;
    let opts = autocorr::Options {
        mode,
        transformation: true,
        n_perms: a.n_perms.unwrap_or(0),
        two_tailed: a.two_tailed,
        seed: a.seed,
    };
    let mut bar = Bar::new("features");
    let total = features.len();
    let rows = autocorr::run(&g, &features, &opts, |d| bar.update(d, total))
        .map_err(|e| fail(&input.name, "", e))?;
    mkdir(&a.out)?;
    let file = match mode {
        autocorr::Mode::Moran => "moranI.csv",
        autocorr::Mode::Geary => "gearyC.csv",
    };
    write(
        &a.out.join(file),
        autocorr::to_csv(&rows, mode, opts.n_perms > 0).as_bytes(),
    )?;
    summary(
        &a.out,
        serde_json::json!({ "neighbors": info, "mode": a.mode, "n_features": total, "n_perms": opts.n_perms }),
    )?;
    eprintln!("wrote {file} ({total} features) to {}", a.out.display());
    Ok(())
}

fn niche_cmd(a: &Args) -> Result<(), io::Error> {
    let input = Input::read(a)?;
    let labels = input.labels(a)?;
    let (g, info, _) = build(a, &input, "radius")?;
    let ns = niche::niches(&g, &labels);
    let scores = niche::colocalization(&g, &labels);
    mkdir(&a.out)?;
    write(
        &a.out.join("niche_composition.csv"),
        niche::niches_csv(&input.ds.obs.index, &labels, &ns).as_bytes(),
    )?;
    write(
        &a.out.join("co_localization.csv"),
        niche::colocalization_csv(&labels, &scores).as_bytes(),
    )?;
    let isolated = ns.iter().filter(|n| n.n_neighbors == 0).count();
    summary(
        &a.out,
        serde_json::json!({ "neighbors": info, "categories": labels.categories, "cells_without_neighbors": isolated }),
    )?;
    if isolated > 0 {
        eprintln!("note: {isolated} cells have no neighbour within the radius (niche_type 'none')");
    }
    eprintln!(
        "wrote niche_composition.csv and co_localization.csv to {}",
        a.out.display()
    );
    Ok(())
}
