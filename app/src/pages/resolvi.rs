//! RESOLVI's page: batches, labels (semi-supervised), training, and an
//! optional differential test; the result panels are the predicted labels,
//! the three fractions and the most counted genes raw and corrected.

use leptos::prelude::*;
use tessera_core::models::resolvi::analysis::{Resolvi, ResolviParams};
use tessera_core::models::resolvi::fit::LEIDEN_KEY;

use crate::form::{column_options, field, PageCtx};
use crate::protocol::CurveMeta;

pub struct Page;

/// An optional obs column as a select (empty: none).
fn column(
    params: RwSignal<ResolviParams>,
    ctx: PageCtx,
    (label, help, testid, none): (&'static str, &'static str, &'static str, &'static str),
    extra: Option<(&'static str, &'static str)>,
    get: fn(&ResolviParams) -> String,
    set: fn(&mut ResolviParams, String),
) -> impl IntoView {
    let sp = ctx.sp;
    view! {
        <label title=help>
            <span>{label}</span>
            <select data-testid=testid prop:value=move || get(&params.get())
                on:change=move |ev| { let v = event_target_value(&ev); params.update(|p| set(p, v)); }>
                <option value="">{none}</option>
                {extra.map(|(value, text)| view! { <option value=value>{text}</option> })}
                {move || column_options(sp)}
            </select>
            <small>{help}</small>
        </label>
    }
}

impl crate::form::Page for Page {
    type A = Resolvi;

    fn form(params: RwSignal<ResolviParams>, ctx: PageCtx) -> AnyView {
        view! {
            {column(params, ctx, ("Batch", "batch_key: neighbours are found within a batch, and each batch has its own background.", "resolvi-batch-select", "none: one batch"), None,
                |p| p.batch_key.clone(), |p, v| p.batch_key = v)}
            {column(params, ctx, ("Labels (optional)", "Cell types of some cells: the semi-supervised mode predicts the others.", "resolvi-labels-select", "none: unsupervised"), None,
                |p| p.labels.clone(), |p, v| p.labels = v)}
            {field(params, "Unlabelled value", "The label value of cells without a label (scvi's 'unknown').", "resolvi-unlabeled-input",
                |p| p.unlabeled_value.clone(), |p, v| p.unlabeled_value = v.trim().to_string())}
            {field(params, "Minimum counts", "Leave out cells with fewer counts first (scanpy's filter_cells; 0 keeps every cell, and a cell without counts is refused, as in scvi-tools). Xenium data usually needs 5.", "resolvi-min-counts-input",
                |p| p.min_counts.to_string(), |p, v| p.min_counts = v.trim().parse().unwrap_or(-1.0))}
            {field(params, "Epochs", "max_epochs (default 50; the KL weight warms up over the first 20).", "resolvi-epochs-input",
                |p| p.epochs.to_string(), |p, v| p.epochs = v.trim().parse().unwrap_or(0))}
            {field(params, "Latent dimensions", "n_latent (default 10).", "resolvi-latent-input",
                |p| p.latent.to_string(), |p, v| p.latent = v.trim().parse().unwrap_or(0))}
            {field(params, "Seed", "Seed of the weights, minibatches and draws: the same seed gives tessera resolvi's result.", "resolvi-seed-input",
                |p| p.seed.to_string(), |p, v| p.seed = v.trim().parse().unwrap_or(0))}
            {column(params, ctx, ("Differential test (optional)", "An obs column whose groups are compared after the fit (scvi's change mode, delta 0.25, FDR 0.05).", "resolvi-groupby-select", "none"),
                Some((LEIDEN_KEY, "Leiden clusters of the latent space (groups 0, 1, …)")),
                |p| p.de_groupby.clone(), |p, v| p.de_groupby = v)}
            {field(params, "Group 1", "The group of that column tested against group 2.", "resolvi-group1-input",
                |p| p.de_group1.clone(), |p, v| p.de_group1 = v.trim().to_string())}
            {field(params, "Group 2", "Empty: every other cell.", "resolvi-group2-input",
                |p| p.de_group2.clone(), |p, v| p.de_group2 = v.trim().to_string())}
        }
        .into_any()
    }

    /// The curve is the ELBO: name its last value.
    fn final_score(curves: &[CurveMeta]) -> Option<String> {
        let c = curves.first()?;
        Some(format!("final ELBO {:.1}", c.values.last()?))
    }
}
