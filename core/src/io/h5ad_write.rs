//! `.h5ad` writer: the current anndata encoding (0.1.0 root, 0.2.0 elements),
//! so `anndata.read_h5ad` / `scanpy.read_h5ad` open it with the same shapes,
//! categories and obsm keys.

use hdf5_pure::{
    AttrValue, DatasetBuilder, EnumTypeBuilder, FileBuilder, FinishedGroup, GroupBuilder,
};

use super::error::{Error, Result};
use crate::data::{Annotation, Column, Dataset, Frame, Matrix, Value};

/// Serialises a dataset to `.h5ad` bytes.
pub fn write(ds: &Dataset) -> Result<Vec<u8>> {
    build(ds, |root| {
        if let Some(x) = &ds.x {
            matrix(root, "X", x);
        }
    })?
    .finish()
    .map_err(|e| Error::new("(output)", "", format!("could not encode HDF5: {e}")))
}

/// Writes a dataset to an `.h5ad` file, streamed: the encoded file is never
/// held in memory, and X's arrays are released as the HDF5 builder stages
/// its copy of each, so a large reference costs one array more, not two.
#[cfg(not(target_arch = "wasm32"))]
pub fn write_file(mut ds: Dataset, path: &std::path::Path) -> Result<()> {
    let x = ds.x.take();
    let shape = x.as_ref().map(|m| m.shape());
    if let Some((r, c)) = shape {
        if r != ds.n_obs() || c != ds.n_vars() {
            return Err(Error::new(
                "(output)",
                "X",
                format!(
                    "is {r} x {c} but obs x var is {} x {}",
                    ds.n_obs(),
                    ds.n_vars()
                ),
            ));
        }
    }
    build(&ds, move |root| {
        if let Some(x) = x {
            matrix_owned(root, "X", x);
        }
    })?
    .write(path)
    .map_err(|e| {
        Error::new(
            &path.display().to_string(),
            "",
            format!("could not write HDF5: {e}"),
        )
    })
}

fn build(ds: &Dataset, put_x: impl FnOnce(&mut FileBuilder)) -> Result<FileBuilder> {
    ds.check_shapes()
        .map_err(|e| Error::new("(output)", "", e))?;
    let mut root = FileBuilder::new();
    encode(&mut root, "anndata", "0.1.0");
    put_x(&mut root);
    frame(&mut root, "obs", &ds.obs);
    frame(&mut root, "var", &ds.var);
    dict(&mut root, "layers", |g| {
        for (k, m) in &ds.layers {
            matrix(g, k, m);
        }
    });
    for (key, map) in [("obsm", &ds.obsm), ("varm", &ds.varm)] {
        dict(&mut root, key, |g| {
            for (k, a) in map {
                match a {
                    Annotation::Array(d) => array(
                        g,
                        k,
                        d.as_standard_layout().as_slice().expect("standard layout"),
                        &[d.nrows() as u64, d.ncols() as u64],
                    ),
                    Annotation::Frame(f) => frame(g, k, f),
                }
            }
        });
    }
    dict(&mut root, "obsp", |_| {});
    dict(&mut root, "varp", |_| {});
    dict(&mut root, "uns", |g| uns_entries(g, &ds.uns));
    if let Some(raw) = &ds.raw_x {
        let mut g = root.create_group("raw");
        encode(&mut g, "raw", "0.1.0");
        matrix(&mut g, "X", raw);
        let var = Frame::with_index(
            (0..raw.shape().1)
                .map(|i| {
                    ds.var
                        .index
                        .get(i)
                        .cloned()
                        .unwrap_or_else(|| i.to_string())
                })
                .collect(),
        );
        frame(&mut g, "var", &var);
        dict(&mut g, "varm", |_| {});
        root.add_group(g.finish());
    }
    Ok(root)
}

/// Where elements can be written: the file root or a group.
trait Sink {
    fn dataset(&mut self, name: &str) -> &mut DatasetBuilder;
    fn group(&mut self, name: &str) -> GroupBuilder;
    fn add(&mut self, g: FinishedGroup);
    fn attr(&mut self, name: &str, v: AttrValue);
}

/// FileBuilder and GroupBuilder have the same methods but no shared trait.
macro_rules! sink {
    ($t:ty) => {
        impl Sink for $t {
            fn dataset(&mut self, name: &str) -> &mut DatasetBuilder {
                self.create_dataset(name)
            }
            fn group(&mut self, name: &str) -> GroupBuilder {
                self.create_group(name)
            }
            fn add(&mut self, g: FinishedGroup) {
                self.add_group(g)
            }
            fn attr(&mut self, name: &str, v: AttrValue) {
                self.set_attr(name, v);
            }
        }
    };
}

sink!(FileBuilder);
sink!(GroupBuilder);

fn encode(s: &mut impl Sink, kind: &str, version: &str) {
    s.attr("encoding-type", AttrValue::VarLenString(kind.into()));
    s.attr("encoding-version", AttrValue::VarLenString(version.into()));
}

fn tag(d: &mut DatasetBuilder, kind: &str, version: &str) {
    d.set_attr("encoding-type", AttrValue::VarLenString(kind.into()));
    d.set_attr("encoding-version", AttrValue::VarLenString(version.into()));
}

fn dict<S: Sink>(s: &mut S, name: &str, fill: impl FnOnce(&mut GroupBuilder)) {
    let mut g = s.group(name);
    encode(&mut g, "dict", "0.1.0");
    fill(&mut g);
    s.add(g.finish());
}

fn array(s: &mut impl Sink, name: &str, data: &[f64], shape: &[u64]) {
    let d = s.dataset(name);
    d.with_f64_data(data).with_shape(shape);
    tag(d, "array", "0.2.0");
}

fn strings(s: &mut impl Sink, name: &str, values: &[String]) {
    let refs: Vec<&str> = values.iter().map(String::as_str).collect();
    let d = s.dataset(name);
    d.with_vlen_strings(&refs);
    tag(d, "string-array", "0.2.0");
}

/// A large array as the little-endian bytes the HDF5 builder takes, with
/// one block more in memory rather than a second copy (with glibc: the
/// zeroed bytes are fresh pages the kernel maps as they are written, and
/// the array gives its pages back as it shrinks from the end, realloc to a
/// smaller size being an in-place mremap).
#[cfg(not(target_arch = "wasm32"))]
fn le_bytes<T: Copy>(mut v: Vec<T>, le: impl Fn(T) -> [u8; 4]) -> Vec<u8> {
    const BLOCK: usize = 1 << 22;
    let mut out = vec![0u8; 4 * v.len()];
    while !v.is_empty() {
        let from = v.len().saturating_sub(BLOCK);
        for (o, &x) in out[4 * from..].chunks_exact_mut(4).zip(&v[from..]) {
            o.copy_from_slice(&le(x));
        }
        v.truncate(from);
        v.shrink_to_fit();
    }
    out
}

/// [`matrix`] that frees each of a sparse matrix's arrays once staged.
#[cfg(not(target_arch = "wasm32"))]
fn matrix_owned(s: &mut impl Sink, name: &str, m: Matrix) {
    let (rows, cols) = m.shape();
    let (kind, sp) = match m {
        Matrix::Dense(_) => return matrix(s, name, &m),
        Matrix::Csr(sp) => ("csr_matrix", sp),
        Matrix::Csc(sp) => ("csc_matrix", sp),
    };
    let mut g = s.group(name);
    encode(&mut g, kind, "0.1.0");
    g.set_attr("shape", AttrValue::I64Array(vec![rows as i64, cols as i64]));
    let crate::data::Sparse {
        data,
        indices,
        indptr,
        ..
    } = sp;
    let n = data.len() as u64;
    let bytes = le_bytes(data, f32::to_le_bytes);
    g.create_dataset("data")
        .with_raw_data(hdf5_pure::make_f32_type(), bytes, n);
    // Indices are below 2^31, where u32 and i32 share their bytes.
    let n = indices.len() as u64;
    let bytes = le_bytes(indices, u32::to_le_bytes);
    g.create_dataset("indices")
        .with_raw_data(hdf5_pure::make_i32_type(), bytes, n);
    let ptr: Vec<i64> = indptr.into_iter().map(|p| p as i64).collect();
    g.create_dataset("indptr").with_i64_data(&ptr);
    s.add(g.finish());
}

fn matrix(s: &mut impl Sink, name: &str, m: &Matrix) {
    let (rows, cols) = m.shape();
    match m {
        Matrix::Dense(d) => {
            let ds = s.dataset(name);
            // Borrowed, not copied: X is built row-major.
            let d = d.as_standard_layout();
            ds.with_f32_data(d.as_slice().expect("standard layout"))
                .with_shape(&[rows as u64, cols as u64]);
            tag(ds, "array", "0.2.0");
        }
        Matrix::Csr(sp) | Matrix::Csc(sp) => {
            let mut g = s.group(name);
            let kind = if matches!(m, Matrix::Csr(_)) {
                "csr_matrix"
            } else {
                "csc_matrix"
            };
            encode(&mut g, kind, "0.1.0");
            g.set_attr("shape", AttrValue::I64Array(vec![rows as i64, cols as i64]));
            g.create_dataset("data").with_f32_data(&sp.data);
            let idx: Vec<i32> = sp.indices.iter().map(|&i| i as i32).collect();
            g.create_dataset("indices").with_i32_data(&idx);
            let ptr: Vec<i64> = sp.indptr.iter().map(|&p| p as i64).collect();
            g.create_dataset("indptr").with_i64_data(&ptr);
            s.add(g.finish());
        }
    }
}

fn frame(s: &mut impl Sink, name: &str, f: &Frame) {
    let mut g = s.group(name);
    encode(&mut g, "dataframe", "0.2.0");
    // A column may not share the index's name, so the index is always `_index`.
    g.set_attr("_index", AttrValue::VarLenString("_index".into()));
    let order: Vec<String> = f
        .columns
        .iter()
        .map(|(n, _)| n.clone())
        .filter(|n| n != "_index")
        .collect();
    if order.is_empty() {
        g.set_attr("column-order", AttrValue::F64Array(vec![]));
    } else {
        g.set_attr("column-order", AttrValue::VarLenStringArray(order));
    }
    strings(&mut g, "_index", &f.index);
    for (col_name, col) in &f.columns {
        if col_name == "_index" {
            continue;
        }
        column(&mut g, col_name, col);
    }
    s.add(g.finish());
}

fn column(g: &mut GroupBuilder, name: &str, col: &Column) {
    match col {
        Column::Str(v) => strings(g, name, v),
        Column::Int(v) => {
            let d = g.create_dataset(name);
            d.with_i64_data(v);
            tag(d, "array", "0.2.0");
        }
        Column::Float(v) => array(g, name, v, &[v.len() as u64]),
        Column::Bool(v) => {
            let bytes: Vec<u8> = v.iter().map(|&b| u8::from(b)).collect();
            let d = g.create_dataset(name);
            match numpy_bool() {
                Some(dt) => d.with_enum_u8_data(dt, &bytes),
                None => d.with_u8_data(&bytes),
            };
            tag(d, "array", "0.2.0");
        }
        Column::Categorical {
            codes,
            categories,
            ordered,
        } => {
            let mut c = g.create_group(name);
            encode(&mut c, "categorical", "0.2.0");
            c.set_attr("ordered", AttrValue::U8(u8::from(*ordered)));
            c.create_dataset("codes").with_i32_data(codes);
            strings(&mut c, "categories", categories);
            g.add_group(c.finish());
        }
    }
}

/// h5py's encoding of numpy bool: an enum with members FALSE = 0, TRUE = 1.
fn numpy_bool() -> Option<hdf5_pure::Datatype> {
    EnumTypeBuilder::u8_based()
        .value("FALSE", 0)
        .value("TRUE", 1)
        .build()
        .ok()
}

fn uns_entries(g: &mut GroupBuilder, entries: &std::collections::BTreeMap<String, Value>) {
    for (k, v) in entries {
        match v {
            Value::Dict(d) => dict(g, k, |sub| uns_entries(sub, d)),
            Value::Str(s) => {
                let d = g.create_dataset(k);
                d.with_vlen_strings(&[s.as_str()]).with_shape(&[]);
                tag(d, "string", "0.2.0");
            }
            Value::Strings(v) => strings(g, k, v),
            Value::Int(i) => {
                let d = g.create_dataset(k);
                d.with_i64_data(&[*i]).with_shape(&[]);
                tag(d, "numeric-scalar", "0.2.0");
            }
            Value::Float(x) => {
                let d = g.create_dataset(k);
                d.with_f64_data(&[*x]).with_shape(&[]);
                tag(d, "numeric-scalar", "0.2.0");
            }
            Value::Bool(b) => {
                let d = g.create_dataset(k);
                match numpy_bool() {
                    Some(dt) => d.with_enum_u8_data(dt, &[u8::from(*b)]),
                    None => d.with_u8_data(&[u8::from(*b)]),
                };
                d.with_shape(&[]);
                tag(d, "numeric-scalar", "0.2.0");
            }
            Value::Floats { shape, data } => array(g, k, data, &dims(shape)),
            Value::Ints { shape, data } => {
                let d = g.create_dataset(k);
                d.with_i64_data(data).with_shape(&dims(shape));
                tag(d, "array", "0.2.0");
            }
            Value::Bytes { shape, data } => {
                let d = g.create_dataset(k);
                d.with_u8_data(data).with_shape(&dims(shape));
                tag(d, "array", "0.2.0");
            }
        }
    }
}

fn dims(shape: &[usize]) -> Vec<u64> {
    shape.iter().map(|&d| d as u64).collect()
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    #[test]
    fn le_bytes_over_several_blocks_is_the_plain_encoding() {
        let v: Vec<u32> = (0..(1u32 << 22) * 5 / 2)
            .map(|i| i.wrapping_mul(2654435761))
            .collect();
        let want: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        assert_eq!(super::le_bytes(v, u32::to_le_bytes), want);
        assert!(super::le_bytes(Vec::<f32>::new(), f32::to_le_bytes).is_empty());
    }
}
