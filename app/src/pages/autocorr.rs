//! Spatial autocorrelation's page: statistic, genes, graph, permutations.

use leptos::prelude::*;
use tessera_core::spatial::autocorr::analysis::{Autocorr, AutocorrParams};

use crate::form::{choice, field, graph_fields, PageCtx};

pub struct Page;

impl crate::form::Page for Page {
    type A = Autocorr;

    fn form(aparams: RwSignal<AutocorrParams>, _ctx: PageCtx) -> AnyView {
        view! {
            {choice(aparams, "Statistic", "mode: Moran's I (1 clustered, 0 random) or Geary's C (below 1 clustered).", "mode-select",
                &[("moran", "Moran's I"), ("geary", "Geary's C")], |p| p.mode.clone(), |p, v| p.mode = v)}
            {field(aparams, "Genes", "Comma-separated; empty: the highly variable genes when marked, else all genes.", "genes-input",
                |p| p.genes.join(", "),
                |p, v| p.genes = v.split(',').map(str::trim).filter(|g| !g.is_empty()).map(String::from).collect())}
            {graph_fields(aparams, |p| p.graph.clone(), |p, v| p.graph = v,
                (|p| p.n_neighs.to_string(), |p, v| p.n_neighs = v.trim().parse().unwrap_or(0)),
                (|p| p.radius.map(|r| r.to_string()).unwrap_or_default(), |p, v| p.radius = v.trim().parse().ok()))}
            {field(aparams, "Permutations", "n_perms: 0 for analytic p-values only (squidpy's default).", "n-perms-input",
                |p| p.n_perms.to_string(), |p, v| p.n_perms = v.trim().parse().unwrap_or(usize::MAX))}
            {field(aparams, "Seed", "seed of the permutations.", "autocorr-seed-input",
                |p| p.seed.to_string(), |p, v| p.seed = v.trim().parse().unwrap_or(0))}
        }
        .into_any()
    }
}
