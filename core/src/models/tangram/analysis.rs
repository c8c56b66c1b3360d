//! Tangram as an analysis of the registry: `tg.map_cells_to_space`'s
//! parameters as the page and links hold them, the checks on the cards, and
//! the run that the worker and links replay.

use serde::{Deserialize, Serialize};

use super::{fit::bytes_needed, DensityPrior, Mode, Named};
use crate::analysis::checks::{self, fmt_bytes, TAB_BUDGET};
use crate::analysis::{Analysis, Cards, Data, Input, Progress, Slot};
use crate::bundle::Results;
use crate::compute::Device;

pub struct Tangram;

/// `tg.map_cells_to_space`'s parameters as the form shows them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
// Missing fields take the defaults (`tessera run` takes partial JSON).
#[serde(default, deny_unknown_fields)]
pub struct TangramParams {
    pub mode: String,
    pub cluster_label: Option<String>,
    /// The obs column projected onto the spots; None: the cluster label.
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
    pub fn options(&self) -> Result<super::Options, String> {
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
        let named = |s: &Option<String>| s.clone().filter(|s| !s.is_empty());
        Ok(super::Options {
            mode,
            cluster_label: named(&self.cluster_label),
            annotation: named(&self.annotation).or(named(&self.cluster_label)),
            density_prior,
            hyper: super::Hyper {
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

impl Analysis for Tangram {
    const NAME: &'static str = "tangram";
    const TITLE: &'static str = "Tangram — map single cells onto space";
    const HELP: &'static str = "Tangram (Biancalani et al. 2021) learns where each cell type of a single-cell reference sits in the tissue.";
    const INPUTS: &'static [Input] = &[
        Input {
            slot: Slot::Spatial,
            label: "Spatial data",
            help: "Spots or cells with coordinates.",
            demo: "demo_spatial",
            spatial: true,
        },
        Input {
            slot: Slot::Reference,
            label: "Single-cell reference",
            help: "Expression of single cells, labelled by cell type.",
            demo: "demo_reference",
            spatial: false,
        },
    ];
    const GPU: bool = true;
    type Params = TangramParams;

    fn validate(p: &TangramParams) -> Result<(), String> {
        checks::text("mode", &p.mode)?;
        for s in [&p.cluster_label, &p.annotation].into_iter().flatten() {
            checks::text("an obs column", s)?;
        }
        p.options().map(|_| ())
    }

    fn check(p: &TangramParams, cards: &Cards) -> Result<String, String> {
        let (sc, sp) = checks::reference_pair(cards)?;
        let opts = p.options()?;
        // One row per cluster in clusters mode, per cell otherwise (the
        // label column must exist either way: it is projected).
        let mut rows = sc.summary.n_obs;
        if let Some(l) = &opts.cluster_label {
            let clusters = checks::categories(&sc, l)?;
            if opts.mode == Mode::Clusters {
                rows = clusters;
            }
        }
        if opts.mode == Mode::Clusters && rows == 0 {
            return Err("the cluster label has no categories".into());
        }
        let spots = sp.summary.n_obs;
        let genes = sc.summary.n_vars.min(sp.summary.n_vars);
        let need = bytes_needed(
            rows,
            spots,
            genes,
            opts.hyper.lambda_r != 0.0,
            opts.mode == Mode::Constrained,
        );
        if need > TAB_BUDGET {
            return Err(format!(
                "This run needs about {} of GPU memory and a browser tab gets about {}. Use clusters mode, or run it with the command line: tessera tangram --sc {} --sp {} --mode {}{} --seed {} --out tangram_out/",
                fmt_bytes(need),
                fmt_bytes(TAB_BUDGET),
                sc.summary.source,
                sp.summary.source,
                p.mode,
                opts.cluster_label.map(|l| format!(" --cluster-label {l}")).unwrap_or_default(),
                p.seed
            ));
        }
        Ok(format!(
            "{rows} {} onto {spots} spots, at most {genes} shared genes: about {} of GPU memory",
            if opts.mode == Mode::Clusters {
                "clusters"
            } else {
                "cells"
            },
            fmt_bytes(need)
        ))
    }

    async fn run<D: Device>(
        dev: &D,
        p: &TangramParams,
        data: Data,
        params: serde_json::Value,
        progress: &mut Progress<'_>,
    ) -> Result<Results, String> {
        let opts = p.options()?;
        let sp = data.sp;
        let sc = Data::take(data.sc, "a single-cell reference")?;
        let m = super::map_cells_to_space(
            dev,
            Named::new(&sc.0, &sc.1),
            Named::new(&sp.0, &sp.1),
            &opts,
            &mut |done, total, loss| progress("epochs", done, total, Some(loss)),
        )
        .await
        .map_err(|e| e.to_string())?;
        if m.ct_pred.is_none() {
            return Err(format!(
                "{}: no annotation to project onto the spots; choose an obs column of the reference under 'Annotation'",
                sc.0
            ));
        }
        m.results(&sp.1, params).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::Card;
    use crate::io::Loaded;

    #[test]
    fn the_form_check_sizes_cells_mode_by_cells() {
        let (sp, sc) = crate::demo::demo_pair(Default::default());
        let summary = |dataset| {
            Loaded {
                dataset,
                format: "demo".into(),
                source: "demo".into(),
            }
            .summary()
        };
        let (s_sp, s_sc) = (summary(sp), summary(sc));
        let cards = Cards {
            sp: Some(Card {
                id: 1,
                summary: &s_sp,
            }),
            sc: Some(Card {
                id: 2,
                summary: &s_sc,
            }),
            prot: None,
        };
        let p = TangramParams {
            cluster_label: Some("cell_type".into()),
            ..Default::default()
        };
        let clusters = Tangram::check(&p, &cards).unwrap();
        assert!(
            clusters.starts_with("6 clusters onto 900 spots"),
            "{clusters}"
        );
        let cells = TangramParams {
            mode: "cells".into(),
            ..p.clone()
        };
        let line = Tangram::check(&cells, &cards).unwrap();
        assert!(line.starts_with("360 cells onto 900 spots"), "{line}");
        let missing = TangramParams {
            cluster_label: Some("nope".into()),
            ..cells
        };
        let e = Tangram::check(&missing, &cards).unwrap_err();
        assert!(e.contains("no categorical column 'nope'"), "{e}");
        let same = Cards {
            sc: cards.sp,
            ..cards
        };
        assert!(Tangram::check(&p, &same)
            .unwrap_err()
            .contains("same dataset"));
    }
}
