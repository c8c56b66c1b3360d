//! A results bundle: one `.zip` that reopens to the same view. It holds a
//! JSON manifest (what ran, with which parameters, and how the page showed
//! it), the per-point arrays as `.npy`, loss curves, and the tables and
//! AnnData files the command line would have written, byte for byte.
//!
//! ```text
//! manifest.json            format "tessera-bundle", version, analysis, params, view, entries
//! points.npy               n x 2 float32 (x, y as in obsm['spatial'])
//! obs_names.csv            one header line, then n names
//! layers/<i>.npy           n x columns float32 per layer (names in the manifest)
//! curves/<i>.npy           float64 per curve
//! matrices/<i>.npy         rows x cols float64 per heatmap
//! files/<name>             tables and .h5ad, downloadable as they are
//! image.rgba               the tissue image under the points (size and scale in the manifest)
//! ```

use std::io::{Cursor, Read, Write};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::io::{npy, Error};

pub const FORMAT: &str = "tessera-bundle";
pub const VERSION: u32 = 1;
/// A bundle larger than this is refused before unzipping (a tab holds ~2 GiB).
const MAX_ENTRY: u64 = 1 << 30;

/// Values per point, several named columns (cell types, factors).
#[derive(Debug, Clone, PartialEq)]
pub struct Layer {
    pub name: String,
    pub columns: Vec<String>,
    /// n x columns, row-major.
    pub values: Vec<f32>,
}

/// How a table is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Plot {
    /// Coloured cells (z-scores diverge around 0).
    #[default]
    Heatmap,
    /// One line per row over the columns, which are numbers (distances).
    Lines,
    /// A dot per cell, its area and colour the value (fractions).
    Dots,
    /// A bar per row for the first column; the others as numbers beside it.
    Bars,
    /// The first column's histogram, then one scatter panel of it against
    /// each other column (Tangram's `plot_training_scores`).
    Scatter,
    /// A 2-D histogram of counts (cell2location's `plot_QC`): rows and
    /// columns are bins, drawn as an image with a log colour scale.
    Histogram2d,
}

/// A table shown as a plot (e.g. neighbourhood-enrichment z-scores).
#[derive(Debug, Clone, PartialEq)]
pub struct Matrix {
    pub name: String,
    pub rows: Vec<String>,
    pub cols: Vec<String>,
    /// rows x cols, row-major.
    pub values: Vec<f64>,
    pub plot: Plot,
}

impl Matrix {
    pub fn heatmap(name: &str, rows: &[String], cols: &[String], values: Vec<f64>) -> Matrix {
        Matrix {
            name: name.into(),
            rows: rows.to_vec(),
            cols: cols.to_vec(),
            values,
            plot: Plot::Heatmap,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Curve {
    pub name: String,
    pub values: Vec<f64>,
}

/// The tissue image drawn under the points (a Space Ranger H&E).
#[derive(Debug, Clone, PartialEq)]
pub struct Image {
    pub width: usize,
    pub height: usize,
    /// height x width x 4 bytes.
    pub rgba: Vec<u8>,
    /// Image pixels per data unit (Space Ranger's `tissue_hires_scalef`).
    pub scale: f64,
}

/// The sharpest image of the first library in `uns['spatial']` that has a
/// scale factor to align it and is not blank: hires, else lowres. Float
/// images (scanpy writes 0–1 floats) become bytes.
pub fn tissue_image(ds: &crate::data::Dataset) -> Option<Image> {
    use crate::data::Value;
    let Some(Value::Dict(libs)) = ds.uns.get("spatial") else {
        return None;
    };
    libs.values().find_map(|lib| {
        ["hires", "lowres"].into_iter().find_map(|name| {
            let scale = lib
                .get("scalefactors")?
                .get(&format!("tissue_{name}_scalef"))?
                .as_f64()
                .filter(|s| s.is_finite() && *s > 0.0)?;
            let img = lib.get("images")?.get(name)?;
            let (height, width, channels) = match img.shape()? {
                [h, w] => (*h, *w, 1),
                [h, w, c] if (1..=4).contains(c) => (*h, *w, *c),
                _ => return None,
            };
            let byte = |i: usize| -> u8 {
                match img {
                    Value::Bytes { data, .. } => data[i],
                    Value::Floats { data, .. } => (data[i].clamp(0.0, 1.0) * 255.0).round() as u8,
                    Value::Ints { data, .. } => data[i].clamp(0, 255) as u8,
                    _ => 0,
                }
            };
            // A single-colour image is a placeholder (test folders ship a
            // black hires PNG): the next one is tried.
            let n = height * width * channels;
            if n == 0 || (0..n).all(|i| byte(i) == byte(i % channels)) {
                return None;
            }
            // Alpha (grey + alpha, RGBA) is laid over white paper.
            let alpha = |p: usize| match channels {
                2 | 4 => byte(p * channels + channels - 1),
                _ => 255,
            };
            let mut rgba = Vec::with_capacity(height * width * 4);
            for p in 0..height * width {
                let at = p * channels;
                let (r, g, b) = match channels {
                    1 | 2 => (byte(at), byte(at), byte(at)),
                    _ => (byte(at), byte(at + 1), byte(at + 2)),
                };
                let a = alpha(p) as u32;
                let over = |c: u8| ((c as u32 * a + 255 * (255 - a)) / 255) as u8;
                rgba.extend([over(r), over(g), over(b), 255]);
            }
            Some(Image {
                width,
                height,
                rgba,
                scale,
            })
        })
    })
}

/// Each row's (x, y) as the plot takes them: `obsm['spatial']`, or a
/// square grid in row order when the data has no coordinates.
pub fn points(ds: &crate::data::Dataset) -> Vec<f32> {
    match ds.spatial() {
        Some(s) => s
            .rows()
            .into_iter()
            .flat_map(|r| [r[0] as f32, r[1] as f32])
            .collect(),
        None => {
            let n = ds.n_obs();
            let side = (n as f64).sqrt().ceil().max(1.0) as usize;
            (0..n)
                .flat_map(|r| [(r % side) as f32, (r / side) as f32])
                .collect()
        }
    }
}

/// Everything a results view needs.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Results {
    pub analysis: String,
    pub params: Value,
    pub view: Value,
    pub names: Vec<String>,
    /// n x 2 (x, y).
    pub xy: Vec<f32>,
    pub layers: Vec<Layer>,
    pub curves: Vec<Curve>,
    pub matrices: Vec<Matrix>,
    /// (file name, bytes): what the user downloads.
    pub files: Vec<(String, Vec<u8>)>,
    pub image: Option<Image>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    format: String,
    version: u32,
    analysis: String,
    params: Value,
    view: Value,
    n_points: usize,
    layers: Vec<LayerEntry>,
    curves: Vec<String>,
    #[serde(default)]
    matrices: Vec<MatrixEntry>,
    files: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    image: Option<ImageEntry>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ImageEntry {
    width: usize,
    height: usize,
    scale: f64,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct MatrixEntry {
    name: String,
    rows: Vec<String>,
    cols: Vec<String>,
    #[serde(default)]
    plot: Plot,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct LayerEntry {
    name: String,
    columns: Vec<String>,
}

impl Results {
    pub fn n_points(&self) -> usize {
        self.xy.len() / 2
    }

    pub fn file(&self, name: &str) -> Option<&[u8]> {
        self.files
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, b)| &b[..])
    }

    /// Checks that every array has the length the manifest implies.
    fn validate(&self, source: &str) -> Result<(), Error> {
        let n = self.n_points();
        let bad = |key: &str, m: String| Err(Error::new(source, key, m));
        if self.xy.len() != 2 * n || self.names.len() != n {
            return bad(
                "obs_names.csv",
                format!("{} names for {n} points", self.names.len()),
            );
        }
        for m in &self.matrices {
            if m.values.len() != m.rows.len() * m.cols.len() {
                return bad(
                    "matrices",
                    format!(
                        "matrix '{}' has {} values for {} x {}",
                        m.name,
                        m.values.len(),
                        m.rows.len(),
                        m.cols.len()
                    ),
                );
            }
        }
        if let Some(im) = &self.image {
            let bytes = im
                .width
                .checked_mul(im.height)
                .and_then(|p| p.checked_mul(4));
            if bytes != Some(im.rgba.len()) || !(im.scale.is_finite() && im.scale > 0.0) {
                return bad(
                    "image.rgba",
                    format!(
                        "{} bytes for a {} x {} image at scale {}",
                        im.rgba.len(),
                        im.width,
                        im.height,
                        im.scale
                    ),
                );
            }
        }
        // A file name reaches the user's disk as a download's name.
        for (f, _) in &self.files {
            if !is_plain_file_name(f) {
                return bad(
                    "manifest.json",
                    format!("file name '{}' is not a plain name", f.escape_default()),
                );
            }
        }
        for (i, l) in self.layers.iter().enumerate() {
            if Some(l.values.len()) != n.checked_mul(l.columns.len()) {
                return bad(
                    &format!("layers/{i}.npy"),
                    format!(
                        "layer '{}' has {} values, expected {n} points x {} columns",
                        l.name,
                        l.values.len(),
                        l.columns.len()
                    ),
                );
            }
        }
        Ok(())
    }
}

/// A name a download may take: one path segment of at most 128 printable
/// characters, not hidden, nothing a file system reads as a path or a device.
pub fn is_plain_file_name(f: &str) -> bool {
    !f.is_empty()
        && f.len() <= 128
        && !f.starts_with('.')
        && !f
            .chars()
            .any(|c| c.is_control() || "/\\:*?\"<>|".contains(c))
}

fn zip_err(source: &str, e: impl std::fmt::Display) -> Error {
    Error::new(source, "", format!("not a readable results bundle: {e}"))
}

/// Writes the bundle.
pub fn write(r: &Results) -> Result<Vec<u8>, Error> {
    r.validate("results")?;
    let manifest = Manifest {
        format: FORMAT.into(),
        version: VERSION,
        analysis: r.analysis.clone(),
        params: r.params.clone(),
        view: r.view.clone(),
        n_points: r.n_points(),
        layers: r
            .layers
            .iter()
            .map(|l| LayerEntry {
                name: l.name.clone(),
                columns: l.columns.clone(),
            })
            .collect(),
        curves: r.curves.iter().map(|c| c.name.clone()).collect(),
        matrices: r
            .matrices
            .iter()
            .map(|m| MatrixEntry {
                name: m.name.clone(),
                rows: m.rows.clone(),
                cols: m.cols.clone(),
                plot: m.plot,
            })
            .collect(),
        files: r.files.iter().map(|(n, _)| n.clone()).collect(),
        image: r.image.as_ref().map(|im| ImageEntry {
            width: im.width,
            height: im.height,
            scale: im.scale,
        }),
    };
    let mut entries: Vec<(String, Vec<u8>)> = vec![
        (
            "manifest.json".into(),
            serde_json::to_vec_pretty(&manifest).expect("manifest serialises"),
        ),
        ("points.npy".into(), npy::write(&[r.n_points(), 2], &r.xy)),
        (
            "obs_names.csv".into(),
            crate::io::list_csv("obs_name", &r.names).into_bytes(),
        ),
    ];
    for (i, l) in r.layers.iter().enumerate() {
        entries.push((
            format!("layers/{i}.npy"),
            npy::write(&[r.n_points(), l.columns.len()], &l.values),
        ));
    }
    for (i, c) in r.curves.iter().enumerate() {
        entries.push((
            format!("curves/{i}.npy"),
            npy::write(&[c.values.len()], &c.values),
        ));
    }
    for (i, m) in r.matrices.iter().enumerate() {
        entries.push((
            format!("matrices/{i}.npy"),
            npy::write(&[m.rows.len(), m.cols.len()], &m.values),
        ));
    }
    for (name, bytes) in &r.files {
        entries.push((format!("files/{name}"), bytes.clone()));
    }
    if let Some(im) = &r.image {
        entries.push(("image.rgba".into(), im.rgba.clone()));
    }
    let mut out = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .large_file(true);
    for (name, bytes) in entries {
        out.start_file(name, opts)
            .and_then(|_| out.write_all(&bytes).map_err(Into::into))
            .map_err(|e| zip_err("results bundle", e))?;
    }
    Ok(out
        .finish()
        .map_err(|e| zip_err("results bundle", e))?
        .into_inner())
}

/// True when the bytes are a zip holding a Tessera manifest.
pub fn is_bundle(bytes: &[u8]) -> bool {
    zip::ZipArchive::new(Cursor::new(bytes)).is_ok_and(|mut z| z.by_name("manifest.json").is_ok())
}

/// Reads a bundle; `source` names it in errors.
pub fn read(source: &str, bytes: &[u8]) -> Result<Results, Error> {
    let mut z = zip::ZipArchive::new(Cursor::new(bytes)).map_err(|e| zip_err(source, e))?;
    let mut entry = |name: &str| -> Result<Vec<u8>, Error> {
        let f = z.by_name(name).map_err(|_| {
            Error::new(
                source,
                name,
                "missing from the bundle (was it made by Tessera?)",
            )
        })?;
        if f.size() > MAX_ENTRY {
            return Err(Error::new(
                source,
                name,
                format!("is {} bytes, more than a browser tab can hold", f.size()),
            ));
        }
        let mut v = Vec::with_capacity(f.size() as usize);
        f.take(MAX_ENTRY)
            .read_to_end(&mut v)
            .map_err(|e| Error::new(source, name, format!("could not be unzipped: {e}")))?;
        Ok(v)
    };
    let m: Manifest = serde_json::from_slice(&entry("manifest.json")?).map_err(|e| {
        Error::new(
            source,
            "manifest.json",
            format!("is not a Tessera manifest: {e}"),
        )
    })?;
    if m.format != FORMAT || m.version > VERSION {
        return Err(Error::new(
            source,
            "manifest.json",
            format!(
                "format '{}' version {}: this page reads '{FORMAT}' up to version {VERSION}",
                m.format, m.version
            ),
        ));
    }
    // Bundles from before the registry named the statistics as squidpy's
    // functions.
    let mut m = m;
    if let Some(new) = match m.analysis.as_str() {
        "nhood_enrichment" => Some("nhood"),
        "co_occurrence" => Some("cooccurrence"),
        "spatial_autocorr" => Some("autocorr"),
        _ => None,
    } {
        m.analysis = new.into();
    }
    if crate::analysis::find(&m.analysis).is_none() {
        let known: Vec<&str> = crate::analysis::ALL.iter().map(|f| f().name).collect();
        return Err(Error::new(
            source,
            "manifest.json",
            format!(
                "analysis '{}' is not one Tessera runs ({})",
                m.analysis,
                known.join(", ")
            ),
        ));
    }
    let n = m.n_points;
    let array = |name: &str, bytes: Vec<u8>, shape: &[usize]| -> Result<Vec<f64>, Error> {
        let (got, v) = npy::read(&format!("{source}/{name}"), &bytes)?;
        if got != shape {
            return Err(Error::new(
                source,
                name,
                format!("has shape {got:?}, expected {shape:?}"),
            ));
        }
        Ok(v)
    };
    let xy = array("points.npy", entry("points.npy")?, &[n, 2])?;
    let names_csv = String::from_utf8(entry("obs_names.csv")?)
        .map_err(|_| Error::new(source, "obs_names.csv", "is not UTF-8 text"))?;
    let mut rd = csv::ReaderBuilder::new().from_reader(names_csv.as_bytes());
    let mut names = Vec::with_capacity(n);
    for rec in rd.records() {
        let rec = rec.map_err(|e| Error::new(source, "obs_names.csv", e.to_string()))?;
        names.push(rec.get(0).unwrap_or_default().to_string());
    }
    let mut layers = Vec::new();
    for (i, l) in m.layers.into_iter().enumerate() {
        let name = format!("layers/{i}.npy");
        let v = array(&name, entry(&name)?, &[n, l.columns.len()])?;
        layers.push(Layer {
            name: l.name,
            columns: l.columns,
            values: v.into_iter().map(|x| x as f32).collect(),
        });
    }
    let mut curves = Vec::new();
    for (i, c) in m.curves.into_iter().enumerate() {
        let name = format!("curves/{i}.npy");
        let bytes = entry(&name)?;
        let (shape, values) = npy::read(&format!("{source}/{name}"), &bytes)?;
        if shape.len() != 1 {
            return Err(Error::new(source, &name, "is not a 1-D array"));
        }
        curves.push(Curve { name: c, values });
    }
    let mut matrices = Vec::new();
    for (i, e) in m.matrices.into_iter().enumerate() {
        let name = format!("matrices/{i}.npy");
        let values = array(&name, entry(&name)?, &[e.rows.len(), e.cols.len()])?;
        matrices.push(Matrix {
            name: e.name,
            rows: e.rows,
            cols: e.cols,
            values,
            plot: e.plot,
        });
    }
    let mut files = Vec::new();
    for f in m.files {
        if !is_plain_file_name(&f) {
            return Err(Error::new(
                source,
                "manifest.json",
                format!("file name '{}' is not a plain name", f.escape_default()),
            ));
        }
        let bytes = entry(&format!("files/{f}"))?;
        files.push((f, bytes));
    }
    let image = match m.image {
        Some(e) => Some(Image {
            width: e.width,
            height: e.height,
            rgba: entry("image.rgba")?,
            scale: e.scale,
        }),
        None => None,
    };
    let r = Results {
        analysis: m.analysis,
        params: m.params,
        view: m.view,
        names,
        xy: xy.into_iter().map(|x| x as f32).collect(),
        layers,
        curves,
        matrices,
        files,
        image,
    };
    r.validate(source)?;
    Ok(r)
}

/// The same bundle with another view (the page's state when downloaded);
/// every other entry is copied without recompressing.
pub fn with_view(source: &str, bytes: &[u8], view: Value) -> Result<Vec<u8>, Error> {
    let mut z = zip::ZipArchive::new(Cursor::new(bytes)).map_err(|e| zip_err(source, e))?;
    let mut m: Manifest = {
        let mut s = String::new();
        z.by_name("manifest.json")
            .map_err(|e| zip_err(source, e))?
            .read_to_string(&mut s)
            .map_err(|e| zip_err(source, e))?;
        serde_json::from_str(&s).map_err(|e| Error::new(source, "manifest.json", e.to_string()))?
    };
    m.view = view;
    let mut out = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    out.start_file("manifest.json", opts)
        .and_then(|_| {
            out.write_all(&serde_json::to_vec_pretty(&m).expect("manifest serialises"))
                .map_err(Into::into)
        })
        .map_err(|e| zip_err(source, e))?;
    for i in 0..z.len() {
        let f = z.by_index_raw(i).map_err(|e| zip_err(source, e))?;
        if f.name() != "manifest.json" {
            out.raw_copy_file(f).map_err(|e| zip_err(source, e))?;
        }
    }
    Ok(out.finish().map_err(|e| zip_err(source, e))?.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Results {
        Results {
            analysis: "tangram".into(),
            params: serde_json::json!({"mode": "clusters", "seed": 42}),
            view: serde_json::json!({"color": "CA1"}),
            names: vec!["a".into(), "b,c".into(), "d".into()],
            xy: vec![0.0, 1.0, 2.0, 3.0, 4.5, -5.0],
            layers: vec![Layer {
                name: "tangram_ct_pred".into(),
                columns: vec!["CA1".into(), "DG".into()],
                values: vec![0.1, 0.9, 0.5, 0.5, 1.0, 0.0],
            }],
            curves: vec![Curve {
                name: "total_loss".into(),
                values: vec![-0.5, -0.7, -0.9],
            }],
            matrices: vec![
                Matrix::heatmap(
                    "zscore",
                    &["CA1".into(), "DG".into()],
                    &["CA1".into(), "DG".into()],
                    vec![3.5, -1.0, -1.0, 2.0],
                ),
                Matrix {
                    plot: Plot::Lines,
                    ..Matrix::heatmap("co-occurrence", &["DG".into()], &["10".into()], vec![1.5])
                },
            ],
            files: vec![("tangram_ct_pred.csv".into(), b",CA1,DG\n".to_vec())],
            image: Some(Image {
                width: 2,
                height: 1,
                rgba: vec![255, 0, 0, 255, 0, 0, 255, 255],
                scale: 0.15,
            }),
        }
    }

    #[test]
    fn round_trip_and_restamp() {
        let r = sample();
        let bytes = write(&r).unwrap();
        assert!(is_bundle(&bytes));
        assert_eq!(read("b.zip", &bytes).unwrap(), r);
        let view = serde_json::json!({"color": "DG", "zoom": 2.0});
        let again = read("b.zip", &with_view("b.zip", &bytes, view.clone()).unwrap()).unwrap();
        assert_eq!(again.view, view);
        assert_eq!(again.layers, r.layers);
        assert_eq!(again.files, r.files);
    }

    #[test]
    fn bad_bundles_are_named() {
        let e = read("x.zip", b"not a zip").unwrap_err().to_string();
        assert!(
            e.contains("x.zip") && e.contains("not a readable results bundle"),
            "{e}"
        );
        assert!(!is_bundle(b"PK"));
        // A layer whose length does not match the points.
        let mut r = sample();
        r.layers[0].values.pop();
        let e = write(&r).unwrap_err().to_string();
        assert!(e.contains("layer 'tangram_ct_pred' has 5 values"), "{e}");
        // A path as a file name: not written, and not read from a manifest.
        let mut r = sample();
        r.files[0].0 = "../evil".into();
        assert!(write(&r)
            .unwrap_err()
            .to_string()
            .contains("is not a plain name"));
        let bytes = write(&sample()).unwrap();
        let mut z = zip::ZipArchive::new(Cursor::new(&bytes[..])).unwrap();
        let mut out = zip::ZipWriter::new(Cursor::new(Vec::new()));
        for i in 0..z.len() {
            let mut f = z.by_index(i).unwrap();
            let mut body = Vec::new();
            f.read_to_end(&mut body).unwrap();
            if f.name() == "manifest.json" {
                body = String::from_utf8(body)
                    .unwrap()
                    .replace("tangram_ct_pred.csv", "../evil")
                    .into_bytes();
            }
            out.start_file(f.name(), zip::write::SimpleFileOptions::default())
                .unwrap();
            out.write_all(&body).unwrap();
        }
        let evil = out.finish().unwrap().into_inner();
        let e = read("y.zip", &evil).unwrap_err().to_string();
        assert!(e.contains("is not a plain name"), "{e}");
        // An analysis the registry does not know.
        let mut r = sample();
        r.analysis = "script".into();
        let e = read("v.zip", &write(&r).unwrap()).unwrap_err().to_string();
        assert!(
            e.contains("analysis 'script' is not one Tessera runs") && e.contains("tangram"),
            "{e}"
        );
        // Bundles written before the registry keep opening, under its names.
        let mut r = sample();
        r.analysis = "nhood_enrichment".into();
        assert_eq!(
            read("old.zip", &write(&r).unwrap()).unwrap().analysis,
            "nhood"
        );
        // A zip without a manifest.
        let mut z = zip::ZipWriter::new(Cursor::new(Vec::new()));
        z.start_file("other.txt", zip::write::SimpleFileOptions::default())
            .unwrap();
        let bytes = z.finish().unwrap().into_inner();
        assert!(!is_bundle(&bytes));
        let e = read("z.zip", &bytes).unwrap_err().to_string();
        assert!(e.contains("manifest.json") && e.contains("missing"), "{e}");
        // An image whose bytes do not fill its size, written or read.
        let mut r = sample();
        r.image.as_mut().unwrap().rgba.pop();
        let e = write(&r).unwrap_err().to_string();
        assert!(e.contains("image.rgba") && e.contains("2 x 1"), "{e}");
        let good = write(&sample()).unwrap();
        let mut z = zip::ZipArchive::new(Cursor::new(&good[..])).unwrap();
        let mut out = zip::ZipWriter::new(Cursor::new(Vec::new()));
        for i in 0..z.len() {
            let mut f = z.by_index(i).unwrap();
            let mut v = Vec::new();
            f.read_to_end(&mut v).unwrap();
            if f.name() == "image.rgba" {
                v.truncate(3);
            }
            out.start_file(f.name(), zip::write::SimpleFileOptions::default())
                .unwrap();
            out.write_all(&v).unwrap();
        }
        let bytes = out.finish().unwrap().into_inner();
        let e = read("w.zip", &bytes).unwrap_err().to_string();
        assert!(
            e.contains("w.zip") && e.contains("3 bytes for a 2 x 1 image"),
            "{e}"
        );
    }

    /// Images the plot cannot place are left out, floats become bytes.
    #[test]
    fn tissue_images_need_a_scale_and_a_plain_shape() {
        use crate::data::{Dataset, Value};
        use std::collections::BTreeMap;
        let with = |img: Value, scalef: Option<f64>| {
            let mut lib = BTreeMap::from([(
                "images".to_string(),
                Value::Dict(BTreeMap::from([("hires".to_string(), img)])),
            )]);
            if let Some(f) = scalef {
                lib.insert(
                    "scalefactors".into(),
                    Value::Dict(BTreeMap::from([(
                        "tissue_hires_scalef".to_string(),
                        Value::Float(f),
                    )])),
                );
            }
            let mut d = Dataset::default();
            d.uns.insert(
                "spatial".into(),
                Value::Dict(BTreeMap::from([("lib".to_string(), Value::Dict(lib))])),
            );
            tissue_image(&d)
        };
        let floats = Value::Floats {
            shape: vec![1, 2, 3],
            data: vec![1.0, 0.5, 0.0, 0.0, 0.0, 0.0],
        };
        let im = with(floats.clone(), Some(0.5)).expect("a float image");
        assert_eq!((im.width, im.height, im.scale), (2, 1, 0.5));
        assert_eq!(im.rgba, vec![255, 128, 0, 255, 0, 0, 0, 255]);
        assert!(with(floats.clone(), None).is_none(), "no scale factor");
        assert!(
            with(floats, Some(-1.0)).is_none(),
            "a negative scale factor"
        );
        let five = Value::Bytes {
            shape: vec![1, 1, 5],
            data: vec![1, 2, 3, 4, 5],
        };
        assert!(with(five, Some(1.0)).is_none(), "five channels");
        let flat = Value::Bytes {
            shape: vec![2, 2, 3],
            data: vec![7; 12],
        };
        assert!(with(flat, Some(1.0)).is_none(), "a one-colour placeholder");
    }
}
