//! Tangram's page: mode, the reference's label column, density prior and
//! training; its result names the final score, not the loss.

use leptos::prelude::*;
use tessera_core::models::tangram::analysis::{Tangram, TangramParams};

use crate::form::{choice, column_options, field, follow_label, PageCtx};
use crate::protocol::CurveMeta;

pub struct Page;

impl crate::form::Page for Page {
    type A = Tangram;

    fn form(params: RwSignal<TangramParams>, ctx: PageCtx) -> AnyView {
        view! {
            {choice(params, "Mode", "clusters maps one averaged profile per cell type (fast, small); cells one row per cell; constrained also learns which cells to keep (tg.map_cells_to_space mode).",
                "mode-select", &[("clusters", "clusters"), ("cells", "cells"), ("constrained", "constrained")],
                |p| p.mode.clone(), |p, v| p.mode = v)}
            <label>
                <span>"Cell-type label"</span>
                <select data-testid="label-select" prop:value=move || params.get().cluster_label.unwrap_or_default()
                    on:change=move |ev| { let v = event_target_value(&ev); params.update(|p| p.cluster_label = Some(v)); }>
                    {move || column_options(ctx.sc)}
                </select>
                <small>"obs column of the reference: clusters in clusters mode, and the annotation projected onto the spots (tangram_ct_pred)."</small>
            </label>
            {choice(params, "Density prior", "Expected share of cells per spot (default rna_count_based, as Tangram).",
                "density-select", &[("rna_count_based", "rna_count_based"), ("uniform", "uniform"), ("none", "none")],
                |p| p.density_prior.clone(), |p, v| p.density_prior = v)}
            {field(params, "Epochs", "Adam steps (Tangram's default 1000).", "epochs-input",
                |p| p.num_epochs.to_string(), |p, v| p.num_epochs = v.trim().parse().unwrap_or(0))}
            {field(params, "Learning rate", "Adam learning rate (default 0.1).", "lr-input",
                |p| p.learning_rate.to_string(), |p, v| p.learning_rate = v.trim().parse().unwrap_or(f32::NAN))}
            {field(params, "Seed", "Seed of the initial map; 42 starts where random_state=42 does.", "seed-input",
                |p| p.seed.to_string(), |p, v| p.seed = v.trim().parse().unwrap_or(0))}
        }
        .into_any()
    }

    fn follow(params: RwSignal<TangramParams>, ctx: PageCtx) {
        follow_label(
            params,
            ctx.sc,
            |p| p.cluster_label.clone(),
            |p, v| p.cluster_label = v,
        );
    }

    /// The second curve is the score (mean gene cosine).
    fn final_score(curves: &[CurveMeta]) -> Option<String> {
        let c = curves.get(1)?;
        Some(format!("final {} {:.4}", c.name, c.values.last()?))
    }
}
