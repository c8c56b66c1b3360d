//! What a share link holds: the analysis and its parameters, where the
//! inputs come from, and how the results were shown. It travels in the URL
//! fragment as deflated JSON in base64url, so it never reaches a server.
//!
//! A link is data, never code: every field is parsed into a closed set of
//! types and range-checked, and URLs must be plain http(s).

use std::io::{Read, Write};

use serde::{Deserialize, Serialize};

use crate::models::tangram::{self, DensityPrior, Mode};

pub const VERSION: u32 = 1;
/// Longest fragment accepted (browsers allow more; no honest link needs it).
const MAX_LINK: usize = 16 * 1024;
const MAX_JSON: u64 = 64 * 1024;
const MAX_TEXT: usize = 256;
const MAX_URL: usize = 2048;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Link {
    pub v: u32,
    pub run: Run,
    #[serde(default)]
    pub view: View,
}

/// One analysis run: what the page sends the worker and what a link replays.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Run {
    pub params: Params,
    pub inputs: Inputs,
    #[serde(default)]
    pub device: DeviceChoice,
}

/// Where the browser runs the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceChoice {
    /// WebGPU, or the CPU with a notice when the browser has none.
    #[default]
    Webgpu,
    /// The CPU device (faster than a software WebGPU on small problems).
    Cpu,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "analysis", rename_all = "snake_case")]
pub enum Params {
    Tangram(TangramParams),
    /// squidpy's `spatial_neighbors` + `nhood_enrichment` + `centrality_scores`.
    Nhood(NhoodParams),
    /// squidpy's `co_occurrence`.
    Cooccurrence(CooccurrenceParams),
    /// squidpy's `spatial_autocorr` (Moran's I, Geary's C).
    Autocorr(AutocorrParams),
    /// Niche composition and co-localization scores on a radius graph.
    Niche(NicheParams),
    /// Joint transcript + protein factorization (`tessera multiomics`).
    Multiomics(MultiomicsParams),
    /// Reference signatures, then the spatial mapping (`tessera cell2location`).
    Cell2location(Cell2locationParams),
}

/// `tessera cell2location signatures` + `map` as one run, with the
/// command line's defaults (the tutorial's N = 30 cells per spot).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cell2locationParams {
    /// The reference's obs column with the cell types.
    pub labels: String,
    /// regression or average.
    pub method: String,
    /// None: scvi's default, min(20000 / cells x 1000, 1000).
    pub reference_epochs: Option<usize>,
    /// filter_genes on the reference (cell_count_cutoff 15,
    /// cell_percentage_cutoff2 0.05, nonz_mean_cutoff 1.12).
    pub filter_genes: bool,
    pub n_cells_per_location: f64,
    pub detection_alpha: f64,
    pub epochs: usize,
    pub lr: f32,
    pub seed: u64,
    pub keep_mt: bool,
}

impl Default for Cell2locationParams {
    fn default() -> Self {
        Cell2locationParams {
            labels: String::new(),
            method: "regression".into(),
            reference_epochs: None,
            filter_genes: true,
            n_cells_per_location: 30.0,
            detection_alpha: 20.0,
            epochs: 30_000,
            lr: 0.002,
            seed: 0,
            keep_mt: false,
        }
    }
}

impl Cell2locationParams {
    /// Both steps' options for a reference of `cells` cells, or the field
    /// that is wrong.
    pub fn options(
        &self,
        cells: usize,
    ) -> Result<
        (
            crate::models::cell2location::run::SignatureOptions,
            crate::models::cell2location::Options,
        ),
        String,
    > {
        use crate::models::cell2location::{run, Options, Train};
        use crate::models::regression;
        need_key(&self.labels)?;
        let method = run::Method::parse(&self.method)
            .ok_or_else(|| format!("method '{}': expected regression or average", self.method))?;
        let positive = |v: f64| v.is_finite() && v > 0.0;
        if !positive(self.n_cells_per_location) {
            return Err(format!(
                "N_cells_per_location {}: expected a positive number",
                self.n_cells_per_location
            ));
        }
        if !positive(self.detection_alpha) {
            return Err(format!(
                "detection_alpha {}: expected a positive number",
                self.detection_alpha
            ));
        }
        for (what, n) in [
            ("epochs", Some(self.epochs)),
            ("reference epochs", self.reference_epochs),
        ] {
            if let Some(n) = n {
                if !(1..=100_000).contains(&n) {
                    return Err(format!("{what} {n}: expected 1 to 100000"));
                }
            }
        }
        if !(self.lr > 0.0 && self.lr <= 1.0) {
            return Err(format!("learning rate {}: expected (0, 1]", self.lr));
        }
        let sig = run::SignatureOptions {
            labels: self.labels.clone(),
            method,
            batch: None,
            covariates: vec![],
            filter: self
                .filter_genes
                .then(crate::prep::filter::FilterGenes::default),
            train: regression::nb::Train {
                max_epochs: self
                    .reference_epochs
                    .unwrap_or_else(|| regression::default_epochs(cells)),
                seed: self.seed,
                ..Default::default()
            },
        };
        let mut map = Options::new(self.n_cells_per_location, self.detection_alpha);
        map.train = Train {
            max_epochs: self.epochs,
            lr: self.lr,
            seed: self.seed,
            block_rows: None,
        };
        Ok((sig, map))
    }
}

/// A neighbour graph from the form's fields (squidpy's `spatial_neighbors`).
fn graph_options(
    graph: &str,
    n_neighs: usize,
    radius: Option<f64>,
) -> Result<crate::spatial::graph::Options, String> {
    use crate::spatial::Kind;
    if !(1..=100).contains(&n_neighs) {
        return Err(format!("n_neighs {n_neighs}: expected 1 to 100"));
    }
    let kind = match graph {
        "knn" => Kind::Knn { k: n_neighs },
        "delaunay" => Kind::Delaunay,
        "grid" => Kind::Grid {
            n_neighs,
            n_rings: 1,
        },
        "radius" => match radius {
            Some(r) if r.is_finite() && r > 0.0 => Kind::Radius { r },
            _ => return Err("a radius graph needs a positive radius".into()),
        },
        g => {
            return Err(format!(
                "graph '{g}': expected knn, radius, delaunay or grid"
            ))
        }
    };
    Ok(crate::spatial::graph::Options {
        kind,
        percentile: None,
    })
}

fn need_key(key: &str) -> Result<(), String> {
    if key.is_empty() {
        return Err("choose the obs column with the cell types".into());
    }
    check_text("the cell-type column", key)
}

/// squidpy's `co_occurrence` (interval 50 distances).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CooccurrenceParams {
    pub cluster_key: String,
    pub interval: usize,
}

impl Default for CooccurrenceParams {
    fn default() -> Self {
        CooccurrenceParams {
            cluster_key: String::new(),
            interval: 50,
        }
    }
}

impl CooccurrenceParams {
    pub fn validate(&self) -> Result<(), String> {
        need_key(&self.cluster_key)?;
        if !(2..=1000).contains(&self.interval) {
            return Err(format!("interval {}: expected 2 to 1000", self.interval));
        }
        Ok(())
    }
}

/// squidpy's `spatial_autocorr` on a `spatial_neighbors` graph.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AutocorrParams {
    /// moran or geary.
    pub mode: String,
    /// Empty: the highly variable genes when marked, else every gene.
    pub genes: Vec<String>,
    pub graph: String,
    pub n_neighs: usize,
    pub radius: Option<f64>,
    /// 0: analytic p-values only (squidpy's default n_perms=None).
    pub n_perms: usize,
    pub two_tailed: bool,
    pub seed: u32,
}

impl Default for AutocorrParams {
    fn default() -> Self {
        AutocorrParams {
            mode: "moran".into(),
            genes: vec![],
            graph: "knn".into(),
            n_neighs: 6,
            radius: None,
            n_perms: 0,
            two_tailed: false,
            seed: 0,
        }
    }
}

impl AutocorrParams {
    pub fn options(
        &self,
    ) -> Result<
        (
            crate::spatial::graph::Options,
            crate::spatial::autocorr::Options,
        ),
        String,
    > {
        use crate::spatial::autocorr::{Mode, Options};
        let mode = match self.mode.as_str() {
            "moran" => Mode::Moran,
            "geary" => Mode::Geary,
            m => return Err(format!("mode '{m}': expected moran or geary")),
        };
        if self.n_perms > 10_000 {
            return Err(format!("n_perms {}: expected 0 to 10000", self.n_perms));
        }
        if self.genes.len() > 50_000 {
            return Err("at most 50000 genes".into());
        }
        for g in &self.genes {
            check_text("a gene name", g)?;
        }
        let g = graph_options(&self.graph, self.n_neighs, self.radius)?;
        Ok((
            g,
            Options {
                mode,
                transformation: true,
                n_perms: self.n_perms,
                two_tailed: self.two_tailed,
                seed: self.seed,
            },
        ))
    }
}

/// Niches and co-localization on a radius graph (`tessera spatial niche`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NicheParams {
    pub cluster_key: String,
    pub radius: f64,
}

impl Default for NicheParams {
    fn default() -> Self {
        NicheParams {
            cluster_key: String::new(),
            radius: 50.0,
        }
    }
}

impl NicheParams {
    pub fn graph_options(&self) -> Result<crate::spatial::graph::Options, String> {
        need_key(&self.cluster_key)?;
        graph_options("radius", 1, Some(self.radius))
    }
}

/// The most marker text a link carries.
const MAX_MARKERS: usize = 32 * 1024;

/// `tessera multiomics`'s options, as its flags spell them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MultiomicsParams {
    pub tx_platform: String,
    pub prot_platform: String,
    pub n_factors: usize,
    pub radius: f64,
    pub pair: String,
    pub pair_radius: f64,
    pub spot_radius: Option<f64>,
    pub bin_mean: bool,
    pub unmatched: String,
    pub normalise: String,
    pub n_hvg: usize,
    pub balance: bool,
    pub solver: String,
    pub loss: String,
    pub restarts: usize,
    pub max_iter: usize,
    pub annotation: String,
    pub seed: u32,
    /// Marker sets as JSON or CSV text (`--markers`); None: factors by number.
    pub markers: Option<String>,
}

impl Default for MultiomicsParams {
    fn default() -> Self {
        MultiomicsParams {
            tx_platform: "Visium".into(),
            prot_platform: "CODEX".into(),
            n_factors: 15,
            radius: 50.0,
            pair: "auto".into(),
            pair_radius: 5.0,
            spot_radius: None,
            bin_mean: false,
            unmatched: "drop".into(),
            normalise: "log1p".into(),
            n_hvg: 2000,
            balance: true,
            solver: "cd".into(),
            loss: "frobenius".into(),
            restarts: 5,
            max_iter: 500,
            annotation: "weighted".into(),
            seed: 0,
            markers: None,
        }
    }
}

impl MultiomicsParams {
    /// The method's options and marker sets, or the field that is wrong
    /// (named by its command-line flag).
    pub fn options(
        &self,
    ) -> Result<
        (
            crate::models::multiomics::Options,
            Option<crate::models::multiomics::annotate::Markers>,
        ),
        String,
    > {
        use crate::models::multiomics::{self as mo, annotate, joint, pair, Pairing};
        use crate::models::nmf::Loss;
        let pick = |flag: &str, v: &str, all: &[&str]| -> Result<String, String> {
            all.iter()
                .find(|p| p.eq_ignore_ascii_case(v))
                .map(|p| p.to_string())
                .ok_or_else(|| {
                    format!(
                        "{flag}: unknown value {v:?}: expected one of {}",
                        all.join(", ")
                    )
                })
        };
        let tx_platform = pick("--tx-platform", &self.tx_platform, &mo::TX_PLATFORMS)?;
        let prot_platform = pick("--prot-platform", &self.prot_platform, &mo::PROT_PLATFORMS)?;
        let pairing = match pick("--pair", &self.pair, &["auto", "id", "nearest", "bin"])?.as_str()
        {
            "id" => Pairing::Id,
            "nearest" => Pairing::Nearest,
            "bin" => Pairing::Bin,
            _ => Pairing::Auto,
        };
        let unmatched = match pick("--unmatched", &self.unmatched, &["drop", "pad"])?.as_str() {
            "pad" => pair::Unmatched::Pad,
            _ => pair::Unmatched::Drop,
        };
        let normalise = match pick("--normalise", &self.normalise, &["log1p", "minmax"])?.as_str() {
            "minmax" => joint::Normalise::MinMax,
            _ => joint::Normalise::Log1p,
        };
        let loss = Loss::parse(&self.loss.to_lowercase()).ok_or_else(|| {
            format!(
                "--loss: unknown loss {:?}: expected frobenius or kullback-leibler",
                self.loss
            )
        })?;
        let solver = match pick("--solver", &self.solver, &["cd", "mu"])?.as_str() {
            "mu" => joint::Solver::Mu(loss),
            _ if loss == Loss::KullbackLeibler => {
                return Err("--loss: the Kullback-Leibler loss needs --solver mu".into())
            }
            _ => joint::Solver::Cd,
        };
        let annotation = match pick(
            "--annotation",
            &self.annotation,
            &["weighted", "correlation"],
        )?
        .as_str()
        {
            "correlation" => annotate::Method::Correlation,
            _ => annotate::Method::Weighted,
        };
        if !(1..=200).contains(&self.n_factors) {
            return Err(format!("--n-factors {}: expected 1 to 200", self.n_factors));
        }
        if !(1..=100).contains(&self.restarts) {
            return Err(format!("--restarts {}: expected 1 to 100", self.restarts));
        }
        if !(1..=100_000).contains(&self.max_iter) {
            return Err(format!(
                "--max-iter {}: expected 1 to 100000",
                self.max_iter
            ));
        }
        if self.n_hvg == 0 {
            return Err("--n-hvg: expected at least 1 gene".into());
        }
        for (flag, v) in [
            ("--radius", Some(self.radius)),
            ("--pair-radius", Some(self.pair_radius)),
            ("--spot-radius", self.spot_radius),
        ] {
            if let Some(v) = v {
                if !(v.is_finite() && v > 0.0) {
                    return Err(format!("{flag} {v}: expected a positive distance"));
                }
            }
        }
        let markers = match self.markers.as_deref().map(str::trim) {
            Some(t) if !t.is_empty() => {
                if t.len() > MAX_MARKERS {
                    return Err(format!(
                        "the marker sets are longer than {MAX_MARKERS} characters"
                    ));
                }
                Some(annotate::Markers::parse("markers", t)?)
            }
            _ => None,
        };
        Ok((
            mo::Options {
                pairing,
                tx_platform,
                prot_platform,
                pair_radius: self.pair_radius,
                spot_radius: self.spot_radius,
                bin_mean: self.bin_mean,
                unmatched,
                joint: joint::Options {
                    n_factors: self.n_factors,
                    n_hvg: self.n_hvg,
                    normalise,
                    balance: self.balance,
                    solver,
                    restarts: self.restarts,
                    max_iter: self.max_iter,
                    seed: self.seed,
                    ..joint::Options::default()
                },
                annotation,
                radius: self.radius,
            },
            markers,
        ))
    }
}

/// Neighbourhood enrichment as the form shows it (squidpy's defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NhoodParams {
    pub cluster_key: String,
    pub library_key: Option<String>,
    /// knn, radius, delaunay or grid (Visium).
    pub graph: String,
    pub n_neighs: usize,
    pub radius: Option<f64>,
    pub n_perms: usize,
    pub seed: u32,
}

impl Default for NhoodParams {
    fn default() -> Self {
        NhoodParams {
            cluster_key: String::new(),
            library_key: None,
            graph: "knn".into(),
            n_neighs: 6,
            radius: None,
            n_perms: 1000,
            seed: 0,
        }
    }
}

impl NhoodParams {
    /// The graph's options, or what is wrong with a field.
    pub fn graph_options(&self) -> Result<crate::spatial::graph::Options, String> {
        need_key(&self.cluster_key)?;
        if !(1..=100_000).contains(&self.n_perms) {
            return Err(format!("n_perms {}: expected 1 to 100000", self.n_perms));
        }
        graph_options(&self.graph, self.n_neighs, self.radius)
    }
}

/// `tg.map_cells_to_space`'s parameters as the form shows them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TangramParams {
    pub mode: String,
    pub cluster_label: Option<String>,
    pub annotation: Option<String>,
    pub density_prior: String,
    pub num_epochs: usize,
    pub learning_rate: f32,
    pub lambda_g2: f32,
    pub lambda_r: f32,
    pub target_count: Option<f64>,
    pub seed: u32,
}

impl Default for TangramParams {
    fn default() -> Self {
        TangramParams {
            mode: "clusters".into(),
            cluster_label: None,
            annotation: None,
            density_prior: "rna_count_based".into(),
            num_epochs: 1000,
            learning_rate: 0.1,
            lambda_g2: 0.0,
            lambda_r: 0.0,
            target_count: None,
            seed: 42,
        }
    }
}

impl TangramParams {
    /// The model's options, or what is wrong with a field.
    pub fn options(&self) -> Result<tangram::Options, String> {
        let mode = Mode::parse(&self.mode).ok_or_else(|| {
            format!(
                "mode '{}': expected cells, clusters or constrained",
                self.mode
            )
        })?;
        let density_prior = DensityPrior::parse(&self.density_prior).ok_or_else(|| {
            format!(
                "density prior '{}': expected rna_count_based, uniform or none",
                self.density_prior
            )
        })?;
        if mode == Mode::Clusters && self.cluster_label.as_deref().unwrap_or("").is_empty() {
            return Err(
                "clusters mode needs a cluster label (an obs column of the reference)".into(),
            );
        }
        if !(1..=100_000).contains(&self.num_epochs) {
            return Err(format!("epochs {}: expected 1 to 100000", self.num_epochs));
        }
        if !(self.learning_rate > 0.0 && self.learning_rate <= 10.0) {
            return Err(format!(
                "learning rate {}: expected a number in (0, 10]",
                self.learning_rate
            ));
        }
        for (name, v) in [("lambda_g2", self.lambda_g2), ("lambda_r", self.lambda_r)] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(format!("{name} {v}: expected a non-negative number"));
            }
        }
        if let Some(t) = self.target_count {
            if !(t.is_finite() && t >= 1.0) {
                return Err(format!("target count {t}: expected at least 1"));
            }
        }
        Ok(tangram::Options {
            mode,
            cluster_label: self.cluster_label.clone().filter(|s| !s.is_empty()),
            annotation: self.annotation.clone().filter(|s| !s.is_empty()),
            density_prior,
            hyper: tangram::Hyper {
                learning_rate: self.learning_rate,
                num_epochs: self.num_epochs,
                lambda_g2: self.lambda_g2,
                lambda_r: self.lambda_r,
                ..Default::default()
            },
            target_count: self.target_count,
            seed: Some(self.seed),
            ..Default::default()
        })
    }
}

/// Where one input of a run comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Source {
    /// Tessera's demo tissue (spatial side) or its reference (generated,
    /// identical everywhere).
    Demo,
    /// A public file the page fetches.
    Url { url: String },
    /// Files on the sharer's machine: a link can name them, not carry them.
    Local { files: Vec<String> },
}

impl Source {
    /// Whether a link can load it again on another machine.
    pub fn is_public(&self) -> bool {
        !matches!(self, Source::Local { .. })
    }

    fn validate(&self, what: &str) -> Result<(), String> {
        match self {
            Source::Demo => Ok(()),
            Source::Url { url } => check_url(what, url),
            Source::Local { files } => {
                if files.is_empty() || files.len() > 64 {
                    return Err(format!("{what}: expected 1 to 64 file names"));
                }
                files.iter().try_for_each(|f| check_text("a file name", f))
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Inputs {
    /// The single-cell reference (Tangram); None for one-dataset analyses.
    pub sc: Option<Source>,
    /// The spatial data (the transcripts for multi-omics).
    pub sp: Source,
    /// The protein data (multi-omics only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prot: Option<Source>,
}

/// How results are shown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct View {
    /// A column of the shown layer, or None for the dominant category.
    pub color: Option<String>,
    /// Percentile of the values mapped to the top colour (cell2location's p99.2).
    pub vmax_pct: f64,
    pub zoom: f64,
    /// Centre of the view in data units (None: the data's centre).
    pub center: Option<[f64; 2]>,
    /// Up to six columns drawn together, each in its own colour (as
    /// cell2location's `plot_spatial`); when set it replaces `color`.
    #[serde(default)]
    pub overlay: Vec<String>,
    /// Which of the result's layers is shown (None: the first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer: Option<String>,
    /// Leave out the tissue image under the points.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub hide_image: bool,
}

/// The most columns one overlay panel shows.
pub const MAX_OVERLAY: usize = 6;

impl Default for View {
    fn default() -> Self {
        View {
            color: None,
            vmax_pct: 99.2,
            zoom: 1.0,
            center: None,
            overlay: vec![],
            layer: None,
            hide_image: false,
        }
    }
}

fn check_text(what: &str, s: &str) -> Result<(), String> {
    if s.len() > MAX_TEXT || s.chars().any(char::is_control) {
        return Err(format!(
            "{what} is not a plain name of at most {MAX_TEXT} characters"
        ));
    }
    Ok(())
}

/// A public http(s) URL, nothing else (no javascript:, data:, blob: or file:).
pub fn check_url(what: &str, url: &str) -> Result<(), String> {
    let ok_scheme = url.starts_with("https://") || url.starts_with("http://");
    if !ok_scheme || url.len() > MAX_URL || url.chars().any(|c| c.is_control() || c == ' ') {
        return Err(format!(
            "{what} must be an http(s) URL of at most {MAX_URL} characters"
        ));
    }
    Ok(())
}

impl View {
    pub fn validate(&self) -> Result<(), String> {
        if let Some(c) = &self.color {
            check_text("the colour column", c)?;
        }
        if let Some(l) = &self.layer {
            check_text("the layer", l)?;
        }
        if self.overlay.len() > MAX_OVERLAY {
            return Err(format!(
                "{} overlaid columns: at most {MAX_OVERLAY}",
                self.overlay.len()
            ));
        }
        for c in &self.overlay {
            check_text("an overlaid column", c)?;
        }
        if !(self.vmax_pct > 0.0 && self.vmax_pct <= 100.0) {
            return Err(format!(
                "vmax percentile {}: expected (0, 100]",
                self.vmax_pct
            ));
        }
        if !(self.zoom.is_finite() && (0.01..=10_000.0).contains(&self.zoom)) {
            return Err(format!("zoom {}: expected 0.01 to 10000", self.zoom));
        }
        if self
            .center
            .is_some_and(|c| !c.iter().all(|v| v.is_finite()))
        {
            return Err("the view centre is not a finite point".into());
        }
        Ok(())
    }
}

impl Run {
    pub fn validate(&self) -> Result<(), String> {
        match &self.params {
            Params::Tangram(p) => {
                check_text("mode", &p.mode)?;
                for s in [&p.cluster_label, &p.annotation].into_iter().flatten() {
                    check_text("an obs column", s)?;
                }
                p.options()?;
                if self.inputs.sc.is_none() {
                    return Err("Tangram needs a single-cell reference".into());
                }
            }
            Params::Nhood(p) => {
                check_text("the cluster key", &p.cluster_key)?;
                if let Some(l) = &p.library_key {
                    check_text("the library key", l)?;
                }
                p.graph_options()?;
            }
            Params::Cooccurrence(p) => p.validate()?,
            Params::Autocorr(p) => {
                p.options()?;
            }
            Params::Niche(p) => {
                p.graph_options()?;
            }
            Params::Cell2location(p) => {
                check_text("the method", &p.method)?;
                p.options(1)?;
                if self.inputs.sc.is_none() {
                    return Err("cell2location needs a single-cell reference".into());
                }
            }
            Params::Multiomics(p) => {
                for t in [
                    &p.tx_platform,
                    &p.prot_platform,
                    &p.pair,
                    &p.solver,
                    &p.loss,
                ] {
                    check_text("an option", t)?;
                }
                p.options()?;
                if self.inputs.prot.is_none() {
                    return Err("the multi-omics analysis needs protein data".into());
                }
            }
        }
        if let Some(sc) = &self.inputs.sc {
            sc.validate("the reference")?;
        }
        if let Some(p) = &self.inputs.prot {
            p.validate("the protein data")?;
        }
        self.inputs.sp.validate("the spatial data")?;
        Ok(())
    }
}

impl Link {
    pub fn validate(&self) -> Result<(), String> {
        if self.v != VERSION {
            return Err(format!(
                "link version {} (this page reads version {VERSION})",
                self.v
            ));
        }
        self.run.validate()?;
        self.view.validate()
    }

    /// The fragment payload (without `#link=`).
    pub fn encode(&self) -> String {
        let json = serde_json::to_vec(self).expect("link serialises");
        let mut z = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
        z.write_all(&json).expect("in-memory deflate");
        base64url(&z.finish().expect("in-memory deflate"))
    }

    /// Parses and checks a fragment payload; the error says what is wrong.
    pub fn decode(payload: &str) -> Result<Link, String> {
        if payload.len() > MAX_LINK {
            return Err(format!("the link is longer than {MAX_LINK} characters"));
        }
        let bytes = unbase64url(payload).ok_or("the link is not valid base64url text")?;
        let mut json = Vec::new();
        flate2::read::DeflateDecoder::new(&bytes[..])
            .take(MAX_JSON + 1)
            .read_to_end(&mut json)
            .map_err(|_| "the link's payload is not deflated data (was it cut short?)")?;
        if json.len() as u64 > MAX_JSON {
            return Err("the link's payload is too large".into());
        }
        let link: Link = serde_json::from_slice(&json)
            .map_err(|e| format!("the link's settings are not understood: {e}"))?;
        link.validate()?;
        Ok(link)
    }
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fn base64url(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 4 / 3 + 3);
    for c in bytes.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..=c.len() {
            s.push(B64[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    s
}

fn unbase64url(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for c in s.trim_end_matches('=').bytes() {
        let v = B64.iter().position(|&b| b == c)? as u32;
        acc = acc << 6 | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link() -> Link {
        Link {
            v: VERSION,
            run: Run {
                params: Params::Tangram(TangramParams {
                    cluster_label: Some("cell_type".into()),
                    ..Default::default()
                }),
                inputs: Inputs {
                    sc: Some(Source::Url {
                        url: "https://example.org/sc.h5ad".into(),
                    }),
                    sp: Source::Url {
                        url: "https://example.org/sp.h5ad".into(),
                    },
                    prot: None,
                },
                device: DeviceChoice::Cpu,
            },
            view: View {
                color: Some("CA1".into()),
                zoom: 2.5,
                center: Some([10.0, -3.5]),
                overlay: vec!["CA1".into(), "DG".into()],
                ..Default::default()
            },
        }
    }

    #[test]
    fn base64url_round_trips_every_length() {
        for n in 0..40u8 {
            let bytes: Vec<u8> = (0..n).map(|i| i.wrapping_mul(97).wrapping_add(3)).collect();
            assert_eq!(
                unbase64url(&base64url(&bytes)).unwrap(),
                bytes,
                "length {n}"
            );
        }
        assert!(unbase64url("a*b").is_none());
    }

    #[test]
    fn links_round_trip() {
        let l = link();
        let s = l.encode();
        assert!(s.bytes().all(|b| B64.contains(&b)));
        assert_eq!(Link::decode(&s).unwrap(), l);
        let demo = Link {
            run: Run {
                inputs: Inputs {
                    sc: Some(Source::Demo),
                    sp: Source::Local {
                        files: vec!["spatial.h5ad".into()],
                    },
                    prot: None,
                },
                ..l.run.clone()
            },
            ..l
        };
        assert_eq!(Link::decode(&demo.encode()).unwrap(), demo);
    }

    #[test]
    fn bad_links_are_refused_with_a_reason() {
        let enc = |json: &str| {
            let mut z = flate2::write::DeflateEncoder::new(Vec::new(), Default::default());
            z.write_all(json.as_bytes()).unwrap();
            base64url(&z.finish().unwrap())
        };
        assert!(Link::decode("%%%").unwrap_err().contains("base64url"));
        assert!(Link::decode("AAAA").unwrap_err().contains("deflated"));
        assert!(Link::decode(&enc("{\"v\":1}"))
            .unwrap_err()
            .contains("not understood"));
        let mut l = link();
        l.run.inputs.sc = Some(Source::Url {
            url: "javascript:alert(1)".into(),
        });
        assert!(Link::decode(&l.encode())
            .unwrap_err()
            .contains("http(s) URL"));
        let mut l = link();
        l.run.inputs.sp = Source::Local { files: vec![] };
        assert!(Link::decode(&l.encode())
            .unwrap_err()
            .contains("file names"));
        let mut l = link();
        l.view.overlay = vec!["x".into(); 7];
        assert!(Link::decode(&l.encode()).unwrap_err().contains("at most 6"));
        let mut l = link();
        l.view.vmax_pct = 250.0;
        assert!(Link::decode(&l.encode()).unwrap_err().contains("vmax"));
        let mut l = link();
        let Params::Tangram(p) = &mut l.run.params else {
            unreachable!()
        };
        p.num_epochs = 0;
        assert!(Link::decode(&l.encode()).unwrap_err().contains("epochs"));
        let mut l = link();
        let Params::Tangram(p) = &mut l.run.params else {
            unreachable!()
        };
        p.cluster_label = None;
        assert!(Link::decode(&l.encode())
            .unwrap_err()
            .contains("cluster label"));
        // Unknown fields are refused, not ignored.
        let json = serde_json::to_string(&link()).unwrap().replacen(
            "\"v\":1",
            "\"v\":1,\"script\":\"x\"",
            1,
        );
        assert!(Link::decode(&enc(&json))
            .unwrap_err()
            .contains("unknown field"));
        // Spatial statistics: one dataset, squidpy's defaults, checked fields.
        let mut l = link();
        l.run.inputs.sc = None;
        l.run.params = Params::Nhood(NhoodParams {
            cluster_key: "cell_type".into(),
            ..Default::default()
        });
        assert_eq!(Link::decode(&l.encode()).unwrap(), l);
        l.run.params = Params::Nhood(NhoodParams {
            cluster_key: "cell_type".into(),
            graph: "radius".into(),
            ..Default::default()
        });
        assert!(Link::decode(&l.encode())
            .unwrap_err()
            .contains("positive radius"));
        let mut l = link();
        l.v = 9;
        assert!(Link::decode(&l.encode()).unwrap_err().contains("version 9"));
    }
}
