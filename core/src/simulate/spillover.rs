//! Segmentation spill-over added to real single-cell-resolved counts, with
//! the clean counts kept as truth. Each cell keeps its own counts and
//! receives, as Poisson draws, a share δ of diffused signal from its ten
//! nearest cells (weighted by exp(−distance / median neighbour distance))
//! and a share β of background (the data's overall gene profile, as
//! ambient RNA), δ and β uniform per cell; in expectation a cell's observed
//! counts are 1 − δ − β its own, δ diffused and β background.

use crate::data::{Column, Dataset, Matrix, Sparse};
use crate::io::Error;
use crate::models::numpy_rng::LegacyNormal;
use crate::prep::filter::subset_cells;
use crate::simulate::Rng;
use crate::spatial::kdtree::KdTree;

#[derive(Debug, Clone, PartialEq)]
pub struct SpilloverSim {
    /// δ and β are uniform on [0, these].
    pub diffusion_max: f64,
    pub background_max: f64,
    pub neighbours: usize,
    /// Cells with fewer counts are left out (they carry no signal to
    /// correct).
    pub min_counts: f64,
    pub seed: u32,
}

impl Default for SpilloverSim {
    fn default() -> Self {
        SpilloverSim {
            diffusion_max: 0.3,
            background_max: 0.15,
            neighbours: 10,
            min_counts: 5.0,
            seed: 0,
        }
    }
}

pub struct Spillover {
    /// X the observed counts, layers['clean'] the truth; obs gains
    /// true_fraction, diffused_fraction and background_fraction (the
    /// realised shares of each cell's observed counts).
    pub dataset: Dataset,
    /// Cells of the input kept (by index).
    pub kept: Vec<usize>,
}

pub const FRACTION_KEYS: [&str; 3] = ["true_fraction", "diffused_fraction", "background_fraction"];

pub fn spillover(name: &str, d: &Dataset, p: &SpilloverSim) -> Result<Spillover, Error> {
    let err = |key: &str, msg: String| Error::new(name, key, msg);
    let x =
        d.x.as_ref()
            .ok_or_else(|| err("X", "the spill-over simulation needs counts in X".into()))?;
    let check = x.check_values();
    if !check.is_counts() {
        return Err(err(
            "X",
            "X must hold raw counts (non-negative whole numbers)".into(),
        ));
    }
    let xy = d.spatial().ok_or_else(|| {
        err(
            "obsm['spatial']",
            "the spill-over simulation needs each cell's coordinates".into(),
        )
    })?;
    let share = |v: f64| v.is_finite() && (0.0..1.0).contains(&v);
    if !(share(p.diffusion_max)
        && share(p.background_max)
        && share(p.diffusion_max + p.background_max))
    {
        return Err(err(
            "",
            "the diffusion and background shares must each be in [0, 1) and add up to less than 1"
                .into(),
        ));
    }
    let sums = x.row_sums();
    let kept: Vec<usize> = (0..sums.len())
        .filter(|&i| sums[i] >= p.min_counts)
        .collect();
    if kept.len() <= p.neighbours {
        return Err(err(
            "X",
            format!(
                "{} cells have at least {} counts; the simulation needs more than {}",
                kept.len(),
                p.min_counts,
                p.neighbours
            ),
        ));
    }
    let clean = x.take_rows(&kept).to_csr();
    let Matrix::Csr(cs) = &clean else {
        unreachable!("to_csr gives CSR")
    };
    let (n, g) = (cs.rows, cs.cols);
    let pts: Vec<[f64; 2]> = kept.iter().map(|&i| [xy[(i, 0)], xy[(i, 1)]]).collect();
    if let Some(i) = pts
        .iter()
        .position(|p| !(p[0].is_finite() && p[1].is_finite()))
    {
        return Err(err(
            "obsm['spatial']",
            format!("cell {} has no finite coordinates", d.obs.index[kept[i]]),
        ));
    }
    let tree = KdTree::new(&pts);
    let near: Vec<Vec<(usize, f64)>> = (0..n)
        .map(|i| tree.nearest(pts[i], p.neighbours, Some(i)))
        .collect();
    let mut all: Vec<f64> = near.iter().flatten().map(|&(_, d)| d).collect();
    all.sort_by(f64::total_cmp);
    let scale = all[all.len() / 2].max(f64::MIN_POSITIVE);
    let lib: Vec<f64> = kept.iter().map(|&i| sums[i]).collect();
    let mut profile = vec![0f64; g];
    for (&c, &v) in cs.indices.iter().zip(&cs.data) {
        profile[c as usize] += v as f64;
    }
    let total: f64 = profile.iter().sum();
    profile.iter_mut().for_each(|v| *v /= total);

    let mut rng = Rng(LegacyNormal::new(p.seed));
    let mut out = Sparse {
        rows: n,
        cols: g,
        indptr: vec![0],
        ..Sparse::default()
    };
    let mut fr: [Vec<f64>; 3] = std::array::from_fn(|_| Vec::with_capacity(n));
    let (mut own, mut mixed) = (vec![0f64; g], vec![0f64; g]);
    for i in 0..n {
        let delta = rng.uniform() * p.diffusion_max;
        let beta = rng.uniform() * p.background_max;
        let keep = 1.0 - delta - beta;
        own.iter_mut().for_each(|v| *v = 0.0);
        mixed.iter_mut().for_each(|v| *v = 0.0);
        let (a, b) = (cs.indptr[i] as usize, cs.indptr[i + 1] as usize);
        for (&c, &v) in cs.indices[a..b].iter().zip(&cs.data[a..b]) {
            own[c as usize] = v as f64;
        }
        // Relative to the nearest, so a far-off cell's weights cannot all
        // underflow to 0.
        let d0 = near[i].first().map_or(0.0, |n| n.1);
        let w: Vec<f64> = near[i]
            .iter()
            .map(|&(_, d)| (-(d - d0) / scale).exp())
            .collect();
        let wt: f64 = w.iter().sum();
        for (&(j, _), wj) in near[i].iter().zip(&w) {
            let f = delta / keep * lib[i] * wj / wt / lib[j];
            let (a, b) = (cs.indptr[j] as usize, cs.indptr[j + 1] as usize);
            for (&c, &v) in cs.indices[a..b].iter().zip(&cs.data[a..b]) {
                mixed[c as usize] += f * v as f64;
            }
        }
        let bg = beta / keep * lib[i];
        let (mut diffused, mut background) = (0.0, 0.0);
        for c in 0..g {
            let dv = rng.poisson(mixed[c]) as f64;
            let bv = rng.poisson(bg * profile[c]) as f64;
            diffused += dv;
            background += bv;
            let v = own[c] + dv + bv;
            if v > 0.0 {
                out.indices.push(c as u32);
                out.data.push(v as f32);
            }
        }
        out.indptr.push(out.data.len() as u64);
        let t = lib[i] + diffused + background;
        fr[0].push(lib[i] / t);
        fr[1].push(diffused / t);
        fr[2].push(background / t);
    }

    let mut dataset = subset_cells(d, &kept);
    for (key, v) in FRACTION_KEYS.iter().zip(fr) {
        dataset.obs.set(key, Column::Float(v));
    }
    dataset.x = Some(Matrix::Csr(out));
    dataset.x_dtype = "float32".into();
    dataset.raw_x = None;
    dataset.layers.clear();
    dataset.layers.insert("clean".to_string(), clean);
    Ok(Spillover { dataset, kept })
}
