//! cell2location's page: the reference's label column, the signatures'
//! method, and the mapping's priors and steps.

use leptos::prelude::*;
use tessera_core::models::cell2location::analysis::{Cell2location, Cell2locationParams};

use crate::form::{choice, column_options, field, follow_label, PageCtx};

pub struct Page;

impl crate::form::Page for Page {
    type A = Cell2location;

    fn form(c2params: RwSignal<Cell2locationParams>, ctx: PageCtx) -> AnyView {
        view! {
            <label>
                <span>"Cell-type label"</span>
                <select data-testid="c2l-label-select" prop:value=move || c2params.get().labels
                    on:change=move |ev| { let v = event_target_value(&ev); c2params.update(|p| p.labels = v); }>
                    {move || column_options(ctx.sc)}
                </select>
                <small>"labels_key: the reference's obs column with the cell types."</small>
            </label>
            <label>
                <span>"Batch"</span>
                <select data-testid="c2l-batch-select" prop:value=move || c2params.get().batch.unwrap_or_default()
                    on:change=move |ev| { let v = event_target_value(&ev); c2params.update(|p| p.batch = (!v.is_empty()).then_some(v)); }>
                    <option value="">"none (one batch)"</option>
                    {move || column_options(ctx.sc)}
                </select>
                <small>"batch_key: the reference's obs column with its samples (the tutorial's Sample)."</small>
            </label>
            {choice(c2params, "Signatures", "regression: cell2location's NB model (slower, the tutorial's); average: per-cluster mean counts.",
                "c2l-method-select", &[("regression", "NB regression"), ("average", "cluster averages")],
                |p| p.method.clone(), |p, v| p.method = v)}
            {field(c2params, "Reference epochs", "max_epochs of the regression; empty: scvi's default (min(20000/cells×1000, 1000)).", "ref-epochs-input",
                |p| p.reference_epochs.map(|e| e.to_string()).unwrap_or_default(),
                |p, v| p.reference_epochs = if v.trim().is_empty() { None } else { Some(v.trim().parse().unwrap_or(0)) })}
            {field(c2params, "N cells per location", "N_cells_per_location: expected cells per spot (the tutorial's 30).", "n-cells-input",
                |p| p.n_cells_per_location.to_string(), |p, v| p.n_cells_per_location = v.trim().parse().unwrap_or(f64::NAN))}
            {field(c2params, "Detection alpha", "detection_alpha: 20 for variable sensitivity within a slide, 200 for little.", "detection-alpha-input",
                |p| p.detection_alpha.to_string(), |p, v| p.detection_alpha = v.trim().parse().unwrap_or(f64::NAN))}
            {field(c2params, "Steps", "max_epochs of the mapping (full batch; cell2location's 30000).", "c2l-epochs-input",
                |p| p.epochs.to_string(), |p, v| p.epochs = v.trim().parse().unwrap_or(0))}
            {field(c2params, "Seed", "Seed of the initial values and posterior draws.", "c2l-seed-input",
                |p| p.seed.to_string(), |p, v| p.seed = v.trim().parse().unwrap_or(0))}
            <label class="check">
                <input type="checkbox" prop:checked=move || c2params.get().filter_genes
                    on:change=move |ev| { let on = event_target_checked(&ev); c2params.update(|p| p.filter_genes = on); } />
                <span>"filter_genes on the reference (15 cells, 5%, mean 1.12)"</span>
            </label>
            <label class="check">
                <input type="checkbox" prop:checked=move || c2params.get().keep_mt
                    on:change=move |ev| { let on = event_target_checked(&ev); c2params.update(|p| p.keep_mt = on); } />
                <span>"Keep MT- genes in the spots (the tutorial removes them)"</span>
            </label>
        }
        .into_any()
    }

    fn follow(c2params: RwSignal<Cell2locationParams>, ctx: PageCtx) {
        follow_label(
            c2params,
            ctx.sc,
            |p| Some(p.labels.clone()),
            |p, v| p.labels = v.unwrap_or_default(),
        );
    }
}
