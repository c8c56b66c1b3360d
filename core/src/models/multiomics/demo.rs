//! The preprint's synthetic benchmark, as its text describes it: cells of
//! each type clustered around a random centre in a 1000 × 1000 region
//! (sd 60), 500 genes with NB(mean 5, overdispersion 0.5) counts plus
//! Poisson(50) on 4 marker genes per type, and 10 proteins with
//! Normal(2, 0.5) intensities plus Poisson(4) on 2 marker proteins per
//! type. With more types than 5 the protein panel grows to 2 per type.

use super::annotate::Markers;
use crate::data::{dense, Dataset, Frame, Matrix};
use crate::models::numpy_rng::LegacyNormal;
use crate::simulate::Rng;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spec {
    pub cells: usize,
    pub types: usize,
    pub genes: usize,
    pub proteins: usize,
    pub seed: u32,
}

impl Default for Spec {
    fn default() -> Spec {
        Spec {
            cells: 200,
            types: 4,
            genes: 500,
            proteins: 10,
            seed: 0,
        }
    }
}

/// The browser's multi-omics demo: the preprint's design at 800 cells.
pub const BROWSER: Spec = Spec {
    cells: 800,
    types: 4,
    genes: 500,
    proteins: 10,
    seed: 0,
};

pub struct Demo {
    pub transcripts: Dataset,
    pub proteins: Dataset,
    pub truth: Vec<String>,
    pub markers: Markers,
}

const NAMES: [&str; 4] = ["T cells", "Macrophages", "Epithelial", "Fibroblasts"];

pub fn type_name(t: usize) -> String {
    NAMES
        .get(t)
        .map_or(format!("Type {}", t + 1), |s| s.to_string())
}

fn dataset(ids: &[String], xy: &[[f64; 2]], values: Vec<f32>, features: Vec<String>) -> Dataset {
    let n = ids.len();
    let p = features.len();
    let mut ds = Dataset {
        x: Some(Matrix::Dense(dense(n, p, values).expect("n x p values"))),
        obs: Frame::with_index(ids.to_vec()),
        var: Frame::with_index(features),
        ..Default::default()
    };
    ds.obsm.insert(
        "spatial".into(),
        crate::data::Annotation::Array(
            dense(n, 2, xy.iter().flat_map(|p| [p[0], p[1]]).collect()).expect("n x 2"),
        ),
    );
    ds
}

pub fn generate(s: &Spec) -> Demo {
    let mut rng = Rng(LegacyNormal::new(s.seed));
    let proteins = s.proteins.max(2 * s.types);
    let extent = 1000.0;
    let centres: Vec<[f64; 2]> = (0..s.types)
        .map(|_| {
            [
                extent * (0.125 + 0.75 * rng.uniform()),
                extent * (0.125 + 0.75 * rng.uniform()),
            ]
        })
        .collect();
    let truth_idx: Vec<usize> = (0..s.cells).map(|i| i * s.types / s.cells).collect();
    let xy: Vec<[f64; 2]> = truth_idx
        .iter()
        .map(|&t| {
            let c = centres[t];
            [
                (c[0] + 60.0 * rng.normal()).clamp(0.0, extent),
                (c[1] + 60.0 * rng.normal()).clamp(0.0, extent),
            ]
        })
        .collect();
    let mut tx = Vec::with_capacity(s.cells * s.genes);
    let mut pr = Vec::with_capacity(s.cells * proteins);
    for &t in &truth_idx {
        for g in 0..s.genes {
            let mut v = rng.neg_binomial(5.0, 0.5) as f32;
            if g / 4 == t {
                v += rng.poisson(50.0) as f32;
            }
            tx.push(v);
        }
        for q in 0..proteins {
            let mut v = (2.0 + 0.5 * rng.normal()).max(0.0) as f32;
            if q / 2 == t {
                v += rng.poisson(4.0) as f32;
            }
            pr.push(v);
        }
    }
    let ids: Vec<String> = (0..s.cells).map(|i| format!("cell_{i}")).collect();
    let gene_names: Vec<String> = (0..s.genes).map(gene).collect();
    let protein_names: Vec<String> = (0..proteins).map(protein).collect();
    let mut transcripts = dataset(&ids, &xy, tx, gene_names);
    transcripts.obs.set(
        "cell_type",
        crate::data::Column::categorical_from(
            &truth_idx.iter().map(|&t| type_name(t)).collect::<Vec<_>>(),
        ),
    );
    Demo {
        transcripts,
        proteins: dataset(&ids, &xy, pr, protein_names),
        truth: truth_idx.iter().map(|&t| type_name(t)).collect(),
        markers: markers(s),
    }
}

fn gene(g: usize) -> String {
    format!("Gene_{g}")
}

fn protein(q: usize) -> String {
    format!("Protein_{q}")
}

/// The planted markers: 4 genes and 2 proteins per type, in type order
/// (without generating the data, for the page's form).
pub fn markers(s: &Spec) -> Markers {
    let mut m = Markers::default();
    for t in 0..s.types {
        m.types.insert(
            type_name(t),
            (
                (4 * t..4 * t + 4).map(gene).collect(),
                (2 * t..2 * t + 2).map(protein).collect(),
            ),
        );
    }
    m
}

/// Share of cells whose assigned type is their true type.
pub fn accuracy(assigned: &[String], truth: &[String]) -> f64 {
    let hits = assigned.iter().zip(truth).filter(|(a, b)| a == b).count();
    hits as f64 / truth.len().max(1) as f64
}
