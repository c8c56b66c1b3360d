//! Picking an analysis, its inputs and parameters, and watching it run:
//! progress with an ETA, the live loss curve, and a Stop button.

use std::collections::HashSet;

use js_sys::Array;
use leptos::prelude::*;
use web_sys::File;

use crate::protocol::Request;
use crate::ui::{request, CardView, SharedBridge, State};
use tessera_core::models::multiomics::demo as mo_demo;
use tessera_core::models::tangram::{fit::bytes_needed, Mode};
use tessera_core::share::{
    AutocorrParams, Cell2locationParams, CooccurrenceParams, DeviceChoice, Inputs,
    MultiomicsParams, NhoodParams, NicheParams, Params, Run, Source, TangramParams,
};

/// What a browser tab may allocate for one run (WebGPU reports no memory).
const TAB_BUDGET: u64 = 2 << 30;

#[derive(Clone, PartialEq)]
pub struct Running {
    pub id: u32,
    pub stage: String,
    pub done: usize,
    pub total: usize,
    pub started_ms: f64,
    /// (epoch, loss) as reported.
    pub losses: Vec<(usize, f64)>,
}

/// Sends a run to the worker with the local files it names.
pub fn send_run(state: State, bridge: &SharedBridge, run: Run) {
    let id = state.next_id.get_untracked() + 1;
    state.next_id.set(id);
    let pick = |s: &Source| -> Vec<File> {
        match s {
            Source::Local { files } => {
                let b = bridge.borrow();
                files
                    .iter()
                    .filter_map(|n| b.files.get(n).cloned())
                    .collect()
            }
            _ => vec![],
        }
    };
    let sc = run.inputs.sc.as_ref().map(pick).unwrap_or_default();
    let sp = pick(&run.inputs.sp);
    let prot = run.inputs.prot.as_ref().map(pick).unwrap_or_default();
    state.run_error.set(None);
    state.notice.set(None);
    state.running.set(Some(Running {
        id,
        stage: "starting".into(),
        done: 0,
        total: 1,
        started_ms: js_sys::Date::now(),
        losses: vec![],
    }));
    let msg = request(
        &Request::Run {
            id,
            run: Box::new(run),
        },
        &[("sc_files", sc), ("sp_files", sp), ("prot_files", prot)],
    );
    bridge.borrow_mut().send(msg, Array::new());
}

fn categorical_columns(card: &CardView) -> Vec<(String, usize)> {
    card.card
        .summary
        .obs
        .iter()
        .filter_map(|c| c.n_categories.map(|n| (c.name.clone(), n)))
        .collect()
}

fn guess_label(cols: &[(String, usize)]) -> Option<String> {
    [
        "cell_type",
        "celltype",
        "cell_types",
        "cluster",
        "annotation",
        "subclass",
        "phenotype",
    ]
    .iter()
    .find_map(|g| cols.iter().find(|(c, _)| c.eq_ignore_ascii_case(g)))
    .or(cols.first())
    .map(|(c, _)| c.clone())
}

/// A spatial dataset with a cell-type column of at least two categories:
/// its cells and types.
fn spatial_labels(sp: Option<&CardView>, key: &str) -> Result<(usize, usize), String> {
    let Some(sp) = sp else {
        return Err("Open a dataset with spatial coordinates and cell-type labels first.".into());
    };
    let s = &sp.card.summary;
    if s.spatial.is_none() {
        return Err(format!("{}: no spatial coordinates", s.source));
    }
    let k = categorical_columns(sp)
        .into_iter()
        .find(|(c, _)| c == key)
        .map(|(_, n)| n)
        .ok_or_else(|| format!("{}: obs has no categorical column '{key}'", s.source))?;
    if k < 2 {
        return Err(format!("'{key}' has {k} category; at least 2 are needed"));
    }
    Ok((s.n_obs, k))
}

fn check_nhood(p: &NhoodParams, sp: Option<&CardView>) -> Result<String, String> {
    p.graph_options()?;
    let (n, k) = spatial_labels(sp, &p.cluster_key)?;
    Ok(format!(
        "{n} cells, {k} cell types, {} graph, {} permutations",
        p.graph, p.n_perms
    ))
}

fn check_cooccurrence(p: &CooccurrenceParams, sp: Option<&CardView>) -> Result<String, String> {
    p.validate()?;
    let (n, k) = spatial_labels(sp, &p.cluster_key)?;
    Ok(format!(
        "{n} cells, {k} cell types, ratios at {} distances",
        p.interval - 1
    ))
}

fn check_niche(p: &NicheParams, sp: Option<&CardView>) -> Result<String, String> {
    p.graph_options()?;
    let (n, k) = spatial_labels(sp, &p.cluster_key)?;
    Ok(format!(
        "{n} cells, {k} cell types, neighbours within {}",
        p.radius
    ))
}

fn check_autocorr(p: &AutocorrParams, sp: Option<&CardView>) -> Result<String, String> {
    p.options()?;
    let Some(sp) = sp else {
        return Err("Open a dataset with spatial coordinates and expression first.".into());
    };
    let s = &sp.card.summary;
    if s.spatial.is_none() {
        return Err(format!("{}: no spatial coordinates", s.source));
    }
    if s.x.is_none() || s.n_vars == 0 {
        return Err(format!("{}: no expression matrix X", s.source));
    }
    let hv = s.var.iter().any(|c| c.name == "highly_variable");
    let genes = if !p.genes.is_empty() {
        format!("{} named genes", p.genes.len())
    } else if hv {
        "the highly variable genes".to_string()
    } else {
        format!("all {} genes", s.n_vars)
    };
    Ok(format!(
        "{} of {genes} over {} cells, {} graph{}",
        if p.mode == "geary" {
            "Geary's C"
        } else {
            "Moran's I"
        },
        s.n_obs,
        p.graph,
        if p.n_perms > 0 {
            format!(", {} permutations", p.n_perms)
        } else {
            String::new()
        }
    ))
}

/// Both inputs' raw counts, the label, and the run's size.
fn check_c2l(
    p: &Cell2locationParams,
    sc: Option<&CardView>,
    sp: Option<&CardView>,
) -> Result<String, String> {
    let (Some(sc), Some(sp)) = (sc, sp) else {
        return Err(
            "Open a spatial dataset and a single-cell reference first (or the demo tissue).".into(),
        );
    };
    if sc.key == sp.key {
        return Err("The reference and the spatial data are the same dataset; pick two.".into());
    }
    let (s_sc, s_sp) = (&sc.card.summary, &sp.card.summary);
    let (_, map) = p.options(s_sc.n_obs)?;
    for s in [s_sc, s_sp] {
        match &s.x {
            None => return Err(format!("{}: no count matrix X", s.source)),
            Some(x) if !x.raw_counts => {
                return Err(format!(
                    "{}: X is not raw counts (cell2location models counts: open the file with the raw, integer counts)",
                    s.source
                ))
            }
            _ => {}
        }
    }
    let types = categorical_columns(sc)
        .into_iter()
        .find(|(c, _)| *c == p.labels)
        .map(|(_, n)| n)
        .ok_or_else(|| {
            format!(
                "{}: obs has no categorical column '{}'",
                s_sc.source, p.labels
            )
        })?;
    let genes = s_sc.n_vars.min(s_sp.n_vars) as u64;
    let (spots, cells, f) = (s_sp.n_obs as u64, s_sc.n_obs.min(2500) as u64, types as u64);
    // f32 spots x genes arrays (counts, rates, gradients), the reference's
    // minibatch, and per-type tables: never spots x types x genes.
    let need = 4 * (8 * spots * genes + 6 * cells * genes + 8 * f * genes + 16 * spots * f);
    if need > TAB_BUDGET {
        return Err(format!(
            "This run needs about {} of GPU memory and a browser tab gets about {}. Run it with the command line: tessera cell2location signatures --ref {} --labels {} --out c2l/ && tessera cell2location map --sp {} --signatures c2l/inf_aver.csv --n-cells-per-location {} --detection-alpha {} --out c2l/",
            fmt_bytes(need),
            fmt_bytes(TAB_BUDGET),
            s_sc.source,
            p.labels,
            s_sp.source,
            p.n_cells_per_location,
            p.detection_alpha
        ));
    }
    Ok(format!(
        "{types} cell types from {} reference cells, mapped onto {spots} spots over at most {genes} shared genes: {} steps, about {} of GPU memory",
        s_sc.n_obs,
        map.train.max_epochs,
        fmt_bytes(need)
    ))
}

fn check_multiomics(
    p: &MultiomicsParams,
    tx: Option<&CardView>,
    prot: Option<&CardView>,
) -> Result<String, String> {
    let (Some(tx), Some(prot)) = (tx, prot) else {
        return Err(
            "Open the transcript data and the protein data first (or the multi-omics demo).".into(),
        );
    };
    if tx.key == prot.key {
        return Err("The transcripts and the proteins are the same dataset; pick two.".into());
    }
    for c in [tx, prot] {
        let s = &c.card.summary;
        if s.spatial.is_none() {
            return Err(format!("{}: no spatial coordinates", s.source));
        }
        if s.x.is_none() || s.n_vars == 0 {
            return Err(format!("{}: no feature matrix X", s.source));
        }
    }
    let (o, markers) = p.options()?;
    Ok(format!(
        "{} transcript cells × {} genes with {} protein cells × {} proteins: {} factors, {} starts, {}",
        tx.card.summary.n_obs,
        tx.card.summary.n_vars,
        prot.card.summary.n_obs,
        prot.card.summary.n_vars,
        o.joint.n_factors,
        o.joint.restarts,
        match markers {
            Some(m) => format!("named from {} marker sets", m.types.len()),
            None => "no markers: factors are numbered".into(),
        }
    ))
}

fn fmt_bytes(b: u64) -> String {
    if b >= 1 << 30 {
        format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64)
    } else {
        format!("{:.0} MiB", (b as f64 / (1u64 << 20) as f64).ceil())
    }
}

/// The checks a run must pass before it is sent, and its footprint.
fn check(
    p: &TangramParams,
    sc: Option<&CardView>,
    sp: Option<&CardView>,
) -> Result<String, String> {
    let (Some(sc), Some(sp)) = (sc, sp) else {
        return Err(
            "Open a spatial dataset and a single-cell reference first (or the demo tissue).".into(),
        );
    };
    if sc.key == sp.key {
        return Err("The reference and the spatial data are the same dataset; pick two.".into());
    }
    let opts = p.options()?;
    let label_cats = |name: &str| {
        categorical_columns(sc)
            .into_iter()
            .find(|(c, _)| c == name)
            .map(|(_, n)| n)
    };
    let mut rows = sc.card.summary.n_obs;
    if let Some(l) = &opts.cluster_label {
        rows = label_cats(l).ok_or_else(|| {
            format!(
                "{}: obs has no categorical column '{l}' to use as clusters",
                sc.card.summary.source
            )
        })?;
    }
    if opts.mode == Mode::Clusters && rows == 0 {
        return Err("the cluster label has no categories".into());
    }
    let spots = sp.card.summary.n_obs;
    let genes = sc.card.summary.n_vars.min(sp.card.summary.n_vars);
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
            sc.card.summary.source,
            sp.card.summary.source,
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

/// The methods the page runs, with the help line each shows.
const ANALYSES: [(&str, &str, &str); 7] = [
    ("tangram", "Tangram — map single cells onto space",
        "Tangram (Biancalani et al. 2021) learns where each cell type of a single-cell reference sits in the tissue."),
    ("cell2location", "cell2location — cell-type abundance in each spot",
        "cell2location (Kleshchevnikov et al. 2022): reference signatures (NB regression), then a Bayesian model of each spot's counts as a sum of cell types."),
    ("nhood", "Neighbourhood enrichment — which cell types sit together (squidpy)",
        "squidpy's nhood_enrichment: neighbour counts between cell types against label permutations (z-scores), with centrality scores."),
    ("cooccurrence", "Co-occurrence — cell types together over distance (squidpy)",
        "squidpy's co_occurrence: how much more likely each type is within a distance of another, at 49 distances."),
    ("autocorr", "Spatial autocorrelation — Moran's I / Geary's C per gene (squidpy)",
        "squidpy's spatial_autocorr: which genes are patterned in space, with analytic (and optionally permutation) p-values."),
    ("niche", "Niches and co-localization — each cell's neighbourhood",
        "Each cell's neighbours within a radius: their type fractions (niche), the niche type, and a score for every pair of types."),
    ("multiomics", "Transcripts + proteins — joint factors, annotation, niches",
        "Joint NMF of paired transcript and protein data (SpatialMultiOmics): factors named from markers, cells labelled, niches and co-localization."),
];

#[component]
pub fn AnalysisPanel(
    bridge: StoredValue<SharedBridge, LocalStorage>,
    link_params: RwSignal<Option<(Params, DeviceChoice)>>,
) -> impl IntoView {
    let state = expect_context::<State>();
    let params = RwSignal::new(TangramParams::default());
    let sc_key = RwSignal::new(None::<u32>);
    let sp_key = RwSignal::new(None::<u32>);
    let prot_key = RwSignal::new(None::<u32>);
    let device = RwSignal::new(DeviceChoice::Webgpu);
    let analysis = RwSignal::new("tangram".to_string());
    let nparams = RwSignal::new(NhoodParams::default());
    let cparams = RwSignal::new(CooccurrenceParams::default());
    let aparams = RwSignal::new(AutocorrParams::default());
    let niparams = RwSignal::new(NicheParams::default());
    let mparams = RwSignal::new(MultiomicsParams::default());
    let c2params = RwSignal::new(Cell2locationParams::default());
    Effect::new(move |_| {
        let Some((p, d)) = link_params.get() else {
            return;
        };
        device.set(d);
        analysis.set(
            match p {
                Params::Tangram(p) => {
                    params.set(p);
                    "tangram"
                }
                Params::Nhood(p) => {
                    nparams.set(p);
                    "nhood"
                }
                Params::Cooccurrence(p) => {
                    cparams.set(p);
                    "cooccurrence"
                }
                Params::Autocorr(p) => {
                    aparams.set(p);
                    "autocorr"
                }
                Params::Niche(p) => {
                    niparams.set(p);
                    "niche"
                }
                Params::Multiomics(p) => {
                    mparams.set(p);
                    "multiomics"
                }
                Params::Cell2location(p) => {
                    c2params.set(p);
                    "cell2location"
                }
            }
            .into(),
        );
    });
    // Defaults: the demo that fits the analysis, else the newest dataset
    // with coordinates is the spatial side and another one the second input.
    Effect::new(move |_| {
        let cards = state.cards.get();
        let multi = analysis.get() == "multiomics";
        let (first, second) = if multi {
            ("demo_transcripts", "demo_proteins")
        } else {
            ("demo_spatial", "demo_reference")
        };
        let alive: HashSet<u32> = cards.iter().map(|c| c.key).collect();
        let demo_of = |k: Option<u32>| {
            cards
                .iter()
                .find(|c| Some(c.key) == k)
                .and_then(|c| c.card.demo.clone())
        };
        let has = |d: &str| cards.iter().any(|c| c.card.demo.as_deref() == Some(d));
        // A key is kept unless it is gone, or it is the other analysis' demo
        // while this analysis' demo is open.
        let stale = |k: Option<u32>, want: &str| {
            k.is_none_or(|k| !alive.contains(&k))
                || demo_of(k).is_some_and(|d| d != want && has(want))
        };
        if stale(sp_key.get_untracked(), first) {
            let pick = cards
                .iter()
                .find(|c| c.card.demo.as_deref() == Some(first))
                .or_else(|| cards.iter().find(|c| c.card.summary.spatial.is_some()));
            sp_key.set(pick.map(|c| c.key));
        }
        let sp = sp_key.get_untracked();
        for (key, want, spatial) in [(sc_key, "demo_reference", false), (prot_key, second, true)] {
            let k = key.get_untracked();
            if stale(k, want) || k == sp {
                let pick = cards
                    .iter()
                    .find(|c| c.card.demo.as_deref() == Some(want))
                    .or_else(|| {
                        cards.iter().find(|c| {
                            Some(c.key) != sp && (!spatial || c.card.summary.spatial.is_some())
                        })
                    });
                key.set(pick.map(|c| c.key));
            }
        }
    });
    let card = move |k: RwSignal<Option<u32>>| {
        let key = k.get();
        state.cards.get().into_iter().find(|c| Some(c.key) == key)
    };
    // The multi-omics demo comes with its markers and platform (its cells
    // share ids across the tables, like MERFISH + CODEX of one section).
    Effect::new(move |_| {
        let demo = card(sp_key).and_then(|c| c.card.demo) == Some("demo_transcripts".into());
        if demo && mparams.get_untracked().markers.is_none() {
            let markers = mo_demo::markers(&mo_demo::BROWSER).to_json();
            mparams.update(|p| {
                p.markers = Some(markers);
                p.tx_platform = "MERFISH".into();
                p.n_factors = mo_demo::BROWSER.types;
            });
        }
    });
    Effect::new(move |_| {
        let Some(sc) = card(sc_key) else { return };
        let cols = categorical_columns(&sc);
        let p = params.get_untracked();
        let has = |n: &Option<String>| n.as_ref().is_some_and(|n| cols.iter().any(|(c, _)| c == n));
        if !has(&p.cluster_label) {
            let guess = guess_label(&cols);
            params.update(|p| p.cluster_label = guess);
        }
        if !has(&Some(c2params.get_untracked().labels)) {
            let guess = guess_label(&cols).unwrap_or_default();
            c2params.update(|p| p.labels = guess);
        }
    });
    // Each cell-type form follows the spatial data's likeliest label column.
    Effect::new(move |_| {
        let Some(sp) = card(sp_key) else { return };
        let cols = categorical_columns(&sp);
        let guess = guess_label(&cols).unwrap_or_default();
        let known = |k: &str| cols.iter().any(|(c, _)| c == k);
        if !known(&nparams.get_untracked().cluster_key) {
            nparams.update(|p| p.cluster_key = guess.clone());
        }
        if !known(&cparams.get_untracked().cluster_key) {
            cparams.update(|p| p.cluster_key = guess.clone());
        }
        if !known(&niparams.get_untracked().cluster_key) {
            niparams.update(|p| p.cluster_key = guess.clone());
        }
    });
    let checked = Memo::new(move |_| match analysis.get().as_str() {
        "nhood" => check_nhood(&nparams.get(), card(sp_key).as_ref()),
        "cooccurrence" => check_cooccurrence(&cparams.get(), card(sp_key).as_ref()),
        "autocorr" => check_autocorr(&aparams.get(), card(sp_key).as_ref()),
        "niche" => check_niche(&niparams.get(), card(sp_key).as_ref()),
        "multiomics" => check_multiomics(
            &mparams.get(),
            card(sp_key).as_ref(),
            card(prot_key).as_ref(),
        ),
        "cell2location" => check_c2l(
            &c2params.get(),
            card(sc_key).as_ref(),
            card(sp_key).as_ref(),
        ),
        _ => check(&params.get(), card(sc_key).as_ref(), card(sp_key).as_ref()),
    });
    let run = move |_| {
        let Ok(_) = checked.get_untracked() else {
            return;
        };
        let Some(sp) = card(sp_key) else { return };
        let source = |k| card(k).map(|c| c.source());
        let (params, sc, prot) = match analysis.get_untracked().as_str() {
            "nhood" => (Params::Nhood(nparams.get_untracked()), None, None),
            "cooccurrence" => (Params::Cooccurrence(cparams.get_untracked()), None, None),
            "autocorr" => (Params::Autocorr(aparams.get_untracked()), None, None),
            "niche" => (Params::Niche(niparams.get_untracked()), None, None),
            "multiomics" => (
                Params::Multiomics(mparams.get_untracked()),
                None,
                source(prot_key),
            ),
            "cell2location" => (
                Params::Cell2location(c2params.get_untracked()),
                source(sc_key),
                None,
            ),
            _ => {
                let p = params.get_untracked();
                let p = TangramParams {
                    annotation: p.annotation.clone().or(p.cluster_label.clone()),
                    ..p
                };
                (Params::Tangram(p), source(sc_key), None)
            }
        };
        let gpu = matches!(
            params,
            Params::Tangram(_) | Params::Multiomics(_) | Params::Cell2location(_)
        );
        let run = Run {
            params,
            inputs: Inputs {
                sc,
                sp: sp.source(),
                prot,
            },
            device: if gpu {
                device.get_untracked()
            } else {
                DeviceChoice::Cpu
            },
        };
        bridge.with_value(|b| send_run(state, b, run));
    };
    let stop = move |_| {
        bridge.with_value(|b| crate::ui::stop_worker(state, b));
        state.notice.set(Some(
            "Run stopped. The page is ready for another run.".into(),
        ));
    };
    let dataset_options = move |want_spatial: bool| {
        state
            .cards
            .get()
            .into_iter()
            .filter(move |c| !want_spatial || c.card.summary.spatial.is_some())
            .map(|c| {
                let s = &c.card.summary;
                let label = format!("#{} {} ({} × {})", c.key, s.source, s.n_obs, s.n_vars);
                view! { <option value=c.key.to_string()>{label}</option> }
            })
            .collect_view()
    };
    let label_options = move || {
        card(sc_key)
            .map(|c| categorical_columns(&c))
            .unwrap_or_default()
            .into_iter()
            .map(|(c, n)| {
                let label = format!("{c} ({n} categories)");
                view! { <option value=c.clone()>{label}</option> }
            })
            .collect_view()
    };
    let running = move || state.running.get().is_some();
    let is = move |a: &'static str| move || analysis.get() == a;
    let sp_card = Signal::derive(move || card(sp_key));
    let device_select = move || {
        view! {
            <label>
                <span>"Device"</span>
                <select data-testid="device-select"
                    prop:value=move || if device.get() == DeviceChoice::Cpu { "cpu" } else { "webgpu" }
                    on:change=move |ev| device.set(if event_target_value(&ev) == "cpu" { DeviceChoice::Cpu } else { DeviceChoice::Webgpu })>
                    <option value="webgpu">"WebGPU (your graphics card)"</option>
                    <option value="cpu">"CPU"</option>
                </select>
                <small>"Without WebGPU the run falls back to the CPU, with a notice."</small>
            </label>
        }
    };

    view! {
        <section class="analysis">
            <h2>"Analysis"</h2>
            <div class="form">
                <label>
                    <span>"Method"</span>
                    <select data-testid="analysis-select" prop:value=move || analysis.get()
                        on:change=move |ev| analysis.set(event_target_value(&ev))>
                        {ANALYSES.iter().map(|(v, label, _)| view! { <option value=*v>{*label}</option> }).collect_view()}
                    </select>
                    <small>{move || ANALYSES.iter().find(|a| a.0 == analysis.get()).map(|a| a.2).unwrap_or_default()}</small>
                </label>
                <label>
                    <span>{move || if analysis.get() == "multiomics" { "Transcript data" } else { "Spatial data" }}</span>
                    <select data-testid="sp-select" prop:value=move || sp_key.get().map(|k| k.to_string()).unwrap_or_default()
                        on:change=move |ev| sp_key.set(event_target_value(&ev).parse().ok())>
                        {move || dataset_options(true)}
                    </select>
                </label>
                <Show when=is("nhood")>
                    <NhoodFields nparams=nparams sp=sp_card/>
                </Show>
                <Show when=is("cooccurrence")>
                    {key_select(cparams, sp_card, |p| p.cluster_key.clone(), |p, v| p.cluster_key = v)}
                    {field(cparams, "interval", "Number of distances (squidpy's default 50: 49 ratios).", "interval-input",
                        |p| p.interval.to_string(), |p, v| p.interval = v.trim().parse().unwrap_or(0))}
                </Show>
                <Show when=is("niche")>
                    {key_select(niparams, sp_card, |p| p.cluster_key.clone(), |p, v| p.cluster_key = v)}
                    {field(niparams, "Radius", "Neighbours are the cells within this distance (coordinate units; default 50).", "radius-input",
                        |p| p.radius.to_string(), |p, v| p.radius = v.trim().parse().unwrap_or(f64::NAN))}
                </Show>
                <Show when=is("autocorr")>
                    <AutocorrFields aparams=aparams/>
                </Show>
                <Show when=is("cell2location")>
                    <label>
                        <span>"Single-cell reference"</span>
                        <select data-testid="sc-select" prop:value=move || sc_key.get().map(|k| k.to_string()).unwrap_or_default()
                            on:change=move |ev| sc_key.set(event_target_value(&ev).parse().ok())>
                            {move || dataset_options(false)}
                        </select>
                        <small>"Raw counts, labelled by cell type (the signatures are learnt from it)."</small>
                    </label>
                    <label>
                        <span>"Cell-type label"</span>
                        <select data-testid="c2l-label-select" prop:value=move || c2params.get().labels
                            on:change=move |ev| { let v = event_target_value(&ev); c2params.update(|p| p.labels = v); }>
                            {label_options}
                        </select>
                        <small>"labels_key: the reference's obs column with the cell types."</small>
                    </label>
                    <Cell2locationFields c2params=c2params/>
                    {device_select}
                </Show>
                <Show when=is("multiomics")>
                    <label>
                        <span>"Protein data"</span>
                        <select data-testid="prot-select" prop:value=move || prot_key.get().map(|k| k.to_string()).unwrap_or_default()
                            on:change=move |ev| prot_key.set(event_target_value(&ev).parse().ok())>
                            {move || dataset_options(true)}
                        </select>
                        <small>"CODEX, MIBI, IMC or CyCIF cell table (x, y and one column per marker), or .h5ad."</small>
                    </label>
                    <MultiomicsFields mparams=mparams/>
                    {device_select}
                </Show>
                <Show when=is("tangram")>
                <label>
                    <span>"Single-cell reference"</span>
                    <select data-testid="sc-select" prop:value=move || sc_key.get().map(|k| k.to_string()).unwrap_or_default()
                        on:change=move |ev| sc_key.set(event_target_value(&ev).parse().ok())>
                        {move || dataset_options(false)}
                    </select>
                </label>
                <label title="cells: one row per cell; clusters: one row per cell type (fast, small); constrained: also learns which cells to keep">
                    <span>"Mode"</span>
                    <select data-testid="mode-select" prop:value=move || params.get().mode
                        on:change=move |ev| { let v = event_target_value(&ev); params.update(|p| p.mode = v); }>
                        <option value="clusters">"clusters"</option>
                        <option value="cells">"cells"</option>
                        <option value="constrained">"constrained"</option>
                    </select>
                    <small>"clusters maps one averaged profile per cell type (tg.map_cells_to_space mode)."</small>
                </label>
                <label>
                    <span>"Cell-type label"</span>
                    <select data-testid="label-select" prop:value=move || params.get().cluster_label.unwrap_or_default()
                        on:change=move |ev| { let v = event_target_value(&ev); params.update(|p| p.cluster_label = Some(v)); }>
                        {label_options}
                    </select>
                    <small>"obs column of the reference: clusters in clusters mode, and the annotation projected onto the spots (tangram_ct_pred)."</small>
                </label>
                <label>
                    <span>"Density prior"</span>
                    <select prop:value=move || params.get().density_prior
                        on:change=move |ev| { let v = event_target_value(&ev); params.update(|p| p.density_prior = v); }>
                        <option value="rna_count_based">"rna_count_based"</option>
                        <option value="uniform">"uniform"</option>
                        <option value="none">"none"</option>
                    </select>
                    <small>"Expected share of cells per spot (default rna_count_based, as Tangram)."</small>
                </label>
                {device_select}
                {field(params, "Epochs", "Adam steps (Tangram's default 1000).", "epochs-input",
                    |p| p.num_epochs.to_string(), |p, v| p.num_epochs = v.trim().parse().unwrap_or(0))}
                {field(params, "Learning rate", "Adam learning rate (default 0.1).", "lr-input",
                    |p| p.learning_rate.to_string(), |p, v| p.learning_rate = v.trim().parse().unwrap_or(f32::NAN))}
                {field(params, "Seed", "Seed of the initial map; 42 starts where random_state=42 does.", "seed-input",
                    |p| p.seed.to_string(), |p, v| p.seed = v.trim().parse().unwrap_or(0))}
                </Show>
            </div>
            <p class=move || if checked.get().is_ok() { "check ok" } else { "check warn" } data-testid="run-check">
                {move || match checked.get() { Ok(s) => s, Err(e) => e }}
            </p>
            <div class="actions">
                <button class="button" data-testid="run-button"
                    disabled=move || running() || checked.get().is_err() on:click=run>"Run"</button>
                <button class="button secondary" data-testid="stop-button"
                    disabled=move || !running() on:click=stop>"Stop"</button>
            </div>
            <Show when=move || state.notice.get().is_some()>
                <p class="notice" data-testid="notice">{move || state.notice.get().unwrap_or_default()}</p>
            </Show>
            <Show when=move || state.run_error.get().is_some()>
                <p class="error" data-testid="error" role="alert">{move || state.run_error.get().unwrap_or_default()}</p>
            </Show>
            <Show when=running>
                <Progress/>
            </Show>
        </section>
    }
}

#[component]
fn Progress() -> impl IntoView {
    let state = expect_context::<State>();
    let r = move || state.running.get();
    let text = move || {
        let Some(r) = r() else { return String::new() };
        let elapsed = (js_sys::Date::now() - r.started_ms) / 1e3;
        let unit = match r.stage.as_str() {
            "epochs" => Some("epoch"),
            "steps" => Some("step"),
            "reference epochs" => Some("reference epoch"),
            _ => None,
        };
        let eta = if r.done > 0 && unit.is_some() {
            let left = elapsed / r.done as f64 * (r.total - r.done) as f64;
            format!(" · about {left:.0} s left")
        } else {
            String::new()
        };
        let loss = r
            .losses
            .last()
            .map(|(_, l)| format!(" · loss {l:.4}"))
            .unwrap_or_default();
        if let Some(unit) = unit {
            format!("{unit} {} of {}{eta}{loss}", r.done, r.total)
        } else {
            format!("{}…", r.stage)
        }
    };
    view! {
        <div class="progress">
            <progress data-testid="progress"
                max=move || r().map_or(1, |r| r.total.max(1)).to_string()
                value=move || r().map_or(0, |r| r.done).to_string()></progress>
            <span data-testid="progress-text">{text}</span>
            <LossCurve points=Signal::derive(move || r().map(|r| r.losses).unwrap_or_default())/>
        </div>
    }
}

/// A small line plot of (step, loss), as SVG.
#[component]
pub fn LossCurve(points: Signal<Vec<(usize, f64)>>) -> impl IntoView {
    let path = move || {
        let pts: Vec<(f64, f64)> = points
            .get()
            .into_iter()
            .filter(|(_, l)| l.is_finite())
            .map(|(e, l)| (e as f64, l))
            .collect();
        if pts.len() < 2 {
            return String::new();
        }
        let (x0, x1) = (pts[0].0, pts[pts.len() - 1].0.max(pts[0].0 + 1.0));
        let (lo, hi) = pts
            .iter()
            .fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.1), b.max(p.1)));
        let span = (hi - lo).max(1e-12);
        pts.iter()
            .enumerate()
            .map(|(i, (e, l))| {
                let x = 4.0 + (e - x0) / (x1 - x0) * 312.0;
                let y = 4.0 + (hi - l) / span * 92.0;
                format!("{}{x:.1},{y:.1}", if i == 0 { "M" } else { " L" })
            })
            .collect()
    };
    view! {
        <svg class="loss" viewBox="0 0 320 100" data-testid="loss-curve" role="img" aria-label="loss per epoch">
            <path d=path fill="none" stroke="currentColor" stroke-width="1.5"/>
        </svg>
    }
}

/// The obs column with the cell types, from the spatial data's categoricals.
fn key_select<T: Clone + Send + Sync + 'static>(
    params: RwSignal<T>,
    sp: Signal<Option<CardView>>,
    get: fn(&T) -> String,
    set: fn(&mut T, String),
) -> impl IntoView {
    view! {
        <label>
            <span>"Cell-type column"</span>
            <select data-testid="cluster-key-select" prop:value=move || params.with(get)
                on:change=move |ev| { let v = event_target_value(&ev); params.update(|p| set(p, v)); }>
                {move || column_options(sp)}
            </select>
            <small>"cluster_key: the obs column whose categories are compared."</small>
        </label>
    }
}

fn column_options(sp: Signal<Option<CardView>>) -> impl IntoView {
    sp.get()
        .map(|c| categorical_columns(&c))
        .unwrap_or_default()
        .into_iter()
        .map(|(c, n)| {
            let label = format!("{c} ({n} categories)");
            view! { <option value=c.clone()>{label}</option> }
        })
        .collect_view()
}

/// Reads one form value as text and writes it back from text.
type Accessors<T> = (fn(&T) -> String, fn(&mut T, &str));

/// squidpy's `spatial_neighbors` choices, shared by the graph-based forms.
fn graph_fields<T: Clone + Send + Sync + 'static>(
    params: RwSignal<T>,
    get: fn(&T) -> String,
    set: fn(&mut T, String),
    neighs: Accessors<T>,
    radius: Accessors<T>,
) -> impl IntoView {
    view! {
        <label>
            <span>"Neighbour graph"</span>
            <select data-testid="graph-select" prop:value=move || params.with(get)
                on:change=move |ev| { let v = event_target_value(&ev); params.update(|p| set(p, v)); }>
                <option value="knn">"k nearest neighbours"</option>
                <option value="delaunay">"Delaunay triangulation"</option>
                <option value="radius">"radius"</option>
                <option value="grid">"Visium grid"</option>
            </select>
            <small>"squidpy's spatial_neighbors: coord_type generic (knn, delaunay, radius) or grid."</small>
        </label>
        {field(params, "n_neighs", "Neighbours per cell (knn) or per spot (grid); default 6.", "n-neighs-input", neighs.0, neighs.1)}
        {field(params, "Radius", "Radius graph only, in coordinate units.", "radius-input", radius.0, radius.1)}
    }
}

#[component]
fn NhoodFields(nparams: RwSignal<NhoodParams>, sp: Signal<Option<CardView>>) -> impl IntoView {
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
}

#[component]
fn AutocorrFields(aparams: RwSignal<AutocorrParams>) -> impl IntoView {
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
}

#[component]
fn MultiomicsFields(mparams: RwSignal<MultiomicsParams>) -> impl IntoView {
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
}

#[component]
fn Cell2locationFields(c2params: RwSignal<Cell2locationParams>) -> impl IntoView {
    view! {
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
}

/// A select bound to one text value of a form's parameters.
fn choice<T: Clone + Send + Sync + 'static>(
    params: RwSignal<T>,
    label: &'static str,
    help: &'static str,
    testid: &'static str,
    options: &'static [(&'static str, &'static str)],
    get: fn(&T) -> String,
    set: fn(&mut T, String),
) -> impl IntoView {
    view! {
        <label title=help>
            <span>{label}</span>
            <select data-testid=testid prop:value=move || params.with(get)
                on:change=move |ev| { let v = event_target_value(&ev); params.update(|p| set(p, v)); }>
                {options.iter().map(|(v, l)| view! { <option value=*v>{*l}</option> }).collect_view()}
            </select>
            <small>{help}</small>
        </label>
    }
}

/// A text field bound to one value of a form's parameters.
fn field<T: Clone + Send + Sync + 'static>(
    params: RwSignal<T>,
    label: &'static str,
    help: &'static str,
    testid: &'static str,
    get: fn(&T) -> String,
    set: fn(&mut T, &str),
) -> impl IntoView {
    view! {
        <label title=help>
            <span>{label}</span>
            <input data-testid=testid prop:value=move || params.with(get)
                on:change=move |ev| { let v = event_target_value(&ev); params.update(|p| set(p, &v)); } />
            <small>{help}</small>
        </label>
    }
}
