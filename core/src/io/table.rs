//! Cell tables: CSV / TSV / whitespace text exported by MERSCOPE, Xenium,
//! CosMx, CODEX, MIBI, IMC and CyCIF pipelines, or by R (genes x cells).
//!
//! One or more tables become one dataset: each table is parsed, turned to
//! cells x columns if it is stored features x cells, joined to the main
//! (feature-richest) table by cell id or row order, and its columns split
//! into features (X), coordinates (obsm['spatial']) and metadata (obs).

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

use super::error::{Error, Result};
use super::files::NamedFile;
use crate::data::{dense, Annotation, Column, Dataset, Frame, Matrix};

/// User choices that override detection. Column names are matched exactly.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TableOptions {
    pub id_column: Option<String>,
    pub x_column: Option<String>,
    pub y_column: Option<String>,
    /// Exactly these columns are features; everything else is metadata.
    pub features: Option<Vec<String>>,
    /// These numeric columns are metadata rather than features.
    pub metadata: Option<Vec<String>>,
}

/// Numeric columns that describe a cell rather than measure a feature.
const METADATA_NAMES: &[&str] = &[
    "fov",
    "cell_id",
    "cellid",
    "cell",
    "barcode",
    "barcodes",
    "label",
    "area",
    "cell_size",
    "volume",
    "sampleid",
    "patientid",
    "patient",
    "tissue",
    "point",
    "majoraxislength",
    "minoraxislength",
    "eccentricity",
    "solidity",
    "extent",
    "orientation",
    "perimeter",
    "convex_area",
    "equivalent_diameter",
    "major_axis_length",
    "minor_axis_length",
    "transcript_counts",
    "control_probe_counts",
    "control_codeword_counts",
    "total_counts",
    "cell_area",
    "nucleus_area",
    "numi",
    "n_counts",
    "cluster",
    "imageid",
    "unnamed: 0",
    "x",
    "lintype_num",
    "flowsom_id",
    "cluster_labels",
    "cell_meta_cluster",
    "z",
    "z_centroid",
    "slice",
];

/// Header names of an id column, in order of preference.
const ID_NAMES: &[&str] = &[
    "cell_id", "cellid", "cell", "barcode", "barcodes", "cell_ID", "",
];

/// (x, y) column pairs, most specific first; matched case-insensitively.
const COORD_PAIRS: &[(&str, &str)] = &[
    ("x_centroid", "y_centroid"),
    ("centroid-1", "centroid-0"),
    ("centroidx", "centroidy"),
    ("center_x", "center_y"),
    ("centerx_global_px", "centery_global_px"),
    ("x_position", "y_position"),
    ("x_coordinate", "y_coordinate"),
    ("xcoord", "ycoord"),
    ("x_um", "y_um"),
    ("x", "y"),
];

/// A parsed text table: header plus string cells.
#[derive(Debug, Clone)]
struct Table {
    file: String,
    header: Vec<String>,
    has_header: bool,
    rows: Vec<Vec<String>>,
}

fn is_missing(s: &str) -> bool {
    matches!(s, "" | "NA" | "NaN" | "nan" | "N/A" | "null" | "-")
}

fn number(s: &str) -> Option<f64> {
    if is_missing(s) {
        return Some(f64::NAN);
    }
    s.parse::<f64>().ok()
}

fn parse(file: &NamedFile) -> Result<Table> {
    let bytes = file.contents()?;
    let text = std::str::from_utf8(&bytes)
        .map_err(|e| Error::new(&file.path, "", format!("not UTF-8 text ({e})")))?;
    let text = text.trim_start_matches('\u{feff}');
    let first = text.lines().next().unwrap_or("");
    let name = file.plain_name();
    let delim = if first.contains('\t') {
        Some(b'\t')
    } else if first.contains(',') || name.ends_with(".csv") {
        Some(b',')
    } else {
        None
    };
    let mut rows: Vec<Vec<String>> = Vec::new();
    match delim {
        Some(d) => {
            let mut rdr = csv::ReaderBuilder::new()
                .delimiter(d)
                .has_headers(false)
                .flexible(true)
                .from_reader(text.as_bytes());
            for (i, rec) in rdr.records().enumerate() {
                let rec = rec.map_err(|e| {
                    Error::new(&file.path, &format!("line {}", i + 1), e.to_string())
                })?;
                rows.push(rec.iter().map(|s| s.trim().to_string()).collect());
            }
        }
        None => {
            for line in text.lines() {
                rows.push(line.split_whitespace().map(str::to_string).collect());
            }
        }
    }
    rows.retain(|r| !(r.is_empty() || r.len() == 1 && r[0].is_empty()));
    if rows.is_empty() {
        return Err(Error::new(&file.path, "", "the table is empty"));
    }
    // R's write.csv leaves the index column unnamed, so the header is one short.
    let width = rows
        .iter()
        .skip(1)
        .map(Vec::len)
        .max()
        .unwrap_or(rows[0].len());
    if rows[0].len() + 1 == width {
        rows[0].insert(0, String::new());
    }
    // A trailing delimiter on every line makes one empty column; drop it.
    if rows.iter().all(|r| r.last().is_some_and(String::is_empty)) {
        for r in rows.iter_mut() {
            r.pop();
        }
    }
    let width = rows[0].len();
    if let Some((i, r)) = rows.iter().enumerate().find(|(_, r)| r.len() != width) {
        return Err(Error::new(
            &file.path,
            &format!("line {}", i + 1),
            format!(
                "has {} fields but the first line has {width} (ragged rows)",
                r.len()
            ),
        ));
    }
    let has_header = detect_header(&rows);
    let header = if has_header {
        rows.remove(0)
    } else {
        (0..width).map(|i| i.to_string()).collect()
    };
    Ok(Table {
        file: file.path.clone(),
        header,
        has_header,
        rows,
    })
}

/// A header row has text where the rows below have numbers, or an empty first field.
fn detect_header(rows: &[Vec<String>]) -> bool {
    if rows.len() < 2 {
        return rows
            .first()
            .is_some_and(|r| r.iter().any(|c| number(c).is_none()));
    }
    if rows[0][0].is_empty() {
        return true;
    }
    (0..rows[0].len()).any(|j| {
        number(&rows[0][j]).is_none()
            && rows[1..rows.len().min(6)]
                .iter()
                .all(|r| number(&r[j]).is_some_and(|v| !v.is_nan()))
    })
}

impl Table {
    fn n_rows(&self) -> usize {
        self.rows.len()
    }

    fn col_index(&self, name: &str) -> Option<usize> {
        self.header.iter().position(|h| h == name)
    }

    fn col_index_ci(&self, name: &str) -> Option<usize> {
        self.header
            .iter()
            .position(|h| h.eq_ignore_ascii_case(name))
    }

    /// Values of column j as numbers, or None if it is a text column. A
    /// column that is nearly all numbers but has a few words is an error.
    fn numeric(&self, j: usize) -> Result<Option<Vec<f64>>> {
        let mut out = Vec::with_capacity(self.rows.len());
        let mut bad: Option<(usize, &str)> = None;
        let mut n_bad = 0;
        for (i, r) in self.rows.iter().enumerate() {
            match number(&r[j]) {
                Some(v) => out.push(v),
                None => {
                    n_bad += 1;
                    bad.get_or_insert((i, &r[j]));
                    out.push(f64::NAN);
                }
            }
        }
        match bad {
            None => Ok(Some(out)),
            Some((i, word)) if n_bad * 20 < self.rows.len() => Err(Error::new(
                &self.file,
                &format!(
                    "column {:?}, line {}",
                    self.header[j],
                    i + 1 + usize::from(self.has_header)
                ),
                format!("{word:?} is not a number in a numeric column"),
            )),
            Some(_) => Ok(None),
        }
    }

    fn id_column(&self, opts: &TableOptions) -> Result<Option<usize>> {
        if let Some(name) = &opts.id_column {
            return match self.col_index(name) {
                Some(j) => Ok(Some(j)),
                None => Err(Error::new(&self.file, name, "id column not found")),
            };
        }
        if !self.has_header {
            // Headerless R/text exports put names in the first column.
            return Ok((self.rows.iter().any(|r| number(&r[0]).is_none())).then_some(0));
        }
        Ok(ID_NAMES.iter().find_map(|n| self.col_index_ci(n)))
    }

    /// Cell ids; per-FOV numbering (CosMx) is made unique as `<fov>_<id>`.
    fn ids(&self, opts: &TableOptions) -> Result<Option<Vec<String>>> {
        let Some(j) = self.id_column(opts)? else {
            return Ok(None);
        };
        let ids: Vec<String> = self.rows.iter().map(|r| r[j].clone()).collect();
        let unique = ids.iter().collect::<HashSet<_>>().len() == ids.len();
        match self.col_index_ci("fov") {
            Some(f) if !unique && opts.id_column.is_none() => Ok(Some(
                self.rows
                    .iter()
                    .map(|r| format!("{}_{}", r[f], r[j]))
                    .collect(),
            )),
            _ => Ok(Some(ids)),
        }
    }

    /// Features x cells to cells x features: the first column names the
    /// features; the header (or column number) names the cells.
    fn transpose(&self) -> Table {
        let n_cells = self.header.len() - 1;
        let mut header = vec![String::new()];
        header.extend(self.rows.iter().map(|r| r[0].clone()));
        let rows = (0..n_cells)
            .map(|c| {
                let mut row = vec![if self.has_header {
                    self.header[c + 1].clone()
                } else {
                    format!("cell_{c}")
                }];
                row.extend(self.rows.iter().map(|r| r[c + 1].clone()));
                row
            })
            .collect();
        Table {
            file: self.file.clone(),
            header,
            has_header: true,
            rows,
        }
    }
}

/// Is `t` stored features x cells, judged against the other tables?
fn is_transposed(t: &Table, others: &[&Table], opts: &TableOptions) -> bool {
    if t.header.len() < 3
        || t.rows
            .iter()
            .any(|r| number(&r[0]).is_some_and(|v| !v.is_nan()))
    {
        return false;
    }
    let numeric_body = t
        .rows
        .iter()
        .take(20)
        .all(|r| r[1..].iter().all(|c| number(c).is_some()));
    if !numeric_body {
        return false;
    }
    others.iter().any(|o| {
        if t.has_header {
            let ids: HashSet<String> = o
                .ids(opts)
                .ok()
                .flatten()
                .unwrap_or_default()
                .into_iter()
                .collect();
            let hits = t.header[1..].iter().filter(|h| ids.contains(*h)).count();
            hits * 2 > t.header.len() - 1
        } else {
            o.n_rows() == t.header.len() - 1
        }
    })
}

/// Reads one or more tables into one dataset.
pub fn read(files: &[&NamedFile], opts: &TableOptions) -> Result<Dataset> {
    let parsed = files.iter().map(|f| parse(f)).collect::<Result<Vec<_>>>()?;
    let mut tables = Vec::with_capacity(parsed.len());
    for (i, t) in parsed.iter().enumerate() {
        let others: Vec<&Table> = parsed
            .iter()
            .enumerate()
            .filter(|(k, _)| *k != i)
            .map(|(_, o)| o)
            .collect();
        tables.push(if is_transposed(t, &others, opts) {
            t.transpose()
        } else {
            t.clone()
        });
    }
    // The main table is the one with the most numeric columns.
    let score = |t: &Table| {
        (0..t.header.len())
            .filter(|&j| t.rows.iter().take(50).all(|r| number(&r[j]).is_some()))
            .count()
    };
    let main = (0..tables.len())
        .max_by_key(|&i| (score(&tables[i]), usize::MAX - i))
        .unwrap_or(0);
    let mut main_table = tables.remove(main);
    let main_ids = main_table.ids(opts)?;
    // For each other table, the row matching each main row.
    let matches = tables
        .iter()
        .map(|t| align(&main_table, main_ids.as_deref(), t, opts))
        .collect::<Result<Vec<_>>>()?;
    let keep: Vec<usize> = (0..main_table.n_rows())
        .filter(|&i| matches.iter().all(|m| m[i].is_some()))
        .collect();
    let mut notes = Vec::new();
    if keep.len() < main_table.n_rows() {
        let dropped = main_table.n_rows() - keep.len();
        if dropped * 10 > main_table.n_rows() {
            return Err(Error::new(
                &main_table.file,
                "",
                format!(
                    "{dropped} of {} cells have no row in the other tables",
                    main_table.n_rows()
                ),
            ));
        }
        notes.push(format!(
            "{dropped} cells of {} have no metadata and were left out",
            main_table.file
        ));
    }
    let tables: Vec<Table> = tables
        .into_iter()
        .zip(&matches)
        .map(|(t, m)| Table {
            rows: keep
                .iter()
                .map(|&i| t.rows[m[i].unwrap_or(0)].clone())
                .collect(),
            ..t
        })
        .collect();
    main_table.rows = keep.iter().map(|&i| main_table.rows[i].clone()).collect();
    let main_ids = main_ids.map(|ids| keep.iter().map(|&i| ids[i].clone()).collect::<Vec<_>>());
    let n = main_table.n_rows();
    // Columns borrow their table: cloning it per column was O(columns x cells).
    let mut columns: Vec<(String, &Table, usize)> = Vec::new();
    let mut seen = HashSet::new();
    for (j, name) in main_table.header.iter().enumerate() {
        seen.insert(name.clone());
        columns.push((name.clone(), &main_table, j));
    }
    for aligned in &tables {
        for j in 0..aligned.header.len() {
            let mut name = aligned.header[j].clone();
            if seen.contains(&name) {
                // Join keys and repeated columns are already in the main table.
                if aligned
                    .rows
                    .iter()
                    .zip(&main_table.rows)
                    .all(|(a, b)| main_table.col_index(&name).is_some_and(|k| b[k] == a[j]))
                {
                    continue;
                }
                name = format!("{name}_{}", short_name(&aligned.file));
            }
            seen.insert(name.clone());
            columns.push((name, aligned, j));
        }
    }
    let mut ds = build(&main_table, main_ids, n, columns, &tables, opts)?;
    if !notes.is_empty() {
        ds.uns.insert(
            crate::data::NOTES_KEY.into(),
            crate::data::Value::Strings(notes),
        );
    }
    Ok(ds)
}

fn short_name(path: &str) -> String {
    let n = path.rsplit('/').next().unwrap_or(path);
    n.split('.').next().unwrap_or(n).to_string()
}

/// For each row of `main`, the row of `t` that describes the same cell: by
/// id when most ids are found, else by position when the lengths agree.
fn align(
    main: &Table,
    main_ids: Option<&[String]>,
    t: &Table,
    opts: &TableOptions,
) -> Result<Vec<Option<usize>>> {
    if let (Some(ids), Some(other)) = (main_ids, t.ids(opts)?) {
        let pos: HashMap<&str, usize> = other
            .iter()
            .enumerate()
            .map(|(i, s)| (s.as_str(), i))
            .collect();
        let found: Vec<Option<usize>> =
            ids.iter().map(|id| pos.get(id.as_str()).copied()).collect();
        let hits = found.iter().filter(|f| f.is_some()).count();
        if pos.len() == other.len() && hits * 10 >= ids.len() * 9 {
            return Ok(found);
        }
    }
    if t.n_rows() == main.n_rows() {
        return Ok((0..t.n_rows()).map(Some).collect());
    }
    Err(Error::new(
        &t.file,
        "",
        format!(
            "cannot match its {} rows to the {} rows of {}: no shared cell ids and different lengths",
            t.n_rows(),
            main.n_rows(),
            main.file
        ),
    ))
}

fn find_coords(
    columns: &[(String, &Table, usize)],
    opts: &TableOptions,
) -> Result<Option<(usize, usize)>> {
    let find = |name: &str, ci: bool| {
        columns.iter().position(|(n, _, _)| {
            if ci {
                n.eq_ignore_ascii_case(name)
            } else {
                n == name
            }
        })
    };
    if let (Some(x), Some(y)) = (&opts.x_column, &opts.y_column) {
        let xi = find(x, false).ok_or_else(|| Error::new("tables", x, "x column not found"))?;
        let yi = find(y, false).ok_or_else(|| Error::new("tables", y, "y column not found"))?;
        return Ok(Some((xi, yi)));
    }
    for (x, y) in COORD_PAIRS {
        if let (Some(xi), Some(yi)) = (find(x, true), find(y, true)) {
            return Ok(Some((xi, yi)));
        }
    }
    // A headerless file named like "...coordinates..." ends with x, y.
    for (k, (_, t, _)) in columns.iter().enumerate() {
        if !t.has_header && t.file.to_lowercase().contains("coord") {
            let last = columns
                .iter()
                .rposition(|(_, u, _)| std::ptr::eq(*u, *t))
                .unwrap_or(k);
            if last > k {
                return Ok(Some((last - 1, last)));
            }
        }
    }
    Ok(None)
}

fn build(
    main: &Table,
    ids: Option<Vec<String>>,
    n: usize,
    columns: Vec<(String, &Table, usize)>,
    metadata_tables: &[Table],
    opts: &TableOptions,
) -> Result<Dataset> {
    let id_col = main.id_column(opts)?;
    let obs_names = ids.unwrap_or_else(|| (0..n).map(|i| i.to_string()).collect());
    let mut obs = Frame::with_index(obs_names);
    if let Some(dup) = obs.first_duplicate() {
        return Err(Error::new(
            &main.file,
            id_col.map_or("", |j| main.header[j].as_str()),
            format!("duplicate cell id {dup:?}: cell ids must be unique"),
        ));
    }
    let coords = find_coords(&columns, opts)?;
    let meta_names: HashSet<String> = opts.metadata.iter().flatten().cloned().collect();
    let feature_names: Option<HashSet<String>> =
        opts.features.as_ref().map(|f| f.iter().cloned().collect());
    let mut features: Vec<(String, Vec<f64>)> = Vec::new();
    let mut spatial = None;
    for (k, (name, t, j)) in columns.iter().enumerate() {
        let is_main = std::ptr::eq(*t, main);
        if is_main && Some(*j) == id_col {
            continue;
        }
        let values = t.numeric(*j)?;
        if let Some((xi, yi)) = coords {
            if k == xi || k == yi {
                let v = values
                    .clone()
                    .ok_or_else(|| Error::new(&t.file, name, "coordinate column is not numeric"))?;
                let s = spatial.get_or_insert_with(|| vec![0.0; 2 * n]);
                let off = usize::from(k == yi);
                for (i, x) in v.iter().enumerate() {
                    s[2 * i + off] = *x;
                }
            }
        }
        let is_feature = match (&feature_names, &values) {
            (Some(f), _) => f.contains(name),
            (None, Some(_)) => {
                is_main
                    && !meta_names.contains(name)
                    && !METADATA_NAMES.contains(&name.to_lowercase().as_str())
                    && coords.is_none_or(|(xi, yi)| k != xi && k != yi)
                    && !metadata_tables.iter().any(|m| m.header.contains(name))
                    && !looks_like_metadata(name)
            }
            (None, None) => false,
        };
        match values {
            Some(v) if is_feature => features.push((name.clone(), v)),
            None if is_feature => {
                return Err(Error::new(&t.file, name, "feature column is not numeric"))
            }
            Some(v) => {
                let col = if v.iter().all(|x| x.fract() == 0.0 && x.abs() < 9.0e15) {
                    Column::Int(v.iter().map(|&x| x as i64).collect())
                } else {
                    Column::Float(v)
                };
                obs.set(if name.is_empty() { "index" } else { name }, col);
            }
            None => {
                let text: Vec<String> = t.rows.iter().map(|r| r[*j].clone()).collect();
                let distinct: HashSet<&String> = text.iter().collect();
                let col = if distinct.len() * 2 <= text.len().max(2) {
                    Column::categorical_from(&text)
                } else {
                    Column::Str(text)
                };
                obs.set(name, col);
            }
        }
    }
    if let Some(f) = &feature_names {
        if let Some(missing) = f.iter().find(|c| !features.iter().any(|(n, _)| n == *c)) {
            return Err(Error::new(
                &main.file,
                missing,
                "requested feature column not found",
            ));
        }
    }
    let mut ds = Dataset {
        obs,
        var: Frame::with_index(features.iter().map(|(n, _)| n.clone()).collect()),
        ..Dataset::default()
    };
    let m = features.len();
    if m > 0 {
        let mut data = vec![0f32; n * m];
        for (c, (_, v)) in features.iter().enumerate() {
            for (r, x) in v.iter().enumerate() {
                data[r * m + c] = *x as f32;
            }
        }
        ds.x = Some(Matrix::Dense(
            dense(n, m, data).expect("rows x cols values"),
        ));
        ds.x_dtype = "float32".into();
    }
    if let Some(s) = spatial {
        ds.obsm.insert(
            "spatial".into(),
            Annotation::Array(dense(n, 2, s).expect("rows x cols values")),
        );
    }
    ds.check_shapes()
        .map_err(|e| Error::new(&main.file, "", e))?;
    Ok(ds)
}

/// Positions and shape descriptors that pipelines name in many ways.
fn looks_like_metadata(name: &str) -> bool {
    let l = name.to_lowercase();
    l.starts_with("center")
        || l.starts_with("centroid")
        || l.ends_with("_px")
        || l.ends_with("_um")
        || l.ends_with("_centroid")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nf(path: &str, text: &str) -> NamedFile {
        NamedFile {
            path: path.into(),
            bytes: text.as_bytes().to_vec(),
        }
    }

    #[test]
    fn single_table_splits_roles() {
        let f = nf("cells.csv", "CellID,CD3,CD8,X_centroid,Y_centroid,Area,kind\n1,1.5,0,10,20,30,T\n2,2,1,11,21,31,B\n3,0,4,12,22,32,T\n4,1,1,13,23,33,T\n");
        let ds = read(&[&f], &TableOptions::default()).unwrap();
        assert_eq!(ds.var.index, vec!["CD3", "CD8"]);
        assert_eq!(ds.obs.index, vec!["1", "2", "3", "4"]);
        assert_eq!(ds.spatial().unwrap().row(1).to_vec(), [11.0, 21.0]);
        assert!(matches!(
            ds.obs.column("kind"),
            Some(Column::Categorical { .. })
        ));
        assert!(matches!(ds.obs.column("Area"), Some(Column::Int(_))));
    }

    #[test]
    fn genes_by_cells_is_transposed_and_joined() {
        let counts = nf("counts.csv", ",a,b,c\nGad1,1,2,3\nSst,0,5,0\n");
        let coords = nf(
            "coords.csv",
            "\"\",\"x\",\"y\"\n\"c\",3,30\n\"a\",1,10\n\"b\",2,20\n",
        );
        let ds = read(&[&counts, &coords], &TableOptions::default()).unwrap();
        assert_eq!(ds.var.index, vec!["Gad1", "Sst"]);
        assert_eq!(ds.obs.index, vec!["a", "b", "c"]);
        assert_eq!(ds.x.as_ref().unwrap().get(1, 1), 5.0);
        assert_eq!(ds.spatial().unwrap().row(2).to_vec(), [3.0, 30.0]);
    }

    #[test]
    fn bad_tables_are_named() {
        let ragged = nf("r.csv", "a,b\n1,2\n3\n");
        let e = read(&[&ragged], &TableOptions::default()).unwrap_err();
        assert!(
            e.key.contains("line 3") && e.message.contains("ragged"),
            "{e}"
        );
        let mut text = String::from("id,g1,x,y\n");
        for i in 0..40 {
            text += &format!(
                "c{i},{},1,2\n",
                if i == 7 {
                    "oops".to_string()
                } else {
                    i.to_string()
                }
            );
        }
        let e = read(&[&nf("t.csv", &text)], &TableOptions::default()).unwrap_err();
        assert!(e.key.contains("g1") && e.message.contains("oops"), "{e}");
        let dup = nf("d.csv", "cell_id,g\nA,1\nA,2\n");
        let e = read(&[&dup], &TableOptions::default()).unwrap_err();
        assert!(e.message.contains("duplicate cell id"), "{e}");
    }
}
