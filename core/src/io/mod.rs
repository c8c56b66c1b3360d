//! Readers and writers. Everything works on bytes ([`FileSet`]) so the same
//! code runs in the browser; [`read`] detects the format of what was given.

mod error;
mod files;
pub mod h5ad;
pub mod h5ad_write;
pub mod npy;
pub mod npz;
pub mod table;
pub mod tenx;

#[cfg(not(target_arch = "wasm32"))]
pub use error::caught;
pub use error::{Context, Error, Result};
pub use files::{FileSet, NamedFile};
pub use table::TableOptions;

use crate::data::{Annotation, Dataset, Summary, Value};

/// A dataset and where it came from.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub dataset: Dataset,
    /// Human name of the detected format.
    pub format: String,
    pub source: String,
}

impl Loaded {
    pub fn summary(&self) -> Summary {
        Summary::of(&self.dataset, &self.source, &self.format)
    }
}

/// One CSV field, quoted when it holds a comma, a quote or a newline.
pub fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// A rows x columns table as CSV from row-major `values`: a header of
/// `corner` and the column names, then each row's name and its values.
pub fn table_csv<V: std::fmt::Display>(
    corner: &str,
    columns: &[String],
    rows: &[String],
    values: &[V],
) -> String {
    let mut out = csv_field(corner);
    for c in columns {
        out.push(',');
        out.push_str(&csv_field(c));
    }
    out.push('\n');
    let k = columns.len();
    for (r, name) in rows.iter().enumerate() {
        out.push_str(&csv_field(name));
        for v in &values[r * k..(r + 1) * k] {
            out.push_str(&format!(",{v}"));
        }
        out.push('\n');
    }
    out
}

/// A one-column CSV with a header.
pub fn list_csv(head: &str, values: &[String]) -> String {
    let mut s = format!("{head}\n");
    for x in values {
        s.push_str(&csv_field(x));
        s.push('\n');
    }
    s
}

fn is_table(f: &NamedFile) -> bool {
    let n = f.plain_name();
    n.ends_with(".csv") || n.ends_with(".tsv") || n.ends_with(".txt")
}

/// Splits what a user dropped at once into independent inputs: each `.h5ad`
/// and each `.zip` alone, everything else together (a folder or table set).
pub fn split_inputs(files: FileSet) -> Vec<FileSet> {
    let mut out = Vec::new();
    let mut rest = FileSet::default();
    for f in files.files {
        let n = f.path.to_lowercase();
        if n.ends_with(".h5ad") || n.ends_with(".zip") {
            out.push(FileSet {
                files: vec![f],
                name: None,
            });
        } else {
            rest.files.push(f);
        }
    }
    if !rest.files.is_empty() {
        out.push(rest);
    }
    out
}

/// Reads one input: an `.h5ad`, a Space Ranger / Xenium folder or zip, a 10x
/// matrix, or one or more cell tables.
pub fn read(files: FileSet, opts: &TableOptions) -> Result<Loaded> {
    let source = files.label();
    let from_zip = files
        .files
        .iter()
        .any(|f| f.path.to_lowercase().ends_with(".zip"));
    let mut files = files.expand_zips()?;
    let loaded = |dataset, format: &str| {
        Ok(Loaded {
            dataset,
            format: format.into(),
            source: source.clone(),
        })
    };

    let h5 = [
        "filtered_feature_bc_matrix.h5",
        "cell_feature_matrix.h5",
        "raw_feature_bc_matrix.h5",
    ]
    .iter()
    .find_map(|n| files.find(n))
    .or_else(|| files.files.iter().find(|f| f.plain_name().ends_with(".h5")));
    let counts = if let Some(f) = h5 {
        Some((tenx::read_h5(&f.path, f.bytes.clone())?, "10x HDF5"))
    } else if files.find("matrix.mtx").is_some() {
        Some((tenx::read_mtx(&files)?, "10x Matrix Market"))
    } else {
        None
    };
    let has_positions = files.find("tissue_positions.csv").is_some()
        || files.find("tissue_positions_list.csv").is_some();
    let Some((mut ds, format)) = counts else {
        let h5ads: Vec<&NamedFile> = files
            .files
            .iter()
            .filter(|f| f.path.to_lowercase().ends_with(".h5ad"))
            .collect();
        match h5ads.as_slice() {
            [] => {}
            [_] => {
                // Taken, not copied: the bytes can be most of a tab's memory.
                let one = files
                    .files
                    .iter_mut()
                    .find(|f| f.path.to_lowercase().ends_with(".h5ad"))
                    .expect("one .h5ad");
                let bytes = std::mem::take(&mut one.bytes);
                return loaded(h5ad::read(&one.path, bytes)?, "h5ad");
            }
            many => {
                return Err(Error::new(
                    &source,
                    "",
                    format!(
                        "{} .h5ad files in one input: open them one at a time",
                        many.len()
                    ),
                ))
            }
        }
        if from_zip || has_positions {
            return Err(Error::new(
                &source,
                "filtered_feature_bc_matrix.h5",
                "missing: a Space Ranger input needs filtered_feature_bc_matrix.h5 (or matrix.mtx, barcodes.tsv, features.tsv) beside spatial/",
            ));
        }
        let tables: Vec<&NamedFile> = files.files.iter().filter(|f| is_table(f)).collect();
        if tables.is_empty() {
            return Err(Error::new(
                &source,
                "",
                "not a recognised input: expected an .h5ad, a Space Ranger folder or .zip, a 10x .h5, or .csv/.tsv/.txt cell tables",
            ));
        }
        return loaded(table::read(&tables, opts)?, "cell table");
    };
    if has_positions {
        let library = match ds.uns.remove("library_id") {
            Some(Value::Str(s)) => s,
            _ => library_name(&source),
        };
        tenx::attach_spatial(&mut ds, &files, &library)?;
        return loaded(ds, "Space Ranger (10x matrix + spatial)");
    }
    ds.uns.remove("library_id");
    // Xenium and similar: a per-cell table (cells.csv.gz) beside the matrix.
    let tables: Vec<&NamedFile> = files
        .files
        .iter()
        .filter(|f| {
            is_table(f)
                && !f.plain_name().contains("barcodes")
                && !f.plain_name().contains("features")
        })
        .collect();
    if let Some(cells) = tables.iter().find(|f| f.plain_name() == "cells.csv") {
        let meta = table::read(
            &[cells],
            &TableOptions {
                features: Some(vec![]),
                ..opts.clone()
            },
        )?;
        attach_cells(&mut ds, &meta, &cells.path)?;
        return loaded(ds, &format!("{format} + cell table"));
    }
    loaded(ds, format)
}

/// Copies per-cell columns and coordinates from `meta` onto `ds`, matched by cell id.
fn attach_cells(ds: &mut Dataset, meta: &Dataset, file: &str) -> Result<()> {
    let pos: std::collections::HashMap<&str, usize> = meta
        .obs
        .index
        .iter()
        .enumerate()
        .map(|(i, s)| (s.as_str(), i))
        .collect();
    let rows = ds
        .obs
        .index
        .iter()
        .map(|id| {
            pos.get(id.as_str()).copied().ok_or_else(|| {
                Error::new(
                    file,
                    id,
                    "cell of the matrix is missing from the cell table",
                )
            })
        })
        .collect::<Result<Vec<usize>>>()?;
    for (name, col) in &meta.obs.columns {
        ds.obs.set(name, col.take(&rows));
    }
    if let Some(sp) = meta.spatial() {
        ds.obsm.insert(
            "spatial".into(),
            Annotation::Array(sp.select(ndarray::Axis(0), &rows)),
        );
    }
    Ok(())
}

/// The library id for `uns['spatial']`: the sample folder (the parent of `outs/`).
fn library_name(source: &str) -> String {
    let trimmed = source.trim_end_matches('/');
    let trimmed = trimmed.strip_suffix(".zip").unwrap_or(trimmed);
    let trimmed = trimmed.strip_suffix("/outs").unwrap_or(trimmed);
    match trimmed.rsplit('/').next() {
        Some(base) if !base.is_empty() && base != "." => base.to_string(),
        _ => "library".into(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn library_is_the_sample_folder() {
        assert_eq!(super::library_name("data/section1/outs"), "section1");
        assert_eq!(super::library_name("/x/V1_Brain.zip"), "V1_Brain");
        assert_eq!(super::library_name("V1_Brain/"), "V1_Brain");
        assert_eq!(super::library_name(""), "library");
    }
}
