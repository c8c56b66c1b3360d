//! The page: open datasets (drop, pick, URL, demo), see one card per input,
//! pick an analysis and run it in the worker, look at and take away the
//! results. Files go to the worker untouched; the page only renders what
//! comes back. A share link in the URL fragment is read once at start.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use js_sys::{Array, Float32Array, Object, Reflect, Uint8Array};
use leptos::prelude::*;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{File, FileList, MessageEvent, Worker, WorkerOptions, WorkerType};

use crate::protocol::{Card, Outcome, Reply, Request, ResultMeta};
use crate::results::{ResultView, ResultsPanel};
use crate::run::{AnalysisPanel, Running};
use tessera_core::share::{DeviceChoice, Link, Params, Source, View};

pub fn mount() {
    console_error_panic_hook::set_once();
    if crate::bench::start_if_asked() {
        return;
    }
    leptos::mount::mount_to_body(App);
}

/// A card plus the preview arrays that came beside it.
#[derive(Clone, PartialEq)]
pub struct CardView {
    pub key: u32,
    pub card: Card,
    pub xy: Vec<f32>,
    pub values: Vec<f32>,
}

impl CardView {
    /// Where a run reads this input from.
    pub fn source(&self) -> Source {
        if self.card.demo.is_some() {
            Source::Demo
        } else if let Some(url) = &self.card.url {
            Source::Url { url: url.clone() }
        } else {
            Source::Local {
                files: self.card.files.clone(),
            }
        }
    }
}

/// Everything the page shows, as signals every component can reach.
#[derive(Clone, Copy)]
pub struct State {
    pub cards: RwSignal<Vec<CardView>>,
    pub errors: RwSignal<Vec<String>>,
    pub pending: RwSignal<u32>,
    pub worker_failed: RwSignal<bool>,
    pub running: RwSignal<Option<Running>>,
    pub notice: RwSignal<Option<String>>,
    pub run_error: RwSignal<Option<String>>,
    pub result: RwSignal<Option<Arc<ResultView>>>,
    pub view: RwSignal<View>,
    /// A link's view, applied to the next result.
    pub pending_view: RwSignal<Option<View>>,
    pub next_id: RwSignal<u32>,
}

/// The worker, the messages waiting for it to load, and the files the user
/// opened (sent again with each run, so a restarted worker needs nothing).
pub struct Bridge {
    worker: Option<Worker>,
    ready: bool,
    queue: Vec<(JsValue, Array)>,
    pub files: HashMap<String, File>,
}

pub type SharedBridge = Rc<RefCell<Bridge>>;

impl Bridge {
    pub fn send(&mut self, msg: JsValue, transfer: Array) {
        match (&self.worker, self.ready) {
            (Some(w), true) => {
                let _ = w.post_message_with_transfer(&msg, &transfer);
            }
            _ => self.queue.push((msg, transfer)),
        }
    }
}

/// A request message: JSON plus named lists of `File`s.
pub fn request(req: &Request, files: &[(&str, Vec<File>)]) -> JsValue {
    let msg = Object::new();
    let _ = Reflect::set(
        &msg,
        &"json".into(),
        &serde_json::to_string(req).unwrap_or_default().into(),
    );
    for (key, list) in files {
        let arr: Array = list.iter().collect();
        let _ = Reflect::set(&msg, &(*key).into(), &arr);
    }
    msg.into()
}

fn buffer_f32(list: &Array, i: usize) -> Vec<f32> {
    Float32Array::new(&list.get(i as u32)).to_vec()
}

pub fn buffer_bytes(list: &Array, i: usize) -> Vec<u8> {
    Uint8Array::new(&list.get(i as u32)).to_vec()
}

/// Starts (or restarts) the worker and routes its replies into `state`.
pub fn start_worker(state: State, bridge: &SharedBridge) {
    let options = WorkerOptions::new();
    options.set_type(WorkerType::Classic);
    let Ok(worker) = Worker::new_with_options("./worker_loader.js", &options) else {
        state.worker_failed.set(true);
        return;
    };
    let bridge_in = bridge.clone();
    let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |ev: MessageEvent| {
        let data = ev.data();
        let json = Reflect::get(&data, &"json".into())
            .ok()
            .and_then(|j| j.as_string())
            .unwrap_or_default();
        let buffers: Array = Reflect::get(&data, &"buffers".into())
            .map(|b| b.unchecked_into())
            .unwrap_or_default();
        match serde_json::from_str::<Reply>(&json) {
            Ok(Reply::Ready) => {
                let mut b = bridge_in.borrow_mut();
                b.ready = true;
                for (msg, transfer) in std::mem::take(&mut b.queue) {
                    if let Some(w) = &b.worker {
                        let _ = w.post_message_with_transfer(&msg, &transfer);
                    }
                }
            }
            Ok(reply) => on_reply(state, reply, &buffers),
            Err(e) => state
                .errors
                .set(vec![format!("unexpected message from the worker: {e}")]),
        }
    });
    let on_error = Closure::<dyn FnMut(JsValue)>::new(move |_| {
        state.worker_failed.set(true);
        state.running.set(None);
    });
    worker.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    worker.set_onerror(Some(on_error.as_ref().unchecked_ref()));
    on_message.forget();
    on_error.forget();
    let mut b = bridge.borrow_mut();
    b.worker = Some(worker);
    b.ready = false;
}

/// Ends the worker mid-run (the only way to stop a GPU queue at once) and
/// starts a fresh one; nothing of the stopped run is kept.
pub fn stop_worker(state: State, bridge: &SharedBridge) {
    if let Some(w) = bridge.borrow_mut().worker.take() {
        w.terminate();
    }
    bridge.borrow_mut().queue.clear();
    state.running.set(None);
    state.pending.set(0);
    start_worker(state, bridge);
}

fn on_reply(state: State, reply: Reply, buffers: &Array) {
    match reply {
        Reply::Ready => {}
        Reply::Opened { outcomes, .. } => {
            let mut new_errors = Vec::new();
            let mut new_cards = Vec::new();
            for o in outcomes {
                match o {
                    Outcome::Error(e) => new_errors.push(e),
                    Outcome::Results(meta) => show_result(state, *meta, buffers),
                    Outcome::Card(card) => {
                        let (xy, values) = match &card.preview {
                            Some(p) => (
                                buffer_f32(buffers, p.xy_buffer),
                                buffer_f32(buffers, p.value_buffer),
                            ),
                            None => (vec![], vec![]),
                        };
                        let key = state.next_id.get_untracked() + 1;
                        state.next_id.set(key);
                        new_cards.push(CardView {
                            key,
                            card: *card,
                            xy,
                            values,
                        });
                    }
                }
            }
            state.errors.set(new_errors);
            state.cards.update(|c| {
                new_cards.reverse();
                for card in new_cards {
                    c.insert(0, card);
                }
            });
            state.pending.update(|p| *p = p.saturating_sub(1));
        }
        Reply::Notice { text, .. } => state.notice.set(Some(text)),
        Reply::Progress {
            id,
            stage,
            done,
            total,
            loss,
        } => state.running.update(|r| {
            if let Some(r) = r.as_mut().filter(|r| r.id == id) {
                // A new stage (reference, then mapping) starts its own curve
                // and its own clock for the time left.
                if r.stage != stage {
                    r.losses.clear();
                    r.started_ms = js_sys::Date::now();
                }
                r.stage = stage;
                r.done = done;
                r.total = total;
                if let Some(l) = loss {
                    r.losses.push((done, l));
                }
            }
        }),
        Reply::Finished { id, result } => {
            if state.running.get_untracked().is_some_and(|r| r.id == id) {
                state.running.set(None);
                show_result(state, *result, buffers);
            }
        }
        Reply::Failed { id, error } => {
            if state.running.get_untracked().is_some_and(|r| r.id == id) {
                state.running.set(None);
            }
            state.run_error.set(Some(error));
        }
    }
}

fn show_result(state: State, meta: ResultMeta, buffers: &Array) {
    let stored: Option<View> = serde_json::from_value(meta.view.clone())
        .ok()
        .filter(|v: &View| v.validate().is_ok());
    let view = state
        .pending_view
        .get_untracked()
        .or(stored)
        .unwrap_or_default();
    state.pending_view.set(None);
    let key = state.next_id.get_untracked() + 1;
    state.next_id.set(key);
    state.run_error.set(None);
    state.view.set(view);
    state
        .result
        .set(Some(Arc::new(ResultView::new(key, meta, buffers))));
}

/// Sends a request that opens inputs (files, the demos, a URL); the page
/// keeps the files to send again with a run.
fn send_open(state: State, bridge: &SharedBridge, req: Request, files: Vec<File>) {
    state.pending.update(|p| *p += 1);
    let mut b = bridge.borrow_mut();
    for f in &files {
        b.files.insert(f.name(), f.clone());
    }
    b.send(request(&req, &[("files", files)]), Array::new());
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
                let multi = matches!(link.run.params, Params::Multiomics(_));
                let mut opens = vec![];
                let mut demo = false;
                for s in &sources {
                    match s {
                        Source::Demo => demo = true,
                        Source::Url { url } => opens.push(url.clone()),
                        Source::Local { .. } => {}
                    }
                }
                crate::run::send_run(state, bridge, link.run.clone());
                let open = |req: Request| send_open(state, bridge, req, vec![]);
                let id = || {
                    let id = state.next_id.get_untracked() + 1;
                    state.next_id.set(id);
                    id
                };
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
    let bridge: SharedBridge = Rc::new(RefCell::new(Bridge {
        worker: None,
        ready: false,
        queue: vec![],
        files: HashMap::new(),
    }));
    start_worker(state, &bridge);
    let link_params = RwSignal::new(None::<(Params, DeviceChoice)>);
    open_link(state, &bridge, link_params);
    let bridge = StoredValue::new_local(bridge);

    let send = move |req: Request, files: Vec<File>| {
        state.errors.set(vec![]);
        bridge.with_value(|b| send_open(state, b, req, files));
    };
    let next = move || {
        let id = state.next_id.get_untracked() + 1;
        state.next_id.set(id);
        id
    };
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
