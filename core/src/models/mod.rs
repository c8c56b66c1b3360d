//! The methods, each written once against the compute [`Device`](crate::compute::Device).

pub mod cell2location;
pub mod checkpoint;
pub mod multiomics;
pub mod named;
pub mod nmf;
pub mod nsf;
pub mod numpy_rng;
pub mod regression;
pub mod resolvi;
pub mod svi;
pub mod tangram;

/// Pearson correlation of two equally long series; NaN when either is
/// constant (each caller decides what an undefined correlation means).
pub fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let (mut ab, mut aa, mut bb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        ab += (x - ma) * (y - mb);
        aa += (x - ma).powi(2);
        bb += (y - mb).powi(2);
    }
    ab / (aa * bb).sqrt()
}
