//! Visium-like spots simulated from a labelled single-cell reference, with
//! known cell abundances, after the cell2location paper's design: the
//! reference is split 50/50 into cells that build the spots and cells left
//! for training; cell types are either tied to one of Z tissue zones or
//! spread uniformly; about 20% of types are dense (mean 3.2 cells where
//! present) and the rest sparse (1.5); each gene has a lognormal (σ 0.3)
//! detection efficiency; spots have a lognormal (σ 0.3) capture efficiency;
//! counts are Poisson around the summed cells plus an additive background.
//!
//! Everything random comes from one seed (MT19937, numpy's legacy stream).

pub mod spillover;
pub mod tutorial;

use std::collections::HashMap;

use crate::data::{dense, Annotation, Column, Dataset, Frame, Matrix, Sparse, Value};
use crate::io::Error;
use crate::models::named::{labels, unique, Named};
use crate::models::numpy_rng::LegacyNormal;
use crate::prep::filter::{check_x, Need};

#[derive(Debug, Clone, PartialEq)]
pub struct VisiumSim {
    pub n_spots: usize,
    pub n_zones: usize,
    pub seed: u32,
    /// Share of cell types spread uniformly instead of tied to a zone.
    pub uniform_share: f64,
    /// Share of types that are dense where present.
    pub dense_share: f64,
    pub dense_mean: f64,
    pub sparse_mean: f64,
    /// σ of the lognormal gene detection and spot capture efficiencies.
    pub detection_sigma: f64,
    /// Mean additive background counts per spot and gene.
    pub background: f64,
}

impl Default for VisiumSim {
    fn default() -> Self {
        VisiumSim {
            n_spots: 2000,
            n_zones: 12,
            seed: 0,
            uniform_share: 8.0 / 49.0,
            dense_share: 0.2,
            dense_mean: 3.2,
            sparse_mean: 1.5,
            detection_sigma: 0.3,
            background: 0.05,
        }
    }
}

/// The simulated spots, the truth, and the held-out training reference.
pub struct Simulated {
    /// Spots x genes raw counts; obs `zone`; obsm `spatial`.
    pub spatial: Dataset,
    pub cell_types: Vec<String>,
    /// Spots x cell types: cells of each type in each spot.
    pub abundance: Vec<f64>,
    /// The reference cells not used to build spots.
    pub training: Dataset,
    /// Zone of each zonal type (None: uniform type).
    pub type_zone: Vec<Option<usize>>,
}

/// Draws shared by the simulators.
pub(crate) struct Rng(pub(crate) LegacyNormal);

impl Rng {
    pub(crate) fn uniform(&mut self) -> f64 {
        self.0.next_f64()
    }

    pub(crate) fn below(&mut self, n: usize) -> usize {
        ((self.uniform() * n as f64) as usize).min(n.saturating_sub(1))
    }

    fn lognormal(&mut self, sigma: f64) -> f64 {
        // Mean one: exp(N(−σ²/2, σ²)).
        (sigma * self.0.next_normal() - 0.5 * sigma * sigma).exp()
    }

    pub(crate) fn normal(&mut self) -> f64 {
        self.0.next_normal()
    }

    /// Gamma(shape, 1): Marsaglia–Tsang (boosted below shape 1).
    pub(crate) fn gamma(&mut self, shape: f64) -> f64 {
        if shape < 1.0 {
            let u = self.uniform().max(f64::MIN_POSITIVE);
            return self.gamma(shape + 1.0) * u.powf(1.0 / shape);
        }
        let d = shape - 1.0 / 3.0;
        let c = 1.0 / (9.0 * d).sqrt();
        loop {
            let x = self.normal();
            let v = (1.0 + c * x).powi(3);
            if v <= 0.0 {
                continue;
            }
            let u = self.uniform();
            if u.ln() < 0.5 * x * x + d - d * v + d * v.ln() {
                return d * v;
            }
        }
    }

    /// Negative binomial with this mean and overdispersion φ (variance
    /// μ + φμ²), as a Gamma–Poisson mixture.
    pub(crate) fn neg_binomial(&mut self, mean: f64, phi: f64) -> u64 {
        let shape = 1.0 / phi;
        let rate = self.gamma(shape) * mean / shape;
        self.poisson(rate)
    }

    /// Poisson draw: Knuth's product for small means, Hörmann's PTRS otherwise.
    pub(crate) fn poisson(&mut self, lam: f64) -> u64 {
        if lam <= 0.0 {
            return 0;
        }
        if lam < 10.0 {
            let limit = (-lam).exp();
            let (mut k, mut p) = (0u64, 1.0);
            loop {
                p *= self.uniform();
                if p <= limit {
                    return k;
                }
                k += 1;
            }
        }
        let slam = lam.sqrt();
        let loglam = lam.ln();
        let b = 0.931 + 2.53 * slam;
        let a = -0.059 + 0.02483 * b;
        let inv_alpha = 1.1239 + 1.1328 / (b - 3.4);
        let vr = 0.9277 - 3.6224 / (b - 2.0);
        loop {
            let u = self.uniform() - 0.5;
            let v = self.uniform();
            let us = 0.5 - u.abs();
            let k = ((2.0 * a / us + b) * u + lam + 0.43).floor();
            if us >= 0.07 && v <= vr {
                return k as u64;
            }
            if k < 0.0 || (us < 0.013 && v > us) {
                continue;
            }
            let lhs = (v * inv_alpha / (a / (us * us) + b)).ln();
            let rhs = -lam + k * loglam - crate::compute::special::lgamma(k + 1.0);
            if lhs <= rhs {
                return k as u64;
            }
        }
    }
}

/// Builds spots from `reference` (raw counts, labels in obs[`label_key`]).
pub fn visium(reference: Named, label_key: &str, p: &VisiumSim) -> Result<Simulated, Error> {
    let x = check_x(reference.name, reference.data, Need::Counts)?;
    if p.n_spots == 0 || p.n_zones == 0 {
        return Err(Error::new(
            reference.name,
            "",
            "the simulation needs at least one spot and one zone",
        ));
    }
    let lab = labels(reference, label_key)?;
    let mut types = unique(&lab);
    types.sort();
    let t = types.len();
    if t < 2 {
        return Err(Error::new(
            reference.name,
            &format!("obs['{label_key}']"),
            format!("has {t} cell type(s); a simulation needs at least 2"),
        ));
    }
    let mut rng = Rng(LegacyNormal::new(p.seed));
    // Split each type's cells 50/50 into generation and training halves.
    let of: HashMap<&str, usize> = types
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), i))
        .collect();
    let mut cells_of: Vec<Vec<usize>> = vec![vec![]; t];
    for (c, l) in lab.iter().enumerate() {
        if let Some(&k) = of.get(l.as_str()) {
            cells_of[k].push(c);
        }
    }
    let (mut generate, mut train): (Vec<Vec<usize>>, Vec<usize>) = (vec![vec![]; t], vec![]);
    for (k, cells) in cells_of.iter_mut().enumerate() {
        for i in (1..cells.len()).rev() {
            let j = rng.below(i + 1);
            cells.swap(i, j);
        }
        // A type with one cell lends it to both halves.
        let half = cells.len().div_ceil(2);
        generate[k] = cells[..half].to_vec();
        train.extend_from_slice(if cells.len() > 1 {
            &cells[half..]
        } else {
            &cells[..]
        });
    }
    train.sort_unstable();
    // Types: uniform or tied to a zone (round robin over a shuffled order); dense or sparse.
    let mut order: Vec<usize> = (0..t).collect();
    for i in (1..t).rev() {
        let j = rng.below(i + 1);
        order.swap(i, j);
    }
    let n_uniform = ((p.uniform_share * t as f64).round() as usize).clamp(1, t - 1);
    let mut type_zone = vec![None; t];
    for (i, &k) in order.iter().enumerate().skip(n_uniform) {
        type_zone[k] = Some((i - n_uniform) % p.n_zones);
    }
    let density: Vec<f64> = (0..t)
        .map(|_| {
            if rng.uniform() < p.dense_share {
                p.dense_mean
            } else {
                p.sparse_mean
            }
        })
        .collect();
    // Spots on a square grid with unit spacing; zones are Gaussian bumps.
    let side = (p.n_spots as f64).sqrt().ceil() as usize;
    let coords: Vec<(f64, f64)> = (0..p.n_spots)
        .map(|s| ((s % side) as f64, (s / side) as f64))
        .collect();
    let centres: Vec<(f64, f64)> = (0..p.n_zones)
        .map(|_| (rng.uniform() * side as f64, rng.uniform() * side as f64))
        .collect();
    let width = side as f64 / (2.0 * (p.n_zones as f64).sqrt()).max(1.0);
    let zone_w = |s: usize, z: usize| {
        let (dx, dy) = (coords[s].0 - centres[z].0, coords[s].1 - centres[z].1);
        (-(dx * dx + dy * dy) / (2.0 * width * width)).exp()
    };
    let mut abundance = vec![0f64; p.n_spots * t];
    let mut zone_of_spot = vec![0i64; p.n_spots];
    for s in 0..p.n_spots {
        let w: Vec<f64> = (0..p.n_zones).map(|z| zone_w(s, z)).collect();
        zone_of_spot[s] = (0..p.n_zones)
            .max_by(|&a, &b| w[a].total_cmp(&w[b]))
            .unwrap_or(0) as i64;
        for k in 0..t {
            let mean = match type_zone[k] {
                // Present only where its zone is strong.
                Some(z) if w[z] > 0.1 => density[k] * w[z],
                Some(_) => 0.0,
                // Uniform types: everywhere, at half density.
                None => 0.5 * density[k],
            };
            abundance[s * t + k] = rng.poisson(mean) as f64;
        }
    }
    // Counts: sum of sampled cells, gene detection x spot capture, Poisson, plus background.
    let (_, g) = x.shape();
    let detect: Vec<f64> = (0..g).map(|_| rng.lognormal(p.detection_sigma)).collect();
    let Matrix::Csr(csr) = x.to_csr() else {
        unreachable!("to_csr returns CSR")
    };
    let mut sp = Sparse {
        rows: p.n_spots,
        cols: g,
        indptr: vec![0],
        ..Sparse::default()
    };
    let mut expected = vec![0f64; g];
    for s in 0..p.n_spots {
        expected.iter_mut().for_each(|v| *v = 0.0);
        for k in 0..t {
            for _ in 0..abundance[s * t + k] as usize {
                let pool = &generate[k];
                if pool.is_empty() {
                    continue;
                }
                let cell = pool[rng.below(pool.len())];
                for i in csr.indptr[cell] as usize..csr.indptr[cell + 1] as usize {
                    expected[csr.indices[i] as usize] += csr.data[i] as f64;
                }
            }
        }
        let capture = rng.lognormal(p.detection_sigma);
        for j in 0..g {
            let n = rng.poisson(expected[j] * detect[j] * capture) + rng.poisson(p.background);
            if n > 0 {
                sp.indices.push(j as u32);
                sp.data.push(n as f32);
            }
        }
        sp.indptr.push(sp.data.len() as u64);
    }
    let mut obs = Frame::with_index((0..p.n_spots).map(|s| format!("spot_{s}")).collect());
    obs.set("zone", Column::Int(zone_of_spot));
    let mut spatial = Dataset {
        x: Some(Matrix::Csr(sp)),
        x_dtype: "float32".into(),
        obs,
        var: reference.data.var.clone(),
        ..Dataset::default()
    };
    spatial.obsm.insert(
        "spatial".into(),
        Annotation::Array(
            dense(
                p.n_spots,
                2,
                coords.iter().flat_map(|&(a, b)| [a, b]).collect(),
            )
            .expect("rows x cols values"),
        ),
    );
    spatial.uns.insert(
        "simulation".into(),
        Value::Str(format!(
            "tessera simulate visium: seed {}, {} zones, {} uniform types",
            p.seed, p.n_zones, n_uniform
        )),
    );
    let mut training = reference.data.clone();
    training.x = Some(x.take_rows(&train));
    training.obs = reference.data.obs.take(&train);
    training.raw_x = None;
    training.layers.clear();
    training.obsm.clear();
    Ok(Simulated {
        spatial,
        cell_types: types,
        abundance,
        training,
        type_zone,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poisson_draws_have_the_right_mean_and_variance() {
        let mut r = Rng(LegacyNormal::new(9));
        for lam in [0.3, 4.0, 25.0, 400.0] {
            let v: Vec<f64> = (0..40_000).map(|_| r.poisson(lam) as f64).collect();
            let m = v.iter().sum::<f64>() / v.len() as f64;
            let var = v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / v.len() as f64;
            assert!((m - lam).abs() < 0.03 * lam.max(1.0), "mean {m} for {lam}");
            assert!(
                (var - lam).abs() < 0.06 * lam.max(1.0),
                "variance {var} for {lam}"
            );
        }
    }

    #[test]
    fn gamma_and_negative_binomial_moments() {
        let mut r = Rng(LegacyNormal::new(3));
        for shape in [0.5, 2.0, 9.0] {
            let v: Vec<f64> = (0..40_000).map(|_| r.gamma(shape)).collect();
            let m = v.iter().sum::<f64>() / v.len() as f64;
            let var = v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / v.len() as f64;
            assert!(
                (m - shape).abs() < 0.03 * shape,
                "gamma mean {m} for {shape}"
            );
            assert!(
                (var - shape).abs() < 0.08 * shape,
                "gamma variance {var} for {shape}"
            );
        }
        let v: Vec<f64> = (0..40_000)
            .map(|_| r.neg_binomial(5.0, 0.5) as f64)
            .collect();
        let m = v.iter().sum::<f64>() / v.len() as f64;
        let var = v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / v.len() as f64;
        assert!(
            (m - 5.0).abs() < 0.15 && (var - 17.5).abs() < 1.5,
            "NB mean {m}, variance {var}"
        );
    }
}
