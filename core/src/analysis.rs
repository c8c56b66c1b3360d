//! The analyses Tessera runs, and the one registry every surface reaches
//! them through: share links and the worker dispatch on [`Params`], the
//! page lists [`ALL`], bundles name an analysis the registry knows.
//!
//! An analysis is a type implementing [`Analysis`] in its own folder (its
//! parameters with the original tool's defaults, the checks a run must pass
//! on the dataset cards, the run on a `Device`, the results). It is added to
//! the page and the links by one line in [`for_each_analysis!`].
//!
//! Why a trait plus a generated enum rather than trait objects: a link must
//! decode into a closed set of types (data, never code), and `run` is
//! generic over the `Device`, which a trait object cannot be. The macro
//! writes the enum's arms and every `match` over them from the one list.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::bundle::Results;
use crate::compute::Device;
use crate::data::{Dataset, Summary};

/// Which input of a run a dataset fills.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// The spatial data (the transcripts for multi-omics).
    Spatial,
    /// A single-cell reference.
    Reference,
    /// Protein data of the same tissue.
    Proteins,
}

/// One input an analysis reads, as the form shows it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Input {
    pub slot: Slot,
    pub label: &'static str,
    pub help: &'static str,
    /// The demo dataset that fills it ("demo_spatial", "demo_reference",
    /// "demo_transcripts", "demo_proteins").
    pub demo: &'static str,
    /// Only datasets with coordinates are offered.
    pub spatial: bool,
}

/// The one input of the cell-type statistics: cells (or spots) with
/// coordinates and a cell-type column.
pub const LABELLED_CELLS: Input = Input {
    slot: Slot::Spatial,
    label: "Spatial data",
    help: "Cells or spots with coordinates and a cell-type column.",
    demo: "demo_spatial",
    spatial: true,
};

/// What the page lists about an analysis.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Info {
    pub name: &'static str,
    pub title: &'static str,
    pub help: &'static str,
    pub inputs: &'static [Input],
    /// Runs on the chosen Device; otherwise it is CPU graph work.
    pub gpu: bool,
    /// Its fit checkpoints and goes on on the CPU when the GPU is lost.
    pub resumes: bool,
}

/// A dataset card a check looks at: an identity (the page's card key) and
/// the summary the worker made, no data.
#[derive(Debug, Clone, Copy)]
pub struct Card<'a> {
    pub id: u32,
    pub summary: &'a Summary,
}

/// The cards chosen for each slot.
#[derive(Debug, Clone, Copy, Default)]
pub struct Cards<'a> {
    pub sp: Option<Card<'a>>,
    pub sc: Option<Card<'a>>,
    pub prot: Option<Card<'a>>,
}

/// A run's inputs, read: (name for messages, dataset) per slot, and its
/// checkpoints outside the run (fits that resume use them; see
/// [`Analysis::RESUMES`]).
#[derive(Default)]
pub struct Data {
    pub sp: (String, Dataset),
    pub sc: Option<(String, Dataset)>,
    pub prot: Option<(String, Dataset)>,
    pub kept: crate::models::checkpoint::Kept,
}

impl Data {
    /// The second input, or an error naming what the analysis needs.
    pub fn take(slot: Option<(String, Dataset)>, what: &str) -> Result<(String, Dataset), String> {
        slot.ok_or_else(|| format!("this analysis needs {what}"))
    }
}

/// Progress of a run: stage, done, total, loss. A stage named "epochs",
/// "steps" or "reference epochs" counts units the page shows a rate for.
pub type Progress<'a> = dyn FnMut(&str, usize, usize, Option<f64>) + 'a;

/// One analysis: parameters, checks, run, results.
// The futures run on one thread (a Web Worker, pollster natively); no
// caller needs them Send.
#[allow(async_fn_in_trait)]
pub trait Analysis {
    /// The link's tag, the page's key, the registry's variant in snake case.
    const NAME: &'static str;
    const TITLE: &'static str;
    const HELP: &'static str;
    const INPUTS: &'static [Input];
    const GPU: bool;
    /// The fit checkpoints and moves to the CPU when its GPU is lost
    /// (models::checkpoint); other runs end in an error after a loss.
    const RESUMES: bool = false;
    type Params: Clone + PartialEq + Default + std::fmt::Debug + Serialize + DeserializeOwned;

    /// Every field range-checked (links come from strangers).
    fn validate(p: &Self::Params) -> Result<(), String>;

    /// What the form checks before a run, on the cards alone: a line that
    /// says what will run, or what is wrong.
    fn check(p: &Self::Params, cards: &Cards) -> Result<String, String>;

    /// The run on `dev`; `params` is the run as a link holds it, stored
    /// with the results.
    async fn run<D: Device>(
        dev: &D,
        p: &Self::Params,
        data: Data,
        params: serde_json::Value,
        progress: &mut Progress<'_>,
    ) -> Result<Results, String>;

    fn info() -> Info {
        Info {
            name: Self::NAME,
            title: Self::TITLE,
            help: Self::HELP,
            inputs: Self::INPUTS,
            gpu: Self::GPU,
            resumes: Self::RESUMES,
        }
    }
}

/// The registry: one line per analysis, `module Variant path::to::Type`.
/// Calls `$m! { ... }` with the list; the core builds [`Params`] from it and
/// the app its page dispatch (`module` names the page module).
#[macro_export]
macro_rules! for_each_analysis {
    ($m:ident) => {
        $m! {
            tangram Tangram $crate::models::tangram::analysis::Tangram,
            cell2location Cell2location $crate::models::cell2location::analysis::Cell2location,
            nhood Nhood $crate::spatial::nhood::analysis::Nhood,
            cooccurrence Cooccurrence $crate::spatial::cooccurrence::analysis::Cooccurrence,
            autocorr Autocorr $crate::spatial::autocorr::analysis::Autocorr,
            niche Niche $crate::spatial::niche::analysis::Niche,
            multiomics Multiomics $crate::models::multiomics::analysis::Multiomics,
            nsf Nsf $crate::models::nsf::analysis::Nsf,
            resolvi Resolvi $crate::models::resolvi::analysis::Resolvi,
        }
    };
}

macro_rules! registry {
    ($($module:ident $variant:ident $ty:path,)*) => {
        /// One analysis with its parameters: what a link holds and the
        /// worker runs.
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(tag = "analysis", rename_all = "snake_case")]
        pub enum Params {
            $($variant(<$ty as Analysis>::Params),)*
        }

        /// Every analysis, in the order the page lists them.
        pub const ALL: &[fn() -> Info] = &[$(<$ty as Analysis>::info,)*];

        impl Params {
            pub fn info(&self) -> Info {
                match self {
                    $(Params::$variant(_) => <$ty as Analysis>::info(),)*
                }
            }

            /// An analysis' default parameters by name.
            pub fn default_of(name: &str) -> Option<Params> {
                $(if name == <$ty as Analysis>::NAME {
                    return Some(Params::$variant(Default::default()));
                })*
                None
            }

            pub fn validate(&self) -> Result<(), String> {
                match self {
                    $(Params::$variant(p) => <$ty as Analysis>::validate(p),)*
                }
            }

            pub fn check(&self, cards: &Cards) -> Result<String, String> {
                match self {
                    $(Params::$variant(p) => <$ty as Analysis>::check(p, cards),)*
                }
            }

            pub async fn run<D: Device>(
                &self,
                dev: &D,
                data: Data,
                params: serde_json::Value,
                progress: &mut Progress<'_>,
            ) -> Result<Results, String> {
                match self {
                    $(Params::$variant(p) => <$ty as Analysis>::run(dev, p, data, params, progress).await,)*
                }
            }
        }
    };
}

for_each_analysis!(registry);

impl Params {
    pub fn name(&self) -> &'static str {
        self.info().name
    }
}

/// The analysis a name belongs to.
pub fn find(name: &str) -> Option<Info> {
    ALL.iter().map(|f| f()).find(|i| i.name == name)
}

/// Checks shared by the analyses' `validate` and `check`.
pub mod checks {
    use super::Card;

    /// Longest name a link may carry.
    pub const MAX_TEXT: usize = 256;

    /// What a browser tab may allocate for one run (WebGPU reports no memory).
    pub const TAB_BUDGET: u64 = 2 << 30;

    /// A plain name: short, no control characters.
    pub fn text(what: &str, s: &str) -> Result<(), String> {
        if s.len() > MAX_TEXT || s.chars().any(char::is_control) {
            return Err(format!(
                "{what} is not a plain name of at most {MAX_TEXT} characters"
            ));
        }
        Ok(())
    }

    /// A chosen cell-type column.
    pub fn key(key: &str) -> Result<(), String> {
        if key.is_empty() {
            return Err("choose the obs column with the cell types".into());
        }
        text("the cell-type column", key)
    }

    /// The categorical obs columns of a card, with their category counts.
    pub fn categorical_columns(card: &Card) -> Vec<(String, usize)> {
        card.summary
            .obs
            .iter()
            .filter_map(|c| c.n_categories.map(|n| (c.name.clone(), n)))
            .collect()
    }

    /// The categories of one categorical column, or a named error.
    pub fn categories(card: &Card, column: &str) -> Result<usize, String> {
        categorical_columns(card)
            .into_iter()
            .find(|(c, _)| c == column)
            .map(|(_, n)| n)
            .ok_or_else(|| {
                format!(
                    "{}: obs has no categorical column '{column}'",
                    card.summary.source
                )
            })
    }

    /// A spatial dataset with a cell-type column of at least two
    /// categories: its cells and types.
    pub fn spatial_labels(sp: Option<Card>, key: &str) -> Result<(usize, usize), String> {
        let Some(sp) = sp else {
            return Err(
                "Open a dataset with spatial coordinates and cell-type labels first.".into(),
            );
        };
        let s = sp.summary;
        if s.spatial.is_none() {
            return Err(format!("{}: no spatial coordinates", s.source));
        }
        let k = categories(&sp, key)?;
        if k < 2 {
            return Err(format!("'{key}' has {k} category; at least 2 are needed"));
        }
        Ok((s.n_obs, k))
    }

    /// Two different datasets, or what to open.
    pub fn pair<'a>(
        first: Option<Card<'a>>,
        second: Option<Card<'a>>,
        open: &str,
        same: &str,
    ) -> Result<(Card<'a>, Card<'a>), String> {
        let (Some(a), Some(b)) = (first, second) else {
            return Err(open.into());
        };
        if a.id == b.id {
            return Err(same.into());
        }
        Ok((a, b))
    }

    /// A single-cell reference and spatial data, two different datasets.
    pub fn reference_pair<'a>(cards: &super::Cards<'a>) -> Result<(Card<'a>, Card<'a>), String> {
        pair(
            cards.sc,
            cards.sp,
            "Open a spatial dataset and a single-cell reference first (or the demo tissue).",
            "The reference and the spatial data are the same dataset; pick two.",
        )
    }

    pub fn fmt_bytes(b: u64) -> String {
        if b >= 1 << 30 {
            format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64)
        } else {
            format!("{:.0} MiB", (b as f64 / (1u64 << 20) as f64).ceil())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_link_tags_and_unique() {
        let mut seen = std::collections::HashSet::new();
        for info in ALL.iter().map(|f| f()) {
            assert!(seen.insert(info.name), "{} twice", info.name);
            let p = Params::default_of(info.name).expect("default parameters");
            let json = serde_json::to_value(&p).unwrap();
            assert_eq!(json["analysis"], info.name);
            assert_eq!(p.name(), info.name);
            assert!(find(info.name).is_some());
        }
        assert!(Params::default_of("nope").is_none());
    }
}
