//! The joint transcript + protein analysis as an analysis of the registry:
//! `tessera multiomics`'s options as its flags spell them, the checks on
//! the cards, and the run.

use serde::{Deserialize, Serialize};

use super::{self as mo, annotate, joint, pair, Pairing};
use crate::analysis::checks;
use crate::analysis::{Analysis, Cards, Data, Input, Progress, Slot};
use crate::bundle::Results;
use crate::compute::Device;
use crate::models::nmf::Loss;

pub struct Multiomics;

/// The most marker text a link carries.
const MAX_MARKERS: usize = 32 * 1024;

/// `tessera multiomics`'s options, as its flags spell them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
// Missing fields take the defaults (`tessera run` takes partial JSON).
#[serde(default, deny_unknown_fields)]
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
    pub fn options(&self) -> Result<(mo::Options, Option<annotate::Markers>), String> {
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

impl Analysis for Multiomics {
    const NAME: &'static str = "multiomics";
    const TITLE: &'static str = "Transcripts + proteins — joint factors, annotation, niches";
    const HELP: &'static str = "Joint NMF of paired transcript and protein data (SpatialMultiOmics): factors named from markers, cells labelled, niches and co-localization.";
    const INPUTS: &'static [Input] = &[
        Input {
            slot: Slot::Spatial,
            label: "Transcript data",
            help: "Visium, MERFISH, Xenium or Stereo-seq: coordinates and one column per gene.",
            demo: "demo_transcripts",
            spatial: true,
        },
        Input {
            slot: Slot::Proteins,
            label: "Protein data",
            help:
                "CODEX, MIBI, IMC or CyCIF cell table (x, y and one column per marker), or .h5ad.",
            demo: "demo_proteins",
            spatial: true,
        },
    ];
    const GPU: bool = true;
    type Params = MultiomicsParams;

    fn validate(p: &MultiomicsParams) -> Result<(), String> {
        for t in [
            &p.tx_platform,
            &p.prot_platform,
            &p.pair,
            &p.solver,
            &p.loss,
        ] {
            checks::text("an option", t)?;
        }
        p.options().map(|_| ())
    }

    fn check(p: &MultiomicsParams, cards: &Cards) -> Result<String, String> {
        let (tx, prot) = checks::pair(
            cards.sp,
            cards.prot,
            "Open the transcript data and the protein data first (or the multi-omics demo).",
            "The transcripts and the proteins are the same dataset; pick two.",
        )?;
        for s in [tx.summary, prot.summary] {
            if s.spatial.is_none() {
                return Err(format!("{}: no spatial coordinates", s.source));
            }
            if s.x.is_none() || s.n_vars == 0 {
                return Err(format!("{}: no feature matrix X", s.source));
            }
        }
        let (o, markers) = p.options()?;
        Ok(format!(
            "{} transcript cells × {} genes with {} protein cells × {} proteins: {} factors, {} starts, {}",
            tx.summary.n_obs,
            tx.summary.n_vars,
            prot.summary.n_obs,
            prot.summary.n_vars,
            o.joint.n_factors,
            o.joint.restarts,
            match markers {
                Some(m) => format!("named from {} marker sets", m.types.len()),
                None => "no markers: factors are numbered".into(),
            }
        ))
    }

    async fn run<D: Device>(
        dev: &D,
        p: &MultiomicsParams,
        data: Data,
        params: serde_json::Value,
        progress: &mut Progress<'_>,
    ) -> Result<Results, String> {
        let (tx_name, tx) = data.sp;
        let (prot_name, prot) = Data::take(data.prot, "protein data")?;
        let (opts, markers) = p.options()?;
        let out = mo::run(dev, &tx, &prot, markers.as_ref(), &opts, |done, total| {
            progress("NMF starts", done, total, None)
        })
        .await
        .map_err(|e| format!("{tx_name} + {prot_name}: {e}"))?;
        super::export::results(&out, &tx, params).map_err(|e| e.to_string())
    }
}
