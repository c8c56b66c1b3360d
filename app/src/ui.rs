//! The page: open datasets (drop, pick, URL, demo), see one card per input,
//! pick an analysis and run it in the worker, look at and take away the
//! results. Files go to the worker untouched; the page only renders what
//! comes back. A share link in the URL fragment is read once at start.

use leptos::prelude::*;
use web_sys::{File, FileList};

use crate::protocol::Request;
use crate::results::ResultsPanel;
use crate::run::AnalysisPanel;
use crate::state::{next_id, send_open, send_run, start_worker, Bridge, SharedBridge, State};
use tessera_core::share::{DeviceChoice, Link, Params, Source, View};

pub fn mount() {
    console_error_panic_hook::set_once();
    if crate::bench::start_if_asked() {
        return;
    }
    leptos::mount::mount_to_body(App);
}

/// Reads `#link=...` once at start: fills the form, and replays the run when
/// its inputs are public (the demo or URLs).
fn open_link(
    state: State,
    bridge: &SharedBridge,
    params: RwSignal<Option<(Params, DeviceChoice)>>,
) {
    let hash = window().location().hash().unwrap_or_default();
    let Some(payload) = hash.strip_prefix("#link=") else {
        if hash.len() > 1 {
            state.errors.set(vec![format!(
                "The address ends in '{}', which is not a Tessera share link (expected #link=…).",
                hash.chars().take(40).collect::<String>()
            )]);
        }
        return;
    };
    match Link::decode(payload) {
        Err(e) => state
            .errors
            .set(vec![format!("This share link could not be opened: {e}.")]),
        Ok(link) => {
            params.set(Some((link.run.params.clone(), link.run.device)));
            state.pending_view.set(Some(link.view.clone()));
            let sources: Vec<&Source> = link
                .run
                .inputs
                .sc
                .iter()
                .chain([&link.run.inputs.sp])
                .chain(&link.run.inputs.prot)
                .collect();
            if sources.iter().all(|s| s.is_public()) {
                // The inputs' cards too, so the page shows what was run on.
                let mut opens = vec![];
                for s in &sources {
                    if let Source::Url { url } = s {
                        opens.push(url.clone());
                    }
                }
                // The demo set the analysis' demo inputs come from.
                let inputs = &link.run.inputs;
                let demos: Vec<&str> = link
                    .run
                    .params
                    .info()
                    .inputs
                    .iter()
                    .filter(|i| inputs.get(i.slot) == Some(&Source::Demo))
                    .map(|i| i.demo)
                    .collect();
                let demo = !demos.is_empty();
                let multi = demos
                    .iter()
                    .any(|d| matches!(*d, "demo_transcripts" | "demo_proteins"));
                send_run(state, bridge, link.run.clone());
                let open = |req: Request| send_open(state, bridge, req, vec![]);
                let id = || next_id(state);
                if demo {
                    open(if multi {
                        Request::DemoMultiomics { id: id() }
                    } else {
                        Request::Demo { id: id() }
                    });
                }
                opens.dedup();
                for url in opens {
                    open(Request::OpenUrl { id: id(), url });
                }
            } else {
                let names: Vec<String> = sources
                    .iter()
                    .filter_map(|s| match s {
                        Source::Local { files } => Some(files.join(", ")),
                        _ => None,
                    })
                    .collect();
                state.notice.set(Some(format!(
                    "This link was made from files on the sharer's computer ({}). Open the same files here, then press Run: the parameters are filled in.",
                    names.join("; ")
                )));
            }
        }
    }
}

#[component]
fn App() -> impl IntoView {
    let state = State {
        cards: RwSignal::new(vec![]),
        errors: RwSignal::new(vec![]),
        pending: RwSignal::new(0),
        worker_failed: RwSignal::new(false),
        running: RwSignal::new(None),
        notice: RwSignal::new(None),
        run_error: RwSignal::new(None),
        result: RwSignal::new(None),
        view: RwSignal::new(View::default()),
        pending_view: RwSignal::new(None),
        next_id: RwSignal::new(0),
    };
    provide_context(state);
    let bridge: SharedBridge = Bridge::shared();
    start_worker(state, &bridge);
    let link_params = RwSignal::new(None::<(Params, DeviceChoice)>);
    let linked = window()
        .location()
        .hash()
        .is_ok_and(|h| h.starts_with("#link="));
    open_link(state, &bridge, link_params);
    if !linked {
        // The last result, kept across reloads until discarded.
        let b = bridge.clone();
        wasm_bindgen_futures::spawn_local(async move {
            if let Some(file) = crate::keep::load().await {
                // Taken out while it opens (a result shown is kept again),
                // so one that cannot open is not retried on every load.
                crate::keep::discard(|| {});
                state.notice.set(Some(
                    "Your last result was kept from before the reload; Discard removes it.".into(),
                ));
                let id = next_id(state);
                send_open(state, &b, Request::Open { id }, vec![file]);
            }
        });
    }
    let bridge = StoredValue::new_local(bridge);

    let send = move |req: Request, files: Vec<File>| {
        state.errors.set(vec![]);
        bridge.with_value(|b| send_open(state, b, req, files));
    };
    let next = move || next_id(state);
    let open = move |files: Option<FileList>| {
        let list: Vec<File> = files
            .map(|f| (0..f.length()).filter_map(|i| f.item(i)).collect())
            .unwrap_or_default();
        if !list.is_empty() {
            send(Request::Open { id: next() }, list);
        }
    };
    let url = RwSignal::new(String::new());
    let open_url = move || {
        let u = url.get_untracked().trim().to_string();
        match tessera_core::share::check_url("the address", &u) {
            Ok(()) => send(Request::OpenUrl { id: next(), url: u }, vec![]),
            Err(e) => state.errors.set(vec![e]),
        }
    };

    view! {
        <header class="top">
            <h1>"Tessera"</h1>
            <p class="tagline">"Spatial omics in your browser: drop a dataset, nothing to install."</p>
        </header>
        <main>
            <section
                class="drop"
                on:dragover=move |ev: leptos::ev::DragEvent| ev.prevent_default()
                on:drop=move |ev: leptos::ev::DragEvent| {
                    ev.prevent_default();
                    open(ev.data_transfer().and_then(|d| d.files()));
                }
            >
                <p>"Drop an " <b>".h5ad"</b> ", a zipped Space Ranger folder, cell tables (.csv / .tsv) or a Tessera results bundle (.zip) here"</p>
                <label class="button">
                    "Choose files"
                    <input
                        type="file"
                        multiple
                        data-testid="file-input"
                        on:change=move |ev| {
                            let input: web_sys::HtmlInputElement = event_target(&ev);
                            open(input.files());
                            input.set_value("");
                        }
                    />
                </label>
                <button class="button secondary" data-testid="demo-button" on:click=move |_| send(Request::Demo { id: next() }, vec![])>
                    "Open the demo tissue"
                </button>
                <button class="button secondary" data-testid="demo-multiomics-button" on:click=move |_| send(Request::DemoMultiomics { id: next() }, vec![])>
                    "Open the multi-omics demo"
                </button>
                <form class="url" on:submit=move |ev| { ev.prevent_default(); open_url(); }>
                    <input type="url" placeholder="or a public https:// address of a dataset or results bundle"
                        data-testid="url-input" prop:value=move || url.get()
                        on:input=move |ev| url.set(event_target_value(&ev)) />
                    <button class="button secondary" type="submit" data-testid="url-button">"Open"</button>
                </form>
                <Show when=move || { state.pending.get() > 0 }>
                    <p class="busy" data-testid="busy">"Reading…"</p>
                </Show>
            </section>
            <Show when=move || state.worker_failed.get()>
                <p class="error" data-testid="error" role="alert">"The analysis worker failed to start: reload the page."</p>
            </Show>
            <Show when=move || !state.errors.get().is_empty()>
                <div class="error" data-testid="error" role="alert">
                    <For each=move || state.errors.get() key=|e| e.clone() let:e>
                        <p>{e}</p>
                    </For>
                </div>
            </Show>
            <AnalysisPanel bridge=bridge link_params=link_params/>
            <ResultsPanel/>
            <div class="cards">
                <For each=move || state.cards.get() key=|c| c.key let:c>
                    <crate::cards::DatasetCard view=c/>
                </For>
            </div>
        </main>
    }
}
