//! `tessera bench spatial`: neighbourhood enrichment (1,000 permutations)
//! and co-occurrence, against squidpy 1.8.2's times recorded in
//! $TESSERA_DATA/ref/squidpy (same machine class: 2 shared cores). First on
//! the reference sets themselves (same cells, same graph: a direct ratio),
//! then on 100,000 cells (the CODEX spleen, 82,382 cells, tiled with a
//! shifted copy), where squidpy's time is extrapolated from its recorded
//! rate on the largest reference set (MIBI, 3,262 cells): linear in edges x
//! permutations for enrichment, in ordered cell pairs for co-occurrence (its
//! kernel visits every pair of each run).

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;
use tessera_core::io::{self, FileSet, TableOptions};
use tessera_core::spatial::{cooccurrence, graph, nhood, Kind, Labels, Options};

#[derive(Serialize)]
pub struct Row {
    pub task: String,
    pub cells: usize,
    pub edges: usize,
    pub seconds: f64,
    pub squidpy_s: f64,
    /// Whether squidpy's time was measured on these cells or extrapolated.
    pub squidpy_measured: bool,
    pub speedup: f64,
}

pub struct Args {
    pub data: Option<PathBuf>,
    pub cells: usize,
    pub perms: usize,
    pub json: bool,
}

fn bad(m: String) -> io::Error {
    io::Error::new("tessera bench spatial", "", m)
}

struct Set {
    coords: Vec<[f64; 2]>,
    labels: Labels,
    libraries: Option<Labels>,
}

fn load(path: &Path, labels: &str, library: Option<&str>) -> Result<Set, io::Error> {
    let ds = io::read(FileSet::from_path(path)?, &TableOptions::default())?.dataset;
    let xy = ds
        .spatial()
        .ok_or_else(|| bad(format!("{}: no spatial coordinates", path.display())))?;
    let coords = xy.rows().into_iter().map(|r| [r[0], r[1]]).collect();
    let col = |k: &str| {
        ds.obs
            .column(k)
            .ok_or_else(|| bad(format!("{}: no obs column {k}", path.display())))
    };
    let labels = Labels::from_column(labels, col(labels)?).map_err(bad)?;
    let libraries = library
        .map(|l| Labels::from_column(l, col(l)?).map_err(bad))
        .transpose()?;
    Ok(Set {
        coords,
        labels,
        libraries,
    })
}

fn time<T>(f: impl FnOnce() -> T) -> (T, f64) {
    let t = Instant::now();
    let v = f();
    (v, t.elapsed().as_secs_f64())
}

fn delaunay(s: &Set) -> Result<graph::Graph, io::Error> {
    let opts = Options {
        kind: Kind::Delaunay,
        percentile: None,
    };
    graph::build(&s.coords, s.libraries.as_ref().map(|l| &l.codes[..]), &opts).map_err(bad)
}

/// Co-occurrence per library (as the reference ran it): total seconds and
/// the number of cell pairs visited (Σ n² over the runs).
fn cooccur(s: &Set) -> Result<(f64, f64), io::Error> {
    let groups: Vec<Vec<usize>> = match &s.libraries {
        None => vec![(0..s.coords.len()).collect()],
        Some(l) => (0..l.n_types() as u32)
            .map(|c| (0..l.codes.len()).filter(|&i| l.codes[i] == c).collect())
            .collect(),
    };
    let (mut total, mut pairs) = (0.0, 0.0);
    for rows in groups {
        pairs += (rows.len() as f64).powi(2);
        let coords: Vec<[f64; 2]> = rows.iter().map(|&i| s.coords[i]).collect();
        let labels = s.labels.take(&rows);
        let (r, secs) = time(|| cooccurrence::co_occurrence(&coords, &labels, 50));
        r.map_err(bad)?;
        total += secs;
    }
    Ok((total, pairs))
}

pub fn run(a: Args) -> Result<(), io::Error> {
    let data = a
        .data
        .or_else(|| std::env::var_os("TESSERA_DATA").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("../shared/data"));
    let refs = data.join("ref/squidpy");
    let mut rows = Vec::new();
    // squidpy's rates on the largest reference set, for the extrapolation.
    let (mut nhood_rate, mut cooc_rate, mut largest) = (0.0, 0.0, 0);
    for (name, file, labels, library) in [
        (
            "seqfish_cortex",
            "seqfish_cortex_tasic/derived/seqfish_spatial.h5ad",
            "cell_type",
            None,
        ),
        (
            "mibi_tnbc_ark",
            "mibi_tnbc_ark/derived/mibi_tnbc.h5ad",
            "cell_type",
            Some("SampleID"),
        ),
        (
            "cycif_hodgkin",
            "cycif_hodgkin_scimap/derived/cycif_hodgkin.h5ad",
            "phenotype",
            None,
        ),
    ] {
        let summary: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(refs.join(name).join("summary.json"))
                .map_err(|e| bad(format!("{}: {e}", refs.join(name).display())))?,
        )
        .map_err(|e| bad(format!("{name}/summary.json: {e}")))?;
        let set = load(&data.join(file), labels, library)?;
        let g = delaunay(&set)?;
        let (e, secs) = time(|| nhood::enrichment(&g, &set.labels, None, 1000, 0, |_| {}));
        e.map_err(bad)?;
        let theirs = summary["delaunay"]["time_nhood_enrichment_1000perm_s"]
            .as_f64()
            .ok_or_else(|| bad(format!("{name}: no delaunay nhood time")))?;
        let is_largest = g.n > largest;
        if is_largest {
            largest = g.n;
            nhood_rate = theirs / (g.n_edges() as f64 * 1000.0);
        }
        rows.push(Row {
            task: format!("nhood_enrichment 1000 perms, delaunay ({name})"),
            cells: g.n,
            edges: g.n_edges(),
            seconds: secs,
            squidpy_s: theirs,
            squidpy_measured: true,
            speedup: theirs / secs,
        });
        let (secs, pairs) = cooccur(&set)?;
        let theirs: f64 = summary["co_occurrence"]
            .as_object()
            .map(|o| o.values().filter_map(|v| v["time_s"].as_f64()).sum())
            .unwrap_or(0.0);
        if is_largest {
            cooc_rate = theirs / pairs;
        }
        rows.push(Row {
            task: format!("co_occurrence, 50 intervals ({name})"),
            cells: set.coords.len(),
            edges: 0,
            seconds: secs,
            squidpy_s: theirs,
            squidpy_measured: true,
            speedup: theirs / secs,
        });
    }
    // 100,000 cells: the CODEX spleen and a copy shifted right, cut to size.
    let spleen = load(
        &data.join("codex_spleen_goltsev/derived/BALBc-1.h5ad"),
        "cell_type",
        None,
    )?;
    let width = spleen.coords.iter().map(|p| p[0]).fold(f64::MIN, f64::max)
        - spleen.coords.iter().map(|p| p[0]).fold(f64::MAX, f64::min)
        + 100.0;
    let n = a.cells;
    let idx: Vec<usize> = (0..n).map(|i| i % spleen.coords.len()).collect();
    let big = Set {
        coords: (0..n)
            .map(|i| {
                let p = spleen.coords[idx[i]];
                [p[0] + width * (i / spleen.coords.len()) as f64, p[1]]
            })
            .collect(),
        labels: spleen.labels.take(&idx),
        libraries: None,
    };
    let opts = Options {
        kind: Kind::Knn { k: 6 },
        percentile: None,
    };
    let (g, gsecs) = time(|| graph::build(&big.coords, None, &opts));
    let g = g.map_err(bad)?;
    eprintln!(
        "{n} cells: kNN graph ({} edges) in {gsecs:.2} s",
        g.n_edges()
    );
    let (e, secs) = time(|| nhood::enrichment(&g, &big.labels, None, a.perms, 0, |_| {}));
    e.map_err(bad)?;
    let theirs = nhood_rate * g.n_edges() as f64 * a.perms as f64;
    rows.push(Row {
        task: format!(
            "nhood_enrichment {} perms, knn6 (CODEX spleen tiled)",
            a.perms
        ),
        cells: n,
        edges: g.n_edges(),
        seconds: secs,
        squidpy_s: theirs,
        squidpy_measured: false,
        speedup: theirs / secs,
    });
    let (secs, pairs) = cooccur(&big)?;
    let theirs = cooc_rate * pairs;
    rows.push(Row {
        task: "co_occurrence, 50 intervals (CODEX spleen tiled)".into(),
        cells: n,
        edges: 0,
        seconds: secs,
        squidpy_s: theirs,
        squidpy_measured: false,
        speedup: theirs / secs,
    });
    // The tasks' peak, before the tree comparison holds every neighbour list twice.
    let peak = crate::rss::status_kib("VmHWM:");
    let trees = kdtrees(&big.coords, &g);
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({"tasks": rows, "kdtree": trees}))
                .expect("rows serialise")
        );
        return Ok(());
    }
    println!(
        "{:<62} {:>7} {:>8} {:>9} {:>10} {:>8}",
        "task", "cells", "edges", "tessera s", "squidpy s", "speedup"
    );
    for r in &rows {
        println!(
            "{:<62} {:>7} {:>8} {:>9.3} {:>9.3}{} {:>7.1}x",
            r.task,
            r.cells,
            r.edges,
            r.seconds,
            r.squidpy_s,
            if r.squidpy_measured { " " } else { "*" },
            r.speedup
        );
    }
    println!("* squidpy's time extrapolated from its recorded rate on the largest reference set (edges x perms; cell pairs)");
    println!(
        "\n{:<34} {:>7} {:>13} {:>9} {:>8} {:>16}",
        "k-d tree: build + every query",
        "cells",
        "hand-written s",
        "kiddo s",
        "ratio",
        "rows that differ"
    );
    for t in &trees {
        println!(
            "{:<34} {:>7} {:>13.3} {:>9.3} {:>7.2}x {:>16}",
            t.task,
            t.cells,
            t.ours_s,
            t.kiddo_s,
            t.kiddo_s / t.ours_s,
            t.rows_differ
        );
    }
    if let Some(kib) = peak {
        println!("peak memory of the tasks: {:.0} MiB", kib as f64 / 1024.0);
    }
    Ok(())
}

#[derive(Serialize)]
pub struct TreeRow {
    pub task: String,
    pub cells: usize,
    pub ours_s: f64,
    pub kiddo_s: f64,
    /// Points whose neighbour list differs from the hand-written tree's.
    pub rows_differ: usize,
}

/// The hand-written k-d tree against kiddo's immutable tree on the same
/// points: kNN (k = 6, self excluded) and radius queries (the kNN graph's
/// mean edge length, about six neighbours), timed with the build. A row
/// differs when its (neighbour, distance) list is not the same; kiddo
/// breaks distance ties in its own order, squidpy (and this tree) by index.
fn kdtrees(coords: &[[f64; 2]], g: &graph::Graph) -> Vec<TreeRow> {
    use kiddo::immutable::float::kdtree::ImmutableKdTree;
    use kiddo::SquaredEuclidean;
    use std::num::NonZero;
    use tessera_core::spatial::kdtree::KdTree;
    type Kiddo = ImmutableKdTree<f64, u32, 2, 32>;
    let k = 6;
    let r = g.distances.iter().sum::<f64>() / g.n_edges().max(1) as f64;
    let (ours_knn, ours_knn_s) = time(|| {
        let t = KdTree::new(coords);
        (0..coords.len())
            .map(|i| t.nearest(coords[i], k, Some(i)))
            .collect::<Vec<_>>()
    });
    let (kiddo_knn, kiddo_knn_s) = time(|| {
        let t = Kiddo::new_from_slice(coords);
        (0..coords.len())
            .map(|i| {
                // One more for the point itself, which is left out.
                t.nearest_n::<SquaredEuclidean>(&coords[i], NonZero::new(k + 1).expect("k > 0"))
                    .into_iter()
                    .filter(|n| n.item as usize != i)
                    .take(k)
                    .map(|n| (n.item as usize, n.distance.sqrt()))
                    .collect::<Vec<_>>()
            })
            .collect::<Vec<_>>()
    });
    let (ours_r, ours_r_s) = time(|| {
        let t = KdTree::new(coords);
        (0..coords.len())
            .map(|i| t.within(coords[i], r))
            .collect::<Vec<_>>()
    });
    let (kiddo_r, kiddo_r_s) = time(|| {
        let t = Kiddo::new_from_slice(coords);
        (0..coords.len())
            .map(|i| {
                let mut v: Vec<(usize, f64)> = t
                    .within_unsorted::<SquaredEuclidean>(&coords[i], r * r)
                    .into_iter()
                    .map(|n| (n.item as usize, n.distance.sqrt()))
                    .collect();
                v.sort_unstable_by_key(|p| p.0);
                v
            })
            .collect::<Vec<_>>()
    });
    let differ = |a: &[Vec<(usize, f64)>], b: &[Vec<(usize, f64)>]| {
        a.iter().zip(b).filter(|(x, y)| x != y).count()
    };
    vec![
        TreeRow {
            task: format!("kNN, k = {k}"),
            cells: coords.len(),
            ours_s: ours_knn_s,
            kiddo_s: kiddo_knn_s,
            rows_differ: differ(&ours_knn, &kiddo_knn),
        },
        TreeRow {
            task: format!("radius {r:.1}"),
            cells: coords.len(),
            ours_s: ours_r_s,
            kiddo_s: kiddo_r_s,
            rows_differ: differ(&ours_r, &kiddo_r),
        },
    ]
}
