//! The niche page: the cell-type column and the neighbourhood radius.

use leptos::prelude::*;
use tessera_core::spatial::niche::analysis::{Niche, NicheParams};

use crate::form::{field, follow_label, key_select, PageCtx};

pub struct Page;

impl crate::form::Page for Page {
    type A = Niche;

    fn form(niparams: RwSignal<NicheParams>, ctx: PageCtx) -> AnyView {
        view! {
            {key_select(niparams, ctx.sp, |p| p.cluster_key.clone(), |p, v| p.cluster_key = v)}
            {field(niparams, "Radius", "Neighbours are the cells within this distance (coordinate units; default 50).", "radius-input",
                |p| p.radius.to_string(), |p, v| p.radius = v.trim().parse().unwrap_or(f64::NAN))}
        }
        .into_any()
    }

    fn follow(niparams: RwSignal<NicheParams>, ctx: PageCtx) {
        follow_label(
            niparams,
            ctx.sp,
            |p| Some(p.cluster_key.clone()),
            |p, v| p.cluster_key = v.unwrap_or_default(),
        );
    }
}
