//! ResolVI's data preparation on the real Xenium mouse brain set: cells
//! without counts get a named error, neighbours are the exact nearest
//! within a batch, and the priors follow scvi-tools' definitions
//! (recomputed here by brute force and plain loops).

mod common;

use tessera_core::compute::special::lgamma;
use tessera_core::data::Dataset;
use tessera_core::io;
use tessera_core::models::resolvi::prep::{self, N_NEIGHBORS};

#[test]
fn preparation_on_xenium_follows_resolvi() {
    let dir = common::data_dir("preparation_on_xenium_follows_resolvi").expect("data");
    let d = io::h5ad::read_file(&dir.join("xenium_mouse_brain_small/derived/xenium.h5ad")).unwrap();
    let x = d.x.as_ref().unwrap();
    let (n_all, g) = x.shape();
    assert_eq!((n_all, g), (36602, 248));
    // Some Xenium cells hold none of the 248 genes' transcripts.
    let sums = x.row_sums();
    let empty = sums.iter().filter(|&&s| s == 0.0).count();
    assert!(empty > 0);
    let err = prep::libraries("xenium.h5ad", "X", x, &d.obs.index)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("xenium.h5ad")
            && err.contains(&format!("{empty} of 36602 cells have no counts"))
            && err.contains("fewer than 5"),
        "{err}"
    );
    // Keep cells with at least 5 counts, as the message says.
    let keep: Vec<usize> = (0..n_all).filter(|&i| sums[i] >= 5.0).collect();
    let x = x.take_rows(&keep);
    let n = keep.len();
    let names: Vec<String> = keep.iter().map(|&i| d.obs.index[i].clone()).collect();
    let lib = prep::libraries("xenium.h5ad", "X", &x, &names).unwrap();
    let all_xy = tessera_core::spatial::inputs::coords("xenium.h5ad", &d).unwrap();
    let xy: Vec<[f64; 2]> = keep.iter().map(|&i| all_xy[i]).collect();
    // Two batches by the x coordinate's median: neighbours stay inside.
    let mut xs: Vec<f64> = xy.iter().map(|p| p[0]).collect();
    xs.sort_by(f64::total_cmp);
    let cut = xs[n / 2];
    let batch: Vec<u32> = xy.iter().map(|p| u32::from(p[0] >= cut)).collect();
    let nb =
        prep::neighbours("xenium.h5ad", &xy, &batch, &["left".into(), "right".into()]).unwrap();
    let k = N_NEIGHBORS;
    for i in (0..n).step_by(97) {
        let mut brute: Vec<(f64, usize)> = (0..n)
            .filter(|&j| j != i && batch[j] == batch[i])
            .map(|j| {
                (
                    (xy[i][0] - xy[j][0]).powi(2) + (xy[i][1] - xy[j][1]).powi(2),
                    j,
                )
            })
            .collect();
        brute.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        for (s, &(want, _)) in brute.iter().take(k).enumerate() {
            let got = nb.dist2[i * k + s] as f64;
            assert!(
                (got - want).abs() <= 1e-4 * want.max(1.0),
                "cell {i} slot {s}: {got} vs {want}"
            );
            let j = nb.index[i * k + s] as usize;
            assert!(j != i && batch[j] == batch[i]);
        }
    }
    let p = prep::priors(&x, &lib, &nb);
    // The background ratio with plain loops over the dense counts.
    let dense: Vec<f64> = (0..n * g).map(|q| x.get(q / g, q % g) as f64).collect();
    let mut totals: Vec<(f64, usize)> = (0..g)
        .map(|j| ((0..n).map(|i| dense[i * g + j]).sum(), j))
        .collect();
    totals.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let small: Vec<usize> = totals[..g / 50].iter().map(|t| t.1).collect();
    let ratio = (0..n)
        .map(|i| {
            let s: f64 = small.iter().map(|&j| dense[i * g + j]).sum::<f64>() / small.len() as f64;
            s / (lib[i] / g as f64)
        })
        .sum::<f64>()
        / n as f64;
    assert!(
        (p.background_ratio - ratio).abs() < 1e-9 * ratio.max(1.0),
        "{p:?} vs {ratio}"
    );
    assert!(
        p.background_ratio > 0.0 && p.background_ratio < 1.0,
        "{p:?}"
    );
    let mut sixth: Vec<f64> = (0..n).map(|i| nb.dist2[i * k + 5] as f64).collect();
    sixth.sort_by(f64::total_cmp);
    let med = if n % 2 == 1 {
        sixth[n / 2]
    } else {
        0.5 * (sixth[n / 2 - 1] + sixth[n / 2])
    };
    assert!(
        (p.median_distance - med).abs() < 1e-9 * med,
        "{p:?} vs {med}"
    );
    let ll: Vec<f64> = lib.iter().map(|l| l.ln_1p()).collect();
    let m = ll.iter().sum::<f64>() / n as f64;
    let sd = (ll.iter().map(|v| (v - m).powi(2)).sum::<f64>() / n as f64).sqrt();
    assert!(
        (p.std_log_counts - sd).abs() < 1e-9 && p.mean_log_counts > 2.0,
        "{p:?}"
    );
    eprintln!("xenium ({n} cells with ≥ 5 counts): {p:?}");
    // A batch too small for 10 neighbours is refused by name.
    let tiny: Vec<u32> = (0..n).map(|i| u32::from(i < 7)).collect();
    let err = prep::neighbours("xenium.h5ad", &xy, &tiny, &["big".into(), "tiny".into()])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("batch tiny has 7 cells") && err.contains("at least 11"),
        "{err}"
    );
}

fn lse(v: &[f64]) -> f64 {
    let m = v.iter().copied().fold(f64::MIN, f64::max);
    m + v.iter().map(|x| (x - m).exp()).sum::<f64>().ln()
}

/// Σ_i log p(z_i) under the mixture prior, plain loops.
fn mixture64(
    z: &[f64],
    mu: &[f64],
    u: &[f64],
    off: &[f64],
    (b, k, d): (usize, usize, usize),
    sigma: f64,
) -> Vec<f64> {
    (0..b)
        .map(|i| {
            let a: Vec<f64> = (0..k).map(|c| u[c] + off[i * k + c]).collect();
            let norm = lse(&a);
            let terms: Vec<f64> = (0..k)
                .map(|c| {
                    let d2: f64 = (0..d).map(|t| (z[i * d + t] - mu[c * d + t]).powi(2)).sum();
                    a[c] - norm
                        - d2 / (2.0 * sigma * sigma)
                        - 0.5 * d as f64 * (2.0 * std::f64::consts::PI * sigma * sigma).ln()
                })
                .collect();
            lse(&terms)
        })
        .collect()
}

fn check_mixture<D: tessera_core::compute::Device>(dev: &D) {
    use tessera_core::compute::philox;
    use tessera_core::models::resolvi::prior::{mixture_logp, Dims};
    let (b, k, d) = (6, 4, 3);
    let sigma = (-1f64).exp() + 1e-4;
    let draw = |seed: u64, n: usize, sc: f64| -> Vec<f64> {
        (0..n)
            .map(|i| sc * philox::normal(seed, 0, i) as f64)
            .collect()
    };
    let (z, mu, u) = (draw(1, b * d, 0.6), draw(2, k * d, 0.6), draw(3, k, 0.5));
    // Cells 0 and 3 labelled (component 2 and 1); the rest unlabelled.
    let mut off = vec![0.0; b * k];
    off[2] = 10.0;
    off[3 * k + 1] = 10.0;
    let up = |v: &[f64]| dev.upload(&v.iter().map(|&a| a as f32).collect::<Vec<_>>());
    let g = mixture_logp(
        dev,
        Dims { b, k, d },
        &up(&z),
        &up(&mu),
        &up(&u),
        Some(&up(&off)),
        sigma as f32,
    );
    let read = |x: &D::Buf| -> Vec<f64> {
        pollster::block_on(dev.read(x))
            .into_iter()
            .map(|v| v as f64)
            .collect()
    };
    let want = mixture64(&z, &mu, &u, &off, (b, k, d), sigma);
    for (a, w) in read(&g.logp).iter().zip(&want) {
        assert!(
            (a - w).abs() < 1e-4 * w.abs().max(1.0),
            "{}: log p {a} vs {w}",
            dev.name()
        );
    }
    let total = |z: &[f64], mu: &[f64], u: &[f64]| {
        mixture64(z, mu, u, &off, (b, k, d), sigma)
            .iter()
            .sum::<f64>()
    };
    let h = 1e-6;
    let mut checked = 0;
    for (name, grad, base) in [
        ("z", read(&g.gz), &z),
        ("mu", read(&g.gmu), &mu),
        ("u", read(&g.gu), &u),
    ] {
        for (q, &gq) in grad.iter().enumerate() {
            let at = |delta: f64| {
                let mut p = base.clone();
                p[q] += delta;
                match name {
                    "z" => total(&p, &mu, &u),
                    "mu" => total(&z, &p, &u),
                    _ => total(&z, &mu, &p),
                }
            };
            let fd = (at(h) - at(-h)) / (2.0 * h);
            assert!(
                (gq - fd).abs() < 2e-3 * fd.abs().max(0.05),
                "{}: d/d{name}[{q}] = {gq}, finite differences {fd}",
                dev.name()
            );
            checked += 1;
        }
    }
    assert_eq!(checked, b * d + k * d + k);
}

/// The mixture prior's log-density and gradients against an f64 version,
/// semi-supervised offsets included, on the CPU device and wgpu.
#[test]
fn mixture_prior_matches_finite_differences() {
    check_mixture(&tessera_core::compute::cpu::Cpu);
    let gpu = pollster::block_on(tessera_core::compute::gpu::Gpu::new())
        .expect("a wgpu adapter (lavapipe in CI)");
    check_mixture(&gpu);
}

fn dirichlet64(x: &[f64], alpha: &[f64], rows: usize, k: usize) -> Vec<f64> {
    (0..rows)
        .map(|r| {
            let a = |c: usize| {
                if alpha.len() == k {
                    alpha[c]
                } else {
                    alpha[r * k + c]
                }
            };
            let sa: f64 = (0..k).map(a).sum();
            lgamma(sa)
                + (0..k)
                    .map(|c| (a(c) - 1.0) * x[r * k + c].ln() - lgamma(a(c)))
                    .sum::<f64>()
        })
        .collect()
}

fn check_dirichlet<D: tessera_core::compute::Device>(dev: &D, shared: bool) {
    use tessera_core::compute::philox;
    use tessera_core::models::resolvi::density::dirichlet_logp;
    let (rows, k) = (5, 3);
    // Points on the simplex and concentrations from 0.3 to 12.
    let mut x: Vec<f64> = (0..rows * k)
        .map(|i| 0.2 + philox::uniform(4, 0, i) as f64)
        .collect();
    for row in x.chunks_exact_mut(k) {
        let s: f64 = row.iter().sum();
        row.iter_mut().for_each(|v| *v /= s);
    }
    let n_alpha = if shared { k } else { rows * k };
    let alpha: Vec<f64> = (0..n_alpha)
        .map(|i| 0.3 + 12.0 * philox::uniform(5, 0, i) as f64)
        .collect();
    let up = |v: &[f64]| dev.upload(&v.iter().map(|&a| a as f32).collect::<Vec<_>>());
    let g = dirichlet_logp(dev, &up(&x), &up(&alpha), rows, k);
    let read = |b: &D::Buf| -> Vec<f64> {
        pollster::block_on(dev.read(b))
            .into_iter()
            .map(|v| v as f64)
            .collect()
    };
    let want = dirichlet64(&x, &alpha, rows, k);
    for (a, w) in read(&g.logp).iter().zip(&want) {
        assert!(
            (a - w).abs() < 1e-4 * w.abs().max(1.0),
            "{}: log p {a} vs {w}",
            dev.name()
        );
    }
    let total = |x: &[f64], a: &[f64]| dirichlet64(x, a, rows, k).iter().sum::<f64>();
    let h = 1e-6;
    let fd = |f: &dyn Fn(f64) -> f64| (f(h) - f(-h)) / (2.0 * h);
    let close = |got: f64, fd: f64, what: String| {
        assert!(
            (got - fd).abs() < 2e-3 * fd.abs().max(0.05),
            "{}: d/d{what} = {got}, finite differences {fd}",
            dev.name()
        );
    };
    for (q, &gq) in read(&g.gx).iter().enumerate() {
        close(
            gq,
            fd(&|d| {
                let mut p = x.clone();
                p[q] += d;
                total(&p, &alpha)
            }),
            format!("x[{q}]"),
        );
    }
    // A shared α's gradient is the sum over rows of each row's.
    let ga = read(&g.galpha);
    for c in 0..n_alpha {
        let got = if shared {
            (0..rows).map(|r| ga[r * k + c]).sum()
        } else {
            ga[c]
        };
        close(
            got,
            fd(&|d| {
                let mut p = alpha.clone();
                p[c] += d;
                total(&x, &p)
            }),
            format!("alpha[{c}]"),
        );
    }
}

/// The Dirichlet density against an f64 version (plain loops), for
/// per-row and shared concentrations, on the CPU device and wgpu.
#[test]
fn dirichlet_matches_finite_differences() {
    for shared in [true, false] {
        check_dirichlet(&tessera_core::compute::cpu::Cpu, shared);
    }
    let gpu = pollster::block_on(tessera_core::compute::gpu::Gpu::new())
        .expect("a wgpu adapter (lavapipe in CI)");
    check_dirichlet(&gpu, false);
}

/// Tangram's MERFISH MOp cells, coordinates from obs x, y (µm).
fn merfish() -> Dataset {
    let dir = common::data_dir("merfish").expect("data");
    let d =
        io::h5ad::read_file(&dir.join("tangram_merfish_mop/test_ad_sp_readytomap.h5ad")).unwrap();
    let col = |k: &str| match d.obs.column(k) {
        Some(tessera_core::data::Column::Float(v)) => v.clone(),
        other => panic!("obs {k}: {other:?}"),
    };
    let (x, y) = (col("x_um"), col("y_um"));
    let xy: Vec<[f64; 2]> = x.iter().zip(&y).map(|(a, b)| [*a, *b]).collect();
    common::subset(&d, &(0..xy.len()).collect::<Vec<_>>(), &xy)
}

/// log1p of each row scaled to 100 counts.
fn lognorm(x: &[f64], g: usize) -> Vec<f64> {
    x.chunks_exact(g)
        .flat_map(|r| {
            let t: f64 = r.iter().sum::<f64>().max(f64::MIN_POSITIVE);
            r.iter()
                .map(move |v| (100.0 * v / t).ln_1p())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// How far an estimate of the clean counts is from them.
#[derive(Debug)]
struct Closeness {
    /// Mean over cells of Σ_g |estimate − truth|.
    abs_error: f64,
    /// Mean over cells of the Pearson correlation of normalised log
    /// expression with the truth's.
    per_cell_r: f64,
    /// Mean over genes of (level in cells the truth lacks it) / (level in
    /// the top tenth of the truth), normalised log expression.
    leakage: f64,
}

fn closeness(est: &[f64], truth: &[f64], g: usize) -> Closeness {
    let n = truth.len() / g;
    let (le, lt) = (lognorm(est, g), lognorm(truth, g));
    let abs_error = est
        .iter()
        .zip(truth)
        .map(|(e, t)| (e - t).abs())
        .sum::<f64>()
        / n as f64;
    let per_cell_r = (0..n)
        .map(|i| common::pearson(&le[i * g..(i + 1) * g], &lt[i * g..(i + 1) * g]))
        .sum::<f64>()
        / n as f64;
    let (mut total, mut genes) = (0.0, 0);
    for j in 0..g {
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|&p, &q| lt[q * g + j].total_cmp(&lt[p * g + j]));
        let top = &order[..n / 10];
        let zero: Vec<usize> = (0..n).filter(|&i| truth[i * g + j] == 0.0).collect();
        if zero.len() < n / 10 || lt[top[top.len() - 1] * g + j] == 0.0 {
            continue;
        }
        let hi = top.iter().map(|&i| le[i * g + j]).sum::<f64>() / top.len() as f64;
        let lo = zero.iter().map(|&i| le[i * g + j]).sum::<f64>() / zero.len() as f64;
        total += lo / hi;
        genes += 1;
    }
    Closeness {
        abs_error,
        per_cell_r,
        leakage: total / genes as f64,
    }
}

/// Leiden clusters of the clean counts (normalised log expression, 15
/// neighbours), as cell types for the semi-supervised test.
fn clusters(truth: &[f64], g: usize) -> Vec<String> {
    use tessera_core::embed::{knn, leiden, umap};
    let n = truth.len() / g;
    let x: Vec<f32> = lognorm(truth, g).iter().map(|&v| v as f32).collect();
    let nn = pollster::block_on(knn::knn(&tessera_core::compute::cpu::Cpu, &x, n, g, 15));
    let graph = umap::connectivities(&nn);
    leiden::leiden(
        &graph,
        &leiden::Leiden {
            resolution: 0.5,
            seed: 0,
        },
    )
    .iter()
    .map(|c| format!("type {c}"))
    .collect()
}

struct SpillRun {
    raw: Closeness,
    own: Closeness,
    corrected: Closeness,
    /// Correlation with the simulated true, diffused, background shares,
    /// and the mean true share fitted and simulated.
    fraction_r: [f64; 3],
    mean_true: (f64, f64),
    /// Held-out accuracy of the predicted labels.
    accuracy: Option<f64>,
}

/// Spill-over simulated on `d`, corrected by RESOLVI (`epochs`); with
/// `labels`, half the cells keep a label of the clean counts' clusters and
/// the other half are predicted.
fn spill_run(name: &str, d: &Dataset, epochs: usize, labels: bool) -> SpillRun {
    use tessera_core::data::Column;
    use tessera_core::models::resolvi::fit::{self, Options};
    use tessera_core::models::resolvi::model::Config;
    use tessera_core::simulate::spillover::{spillover, SpilloverSim, FRACTION_KEYS};
    let mut sim = spillover(name, d, &SpilloverSim::default())
        .unwrap()
        .dataset;
    let (n, g) = sim.x.as_ref().unwrap().shape();
    let dense = |m: &tessera_core::data::Matrix| -> Vec<f64> {
        (0..n * g).map(|q| m.get(q / g, q % g) as f64).collect()
    };
    let (raw, truth) = (dense(sim.x.as_ref().unwrap()), dense(&sim.layers["clean"]));
    let types = labels.then(|| clusters(&truth, g));
    if let Some(t) = &types {
        let shown: Vec<String> = t
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if i % 2 == 0 {
                    c.clone()
                } else {
                    "unknown".into()
                }
            })
            .collect();
        sim.obs.set("cell_type", Column::categorical_from(&shown));
    }
    let o = Options {
        batch_key: None,
        labels_key: labels.then(|| "cell_type".to_string()),
        unlabeled: "unknown".into(),
        min_counts: 0.0,
        config: Config {
            epochs,
            ..Config::default()
        },
    };
    let dev = tessera_core::compute::cpu::Cpu;
    let (f, _) = pollster::block_on(fit::fit(&dev, name, &sim, &o, &mut |_, _, _| true)).unwrap();
    let out = &f.outputs;
    let as64 = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<_>>();
    let mut fraction_r = [0.0; 3];
    let mut mean_true = (0.0, 0.0);
    for (j, key) in FRACTION_KEYS.iter().enumerate() {
        let Some(Column::Float(t)) = sim.obs.column(key) else {
            panic!("{key}")
        };
        let got: Vec<f64> = (0..n).map(|i| out.fractions[i * 3 + j] as f64).collect();
        fraction_r[j] = common::pearson(&got, t);
        if j == 0 {
            mean_true = (
                got.iter().sum::<f64>() / n as f64,
                t.iter().sum::<f64>() / n as f64,
            );
        }
    }
    let accuracy = types.map(|t| {
        let p = out.probabilities.as_ref().expect("labelled run predicts");
        let k = f.label_names.len();
        let held: Vec<usize> = (0..n).filter(|i| i % 2 == 1).collect();
        let right = held
            .iter()
            .filter(|&&i| {
                let row = &p[i * k..(i + 1) * k];
                let best = (0..k).fold(0, |b, c| if row[c] > row[b] { c } else { b });
                f.label_names[best] == t[i]
            })
            .count();
        right as f64 / held.len() as f64
    });
    SpillRun {
        raw: closeness(&raw, &truth, g),
        own: closeness(&as64(&out.own_counts), &truth, g),
        corrected: closeness(&as64(&out.corrected), &truth, g),
        fraction_r,
        mean_true,
        accuracy,
    }
}

/// The own counts beat the raw ones: 15 % less absolute error, closer
/// per-cell profiles, less leakage.
fn assert_own_closer(r: &SpillRun) {
    assert!(
        r.own.abs_error < 0.85 * r.raw.abs_error,
        "{:?} vs {:?}",
        r.own,
        r.raw
    );
    assert!(r.own.per_cell_r > r.raw.per_cell_r && r.own.leakage < r.raw.leakage);
}

fn report(name: &str, r: &SpillRun) {
    eprintln!(
        "{name}: raw {:?}\n  own counts {:?}\n  corrected (px_rate) {:?}\n  fractions r {:?}, mean true share {:.3} (simulated {:.3}), held-out label accuracy {:?}",
        r.raw, r.own, r.corrected, r.fraction_r, r.mean_true.0, r.mean_true.1, r.accuracy
    );
}

/// RESOLVI on spill-over simulated from a strip of the Xenium mouse brain
/// (4,372 cells): each cell's expected own counts are closer to the clean
/// counts than the observed ones, and the fractions follow the simulated.
#[test]
fn spillover_on_xenium_is_corrected() {
    let r = spill_run("xenium strip", &common::xenium_strip(0.08), 35, false);
    report("xenium", &r);
    assert_own_closer(&r);
    assert!(
        r.fraction_r[0] > 0.25 && r.fraction_r[1] > 0.2,
        "{:?}",
        r.fraction_r
    );
    assert!(
        (r.mean_true.0 - r.mean_true.1).abs() < 0.05,
        "{:?}",
        r.mean_true
    );
}

/// The same on Tangram's MERFISH MOp cells (2,150), semi-supervised with
/// half the cells labelled by clusters of the clean counts: the other
/// half's labels are predicted.
#[test]
fn spillover_on_merfish_is_corrected_and_labels_transfer() {
    let r = spill_run("merfish", &merfish(), 35, true);
    report("merfish", &r);
    assert_own_closer(&r);
    let acc = r.accuracy.unwrap();
    assert!(acc > 0.7, "held-out accuracy {acc}");
}

/// Missing batch values are a named error; missing labels count as
/// unlabelled; coordinates must be finite.
#[test]
fn missing_batches_labels_and_coordinates_are_handled() {
    use tessera_core::data::Column;
    use tessera_core::models::resolvi::fit::{prepare, Options};
    let mut d = merfish();
    let n = d.n_obs();
    let with_gaps: Vec<String> = (0..n)
        .map(|i| match i % 7 {
            0 => String::new(),
            1 => "b".into(),
            _ => "a".into(),
        })
        .collect();
    d.obs.set("batch", Column::categorical_from(&with_gaps));
    d.obs.set("label", Column::categorical_from(&with_gaps));
    let o = |batch: bool| Options {
        batch_key: batch.then(|| "batch".into()),
        labels_key: Some("label".into()),
        unlabeled: "unknown".into(),
        min_counts: 0.0,
        config: Default::default(),
    };
    let err = prepare("merfish", &d, &o(true)).err().unwrap().to_string();
    assert!(
        err.contains("obs['batch']")
            && err.contains(&format!("{} cells have no batch", n.div_ceil(7))),
        "{err}"
    );
    let p = prepare("merfish", &d, &o(false)).unwrap();
    assert_eq!(p.label_names, ["a", "b"]);
    let labels = p.labels.unwrap();
    assert!(labels.iter().step_by(7).all(Option::is_none) && labels[1] == Some(1));
    if let Some(tessera_core::data::Annotation::Array(a)) = d.obsm.get_mut("spatial") {
        a[[3, 0]] = f64::NAN;
    }
    let err = prepare("merfish", &d, &o(false)).err().unwrap().to_string();
    assert!(err.contains("has no finite coordinates"), "{err}");
}

/// The demo tissue, small, as RESOLVI options that fit it in seconds.
fn small_fit() -> (Dataset, tessera_core::models::resolvi::fit::Options) {
    use tessera_core::demo::{demo_pair, DemoSpec};
    use tessera_core::models::resolvi::fit::Options;
    use tessera_core::models::resolvi::model::Config;
    let (ds, _) = demo_pair(DemoSpec {
        grid: 12,
        n_genes: 40,
        ..DemoSpec::default()
    });
    let o = Options {
        batch_key: None,
        labels_key: None,
        unlabeled: "unknown".into(),
        min_counts: 0.0,
        config: Config {
            epochs: 15,
            batch_size: 64,
            ..Config::default()
        },
    };
    (ds, o)
}

/// A fit resumed from its checkpoint at epoch 10 ends where the whole fit
/// does, to the bit; another fit's checkpoint is refused.
#[test]
fn a_fit_resumed_from_its_checkpoint_ends_where_the_whole_fit_does() {
    use tessera_core::compute::cpu::Cpu;
    use tessera_core::models::checkpoint::{Checkpoint, Resume};
    use tessera_core::models::resolvi::{fit, model::Model, run};
    let (ds, o) = small_fit();
    let p = fit::prepare("demo", &ds, &o).unwrap();
    let data = p.data();
    let train = |resume: Resume| {
        let mut m = Model::new(&Cpu, o.config, &data);
        let h = pollster::block_on(run::train(&Cpu, &mut m, &data, &mut |_, _, _| true, resume));
        h.map(|h| (h, pollster::block_on(m.save(&Cpu))))
    };
    let mut kept: Vec<Checkpoint> = vec![];
    let mut keep = |c| kept.push(c);
    let (whole, want) = train(Resume::none(&mut keep)).unwrap();
    assert_eq!(kept.iter().map(|c| c.epoch).collect::<Vec<_>>(), [10]);
    let mut none = |_| {};
    let (resumed, got) = train(Resume {
        from: Some(kept[0].clone()),
        save: &mut none,
    })
    .unwrap();
    assert_eq!(resumed.loss, whole.loss);
    assert_eq!(got, want, "the weights after 15 epochs");
    let mut other = kept[0].clone();
    other.fit = other.fit.replace("g40", "g41");
    let e = train(Resume {
        from: Some(other),
        save: &mut none,
    })
    .unwrap_err();
    assert!(e.contains("another fit"), "{e}");
}

/// On a GPU asked at epoch 12 for a buffer it cannot hold (as one out of memory),
/// the fit goes on on the CPU from its checkpoint at epoch 10, says so in
/// its notes, and ends close to the CPU's own fit.
#[test]
fn a_fit_survives_losing_its_gpu() {
    use tessera_core::compute::cpu::Cpu;
    use tessera_core::compute::gpu::Gpu;
    use tessera_core::compute::Device;
    use tessera_core::models::resolvi::fit;
    let (ds, o) = small_fit();
    let (cpu, _) =
        pollster::block_on(fit::fit(&Cpu, "demo", &ds, &o, &mut |_, _, _| true)).unwrap();
    type Lose = fn(&Gpu);
    // (tests/nsf.rs destroys the device.)
    let ways: [(&str, Lose); 1] = [("cannot fit", |g| drop(g.zeros(g.max_buffer_len() + 1)))];
    for (why, lose) in ways {
        let gpu = pollster::block_on(Gpu::new()).expect("a wgpu adapter (lavapipe in CI)");
        let (f, saved) = pollster::block_on(fit::fit(&gpu, "demo", &ds, &o, &mut |e, _, _| {
            if e == 12 {
                lose(&gpu);
            }
            true
        }))
        .unwrap();
        assert!(
            gpu.lost().is_some_and(|w| w.contains(why)),
            "{:?}",
            gpu.lost()
        );
        assert!(
            f.notes
                .iter()
                .any(|n| n.contains(why) && n.contains("at epoch 10")),
            "{:?}",
            f.notes
        );
        assert_eq!(f.history.loss.len(), 15);
        assert!(saved.weights.iter().flatten().all(|w| w.is_finite()));
        let r = common::pearson(
            &f.outputs
                .fractions
                .iter()
                .map(|&v| v as f64)
                .collect::<Vec<_>>(),
            &cpu.outputs
                .fractions
                .iter()
                .map(|&v| v as f64)
                .collect::<Vec<_>>(),
        );
        eprintln!("RESOLVI on a GPU lost at epoch 12 ({why}), resumed on the CPU: fractions r = {r:.5} with the CPU's fit");
        assert!(r > 0.99, "fractions r = {r}");
    }
}
