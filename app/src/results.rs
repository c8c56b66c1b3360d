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
use tessera_core::share::{Link, Run, View, MAX_OVERLAY, VERSION};

const CANVAS: u32 = 640;

/// What the uploaded colours were made from: result, column, vmax, overlay.
type Colouring = (u32, Option<String>, u64, Vec<String>);

/// A result as the page holds it: arrays plus object URLs for downloads.
pub struct ResultView {
    pub key: u32,
    pub meta: ResultMeta,
    pub xy: Vec<f32>,
    pub extent: plot::Extent,
    pub names: Vec<String>,
    /// Columns (cell types) and points x columns values.
    pub columns: Vec<String>,
    pub values: Vec<f32>,
    pub layer: String,
    /// (file name, object URL).
    pub files: Vec<(String, String)>,
    pub bundle: Vec<u8>,
}

impl ResultView {
    pub fn new(key: u32, meta: ResultMeta, buffers: &Array) -> ResultView {
        let f32s = |i: usize| js_sys::Float32Array::new(&buffers.get(i as u32)).to_vec();
        let names = String::from_utf8(buffer_bytes(buffers, meta.names_buffer))
            .unwrap_or_default()
            .split('\n')
            .map(str::to_string)
            .collect();
        let (layer, columns, values) = meta
            .layers
            .first()
            .map(|l| (l.name.clone(), l.columns.clone(), f32s(l.buffer)))
            .unwrap_or_default();
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
            columns,
            values,
            layer,
            files,
            bundle: buffer_bytes(buffers, meta.bundle_buffer),
            meta,
        }
    }

    fn column(&self, j: usize) -> Vec<f32> {
        let k = self.columns.len();
        self.values
            .iter()
            .skip(j)
            .step_by(k.max(1))
            .copied()
            .collect()
    }

    /// One colour per point for the view's colouring.
    fn colours(&self, view: &View) -> (Vec<[u8; 4]>, String) {
        let k = self.columns.len();
        let n = self.xy.len() / 2;
        let overlay: Vec<usize> = view
            .overlay
            .iter()
            .filter_map(|c| self.columns.iter().position(|x| x == c))
            .take(MAX_OVERLAY)
            .collect();
        if !overlay.is_empty() {
            // Each type lights its own colour in proportion to its value
            // over its own vmax; overlapping types add up, as in plot_spatial.
            let cols: Vec<(Vec<f32>, f32)> = overlay
                .iter()
                .map(|&j| {
                    let c = self.column(j);
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
            let names: Vec<&str> = overlay.iter().map(|&j| self.columns[j].as_str()).collect();
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
            .and_then(|c| self.columns.iter().position(|x| x == c))
        {
            Some(j) => {
                let col = self.column(j);
                let vmax = plot::percentile(&col, view.vmax_pct).max(f32::MIN_POSITIVE);
                let legend = format!(
                    "{}: 0 (dark) to {vmax:.3} (yellow, p{})",
                    self.columns[j], view.vmax_pct
                );
                (
                    col.iter().map(|&v| plot::viridis(v / vmax)).collect(),
                    legend,
                )
            }
            None if k > 0 => {
                let c = (0..n)
                    .map(|i| {
                        let row = &self.values[i * k..(i + 1) * k];
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
                (c, "dominant cell type".into())
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
            if uploaded.with_value(|u| u.as_ref() != Some(&key)) {
                coloured.with_value(|c| {
                    if let Some((_, rgba)) = c {
                        rd.set_points(&r.xy, rgba);
                    }
                });
                uploaded.set_value(Some(key));
            }
            rd.draw(&camera(&r, &v));
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
                let k = r.columns.len();
                let mut vals: Vec<(usize, f32)> =
                    (0..k).map(|j| (j, r.values[i * k + j])).collect();
                vals.sort_by(|a, b| b.1.total_cmp(&a.1));
                let top: Vec<String> = vals
                    .iter()
                    .take(4)
                    .map(|(j, v)| format!("{} {v:.3}", r.columns[*j]))
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

    let color_options = move || {
        result()
            .map(|r| r.columns.clone())
            .unwrap_or_default()
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
    let link = Memo::new(move |_| {
        let (r, v) = (state.result.get()?, state.view.get());
        share_link(&r, &v)
    });
    let summary = move || {
        result()
            .map(|r| {
                let m = &r.meta;
                let mut s = format!("{} · {} points · {}", m.analysis, m.n, r.layer);
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
    let final_score = move || {
        result()
            .and_then(|r| r.meta.curves.get(1).and_then(|c| c.values.last().copied()))
            .map(|s| format!("final score (mean gene cosine) {s:.4}"))
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
                    <label>
                        <span>"Colour by"</span>
                        <select data-testid="color-select"
                            prop:value=move || state.view.get().color.unwrap_or_default()
                            on:change=move |ev| {
                                let v = event_target_value(&ev);
                                state.view.update(|s| s.color = (!v.is_empty()).then_some(v));
                            }>
                            <option value="">"dominant cell type"</option>
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
                    <Show when=move || !curve.get().is_empty()>
                        <h3>"Loss per epoch"</h3>
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
                                result().map(|r| r.columns.clone()).unwrap_or_default().into_iter().map(|c| {
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
                            {move || result().map(|r| r.columns.clone()).unwrap_or_default().into_iter().enumerate().map(|(i, c)| {
                                let [r, g, b, _] = plot::category(i);
                                let style = format!("background: rgb({r},{g},{b})");
                                view! { <li><span class="swatch" style=style></span>{c}</li> }
                            }).collect_view()}
                        </ul>
                    </Show>
                    <h3>"Take away"</h3>
                    <div class="downloads">
                        <a class="button" data-testid="download-csv" href=move || main_file(".csv").1 download=move || main_file(".csv").0>{move || main_file(".csv").0}</a>
                        <a class="button" data-testid="download-h5ad" href=move || main_file(".h5ad").1 download=move || main_file(".h5ad").0>{move || main_file(".h5ad").0}</a>
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
            <For each=move || result().map(|r| r.meta.matrices.clone()).unwrap_or_default() key=|m| m.name.clone() let:m>
                <Heatmap m=m/>
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
    let longest = |v: &[String]| v.iter().map(|r| r.chars().count()).max().unwrap_or(4) as f64;
    let label_w = 7.5 * longest(&m.rows) + 10.0;
    let label_h = 5.5 * longest(&m.cols) + 14.0;
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
    let (w, h) = (
        // Room on the right for the last rotated column labels.
        label_w + cell * nc as f64 + label_h,
        label_h + cell * nr as f64 + 4.0,
    );
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
    let caption = if diverging {
        format!("{}: blue below 0, red above (±{lim:.1})", m.name)
    } else {
        format!("{}: 0 to {lim:.0}", m.name)
    };
    view! {
        <figure class="heatmap" data-testid="heatmap">
            <svg width=w height=h viewBox=format!("0 0 {w} {h}")>{rows}{cols}{cells}</svg>
            <figcaption>{caption}</figcaption>
        </figure>
    }
}
