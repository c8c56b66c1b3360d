//! A reference + Visium pair shaped like the cell2location tutorial's lymph
//! node (73,260 cells x 10,237 genes, 34 types, 4 samples; 4,035 spots), or
//! any other size, generated from a seed so benchmarks and tests need no
//! download.
//!
//! Reference: cell c of type t in sample e has NB counts (per-gene
//! concentration θ_g) with mean (μ_tg + s_eg) · y_e · l_c: the
//! RegressionModel's own form, so its fit is checkable. μ_tg is lognormal
//! around a per-gene level, with ~3% marker genes per type raised ~e^2.5;
//! y_e, l_c are lognormal detection and library factors, s_eg a small
//! additive background.
//!
//! Spots on a hexagonal grid: each type has a zone (a Gaussian bump of
//! random centre and width), and spot s holds n_sf ~ Poisson(peak_f · bump)
//! cells of type f: the known abundances. Counts are Poisson around
//! Σ_f n_sf μ_fg times a per-gene detection efficiency and a per-spot
//! capture efficiency.
//!
//! Cells and spots are drawn in blocks, each from its own stream (SplitMix64
//! seeded by the seed and the block), so any thread count gives the same pair.

use crate::data::{dense, Annotation, Column, Dataset, Frame, Matrix, Sparse};
use crate::demo::Rng;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TutorialSim {
    pub cells: usize,
    pub genes: usize,
    pub types: usize,
    pub samples: usize,
    pub spots: usize,
    pub seed: u64,
}

impl Default for TutorialSim {
    /// The lymph-node tutorial's shape.
    fn default() -> Self {
        TutorialSim {
            cells: 73_260,
            genes: 10_237,
            types: 34,
            samples: 4,
            spots: 4_035,
            seed: 0,
        }
    }
}

/// The pair and the truth behind it.
pub struct Tutorial {
    /// Cells x genes raw counts (CSR); obs `Subset` (type), `Sample`, `Method`.
    pub reference: Dataset,
    /// Spots x genes raw counts (CSR); obsm `spatial`, `true_cell_abundance`.
    pub spatial: Dataset,
    pub cell_types: Vec<String>,
    /// Spots x types: cells of each type in each spot.
    pub abundance: Vec<f64>,
    /// Types x genes: the expression μ_tg per cell behind both datasets.
    pub signatures: Vec<f64>,
}

const BLOCK: usize = 2048;

fn stream(seed: u64, what: u64, block: usize) -> Rng {
    let mut r = Rng(seed ^ what.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    r.0 ^= (block as u64 + 1).wrapping_mul(0xD1B5_4A32_D192_ED03);
    r.next_u64();
    r
}

impl Rng {
    fn lognormal(&mut self, sigma: f64) -> f64 {
        (sigma * self.normal() - 0.5 * sigma * sigma).exp()
    }

    /// NB with mean m and concentration θ by its CDF (one uniform, and one
    /// exp for the zero class most draws end in); normal above mean 60.
    fn neg_binomial(&mut self, m: f64, theta: f64) -> f32 {
        if m <= 0.0 {
            return 0.0;
        }
        if m > 60.0 {
            let sd = (m + m * m / theta).sqrt();
            return (m + sd * self.normal()).round().max(0.0) as f32;
        }
        let u = self.uniform();
        let q = m / (theta + m);
        let mut p = (theta * (1.0 - q).ln()).exp();
        let (mut k, mut cdf) = (0.0, p);
        while u > cdf && k < 10_000.0 {
            k += 1.0;
            p *= q * (k - 1.0 + theta) / k;
            cdf += p;
            if p < 1e-300 {
                break;
            }
        }
        k as f32
    }
}

/// Runs `f(block)` for every block of `n` rows on the available threads and
/// appends their rows to one CSR in block order.
fn csr_blocks(n: usize, cols: usize, f: impl Fn(usize) -> Vec<Vec<(u32, f32)>> + Sync) -> Sparse {
    let mut s = Sparse {
        rows: n,
        cols,
        indptr: vec![0],
        ..Sparse::default()
    };
    let blocks = n.div_ceil(BLOCK);
    let threads = crate::compute::cpu::threads();
    for first in (0..blocks).step_by(threads) {
        let last = (first + threads).min(blocks);
        let done: Vec<Vec<Vec<(u32, f32)>>> = std::thread::scope(|sc| {
            let hs: Vec<_> = (first..last)
                .map(|b| {
                    let f = &f;
                    sc.spawn(move || f(b))
                })
                .collect();
            hs.into_iter()
                .map(|h| h.join().expect("a generator thread"))
                .collect()
        });
        for rows in done {
            for row in rows {
                for (j, v) in row {
                    s.indices.push(j);
                    s.data.push(v);
                }
                s.indptr.push(s.data.len() as u64);
            }
        }
    }
    s
}

pub fn tutorial(p: &TutorialSim) -> Result<Tutorial, String> {
    let (n, g, t, e) = (p.cells, p.genes, p.types, p.samples);
    if n == 0 || g == 0 || t < 2 || e == 0 || p.spots == 0 {
        return Err(format!(
            "a simulated pair needs cells, genes, spots, a sample and at least 2 types \
             (got {n} cells, {g} genes, {t} types, {e} samples, {} spots)",
            p.spots
        ));
    }
    let mut r = stream(p.seed, 1, 0);
    let level: Vec<f64> = (0..g).map(|_| -2.6 + 1.2 * r.normal()).collect();
    let theta: Vec<f64> = (0..g)
        .map(|_| (3f64.ln() + 0.5 * r.normal()).exp().clamp(0.2, 50.0))
        .collect();
    let mut signatures = vec![0.0; t * g];
    for k in 0..t {
        for j in 0..g {
            let marker = r.uniform() < 0.03;
            let effect = if marker {
                2.5 + 0.5 * r.normal()
            } else {
                0.4 * r.normal()
            };
            signatures[k * g + j] = (level[j] + effect).exp();
        }
    }
    let detection: Vec<f64> = (0..e).map(|_| r.lognormal(0.3)).collect();
    let background: Vec<f64> = (0..e * g).map(|_| 0.002 * r.lognormal(0.5)).collect();

    // The reference: types in turn, samples in contiguous runs of cells.
    let type_of = |c: usize| c % t;
    let sample_of = |c: usize| c * e / n;
    let reference_x = csr_blocks(n, g, |b| {
        let mut r = stream(p.seed, 2, b);
        (b * BLOCK..((b + 1) * BLOCK).min(n))
            .map(|c| {
                let (k, s) = (type_of(c), sample_of(c));
                let scale = detection[s] * r.lognormal(0.25);
                (0..g)
                    .filter_map(|j| {
                        let m = (signatures[k * g + j] + background[s * g + j]) * scale;
                        let v = r.neg_binomial(m, theta[j]);
                        (v > 0.0).then_some((j as u32, v))
                    })
                    .collect()
            })
            .collect()
    });
    let cell_types: Vec<String> = (0..t).map(|k| format!("Type{:02}", k + 1)).collect();
    let genes: Vec<String> = (0..g).map(|j| format!("Gene{:05}", j + 1)).collect();
    let labels: Vec<String> = (0..n).map(|c| cell_types[type_of(c)].clone()).collect();
    let samples: Vec<String> = (0..n)
        .map(|c| format!("sample{}", sample_of(c) + 1))
        .collect();
    // Each sample was made with one of two chemistries, as in the tutorial.
    let methods: Vec<String> = (0..n)
        .map(|c| ["3GEX", "5GEX"][sample_of(c) * 2 / e.max(2)].to_string())
        .collect();
    let mut obs = Frame::with_index((0..n).map(|c| format!("cell{:06}", c + 1)).collect());
    obs.set("Subset", Column::categorical_from(&labels));
    obs.set("Sample", Column::categorical_from(&samples));
    obs.set("Method", Column::categorical_from(&methods));
    let reference = Dataset {
        x: Some(Matrix::Csr(reference_x)),
        x_dtype: "float32".into(),
        obs,
        var: Frame::with_index(genes.clone()),
        ..Dataset::default()
    };

    // Spots: a hexagonal grid about as wide as tall, one zone per type.
    let width = ((p.spots as f64 / 0.866).sqrt().ceil() as usize).max(1);
    let height = p.spots.div_ceil(width) as f64 * 0.866;
    let zones: Vec<(f64, f64, f64, f64)> = (0..t)
        .map(|_| {
            let dense = r.uniform() < 0.2;
            let peak = if dense { 6.0 } else { 2.5 };
            (r.uniform(), r.uniform(), 0.1 + 0.2 * r.uniform(), peak)
        })
        .collect();
    let gene_detection: Vec<f64> = (0..g).map(|_| r.lognormal(0.3)).collect();
    let mut coords = Vec::with_capacity(2 * p.spots);
    for s in 0..p.spots {
        let (row, col) = (s / width, s % width);
        coords.push((col as f64 + 0.5 * (row % 2) as f64) * 100.0);
        coords.push(row as f64 * 86.6);
    }
    let abundance_of = |s: usize, r: &mut Rng| -> Vec<f64> {
        let (u, v) = (
            coords[2 * s] / (width as f64 * 100.0),
            coords[2 * s + 1] / (height * 100.0),
        );
        zones
            .iter()
            .map(|&(cx, cy, w, peak)| {
                let d2 = (u - cx).powi(2) + (v - cy).powi(2);
                r.poisson(peak * (-d2 / (2.0 * w * w)).exp() + 0.02)
            })
            .collect()
    };
    // Abundances first (one stream), then counts in parallel blocks.
    let mut ra = stream(p.seed, 3, 0);
    let abundance: Vec<f64> = (0..p.spots)
        .flat_map(|s| abundance_of(s, &mut ra))
        .collect();
    let spatial_x = csr_blocks(p.spots, g, |b| {
        let mut r = stream(p.seed, 4, b);
        (b * BLOCK..((b + 1) * BLOCK).min(p.spots))
            .map(|s| {
                let capture = 0.3 * r.lognormal(0.3);
                let present: Vec<(usize, f64)> = (0..t)
                    .map(|k| (k, abundance[s * t + k]))
                    .filter(|&(_, a)| a > 0.0)
                    .collect();
                (0..g)
                    .filter_map(|j| {
                        let m: f64 = present
                            .iter()
                            .map(|&(k, a)| a * signatures[k * g + j])
                            .sum::<f64>()
                            * gene_detection[j]
                            * capture;
                        let v = r.poisson(m) as f32;
                        (v > 0.0).then_some((j as u32, v))
                    })
                    .collect()
            })
            .collect()
    });
    let mut sp_obs = Frame::with_index((0..p.spots).map(|s| format!("spot{:05}", s + 1)).collect());
    sp_obs.set(
        "array_row",
        Column::Int((0..p.spots).map(|s| (s / width) as i64).collect()),
    );
    sp_obs.set(
        "array_col",
        Column::Int((0..p.spots).map(|s| (s % width) as i64).collect()),
    );
    let mut spatial = Dataset {
        x: Some(Matrix::Csr(spatial_x)),
        x_dtype: "float32".into(),
        obs: sp_obs,
        var: Frame::with_index(genes),
        ..Dataset::default()
    };
    spatial.obsm.insert(
        "spatial".into(),
        Annotation::Array(dense(p.spots, 2, coords)?),
    );
    spatial.obsm.insert(
        "true_cell_abundance".into(),
        Annotation::Array(dense(p.spots, t, abundance.clone())?),
    );
    Ok(Tutorial {
        reference,
        spatial,
        cell_types,
        abundance,
        signatures,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> TutorialSim {
        TutorialSim {
            cells: 5000,
            genes: 300,
            types: 6,
            samples: 3,
            spots: 400,
            seed: 4,
        }
    }

    #[test]
    fn the_pair_is_deterministic_counts_with_its_truth() {
        let a = tutorial(&small()).unwrap();
        let b = tutorial(&small()).unwrap();
        assert_eq!(a.reference, b.reference);
        assert_eq!(a.spatial, b.spatial);
        for d in [&a.reference, &a.spatial] {
            assert!(d.check_shapes().is_ok());
            assert!(d.x.as_ref().unwrap().check_values().is_counts());
        }
        assert_eq!(a.reference.n_obs(), 5000);
        assert_eq!((a.spatial.n_obs(), a.spatial.n_vars()), (400, 300));
        // Sparse like a droplet reference: a minority of entries non-zero.
        let x = a.reference.x.as_ref().unwrap();
        let density = x.nnz() as f64 / (5000.0 * 300.0);
        assert!((0.03..0.5).contains(&density), "density {density}");
        // Each type's mean count per cell follows its signature.
        let sums = x.col_sums();
        let total: f64 = sums.iter().sum();
        assert!(total > 0.0);
        let cells_per_spot = a.abundance.iter().sum::<f64>() / 400.0;
        assert!((2.0..40.0).contains(&cells_per_spot), "{cells_per_spot}");
        assert!(tutorial(&TutorialSim {
            types: 1,
            ..small()
        })
        .is_err());
    }

    #[test]
    fn reference_means_follow_the_signatures() {
        let a = tutorial(&small()).unwrap();
        let x = a.reference.x.as_ref().unwrap();
        let (t, g) = (6, 300);
        let mut sums = vec![0.0; t * g];
        for c in 0..5000 {
            x.for_row(c, |j, v| sums[(c % t) * g + j] += v as f64);
        }
        // Correlation of log mean counts with log signatures, over all types.
        let pairs: Vec<(f64, f64)> = (0..t * g)
            .map(|i| {
                (
                    (sums[i] / (5000.0 / t as f64) + 0.01).ln(),
                    (a.signatures[i] + 0.01).ln(),
                )
            })
            .collect();
        let n = pairs.len() as f64;
        let (ma, mb) = (
            pairs.iter().map(|p| p.0).sum::<f64>() / n,
            pairs.iter().map(|p| p.1).sum::<f64>() / n,
        );
        let cov: f64 = pairs.iter().map(|p| (p.0 - ma) * (p.1 - mb)).sum();
        let va: f64 = pairs.iter().map(|p| (p.0 - ma).powi(2)).sum();
        let vb: f64 = pairs.iter().map(|p| (p.1 - mb).powi(2)).sum();
        let r = cov / (va * vb).sqrt();
        assert!(r > 0.9, "correlation {r}");
    }
}
