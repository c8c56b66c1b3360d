//! `.h5ad` reader (anndata's HDF5 layout), from bytes.
//!
//! Handles the current encoding (`encoding-type` attributes: `array`,
//! `csr_matrix`, `csc_matrix`, `dataframe`, `categorical`, `string-array`,
//! `nullable-*`, `dict`), the anndata 0.7 one (no root attributes, categoricals
//! as code datasets pointing into `__categories/`), and the pre-0.7 one (obs,
//! var and obsm as compound datasets, `raw.X`, `uns/<col>_categories`).

use std::collections::BTreeMap;

use hdf5_pure::{AttrValue, DType, Datatype, DatatypeByteOrder, File, Group};

use super::error::{guarded, Error, Result};
use crate::data::{dense, Annotation, Column, Dataset, Dense, Frame, Matrix, Sparse, Value};
#[cfg(not(target_arch = "wasm32"))]
use crate::data::{Summary, ValueCheck, XSummary};

/// Reads a whole `.h5ad` held in memory.
pub fn read(name: &str, bytes: Vec<u8>) -> Result<Dataset> {
    guarded(name, || {
        let file = open(name, bytes)?;
        Reader { name, file: &file }.anndata(true)
    })
}

/// Reads an `.h5ad` from disk, decoding each array as it is read: the file
/// is never held in memory next to its contents.
#[cfg(not(target_arch = "wasm32"))]
pub fn read_file(path: &std::path::Path) -> Result<Dataset> {
    let name = path.display().to_string();
    guarded(&name, || {
        let file = open_path(path, &name)?;
        Reader {
            name: &name,
            file: &file,
        }
        .anndata(true)
    })
}

#[cfg(not(target_arch = "wasm32"))]
fn open_path(path: &std::path::Path, name: &str) -> Result<File> {
    // The signature sits at 0, 512, 1024, 2048… (after a user block).
    let mut head = Vec::with_capacity(4096);
    std::io::Read::read_to_end(
        &mut std::io::Read::take(
            std::fs::File::open(path).map_err(|e| Error::new(name, "", e.to_string()))?,
            4096,
        ),
        &mut head,
    )
    .map_err(|e| Error::new(name, "", e.to_string()))?;
    opened(name, hdf5_pure::is_hdf5_bytes(&head), || {
        File::open_streaming(path)
    })
}

/// Describes an `.h5ad` on disk as anndata's backed mode would, without
/// loading X: obs, var, obsm, varm and uns are read; X's values are scanned
/// in blocks (for the counts check) and never held whole; layers and raw
/// are named only. Memory stays near one block plus the annotations.
#[cfg(not(target_arch = "wasm32"))]
pub fn summary_of_file(path: &std::path::Path) -> Result<Summary> {
    let name = path.display().to_string();
    guarded(&name.clone(), || summary_unguarded(path, name))
}

#[cfg(not(target_arch = "wasm32"))]
fn summary_unguarded(path: &std::path::Path, name: String) -> Result<Summary> {
    let file = open_path(path, &name)?;
    let r = Reader {
        name: &name,
        file: &file,
    };
    let mut ds = r.anndata(false)?;
    let x = match r.node("X") {
        Node::Missing => None,
        _ => {
            let (x, dtype) = r.matrix_summary("X", (ds.n_obs(), ds.n_vars()))?;
            ds.x_dtype = dtype;
            Some(x)
        }
    };
    let mut s = Summary::with_x(&ds, x, &name, "h5ad");
    if r.node("layers") == Node::Group {
        s.layers = r.members("layers")?;
    }
    Ok(s)
}

/// Opens HDF5 bytes with a message that says what went wrong in user terms.
pub(crate) fn open(name: &str, bytes: Vec<u8>) -> Result<File> {
    opened(name, hdf5_pure::is_hdf5_bytes(&bytes), || {
        File::from_bytes(bytes)
    })
}

/// The file `open` gives, or why not in user terms (`signed`: the HDF5
/// signature was found).
fn opened(
    name: &str,
    signed: bool,
    open: impl FnOnce() -> std::result::Result<File, hdf5_pure::Error>,
) -> Result<File> {
    if !signed {
        return Err(Error::new(
            name,
            "",
            "not an HDF5 file (expected the HDF5 signature at the start of the file)",
        ));
    }
    open().map_err(|e| {
        Error::new(
            name,
            "",
            format!("unreadable HDF5: {e} (is the file truncated?)"),
        )
    })
}

/// Largest believable ratio of decoded data to file size (gzip on count data
/// gives 3-10x; all-zero chunks far more, hence the margin).
const MAX_EXPANSION: u64 = 200;
/// Below this, any declared size is accepted.
const MIN_LIMIT: u64 = 256 << 20;

pub(crate) struct Reader<'a> {
    pub name: &'a str,
    pub file: &'a File,
}

/// What a name inside a group refers to.
#[derive(PartialEq)]
pub(crate) enum Node {
    Group,
    Dataset,
    Missing,
}

fn join(parent: &str, child: &str) -> String {
    if parent.is_empty() || parent == "/" {
        child.to_string()
    } else {
        format!("{parent}/{child}")
    }
}

pub(crate) fn attr_str(
    attrs: &std::collections::HashMap<String, AttrValue>,
    key: &str,
) -> Option<String> {
    attrs.get(key).and_then(|a| {
        a.as_str()
            .map(str::to_string)
            .or_else(|| a.as_strings().and_then(|s| s.first().cloned()))
    })
}

fn attr_ints(a: &AttrValue) -> Option<Vec<i64>> {
    match a {
        AttrValue::I64Array(v) => Some(v.clone()),
        AttrValue::I32Array(v) => Some(v.iter().map(|&x| x as i64).collect()),
        AttrValue::U64Array(v) => Some(v.iter().map(|&x| x as i64).collect()),
        AttrValue::U32Array(v) => Some(v.iter().map(|&x| x as i64).collect()),
        other => other.as_i64().map(|x| vec![x]),
    }
}

impl Reader<'_> {
    pub fn err(&self, key: &str, message: impl Into<String>) -> Error {
        Error::new(self.name, key, message)
    }

    fn h5<T>(&self, key: &str, r: std::result::Result<T, hdf5_pure::Error>) -> Result<T> {
        r.map_err(|e| self.err(key, e.to_string()))
    }

    pub fn group(&self, path: &str) -> Result<Group> {
        if path.is_empty() {
            return Ok(self.file.root());
        }
        self.h5(path, self.file.group(path))
    }

    pub fn node(&self, path: &str) -> Node {
        let (parent, child) = match path.rsplit_once('/') {
            Some((p, c)) => (p, c),
            None => ("", path),
        };
        let Ok(g) = self.group(parent) else {
            return Node::Missing;
        };
        if g.groups().is_ok_and(|v| v.iter().any(|n| n == child)) {
            Node::Group
        } else if g.datasets().is_ok_and(|v| v.iter().any(|n| n == child)) {
            Node::Dataset
        } else {
            Node::Missing
        }
    }

    /// Names of every member of a group (groups first, then datasets).
    pub fn members(&self, path: &str) -> Result<Vec<String>> {
        let g = self.group(path)?;
        let mut out = self.h5(path, g.groups())?;
        out.extend(self.h5(path, g.datasets())?);
        Ok(out)
    }

    pub fn attrs(&self, path: &str) -> Result<std::collections::HashMap<String, AttrValue>> {
        if path.is_empty() {
            return self.h5("/", self.file.root().attrs());
        }
        match self.node(path) {
            Node::Group => self.h5(path, self.group(path)?.attrs()),
            Node::Dataset => self.h5(path, self.h5(path, self.file.dataset(path))?.attrs()),
            Node::Missing => Err(self.err(path, "missing")),
        }
    }

    fn encoding(&self, path: &str) -> Option<String> {
        self.attrs(path)
            .ok()
            .and_then(|a| attr_str(&a, "encoding-type"))
    }

    /// Opens a dataset, refusing one that declares far more data than the file
    /// could hold (a corrupt header would otherwise make the reader allocate
    /// terabytes and abort the tab).
    fn data(&self, path: &str) -> Result<hdf5_pure::Dataset> {
        let ds = self.h5(path, self.file.dataset(path))?;
        let elements = self
            .h5(path, ds.shape())?
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d));
        let bytes = elements.and_then(|n| n.checked_mul(ds.element_size().unwrap_or(1).max(1)));
        let limit = self
            .file
            .file_size()
            .saturating_mul(MAX_EXPANSION)
            .max(MIN_LIMIT);
        match bytes {
            Some(b) if b <= limit => Ok(ds),
            _ => Err(self.err(
                path,
                format!(
                    "declares {} bytes of data in a {}-byte file: the file is corrupt",
                    bytes.map_or("more than 2^64".into(), |b| b.to_string()),
                    self.file.file_size()
                ),
            )),
        }
    }

    pub fn shape(&self, path: &str) -> Result<Vec<usize>> {
        let ds = self.data(path)?;
        Ok(self
            .h5(path, ds.shape())?
            .into_iter()
            .map(|d| d as usize)
            .collect())
    }

    pub fn dtype(&self, path: &str) -> Result<DType> {
        let ds = self.data(path)?;
        self.h5(path, ds.dtype())
    }

    pub fn f32s(&self, path: &str) -> Result<Vec<f32>> {
        let ds = self.data(path)?;
        self.h5(path, ds.read_f32())
    }

    pub fn f64s(&self, path: &str) -> Result<Vec<f64>> {
        let ds = self.data(path)?;
        self.h5(path, ds.read_f64())
    }

    pub fn i64s(&self, path: &str) -> Result<Vec<i64>> {
        let ds = self.data(path)?;
        self.h5(path, ds.read_i64())
    }

    /// Integer datasets that must not be negative (indices, pointers).
    pub fn indices<T: TryFrom<i64>>(&self, path: &str) -> Result<Vec<T>> {
        self.blocked(path, |d, start, n| {
            self.h5(path, d.read_i64_rows(start, n))?
                .into_iter()
                .map(|v| T::try_from(v).map_err(|_| self.err(path, format!("invalid index {v}"))))
                .collect()
        })
    }

    /// A dataset read a block of rows at a time into one vector (row-major):
    /// one decoded block is the only transient copy (a whole read holds the
    /// raw bytes and the decoded values at once, twice the memory of a
    /// large X). `read(dataset, first row, rows)` decodes one block.
    fn blocked<T>(
        &self,
        path: &str,
        read: impl Fn(&hdf5_pure::Dataset, u64, u64) -> Result<Vec<T>>,
    ) -> Result<Vec<T>> {
        const BLOCK: u64 = 1 << 20;
        let ds = self.data(path)?;
        let shape = self.h5(path, ds.shape())?;
        let rows = shape.first().copied().unwrap_or(1);
        let per_row: u64 = shape.iter().skip(1).product();
        let step = (BLOCK / per_row.max(1)).max(1);
        // The total is bounded by the file's size (see `data`).
        let mut out = Vec::with_capacity((rows * per_row) as usize);
        for start in (0..rows).step_by(step as usize) {
            out.extend(read(&ds, start, step)?);
        }
        Ok(out)
    }

    pub fn raw(&self, path: &str) -> Result<(Datatype, Vec<u8>)> {
        let ds = self.data(path)?;
        Ok((self.h5(path, ds.datatype())?, self.h5(path, ds.read_raw())?))
    }

    /// Strings from a string dataset; numbers are formatted as text.
    pub fn strings(&self, path: &str) -> Result<Vec<String>> {
        match self.dtype(path)? {
            DType::String | DType::VariableLengthString => {
                let ds = self.data(path)?;
                self.h5(path, ds.read_string())
            }
            DType::F32 | DType::F64 => Ok(self.f64s(path)?.iter().map(f64::to_string).collect()),
            d if is_int(&d) => Ok(self.i64s(path)?.iter().map(i64::to_string).collect()),
            other => Err(self.err(path, format!("expected strings, found {other}"))),
        }
    }

    fn bools(&self, path: &str) -> Result<Vec<bool>> {
        let (dt, raw) = self.raw(path)?;
        let size = dt.type_size().max(1) as usize;
        Ok(raw
            .chunks(size)
            .map(|c| c.iter().any(|&b| b != 0))
            .collect())
    }

    /// A matrix at `path`: a dense 2-D dataset or a compressed sparse group.
    pub fn matrix(&self, path: &str) -> Result<(Matrix, String)> {
        let (kind, values_path, rows, cols) = self.matrix_header(path)?;
        let dtype = numpy_name(&self.dtype(&values_path)?);
        let values = self.blocked(&values_path, |d, start, n| {
            self.h5(&values_path, d.read_f32_rows(start, n))
        })?;
        if kind == "dense" {
            let dense = dense(rows, cols, values).map_err(|e| self.err(path, e))?;
            return Ok((Matrix::Dense(dense), dtype));
        }
        let s = Sparse {
            rows,
            cols,
            indptr: self.indices(&join(path, "indptr"))?,
            indices: self.indices(&join(path, "indices"))?,
            data: values,
        };
        // indptr runs over rows for CSR, over columns for CSC.
        if kind == "csr" {
            s.check(rows, cols).map_err(|e| self.err(path, e))?;
            Ok((Matrix::Csr(s), dtype))
        } else {
            s.check(cols, rows).map_err(|e| self.err(path, e))?;
            Ok((Matrix::Csc(s), dtype))
        }
    }

    /// A matrix's storage ("dense", "csr" or "csc"), the dataset holding its
    /// values, and its shape, from the header alone.
    fn matrix_header(&self, path: &str) -> Result<(&'static str, String, usize, usize)> {
        match self.node(path) {
            Node::Dataset => {
                let shape = self.shape(path)?;
                let (rows, cols) = match shape[..] {
                    [r, c] => (r, c),
                    [r] => (r, 1),
                    _ => {
                        return Err(
                            self.err(path, format!("expected a 2-D array, found shape {shape:?}"))
                        )
                    }
                };
                Ok(("dense", path.to_string(), rows, cols))
            }
            Node::Group => {
                let attrs = self.attrs(path)?;
                let format = attr_str(&attrs, "encoding-type")
                    .or_else(|| attr_str(&attrs, "h5sparse_format"))
                    .unwrap_or_default();
                let kind = match format.as_str() {
                    "csr_matrix" | "csr" => "csr",
                    "csc_matrix" | "csc" => "csc",
                    other => {
                        return Err(self.err(
                            path,
                            format!(
                                "expected encoding-type csr_matrix or csc_matrix, found {other:?}"
                            ),
                        ))
                    }
                };
                let shape = attrs
                    .get("shape")
                    .or_else(|| attrs.get("h5sparse_shape"))
                    .and_then(attr_ints)
                    .ok_or_else(|| self.err(path, "sparse matrix without a `shape` attribute"))?;
                let [r, c] = shape[..] else {
                    return Err(self.err(path, format!("expected a 2-D shape, found {shape:?}")));
                };
                let dim = |v: i64| usize::try_from(v).map_err(|_| self.err(path, "negative shape"));
                Ok((kind, join(path, "data"), dim(r)?, dim(c)?))
            }
            Node::Missing => Err(self.err(path, "missing")),
        }
    }

    /// A 2-D numeric array as f64 (1-D arrays become one column).
    pub fn array(&self, path: &str) -> Result<Dense<f64>> {
        let shape = self.shape(path)?;
        let (rows, cols) = match shape[..] {
            [r] => (r, 1),
            [r, c] => (r, c),
            _ => {
                return Err(self.err(
                    path,
                    format!("expected a 1-D or 2-D array, found {shape:?}"),
                ))
            }
        };
        let data = if rows * cols == 0 {
            vec![]
        } else {
            self.f64s(path)?
        };
        dense(rows, cols, data).map_err(|e| self.err(path, e))
    }

    /// X's kind, shape check, dtype and a scan of its stored values, read
    /// `BLOCK` values at a time.
    #[cfg(not(target_arch = "wasm32"))]
    fn matrix_summary(&self, path: &str, obs_var: (usize, usize)) -> Result<(XSummary, String)> {
        const BLOCK: u64 = 1 << 20;
        let (kind, values_path, rows, cols) = self.matrix_header(path)?;
        if (rows, cols) != obs_var {
            return Err(self.err(
                path,
                format!(
                    "is {rows} x {cols} but obs x var is {} x {}",
                    obs_var.0, obs_var.1
                ),
            ));
        }
        let ds = self.data(&values_path)?;
        let dims = self.h5(&values_path, ds.shape())?;
        let first = dims.first().copied().unwrap_or(0);
        let per_row: u64 = dims.iter().skip(1).product();
        let step = (BLOCK / per_row.max(1)).max(1);
        let (mut check, mut nnz, mut stored) = (ValueCheck::start(), 0u64, 0u64);
        for start in (0..first).step_by(step as usize) {
            let block = self.h5(&values_path, ds.read_f32_rows(start, step))?;
            check.add(&block);
            nnz += block.iter().filter(|v| **v != 0.0).count() as u64;
            stored += block.len() as u64;
        }
        if kind == "dense" && stored != (rows * cols) as u64 {
            return Err(self.err(
                path,
                format!("{stored} values do not fill a {rows} x {cols} array"),
            ));
        }
        let values = check.finish(stored, (rows * cols) as u64);
        let dtype = numpy_name(&self.dtype(&values_path)?);
        Ok((
            XSummary {
                kind: kind.into(),
                dtype: dtype.clone(),
                nnz,
                values,
                raw_counts: values.is_counts(),
            },
            dtype,
        ))
    }

    /// The dataset; without `matrices`, X, layers and raw are left out
    /// (the annotations alone, for a summary).
    fn anndata(&self, matrices: bool) -> Result<Dataset> {
        let mut ds = Dataset {
            obs: self.frame("obs")?,
            var: self.frame("var")?,
            ..Dataset::default()
        };
        for key in ["layers", "obsm", "varm"] {
            if self.node(key) != Node::Group {
                continue;
            }
            for m in self.members(key)? {
                let path = join(key, &m);
                if key == "layers" {
                    if matrices {
                        ds.layers.insert(m, self.matrix(&path)?.0);
                    }
                } else if let Some(a) = self.annotation(&path)? {
                    let target = if key == "obsm" {
                        &mut ds.obsm
                    } else {
                        &mut ds.varm
                    };
                    target.insert(m, a);
                }
            }
        }
        // Pre-0.7 files keep obsm / varm as one compound dataset.
        for key in ["obsm", "varm"] {
            if self.node(key) == Node::Dataset {
                let target = if key == "obsm" {
                    &mut ds.obsm
                } else {
                    &mut ds.varm
                };
                for (name, col) in self.compound(key)? {
                    if let CompoundColumn::Array(a) = col {
                        target.insert(name, Annotation::Array(a));
                    }
                }
            }
        }
        match self.node("X") {
            _ if !matrices => {}
            Node::Missing if ds.n_vars() == 0 || !ds.layers.is_empty() => {}
            Node::Missing => {
                return Err(self.err(
                    "X",
                    "no X matrix: expected a dataset or a csr/csc group at /X",
                ))
            }
            _ => {
                let (x, dtype) = self.matrix("X")?;
                ds.x = Some(x);
                ds.x_dtype = dtype;
            }
        }
        for raw in ["raw/X", "raw.X"] {
            if matrices && self.node(raw) != Node::Missing {
                ds.raw_x = Some(self.matrix(raw)?.0);
                break;
            }
        }
        if self.node("uns") == Node::Group {
            if let Value::Dict(d) = self.uns("uns")? {
                ds.uns = d;
            }
        }
        self.legacy_categories(&mut ds);
        ds.check_shapes().map_err(|e| self.err("", e))?;
        Ok(ds)
    }

    fn annotation(&self, path: &str) -> Result<Option<Annotation>> {
        match (self.node(path), self.encoding(path).as_deref()) {
            (Node::Dataset, _) => Ok(Some(Annotation::Array(self.array(path)?))),
            (Node::Group, Some("dataframe")) => Ok(Some(Annotation::Frame(self.frame(path)?))),
            // Sparse obsm entries are rare and not used by any model here.
            _ => Ok(None),
        }
    }

    /// An obs / var frame in any of the three encodings.
    pub fn frame(&self, path: &str) -> Result<Frame> {
        match self.node(path) {
            Node::Missing => Err(self.err(path, "missing: an .h5ad needs obs and var")),
            Node::Dataset => self.compound_frame(path),
            Node::Group => {
                let attrs = self.attrs(path)?;
                let index_name = attr_str(&attrs, "_index").unwrap_or_else(|| "_index".into());
                let mut frame = Frame::with_index(self.strings(&join(path, &index_name))?);
                frame.index_name = Some(index_name.clone());
                let order: Vec<String> =
                    match attrs.get("column-order").and_then(|a| a.as_strings()) {
                        Some(cols) => cols.to_vec(),
                        None => self
                            .members(path)?
                            .into_iter()
                            .filter(|m| m != &index_name && m != "__categories")
                            .collect(),
                    };
                for name in order {
                    if name == index_name {
                        continue;
                    }
                    let col = self.column(path, &name)?;
                    frame.columns.push((name, col));
                }
                Ok(frame)
            }
        }
    }

    fn column(&self, frame: &str, name: &str) -> Result<Column> {
        let path = join(frame, name);
        let enc = self.encoding(&path);
        match (self.node(&path), enc.as_deref()) {
            (Node::Missing, _) => Err(self.err(&path, "listed in column-order but missing")),
            (Node::Group, Some("categorical")) => {
                let ordered = self
                    .attrs(&path)?
                    .get("ordered")
                    .and_then(AttrValue::as_i64)
                    .unwrap_or(0)
                    != 0;
                self.categorical(&join(&path, "codes"), &join(&path, "categories"), ordered)
            }
            (Node::Group, Some(e)) if e.starts_with("nullable") => {
                let mask = self.bools(&join(&path, "mask"))?;
                let values = join(&path, "values");
                Ok(match e {
                    "nullable-boolean" => Column::Bool(self.bools(&values)?),
                    "nullable-string-array" => Column::Str(self.strings(&values)?),
                    _ => Column::Float(
                        self.f64s(&values)?
                            .into_iter()
                            .zip(mask)
                            .map(|(v, m)| if m { f64::NAN } else { v })
                            .collect(),
                    ),
                })
            }
            (Node::Group, other) => {
                Err(self.err(&path, format!("unsupported column encoding {other:?}")))
            }
            (Node::Dataset, _) => {
                let old_categories = join(&join(frame, "__categories"), name);
                if self.node(&old_categories) == Node::Dataset {
                    return self.categorical(&path, &old_categories, false);
                }
                self.plain_column(&path)
            }
        }
    }

    fn plain_column(&self, path: &str) -> Result<Column> {
        Ok(match self.dtype(path)? {
            DType::String | DType::VariableLengthString => Column::Str(self.strings(path)?),
            DType::F32 | DType::F64 => Column::Float(self.f64s(path)?),
            DType::Enum(_) => Column::Bool(self.bools(path)?),
            d if is_int(&d) => Column::Int(self.i64s(path)?),
            other => return Err(self.err(path, format!("unsupported column type {other}"))),
        })
    }

    fn categorical(&self, codes: &str, categories: &str, ordered: bool) -> Result<Column> {
        let codes = self
            .i64s(codes)?
            .into_iter()
            .map(|c| {
                i32::try_from(c)
                    .map_err(|_| self.err(codes, format!("category code {c} out of range")))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Column::Categorical {
            codes,
            categories: self.strings(categories)?,
            ordered,
        })
    }

    fn uns(&self, path: &str) -> Result<Value> {
        match self.node(path) {
            Node::Group => {
                let mut d = BTreeMap::new();
                if matches!(
                    self.encoding(path).as_deref(),
                    Some("csr_matrix" | "csc_matrix" | "dataframe")
                ) {
                    return Ok(Value::Dict(d));
                }
                for m in self.members(path)? {
                    d.insert(m.clone(), self.uns(&join(path, &m))?);
                }
                Ok(Value::Dict(d))
            }
            Node::Dataset => self.uns_value(path),
            Node::Missing => Err(self.err(path, "missing")),
        }
    }

    fn uns_value(&self, path: &str) -> Result<Value> {
        let shape = self.shape(path)?;
        let scalar = shape.is_empty();
        Ok(match self.dtype(path)? {
            DType::String | DType::VariableLengthString => {
                let mut s = self.strings(path)?;
                if scalar && s.len() == 1 {
                    Value::Str(s.remove(0))
                } else {
                    Value::Strings(s)
                }
            }
            DType::Enum(_) => {
                let b = self.bools(path)?;
                if scalar && b.len() == 1 {
                    Value::Bool(b[0])
                } else {
                    Value::Ints {
                        shape,
                        data: b.into_iter().map(i64::from).collect(),
                    }
                }
            }
            DType::F32 | DType::F64 => {
                let data = self.f64s(path)?;
                if scalar && data.len() == 1 {
                    Value::Float(data[0])
                } else {
                    Value::Floats { shape, data }
                }
            }
            DType::U8 => Value::Bytes {
                shape,
                data: self.raw(path)?.1,
            },
            d if is_int(&d) => {
                let data = self.i64s(path)?;
                if scalar && data.len() == 1 {
                    Value::Int(data[0])
                } else {
                    Value::Ints { shape, data }
                }
            }
            // Compound or reference values in uns are not used by any method.
            _ => Value::Strings(vec![]),
        })
    }

    /// Pre-0.7: a categorical obs column is an integer code column plus
    /// `uns/<column>_categories`.
    fn legacy_categories(&self, ds: &mut Dataset) {
        if self.node("obs") != Node::Dataset {
            return;
        }
        for frame in [&mut ds.obs, &mut ds.var] {
            for (name, col) in frame.columns.iter_mut() {
                let Column::Int(codes) = col else { continue };
                let Some(Value::Strings(categories)) = ds.uns.get(&format!("{name}_categories"))
                else {
                    continue;
                };
                *col = Column::Categorical {
                    codes: codes.iter().map(|&c| c as i32).collect(),
                    categories: categories.clone(),
                    ordered: false,
                };
            }
        }
    }

    fn compound_frame(&self, path: &str) -> Result<Frame> {
        let mut frame = Frame::default();
        for (name, col) in self.compound(path)? {
            match col {
                CompoundColumn::Column(Column::Str(v)) if name == "index" => frame.index = v,
                CompoundColumn::Column(c) => frame.columns.push((name, c)),
                CompoundColumn::Array(_) => {}
            }
        }
        if frame.index.is_empty() {
            let n = frame.columns.first().map_or(0, |(_, c)| c.len());
            frame.index = (0..n).map(|i| i.to_string()).collect();
        }
        frame.index_name = Some("index".into());
        Ok(frame)
    }

    /// Splits a compound dataset into columns (scalars) and arrays (fixed-size array members).
    fn compound(&self, path: &str) -> Result<Vec<(String, CompoundColumn)>> {
        let (dt, raw) = self.raw(path)?;
        let Datatype::Compound { size, members } = dt else {
            return Err(self.err(path, "expected a compound (record) dataset"));
        };
        let size = size as usize;
        if size == 0 || raw.len() % size != 0 {
            return Err(self.err(path, "record size does not divide the data"));
        }
        let n = raw.len() / size;
        let mut out = Vec::new();
        for m in members {
            let off = m.byte_offset as usize;
            let (base, width) = match &m.datatype {
                Datatype::Array {
                    base_type,
                    dimensions,
                } => (
                    base_type.as_ref(),
                    dimensions.iter().map(|&d| d as usize).product(),
                ),
                other => (other, 0),
            };
            let el = base.type_size() as usize;
            if off + el * width.max(1) > size {
                return Err(self.err(path, format!("member {} overruns its record", m.name)));
            }
            let read = |i: usize, k: usize| -> Result<f64> {
                let b = &raw[i * size + off + k * el..i * size + off + (k + 1) * el];
                scalar(base, b)
                    .ok_or_else(|| self.err(path, format!("member {}: unsupported type", m.name)))
            };
            if width > 0 {
                let mut data = Vec::with_capacity(n * width);
                for i in 0..n {
                    for k in 0..width {
                        data.push(read(i, k)?);
                    }
                }
                out.push((
                    m.name.clone(),
                    CompoundColumn::Array(dense(n, width, data).expect("rows x cols values")),
                ));
                continue;
            }
            let col = match base {
                Datatype::String { .. } => Column::Str(
                    (0..n)
                        .map(|i| {
                            let b = &raw[i * size + off..i * size + off + el];
                            let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
                            String::from_utf8_lossy(&b[..end]).trim_end().to_string()
                        })
                        .collect(),
                ),
                Datatype::FloatingPoint { .. } => {
                    Column::Float((0..n).map(|i| read(i, 0)).collect::<Result<_>>()?)
                }
                Datatype::Enumeration { .. } => Column::Bool(
                    (0..n)
                        .map(|i| Ok(read(i, 0)? != 0.0))
                        .collect::<Result<_>>()?,
                ),
                _ => Column::Int(
                    (0..n)
                        .map(|i| Ok(read(i, 0)? as i64))
                        .collect::<Result<_>>()?,
                ),
            };
            out.push((m.name.clone(), CompoundColumn::Column(col)));
        }
        Ok(out)
    }
}

enum CompoundColumn {
    Column(Column),
    Array(Dense<f64>),
}

/// One little-endian number of the given type.
fn scalar(dt: &Datatype, b: &[u8]) -> Option<f64> {
    match dt {
        Datatype::FixedPoint {
            byte_order: DatatypeByteOrder::LittleEndian,
            layout,
            ..
        } => {
            let mut buf = [0u8; 8];
            buf[..b.len().min(8)].copy_from_slice(&b[..b.len().min(8)]);
            let u = u64::from_le_bytes(buf);
            Some(if layout.signed {
                let shift = 64 - 8 * b.len() as u32;
                ((u << shift) as i64 >> shift) as f64
            } else {
                u as f64
            })
        }
        Datatype::FloatingPoint {
            byte_order: DatatypeByteOrder::LittleEndian,
            size: 4,
            ..
        } => Some(f32::from_le_bytes(b.try_into().ok()?) as f64),
        Datatype::FloatingPoint {
            byte_order: DatatypeByteOrder::LittleEndian,
            size: 8,
            ..
        } => Some(f64::from_le_bytes(b.try_into().ok()?)),
        Datatype::Enumeration { base_type, .. } => scalar(base_type, b),
        _ => None,
    }
}

fn is_int(d: &DType) -> bool {
    matches!(
        d,
        DType::I8
            | DType::I16
            | DType::I32
            | DType::I64
            | DType::U8
            | DType::U16
            | DType::U32
            | DType::U64
    )
}

/// numpy's name for an HDF5 type, as `tessera info` reports it.
pub(crate) fn numpy_name(dt: &DType) -> String {
    match dt {
        DType::F32 => "float32",
        DType::F64 => "float64",
        DType::I8 => "int8",
        DType::I16 => "int16",
        DType::I32 => "int32",
        DType::I64 => "int64",
        DType::U8 => "uint8",
        DType::U16 => "uint16",
        DType::U32 => "uint32",
        DType::U64 => "uint64",
        DType::Enum(_) => "bool",
        _ => "other",
    }
    .to_string()
}
