//! Neighbourhood enrichment (squidpy's `nhood_enrichment`) and the
//! cluster interaction matrix. Both count graph edges by the labels at
//! their two ends; enrichment compares the counts with those under
//! shuffled labels. The shuffles replay numpy's `RandomState(seed)`
//! stream, so a seed gives squidpy's exact permutations.

pub mod analysis;

use super::{Graph, Labels};
use crate::models::numpy_rng::LegacyNormal;

/// Edges from a cell of type a to a cell of type b, row-major k x k.
pub fn interaction_matrix(graph: &Graph, labels: &Labels) -> Vec<f64> {
    count(graph, &labels.codes, labels.n_types())
        .into_iter()
        .map(f64::from)
        .collect()
}

fn count(graph: &Graph, codes: &[u32], k: usize) -> Vec<u32> {
    let small: Vec<u16> = codes.iter().map(|&c| c as u16).collect();
    count_fast(graph, &small, k)
}

/// The edge count with 16-bit labels (cache-resident for 10⁵ cells) and
/// two alternating tables, so runs of same-type edges do not wait on one
/// counter.
fn count_fast(graph: &Graph, codes: &[u16], k: usize) -> Vec<u32> {
    let kk = k * k;
    let mut m = vec![0u32; 2 * kk];
    let (ptr, idx) = (&graph.indptr, &graph.indices);
    for i in 0..graph.n {
        let row = codes[i] as usize * k;
        let nb = &idx[ptr[i]..ptr[i + 1]];
        let mut pairs = nb.chunks_exact(2);
        for p in &mut pairs {
            m[row + codes[p[0] as usize] as usize] += 1;
            m[kk + row + codes[p[1] as usize] as usize] += 1;
        }
        for &j in pairs.remainder() {
            m[row + codes[j as usize] as usize] += 1;
        }
    }
    let (a, b) = m.split_at(kk);
    a.iter().zip(b).map(|(x, y)| x + y).collect()
}

#[derive(Debug, Clone, PartialEq)]
pub struct Enrichment {
    /// (observed − permutation mean) / permutation std (population), k x k.
    pub zscore: Vec<f64>,
    /// Observed edge counts, k x k.
    pub count: Vec<f64>,
}

/// Counts on the renumbered graph of labels given in the original order.
fn count_ordered(
    graph: &Graph,
    order: &[u32],
    codes: &[u16],
    local: &mut [u16],
    k: usize,
) -> Vec<u32> {
    for (l, &o) in local.iter_mut().zip(order) {
        *l = codes[o as usize];
    }
    count_fast(graph, local, k)
}

/// The graph with cells numbered in breadth-first order, and the original
/// cell at each new number.
fn renumber(graph: &Graph) -> (Graph, Vec<u32>) {
    let n = graph.n;
    let mut inv = vec![u32::MAX; n];
    let mut order = Vec::with_capacity(n);
    for root in 0..n {
        if inv[root] != u32::MAX {
            continue;
        }
        inv[root] = order.len() as u32;
        order.push(root);
        let mut head = order.len() - 1;
        while head < order.len() {
            let u = order[head];
            head += 1;
            for &v in graph.neighbours(u) {
                if inv[v as usize] == u32::MAX {
                    inv[v as usize] = order.len() as u32;
                    order.push(v as usize);
                }
            }
        }
    }
    let mut g = Graph {
        n,
        indptr: Vec::with_capacity(n + 1),
        indices: Vec::with_capacity(graph.n_edges()),
        distances: Vec::new(),
    };
    g.indptr.push(0);
    for &u in &order {
        g.indices
            .extend(graph.neighbours(u).iter().map(|&v| inv[v as usize]));
        g.indptr.push(g.indices.len());
    }
    (g, order.into_iter().map(|u| u as u32).collect())
}

/// Exact sums of the permuted counts and of their squares: the mean and
/// variance without keeping every permutation (memory O(k²), any order).
struct Moments {
    s1: Vec<u64>,
    s2: Vec<u128>,
}

impl Moments {
    fn new(len: usize) -> Moments {
        Moments {
            s1: vec![0; len],
            s2: vec![0; len],
        }
    }

    fn add(&mut self, c: &[u32]) {
        for ((a, b), &v) in self.s1.iter_mut().zip(&mut self.s2).zip(c) {
            *a += v as u64;
            *b += (v as u128) * (v as u128);
        }
    }

    /// Mean and population variance of entry `c` over `n` permutations.
    fn mean_var(&self, c: usize, n: usize) -> (f64, f64) {
        let (s1, s2, n) = (self.s1[c] as u128, self.s2[c], n as u128);
        let spread = n * s2 - s1 * s1;
        let nf = n as f64;
        (s1 as f64 / nf, spread as f64 / (nf * nf))
    }
}

/// The moments of the counts under `n_perms` label draws.
/// Natively the draws (serial: one random stream) overlap with the
/// counting, which the other threads share.
fn permuted_counts(
    graph: &Graph,
    order: &[u32],
    k: usize,
    n_perms: usize,
    draw: &mut dyn FnMut(&mut [u16]),
    mut done: impl FnMut(usize),
) -> Moments {
    let kk = k * k;
    let mut perms = Moments::new(kk);
    let threads = crate::compute::cpu::threads();
    #[cfg(not(target_arch = "wasm32"))]
    if threads > 1 && graph.n_edges() >= 4_000 {
        use std::sync::{mpsc, Mutex};
        let (jobs, queue) = mpsc::sync_channel::<Vec<u16>>(2 * threads);
        let queue = Mutex::new(queue);
        let (results, collected) = mpsc::channel::<Vec<u32>>();
        // Label buffers go back to the drawing thread (no allocation per draw).
        let (spare_tx, spare) = mpsc::channel::<Vec<u16>>();
        // Small graphs send several draws per message: one wake-up per batch.
        let batch = (65_536 / graph.n.max(1)).clamp(1, 32);
        std::thread::scope(|s| {
            // The caller's thread draws; the others count.
            for _ in 0..threads - 1 {
                let (queue, results, spare_tx) = (&queue, results.clone(), spare_tx.clone());
                s.spawn(move || {
                    let mut local = vec![0u16; graph.n];
                    loop {
                        let job = queue.lock().expect("queue").recv();
                        let Ok(codes) = job else { break };
                        let mut c = Vec::with_capacity(codes.len() / graph.n * kk);
                        for draw in codes.chunks_exact(graph.n) {
                            c.extend(count_ordered(graph, order, draw, &mut local, k));
                        }
                        let _ = spare_tx.send(codes);
                        if results.send(c).is_err() {
                            break;
                        }
                    }
                });
            }
            drop(results);
            let (mut own, mut local) = (vec![0u16; graph.n], vec![0u16; graph.n]);
            // When the counters are behind, the drawing thread counts too.
            let mut p0 = 0;
            while p0 < n_perms {
                let b = batch.min(n_perms - p0);
                let mut buf = spare.try_recv().unwrap_or_default();
                buf.resize(b * graph.n, 0);
                for slot in buf.chunks_exact_mut(graph.n) {
                    draw(&mut own);
                    slot.copy_from_slice(&own);
                }
                match jobs.try_send(buf) {
                    Ok(()) => {}
                    Err(mpsc::TrySendError::Full(codes)) => {
                        for draw in codes.chunks_exact(graph.n) {
                            perms.add(&count_ordered(graph, order, draw, &mut local, k));
                        }
                    }
                    Err(mpsc::TrySendError::Disconnected(_)) => {
                        panic!("counting threads ended early")
                    }
                }
                p0 += b;
                done(p0);
            }
            drop(jobs);
            for c in collected {
                for one in c.chunks_exact(kk) {
                    perms.add(one);
                }
            }
        });
        return perms;
    }
    let _ = threads;
    let (mut codes, mut local) = (vec![0u16; graph.n], vec![0u16; graph.n]);
    for p in 0..n_perms {
        draw(&mut codes);
        let c = count_ordered(graph, order, &codes, &mut local, k);
        perms.add(&c);
        done(p + 1);
    }
    perms
}

/// `n_perms` label shuffles (cumulative, on one copy of the labels, as
/// squidpy does with one job) from `RandomState(seed)`; with `libraries`
/// the labels are shuffled within each library, libraries in category
/// order. `progress` gets the number of permutations done.
pub fn enrichment(
    graph: &Graph,
    labels: &Labels,
    libraries: Option<&Labels>,
    n_perms: usize,
    seed: u32,
    mut progress: impl FnMut(usize),
) -> Result<Enrichment, String> {
    let k = labels.n_types();
    if labels.codes.len() != graph.n {
        return Err(format!(
            "{} labels for a graph of {} cells",
            labels.codes.len(),
            graph.n
        ));
    }
    if n_perms < 2 {
        return Err(format!(
            "n_perms must be at least 2 (a standard deviation needs two permutations), got {n_perms}"
        ));
    }
    let groups: Vec<Vec<usize>> = match libraries {
        Some(lib) if lib.codes.len() != graph.n => {
            return Err(format!(
                "{} library labels for {} cells",
                lib.codes.len(),
                graph.n
            ))
        }
        Some(lib) => (0..lib.n_types() as u32)
            .map(|c| (0..graph.n).filter(|&i| lib.codes[i] == c).collect())
            .collect(),
        None => Vec::new(),
    };
    if k > u16::MAX as usize {
        return Err(format!("{k} cell types; at most 65,535 are supported"));
    }
    let observed = count(graph, &labels.codes, k);
    // Cells renumbered in breadth-first order, so a cell's neighbours sit
    // near it in memory; the draws stay in the original order (the serial
    // part) and the counting threads gather them into the new one.
    let (local, order) = renumber(graph);
    let mut rng = LegacyNormal::new(seed);
    let mut codes: Vec<u16> = labels.codes.iter().map(|&c| c as u16).collect();
    let mut draw = move |out: &mut [u16]| {
        if groups.is_empty() {
            rng.shuffle(&mut codes);
        } else {
            for idx in &groups {
                let mut part: Vec<u16> = idx.iter().map(|&i| codes[i]).collect();
                rng.shuffle(&mut part);
                for (&i, c) in idx.iter().zip(part) {
                    codes[i] = c;
                }
            }
        }
        out.copy_from_slice(&codes);
    };
    // About a hundred progress reports, whatever the batch size.
    let every = (n_perms / 100).max(1);
    let mut next = every;
    let perms = permuted_counts(&local, &order, k, n_perms, &mut draw, |p| {
        if p >= next || p == n_perms {
            progress(p);
            next = p + every;
        }
    });
    let zscore = (0..k * k)
        .map(|c| {
            let (mean, var) = perms.mean_var(c, n_perms);
            (observed[c] as f64 - mean) / var.sqrt()
        })
        .collect();
    Ok(Enrichment {
        zscore,
        count: observed.into_iter().map(f64::from).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spatial::graph::{build, Kind, Options};

    #[test]
    fn segregated_types_are_enriched_with_themselves() {
        // Two blobs of different types far apart: same-type edges only.
        let mut pts = Vec::new();
        let mut names = Vec::new();
        for i in 0..60 {
            let (cx, name) = if i < 30 { (0.0, "a") } else { (1000.0, "b") };
            pts.push([cx + (i % 6) as f64, (i / 6) as f64]);
            names.push(name.to_string());
        }
        let labels = Labels::from_strings(&names);
        let g = build(
            &pts,
            None,
            &Options {
                kind: Kind::Knn { k: 4 },
                percentile: None,
            },
        )
        .unwrap();
        let im = interaction_matrix(&g, &labels);
        assert_eq!(im, vec![120.0, 0.0, 0.0, 120.0]);
        let e = enrichment(&g, &labels, None, 200, 0, |_| {}).unwrap();
        assert_eq!(e.count, im);
        assert!(e.zscore[0] > 5.0 && e.zscore[3] > 5.0, "{:?}", e.zscore);
        assert!(e.zscore[1] < -5.0 && e.zscore[2] < -5.0, "{:?}", e.zscore);
        // The same seed replays the same permutations.
        assert_eq!(e, enrichment(&g, &labels, None, 200, 0, |_| {}).unwrap());
        assert!(enrichment(&g, &labels, None, 1, 0, |_| {}).is_err());
        // Shuffling within libraries keeps each library's label counts.
        let libs = Labels::from_strings(&(0..60).map(|i| (i % 2).to_string()).collect::<Vec<_>>());
        let e2 = enrichment(&g, &labels, Some(&libs), 200, 0, |_| {}).unwrap();
        assert_eq!(e2.count, e.count);
        assert!(e2.zscore[0] > 5.0 && e2.zscore != e.zscore);
    }
}
