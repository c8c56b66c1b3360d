//! squidpy 1.8.2 equivalence on every set in $TESSERA_DATA/ref/squidpy:
//! neighbour graphs (same edges and distances), interaction and
//! enrichment counts (identical), enrichment z-scores (within 0.1; the
//! shuffles replay numpy's stream, so they agree far closer), co-occurrence
//! (within 1e-4) and centrality scores.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use tessera_core::io::{self, npz, FileSet, TableOptions};
use tessera_core::spatial::{centrality, cooccurrence, graph, nhood, Kind, Labels, Options};

struct Set {
    name: &'static str,
    file: &'static str,
    labels: &'static str,
    library: Option<&'static str>,
    radius: Option<(&'static str, f64)>,
}

const SETS: [Set; 3] = [
    Set {
        name: "seqfish_cortex",
        file: "seqfish_cortex_tasic/derived/seqfish_spatial.h5ad",
        labels: "cell_type",
        library: None,
        radius: Some(("radius100", 100.0)),
    },
    Set {
        name: "mibi_tnbc_ark",
        file: "mibi_tnbc_ark/derived/mibi_tnbc.h5ad",
        labels: "cell_type",
        library: Some("SampleID"),
        radius: Some(("radius50", 50.0)),
    },
    Set {
        name: "cycif_hodgkin",
        file: "cycif_hodgkin_scimap/derived/cycif_hodgkin.h5ad",
        labels: "phenotype",
        library: None,
        radius: None,
    },
];

/// A pandas CSV with an index column: (header, row names, values; empty = NaN).
fn table(path: &Path) -> (Vec<String>, Vec<String>, Vec<Vec<f64>>) {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut r = csv::ReaderBuilder::new().from_reader(text.as_bytes());
    let header: Vec<String> = r
        .headers()
        .unwrap()
        .iter()
        .skip(1)
        .map(String::from)
        .collect();
    let (mut names, mut rows) = (Vec::new(), Vec::new());
    for rec in r.records() {
        let rec = rec.unwrap();
        names.push(rec[0].to_string());
        rows.push(
            rec.iter()
                .skip(1)
                .map(|v| {
                    if v.is_empty() {
                        f64::NAN
                    } else {
                        v.parse().unwrap()
                    }
                })
                .collect(),
        );
    }
    (header, names, rows)
}

fn npy(path: &Path) -> (Vec<usize>, Vec<f64>) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    io::npy::read(&path.display().to_string(), &bytes).unwrap()
}

fn edges(g: &npz::Csr) -> BTreeMap<(usize, usize), f64> {
    let mut m = BTreeMap::new();
    for i in 0..g.shape[0] {
        for e in g.indptr[i]..g.indptr[i + 1] {
            m.insert((i, g.indices[e]), g.data[e]);
        }
    }
    m
}

struct Loaded {
    coords: Vec<[f64; 2]>,
    labels: Labels,
    libraries: Option<Vec<u32>>,
}

fn load(data: &Path, set: &Set) -> Loaded {
    let ds = io::read(
        FileSet::from_path(&data.join(set.file)).unwrap(),
        &TableOptions::default(),
    )
    .unwrap()
    .dataset;
    let xy = ds.spatial().expect("spatial coordinates");
    let coords = (0..ds.n_obs())
        .map(|i| [xy.row(i)[0], xy.row(i)[1]])
        .collect();
    let labels = Labels::from_column(set.labels, ds.obs.column(set.labels).unwrap()).unwrap();
    let libraries = set.library.map(|l| {
        Labels::from_column(l, ds.obs.column(l).unwrap())
            .unwrap()
            .codes
    });
    Loaded {
        coords,
        labels,
        libraries,
    }
}

/// A graph with the connectivities' edges and the distances' lengths.
fn from_csr(dist: &npz::Csr, conn: &npz::Csr) -> graph::Graph {
    let lengths = edges(dist);
    let mut g = graph::Graph {
        n: conn.shape[0],
        indptr: conn.indptr.clone(),
        indices: conn.indices.iter().map(|&j| j as u32).collect(),
        distances: Vec::new(),
    };
    for i in 0..g.n {
        for e in conn.indptr[i]..conn.indptr[i + 1] {
            g.distances
                .push(lengths.get(&(i, conn.indices[e])).copied().unwrap_or(0.0));
        }
    }
    g
}

fn d_coords(c: &[[f64; 2]], idx: [usize; 4]) -> [[f64; 2]; 4] {
    idx.map(|i| c[i])
}

/// Whether four points lie on one circle (exact for integer coordinates).
fn cocircular(p: &[[f64; 2]; 4]) -> bool {
    let [a, b, c, d] = p.map(|q| [q[0] - p[3][0], q[1] - p[3][1]]);
    let _ = d;
    let sq = |q: [f64; 2]| q[0] * q[0] + q[1] * q[1];
    let det = a[0] * (b[1] * sq(c) - sq(b) * c[1]) - a[1] * (b[0] * sq(c) - sq(b) * c[0])
        + sq(a) * (b[0] * c[1] - b[1] * c[0]);
    det == 0.0
}

fn close(what: &str, got: &[f64], want: &[f64], tol: f64) -> f64 {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    let mut worst = 0.0f64;
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        if w.is_nan() || g.is_nan() {
            assert!(w.is_nan() && g.is_nan(), "{what}[{i}]: {g} vs {w}");
            continue;
        }
        let d = if g == w { 0.0 } else { (g - w).abs() };
        assert!(d <= tol, "{what}[{i}]: {g} vs {w}");
        worst = worst.max(d);
    }
    worst
}

fn check_set(data: &Path, set: &Set) {
    let dir = data.join("ref/squidpy").join(set.name);
    let d = load(data, set);
    let n = d.coords.len();
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    let cats: Vec<String> = serde_json::from_value(summary["categories"].clone()).unwrap();
    assert_eq!(d.labels.categories, cats, "{}: categories", set.name);
    let mut graphs = vec![("knn6", Kind::Knn { k: 6 }), ("delaunay", Kind::Delaunay)];
    if let Some((name, r)) = set.radius {
        graphs.push((name, Kind::Radius { r }));
    }
    let k = cats.len();
    for (gname, kind) in graphs {
        let what = format!("{}/{gname}", set.name);
        let opts = Options {
            kind,
            percentile: None,
        };
        let g = graph::build(&d.coords, d.libraries.as_deref(), &opts).unwrap();
        let read = |f: &str| {
            let p = dir.join(format!("{gname}_{f}.npz"));
            npz::read_csr(&p.display().to_string(), &std::fs::read(&p).unwrap()).unwrap()
        };
        let (want_conn, want_dist) = (edges(&read("connectivities")), edges(&read("distances")));
        let got = edges(&g.distances_csr());
        let missing: Vec<_> = want_conn
            .keys()
            .filter(|e| !got.contains_key(e))
            .map(|e| (e, want_dist[e]))
            .collect();
        let extra: Vec<_> = got
            .iter()
            .filter(|(e, _)| !want_conn.contains_key(e))
            .collect();
        // Integer pixel coordinates (MIBI) tie at the k-th distance; sklearn's
        // kd-tree keeps whichever tied point it visits first, this tree the
        // lower index. Every other edge must be identical, and each swapped
        // edge must be replaced in the same row by one exactly as long.
        assert_eq!(
            missing.len(),
            extra.len(),
            "{what}: missing {missing:?}, extra {extra:?}"
        );
        let mut swaps: Vec<((usize, usize), f64)> = extra.iter().map(|(e, &d)| (**e, d)).collect();
        for ((i, j), len) in &missing {
            let at = match kind {
                Kind::Knn { .. } => swaps.iter().position(|s| s.0 .0 == *i && s.1 == *len),
                // Four cocircular points have two Delaunay triangulations:
                // the flipped diagonal must close a quadrilateral on one circle.
                Kind::Delaunay => swaps
                    .iter()
                    .position(|s| cocircular(&d_coords(&d.coords, [*i, *j, s.0 .0, s.0 .1]))),
                _ => None,
            };
            let at = at.unwrap_or_else(|| {
                panic!("{what}: squidpy's edge {i}->{j} (length {len}) has no tied replacement; extra {extra:?}")
            });
            swaps.swap_remove(at);
        }
        if !missing.is_empty() {
            eprintln!(
                "{what}: {} of {} edges differ, all at ties (equal k-th distances, cocircular points)",
                missing.len(),
                got.len()
            );
        }
        // The statistics are compared on squidpy's own graph where ties differ.
        let g = if missing.is_empty() {
            g
        } else {
            from_csr(&read("distances"), &read("connectivities"))
        };
        for (e, &dist) in got.iter().filter(|(e, _)| want_conn.contains_key(e)) {
            let w = want_dist.get(e).copied().unwrap_or(0.0);
            assert!(
                (dist - w).abs() <= 1e-6 * w.max(1.0),
                "{what}: distance of {e:?}: {dist} vs {w}"
            );
        }
        let flat = |rows: Vec<Vec<f64>>| rows.into_iter().flatten().collect::<Vec<f64>>();
        let im = nhood::interaction_matrix(&g, &d.labels);
        let (_, _, want_im) = table(&dir.join(format!("{gname}_interaction_matrix.csv")));
        close(&format!("{what} interaction"), &im, &flat(want_im), 0.0);
        let e = nhood::enrichment(&g, &d.labels, None, 1000, 0, |_| {}).unwrap();
        let (_, _, want_count) = table(&dir.join(format!("{gname}_nhood_enrichment_count.csv")));
        close(&format!("{what} count"), &e.count, &flat(want_count), 0.0);
        let (_, _, want_z) = table(&dir.join(format!("{gname}_nhood_enrichment_zscore.csv")));
        let worst = close(&format!("{what} zscore"), &e.zscore, &flat(want_z), 0.1);
        eprintln!(
            "{what}: statistics on {} edges: counts identical, z-scores within {worst:.2e}",
            got.len()
        );
        assert_eq!(e.zscore.len(), k * k);
        let _ = n;
    }
    // Co-occurrence: per library (FOV) when the set has them, as the reference.
    let runs: Vec<(String, Vec<usize>)> = match &d.libraries {
        None => vec![(String::new(), (0..n).collect())],
        Some(libs) => {
            let ds = io::read(
                FileSet::from_path(&data.join(set.file)).unwrap(),
                &TableOptions::default(),
            )
            .unwrap()
            .dataset;
            let lib =
                Labels::from_column("", ds.obs.column(set.library.unwrap()).unwrap()).unwrap();
            lib.categories
                .iter()
                .enumerate()
                .map(|(c, name)| {
                    (
                        format!("_{name}"),
                        (0..n).filter(|&i| libs[i] == c as u32).collect(),
                    )
                })
                .collect()
        }
    };
    for (tag, rows) in runs {
        let coords: Vec<[f64; 2]> = rows.iter().map(|&i| d.coords[i]).collect();
        let labels = d.labels.take(&rows);
        let co = cooccurrence::co_occurrence(&coords, &labels, 50).unwrap();
        let (_, want_int) = npy(&dir.join(format!("co_occurrence{tag}_interval.npy")));
        let got_int: Vec<f64> = co.interval.iter().map(|&v| v as f64).collect();
        close(
            &format!("{}{tag} interval", set.name),
            &got_int,
            &want_int,
            0.0,
        );
        let (shape, want_occ) = npy(&dir.join(format!("co_occurrence{tag}_occ.npy")));
        assert_eq!(shape, vec![labels.n_types(), labels.n_types(), 49]);
        let worst = close(&format!("{}{tag} occ", set.name), &co.occ, &want_occ, 1e-4);
        eprintln!("{}{tag}: co-occurrence within {worst:.2e}", set.name);
    }
    // Centrality on squidpy's Delaunay graph (MIBI's has cocircular flips).
    let read = |f: &str| {
        let p = dir.join(format!("delaunay_{f}.npz"));
        npz::read_csr(&p.display().to_string(), &std::fs::read(&p).unwrap()).unwrap()
    };
    let g = from_csr(&read("distances"), &read("connectivities"));
    let s = centrality::scores(&g, &d.labels);
    let (header, names, want) = table(&dir.join("delaunay_centrality_scores.csv"));
    assert_eq!(header, centrality::COLUMNS);
    assert_eq!(names, cats);
    let got: Vec<f64> = s.iter().flatten().copied().collect();
    let worst = close(
        &format!("{} centrality", set.name),
        &got,
        &want.concat(),
        1e-9,
    );
    eprintln!("{}: centrality within {worst:.2e}", set.name);
}

#[test]
fn seqfish_cortex_matches_squidpy() {
    if let Some(data) = common::data_dir("seqfish_cortex_matches_squidpy") {
        check_set(&data, &SETS[0]);
    }
}

#[test]
fn mibi_tnbc_matches_squidpy() {
    if let Some(data) = common::data_dir("mibi_tnbc_matches_squidpy") {
        check_set(&data, &SETS[1]);
    }
}

#[test]
fn cycif_hodgkin_matches_squidpy() {
    if let Some(data) = common::data_dir("cycif_hodgkin_matches_squidpy") {
        check_set(&data, &SETS[2]);
    }
}

#[allow(clippy::excessive_precision)] // squidpy's printed digits, kept as printed
/// Moran's I and Geary's C on the seqFISH kNN graph (analytic p-values)
/// against the table squidpy 1.8.2 printed for the same five genes
/// (`spatial_autocorr(genes=var_names[:5])`, run once in a scratch venv;
/// its ref folder holds no autocorrelation run).
#[test]
fn seqfish_autocorrelation_matches_squidpy() {
    use tessera_core::spatial::autocorr::{self, Mode};
    let Some(data) = common::data_dir("seqfish_autocorrelation_matches_squidpy") else {
        return;
    };
    let ds = io::read(
        FileSet::from_path(&data.join(SETS[0].file)).unwrap(),
        &TableOptions::default(),
    )
    .unwrap()
    .dataset;
    let xy = ds.spatial().unwrap();
    let coords: Vec<[f64; 2]> = (0..ds.n_obs())
        .map(|i| [xy.row(i)[0], xy.row(i)[1]])
        .collect();
    let g = graph::build(&coords, None, &Options::default()).unwrap();
    let x = ds.x.as_ref().unwrap();
    let features: Vec<(String, Vec<f64>)> = (0..5)
        .map(|c| {
            let col = x.columns_dense(&[c]);
            (
                ds.var.index[c].clone(),
                col.iter().map(|&v| v as f64).collect(),
            )
        })
        .collect();
    // name, statistic, pval_norm, var_norm, pval_norm_fdr_bh (squidpy's order).
    let moran = [
        (
            "acta2",
            0.32543184150119775,
            0.0,
            0.00018989275849889964,
            0.0,
        ),
        (
            "abca15",
            0.075352486942940916,
            1.7572743704619143e-08,
            0.00018989275849889964,
            4.3931859261547856e-08,
        ),
        (
            "aldh3b2",
            0.059564918934251587,
            6.269984627160774e-06,
            0.00018989275849889964,
            1.044997437860129e-05,
        ),
        (
            "adcy4",
            0.04478514853698104,
            0.00049133448950122727,
            0.00018989275849889964,
            0.00061416811187653408,
        ),
        (
            "abca9",
            0.029120578130756383,
            0.015436956940447999,
            0.00018989275849889964,
            0.015436956940447999,
        ),
    ];
    let geary = [
        (
            "acta2",
            0.6690341757525744,
            1.1518017122892067e-112,
            0.0002158709685318172,
            5.7590085614460329e-112,
        ),
        (
            "aldh3b2",
            0.92347500269939253,
            9.5226394982600248e-08,
            0.0002158709685318172,
            2.3806598745650061e-07,
        ),
        (
            "abca15",
            0.92918395202022208,
            7.1828889886928898e-07,
            0.0002158709685318172,
            1.1971481647821483e-06,
        ),
        (
            "adcy4",
            0.95318121929659105,
            0.00071986187906163384,
            0.0002158709685318172,
            0.0008998273488270423,
        ),
        (
            "abca9",
            0.97324264286458062,
            0.03429190600845889,
            0.0002158709685318172,
            0.03429190600845889,
        ),
    ];
    let rel = |a: f64, b: f64, tol: f64| a == b || (a - b).abs() <= tol * b.abs().max(1e-300);
    for (mode, want) in [(Mode::Moran, moran), (Mode::Geary, geary)] {
        let opts = autocorr::Options {
            mode,
            ..Default::default()
        };
        let rows = autocorr::run(&g, &features, &opts, |_| {}).unwrap();
        for (r, w) in rows.iter().zip(want) {
            assert_eq!(r.name, w.0, "{mode:?}: order");
            // squidpy row-normalises in float32: ~1e-7 relative.
            assert!(
                rel(r.score, w.1, 1e-6),
                "{mode:?} {}: {} vs {}",
                w.0,
                r.score,
                w.1
            );
            assert!(
                rel(r.var_norm, w.3, 1e-6),
                "{mode:?} {}: var {} vs {}",
                w.0,
                r.var_norm,
                w.3
            );
            assert!(
                rel(r.pval_norm, w.2, 1e-3),
                "{mode:?} {}: p {} vs {}",
                w.0,
                r.pval_norm,
                w.2
            );
            assert!(
                rel(r.pval_norm_fdr_bh, w.4, 1e-3),
                "{mode:?} {}: fdr {} vs {}",
                w.0,
                r.pval_norm_fdr_bh,
                w.4
            );
        }
    }
}

/// Within-library shuffles (`nhood_enrichment(library_key='SampleID')`) on
/// MIBI's radius-50 graph: z-scores squidpy 1.8.2 printed (seed 0, 1000
/// permutations; run once in a scratch venv, the ref folder has no such run).
#[test]
fn mibi_library_shuffles_match_squidpy() {
    let Some(data) = common::data_dir("mibi_library_shuffles_match_squidpy") else {
        return;
    };
    let d = load(&data, &SETS[1]);
    let libs = d.libraries.clone().unwrap();
    let lib_labels = Labels {
        codes: libs,
        categories: vec!["1".into(), "2".into()],
    };
    let opts = Options {
        kind: Kind::Radius { r: 50.0 },
        percentile: None,
    };
    let g = graph::build(&d.coords, Some(&lib_labels.codes), &opts).unwrap();
    let e = nhood::enrichment(&g, &d.labels, Some(&lib_labels), 1000, 0, |_| {}).unwrap();
    let k = d.labels.n_types();
    let want_row0 = [
        -1.388307797730054,
        0.6783774929385598,
        -0.7489468346710039,
        0.770762441845491,
        -0.8600528757115156,
        1.3489011825833641,
    ];
    let want_row7 = [
        3.2763144173913195,
        -0.546168504210826,
        2.199876756190476,
        0.22419327498693703,
        0.6961222551289099,
        1.9967605273098326,
    ];
    close("library z row 0", &e.zscore[..6], &want_row0, 1e-9);
    close(
        "library z row 7",
        &e.zscore[7 * k + 7..7 * k + 13],
        &want_row7,
        1e-9,
    );
}

/// The browser's one-call run (graph, enrichment, centrality, files) gives
/// squidpy's counts and the same z-scores as the separate calls, and its
/// results bundle reads back whole.
#[test]
fn nhood_run_for_the_page_matches_squidpy_and_round_trips() {
    let Some(data) = common::data_dir("nhood_run_for_the_page") else {
        return;
    };
    let set = &SETS[0];
    let ds = io::read(
        FileSet::from_path(&data.join(set.file)).unwrap(),
        &TableOptions::default(),
    )
    .unwrap()
    .dataset;
    let p = tessera_core::spatial::nhood::analysis::NhoodParams {
        cluster_key: set.labels.into(),
        ..Default::default()
    };
    let mut ticks = 0;
    let r = tessera_core::spatial::nhood::analysis::results(
        "seqfish",
        &ds,
        &p,
        serde_json::Value::Null,
        |_| ticks += 1,
    )
    .unwrap();
    assert!(ticks > 0);
    let dir = data.join("ref/squidpy").join(set.name);
    let (_, _, count) = table(&dir.join("knn6_nhood_enrichment_count.csv"));
    assert_eq!(r.matrices[1].values, count.concat(), "neighbour counts");
    let l = load(&data, set);
    let g = graph::build(&l.coords, None, &Options::default()).unwrap();
    let e = nhood::enrichment(&g, &l.labels, None, 1000, 0, |_| {}).unwrap();
    assert_eq!(r.matrices[0].values, e.zscore);
    assert_eq!(r.layers[0].columns, l.labels.categories);
    assert_eq!(r.n_points(), ds.n_obs());
    let csv = String::from_utf8(r.file("nhood_enrichment_zscore.csv").unwrap().to_vec()).unwrap();
    assert_eq!(
        csv,
        tessera_core::spatial::square_csv(&l.labels.categories, &e.zscore)
    );
    let bytes = tessera_core::bundle::write(&r).unwrap();
    assert_eq!(tessera_core::bundle::read("b.zip", &bytes).unwrap(), r);
    // A missing cluster key names the columns there are.
    let bad = tessera_core::spatial::nhood::analysis::NhoodParams {
        cluster_key: "nope".into(),
        ..Default::default()
    };
    let err = tessera_core::spatial::nhood::analysis::results(
        "seqfish",
        &ds,
        &bad,
        serde_json::Value::Null,
        |_| {},
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("obs/nope") && err.contains(set.labels),
        "{err}"
    );
}

fn seqfish(data: &Path) -> tessera_core::data::Dataset {
    io::read(
        FileSet::from_path(&data.join(SETS[0].file)).unwrap(),
        &TableOptions::default(),
    )
    .unwrap()
    .dataset
}

/// Reads an AnnData the page offers for download.
fn h5ad(bytes: &[u8]) -> tessera_core::data::Dataset {
    io::read(
        FileSet::single("out.h5ad", bytes.to_vec()),
        &TableOptions::default(),
    )
    .unwrap()
    .dataset
}

/// The page's co-occurrence: one line panel per type holding squidpy's
/// ratios, the files the command line writes, squidpy's uns key.
#[test]
fn cooccurrence_run_for_the_page_matches_squidpy() {
    use tessera_core::bundle::Plot;
    use tessera_core::data::Value;
    let Some(data) = common::data_dir("cooccurrence_run_for_the_page") else {
        return;
    };
    let ds = seqfish(&data);
    let p = tessera_core::spatial::cooccurrence::analysis::CooccurrenceParams {
        cluster_key: "cell_type".into(),
        ..Default::default()
    };
    let r = tessera_core::spatial::cooccurrence::analysis::results(
        "seqfish",
        &ds,
        &p,
        serde_json::Value::Null,
    )
    .unwrap();
    let dir = data.join("ref/squidpy/seqfish_cortex");
    let (shape, want) = npy(&dir.join("co_occurrence_occ.npy"));
    let (k, radii) = (shape[0], shape[2]);
    assert_eq!(r.matrices.len(), k);
    for (a, m) in r.matrices.iter().enumerate() {
        assert_eq!(m.plot, Plot::Lines);
        assert_eq!((m.rows.len(), m.cols.len()), (k, radii));
        let want_a = &want[a * k * radii..(a + 1) * k * radii];
        close(&m.name, &m.values, want_a, 1e-4);
    }
    let (_, interval) = npy(&dir.join("co_occurrence_interval.npy"));
    let distances: Vec<f64> = r.matrices[0]
        .cols
        .iter()
        .map(|c| c.parse().unwrap())
        .collect();
    close("distances", &distances, &interval[1..], 1e-3);
    let long = String::from_utf8(r.file("co_occurrence.csv").unwrap().to_vec()).unwrap();
    assert_eq!(long.lines().count(), 1 + k * k * radii);
    let out = h5ad(r.file("sp_co_occurrence.h5ad").unwrap());
    let Some(Value::Dict(d)) = out.uns.get("cell_type_co_occurrence") else {
        panic!(
            "uns['cell_type_co_occurrence'] missing: {:?}",
            out.uns.keys()
        );
    };
    let Some(Value::Floats { shape, data: occ }) = d.get("occ") else {
        panic!("occ missing");
    };
    assert_eq!(shape, &vec![k, k, radii]);
    close("h5ad occ", occ, &want, 1e-4);
    let bytes = tessera_core::bundle::write(&r).unwrap();
    assert_eq!(tessera_core::bundle::read("b.zip", &bytes).unwrap(), r);
    let bad =
        tessera_core::spatial::cooccurrence::analysis::CooccurrenceParams { interval: 1, ..p };
    let err = tessera_core::spatial::cooccurrence::analysis::results(
        "seqfish",
        &ds,
        &bad,
        serde_json::Value::Null,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("interval 1"), "{err}");
}

/// The page's Moran's I: squidpy's statistics on five genes, the plot
/// opening on the most autocorrelated one, the statistics in var.
#[test]
fn autocorr_run_for_the_page_matches_squidpy() {
    use tessera_core::data::Column;
    let Some(data) = common::data_dir("autocorr_run_for_the_page") else {
        return;
    };
    let ds = seqfish(&data);
    let genes: Vec<String> = ds.var.index[..5].to_vec();
    let p = tessera_core::spatial::autocorr::analysis::AutocorrParams {
        genes: genes.clone(),
        ..Default::default()
    };
    let mut seen = 0;
    let r = tessera_core::spatial::autocorr::analysis::results(
        "seqfish",
        &ds,
        &p,
        serde_json::Value::Null,
        |done, total| {
            assert_eq!(total, 5);
            seen = done;
        },
    )
    .unwrap();
    assert_eq!(seen, 5);
    // squidpy's order and values (see seqfish_autocorrelation_matches_squidpy).
    let order = ["acta2", "abca15", "aldh3b2", "adcy4", "abca9"];
    assert_eq!(r.layers[0].columns, order);
    assert_eq!(r.view["color"], "acta2");
    let m = &r.matrices[0];
    assert!(
        (m.values[0] - 0.32543184150119775).abs() < 1e-6,
        "{}",
        m.values[0]
    );
    let acta2 = ds.var.index.iter().position(|g| g == "acta2").unwrap();
    let x = ds.x.as_ref().unwrap().columns_dense(&[acta2]);
    let shown: Vec<f32> = r.layers[0].values.iter().step_by(5).copied().collect();
    assert_eq!(shown, x, "the layer holds the gene's values");
    let csv = String::from_utf8(r.file("moranI.csv").unwrap().to_vec()).unwrap();
    assert!(csv.lines().nth(1).unwrap().starts_with("acta2,"), "{csv}");
    let out = h5ad(r.file("sp_autocorr.h5ad").unwrap());
    let Some(Column::Float(i)) = out.var.column("moranI") else {
        panic!("var['moranI'] missing");
    };
    assert!((i[acta2] - 0.32543184150119775).abs() < 1e-6);
    assert_eq!(i.iter().filter(|v| v.is_finite()).count(), 5);
    let missing = tessera_core::spatial::autocorr::analysis::AutocorrParams {
        genes: vec!["NotAGene".into()],
        ..Default::default()
    };
    let err = tessera_core::spatial::autocorr::analysis::results(
        "seqfish",
        &ds,
        &missing,
        serde_json::Value::Null,
        |_, _| {},
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("NotAGene") && err.contains("var_names"),
        "{err}"
    );
}

/// The page's niches: compositions that are fractions of real neighbours,
/// a dot plot of their means, symmetric pair scores, the AnnData keys.
#[test]
fn niche_run_for_the_page_is_consistent() {
    use tessera_core::bundle::Plot;
    use tessera_core::data::{Annotation, Column};
    use tessera_core::spatial::niche;
    let Some(data) = common::data_dir("niche_run_for_the_page") else {
        return;
    };
    let ds = seqfish(&data);
    let p = tessera_core::spatial::niche::analysis::NicheParams {
        cluster_key: "cell_type".into(),
        radius: 100.0,
    };
    let r = tessera_core::spatial::niche::analysis::results(
        "seqfish",
        &ds,
        &p,
        serde_json::Value::Null,
    )
    .unwrap();
    let l = load(&data, &SETS[0]);
    let g = graph::build(
        &l.coords,
        None,
        &Options {
            kind: Kind::Radius { r: 100.0 },
            percentile: None,
        },
    )
    .unwrap();
    let ns = niche::niches(&g, &l.labels);
    let k = l.labels.n_types();
    let comp = &r.layers[0];
    assert_eq!(comp.columns, l.labels.categories);
    for (i, n) in ns.iter().enumerate() {
        let row = &comp.values[i * k..(i + 1) * k];
        let sum: f32 = row.iter().sum();
        if n.n_neighbors == 0 {
            assert_eq!(sum, 0.0);
        } else {
            assert!((sum - 1.0).abs() < 1e-5, "cell {i}: {sum}");
        }
    }
    assert_eq!(r.layers[1].name, "cell_type");
    let (coloc, dots) = (&r.matrices[0], &r.matrices[1]);
    assert_eq!(coloc.plot, Plot::Heatmap);
    for a in 0..k {
        for b in 0..k {
            let (x, y) = (coloc.values[a * k + b], coloc.values[b * k + a]);
            assert!(x == y || (x.is_nan() && y.is_nan()));
        }
    }
    let scores = niche::colocalization(&g, &l.labels);
    assert_eq!(coloc.values[0], scores[0].score);
    assert_eq!(dots.plot, Plot::Dots);
    for row in dots.values.chunks(k) {
        assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-9);
    }
    let out = h5ad(r.file("sp_niche.h5ad").unwrap());
    let Some(Column::Categorical {
        codes, categories, ..
    }) = out.obs.column("niche_type")
    else {
        panic!("obs['niche_type'] missing");
    };
    let first = ns[0].niche_type.map_or("none".to_string(), |t| {
        l.labels.categories[t as usize].clone()
    });
    assert_eq!(categories[codes[0] as usize], first);
    assert!(
        matches!(out.obsm.get("niche_composition"), Some(Annotation::Array(a)) if a.ncols() == k)
    );
    let bytes = tessera_core::bundle::write(&r).unwrap();
    assert_eq!(tessera_core::bundle::read("b.zip", &bytes).unwrap(), r);
}
