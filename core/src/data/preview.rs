//! The thumbnail of a dataset card: spot positions thinned to at most
//! [`PREVIEW_POINTS`] and one value per point.

use super::{Dataset, Matrix};

/// The most points a thumbnail draws; larger datasets are thinned evenly.
pub const PREVIEW_POINTS: usize = 50_000;

/// Thinned coordinates and log1p total counts (or zeros without X).
pub fn preview(ds: &Dataset) -> Option<(Vec<f32>, Vec<f32>, String)> {
    let sp = ds.spatial()?;
    let step = sp.nrows().div_ceil(PREVIEW_POINTS).max(1);
    let totals = ds.x.as_ref().map(Matrix::row_sums);
    let mut xy = Vec::with_capacity(2 * sp.nrows() / step + 2);
    let mut values = Vec::with_capacity(sp.nrows() / step + 1);
    for r in (0..sp.nrows()).step_by(step) {
        xy.extend([sp[[r, 0]] as f32, sp[[r, 1]] as f32]);
        values.push(
            totals
                .as_ref()
                .map_or(0.0, |t| t[r].max(0.0).ln_1p() as f32),
        );
    }
    let label = if totals.is_some() {
        "log1p total counts"
    } else {
        "position"
    };
    Some((xy, values, label.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preview_thins_large_datasets() {
        let (mut ds, _) = crate::demo::demo_pair(Default::default());
        let (xy, v, label) = preview(&ds).unwrap();
        assert_eq!((xy.len(), v.len()), (2 * 900, 900));
        assert_eq!(label, "log1p total counts");
        assert!(v.iter().all(|&x| x > 0.0));
        ds.obsm.clear();
        assert!(preview(&ds).is_none());
    }
}
