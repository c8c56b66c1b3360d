//! The plot's frame-rate benchmark, opened as `#bench=plot`: random points
//! at several sizes, each redrawn with a moving camera for a few seconds of
//! animation frames. Frames per second is what a user sees while panning;
//! the smallest size is the baseline the others are compared with. The
//! result is written to `<pre data-testid="bench-result">` as text.

use std::cell::RefCell;
use std::rc::Rc;

use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::HtmlCanvasElement;

use crate::plot::{viridis, Camera, Extent, Renderer};

const SIZES: [usize; 3] = [10_000, 100_000, 1_000_000];
const SECONDS: f64 = 3.0;

/// Starts the benchmark when the address asks for it; true if it did.
pub fn start_if_asked() -> bool {
    let hash = web_sys::window()
        .and_then(|w| w.location().hash().ok())
        .unwrap_or_default();
    if hash != "#bench=plot" {
        return false;
    }
    wasm_bindgen_futures::spawn_local(async {
        let text = match run().await {
            Ok(t) => t,
            Err(e) => format!("benchmark failed: {e}"),
        };
        show(&text);
    });
    true
}

fn show(text: &str) {
    let Some(doc) = web_sys::window().and_then(|w| w.document()) else {
        return;
    };
    if let Ok(pre) = doc.create_element("pre") {
        let _ = pre.set_attribute("data-testid", "bench-result");
        pre.set_text_content(Some(text));
        if let Some(body) = doc.body() {
            let _ = body.append_child(&pre);
        }
    }
}

/// n points spread over a 1000 x 1000 square (a fixed LCG: the same every run).
fn points(n: usize) -> (Vec<f32>, Vec<[u8; 4]>) {
    let mut s: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        s = s
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (s >> 40) as f32 / (1u64 << 24) as f32
    };
    let xy: Vec<f32> = (0..2 * n).map(|_| next() * 1000.0).collect();
    let rgba = xy.chunks(2).map(|p| viridis(p[0] / 1000.0)).collect();
    (xy, rgba)
}

async fn frame() -> f64 {
    let (tx, rx) = futures_channel::oneshot::channel::<f64>();
    let cb = Closure::once(move |t: f64| {
        let _ = tx.send(t);
    });
    if let Some(w) = web_sys::window() {
        let _ = w.request_animation_frame(cb.as_ref().unchecked_ref());
    }
    rx.await.unwrap_or(0.0)
}

async fn run() -> Result<String, String> {
    let doc = web_sys::window()
        .and_then(|w| w.document())
        .ok_or("no document")?;
    let canvas: HtmlCanvasElement = doc
        .create_element("canvas")
        .map_err(|_| "no canvas")?
        .dyn_into()
        .map_err(|_| "no canvas")?;
    canvas.set_width(640);
    canvas.set_height(640);
    let _ = canvas.set_attribute("data-testid", "bench-canvas");
    doc.body()
        .ok_or("no body")?
        .append_child(&canvas)
        .map_err(|_| "no body")?;
    let (renderer, why) = Renderer::new(canvas).await;
    let renderer = Rc::new(RefCell::new(renderer));
    let mut out = format!(
        "plot benchmark: {} ({SECONDS} s of animation frames per size, camera moving every frame)\n",
        why.map_or("WebGPU".to_string(), |e| format!("Canvas 2D: {e}"))
    );
    let mut base = None;
    for n in SIZES {
        let (xy, rgba) = points(n);
        let extent = Extent::of(&xy);
        let t0 = js_sys::Date::now();
        renderer.borrow_mut().set_points(&xy, &rgba);
        let upload = js_sys::Date::now() - t0;
        let start = frame().await;
        let mut frames = 0u32;
        let mut now = start;
        while now - start < SECONDS * 1e3 {
            let zoom = 1.0 + 0.5 * (frames as f64 * 0.1).sin();
            renderer
                .borrow()
                .draw(&Camera::fit(&extent, 640.0, 640.0, zoom, None), false);
            frames += 1;
            now = frame().await;
        }
        let fps = frames as f64 / ((now - start) / 1e3);
        let ratio = base.map_or("baseline".to_string(), |b: f64| {
            format!("{:.2}x the baseline's frame time", b / fps)
        });
        base.get_or_insert(fps);
        out.push_str(&format!(
            "{n:>9} points: upload {upload:.0} ms, {frames} frames, {fps:.1} frames/s ({:.1} ms each), {ratio}\n",
            1e3 / fps
        ));
    }
    Ok(out)
}
