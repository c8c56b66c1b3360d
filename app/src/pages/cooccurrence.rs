//! Co-occurrence's page: the cell-type column and the number of distances;
//! its result is one line panel per cell type.

use leptos::prelude::*;
use tessera_core::spatial::cooccurrence::analysis::{Cooccurrence, CooccurrenceParams};

use crate::form::{field, follow_label, key_select, PageCtx};

pub struct Page;

impl crate::form::Page for Page {
    type A = Cooccurrence;

    fn form(cparams: RwSignal<CooccurrenceParams>, ctx: PageCtx) -> AnyView {
        view! {
            {key_select(cparams, ctx.sp, |p| p.cluster_key.clone(), |p, v| p.cluster_key = v)}
            {field(cparams, "interval", "Number of distances (squidpy's default 50: 49 ratios).", "interval-input",
                |p| p.interval.to_string(), |p, v| p.interval = v.trim().parse().unwrap_or(0))}
        }
        .into_any()
    }

    fn follow(cparams: RwSignal<CooccurrenceParams>, ctx: PageCtx) {
        follow_label(
            cparams,
            ctx.sp,
            |p| Some(p.cluster_key.clone()),
            |p, v| p.cluster_key = v.unwrap_or_default(),
        );
    }

    fn lines_caption() -> &'static str {
        "Ratio of the chance of meeting each type within the distance, given the panel's type, to its overall chance (1: no preference; dashed line)."
    }
}
