//! The dedicated Web Worker: reads dropped files with tessera-core and answers
//! with dataset cards. Everything that parses or computes runs here, never on
//! the page's thread.

use js_sys::{Array, Float32Array, Object, Reflect, Uint8Array};
use tessera_core::io::{self, FileSet, Loaded, TableOptions};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{DedicatedWorkerGlobalScope, File, MessageEvent};

use crate::protocol::{preview, Card, Outcome, PreviewMeta, Reply, Request};

/// Installs the message handler and tells the page the worker is ready.
pub fn start() {
    console_error_panic_hook::set_once();
    let scope: DedicatedWorkerGlobalScope = js_sys::global().unchecked_into();
    let reply_to = scope.clone();
    let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |ev: MessageEvent| {
        let scope = reply_to.clone();
        wasm_bindgen_futures::spawn_local(async move {
            let (reply, buffers) = handle(ev.data()).await;
            post(&scope, &reply, buffers);
        });
    });
    scope.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    on_message.forget();
    post(&scope, &Reply::Ready, vec![]);
}

fn post(scope: &DedicatedWorkerGlobalScope, reply: &Reply, buffers: Vec<JsValue>) {
    let msg = Object::new();
    let json = serde_json::to_string(reply).unwrap_or_default();
    let list: Array = buffers.into_iter().collect();
    let _ = Reflect::set(&msg, &"json".into(), &json.into());
    let _ = Reflect::set(&msg, &"buffers".into(), &list);
    if scope.post_message_with_transfer(&msg, &list).is_err() {
        web_sys::console::error_1(&"tessera worker: could not post a reply".into());
    }
}

async fn handle(data: JsValue) -> (Reply, Vec<JsValue>) {
    let request: Option<Request> = Reflect::get(&data, &"json".into())
        .ok()
        .and_then(|j| j.as_string())
        .and_then(|j| serde_json::from_str(&j).ok());
    let mut buffers = Vec::new();
    match request {
        Some(Request::Open { id }) => {
            let files: Array = Reflect::get(&data, &"files".into())
                .map(|f| f.unchecked_into())
                .unwrap_or_default();
            let mut set = FileSet::default();
            let mut outcomes = Vec::new();
            for f in files.iter() {
                let file: File = f.unchecked_into();
                match JsFuture::from(file.array_buffer()).await {
                    Ok(buf) => set.push(&file.name(), Uint8Array::new(&buf).to_vec()),
                    Err(_) => outcomes.push(Outcome::Error(format!(
                        "{}: the browser could not read this file",
                        file.name()
                    ))),
                }
            }
            for input in io::split_inputs(set) {
                outcomes.push(match io::read(input, &TableOptions::default()) {
                    Ok(loaded) => Outcome::Card(Box::new(card(&loaded, &mut buffers))),
                    Err(e) => Outcome::Error(e.to_string()),
                });
            }
            (Reply::Opened { id, outcomes }, buffers)
        }
        Some(Request::Demo { id }) => {
            let (spatial, reference) = tessera_core::demo::demo_pair(Default::default());
            let outcomes = [(spatial, "demo_spatial"), (reference, "demo_reference")]
                .into_iter()
                .map(|(dataset, name)| {
                    let loaded = Loaded {
                        dataset,
                        format: "Tessera demo tissue".into(),
                        source: name.into(),
                    };
                    Outcome::Card(Box::new(card(&loaded, &mut buffers)))
                })
                .collect();
            (Reply::Opened { id, outcomes }, buffers)
        }
        None => (
            Reply::Opened {
                id: 0,
                outcomes: vec![Outcome::Error("malformed request to the worker".into())],
            },
            buffers,
        ),
    }
}

fn card(loaded: &Loaded, buffers: &mut Vec<JsValue>) -> Card {
    let preview = preview(&loaded.dataset).map(|(xy, values, value_label)| {
        let n = values.len();
        buffers.push(Float32Array::from(&xy[..]).buffer().into());
        buffers.push(Float32Array::from(&values[..]).buffer().into());
        PreviewMeta {
            n,
            xy_buffer: buffers.len() - 2,
            value_buffer: buffers.len() - 1,
            value_label,
        }
    });
    Card {
        summary: loaded.summary(),
        preview,
    }
}
