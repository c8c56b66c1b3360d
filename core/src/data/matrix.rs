//! X and layers: dense (ndarray, row-major) or compressed sparse (CSR /
//! CSC), f32 values.

use ndarray::Array2;

/// A dense matrix: rows x columns, built row-major by [`dense`].
pub type Dense<T> = Array2<T>;

/// A dense matrix from row-major values, or why they do not fit.
pub fn dense<T>(rows: usize, cols: usize, data: Vec<T>) -> Result<Dense<T>, String> {
    let n = data.len();
    Array2::from_shape_vec((rows, cols), data)
        .map_err(|_| format!("{n} values do not fill a {rows} x {cols} array"))
}

/// Compressed sparse storage; whether `indptr` runs over rows (CSR) or
/// columns (CSC) is told by the `Matrix` variant that holds it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sparse {
    pub rows: usize,
    pub cols: usize,
    pub indptr: Vec<u64>,
    pub indices: Vec<u32>,
    pub data: Vec<f32>,
}

impl Sparse {
    /// Validates the structure: `major` is the length `indptr` indexes (rows
    /// for CSR), `minor` the range of `indices`.
    pub fn check(&self, major: usize, minor: usize) -> Result<(), String> {
        if self.indptr.len() != major + 1 {
            return Err(format!(
                "indptr has {} entries, expected {}",
                self.indptr.len(),
                major + 1
            ));
        }
        if self.indices.len() != self.data.len() {
            return Err(format!(
                "indices has {} entries but data has {}",
                self.indices.len(),
                self.data.len()
            ));
        }
        if self.indptr[0] != 0 || self.indptr.windows(2).any(|w| w[0] > w[1]) {
            return Err("indptr does not start at 0 or decreases".into());
        }
        if *self.indptr.last().unwrap_or(&0) != self.data.len() as u64 {
            return Err(format!(
                "indptr ends at {} but there are {} stored values",
                self.indptr.last().unwrap_or(&0),
                self.data.len()
            ));
        }
        if let Some(bad) = self.indices.iter().find(|&&i| i as usize >= minor) {
            return Err(format!("index {bad} is out of range 0..{minor}"));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Matrix {
    Dense(Dense<f32>),
    Csr(Sparse),
    Csc(Sparse),
}

/// What a scan of the stored values found: is this raw counts?
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ValueCheck {
    pub min: f64,
    pub max: f64,
    pub negative: u64,
    pub nan: u64,
    pub non_integer: u64,
}

impl ValueCheck {
    /// A scan with nothing seen yet; feed it with [`add`](Self::add) (one
    /// block at a time for a matrix read in blocks).
    pub fn start() -> ValueCheck {
        ValueCheck {
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            ..ValueCheck::default()
        }
    }

    pub fn add(&mut self, values: &[f32]) {
        for &v in values {
            if v.is_nan() {
                self.nan += 1;
                continue;
            }
            self.min = self.min.min(v as f64);
            self.max = self.max.max(v as f64);
            if v < 0.0 {
                self.negative += 1;
            }
            if v.fract() != 0.0 || !v.is_finite() {
                self.non_integer += 1;
            }
        }
    }

    /// Ends a scan of `stored` values of a matrix of `entries`: the implicit
    /// zeros of a sparse matrix count towards the range.
    pub fn finish(mut self, stored: u64, entries: u64) -> ValueCheck {
        if stored < entries {
            self.min = self.min.min(0.0);
            self.max = self.max.max(0.0);
        }
        if self.min > self.max {
            (self.min, self.max) = (0.0, 0.0);
        }
        self
    }

    /// Raw counts: finite, non-negative whole numbers only.
    pub fn is_counts(&self) -> bool {
        self.negative == 0 && self.nan == 0 && self.non_integer == 0
    }
}

impl Matrix {
    pub fn shape(&self) -> (usize, usize) {
        match self {
            Matrix::Dense(d) => d.dim(),
            Matrix::Csr(s) | Matrix::Csc(s) => (s.rows, s.cols),
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Matrix::Dense(_) => "dense",
            Matrix::Csr(_) => "csr",
            Matrix::Csc(_) => "csc",
        }
    }

    /// Stored values in storage order (for dense, every entry).
    pub fn values(&self) -> &[f32] {
        match self {
            Matrix::Dense(d) => d
                .as_slice_memory_order()
                .expect("dense matrices are built contiguous"),
            Matrix::Csr(s) | Matrix::Csc(s) => &s.data,
        }
    }

    pub fn nnz(&self) -> u64 {
        self.values().iter().filter(|v| **v != 0.0).count() as u64
    }

    pub fn check_values(&self) -> ValueCheck {
        let mut c = ValueCheck::start();
        let values = self.values();
        c.add(values);
        let (r, k) = self.shape();
        c.finish(values.len() as u64, (r * k) as u64)
    }

    /// The value at (r, c); O(row length) for sparse storage.
    pub fn get(&self, r: usize, c: usize) -> f32 {
        let find = |s: &Sparse, major: usize, minor: usize| {
            let (a, b) = (s.indptr[major] as usize, s.indptr[major + 1] as usize);
            s.indices[a..b]
                .iter()
                .position(|&i| i as usize == minor)
                .map_or(0.0, |p| s.data[a + p])
        };
        match self {
            Matrix::Dense(d) => d[[r, c]],
            Matrix::Csr(s) => find(s, r, c),
            Matrix::Csc(s) => find(s, c, r),
        }
    }

    /// Sum of each row (total counts per cell).
    pub fn row_sums(&self) -> Vec<f64> {
        let (rows, _) = self.shape();
        let mut out = vec![0.0; rows];
        match self {
            Matrix::Dense(d) => {
                for (o, row) in out.iter_mut().zip(d.rows()) {
                    *o = row.iter().map(|&v| v as f64).sum();
                }
            }
            Matrix::Csr(s) => {
                for (r, o) in out.iter_mut().enumerate() {
                    let (a, b) = (s.indptr[r] as usize, s.indptr[r + 1] as usize);
                    *o = s.data[a..b].iter().map(|&v| v as f64).sum();
                }
            }
            Matrix::Csc(s) => {
                for (i, &r) in s.indices.iter().enumerate() {
                    out[r as usize] += s.data[i] as f64;
                }
            }
        }
        out
    }

    /// Dense row-major copy of the columns `cols`, in that order (rows × cols.len()).
    pub fn columns_dense(&self, cols: &[usize]) -> Vec<f32> {
        let (rows, ncol) = self.shape();
        let k = cols.len();
        let mut out = vec![0f32; rows * k];
        // Where each source column lands (usize::MAX: not taken).
        let mut slot = vec![usize::MAX; ncol];
        for (j, &c) in cols.iter().enumerate() {
            slot[c] = j;
        }
        match self {
            Matrix::Dense(d) => {
                for (r, row) in d.rows().into_iter().enumerate() {
                    for (j, &c) in cols.iter().enumerate() {
                        out[r * k + j] = row[c];
                    }
                }
            }
            Matrix::Csr(s) => {
                for r in 0..rows {
                    for i in s.indptr[r] as usize..s.indptr[r + 1] as usize {
                        let j = slot[s.indices[i] as usize];
                        if j != usize::MAX {
                            out[r * k + j] = s.data[i];
                        }
                    }
                }
            }
            Matrix::Csc(s) => {
                for (j, &c) in cols.iter().enumerate() {
                    for i in s.indptr[c] as usize..s.indptr[c + 1] as usize {
                        out[s.indices[i] as usize * k + j] = s.data[i];
                    }
                }
            }
        }
        out
    }

    /// Column sums in f64.
    pub fn col_sums(&self) -> Vec<f64> {
        self.col_fold(|v| v as f64)
    }

    /// Number of nonzero entries in each column.
    pub fn col_nonzero(&self) -> Vec<usize> {
        self.col_fold(|v| f64::from(u8::from(v != 0.0)))
            .into_iter()
            .map(|c| c as usize)
            .collect()
    }

    /// Σ f(value) over the stored values of each column (f(0) must be 0).
    fn col_fold(&self, f: impl Fn(f32) -> f64) -> Vec<f64> {
        let (_, cols) = self.shape();
        let mut out = vec![0f64; cols];
        match self {
            Matrix::Dense(d) => {
                // Row by row: contiguous reads of a row-major matrix.
                for row in d.rows() {
                    for (o, &v) in out.iter_mut().zip(row) {
                        *o += f(v);
                    }
                }
            }
            Matrix::Csr(s) => {
                for (&c, &v) in s.indices.iter().zip(&s.data) {
                    out[c as usize] += f(v);
                }
            }
            Matrix::Csc(s) => {
                for (c, o) in out.iter_mut().enumerate() {
                    let span = s.indptr[c] as usize..s.indptr[c + 1] as usize;
                    *o = s.data[span].iter().map(|&v| f(v)).sum();
                }
            }
        }
        out
    }

    /// Keeps the distinct columns `cols`, in that order, in the same
    /// storage: a sparse matrix stays sparse, and CSR is compacted in place
    /// (no second copy of a large reference).
    pub fn into_columns(self, cols: &[usize]) -> Matrix {
        match self {
            Matrix::Dense(d) => Matrix::Dense(d.select(ndarray::Axis(1), cols)),
            Matrix::Csr(mut s) => {
                let mut new_of = vec![u32::MAX; s.cols];
                for (i, &c) in cols.iter().enumerate() {
                    new_of[c] = i as u32;
                }
                let (mut w, mut start) = (0, 0);
                for r in 0..s.rows {
                    let end = s.indptr[r + 1] as usize;
                    for p in start..end {
                        let c = new_of[s.indices[p] as usize];
                        if c != u32::MAX {
                            s.indices[w] = c;
                            s.data[w] = s.data[p];
                            w += 1;
                        }
                    }
                    start = end;
                    s.indptr[r + 1] = w as u64;
                }
                s.indices.truncate(w);
                s.data.truncate(w);
                s.indices.shrink_to_fit();
                s.data.shrink_to_fit();
                s.cols = cols.len();
                if cols.windows(2).any(|p| p[0] > p[1]) {
                    // Reordered columns: each row's indices sorted again.
                    for r in 0..s.rows {
                        let span = s.indptr[r] as usize..s.indptr[r + 1] as usize;
                        let mut row: Vec<(u32, f32)> = s.indices[span.clone()]
                            .iter()
                            .copied()
                            .zip(s.data[span.clone()].iter().copied())
                            .collect();
                        row.sort_unstable_by_key(|e| e.0);
                        for (k, (c, v)) in row.into_iter().enumerate() {
                            s.indices[span.start + k] = c;
                            s.data[span.start + k] = v;
                        }
                    }
                }
                Matrix::Csr(s)
            }
            Matrix::Csc(s) => {
                let mut out = Sparse {
                    rows: s.rows,
                    cols: cols.len(),
                    indptr: vec![0],
                    ..Sparse::default()
                };
                for &c in cols {
                    let span = s.indptr[c] as usize..s.indptr[c + 1] as usize;
                    out.indices.extend_from_slice(&s.indices[span.clone()]);
                    out.data.extend_from_slice(&s.data[span]);
                    out.indptr.push(out.data.len() as u64);
                }
                Matrix::Csc(out)
            }
        }
    }

    /// Calls `f(column, value)` for each stored non-zero of row `r`, in
    /// column order (a scan of every column for CSC: convert first when
    /// reading many rows).
    pub fn for_row(&self, r: usize, mut f: impl FnMut(usize, f32)) {
        match self {
            Matrix::Dense(d) => {
                for (c, &v) in d.row(r).iter().enumerate() {
                    if v != 0.0 {
                        f(c, v)
                    }
                }
            }
            Matrix::Csr(s) => {
                // A non-canonical row may store a column twice: scipy sums
                // them, and so does this (adjacent ones, as sorted rows have).
                let span = s.indptr[r] as usize..s.indptr[r + 1] as usize;
                let mut run: Option<(u32, f32)> = None;
                for (&c, &v) in s.indices[span.clone()].iter().zip(&s.data[span]) {
                    match &mut run {
                        Some((rc, rv)) if *rc == c => *rv += v,
                        _ => {
                            if let Some((rc, rv)) = run.filter(|e| e.1 != 0.0) {
                                f(rc as usize, rv)
                            }
                            run = Some((c, v));
                        }
                    }
                }
                if let Some((rc, rv)) = run.filter(|e| e.1 != 0.0) {
                    f(rc as usize, rv)
                }
            }
            Matrix::Csc(s) => {
                for c in 0..s.cols {
                    let span = s.indptr[c] as usize..s.indptr[c + 1] as usize;
                    if let Ok(p) = s.indices[span.clone()].binary_search(&(r as u32)) {
                        let v = s.data[span.start + p];
                        if v != 0.0 {
                            f(c, v)
                        }
                    }
                }
            }
        }
    }

    /// Row-major copy with rows in `rows` order (used for joins and subsets).
    pub fn take_rows(&self, rows: &[usize]) -> Matrix {
        let (_, cols) = self.shape();
        match self {
            Matrix::Dense(d) => Matrix::Dense(d.select(ndarray::Axis(0), rows)),
            Matrix::Csr(s) => {
                let mut out = Sparse {
                    rows: rows.len(),
                    cols,
                    indptr: vec![0],
                    ..Sparse::default()
                };
                for &r in rows {
                    let (a, b) = (s.indptr[r] as usize, s.indptr[r + 1] as usize);
                    out.indices.extend_from_slice(&s.indices[a..b]);
                    out.data.extend_from_slice(&s.data[a..b]);
                    out.indptr.push(out.data.len() as u64);
                }
                Matrix::Csr(out)
            }
            Matrix::Csc(_) => self.to_csr().take_rows(rows),
        }
    }

    /// Converts to CSR (a transpose of the compressed structure for CSC).
    pub fn to_csr(&self) -> Matrix {
        match self {
            Matrix::Csr(_) => self.clone(),
            Matrix::Dense(d) => {
                let mut s = Sparse {
                    rows: d.nrows(),
                    cols: d.ncols(),
                    indptr: vec![0],
                    ..Sparse::default()
                };
                for row in d.rows() {
                    for (c, &v) in row.iter().enumerate() {
                        if v != 0.0 {
                            s.indices.push(c as u32);
                            s.data.push(v);
                        }
                    }
                    s.indptr.push(s.data.len() as u64);
                }
                Matrix::Csr(s)
            }
            Matrix::Csc(s) => Matrix::Csr(transpose_compressed(s, s.cols, s.rows)),
        }
    }
}

/// Re-compresses along the other axis. `major`/`minor` are the input's
/// compressed and index dimensions; rows/cols are carried over unchanged.
pub(crate) fn transpose_compressed(s: &Sparse, major: usize, minor: usize) -> Sparse {
    let mut counts = vec![0u64; minor + 1];
    for &i in &s.indices {
        counts[i as usize + 1] += 1;
    }
    for i in 0..minor {
        counts[i + 1] += counts[i];
    }
    let indptr = counts.clone();
    let mut next = counts;
    let mut indices = vec![0u32; s.indices.len()];
    let mut data = vec![0f32; s.data.len()];
    for m in 0..major {
        for k in s.indptr[m] as usize..s.indptr[m + 1] as usize {
            let dst = &mut next[s.indices[k] as usize];
            indices[*dst as usize] = m as u32;
            data[*dst as usize] = s.data[k];
            *dst += 1;
        }
    }
    Sparse {
        rows: s.rows,
        cols: s.cols,
        indptr,
        indices,
        data,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Dense<f32> {
        dense(2, 3, vec![1.0, 0.0, 2.0, 0.0, 3.0, 0.0]).unwrap()
    }

    #[test]
    fn csr_and_csc_agree_with_dense() {
        let d = Matrix::Dense(sample());
        let csr = d.to_csr();
        let Matrix::Csr(s) = &csr else { panic!() };
        s.check(2, 3).unwrap();
        let csc = Matrix::Csc(transpose_compressed(s, 2, 3));
        let Matrix::Csc(t) = &csc else { panic!() };
        t.check(3, 2).unwrap();
        for r in 0..2 {
            for c in 0..3 {
                assert_eq!(d.get(r, c), csr.get(r, c));
                assert_eq!(d.get(r, c), csc.get(r, c));
            }
        }
        assert_eq!(csc.to_csr(), csr);
        assert_eq!(csc.row_sums(), vec![3.0, 3.0]);
        assert_eq!(csr.take_rows(&[1, 0]).get(0, 1), 3.0);
    }

    #[test]
    fn column_subsets_keep_the_storage_and_the_values() {
        let d = Matrix::Dense(sample());
        let csr = d.to_csr();
        let Matrix::Csr(s) = &csr else { panic!() };
        let csc = Matrix::Csc(transpose_compressed(s, 2, 3));
        for cols in [vec![2, 0], vec![1], vec![0, 1, 2]] {
            let want = d.columns_dense(&cols);
            for m in [&d, &csr, &csc] {
                let kind = m.kind();
                let sub = m.clone().into_columns(&cols);
                assert_eq!((sub.kind(), sub.shape()), (kind, (2, cols.len())));
                assert_eq!(
                    sub.columns_dense(&(0..cols.len()).collect::<Vec<_>>()),
                    want
                );
                let mut rows = vec![];
                for r in 0..2 {
                    sub.for_row(r, |c, v| rows.push((r, c, v)));
                }
                let nz: Vec<_> = (0..2 * cols.len())
                    .filter(|&i| want[i] != 0.0)
                    .map(|i| (i / cols.len(), i % cols.len(), want[i]))
                    .collect();
                assert_eq!(rows, nz, "{kind} {cols:?}");
            }
        }
    }

    #[test]
    fn a_column_stored_twice_in_a_row_is_summed_as_scipy_does() {
        let m = Matrix::Csr(Sparse {
            rows: 1,
            cols: 3,
            indptr: vec![0, 4],
            indices: vec![0, 1, 1, 2],
            data: vec![1.0, 2.0, 3.0, 0.0],
        });
        let mut seen = vec![];
        m.for_row(0, |c, v| seen.push((c, v)));
        assert_eq!(seen, vec![(0, 1.0), (1, 5.0)]);
    }

    #[test]
    fn value_check_flags_non_counts() {
        let m = Matrix::Dense(dense(1, 4, vec![1.0, -2.0, 0.5, f32::NAN]).unwrap());
        let c = m.check_values();
        assert_eq!((c.negative, c.nan, c.non_integer), (1, 1, 1));
        assert!(!c.is_counts());
        assert!(Matrix::Dense(sample()).check_values().is_counts());
    }

    #[test]
    fn sparse_check_names_the_fault() {
        let bad = Sparse {
            rows: 1,
            cols: 2,
            indptr: vec![0, 1],
            indices: vec![5],
            data: vec![1.0],
        };
        assert!(bad.check(1, 2).unwrap_err().contains("out of range"));
    }
}
