//! What every page shares, at the bottom of the app: the signals the page
//! shows (cards, the running job, the result and its view), the worker
//! bridge (start, stop, send, route replies), and the dataset cards and
//! results as the page holds them. It imports no other app module but the
//! message types (`protocol`).

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use js_sys::{Array, Float32Array, Reflect, Uint8Array};
use leptos::prelude::*;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{Blob, BlobPropertyBag, File, MessageEvent, Url, Worker, WorkerOptions, WorkerType};

use crate::protocol::{self, Card, Outcome, Reply, Request, ResultMeta};
use tessera_core::analysis;
use tessera_core::share::{Run, Source, View};

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

    /// The card as the analyses' checks see it.
    pub fn as_card(&self) -> analysis::Card<'_> {
        analysis::Card {
            id: self.key,
            summary: &self.card.summary,
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
    pub fn shared() -> SharedBridge {
        Rc::new(RefCell::new(Bridge {
            worker: None,
            ready: false,
            queue: vec![],
            files: HashMap::new(),
        }))
    }

    pub fn send(&mut self, msg: JsValue, transfer: Array) {
        match (&self.worker, self.ready) {
            (Some(w), true) => {
                let _ = w.post_message_with_transfer(&msg, &transfer);
            }
            _ => self.queue.push((msg, transfer)),
        }
    }
}

#[derive(Clone, PartialEq)]
pub struct Running {
    pub id: u32,
    pub stage: String,
    pub done: usize,
    pub total: usize,
    pub started_ms: f64,
    /// (epoch, loss) as reported.
    pub losses: Vec<(usize, f64)>,
    /// The run's identity (inputs and settings) its checkpoints are kept under.
    pub key: String,
    /// Where the latest checkpoint kept stood ("epoch 20", "epoch 12
    /// (finished)").
    pub kept: Option<String>,
    /// Where this stage's count stood at its first report (a resumed fit
    /// starts past 0): the rate for the time left counts from there.
    pub first_done: Option<usize>,
}

/// Values per point under named columns (cell types, factors, genes).
pub struct LayerData {
    pub name: String,
    pub columns: Vec<String>,
    /// points x columns.
    pub values: Vec<f32>,
}

/// A result as the page holds it: arrays plus object URLs for downloads.
pub struct ResultView {
    pub key: u32,
    pub meta: ResultMeta,
    pub xy: Vec<f32>,
    pub names: Vec<String>,
    pub layers: Vec<LayerData>,
    /// (file name, object URL).
    pub files: Vec<(String, String)>,
    pub bundle: Vec<u8>,
    /// The tissue image: width, height, pixels per data unit, RGBA bytes.
    pub image: Option<(usize, usize, f64, Vec<u8>)>,
}

impl ResultView {
    pub fn new(key: u32, meta: ResultMeta, buffers: &Array) -> ResultView {
        let f32s = |i: usize| js_sys::Float32Array::new(&buffers.get(i as u32)).to_vec();
        let names = String::from_utf8(buffer_bytes(buffers, meta.names_buffer))
            .unwrap_or_default()
            .split('\n')
            .map(str::to_string)
            .collect();
        let layers = meta
            .layers
            .iter()
            .map(|l| LayerData {
                name: l.name.clone(),
                columns: l.columns.clone(),
                values: f32s(l.buffer),
            })
            .collect();
        let files = meta
            .files
            .iter()
            .map(|(n, i)| (n.clone(), object_url(&buffer_bytes(buffers, *i), mime(n))))
            .collect();
        let xy = f32s(meta.xy_buffer);
        ResultView {
            key,
            xy,
            names,
            layers,
            files,
            bundle: buffer_bytes(buffers, meta.bundle_buffer),
            image: meta.image.as_ref().map(|im| {
                (
                    im.width,
                    im.height,
                    im.scale,
                    buffer_bytes(buffers, im.buffer),
                )
            }),
            meta,
        }
    }

    /// The layer the view shows (the first when it names none or another).
    pub fn layer(&self, view: &View) -> &LayerData {
        static NONE: LayerData = LayerData {
            name: String::new(),
            columns: Vec::new(),
            values: Vec::new(),
        };
        view.layer
            .as_ref()
            .and_then(|n| self.layers.iter().find(|l| &l.name == n))
            .or(self.layers.first())
            .unwrap_or(&NONE)
    }
}

fn mime(name: &str) -> &'static str {
    if name.ends_with(".csv") {
        "text/csv"
    } else {
        "application/octet-stream"
    }
}

pub fn object_url(bytes: &[u8], mime: &str) -> String {
    let parts: Array = [Uint8Array::from(bytes)].iter().collect();
    let opts = BlobPropertyBag::new();
    opts.set_type(mime);
    Blob::new_with_u8_array_sequence_and_options(&parts, &opts)
        .ok()
        .and_then(|b| Url::create_object_url_with_blob(&b).ok())
        .unwrap_or_default()
}

/// A request message: the request as a structured value plus named lists
/// of `File`s, or why the request cannot be encoded.
pub fn request(req: &Request, files: &[(&str, Vec<File>)]) -> Result<JsValue, String> {
    let msg = js_sys::Object::new();
    let _ = Reflect::set(&msg, &"msg".into(), &protocol::to_js(req)?);
    for (key, list) in files {
        let arr: Array = list.iter().collect();
        let _ = Reflect::set(&msg, &(*key).into(), &arr);
    }
    Ok(msg.into())
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
        let msg = Reflect::get(&data, &"msg".into()).unwrap_or(JsValue::NULL);
        let buffers: Array = Reflect::get(&data, &"buffers".into())
            .map(|b| b.unchecked_into())
            .unwrap_or_default();
        match protocol::from_js::<Reply>(msg) {
            Ok(Reply::Ready) => {
                let mut b = bridge_in.borrow_mut();
                b.ready = true;
                for (msg, transfer) in std::mem::take(&mut b.queue) {
                    if let Some(w) = &b.worker {
                        let _ = w.post_message_with_transfer(&msg, &transfer);
                    }
                }
            }
            Ok(Reply::Crashed { message }) => {
                state.errors.set(vec![format!(
                    "Tessera's worker stopped on an internal error and was restarted; the last file or run caused it. Please report it with this: {message}"
                )]);
                stop_worker(state, &bridge_in);
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
        Reply::Ready | Reply::Crashed { .. } => {}
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
                        new_cards.push(CardView {
                            key: next_id(state),
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
                    r.first_done = None;
                }
                r.first_done.get_or_insert(done);
                r.stage = stage;
                r.done = done;
                r.total = total;
                if let Some(l) = loss {
                    r.losses.push((done, l));
                }
            }
        }),
        Reply::Checkpoint { id, at, buffer } => {
            let Some(run) = state.running.get_untracked().filter(|r| r.id == id) else {
                return;
            };
            // Shown as kept once it is stored: a tab closed before that
            // has the one before.
            let stored = move || {
                state.running.update(|r| {
                    if let Some(r) = r.as_mut().filter(|r| r.id == id) {
                        r.kept = Some(at);
                    }
                })
            };
            crate::keep::store_checkpoint(&run.key, buffers.get(buffer as u32), stored);
        }
        Reply::Finished { id, result } => {
            if let Some(run) = state.running.get_untracked().filter(|r| r.id == id) {
                state.running.set(None);
                crate::keep::forget_checkpoint(run.key);
                show_result(state, *result, buffers);
            }
        }
        Reply::Failed { id, error } => {
            if let Some(run) = state.running.get_untracked().filter(|r| r.id == id) {
                state.running.set(None);
                // A run that failed (a bad checkpoint among the causes)
                // starts from the beginning next time.
                crate::keep::forget_checkpoint(run.key);
            }
            state.run_error.set(Some(error));
        }
    }
}

fn show_result(state: State, meta: ResultMeta, buffers: &Array) {
    crate::keep::store(buffer_bytes(buffers, meta.bundle_buffer));
    let stored: Option<View> = serde_json::from_value(meta.view.clone())
        .ok()
        .filter(|v: &View| v.validate().is_ok());
    let view = state
        .pending_view
        .get_untracked()
        .or(stored)
        .unwrap_or_default();
    state.pending_view.set(None);
    let key = next_id(state);
    state.run_error.set(None);
    state.view.set(view);
    state
        .result
        .set(Some(Arc::new(ResultView::new(key, meta, buffers))));
}

/// Sends a request that opens inputs (files, the demos, a URL); the page
/// keeps the files to send again with a run.
pub fn send_open(state: State, bridge: &SharedBridge, req: Request, files: Vec<File>) {
    let mut b = bridge.borrow_mut();
    for f in &files {
        b.files.insert(f.name(), f.clone());
    }
    match request(&req, &[("files", files)]) {
        Ok(msg) => {
            state.pending.update(|p| *p += 1);
            b.send(msg, Array::new());
        }
        Err(e) => state.errors.set(vec![e]),
    }
}

/// Sends a run to the worker with the local files it names.
pub fn send_run(state: State, bridge: &SharedBridge, run: Run) {
    let id = next_id(state);
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
    let key = run_key(&run, [&sp, &sc, &prot].into_iter().flatten());
    let resumes = run.params.info().resumes;
    let msg = match request(
        &Request::Run {
            id,
            run: Box::new(run),
        },
        &[("sc_files", sc), ("sp_files", sp), ("prot_files", prot)],
    ) {
        Ok(msg) => msg,
        Err(e) => return state.run_error.set(Some(e)),
    };
    state.run_error.set(None);
    state.notice.set(None);
    state.running.set(Some(Running {
        id,
        stage: "starting".into(),
        done: 0,
        total: 1,
        started_ms: js_sys::Date::now(),
        losses: vec![],
        key: key.clone(),
        kept: None,
        first_done: None,
    }));
    if !resumes {
        return bridge.borrow_mut().send(msg, Array::new());
    }
    // A stopped run of the same inputs and settings left a checkpoint: the
    // worker goes on from it.
    let bridge = bridge.clone();
    wasm_bindgen_futures::spawn_local(async move {
        let kept = crate::keep::checkpoint(&key).await;
        if state.running.get_untracked().is_none_or(|r| r.id != id) {
            return;
        }
        // Transferred, not copied: it may be as large as the fit's state.
        let transfer = Array::new();
        if let Some(bytes) = kept {
            let _ = Reflect::set(&msg, &"checkpoint".into(), &bytes);
            transfer.push(&bytes);
        }
        bridge.borrow_mut().send(msg, transfer);
    });
}

/// A run's identity for its kept checkpoint: the analysis, its settings
/// and sources (not the device: a checkpoint goes on on either), each local
/// file's size and time, and this build's version.
fn run_key<'a>(run: &Run, files: impl Iterator<Item = &'a File>) -> String {
    let what = serde_json::json!({
        "tessera": env!("CARGO_PKG_VERSION"),
        "params": run.params,
        "inputs": run.inputs,
    });
    let mut key = what.to_string();
    for f in files {
        key.push_str(&format!(
            "\n{}\t{}\t{}",
            f.name(),
            f.size(),
            f.last_modified()
        ));
    }
    key
}

/// A fresh id for a request, card or result.
pub fn next_id(state: State) -> u32 {
    let id = state.next_id.get_untracked() + 1;
    state.next_id.set(id);
    id
}
