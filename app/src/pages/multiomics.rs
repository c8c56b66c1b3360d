//! The transcripts + proteins page: platforms, factors, pairing, niches
//! and marker sets (the multi-omics demo fills in its own).

use leptos::prelude::*;
use tessera_core::models::multiomics::analysis::{Multiomics, MultiomicsParams};
use tessera_core::models::multiomics::demo as mo_demo;

use crate::form::{choice, field, PageCtx};

pub struct Page;

impl crate::form::Page for Page {
    type A = Multiomics;

    fn form(mparams: RwSignal<MultiomicsParams>, _ctx: PageCtx) -> AnyView {
        const TX: [(&str, &str); 5] = [
            ("Visium", "Visium"),
            ("MERFISH", "MERFISH"),
            ("Xenium", "Xenium"),
            ("Stereo-seq", "Stereo-seq"),
            ("generic", "generic"),
        ];
        const PROT: [(&str, &str); 5] = [
            ("CODEX", "CODEX"),
            ("MIBI", "MIBI"),
            ("IMC", "IMC"),
            ("CyCIF", "CyCIF"),
            ("generic", "generic"),
        ];
        view! {
            {choice(mparams, "Transcript platform", "Visium spots collect the protein cells within each spot; single-cell platforms pair cell to cell.",
                "tx-platform-select", &TX, |p| p.tx_platform.clone(), |p, v| p.tx_platform = v)}
            {choice(mparams, "Protein platform", "--prot-platform", "prot-platform-select", &PROT,
                |p| p.prot_platform.clone(), |p, v| p.prot_platform = v)}
            {field(mparams, "Factors", "--n-factors: shared NMF factors (default 15).", "n-factors-input",
                |p| p.n_factors.to_string(), |p, v| p.n_factors = v.trim().parse().unwrap_or(0))}
            {choice(mparams, "Pairing", "--pair: auto picks bin for Visium, shared ids when the tables share them, else nearest.",
                "pair-select", &[("auto", "auto"), ("id", "by cell id"), ("nearest", "nearest cell"), ("bin", "bin into spots")],
                |p| p.pair.clone(), |p, v| p.pair = v)}
            {field(mparams, "Niche radius", "--radius: neighbours for niches and co-localization (default 50).", "mo-radius-input",
                |p| p.radius.to_string(), |p, v| p.radius = v.trim().parse().unwrap_or(f64::NAN))}
            {field(mparams, "Starts", "--restarts: nndsvda then random starts; the lowest error wins (default 5).", "restarts-input",
                |p| p.restarts.to_string(), |p, v| p.restarts = v.trim().parse().unwrap_or(0))}
            {field(mparams, "Seed", "--seed of the random starts.", "mo-seed-input",
                |p| p.seed.to_string(), |p, v| p.seed = v.trim().parse().unwrap_or(0))}
            <label title="JSON {\"T cells\": {\"genes\": [...], \"proteins\": [...]}} or CSV cell_type,marker[,modality]">
                <span>"Markers"</span>
                <textarea data-testid="markers-input" rows="5" prop:value=move || mparams.get().markers.unwrap_or_default()
                    on:change=move |ev| { let v = event_target_value(&ev); mparams.update(|p| p.markers = (!v.trim().is_empty()).then_some(v)); }></textarea>
                <small>"--markers: names each factor after the cell type whose markers load on it; empty: factors are numbered."</small>
            </label>
        }
        .into_any()
    }

    fn follow(mparams: RwSignal<MultiomicsParams>, ctx: PageCtx) {
        // The multi-omics demo comes with its markers and platform (its cells
        // share ids across the tables, like MERFISH + CODEX of one section).
        Effect::new(move |_| {
            let demo = ctx.sp.get().and_then(|c| c.card.demo) == Some("demo_transcripts".into());
            if demo && mparams.get_untracked().markers.is_none() {
                let markers = mo_demo::markers(&mo_demo::BROWSER).to_json();
                mparams.update(|p| {
                    p.markers = Some(markers);
                    p.tx_platform = "MERFISH".into();
                    p.n_factors = mo_demo::BROWSER.types;
                });
            }
        });
    }
}
