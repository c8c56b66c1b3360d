//! A dataset card: shape, raw-count check, columns, keys, images, and a
//! thumbnail of the spots.

use leptos::prelude::*;
use web_sys::HtmlCanvasElement;

use crate::plot::{self, Camera, Extent};

use crate::state::CardView;
use tessera_core::data::Summary;

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
pub fn DatasetCard(view: CardView) -> impl IntoView {
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
            <span class="card-key">"#" {view.key}</span>
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

/// Scatter of the spots, y downwards as in the tissue image, drawn by the
/// spatial plot's Canvas 2D path (a thumbnail needs no WebGPU).
fn draw(canvas: &HtmlCanvasElement, xy: &[f32], values: &[f32]) {
    let (vmin, vmax) = values
        .iter()
        .fold((f32::MAX, f32::MIN), |(a, b), &v| (a.min(v), b.max(v)));
    let rgba: Vec<[u8; 4]> = values
        .iter()
        .map(|&v| {
            plot::viridis(if vmax > vmin {
                (v - vmin) / (vmax - vmin)
            } else {
                0.6
            })
        })
        .collect();
    let (w, h) = (canvas.width() as f64, canvas.height() as f64);
    let mut cam = Camera::fit(&Extent::of(xy), w, h, 1.0, None);
    // Small squares read better than touching discs at thumbnail size.
    cam.radius_px = cam.radius_px.min(2.0);
    plot::draw_2d(canvas, xy, &rgba, &cam, None);
}
