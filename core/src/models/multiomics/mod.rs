//! Joint spatial transcript + protein analysis (the SpatialMultiOmics
//! method, specs/MULTIOMICS.md): pair the two tables, factorise them
//! jointly, name the factors from markers, label cells by their dominant
//! factor, then niche composition and co-localization of the labels.

pub mod analysis;
pub mod annotate;
pub mod demo;
pub mod export;
pub mod joint;
pub mod pair;

use crate::compute::Device;
use crate::data::{Dataset, Value};
use crate::spatial::{graph, niche, Labels};

/// How to pair the tables.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pairing {
    /// Visium transcripts: bin; shared ids: by id; otherwise nearest.
    Auto,
    Id,
    Nearest,
    Bin,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    pub pairing: Pairing,
    /// The transcript platform (Visium bins protein cells into spots).
    pub tx_platform: String,
    pub prot_platform: String,
    /// Nearest-neighbour pairing radius (coordinate units).
    pub pair_radius: f64,
    /// Spot radius for binning; None: half of Space Ranger's
    /// `spot_diameter_fullres` when present, else 27.5 (55 µm spots).
    pub spot_radius: Option<f64>,
    pub bin_mean: bool,
    pub unmatched: pair::Unmatched,
    pub joint: joint::Options,
    pub annotation: annotate::Method,
    /// Niche and co-localization radius.
    pub radius: f64,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            pairing: Pairing::Auto,
            tx_platform: "Visium".into(),
            prot_platform: "CODEX".into(),
            pair_radius: 5.0,
            spot_radius: None,
            bin_mean: false,
            unmatched: pair::Unmatched::Drop,
            joint: joint::Options::default(),
            annotation: annotate::Method::Weighted,
            radius: 50.0,
        }
    }
}

pub const TX_PLATFORMS: [&str; 5] = ["Visium", "MERFISH", "Xenium", "Stereo-seq", "generic"];
pub const PROT_PLATFORMS: [&str; 5] = ["CODEX", "MIBI", "IMC", "CyCIF", "generic"];

/// Everything the run produced, over the kept (paired) cells.
pub struct Output {
    pub paired: pair::Paired,
    pub pairing: String,
    pub ids: Vec<String>,
    pub coords: Vec<[f64; 2]>,
    pub gene_names: Vec<String>,
    pub protein_names: Vec<String>,
    pub joint: joint::Joint,
    pub factors: Vec<annotate::FactorLabel>,
    /// Dominant factor and its share, per cell.
    pub cells: Vec<(usize, f64)>,
    pub labels: Labels,
    pub niches: Vec<niche::Niche>,
    pub colocalization: Vec<niche::PairScore>,
}

fn coords(ds: &Dataset, what: &str) -> Result<Vec<[f64; 2]>, String> {
    let xy = ds.spatial().ok_or(format!(
        "{what}: no spatial coordinates (obsm 'spatial' or x/y columns)"
    ))?;
    if xy.ncols() < 2 {
        return Err(format!(
            "{what}: obsm/spatial has {} column(s), expected x and y",
            xy.ncols()
        ));
    }
    Ok(xy.rows().into_iter().map(|r| [r[0], r[1]]).collect())
}

/// X, checked to hold features.
fn features<'a>(ds: &'a Dataset, what: &str) -> Result<&'a crate::data::Matrix, String> {
    let x =
        ds.x.as_ref()
            .ok_or(format!("{what}: no feature matrix X"))?;
    if ds.n_vars() == 0 {
        return Err(format!("{what}: X has no features"));
    }
    Ok(x)
}

/// X of the given rows (all rows: None), dense and row-major.
fn dense(ds: &Dataset, what: &str, rows: Option<&[usize]>) -> Result<Vec<f32>, String> {
    let x = features(ds, what)?;
    let cols: Vec<usize> = (0..ds.n_vars()).collect();
    Ok(match rows {
        Some(r) => x.take_rows(r).columns_dense(&cols),
        None => x.columns_dense(&cols),
    })
}

/// Half of Space Ranger's spot diameter in full-resolution pixels, if any
/// library in uns['spatial'] records it.
fn spot_radius_px(ds: &Dataset) -> Option<f64> {
    let Some(Value::Dict(libs)) = ds.uns.get("spatial") else {
        return None;
    };
    libs.values()
        .find_map(|l| {
            l.get("scalefactors")?
                .get("spot_diameter_fullres")?
                .as_f64()
        })
        .map(|d| d / 2.0)
}

pub async fn run<D: Device>(
    dev: &D,
    tx: &Dataset,
    prot: &Dataset,
    markers: Option<&annotate::Markers>,
    o: &Options,
    progress: impl FnMut(usize, usize),
) -> Result<Output, String> {
    let (tx_xy, pr_xy) = (coords(tx, "transcripts")?, coords(prot, "proteins")?);
    // The transcripts are densified after pairing, kept rows only.
    features(tx, "transcripts")?;
    let pr_v = dense(prot, "proteins", None)?;
    let (g, p) = (tx.n_vars(), prot.n_vars());
    let shared = {
        let ids: std::collections::HashSet<&String> = prot.obs.index.iter().collect();
        tx.obs.index.iter().filter(|i| ids.contains(i)).count()
    };
    let visium = o.tx_platform.eq_ignore_ascii_case("visium");
    let (method, how) = match o.pairing {
        Pairing::Id => (pair::Method::Id, "shared cell id".to_string()),
        Pairing::Auto if !visium && 2 * shared >= tx.n_obs() => {
            (pair::Method::Id, "shared cell id".into())
        }
        Pairing::Nearest => (
            pair::Method::Nearest {
                radius: o.pair_radius,
            },
            format!("nearest protein cell within {}", o.pair_radius),
        ),
        Pairing::Auto if !visium => (
            pair::Method::Nearest {
                radius: o.pair_radius,
            },
            format!("nearest protein cell within {}", o.pair_radius),
        ),
        Pairing::Auto | Pairing::Bin => {
            let r = o.spot_radius.or_else(|| spot_radius_px(tx)).unwrap_or(27.5);
            (
                pair::Method::Bin {
                    radius: r,
                    mean: o.bin_mean,
                },
                format!(
                    "protein cells within {r} of each spot centre, {}",
                    if o.bin_mean { "averaged" } else { "summed" }
                ),
            )
        }
    };
    let paired = pair::pair(
        &pair::Points {
            ids: &tx.obs.index,
            coords: &tx_xy,
        },
        &pair::Side {
            ids: &prot.obs.index,
            coords: &pr_xy,
            values: &pr_v,
            n_features: p,
        },
        method,
        o.unmatched,
    )?;
    let n = paired.rows.len();
    let txk = dense(tx, "transcripts", Some(&paired.rows))?;
    let joint = joint::fit(dev, &txk, g, &paired.protein, p, n, &o.joint, progress).await?;
    let gene_names: Vec<String> = joint
        .genes
        .iter()
        .map(|&j| tx.var.index[j].clone())
        .collect();
    let protein_names = prot.var.index.clone();
    // Without markers the factors are named by number; either way each
    // lists its top genes and proteins.
    let factors = match markers {
        Some(m) => annotate::label_factors(&joint, &gene_names, &protein_names, m, o.annotation),
        None => annotate::label_factors(
            &joint,
            &gene_names,
            &protein_names,
            &annotate::Markers::default(),
            o.annotation,
        )
        .into_iter()
        .enumerate()
        .map(|(f, mut l)| {
            l.cell_type = format!("Factor_{}", f + 1);
            l
        })
        .collect(),
    };
    let cells = annotate::dominant(&joint);
    let names: Vec<String> = cells
        .iter()
        .map(|&(f, _)| factors[f].cell_type.clone())
        .collect();
    let labels = Labels::from_strings(&names);
    let ids: Vec<String> = paired
        .rows
        .iter()
        .map(|&i| tx.obs.index[i].clone())
        .collect();
    let kept_xy: Vec<[f64; 2]> = paired.rows.iter().map(|&i| tx_xy[i]).collect();
    let g_opts = graph::Options {
        kind: graph::Kind::Radius { r: o.radius },
        percentile: None,
    };
    let rg = graph::build(&kept_xy, None, &g_opts)?;
    let niches = niche::niches(&rg, &labels);
    let colocalization = niche::colocalization(&rg, &labels);
    Ok(Output {
        paired,
        pairing: how,
        ids,
        coords: kept_xy,
        gene_names,
        protein_names,
        joint,
        factors,
        cells,
        labels,
        niches,
        colocalization,
    })
}
