//! 10x Genomics outputs: the feature-barcode matrix (HDF5 `matrix/` group, or
//! Matrix Market `matrix.mtx` + `barcodes.tsv` + `features.tsv`) and Space
//! Ranger's `spatial/` folder (tissue positions v1/v2, scalefactors, images).
//!
//! Follows scanpy's `read_10x_h5` / `read_visium`: genes are var (symbols as
//! var_names, `gene_ids`, `feature_types`, `genome`), only "Gene Expression"
//! features are kept, `obsm['spatial']` = (pxl_col, pxl_row) in full-resolution
//! pixels, `uns['spatial'][library_id]` holds images and scalefactors.

use std::collections::{BTreeMap, HashMap};
use std::io::BufRead;

use super::error::{Error, Result};
use super::files::{FileSet, NamedFile};
use super::h5ad::{self, Node, Reader};
use crate::data::{
    dense, var_names_make_unique, Annotation, Column, Dataset, Frame, Matrix, Sparse, Value,
};

/// The counts matrix from a 10x HDF5 file (v3 `matrix/` or v2 `<genome>/`).
pub fn read_h5(name: &str, bytes: Vec<u8>) -> Result<Dataset> {
    super::error::guarded(name, || read_h5_unguarded(name, bytes))
}

fn read_h5_unguarded(name: &str, bytes: Vec<u8>) -> Result<Dataset> {
    let file = h5ad::open(name, bytes)?;
    let r = Reader { name, file: &file };
    let group = if r.node("matrix") == Node::Group {
        "matrix".to_string()
    } else {
        r.members("")?
            .into_iter()
            .find(|g| r.node(&format!("{g}/indptr")) == Node::Dataset)
            .ok_or_else(|| {
                r.err(
                    "matrix",
                    "no 10x matrix group (expected matrix/data, indices, indptr, shape)",
                )
            })?
    };
    let p = |k: &str| format!("{group}/{k}");
    let shape: Vec<usize> = r.indices(&p("shape"))?;
    let [n_genes, n_cells] = shape[..] else {
        return Err(r.err(&p("shape"), format!("expected 2 values, found {shape:?}")));
    };
    // 10x stores genes x barcodes compressed by barcode: the same arrays read
    // as barcodes x genes are CSR.
    let s = Sparse {
        rows: n_cells,
        cols: n_genes,
        indptr: r.indices(&p("indptr"))?,
        indices: r.indices(&p("indices"))?,
        data: r.f32s(&p("data"))?,
    };
    s.check(n_cells, n_genes).map_err(|e| r.err(&group, e))?;
    let barcodes = r.strings(&p("barcodes"))?;
    let (ids, names, types, genome) = if r.node(&p("features")) == Node::Group {
        let f = |k: &str| r.strings(&p(&format!("features/{k}")));
        let types = f("feature_type")?;
        let genome = f("genome").unwrap_or_else(|_| vec![String::new(); types.len()]);
        (f("id")?, f("name")?, types, genome)
    } else {
        let ids = r.strings(&p("genes"))?;
        let n = ids.len();
        (
            ids,
            r.strings(&p("gene_names"))?,
            vec!["Gene Expression".into(); n],
            vec![group.clone(); n],
        )
    };
    let mut ds = from_parts(
        name,
        Matrix::Csr(s),
        barcodes,
        ids,
        names,
        types,
        Some(genome),
    )?;
    ds.x_dtype = h5ad::numpy_name(&r.dtype(&p("data"))?);
    if let Some(lib) = r
        .attrs("")
        .ok()
        .and_then(|a| h5ad::attr_str(&a, "library_ids"))
    {
        ds.uns.insert("library_id".into(), Value::Str(lib));
    }
    Ok(ds)
}

/// Builds the dataset and keeps only "Gene Expression" features (when there are any).
fn from_parts(
    file: &str,
    x: Matrix,
    barcodes: Vec<String>,
    ids: Vec<String>,
    mut names: Vec<String>,
    types: Vec<String>,
    genome: Option<Vec<String>>,
) -> Result<Dataset> {
    let (n_cells, n_genes) = x.shape();
    if barcodes.len() != n_cells
        || ids.len() != n_genes
        || names.len() != n_genes
        || types.len() != n_genes
    {
        return Err(Error::new(
            file,
            "",
            format!(
                "matrix is {n_genes} features x {n_cells} barcodes but lists {} barcodes and {} features",
                barcodes.len(),
                ids.len()
            ),
        ));
    }
    var_names_make_unique(&mut names);
    let mut var = Frame::with_index(names);
    var.set("gene_ids", Column::Str(ids));
    var.set("feature_types", Column::categorical_from(&types));
    if let Some(g) = genome {
        var.set("genome", Column::categorical_from(&g));
    }
    let mut ds = Dataset {
        x: Some(x),
        x_dtype: "float32".into(),
        obs: Frame::with_index(barcodes),
        var,
        ..Dataset::default()
    };
    let keep: Vec<usize> = (0..n_genes)
        .filter(|&j| types[j] == "Gene Expression")
        .collect();
    if !keep.is_empty() && keep.len() < n_genes {
        ds = keep_vars(ds, &keep);
    }
    Ok(ds)
}

/// Subsets var (and X's columns) to `keep`, in order.
fn keep_vars(mut ds: Dataset, keep: &[usize]) -> Dataset {
    let Some(x) = ds.x.take() else { return ds };
    let Matrix::Csr(s) = x.to_csr() else {
        unreachable!("to_csr returns CSR")
    };
    let mut new_col = vec![u32::MAX; s.cols];
    for (k, &j) in keep.iter().enumerate() {
        new_col[j] = k as u32;
    }
    let mut out = Sparse {
        rows: s.rows,
        cols: keep.len(),
        indptr: vec![0],
        ..Sparse::default()
    };
    for r in 0..s.rows {
        for k in s.indptr[r] as usize..s.indptr[r + 1] as usize {
            let c = new_col[s.indices[k] as usize];
            if c != u32::MAX {
                out.indices.push(c);
                out.data.push(s.data[k]);
            }
        }
        out.indptr.push(out.data.len() as u64);
    }
    ds.x = Some(Matrix::Csr(out));
    ds.var = ds.var.take(keep);
    ds
}

/// Matrix Market triple: `matrix.mtx`, `barcodes.tsv`, `features.tsv` / `genes.tsv` (each maybe `.gz`).
pub fn read_mtx(files: &FileSet) -> Result<Dataset> {
    let mtx = files
        .find("matrix.mtx")
        .ok_or_else(|| Error::new(&files.label(), "matrix.mtx", "missing"))?;
    let barcodes_file = files
        .find("barcodes.tsv")
        .ok_or_else(|| Error::new(&mtx.path, "barcodes.tsv", "missing beside matrix.mtx"))?;
    let features_file = files
        .find("features.tsv")
        .or_else(|| files.find("genes.tsv"))
        .ok_or_else(|| Error::new(&mtx.path, "features.tsv", "missing beside matrix.mtx"))?;
    let barcodes: Vec<String> = lines(barcodes_file)?
        .into_iter()
        .map(|l| l.split('\t').next().unwrap_or("").to_string())
        .collect();
    let mut ids = Vec::new();
    let mut names = Vec::new();
    let mut types = Vec::new();
    for l in lines(features_file)? {
        let f: Vec<&str> = l.split('\t').collect();
        ids.push(f[0].to_string());
        names.push(f.get(1).unwrap_or(&f[0]).to_string());
        types.push(f.get(2).unwrap_or(&"Gene Expression").to_string());
    }
    let x = parse_mtx(mtx, barcodes.len(), ids.len())?;
    from_parts(&mtx.path, x, barcodes, ids, names, types, None)
}

fn lines(f: &NamedFile) -> Result<Vec<String>> {
    let bytes = f.contents()?;
    let mut out = Vec::new();
    for (i, l) in bytes.lines().enumerate() {
        let l = l.map_err(|e| Error::new(&f.path, &format!("line {}", i + 1), e.to_string()))?;
        if !l.trim().is_empty() {
            out.push(l.trim_end().to_string());
        }
    }
    Ok(out)
}

/// Coordinate-format Matrix Market, features x barcodes, 1-based.
fn parse_mtx(f: &NamedFile, n_cells: usize, n_genes: usize) -> Result<Matrix> {
    let bytes = f.contents()?;
    let text = std::str::from_utf8(&bytes)
        .map_err(|e| Error::new(&f.path, "", format!("not text ({e})")))?;
    let mut body = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.starts_with('%') && !l.trim().is_empty());
    let (_, size) = body
        .next()
        .ok_or_else(|| Error::new(&f.path, "", "no size line"))?;
    let dims: Vec<usize> = size
        .split_whitespace()
        .map(|s| s.parse().unwrap_or(usize::MAX))
        .collect();
    if dims.len() != 3 || dims[0] != n_genes || dims[1] != n_cells {
        return Err(Error::new(
            &f.path,
            "size line",
            format!("expected {n_genes} {n_cells} <nnz> (features, barcodes), found {size:?}"),
        ));
    }
    let mut triples: Vec<(u32, u32, f32)> = Vec::with_capacity(dims[2].min(1 << 28));
    for (i, l) in body {
        let mut it = l.split_whitespace();
        let bad = || {
            Error::new(
                &f.path,
                &format!("line {}", i + 1),
                format!("expected `row col value`, found {l:?}"),
            )
        };
        let g: usize = it.next().and_then(|s| s.parse().ok()).ok_or_else(bad)?;
        let c: usize = it.next().and_then(|s| s.parse().ok()).ok_or_else(bad)?;
        let v: f32 = it
            .next()
            .map_or(Some(1.0), |s| s.parse().ok())
            .ok_or_else(bad)?;
        if g == 0 || c == 0 || g > n_genes || c > n_cells {
            return Err(Error::new(
                &f.path,
                &format!("line {}", i + 1),
                "entry outside the matrix",
            ));
        }
        triples.push(((c - 1) as u32, (g - 1) as u32, v));
    }
    triples.sort_unstable_by_key(|t| (t.0, t.1));
    let mut s = Sparse {
        rows: n_cells,
        cols: n_genes,
        indptr: vec![0; n_cells + 1],
        ..Sparse::default()
    };
    for (c, g, v) in triples {
        s.indptr[c as usize + 1] += 1;
        s.indices.push(g);
        s.data.push(v);
    }
    for i in 0..n_cells {
        s.indptr[i + 1] += s.indptr[i];
    }
    Ok(Matrix::Csr(s))
}

/// Adds Space Ranger's `spatial/` files to a counts dataset.
pub fn attach_spatial(ds: &mut Dataset, files: &FileSet, library_id: &str) -> Result<()> {
    let positions = files
        .find("tissue_positions.csv")
        .or_else(|| files.find("tissue_positions_list.csv"))
        .ok_or_else(|| Error::new(&files.label(), "spatial/tissue_positions.csv", "missing"))?;
    let mut by_barcode: HashMap<String, [f64; 5]> = HashMap::new();
    for (i, l) in lines(positions)?.into_iter().enumerate() {
        let f: Vec<&str> = l.split(',').map(|s| s.trim().trim_matches('"')).collect();
        if i == 0 && f.first() == Some(&"barcode") {
            continue;
        }
        let parsed: Option<Vec<f64>> = f
            .get(1..6)
            .and_then(|v| v.iter().map(|s| s.parse().ok()).collect());
        let Some(v) = parsed else {
            return Err(Error::new(
                &positions.path,
                &format!("line {}", i + 1),
                "expected barcode,in_tissue,array_row,array_col,pxl_row_in_fullres,pxl_col_in_fullres",
            ));
        };
        by_barcode.insert(f[0].to_string(), [v[0], v[1], v[2], v[3], v[4]]);
    }
    // Barcodes without a position (subsampled or mismatched folders) are left
    // out with a note, as scanpy's join would leave them without coordinates.
    let keep: Vec<usize> = (0..ds.n_obs())
        .filter(|&i| by_barcode.contains_key(&ds.obs.index[i]))
        .collect();
    if keep.is_empty() {
        return Err(Error::new(
            &positions.path,
            "",
            "none of the matrix barcodes has a tissue position: is this the positions file of another slide?",
        ));
    }
    if keep.len() < ds.n_obs() {
        let dropped = ds.n_obs() - keep.len();
        let first = ds
            .obs
            .index
            .iter()
            .find(|b| !by_barcode.contains_key(*b))
            .cloned()
            .unwrap_or_default();
        ds.obs = ds.obs.take(&keep);
        ds.x = ds.x.take().map(|x| x.take_rows(&keep));
        let note =
            format!("{dropped} barcodes have no tissue position (e.g. {first}) and were left out");
        ds.uns
            .insert(crate::data::NOTES_KEY.into(), Value::Strings(vec![note]));
    }
    let n = ds.n_obs();
    let mut cols = [vec![0i64; n], vec![0i64; n], vec![0i64; n]];
    let mut xy = Vec::with_capacity(2 * n);
    for (i, bc) in ds.obs.index.iter().enumerate() {
        let v = by_barcode[bc];
        for k in 0..3 {
            cols[k][i] = v[k] as i64;
        }
        xy.extend([v[4], v[3]]);
    }
    let [in_tissue, array_row, array_col] = cols;
    ds.obs.set("in_tissue", Column::Int(in_tissue));
    ds.obs.set("array_row", Column::Int(array_row));
    ds.obs.set("array_col", Column::Int(array_col));
    ds.obsm.insert(
        "spatial".into(),
        Annotation::Array(dense(n, 2, xy).expect("rows x cols values")),
    );

    let mut library = BTreeMap::new();
    if let Some(sf) = files.find("scalefactors_json.json") {
        let json: serde_json::Value = serde_json::from_slice(&sf.contents()?)
            .map_err(|e| Error::new(&sf.path, "", format!("not valid JSON ({e})")))?;
        library.insert("scalefactors".to_string(), Value::from_json(&json));
    }
    let mut images = BTreeMap::new();
    for (key, file) in [
        ("hires", "tissue_hires_image.png"),
        ("lowres", "tissue_lowres_image.png"),
    ] {
        if let Some(f) = files.find(file) {
            images.insert(key.to_string(), decode_png(f)?);
        }
    }
    if !images.is_empty() {
        library.insert("images".to_string(), Value::Dict(images));
    }
    let mut spatial = BTreeMap::new();
    spatial.insert(library_id.to_string(), Value::Dict(library));
    ds.uns.insert("spatial".into(), Value::Dict(spatial));
    Ok(())
}

/// A PNG as height x width x 4 RGBA bytes (16-bit and palette images are reduced).
pub fn decode_png(f: &NamedFile) -> Result<Value> {
    let mut decoder = png::Decoder::new(&f.bytes[..]);
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder
        .read_info()
        .map_err(|e| Error::new(&f.path, "", format!("not a readable PNG ({e})")))?;
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader
        .next_frame(&mut buf)
        .map_err(|e| Error::new(&f.path, "", format!("corrupt PNG ({e})")))?;
    buf.truncate(info.buffer_size());
    let channels = info.color_type.samples();
    let rgba: Vec<u8> = match channels {
        4 => buf,
        3 => buf
            .chunks(3)
            .flat_map(|p| [p[0], p[1], p[2], 255])
            .collect(),
        2 => buf
            .chunks(2)
            .flat_map(|p| [p[0], p[0], p[0], p[1]])
            .collect(),
        _ => buf.iter().flat_map(|&g| [g, g, g, 255]).collect(),
    };
    Ok(Value::Bytes {
        shape: vec![info.height as usize, info.width as usize, 4],
        data: rgba,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png_bytes(color: png::ColorType, pixels: &[u8], w: u32, h: u32) -> Vec<u8> {
        let mut out = Vec::new();
        let mut enc = png::Encoder::new(&mut out, w, h);
        enc.set_color(color);
        enc.set_depth(png::BitDepth::Eight);
        enc.write_header()
            .unwrap()
            .write_image_data(pixels)
            .unwrap();
        out
    }

    #[test]
    fn matrix_market_reads_and_rejects_bad_entries() {
        let set = |mtx: &str| {
            let mut s = FileSet::default();
            s.push("matrix.mtx", mtx.as_bytes().to_vec());
            s.push("barcodes.tsv", b"AAA-1\nCCC-1\n".to_vec());
            s.push(
                "features.tsv",
                b"G1\tGad1\tGene Expression\nG2\tSst\tGene Expression\nG3\tVip\tGene Expression\n"
                    .to_vec(),
            );
            s
        };
        let header = "%%MatrixMarket matrix coordinate integer general\n%\n3 2 3\n";
        let ds = read_mtx(&set(&format!("{header}1 1 5\n3 2 7\n2 2 1\n"))).unwrap();
        let x = ds.x.as_ref().unwrap();
        assert_eq!(
            (x.get(0, 0), x.get(1, 2), x.get(1, 1), x.get(0, 2)),
            (5.0, 7.0, 1.0, 0.0)
        );
        assert_eq!(ds.var.index, vec!["Gad1", "Sst", "Vip"]);
        let e = read_mtx(&set(&format!("{header}4 1 5\n"))).unwrap_err();
        assert!(e.key == "line 4" && e.message.contains("outside"), "{e}");
        let e = read_mtx(&set(&format!("{header}1 x 5\n"))).unwrap_err();
        assert!(e.message.contains("row col value"), "{e}");
        let e = read_mtx(&set("%%MatrixMarket\n2 2 1\n1 1 1\n")).unwrap_err();
        assert!(e.key == "size line", "{e}");
    }

    #[test]
    fn png_becomes_rgba() {
        let rgb = png_bytes(png::ColorType::Rgb, &[10, 20, 30, 40, 50, 60], 2, 1);
        let f = NamedFile {
            path: "img.png".into(),
            bytes: rgb,
        };
        let Value::Bytes { shape, data } = decode_png(&f).unwrap() else {
            panic!()
        };
        assert_eq!(shape, vec![1, 2, 4]);
        assert_eq!(data, vec![10, 20, 30, 255, 40, 50, 60, 255]);
        let gray = png_bytes(png::ColorType::Grayscale, &[7], 1, 1);
        let f = NamedFile {
            path: "g.png".into(),
            bytes: gray,
        };
        let Value::Bytes { data, .. } = decode_png(&f).unwrap() else {
            panic!()
        };
        assert_eq!(data, vec![7, 7, 7, 255]);
        let bad = NamedFile {
            path: "bad.png".into(),
            bytes: b"\x89PNG nope".to_vec(),
        };
        assert!(decode_png(&bad).unwrap_err().message.contains("PNG"));
    }
}
