//! Leiden community detection (Traag, Waltman & van Eck 2019) with the
//! quality scanpy's `tl.leiden` optimises (leidenalg's
//! RBConfigurationVertexPartition):
//!
//! ```text
//! Q = Σ_ij (A_ij − γ k_i k_j / 2m) δ(c_i, c_j)
//! ```
//!
//! Fast local moving from a queue, refinement inside each community
//! (singletons merge into well-connected sub-communities, greedily: the
//! paper's θ → 0 limit, so one seed gives one result), aggregation of the
//! refined partition, repeated until every community is one node, and the
//! whole pass repeated until the quality stops rising (scanpy's
//! `n_iterations=-1`). Communities are numbered by size, largest first.

use std::collections::VecDeque;

use super::umap::Graph;
use crate::models::numpy_rng::LegacyNormal;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Leiden {
    pub resolution: f64,
    pub seed: u32,
}

impl Default for Leiden {
    fn default() -> Self {
        Leiden {
            resolution: 1.0,
            seed: 0,
        }
    }
}

/// A graph whose nodes carry weights (summed degrees of the original nodes).
struct Level {
    adj: Vec<Vec<(usize, f64)>>,
    node_w: Vec<f64>,
}

fn shuffled(n: usize, rng: &mut LegacyNormal) -> Vec<usize> {
    let mut v: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = ((rng.next_f64() * (i + 1) as f64) as usize).min(i);
        v.swap(i, j);
    }
    v
}

const EPS: f64 = 1e-12;

/// Moves nodes between communities while the quality rises; true if any moved.
fn move_nodes(
    l: &Level,
    part: &mut [usize],
    gamma: f64,
    two_m: f64,
    rng: &mut LegacyNormal,
) -> bool {
    let n = l.adj.len();
    let mut comm_w = vec![0.0; n];
    let mut size = vec![0usize; n];
    for v in 0..n {
        comm_w[part[v]] += l.node_w[v];
        size[part[v]] += 1;
    }
    let mut empty: Vec<usize> = (0..n).filter(|&c| size[c] == 0).collect();
    let mut queue: VecDeque<usize> = shuffled(n, rng).into();
    let mut queued = vec![true; n];
    let (mut w_to, mut touched) = (vec![0.0; n], Vec::<usize>::new());
    let mut changed = false;
    while let Some(v) = queue.pop_front() {
        queued[v] = false;
        let own = part[v];
        for &(u, w) in &l.adj[v] {
            let c = part[u];
            if w_to[c] == 0.0 {
                touched.push(c);
            }
            w_to[c] += w;
        }
        let kv = l.node_w[v];
        let mut best = own;
        let mut best_gain = w_to[own] - gamma * kv * (comm_w[own] - kv) / two_m;
        for &c in &touched {
            if c == own {
                continue;
            }
            let gain = w_to[c] - gamma * kv * comm_w[c] / two_m;
            if gain > best_gain + EPS {
                best = c;
                best_gain = gain;
            }
        }
        // An empty community (gain 0) when leaving helps and v is not alone.
        if best == own && best_gain < -EPS && size[own] > 1 {
            if let Some(&e) = empty.last() {
                best = e;
            }
        }
        for &c in &touched {
            w_to[c] = 0.0;
        }
        touched.clear();
        if best != own {
            if empty.last() == Some(&best) {
                empty.pop();
            }
            comm_w[own] -= kv;
            size[own] -= 1;
            if size[own] == 0 {
                empty.push(own);
            }
            comm_w[best] += kv;
            size[best] += 1;
            part[v] = best;
            changed = true;
            for &(u, _) in &l.adj[v] {
                if part[u] != best && !queued[u] {
                    queued[u] = true;
                    queue.push_back(u);
                }
            }
        }
    }
    changed
}

/// Splits each community into well-connected sub-communities.
fn refine(l: &Level, part: &[usize], gamma: f64, two_m: f64, rng: &mut LegacyNormal) -> Vec<usize> {
    let n = l.adj.len();
    let mut refined: Vec<usize> = (0..n).collect();
    let mut r_w = l.node_w.clone();
    let mut r_size = vec![1usize; n];
    let mut comm_w = vec![0.0; n];
    for v in 0..n {
        comm_w[part[v]] += l.node_w[v];
    }
    // Weight from each refined community to the rest of its community.
    let mut ext: Vec<f64> = (0..n)
        .map(|v| {
            l.adj[v]
                .iter()
                .filter(|&&(u, _)| part[u] == part[v])
                .map(|e| e.1)
                .sum()
        })
        .collect();
    let (mut w_to, mut touched) = (vec![0.0; n], Vec::<usize>::new());
    for v in shuffled(n, rng) {
        if r_size[refined[v]] != 1 {
            continue;
        }
        let (c, kv) = (part[v], l.node_w[v]);
        let kc = comm_w[c];
        // Only well-connected nodes move.
        if ext[v] < gamma * kv * (kc - kv) / two_m {
            continue;
        }
        for &(u, w) in &l.adj[v] {
            if part[u] != c {
                continue;
            }
            let r = refined[u];
            if w_to[r] == 0.0 {
                touched.push(r);
            }
            w_to[r] += w;
        }
        let (mut best, mut best_gain) = (refined[v], 0.0);
        for &r in &touched {
            if r == refined[v] || ext[r] < gamma * r_w[r] * (kc - r_w[r]) / two_m {
                continue;
            }
            let gain = w_to[r] - gamma * kv * r_w[r] / two_m;
            if gain > best_gain + EPS {
                best = r;
                best_gain = gain;
            }
        }
        if best != refined[v] {
            let old = refined[v];
            ext[best] += ext[old] - 2.0 * w_to[best];
            r_w[best] += kv;
            r_size[best] += 1;
            r_size[old] = 0;
            refined[v] = best;
        }
        for &r in &touched {
            w_to[r] = 0.0;
        }
        touched.clear();
    }
    refined
}

/// Renumbers labels 0.. in order of first appearance.
fn compact(labels: &[usize]) -> (Vec<usize>, usize) {
    let mut map = vec![usize::MAX; labels.iter().copied().max().map_or(0, |m| m + 1)];
    let mut next = 0;
    let out = labels
        .iter()
        .map(|&l| {
            if map[l] == usize::MAX {
                map[l] = next;
                next += 1;
            }
            map[l]
        })
        .collect();
    (out, next)
}

fn aggregate(l: &Level, groups: &[usize], n_groups: usize) -> Level {
    let mut node_w = vec![0.0; n_groups];
    let mut maps: Vec<std::collections::BTreeMap<usize, f64>> = vec![Default::default(); n_groups];
    for v in 0..l.adj.len() {
        let a = groups[v];
        node_w[a] += l.node_w[v];
        for &(u, w) in &l.adj[v] {
            let b = groups[u];
            if a != b {
                *maps[a].entry(b).or_insert(0.0) += w;
            }
        }
    }
    Level {
        adj: maps.into_iter().map(|m| m.into_iter().collect()).collect(),
        node_w,
    }
}

/// RB-configuration quality of a membership on `g`.
pub fn quality(g: &Graph, membership: &[usize], gamma: f64) -> f64 {
    let n = g.n;
    let deg: Vec<f64> = (0..n).map(|i| g.neighbours(i).map(|e| e.1).sum()).collect();
    let two_m: f64 = deg.iter().sum();
    let k = membership.iter().copied().max().map_or(0, |m| m + 1);
    let (mut inside, mut tot) = (0.0, vec![0.0; k]);
    for i in 0..n {
        tot[membership[i]] += deg[i];
        for (j, w) in g.neighbours(i) {
            if membership[j] == membership[i] {
                inside += w;
            }
        }
    }
    inside - gamma * tot.iter().map(|t| t * t).sum::<f64>() / two_m
}

/// Community of each node, 0 the largest.
pub fn leiden(g: &Graph, p: &Leiden) -> Vec<usize> {
    let n = g.n;
    if n == 0 {
        return vec![];
    }
    let base = Level {
        adj: (0..n).map(|i| g.neighbours(i).collect()).collect(),
        node_w: (0..n).map(|i| g.neighbours(i).map(|e| e.1).sum()).collect(),
    };
    let two_m: f64 = base.node_w.iter().sum();
    if two_m <= 0.0 {
        return (0..n).collect();
    }
    let gamma = p.resolution;
    let mut rng = LegacyNormal::new(p.seed);
    let mut membership: Vec<usize> = (0..n).collect();
    let mut best_q = quality(g, &membership, gamma);
    for _ in 0..20 {
        // One Leiden pass starting from the current membership.
        let mut level_of: Vec<usize> = (0..n).collect(); // original node -> level node
        let mut level = Level {
            adj: base.adj.clone(),
            node_w: base.node_w.clone(),
        };
        let mut part = membership.clone();
        loop {
            move_nodes(&level, &mut part, gamma, two_m, &mut rng);
            let (p2, n_comm) = compact(&part);
            part = p2;
            if n_comm == level.adj.len() {
                break;
            }
            let (refined, n_ref) = compact(&refine(&level, &part, gamma, two_m, &mut rng));
            let mut next_part = vec![0; n_ref];
            for v in 0..level.adj.len() {
                next_part[refined[v]] = part[v];
            }
            level = aggregate(&level, &refined, n_ref);
            for x in level_of.iter_mut() {
                *x = refined[*x];
            }
            part = next_part;
        }
        let next: Vec<usize> = level_of.iter().map(|&x| part[x]).collect();
        let q = quality(g, &next, gamma);
        if q <= best_q + 1e-10 * best_q.abs().max(1.0) {
            break;
        }
        best_q = q;
        membership = next;
    }
    // Largest community first (ties: the one holding the lower node).
    let (m, k) = compact(&membership);
    let mut size = vec![0usize; k];
    for &c in &m {
        size[c] += 1;
    }
    let mut order: Vec<usize> = (0..k).collect();
    order.sort_by(|&a, &b| size[b].cmp(&size[a]).then(a.cmp(&b)));
    let mut rank = vec![0; k];
    for (r, &c) in order.iter().enumerate() {
        rank[c] = r;
    }
    m.iter().map(|&c| rank[c]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Four cliques of `size` nodes with a ring of single bridges.
    fn planted(size: usize) -> (Graph, Vec<usize>) {
        let mut edges = vec![];
        let blocks = 4;
        for b in 0..blocks {
            for i in 0..size {
                for j in 0..size {
                    if i != j {
                        edges.push(((b * size + i) as u32, (b * size + j) as u32, 1.0));
                    }
                }
            }
            let (u, v) = ((b * size) as u32, (((b + 1) % blocks) * size + 1) as u32);
            edges.push((u, v, 1.0));
            edges.push((v, u, 1.0));
        }
        let truth = (0..blocks * size).map(|i| i / size).collect();
        (Graph::from_edges(blocks * size, edges), truth)
    }

    #[test]
    fn finds_planted_communities() {
        let (g, truth) = planted(8);
        let m = leiden(&g, &Leiden::default());
        for i in 0..truth.len() {
            for j in 0..truth.len() {
                assert_eq!(truth[i] == truth[j], m[i] == m[j], "{i} {j}: {m:?}");
            }
        }
        assert!(quality(&g, &m, 1.0) >= quality(&g, &truth, 1.0) - 1e-9);
        assert_eq!(m, leiden(&g, &Leiden::default()), "one seed, one result");
    }

    #[test]
    fn resolution_sets_the_scale() {
        let (g, _) = planted(8);
        let count = |r: f64| {
            let m = leiden(
                &g,
                &Leiden {
                    resolution: r,
                    seed: 1,
                },
            );
            m.iter().max().unwrap() + 1
        };
        assert_eq!(count(1.0), 4);
        assert!(count(0.01) < 4, "a low resolution merges");
        assert!(count(5.0) > 4, "a high resolution splits");
    }

    #[test]
    fn communities_are_connected() {
        // Leiden's guarantee: no community falls apart inside.
        let (g, _) = planted(6);
        for seed in 0..5 {
            let m = leiden(
                &g,
                &Leiden {
                    resolution: 3.0,
                    seed,
                },
            );
            let k = m.iter().max().unwrap() + 1;
            for c in 0..k {
                let nodes: Vec<usize> = (0..g.n).filter(|&v| m[v] == c).collect();
                let mut seen = vec![nodes[0]];
                let mut i = 0;
                while i < seen.len() {
                    for (u, _) in g.neighbours(seen[i]) {
                        if m[u] == c && !seen.contains(&u) {
                            seen.push(u);
                        }
                    }
                    i += 1;
                }
                assert_eq!(
                    seen.len(),
                    nodes.len(),
                    "seed {seed}: community {c} is split"
                );
            }
        }
    }
}
