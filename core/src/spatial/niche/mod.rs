//! The multi-omics method's neighbourhood summaries: each cell's niche
//! (the type fractions among its neighbours within a radius) and the
//! co-localization score of every pair of types on the radius graph.
//!
//! The preprint's score, (E_obs − E_exp) / E_exp with E_exp = n_A n_B / n,
//! ignores how many edges the graph has, so a denser graph scores every pair
//! higher. Here E_exp is the number of A–B edges expected when the labels
//! are shuffled over the same graph: |E| · 2 n_A n_B / (n (n − 1)) for
//! A ≠ B and |E| · n_A (n_A − 1) / (n (n − 1)) for A = A. The score keeps
//! the preprint's sign convention (> 0 attraction, < 0 segregation). The
//! conditional form is its code's (P(B | neighbour of A) − P(B)) /
//! sqrt(P(B) (1 − P(B))).

pub mod analysis;

use super::{Graph, Labels};

/// One cell's neighbourhood.
#[derive(Debug, Clone, PartialEq)]
pub struct Niche {
    /// Fraction of each type among the neighbours (all 0 with none).
    pub fractions: Vec<f64>,
    /// The most frequent neighbour type (the lowest code on ties); None
    /// without neighbours.
    pub niche_type: Option<u32>,
    pub n_neighbors: usize,
}

/// Niches over a radius graph (the cell itself is not its own neighbour).
pub fn niches(graph: &Graph, labels: &Labels) -> Vec<Niche> {
    let k = labels.n_types();
    (0..graph.n)
        .map(|i| {
            let nb = graph.neighbours(i);
            let mut counts = vec![0usize; k];
            for &j in nb {
                counts[labels.codes[j as usize] as usize] += 1;
            }
            let n = nb.len();
            let niche_type = (n > 0).then(|| {
                (0..k)
                    .max_by(|&a, &b| counts[a].cmp(&counts[b]).then(b.cmp(&a)))
                    .expect("k > 0") as u32
            });
            Niche {
                fractions: counts
                    .iter()
                    .map(|&c| if n == 0 { 0.0 } else { c as f64 / n as f64 })
                    .collect(),
                niche_type,
                n_neighbors: n,
            }
        })
        .collect()
}

/// `niche_composition.csv`: cell_id, niche_type, composition (the non-zero
/// fractions as `type:fraction` joined by `;`), n_neighbors.
pub fn niches_csv(ids: &[String], labels: &Labels, niches: &[Niche]) -> String {
    let mut out = String::from("cell_id,niche_type,composition,n_neighbors\n");
    for (id, n) in ids.iter().zip(niches) {
        let comp: Vec<String> = n
            .fractions
            .iter()
            .enumerate()
            .filter(|(_, &f)| f > 0.0)
            .map(|(t, f)| format!("{}:{:.4}", labels.categories[t], f))
            .collect();
        let ty = n
            .niche_type
            .map_or("none", |t| labels.categories[t as usize].as_str());
        out.push_str(&format!(
            "{},{},{},{}\n",
            crate::io::csv_field(id),
            crate::io::csv_field(ty),
            crate::io::csv_field(&comp.join(";")),
            n.n_neighbors
        ));
    }
    out
}

/// One unordered pair of types.
#[derive(Debug, Clone, PartialEq)]
pub struct PairScore {
    pub a: u32,
    pub b: u32,
    /// Undirected A–B edges.
    pub observed: f64,
    pub expected: f64,
    /// (observed − expected) / expected.
    pub score: f64,
    /// (P(B | neighbour of A) − P(B)) / sqrt(P(B)(1 − P(B))).
    pub conditional: f64,
}

/// Scores of every pair a <= b on a symmetric graph (each undirected edge
/// stored in both directions, as radius graphs are).
pub fn colocalization(graph: &Graph, labels: &Labels) -> Vec<PairScore> {
    let k = labels.n_types();
    let n = graph.n as f64;
    let counts = labels.counts();
    // Directed counts: m[a][b] = stored edges from an a cell to a b cell.
    let m = super::nhood::interaction_matrix(graph, labels);
    let undirected_edges = graph.n_edges() as f64 / 2.0;
    let mut out = Vec::new();
    for a in 0..k {
        let from_a: f64 = m[a * k..(a + 1) * k].iter().sum();
        for b in a..k {
            let (na, nb) = (counts[a] as f64, counts[b] as f64);
            let observed = if a == b {
                m[a * k + a] / 2.0
            } else {
                (m[a * k + b] + m[b * k + a]) / 2.0
            };
            let pairs = if a == b {
                na * (na - 1.0) / 2.0
            } else {
                na * nb
            };
            let expected = undirected_edges * pairs / (n * (n - 1.0) / 2.0);
            let pb = nb / n;
            let p_b_given_a = m[a * k + b] / from_a;
            out.push(PairScore {
                a: a as u32,
                b: b as u32,
                observed,
                expected,
                score: (observed - expected) / expected,
                conditional: (p_b_given_a - pb) / (pb * (1.0 - pb)).sqrt(),
            });
        }
    }
    out
}

/// `co_localization.csv`: cell_type_pair (`A|B`), score, and the parts.
pub fn colocalization_csv(labels: &Labels, scores: &[PairScore]) -> String {
    let mut out =
        String::from("cell_type_pair,score,observed_edges,expected_edges,conditional_score\n");
    for s in scores {
        let pair = format!(
            "{}|{}",
            labels.categories[s.a as usize], labels.categories[s.b as usize]
        );
        out.push_str(&format!(
            "{},{},{},{},{}\n",
            crate::io::csv_field(&pair),
            super::number(s.score),
            s.observed,
            super::number(s.expected),
            super::number(s.conditional)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spatial::graph::{build, Kind, Options};

    fn two_blobs() -> (Vec<[f64; 2]>, Labels) {
        let mut pts = Vec::new();
        let mut names = Vec::new();
        for i in 0..40 {
            let (cx, name) = if i < 20 { (0.0, "A") } else { (500.0, "B") };
            pts.push([cx + (i % 5) as f64 * 10.0, (i % 20 / 5) as f64 * 10.0]);
            names.push(name.to_string());
        }
        // One B cell inside the A blob.
        pts.push([20.0, 15.0]);
        names.push("B".into());
        (pts, Labels::from_strings(&names))
    }

    #[test]
    fn niches_and_scores_follow_the_layout() {
        let (pts, labels) = two_blobs();
        let g = build(
            &pts,
            None,
            &Options {
                kind: Kind::Radius { r: 15.0 },
                percentile: None,
            },
        )
        .unwrap();
        let ns = niches(&g, &labels);
        // The stray B cell sits among A cells.
        assert_eq!(ns[40].niche_type, Some(0));
        assert!(ns[40].fractions[0] == 1.0 && ns[40].n_neighbors > 0);
        let sum: f64 = ns[3].fractions.iter().sum();
        assert!((sum - 1.0).abs() < 1e-12);
        let s = colocalization(&g, &labels);
        assert_eq!(s.len(), 3);
        let (aa, ab, bb) = (&s[0], &s[1], &s[2]);
        assert!(aa.score > 0.0 && bb.score > 0.0 && ab.score < 0.0);
        assert!(ab.conditional < 0.0 && aa.conditional > 0.0);
        // Expected edges add up to all edges.
        let total: f64 = s.iter().map(|p| p.expected).sum();
        assert!((total - g.n_edges() as f64 / 2.0).abs() < 1e-9);
        let csv = colocalization_csv(&labels, &s);
        assert!(csv.lines().nth(2).unwrap().starts_with("A|B,"));
    }
}
