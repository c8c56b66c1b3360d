//! Neighbourhood enrichment's page: the cell-type and library columns, the
//! graph, permutations and seed.

use leptos::prelude::*;
use tessera_core::spatial::nhood::analysis::{Nhood, NhoodParams};

use crate::form::{column_options, field, follow_label, graph_fields, key_select, PageCtx};

pub struct Page;

impl crate::form::Page for Page {
    type A = Nhood;

    fn form(nparams: RwSignal<NhoodParams>, ctx: PageCtx) -> AnyView {
        let sp = ctx.sp;
        view! {
            {key_select(nparams, sp, |p| p.cluster_key.clone(), |p, v| p.cluster_key = v)}
            <label>
                <span>"Library (optional)"</span>
                <select prop:value=move || nparams.get().library_key.unwrap_or_default()
                    on:change=move |ev| { let v = event_target_value(&ev); nparams.update(|p| p.library_key = (!v.is_empty()).then_some(v)); }>
                    <option value="">"none: one tissue"</option>
                    {move || column_options(sp)}
                </select>
                <small>"library_key: graphs and shuffles stay within each library (e.g. slide or FOV)."</small>
            </label>
            {graph_fields(nparams, |p| p.graph.clone(), |p, v| p.graph = v,
                (|p| p.n_neighs.to_string(), |p, v| p.n_neighs = v.trim().parse().unwrap_or(0)),
                (|p| p.radius.map(|r| r.to_string()).unwrap_or_default(), |p, v| p.radius = v.trim().parse().ok()))}
            {field(nparams, "Permutations", "n_perms (default 1000).", "n-perms-input",
                |p| p.n_perms.to_string(), |p, v| p.n_perms = v.trim().parse().unwrap_or(0))}
            {field(nparams, "Seed", "seed of the label shuffles (numpy's stream, as squidpy).", "nhood-seed-input",
                |p| p.seed.to_string(), |p, v| p.seed = v.trim().parse().unwrap_or(0))}
        }
        .into_any()
    }

    fn follow(nparams: RwSignal<NhoodParams>, ctx: PageCtx) {
        follow_label(
            nparams,
            ctx.sp,
            |p| Some(p.cluster_key.clone()),
            |p, v| p.cluster_key = v.unwrap_or_default(),
        );
    }
}
