//! The figures results are drawn with, beside the spatial plot: heatmaps,
//! line panels, dot plots, ranked bars, Tangram's training scores,
//! `plot_QC`'s 2-D histogram and the loss curve. Each takes a table, never
//! an analysis: pages pick what to show.

use leptos::prelude::*;

use crate::plot;
use crate::protocol::MatrixMeta;

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

/// A table as a heatmap: diverging around 0 for z-scores (blue to red, as
/// squidpy's `nhood_enrichment` plot), viridis otherwise.
#[component]
pub fn Heatmap(m: MatrixMeta) -> impl IntoView {
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
pub fn LinePlots(ms: Vec<MatrixMeta>, caption: &'static str) -> impl IntoView {
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
            <figcaption>{caption}</figcaption>
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
pub fn DotPlot(m: MatrixMeta) -> impl IntoView {
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
pub fn Bars(m: MatrixMeta) -> impl IntoView {
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
pub fn Scores(m: MatrixMeta) -> impl IntoView {
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
pub fn Density(m: MatrixMeta) -> impl IntoView {
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
