//! Per-cluster centrality scores (squidpy's `centrality_scores`), on the
//! graph as an undirected, unweighted one: the group degree centrality,
//! the mean local clustering coefficient of the cluster's cells, and the
//! group closeness centrality, with networkx's definitions.

use std::collections::VecDeque;

use super::{Graph, Labels};

pub const COLUMNS: [&str; 3] = [
    "degree_centrality",
    "average_clustering",
    "closeness_centrality",
];

/// One row per category: the three scores in [`COLUMNS`] order.
pub fn scores(graph: &Graph, labels: &Labels) -> Vec<[f64; 3]> {
    let adj = undirected(graph);
    let n = graph.n;
    (0..labels.n_types() as u32)
        .map(|c| {
            let members: Vec<usize> = (0..n).filter(|&i| labels.codes[i] == c).collect();
            let inside = |v: usize| labels.codes[v] == c;
            // Degree: non-members adjacent to the group, over all non-members.
            let mut touched = vec![false; n];
            for &i in &members {
                for &j in &adj[i] {
                    touched[j as usize] = true;
                }
            }
            let outside = n - members.len();
            let reach = (0..n).filter(|&v| touched[v] && !inside(v)).count();
            let degree = reach as f64 / outside as f64;
            let clustering = members
                .iter()
                .map(|&v| local_clustering(&adj, v))
                .sum::<f64>()
                / members.len() as f64;
            // Closeness: |V − S| over the summed BFS distances from the
            // group; unreachable cells add nothing.
            let mut dist = vec![usize::MAX; n];
            let mut queue: VecDeque<usize> = members.iter().copied().collect();
            for &i in &members {
                dist[i] = 0;
            }
            let mut total = 0usize;
            while let Some(u) = queue.pop_front() {
                for &w in &adj[u] {
                    let w = w as usize;
                    if dist[w] == usize::MAX {
                        dist[w] = dist[u] + 1;
                        total += dist[w];
                        queue.push_back(w);
                    }
                }
            }
            let closeness = if total == 0 {
                0.0
            } else {
                outside as f64 / total as f64
            };
            [degree, clustering, closeness]
        })
        .collect()
}

/// Sorted neighbour lists of the symmetrised graph, without self loops.
fn undirected(graph: &Graph) -> Vec<Vec<u32>> {
    let mut adj: Vec<Vec<u32>> = vec![Vec::new(); graph.n];
    for i in 0..graph.n {
        for &j in graph.neighbours(i) {
            if j as usize != i {
                adj[i].push(j);
                adj[j as usize].push(i as u32);
            }
        }
    }
    for row in &mut adj {
        row.sort_unstable();
        row.dedup();
    }
    adj
}

/// Triangles through v over the pairs of its neighbours (0 below degree 2).
fn local_clustering(adj: &[Vec<u32>], v: usize) -> f64 {
    let nb = &adj[v];
    let d = nb.len();
    if d < 2 {
        return 0.0;
    }
    let mut links = 0usize;
    for &u in nb {
        // Neighbours of u that are also neighbours of v (sorted merge).
        let (a, b) = (&adj[u as usize], nb);
        let (mut x, mut y) = (0, 0);
        while x < a.len() && y < b.len() {
            match a[x].cmp(&b[y]) {
                std::cmp::Ordering::Less => x += 1,
                std::cmp::Ordering::Greater => y += 1,
                std::cmp::Ordering::Equal => {
                    links += 1;
                    x += 1;
                    y += 1;
                }
            }
        }
    }
    // Each triangle's edge is seen from both ends.
    links as f64 / (d * (d - 1)) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_on_a_small_graph_by_hand() {
        // Triangle 0-1-2 (type a) with a tail 2-3-4 (type b).
        let edges = [(0, 1), (1, 2), (0, 2), (2, 3), (3, 4)];
        let mut rows = vec![Vec::new(); 5];
        for (a, b) in edges {
            rows[a].push(b as u32);
        }
        let mut g = Graph {
            n: 5,
            indptr: vec![0],
            indices: vec![],
            distances: vec![],
        };
        for r in rows {
            g.distances.extend(r.iter().map(|_| 1.0));
            g.indices.extend(r);
            g.indptr.push(g.indices.len());
        }
        let labels = Labels::from_strings(&["a", "a", "a", "b", "b"].map(String::from));
        let s = scores(&g, &labels);
        // a: reaches 3 only, of 2 outsiders; clustering 1, 1, 1/3; distances 1 + 2.
        assert!((s[0][0] - 0.5).abs() < 1e-12);
        assert!((s[0][1] - (1.0 + 1.0 + 1.0 / 3.0) / 3.0).abs() < 1e-12);
        assert!((s[0][2] - 2.0 / 3.0).abs() < 1e-12);
        // b: reaches 2 only, of 3 outsiders; no triangles; distances 1 + 2 + 2.
        assert!((s[1][0] - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(s[1][1], 0.0);
        assert!((s[1][2] - 3.0 / 5.0).abs() < 1e-12);
    }
}
