//! The results panel: the spatial plot (colour by one cell type with a
//! percentile vmax, or by the dominant type; pan, zoom, hover), the loss
//! curve, downloads (tables, `.h5ad`, PNG, the results bundle) and the share
//! link of what is on screen.

use std::cell::RefCell;
use std::rc::Rc;

use js_sys::{Array, Uint8Array};
use leptos::prelude::*;
use web_sys::{Blob, BlobPropertyBag, HtmlAnchorElement, HtmlCanvasElement, Url};

use crate::plot::{self, Camera, Renderer};
use crate::protocol::{MatrixMeta, ResultMeta};
use crate::run::LossCurve;
use crate::ui::{buffer_bytes, State};
use tessera_core::bundle::Plot;
use tessera_core::share::{Link, Run, View, MAX_OVERLAY, VERSION};

const CANVAS: u32 = 640;

/// What the uploaded colours were made from: result, layer, column, vmax, overlay.
type Colouring = (u32, Option<String>, Option<String>, u64, Vec<String>);

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
    pub extent: plot::Extent,
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
            extent: plot::Extent::of(&xy),
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

    /// One colour per point for the view's colouring.
    fn colours(&self, view: &View) -> (Vec<[u8; 4]>, String) {
        let layer = self.layer(view);
        let column = |j: usize| -> Vec<f32> {
            let k = layer.columns.len();
            layer
                .values
                .iter()
                .skip(j)
                .step_by(k.max(1))
                .copied()
                .collect()
        };
        let k = layer.columns.len();
        let n = self.xy.len() / 2;
        let overlay: Vec<usize> = view
            .overlay
            .iter()
            .filter_map(|c| layer.columns.iter().position(|x| x == c))
            .take(MAX_OVERLAY)
            .collect();
        if !overlay.is_empty() {
            // Each type lights its own colour in proportion to its value
            // over its own vmax; overlapping types add up, as in plot_spatial.
            let cols: Vec<(Vec<f32>, f32)> = overlay
                .iter()
                .map(|&j| {
                    let c = column(j);
                    let vmax = plot::percentile(&c, view.vmax_pct).max(f32::MIN_POSITIVE);
                    (c, vmax)
                })
                .collect();
            let rgba = (0..n)
                .map(|i| {
                    let mut acc = [17.0f32; 3];
                    for (slot, (c, vmax)) in cols.iter().enumerate() {
                        let t = (c[i] / vmax).clamp(0.0, 1.0);
                        let o = plot::OVERLAY[slot];
                        for ch in 0..3 {
                            acc[ch] += o[ch] as f32 * t;
                        }
                    }
                    [
                        acc[0].min(255.0) as u8,
                        acc[1].min(255.0) as u8,
                        acc[2].min(255.0) as u8,
                        255,
                    ]
                })
                .collect();
            let names: Vec<&str> = overlay.iter().map(|&j| layer.columns[j].as_str()).collect();
            return (
                rgba,
                format!(
                    "overlay of {} (each to its p{})",
                    names.join(", "),
                    view.vmax_pct
                ),
            );
        }
        match view
            .color
            .as_ref()
            .and_then(|c| layer.columns.iter().position(|x| x == c))
        {
            Some(j) => {
                let col = column(j);
                let vmax = plot::percentile(&col, view.vmax_pct).max(f32::MIN_POSITIVE);
                let legend = format!(
                    "{}: 0 (dark) to {vmax:.3} (yellow, p{})",
                    layer.columns[j], view.vmax_pct
                );
                (
                    col.iter().map(|&v| plot::viridis(v / vmax)).collect(),
                    legend,
                )
            }
            None if k > 0 => {
                let c = (0..n)
                    .map(|i| {
                        let row = &layer.values[i * k..(i + 1) * k];
                        let best = row.iter().enumerate().fold((0, f32::MIN), |b, (j, &v)| {
                            if v > b.1 {
                                (j, v)
                            } else {
                                b
                            }
                        });
                        plot::category(best.0)
                    })
                    .collect();
                (c, format!("largest of {}", layer.name))
            }
            None => (vec![plot::viridis(0.6); n], String::new()),
        }
    }
}

fn mime(name: &str) -> &'static str {
    if name.ends_with(".csv") {
        "text/csv"
    } else {
        "application/octet-stream"
    }
}

fn object_url(bytes: &[u8], mime: &str) -> String {
    let parts: Array = [Uint8Array::from(bytes)].iter().collect();
    let opts = BlobPropertyBag::new();
    opts.set_type(mime);
    Blob::new_with_u8_array_sequence_and_options(&parts, &opts)
        .ok()
        .and_then(|b| Url::create_object_url_with_blob(&b).ok())
        .unwrap_or_default()
}

/// The link that reopens this result as it is shown now.
fn share_link(r: &ResultView, view: &View) -> Option<String> {
    let run: Run = serde_json::from_value(r.meta.params.clone()).ok()?;
    let link = Link {
        v: VERSION,
        run,
        view: view.clone(),
    };
    let loc = window().location();
    Some(format!(
        "{}{}#link={}",
        loc.origin().ok()?,
        loc.pathname().ok()?,
        link.encode()
    ))
}

#[component]
pub fn ResultsPanel() -> impl IntoView {
    let state = expect_context::<State>();
    view! {
        <Show when=move || state.result.get().is_some()>
            <Panel/>
        </Show>
    }
}

#[component]
fn Panel() -> impl IntoView {
    let state = expect_context::<State>();
    let result = move || state.result.get();
    let canvas = NodeRef::<leptos::html::Canvas>::new();
    let renderer: StoredValue<Rc<RefCell<Option<Renderer>>>, LocalStorage> =
        StoredValue::new_local(Rc::new(RefCell::new(None)));
    let renderer_name = RwSignal::new(String::new());
    let legend = RwSignal::new(String::new());
    let hover = RwSignal::new(String::new());
    // The colouring last uploaded to the renderer.
    let uploaded = StoredValue::new_local(None::<Colouring>);

    let camera = move |r: &ResultView, v: &View| {
        Camera::fit(&r.extent, CANVAS as f64, CANVAS as f64, v.zoom, v.center)
    };
    // Colours (and the legend) are recomputed only when the colouring
    // changes, whether or not the renderer is ready yet; pan and zoom only
    // draw.
    let coloured = StoredValue::new_local(None::<(Colouring, Vec<[u8; 4]>)>);
    let redraw = move || {
        let (Some(r), v) = (state.result.get_untracked(), state.view.get_untracked()) else {
            return;
        };
        let key = (
            r.key,
            v.layer.clone(),
            v.color.clone(),
            v.vmax_pct.to_bits(),
            v.overlay.clone(),
        );
        if coloured.with_value(|c| c.as_ref().map(|c| &c.0) != Some(&key)) {
            let (rgba, text) = r.colours(&v);
            legend.set(text);
            coloured.set_value(Some((key.clone(), rgba)));
        }
        renderer.with_value(|rd| {
            let mut rd = rd.borrow_mut();
            let Some(rd) = rd.as_mut() else { return };
            if uploaded.with_value(|u| u.as_ref().map(|u| u.0) != Some(r.key)) {
                rd.set_image(r.image.as_ref().map(|(w, h, scale, rgba)| plot::Backdrop {
                    width: *w,
                    height: *h,
                    rgba,
                    scale: *scale,
                }));
            }
            if uploaded.with_value(|u| u.as_ref() != Some(&key)) {
                coloured.with_value(|c| {
                    if let Some((_, rgba)) = c {
                        rd.set_points(&r.xy, rgba);
                    }
                });
                uploaded.set_value(Some(key));
            }
            rd.draw(&camera(&r, &v), !v.hide_image);
        });
    };
    Effect::new(move |_| {
        let Some(c) = canvas.get() else { return };
        let c: HtmlCanvasElement = c;
        if renderer.with_value(|r| r.borrow().is_some()) {
            return;
        }
        let slot = renderer.get_value();
        wasm_bindgen_futures::spawn_local(async move {
            let (rd, why) = Renderer::new(c).await;
            renderer_name.set(match why {
                None => "WebGPU".into(),
                Some(e) => format!("Canvas 2D ({e})"),
            });
            *slot.borrow_mut() = Some(rd);
            redraw();
        });
    });
    Effect::new(move |_| {
        state.view.track();
        state.result.track();
        redraw();
    });

    let drag = StoredValue::new_local(None::<(f64, f64)>);
    let on_wheel = move |ev: leptos::ev::WheelEvent| {
        ev.prevent_default();
        let Some(r) = state.result.get_untracked() else {
            return;
        };
        let v = state.view.get_untracked();
        let cam = camera(&r, &v);
        let (px, py) = (ev.offset_x() as f64, ev.offset_y() as f64);
        let at = cam.to_data(px, py, CANVAS as f64, CANVAS as f64);
        let factor = (-ev.delta_y() / 500.0).exp().clamp(0.5, 2.0);
        let zoom = (v.zoom * factor).clamp(0.05, 5_000.0);
        // Keep the point under the cursor where it is.
        let ppu = cam.pixels_per_unit * zoom / v.zoom;
        let c = [
            at[0] - (px - CANVAS as f64 / 2.0) / ppu,
            at[1] - (py - CANVAS as f64 / 2.0) / ppu,
        ];
        state.view.update(|v| {
            v.zoom = zoom;
            v.center = Some(c);
        });
    };
    let on_down = move |ev: leptos::ev::MouseEvent| {
        drag.set_value(Some((ev.offset_x() as f64, ev.offset_y() as f64)));
    };
    let on_up = move |_| drag.set_value(None);
    let on_move = move |ev: leptos::ev::MouseEvent| {
        let Some(r) = state.result.get_untracked() else {
            return;
        };
        let v = state.view.get_untracked();
        let cam = camera(&r, &v);
        let (px, py) = (ev.offset_x() as f64, ev.offset_y() as f64);
        if let Some((x0, y0)) = drag.get_value() {
            if ev.buttons() & 1 == 1 {
                drag.set_value(Some((px, py)));
                state.view.update(|v| {
                    v.center = Some([
                        cam.center[0] - (px - x0) / cam.pixels_per_unit,
                        cam.center[1] - (py - y0) / cam.pixels_per_unit,
                    ]);
                });
                return;
            }
            drag.set_value(None);
        }
        let at = cam.to_data(px, py, CANVAS as f64, CANVAS as f64);
        let reach = (cam.radius_px * 1.5).max(4.0) / cam.pixels_per_unit;
        hover.set(match plot::nearest(&r.xy, at, reach) {
            Some(i) => {
                let l = r.layer(&v);
                let k = l.columns.len();
                let mut vals: Vec<(usize, f32)> =
                    (0..k).map(|j| (j, l.values[i * k + j])).collect();
                vals.sort_by(|a, b| b.1.total_cmp(&a.1));
                let top: Vec<String> = vals
                    .iter()
                    .take(4)
                    .map(|(j, v)| format!("{} {v:.3}", l.columns[*j]))
                    .collect();
                format!(
                    "{}: {}",
                    r.names.get(i).cloned().unwrap_or_default(),
                    top.join(", ")
                )
            }
            None => String::new(),
        });
    };

    let columns = move || {
        result()
            .map(|r| r.layer(&state.view.get()).columns.clone())
            .unwrap_or_default()
    };
    let color_options = move || {
        columns()
            .into_iter()
            .map(|c| view! { <option value=c.clone()>{c.clone()}</option> })
            .collect_view()
    };
    // The main table and AnnData get the stable test hooks; the rest follow.
    let main_file = move |ext: &'static str| {
        result()
            .and_then(|r| r.files.iter().find(|(n, _)| n.ends_with(ext)).cloned())
            .unwrap_or_default()
    };
    let other_files = move || {
        let (csv, h5ad) = (main_file(".csv").0, main_file(".h5ad").0);
        result()
            .map(|r| r.files.clone())
            .unwrap_or_default()
            .into_iter()
            .filter(move |(n, _)| *n != csv && *n != h5ad)
            .map(|(n, u)| view! { <a class="button secondary" href=u download=n.clone()>{n.clone()}</a> })
            .collect_view()
    };
    // Downloads are plain links whose target is ready before the click: a
    // download started from script during or after it can be held back.
    let bundle_link = NodeRef::<leptos::html::A>::new();
    let bundle_url = StoredValue::new_local(String::new());
    let prepare_bundle = move || {
        let Some(r) = state.result.get_untracked() else {
            return;
        };
        let view = serde_json::to_value(state.view.get_untracked()).unwrap_or_default();
        match tessera_core::bundle::with_view("results bundle", &r.bundle, view) {
            Ok(bytes) => {
                let url = object_url(&bytes, "application/zip");
                let old = bundle_url.get_value();
                if !old.is_empty() {
                    let _ = Url::revoke_object_url(&old);
                }
                bundle_url.set_value(url.clone());
                if let Some(a) = bundle_link.get_untracked() {
                    let a: HtmlAnchorElement = a;
                    a.set_href(&url);
                }
            }
            Err(e) => state.run_error.set(Some(e.to_string())),
        }
    };
    // The bundle follows the view, restamped once the view has rested.
    let generation = StoredValue::new(0u64);
    Effect::new(move |_| {
        state.view.track();
        state.result.track();
        let g = generation.get_value() + 1;
        generation.set_value(g);
        set_timeout(
            move || {
                if generation.get_value() == g {
                    prepare_bundle();
                }
            },
            std::time::Duration::from_millis(150),
        );
    });
    // The PNG is taken on pointer-down: a WebGPU canvas keeps its pixels
    // only for the task that drew them.
    let png_link = NodeRef::<leptos::html::A>::new();
    let prepare_png = move || {
        // A WebGPU canvas keeps its pixels only for the task that drew them.
        redraw();
        if let (Some(c), Some(a)) = (canvas.get_untracked(), png_link.get_untracked()) {
            let (c, a): (HtmlCanvasElement, HtmlAnchorElement) = (c, a);
            if let Ok(url) = c.to_data_url() {
                a.set_href(&url);
            }
        }
    };
    let lines = move || -> Vec<MatrixMeta> {
        result()
            .map(|r| r.meta.matrices.clone())
            .unwrap_or_default()
            .into_iter()
            .filter(|m| m.plot == Plot::Lines)
            .collect()
    };
    let others = move || -> Vec<MatrixMeta> {
        result()
            .map(|r| r.meta.matrices.clone())
            .unwrap_or_default()
            .into_iter()
            .filter(|m| m.plot != Plot::Lines)
            .collect()
    };
    let link = Memo::new(move |_| {
        let (r, v) = (state.result.get()?, state.view.get());
        share_link(&r, &v)
    });
    let summary = move || {
        result()
            .map(|r| {
                let m = &r.meta;
                let mut s = format!("{} · {} points", m.analysis, m.n);
                if let (Some(d), Some(t)) = (&m.device, m.seconds) {
                    s.push_str(&format!(" · {t:.1} s on {d}"));
                } else {
                    s.push_str(" · opened from a results bundle");
                }
                s
            })
            .unwrap_or_default()
    };
    let curve: Signal<Vec<(usize, f64)>> = Signal::derive(move || {
        result()
            .and_then(|r| r.meta.curves.first().cloned())
            .map(|c| {
                c.values
                    .into_iter()
                    .enumerate()
                    .map(|(i, v)| (i + 1, v))
                    .collect()
            })
            .unwrap_or_default()
    });
    // Tangram's second curve is its score; other analyses name their own.
    let final_score = move || {
        result()
            .and_then(|r| {
                let c = if r.meta.analysis == "tangram" {
                    r.meta.curves.get(1)
                } else {
                    r.meta.curves.first()
                }?;
                Some(format!("final {} {:.4}", c.name, c.values.last()?))
            })
            .unwrap_or_default()
    };

    view! {
        <section class="results" data-testid="results">
            <h2>"Results"</h2>
            <p class="format" data-testid="result-summary">{summary}</p>
            <div class="plot-row">
                <figure>
                    <canvas node_ref=canvas width=CANVAS height=CANVAS data-testid="result-canvas"
                        on:wheel=on_wheel on:mousedown=on_down on:mouseup=on_up on:mouseleave=on_up on:mousemove=on_move></canvas>
                    <figcaption>
                        <span data-testid="legend">{move || legend.get()}</span>
                        " · drawn with " <span data-testid="renderer">{move || renderer_name.get()}</span>
                    </figcaption>
                    <p class="hover" data-testid="hover">{move || hover.get()}</p>
                </figure>
                <div class="controls">
                    <Show when=move || result().is_some_and(|r| r.layers.len() > 1)>
                        <label title="What the points carry: cell types, factor loadings, niche composition, genes.">
                            <span>"Show"</span>
                            <select data-testid="layer-select"
                                prop:value=move || result().map(|r| r.layer(&state.view.get()).name.clone()).unwrap_or_default()
                                on:change=move |ev| {
                                    let v = event_target_value(&ev);
                                    state.view.update(|s| { s.layer = Some(v); s.color = None; s.overlay.clear(); });
                                }>
                                {move || result().map(|r| r.layers.iter().map(|l| {
                                    let n = l.name.clone();
                                    view! { <option value=n.clone()>{n.clone()}</option> }
                                }).collect_view())}
                            </select>
                        </label>
                    </Show>
                    <label>
                        <span>"Colour by"</span>
                        <select data-testid="color-select"
                            prop:value=move || state.view.get().color.unwrap_or_default()
                            on:change=move |ev| {
                                let v = event_target_value(&ev);
                                state.view.update(|s| s.color = (!v.is_empty()).then_some(v));
                            }>
                            <option value="">"the largest column (category)"</option>
                            {color_options}
                        </select>
                    </label>
                    <label title="The value shown in the top colour: this percentile of the column (cell2location's vmax='p99.2').">
                        <span>"vmax percentile"</span>
                        <input type="number" min="1" max="100" step="0.1" data-testid="vmax-input"
                            prop:value=move || state.view.get().vmax_pct.to_string()
                            on:input=move |ev| {
                                // Live while typing (a change on blur would land in the
                                // middle of the next click and swallow it).
                                if let Ok(p) = event_target_value(&ev).parse::<f64>() {
                                    if p > 0.0 && p <= 100.0 && p != state.view.get_untracked().vmax_pct {
                                        state.view.update(|s| s.vmax_pct = p);
                                    }
                                }
                            } />
                    </label>
                    <button class="button secondary" on:click=move |_| state.view.update(|v| { v.zoom = 1.0; v.center = None; })>"Reset view"</button>
                    <Show when=move || result().is_some_and(|r| r.image.is_some())>
                        <label class="check" title="The Space Ranger image, aligned by its scale factor">
                            <input type="checkbox" data-testid="image-toggle"
                                prop:checked=move || !state.view.get().hide_image
                                on:change=move |ev| {
                                    let on = event_target_checked(&ev);
                                    state.view.update(|v| v.hide_image = !on);
                                } />
                            <span>"Tissue image under the spots"</span>
                        </label>
                    </Show>
                    <Show when=move || !curve.get().is_empty()>
                        <h3>"Loss per step"</h3>
                        <LossCurve points=curve/>
                        <p class="format">{final_score}</p>
                    </Show>
                    <label title="Draw up to six cell types at once, each in its own colour (cell2location's plot_spatial). Ctrl/Cmd-click to pick several.">
                        <span>"Overlay"</span>
                        <select multiple size="4" data-testid="overlay-select"
                            on:change=move |ev| {
                                let el: web_sys::HtmlSelectElement = event_target(&ev);
                                let opts = el.selected_options();
                                let picked: Vec<String> = (0..opts.length())
                                    .filter_map(|i| opts.item(i))
                                    .filter_map(|o| o.get_attribute("value"))
                                    .take(MAX_OVERLAY)
                                    .collect();
                                state.view.update(|v| v.overlay = picked);
                            }>
                            {move || {
                                let chosen = state.view.get().overlay;
                                columns().into_iter().map(|c| {
                                    let sel = chosen.contains(&c);
                                    view! { <option value=c.clone() selected=sel>{c.clone()}</option> }
                                }).collect_view()
                            }}
                        </select>
                    </label>
                    <Show when=move || !state.view.get().overlay.is_empty()>
                        <ul class="swatches" data-testid="overlay-swatches">
                            {move || state.view.get().overlay.into_iter().enumerate().map(|(i, c)| {
                                let [r, g, b] = plot::OVERLAY[i.min(MAX_OVERLAY - 1)];
                                let style = format!("background: rgb({r},{g},{b})");
                                view! { <li><span class="swatch" style=style></span>{c}</li> }
                            }).collect_view()}
                        </ul>
                    </Show>
                    <Show when=move || state.view.get().color.is_none() && state.view.get().overlay.is_empty()>
                        <ul class="swatches" data-testid="swatches">
                            {move || columns().into_iter().enumerate().map(|(i, c)| {
                                let [r, g, b, _] = plot::category(i);
                                let style = format!("background: rgb({r},{g},{b})");
                                view! { <li><span class="swatch" style=style></span>{c}</li> }
                            }).collect_view()}
                        </ul>
                    </Show>
                    <h3>"Take away"</h3>
                    <div class="downloads">
                        <a class="button" data-testid="download-csv" href=move || main_file(".csv").1 download=move || main_file(".csv").0>{move || main_file(".csv").0}</a>
                        <Show when=move || !main_file(".h5ad").0.is_empty()>
                            <a class="button" data-testid="download-h5ad" href=move || main_file(".h5ad").1 download=move || main_file(".h5ad").0>{move || main_file(".h5ad").0}</a>
                        </Show>
                        <a class="button" data-testid="download-bundle" node_ref=bundle_link href="#" download="tessera_results.zip">"Results bundle (.zip)"</a>
                        <a class="button secondary" data-testid="download-png" node_ref=png_link href="#" download="tessera_spatial.png"
                            on:pointerdown=move |_| prepare_png() on:focus=move |_| prepare_png()>"PNG of the plot"</a>
                        {other_files}
                    </div>
                    <h3>"Share"</h3>
                    <input class="share" readonly data-testid="share-link" prop:value=move || link.get().unwrap_or_default() />
                    <small>"The link holds the parameters and this view; the demo and public URLs re-run on open, local files must be opened again."</small>
                </div>
            </div>
            <Show when=move || !lines().is_empty()>
                <LinePlots ms=lines()/>
            </Show>
            <For each=others key=|m| m.name.clone() let:m>
                {match m.plot {
                    Plot::Dots => view! { <DotPlot m=m/> }.into_any(),
                    Plot::Bars => view! { <Bars m=m/> }.into_any(),
                    Plot::Scatter => view! { <Scores m=m/> }.into_any(),
                    Plot::Histogram2d => view! { <Density m=m/> }.into_any(),
                    _ => view! { <Heatmap m=m/> }.into_any(),
                }}
            </For>
        </section>
    }
}

/// A table as a heatmap: diverging around 0 for z-scores (blue to red, as
/// squidpy's `nhood_enrichment` plot), viridis otherwise.
#[component]
fn Heatmap(m: MatrixMeta) -> impl IntoView {
    let (nr, nc) = (m.rows.len(), m.cols.len());
    let cell = 28.0;
    let (label_w, label_h, w, h) = grid_frame(&m, cell);
    let finite: Vec<f64> = m.values.iter().copied().filter(|v| v.is_finite()).collect();
    let lim = finite.iter().fold(0f64, |a, v| a.max(v.abs())).max(1e-12);
    let diverging = finite.iter().any(|&v| v < 0.0);
    let colour = move |v: f64| -> String {
        if !v.is_finite() {
            return "#ddd".into();
        }
        if diverging {
            let t = (v / lim).clamp(-1.0, 1.0);
            let (r, g, b) = if t >= 0.0 {
                (255.0, 255.0 * (1.0 - t * 0.85), 255.0 * (1.0 - t * 0.9))
            } else {
                (255.0 * (1.0 + t * 0.9), 255.0 * (1.0 + t * 0.7), 255.0)
            };
            format!("rgb({r:.0},{g:.0},{b:.0})")
        } else {
            let c = plot::viridis((v / lim) as f32);
            format!("rgb({},{},{})", c[0], c[1], c[2])
        }
    };
    let cells = (0..nr)
        .flat_map(|i| (0..nc).map(move |j| (i, j)))
        .map(|(i, j)| {
            let v = m.values[i * nc + j];
            let title = format!("{} × {}: {v:.3}", m.rows[i], m.cols[j]);
            view! {
                <rect x=label_w + cell * j as f64 y=label_h + cell * i as f64 width=cell - 1.0 height=cell - 1.0 fill=colour(v)>
                    <title>{title}</title>
                </rect>
            }
        })
        .collect_view();
    let labels = axis_labels(&m, label_w, label_h, cell);
    let caption = if diverging {
        format!("{}: blue below 0, red above (±{lim:.1})", m.name)
    } else {
        format!("{}: 0 to {lim:.0}", m.name)
    };
    view! {
        <figure class="heatmap" data-testid="heatmap">
            <svg width=w height=h viewBox=format!("0 0 {w} {h}")>{labels}{cells}</svg>
            <figcaption>{caption}</figcaption>
        </figure>
    }
}

/// Line plots over numeric columns (co-occurrence ratio against distance,
/// as squidpy's `pl.co_occurrence`), one panel at a time: pick which.
#[component]
fn LinePlots(ms: Vec<MatrixMeta>) -> impl IntoView {
    let names: Vec<String> = ms.iter().map(|m| m.name.clone()).collect();
    let pick = RwSignal::new(0usize);
    let ms = StoredValue::new(ms);
    let (w, h, left, bottom, right) = (560.0, 300.0, 48.0, 36.0, 170.0);
    let panel = move || {
        let m = ms.with_value(|ms| ms.get(pick.get()).cloned())?;
        let nc = m.cols.len();
        let xs: Vec<f64> = m
            .cols
            .iter()
            .map(|c| c.parse().unwrap_or(f64::NAN))
            .collect();
        let (x0, x1) = (xs.first().copied()?, xs.last().copied()?);
        let finite = m.values.iter().copied().filter(|v| v.is_finite());
        let (lo, hi) = finite.fold((1.0f64, 1.0f64), |(a, b), v| (a.min(v), b.max(v)));
        let (pw, ph) = (w - left - right, h - bottom - 8.0);
        let px = move |x: f64| left + (x - x0) / (x1 - x0).max(1e-12) * pw;
        let py = move |y: f64| 8.0 + (hi - y) / (hi - lo).max(1e-12) * ph;
        let paths = m
            .rows
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let d: String = (0..nc)
                    .filter(|&j| m.values[i * nc + j].is_finite())
                    .enumerate()
                    .map(|(n, j)| {
                        let cmd = if n == 0 { "M" } else { " L" };
                        format!("{cmd}{:.1},{:.1}", px(xs[j]), py(m.values[i * nc + j]))
                    })
                    .collect();
                let [cr, cg, cb, _] = plot::category(i);
                let colour = format!("rgb({cr},{cg},{cb})");
                let ly = 14.0 + 14.0 * i as f64;
                view! {
                    <path d=d fill="none" stroke=colour.clone() stroke-width="1.5"><title>{r.clone()}</title></path>
                    <rect x=w - right + 8.0 y=ly - 9.0 width="10" height="10" fill=colour/>
                    <text x=w - right + 22.0 y=ly font-size="11">{r.clone()}</text>
                }
            })
            .collect_view();
        let one = py(1.0);
        Some(view! {
            <svg width=w height=h.max(20.0 + 14.0 * m.rows.len() as f64) data-testid="line-plot">
                <line x1=left x2=w - right y1=one y2=one stroke="#999" stroke-dasharray="4 3"/>
                <line x1=left x2=left y1="8" y2=h - bottom stroke="#333"/>
                <line x1=left x2=w - right y1=h - bottom y2=h - bottom stroke="#333"/>
                <text x=left - 4.0 y=py(hi) + 4.0 text-anchor="end" font-size="11">{format!("{hi:.2}")}</text>
                <text x=left - 4.0 y=py(lo) text-anchor="end" font-size="11">{format!("{lo:.2}")}</text>
                <text x=left y=h - bottom + 14.0 font-size="11">{format!("{x0:.0}")}</text>
                <text x=w - right y=h - bottom + 14.0 text-anchor="end" font-size="11">{format!("{x1:.0}")}</text>
                <text x=left + pw / 2.0 y=h - 6.0 text-anchor="middle" font-size="12">"distance"</text>
                {paths}
            </svg>
        })
    };
    view! {
        <figure class="lines" data-testid="lines">
            <label>
                <span>"Panel"</span>
                <select data-testid="lines-select" prop:value=move || pick.get().to_string()
                    on:change=move |ev| pick.set(event_target_value(&ev).parse().unwrap_or(0))>
                    {names.iter().enumerate().map(|(i, n)| view! { <option value=i.to_string()>{n.clone()}</option> }).collect_view()}
                </select>
            </label>
            {panel}
            <figcaption>"Ratio of the chance of meeting each type within the distance, given the panel's type, to its overall chance (1: no preference; dashed line)."</figcaption>
        </figure>
    }
}

/// A table drawn as a grid of `cell`-sized squares: the room for row and
/// column labels (from the longest label) and the figure's width and height
/// (room on the right for the last rotated column labels).
fn grid_frame(m: &MatrixMeta, cell: f64) -> (f64, f64, f64, f64) {
    let longest = |v: &[String]| v.iter().map(|r| r.chars().count()).max().unwrap_or(4) as f64;
    let (label_w, label_h) = (7.5 * longest(&m.rows) + 10.0, 5.5 * longest(&m.cols) + 14.0);
    (
        label_w,
        label_h,
        label_w + cell * m.cols.len() as f64 + label_h,
        label_h + cell * m.rows.len() as f64 + 4.0,
    )
}

/// A dot plot: each cell's area and colour follow its value (fractions,
/// scaled loadings), as scanpy's `pl.dotplot`.
#[component]
fn DotPlot(m: MatrixMeta) -> impl IntoView {
    let (nr, nc) = (m.rows.len(), m.cols.len());
    let cell = 26.0;
    let (label_w, label_h, w, h) = grid_frame(&m, cell);
    let top = m
        .values
        .iter()
        .copied()
        .filter(|v| v.is_finite())
        .fold(0f64, f64::max)
        .max(1e-12);
    let dots = (0..nr)
        .flat_map(|i| (0..nc).map(move |j| (i, j)))
        .map(|(i, j)| {
            let v = m.values[i * nc + j];
            let t = if v.is_finite() { (v / top).clamp(0.0, 1.0) } else { 0.0 };
            let c = plot::viridis(t as f32);
            let title = format!("{} × {}: {v:.3}", m.rows[i], m.cols[j]);
            view! {
                <circle cx=label_w + cell * (j as f64 + 0.5) cy=label_h + cell * (i as f64 + 0.5)
                    r=(cell * 0.46 * t.sqrt()).max(0.5) fill=format!("rgb({},{},{})", c[0], c[1], c[2])>
                    <title>{title}</title>
                </circle>
            }
        })
        .collect_view();
    let labels = axis_labels(&m, label_w, label_h, cell);
    let caption = format!("{}: dot area and colour from 0 to {top:.2}", m.name);
    view! {
        <figure class="heatmap" data-testid="dotplot">
            <svg width=w height=h viewBox=format!("0 0 {w} {h}")>{labels}{dots}</svg>
            <figcaption>{caption}</figcaption>
        </figure>
    }
}

/// Row labels on the left, column labels rotated on top.
fn axis_labels(m: &MatrixMeta, label_w: f64, label_h: f64, cell: f64) -> impl IntoView {
    let rows = m
        .rows
        .iter()
        .enumerate()
        .map(|(i, r)| {
            view! {
                <text x=label_w - 4.0 y=label_h + cell * (i as f64 + 0.65) text-anchor="end" font-size="12">{r.clone()}</text>
            }
        })
        .collect_view();
    let cols = m
        .cols
        .iter()
        .enumerate()
        .map(|(j, c)| {
            let (x, y) = (label_w + cell * (j as f64 + 0.6), label_h - 4.0);
            view! {
                <text x=x y=y transform=format!("rotate(-45 {x} {y})") font-size="12">{c.clone()}</text>
            }
        })
        .collect_view();
    view! { {rows}{cols} }
}

/// A ranked table: a bar for the first column, the others as numbers.
#[component]
fn Bars(m: MatrixMeta) -> impl IntoView {
    let nc = m.cols.len().max(1);
    let top = m
        .values
        .iter()
        .step_by(nc)
        .filter(|v| v.is_finite())
        .fold(0f64, |a, v| a.max(v.abs()))
        .max(1e-12);
    let head = m
        .cols
        .iter()
        .map(|c| view! { <th>{c.clone()}</th> })
        .collect_view();
    let rows = m
        .rows
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let v = &m.values[i * nc..(i + 1) * nc];
            let pct = (v[0].abs() / top * 100.0).clamp(0.0, 100.0);
            let bar = format!(
                "background: linear-gradient(90deg, #9ecae1 {pct:.1}%, transparent {pct:.1}%)"
            );
            let rest = v[1..]
                .iter()
                .map(|x| view! { <td>{format!("{x:.3e}")}</td> })
                .collect_view();
            view! {
                <tr>
                    <th scope="row">{r.clone()}</th>
                    <td class="bar" style=bar>{format!("{:.4}", v[0])}</td>
                    {rest}
                </tr>
            }
        })
        .collect_view();
    view! {
        <figure class="bars" data-testid="bars">
            <table>
                <thead><tr><th></th>{head}</tr></thead>
                <tbody>{rows}</tbody>
            </table>
            <figcaption>{m.name.clone()}</figcaption>
        </figure>
    }
}

/// The first column's histogram and its scatter against each other column,
/// as Tangram's `plot_training_scores` (score against gene sparsity).
#[component]
fn Scores(m: MatrixMeta) -> impl IntoView {
    let nc = m.cols.len().max(1);
    let col = |j: usize| -> Vec<f64> { m.values.iter().skip(j).step_by(nc).copied().collect() };
    let y = col(0);
    let (side, pad) = (180.0, 26.0);
    let range = |v: &[f64]| {
        let (lo, hi) = v
            .iter()
            .filter(|x| x.is_finite())
            .fold((f64::MAX, f64::MIN), |(a, b), &x| (a.min(x), b.max(x)));
        if lo > hi {
            (0.0, 1.0)
        } else {
            (lo, hi.max(lo + 1e-12))
        }
    };
    let (ylo, yhi) = range(&y);
    let frame = |title: String, body: AnyView, xlo: f64, xhi: f64| {
        view! {
            <svg width=side + pad height=side + pad + 16.0 class="panel">
                <text x=pad y="12" font-size="12">{title}</text>
                <g transform="translate(0 16)">
                    <rect x=pad y="0" width=side height=side fill="none" stroke="#bbb"/>
                    {body}
                    <text x=pad y=side + 14.0 font-size="10">{format!("{xlo:.2}")}</text>
                    <text x=pad + side y=side + 14.0 font-size="10" text-anchor="end">{format!("{xhi:.2}")}</text>
                </g>
            </svg>
        }
    };
    // Ten bins, as the tutorial's histogram.
    let bins = 10;
    let mut counts = vec![0usize; bins];
    for v in y.iter().filter(|v| v.is_finite()) {
        let b = (((v - ylo) / (yhi - ylo)) * bins as f64) as usize;
        counts[b.min(bins - 1)] += 1;
    }
    let top = *counts.iter().max().unwrap_or(&1) as f64;
    let bars = counts
        .iter()
        .enumerate()
        .map(|(i, &c)| {
            let h = c as f64 / top.max(1.0) * (side - 4.0);
            let w = side / bins as f64;
            view! { <rect x=pad + w * i as f64 + 1.0 y=side - h width=w - 2.0 height=h fill="#4c78a8"><title>{format!("{c} genes")}</title></rect> }
        })
        .collect_view()
        .into_any();
    let mut panels =
        vec![frame(format!("{} (genes per bin)", m.cols[0]), bars, ylo, yhi).into_any()];
    for j in 1..nc {
        let x = col(j);
        let (xlo, xhi) = range(&x);
        let dots = x
            .iter()
            .zip(&y)
            .zip(&m.rows)
            .filter(|((a, b), _)| a.is_finite() && b.is_finite())
            .map(|((a, b), name)| {
                let cx = pad + (a - xlo) / (xhi - xlo) * side;
                let cy = side - (b - ylo) / (yhi - ylo) * side;
                view! { <circle cx=cx cy=cy r="2" fill="#4c78a8" fill-opacity="0.6"><title>{format!("{name}: {b:.3} at {a:.3}")}</title></circle> }
            })
            .collect_view()
            .into_any();
        panels.push(frame(format!("{} vs {}", m.cols[0], m.cols[j]), dots, xlo, xhi).into_any());
    }
    view! {
        <figure class="scores" data-testid="training-scores">
            {panels}
            <figcaption>{format!("{}: {} genes; score axis {ylo:.2} to {yhi:.2}", m.name, m.rows.len())}</figcaption>
        </figure>
    }
}

/// A 2-D histogram as an image (cell2location's `plot_QC`): each bin's
/// colour follows log10(1 + count), the axes run over the bins' values.
#[component]
fn Density(m: MatrixMeta) -> impl IntoView {
    let (nr, nc) = (m.rows.len(), m.cols.len().max(1));
    let (side, pad) = (300.0, 40.0);
    let (cw, ch) = (side / nc as f64, side / nr.max(1) as f64);
    let top = m.values.iter().copied().fold(0f64, f64::max).max(1.0);
    let scale = (1.0 + top).log10();
    let cells = (0..nr)
        .flat_map(|i| (0..nc).map(move |j| (i, j)))
        .filter(|&(i, j)| m.values[i * nc + j] > 0.0)
        .map(|(i, j)| {
            let v = m.values[i * nc + j];
            let c = plot::viridis(((1.0 + v).log10() / scale) as f32);
            view! {
                <rect x=pad + cw * j as f64 y=ch * i as f64 width=cw + 0.2 height=ch + 0.2
                    fill=format!("rgb({},{},{})", c[0], c[1], c[2])>
                    <title>{format!("observed {}, expected {}: {v}", m.rows[i], m.cols[j])}</title>
                </rect>
            }
        })
        .collect_view();
    let (first, last) = (
        m.cols.first().cloned().unwrap_or_default(),
        m.cols.last().cloned().unwrap_or_default(),
    );
    view! {
        <figure class="heatmap" data-testid="qc-histogram">
            <svg width=side + pad + 8.0 height=side + 30.0>
                <rect x=pad y="0" width=side height=side fill="#111"/>
                {cells}
                <line x1=pad y1=side x2=pad + side y2="0" stroke="#ddd" stroke-dasharray="4 3"/>
                <text x=pad y=side + 14.0 font-size="10">{first}</text>
                <text x=pad + side y=side + 14.0 font-size="10" text-anchor="end">{last}</text>
                <text x=pad + side / 2.0 y=side + 26.0 font-size="11" text-anchor="middle">"expected"</text>
                <text x="14" y=side / 2.0 font-size="11" text-anchor="middle"
                    transform=format!("rotate(-90 14 {})", side / 2.0)>"observed"</text>
            </svg>
            <figcaption>{format!("{}: colour from 1 to {top:.0} (log scale); the dashed line is observed = expected", m.name)}</figcaption>
        </figure>
    }
}
