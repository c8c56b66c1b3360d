//! The page: drop or pick files, see one dataset card per input. Files go to
//! the worker untouched; the page only renders what comes back.

use std::cell::RefCell;
use std::rc::Rc;

use js_sys::{Array, Float32Array, Object, Reflect};
use leptos::prelude::*;
use send_wrapper::SendWrapper;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{
    CanvasRenderingContext2d, FileList, HtmlCanvasElement, MessageEvent, Worker, WorkerOptions,
    WorkerType,
};

use crate::protocol::{Card, Outcome, Reply, Request};
use tessera_core::data::Summary;

pub fn mount() {
    console_error_panic_hook::set_once();
    leptos::mount::mount_to_body(App);
}

/// A card plus the preview arrays that came beside it.
#[derive(Clone, PartialEq)]
struct CardView {
    key: u32,
    card: Card,
    xy: Vec<f32>,
    values: Vec<f32>,
}

/// The worker and the messages waiting for it to finish loading.
struct Bridge {
    worker: Worker,
    ready: bool,
    queue: Vec<JsValue>,
}

impl Bridge {
    fn send(&mut self, msg: JsValue) {
        if self.ready {
            let _ = self.worker.post_message(&msg);
        } else {
            self.queue.push(msg);
        }
    }
}

fn request(req: &Request, files: Option<&FileList>) -> JsValue {
    let msg = Object::new();
    let _ = Reflect::set(
        &msg,
        &"json".into(),
        &serde_json::to_string(req).unwrap_or_default().into(),
    );
    let list = Array::new();
    if let Some(files) = files {
        for i in 0..files.length() {
            if let Some(f) = files.item(i) {
                list.push(&f);
            }
        }
    }
    let _ = Reflect::set(&msg, &"files".into(), &list);
    msg.into()
}

fn buffer(list: &Array, i: usize) -> Vec<f32> {
    Float32Array::new(&list.get(i as u32)).to_vec()
}

#[component]
fn App() -> impl IntoView {
    let (cards, set_cards) = signal(Vec::<CardView>::new());
    let (errors, set_errors) = signal(Vec::<String>::new());
    let (pending, set_pending) = signal(0u32);
    let (worker_failed, set_worker_failed) = signal(false);

    let options = WorkerOptions::new();
    options.set_type(WorkerType::Classic);
    let bridge = match Worker::new_with_options("./worker_loader.js", &options) {
        Ok(worker) => Rc::new(RefCell::new(Bridge {
            worker,
            ready: false,
            queue: vec![],
        })),
        Err(_) => {
            set_worker_failed.set(true);
            return view! { <p class="error" data-testid="error">"This browser cannot start a Web Worker; Tessera needs one."</p> }.into_any();
        }
    };
    let next_key = Rc::new(RefCell::new(0u32));
    {
        let bridge_in = bridge.clone();
        let next_key = next_key.clone();
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
                    for msg in std::mem::take(&mut b.queue) {
                        let _ = b.worker.post_message(&msg);
                    }
                }
                Ok(Reply::Opened { outcomes, .. }) => {
                    let mut new_errors = Vec::new();
                    let mut new_cards = Vec::new();
                    for o in outcomes {
                        match o {
                            Outcome::Error(e) => new_errors.push(e),
                            Outcome::Card(card) => {
                                let (xy, values) = match &card.preview {
                                    Some(p) => (
                                        buffer(&buffers, p.xy_buffer),
                                        buffer(&buffers, p.value_buffer),
                                    ),
                                    None => (vec![], vec![]),
                                };
                                let mut k = next_key.borrow_mut();
                                *k += 1;
                                new_cards.push(CardView {
                                    key: *k,
                                    card: *card,
                                    xy,
                                    values,
                                });
                            }
                        }
                    }
                    set_errors.set(new_errors);
                    set_cards.update(|c| {
                        new_cards.reverse();
                        for card in new_cards {
                            c.insert(0, card);
                        }
                    });
                    set_pending.update(|p| *p = p.saturating_sub(1));
                }
                Err(e) => set_errors.set(vec![format!("unexpected message from the worker: {e}")]),
            }
        });
        let on_error = Closure::<dyn FnMut(JsValue)>::new(move |_| {
            set_worker_failed.set(true);
        });
        let b = bridge.borrow();
        b.worker
            .set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        b.worker
            .set_onerror(Some(on_error.as_ref().unchecked_ref()));
        on_message.forget();
        on_error.forget();
    }
    let request_id = Rc::new(RefCell::new(0u32));
    let send = {
        let bridge = bridge.clone();
        SendWrapper::new(move |req: fn(u32) -> Request, files: Option<FileList>| {
            let mut id = request_id.borrow_mut();
            *id += 1;
            set_pending.update(|p| *p += 1);
            set_errors.set(vec![]);
            bridge.borrow_mut().send(request(&req(*id), files.as_ref()));
        })
    };
    let send = StoredValue::new_local(send);
    let open = move |files: Option<FileList>| {
        if files.as_ref().is_some_and(|f| f.length() > 0) {
            send.with_value(|s| s(|id| Request::Open { id }, files));
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
                <p>"Drop an " <b>".h5ad"</b> ", a zipped Space Ranger folder, or cell tables (.csv / .tsv) here"</p>
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
                <button class="button secondary" data-testid="demo-button" on:click=move |_| send.with_value(|s| s(|id| Request::Demo { id }, None))>
                    "Open the demo tissue"
                </button>
                <Show when=move || { pending.get() > 0 }>
                    <p class="busy" data-testid="busy">"Reading…"</p>
                </Show>
            </section>
            <Show when=move || worker_failed.get()>
                <p class="error" data-testid="error" role="alert">"The analysis worker failed to start: reload the page."</p>
            </Show>
            <Show when=move || !errors.get().is_empty()>
                <div class="error" data-testid="error" role="alert">
                    <For each=move || errors.get() key=|e| e.clone() let:e>
                        <p>{e}</p>
                    </For>
                </div>
            </Show>
            <div class="cards">
                <For each=move || cards.get() key=|c| c.key let:c>
                    <DatasetCard view=c/>
                </For>
            </div>
        </main>
    }
    .into_any()
}

fn num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

fn keys(list: &[String]) -> String {
    if list.is_empty() {
        "—".into()
    } else {
        list.join(", ")
    }
}

#[component]
fn DatasetCard(view: CardView) -> impl IntoView {
    let s: Summary = view.card.summary.clone();
    let canvas = NodeRef::<leptos::html::Canvas>::new();
    let has_preview = !view.xy.is_empty();
    let label = view
        .card
        .preview
        .as_ref()
        .map(|p| p.value_label.clone())
        .unwrap_or_default();
    let (xy, values) = (view.xy.clone(), view.values.clone());
    Effect::new(move |_| {
        if let Some(c) = canvas.get() {
            draw(&c, &xy, &values);
        }
    });
    let x_line = s.x.as_ref().map(|x| {
        format!(
            "{} {} · {} stored non-zeros · values {} to {}",
            x.kind,
            x.dtype,
            x.nnz,
            num(x.values.min),
            num(x.values.max)
        )
    });
    let counts = s.x.as_ref().map(|x| x.raw_counts);
    let extent = s.spatial.as_ref().map(|sp| {
        format!(
            "x {} – {}, y {} – {}",
            num(sp.x_min),
            num(sp.x_max),
            num(sp.y_min),
            num(sp.y_max)
        )
    });
    let spatial_key = s
        .spatial
        .as_ref()
        .map(|sp| sp.key.clone())
        .unwrap_or_default();
    let columns = |cols: &[tessera_core::data::ColumnSummary]| -> String {
        let v: Vec<String> = cols
            .iter()
            .map(|c| match c.n_categories {
                Some(n) => format!("{} ({} categories)", c.name, n),
                None => format!("{} ({})", c.name, c.kind),
            })
            .collect();
        keys(&v)
    };
    let images: Vec<String> = s
        .images
        .iter()
        .map(|i| format!("{}/{} {}×{}", i.library, i.name, i.width, i.height))
        .collect();
    view! {
        <article class="card" data-testid="dataset-card">
            <h2>{s.source.clone()}</h2>
            <p class="format">{s.format.clone()}</p>
            <div class="shape">
                <span data-testid="n-obs">{s.n_obs}</span>
                " observations × "
                <span data-testid="n-vars">{s.n_vars}</span>
                " features"
            </div>
            <div class="body">
                <dl>
                    {x_line.map(|l| view! { <dt>"X"</dt><dd>{l}</dd> })}
                    {counts.map(|c| view! {
                        <dt>"Raw counts"</dt>
                        <dd class=if c { "ok" } else { "warn" }>{if c { "yes: non-negative integers" } else { "no" }}</dd>
                    })}
                    {extent.map(|e| view! {
                        <dt>"Spatial"</dt>
                        <dd>"obsm['" {spatial_key.clone()} "'] " <span data-testid="spatial-extent">{e}</span></dd>
                    })}
                    <dt>"obs"</dt><dd>{columns(&s.obs)}</dd>
                    <dt>"var"</dt><dd>{columns(&s.var)}</dd>
                    <dt>"obsm"</dt><dd>{keys(&s.obsm)}</dd>
                    <dt>"layers"</dt><dd>{keys(&s.layers)}</dd>
                    <dt>"uns"</dt><dd>{keys(&s.uns)}</dd>
                    <dt>"Images"</dt><dd data-testid="images">{keys(&images)}</dd>
                    <dt>"First obs"</dt><dd>{keys(&s.obs_names)}</dd>
                    <dt>"First var"</dt><dd>{keys(&s.var_names)}</dd>
                </dl>
                <Show when=move || has_preview>
                    <figure>
                        <canvas node_ref=canvas width="320" height="320" data-testid="preview"></canvas>
                        <figcaption>{label.clone()}</figcaption>
                    </figure>
                </Show>
            </div>
            <ul class="warnings">
                {s.warnings.iter().map(|w| view! { <li data-testid="warning">{w.clone()}</li> }).collect_view()}
            </ul>
        </article>
    }
}

/// Viridis at five stops, linearly interpolated.
fn colour(t: f32) -> String {
    const STOPS: [[f32; 3]; 5] = [
        [68., 1., 84.],
        [59., 82., 139.],
        [33., 145., 140.],
        [94., 201., 98.],
        [253., 231., 37.],
    ];
    let t = t.clamp(0.0, 1.0) * 4.0;
    let i = (t.floor() as usize).min(3);
    let f = t - i as f32;
    let c: Vec<u8> = (0..3)
        .map(|k| (STOPS[i][k] + (STOPS[i + 1][k] - STOPS[i][k]) * f) as u8)
        .collect();
    format!("rgb({},{},{})", c[0], c[1], c[2])
}

/// Scatter of the spots, y downwards as in the tissue image.
fn draw(canvas: &HtmlCanvasElement, xy: &[f32], values: &[f32]) {
    let Some(ctx) = canvas
        .get_context("2d")
        .ok()
        .flatten()
        .and_then(|c| c.dyn_into::<CanvasRenderingContext2d>().ok())
    else {
        return;
    };
    let (w, h) = (canvas.width() as f64, canvas.height() as f64);
    ctx.set_fill_style_str("#111");
    ctx.fill_rect(0.0, 0.0, w, h);
    let n = values.len();
    if n == 0 {
        return;
    }
    let (mut x0, mut x1, mut y0, mut y1) = (f32::MAX, f32::MIN, f32::MAX, f32::MIN);
    for p in xy.chunks(2) {
        if p[0].is_finite() && p[1].is_finite() {
            x0 = x0.min(p[0]);
            x1 = x1.max(p[0]);
            y0 = y0.min(p[1]);
            y1 = y1.max(p[1]);
        }
    }
    let span = (x1 - x0).max(y1 - y0).max(1e-6) as f64;
    let scale = (w.min(h) - 16.0) / span;
    let (vmin, vmax) = values
        .iter()
        .fold((f32::MAX, f32::MIN), |(a, b), &v| (a.min(v), b.max(v)));
    let r = (220.0 / (n as f64).sqrt()).clamp(0.6, 4.0);
    for (p, &v) in xy.chunks(2).zip(values) {
        let t = if vmax > vmin {
            (v - vmin) / (vmax - vmin)
        } else {
            0.6
        };
        ctx.set_fill_style_str(&colour(t));
        ctx.fill_rect(
            8.0 + (p[0] - x0) as f64 * scale - r / 2.0,
            8.0 + (p[1] - y0) as f64 * scale - r / 2.0,
            r,
            r,
        );
    }
}
