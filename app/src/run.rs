//! Picking an analysis, its inputs and parameters, and watching it run:
//! progress with an ETA, the live loss curve, and a Stop button.

use std::collections::HashSet;

use js_sys::Array;
use leptos::prelude::*;
use web_sys::File;

use crate::protocol::Request;
use crate::ui::{request, CardView, SharedBridge, State};
use tessera_core::models::tangram::{fit::bytes_needed, Mode};
use tessera_core::share::{DeviceChoice, Inputs, NhoodParams, Params, Run, Source, TangramParams};

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
        &Request::Run { id, run },
        &[("sc_files", sc), ("sp_files", sp)],
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

fn check_nhood(p: &NhoodParams, sp: Option<&CardView>) -> Result<String, String> {
    let Some(sp) = sp else {
        return Err("Open a dataset with spatial coordinates and cell-type labels first.".into());
    };
    let s = &sp.card.summary;
    if s.spatial.is_none() {
        return Err(format!("{}: no spatial coordinates", s.source));
    }
    p.graph_options()?;
    let k = categorical_columns(sp)
        .into_iter()
        .find(|(c, _)| *c == p.cluster_key)
        .map(|(_, n)| n)
        .ok_or_else(|| {
            format!(
                "{}: obs has no categorical column '{}'",
                s.source, p.cluster_key
            )
        })?;
    if k < 2 {
        return Err(format!(
            "'{}' has {k} category; at least 2 are needed",
            p.cluster_key
        ));
    }
    Ok(format!(
        "{} cells, {k} cell types, {} graph, {} permutations",
        s.n_obs, p.graph, p.n_perms
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

#[component]
pub fn AnalysisPanel(
    bridge: StoredValue<SharedBridge, LocalStorage>,
    link_params: RwSignal<Option<(Params, DeviceChoice)>>,
) -> impl IntoView {
    let state = expect_context::<State>();
    let params = RwSignal::new(TangramParams::default());
    let sc_key = RwSignal::new(None::<u32>);
    let sp_key = RwSignal::new(None::<u32>);
    let device = RwSignal::new(DeviceChoice::Webgpu);
    let analysis = RwSignal::new("tangram".to_string());
    let nparams = RwSignal::new(NhoodParams::default());
    Effect::new(move |_| match link_params.get() {
        Some((Params::Tangram(p), d)) => {
            analysis.set("tangram".into());
            params.set(p);
            device.set(d);
        }
        Some((Params::Nhood(p), _)) => {
            analysis.set("nhood".into());
            nparams.set(p);
        }
        None => {}
    });
    // Defaults: the newest dataset with coordinates is the spatial side, the
    // newest other one the reference; a fresh reference suggests its label.
    Effect::new(move |_| {
        let cards = state.cards.get();
        let alive: HashSet<u32> = cards.iter().map(|c| c.key).collect();
        if sp_key.get_untracked().is_none_or(|k| !alive.contains(&k)) {
            let pick = cards
                .iter()
                .find(|c| c.card.demo.as_deref() == Some("demo_spatial"))
                .or_else(|| cards.iter().find(|c| c.card.summary.spatial.is_some()));
            sp_key.set(pick.map(|c| c.key));
        }
        let sp = sp_key.get_untracked();
        if sc_key
            .get_untracked()
            .is_none_or(|k| !alive.contains(&k) || Some(k) == sp)
        {
            let pick = cards
                .iter()
                .find(|c| c.card.demo.as_deref() == Some("demo_reference"))
                .or_else(|| cards.iter().find(|c| Some(c.key) != sp));
            sc_key.set(pick.map(|c| c.key));
        }
    });
    let card = move |k: RwSignal<Option<u32>>| {
        let key = k.get();
        state.cards.get().into_iter().find(|c| Some(c.key) == key)
    };
    Effect::new(move |_| {
        let Some(sc) = card(sc_key) else { return };
        let cols = categorical_columns(&sc);
        let p = params.get_untracked();
        let has = |n: &Option<String>| n.as_ref().is_some_and(|n| cols.iter().any(|(c, _)| c == n));
        if !has(&p.cluster_label) {
            let guess = guess_label(&cols);
            params.update(|p| p.cluster_label = guess);
        }
    });
    Effect::new(move |_| {
        let Some(sp) = card(sp_key) else { return };
        let cols = categorical_columns(&sp);
        if !cols
            .iter()
            .any(|(c, _)| *c == nparams.get_untracked().cluster_key)
        {
            let guess = guess_label(&cols);
            nparams.update(|p| p.cluster_key = guess.unwrap_or_default());
        }
    });
    let checked = Memo::new(move |_| {
        if analysis.get() == "nhood" {
            check_nhood(&nparams.get(), card(sp_key).as_ref())
        } else {
            check(&params.get(), card(sc_key).as_ref(), card(sp_key).as_ref())
        }
    });
    let run = move |_| {
        let Ok(_) = checked.get_untracked() else {
            return;
        };
        if analysis.get_untracked() == "nhood" {
            let Some(sp) = card(sp_key) else { return };
            let run = Run {
                params: Params::Nhood(nparams.get_untracked()),
                inputs: Inputs {
                    sc: None,
                    sp: sp.source(),
                },
                device: DeviceChoice::Cpu,
            };
            bridge.with_value(|b| send_run(state, b, run));
            return;
        }
        let (Some(sc), Some(sp)) = (card(sc_key), card(sp_key)) else {
            return;
        };
        let p = params.get_untracked();
        let run = Run {
            params: Params::Tangram(TangramParams {
                annotation: p.annotation.clone().or(p.cluster_label.clone()),
                ..p
            }),
            inputs: Inputs {
                sc: Some(sc.source()),
                sp: sp.source(),
            },
            device: device.get_untracked(),
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

    view! {
        <section class="analysis">
            <h2>"Analysis"</h2>
            <div class="form">
                <label>
                    <span>"Method"</span>
                    <select data-testid="analysis-select" prop:value=move || analysis.get()
                        on:change=move |ev| analysis.set(event_target_value(&ev))>
                        <option value="tangram">"Tangram — map single cells onto space"</option>
                        <option value="nhood">"Neighbourhood enrichment — which cell types sit together (squidpy)"</option>
                        <option value="cell2location" disabled>"cell2location — command line for now (tessera cell2location)"</option>
                        <option value="multiomics" disabled>"Transcript + protein factors — command line for now (tessera multiomics)"</option>
                    </select>
                    <small>{move || if analysis.get() == "nhood" {
                        "squidpy's nhood_enrichment: neighbour counts between cell types against label permutations (z-scores), with centrality scores."
                    } else {
                        "Tangram (Biancalani et al. 2021) learns where each cell type of a single-cell reference sits in the tissue."
                    }}</small>
                </label>
                <label>
                    <span>"Spatial data"</span>
                    <select data-testid="sp-select" prop:value=move || sp_key.get().map(|k| k.to_string()).unwrap_or_default()
                        on:change=move |ev| sp_key.set(event_target_value(&ev).parse().ok())>
                        {move || dataset_options(true)}
                    </select>
                </label>
                <Show when=move || analysis.get() == "nhood">
                    <NhoodFields nparams=nparams sp=Signal::derive(move || card(sp_key))/>
                </Show>
                <Show when=move || analysis.get() == "tangram">
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
        let eta = if r.done > 0 && r.stage == "epochs" {
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
        if r.stage == "epochs" {
            format!("epoch {} of {}{eta}{loss}", r.done, r.total)
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

#[component]
fn NhoodFields(nparams: RwSignal<NhoodParams>, sp: Signal<Option<CardView>>) -> impl IntoView {
    let cols = move || {
        sp.get()
            .map(|c| categorical_columns(&c))
            .unwrap_or_default()
    };
    let options = move || {
        cols()
            .into_iter()
            .map(|(c, n)| {
                let label = format!("{c} ({n} categories)");
                view! { <option value=c.clone()>{label}</option> }
            })
            .collect_view()
    };
    view! {
        <label>
            <span>"Cell-type column"</span>
            <select data-testid="cluster-key-select" prop:value=move || nparams.get().cluster_key
                on:change=move |ev| { let v = event_target_value(&ev); nparams.update(|p| p.cluster_key = v); }>
                {options}
            </select>
            <small>"cluster_key: the obs column whose categories are compared."</small>
        </label>
        <label>
            <span>"Library (optional)"</span>
            <select prop:value=move || nparams.get().library_key.unwrap_or_default()
                on:change=move |ev| { let v = event_target_value(&ev); nparams.update(|p| p.library_key = (!v.is_empty()).then_some(v)); }>
                <option value="">"none: one tissue"</option>
                {options}
            </select>
            <small>"library_key: graphs and shuffles stay within each library (e.g. slide or FOV)."</small>
        </label>
        <label>
            <span>"Neighbour graph"</span>
            <select data-testid="graph-select" prop:value=move || nparams.get().graph
                on:change=move |ev| { let v = event_target_value(&ev); nparams.update(|p| p.graph = v); }>
                <option value="knn">"k nearest neighbours"</option>
                <option value="delaunay">"Delaunay triangulation"</option>
                <option value="radius">"radius"</option>
                <option value="grid">"Visium grid"</option>
            </select>
            <small>"squidpy's spatial_neighbors: coord_type generic (knn, delaunay, radius) or grid."</small>
        </label>
        {field(nparams, "n_neighs", "Neighbours per cell (knn) or per spot (grid); default 6.", "n-neighs-input",
            |p| p.n_neighs.to_string(), |p, v| p.n_neighs = v.trim().parse().unwrap_or(0))}
        {field(nparams, "Radius", "Radius graph only, in coordinate units.", "radius-input",
            |p| p.radius.map(|r| r.to_string()).unwrap_or_default(), |p, v| p.radius = v.trim().parse().ok())}
        {field(nparams, "Permutations", "n_perms (default 1000).", "n-perms-input",
            |p| p.n_perms.to_string(), |p, v| p.n_perms = v.trim().parse().unwrap_or(0))}
        {field(nparams, "Seed", "seed of the label shuffles (numpy's stream, as squidpy).", "nhood-seed-input",
            |p| p.seed.to_string(), |p, v| p.seed = v.trim().parse().unwrap_or(0))}
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
