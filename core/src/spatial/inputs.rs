//! What the spatial statistics read from a dataset (coordinates, label
//! columns) and the result they all start from (the cells coloured by
//! type), shared by the command line and the browser.

use super::Labels;
use crate::bundle::{Layer, Results};
use crate::data::{Column, Dataset};
use crate::io::Error;

/// Each cell's (x, y), or a named error when there are none.
pub fn coords(name: &str, ds: &Dataset) -> Result<Vec<[f64; 2]>, Error> {
    let xy = ds.spatial().ok_or_else(|| {
        Error::new(
            name,
            "obsm",
            "no spatial coordinates (obsm 'spatial', 'X_spatial' or 'spatial_coords'; x/y columns for tables)",
        )
    })?;
    if xy.ncols() < 2 {
        return Err(Error::new(
            name,
            "obsm/spatial",
            format!("has {} column(s), expected x and y", xy.ncols()),
        ));
    }
    Ok(xy.rows().into_iter().map(|r| [r[0], r[1]]).collect())
}

/// An obs column, or an error listing the columns there are.
pub fn obs_column<'a>(name: &str, ds: &'a Dataset, key: &str) -> Result<&'a Column, Error> {
    ds.obs.column(key).ok_or_else(|| {
        let have: Vec<&str> = ds.obs.columns.iter().map(|(n, _)| n.as_str()).collect();
        Error::new(
            name,
            &format!("obs/{key}"),
            format!(
                "no such obs column; the obs columns are: {}",
                have.join(", ")
            ),
        )
    })
}

/// An obs column read as labels (libraries, FOVs, cell types).
pub fn obs_labels(name: &str, ds: &Dataset, key: &str) -> Result<Labels, Error> {
    Labels::from_column(key, obs_column(name, ds, key)?).map_err(|e| Error::new(name, key, e))
}

/// Cell-type labels: at least two types, or there is nothing to compare.
pub fn cell_types(name: &str, ds: &Dataset, key: &str) -> Result<Labels, Error> {
    let l = obs_labels(name, ds, key)?;
    if l.n_types() < 2 {
        return Err(Error::new(
            name,
            key,
            format!("has {} cell type(s); at least 2 are needed", l.n_types()),
        ));
    }
    Ok(l)
}

pub fn flat(coords: &[[f64; 2]]) -> Vec<f32> {
    coords
        .iter()
        .flat_map(|c| [c[0] as f32, c[1] as f32])
        .collect()
}

/// One-hot rows of labels, for colouring points by category.
pub fn onehot(labels: &Labels) -> Vec<f32> {
    let k = labels.n_types();
    let mut v = vec![0f32; labels.codes.len() * k];
    for (i, &c) in labels.codes.iter().enumerate() {
        if (c as usize) < k {
            v[i * k + c as usize] = 1.0;
        }
    }
    v
}

/// A one-dataset run's results before the analysis adds its own parts:
/// the cells coloured by their type.
pub fn by_type(
    analysis: &str,
    ds: &Dataset,
    coords: &[[f64; 2]],
    key: &str,
    l: &Labels,
    params: serde_json::Value,
) -> Results {
    Results {
        analysis: analysis.into(),
        params,
        view: serde_json::Value::Null,
        names: ds.obs.index.clone(),
        xy: flat(coords),
        layers: vec![Layer {
            name: key.into(),
            columns: l.categories.clone(),
            values: onehot(l),
        }],
        curves: vec![],
        matrices: vec![],
        files: vec![],
        image: None,
    }
}
