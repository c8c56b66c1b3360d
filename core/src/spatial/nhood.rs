//! Neighbourhood enrichment (squidpy's `nhood_enrichment`) and the
//! cluster interaction matrix. Both count graph edges by the labels at
//! their two ends; enrichment compares the counts with those under
//! shuffled labels. The shuffles replay numpy's `RandomState(seed)`
//! stream, so a seed gives squidpy's exact permutations.

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
    let mut m = vec![0u32; k * k];
    for i in 0..graph.n {
        let row = codes[i] as usize * k;
        for &j in graph.neighbours(i) {
            m[row + codes[j as usize] as usize] += 1;
        }
    }
    m
}

#[derive(Debug, Clone, PartialEq)]
pub struct Enrichment {
    /// (observed − permutation mean) / permutation std (population), k x k.
    pub zscore: Vec<f64>,
    /// Observed edge counts, k x k.
    pub count: Vec<f64>,
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
    let observed = count(graph, &labels.codes, k);
    let mut perms = vec![0u32; n_perms * k * k];
    let mut rng = LegacyNormal::new(seed);
    let mut codes = labels.codes.clone();
    let every = (n_perms / 100).max(1);
    for (p, out) in perms.chunks_exact_mut(k * k).enumerate() {
        if groups.is_empty() {
            rng.shuffle(&mut codes);
        } else {
            for idx in &groups {
                let mut part: Vec<u32> = idx.iter().map(|&i| codes[i]).collect();
                rng.shuffle(&mut part);
                for (&i, c) in idx.iter().zip(part) {
                    codes[i] = c;
                }
            }
        }
        out.copy_from_slice(&count(graph, &codes, k));
        if (p + 1) % every == 0 {
            progress(p + 1);
        }
    }
    let n = n_perms as f64;
    let zscore = (0..k * k)
        .map(|c| {
            let mean = (0..n_perms)
                .map(|p| perms[p * k * k + c] as f64)
                .sum::<f64>()
                / n;
            let var = (0..n_perms)
                .map(|p| (perms[p * k * k + c] as f64 - mean).powi(2))
                .sum::<f64>()
                / n;
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
