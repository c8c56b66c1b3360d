//! The results panel: the spatial plot (colour by one cell type with a
//! percentile vmax, or by the dominant type; pan, zoom, hover), the loss
//! curve, downloads (tables, `.h5ad`, PNG, the results bundle) and the share
//! link of what is on screen.

use std::cell::RefCell;
use std::rc::Rc;

use leptos::prelude::*;
use web_sys::{HtmlAnchorElement, HtmlCanvasElement, Url};

use crate::figures::{Bars, Density, DotPlot, Heatmap, LinePlots, LossCurve, Scores};
use crate::plot::{self, Camera, Renderer};
use crate::protocol::MatrixMeta;
use crate::state::{object_url, ResultView, State};
use tessera_core::bundle::Plot;
use tessera_core::share::{Link, Run, View, MAX_OVERLAY, VERSION};

const CANVAS: u32 = 640;

/// What the uploaded colours were made from: result, layer, column, vmax, overlay.
type Colouring = (u32, Option<String>, Option<String>, u64, Vec<String>);

/// One colour per point for the view's colouring.
fn colours(r: &ResultView, view: &View) -> (Vec<[u8; 4]>, String) {
    let layer = r.layer(view);
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
    let n = r.xy.len() / 2;
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

    // The data's extent, once per result.
    let extent = Memo::new(move |_| state.result.get().map(|r| plot::Extent::of(&r.xy)));
    let camera = move |v: &View| {
        let e = extent
            .get_untracked()
            .unwrap_or_else(|| plot::Extent::of(&[]));
        Camera::fit(&e, CANVAS as f64, CANVAS as f64, v.zoom, v.center)
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
            let (rgba, text) = colours(&r, &v);
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
            rd.draw(&camera(&v), !v.hide_image);
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
        if state.result.get_untracked().is_none() {
            return;
        }
        let v = state.view.get_untracked();
        let cam = camera(&v);
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
        let cam = camera(&v);
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
    // Each analysis words its own (Tangram's is its score, not the loss).
    let final_score = move || {
        result()
            .and_then(|r| crate::pages::final_score(&r.meta.analysis, &r.meta.curves))
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
                        // Each analysis names its curve (per step or per epoch).
                        <h3>{move || result().and_then(|r| r.meta.curves.first().map(|c| c.name.clone())).unwrap_or_default()}</h3>
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
                        <button class="button secondary" data-testid="discard-result" title="Forget this result here: it is kept across reloads until discarded"
                            on:click=move |_| crate::keep::discard(move || state.result.set(None))>"Discard"</button>
                    </div>
                    <h3>"Share"</h3>
                    <input class="share" readonly data-testid="share-link" prop:value=move || link.get().unwrap_or_default() />
                    <small>"The link holds the parameters and this view; the demo and public URLs re-run on open, local files must be opened again."</small>
                </div>
            </div>
            <Show when=move || !lines().is_empty()>
                <LinePlots ms=lines() caption=result().map(|r| crate::pages::lines_caption(&r.meta.analysis)).unwrap_or_default()/>
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
