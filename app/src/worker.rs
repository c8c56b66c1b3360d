//! The dedicated Web Worker: reads dropped files with tessera-core, answers
//! with dataset cards, and runs analyses on WebGPU (the CPU device when the
//! browser has none). Everything that parses or computes runs here, never on
//! the page's thread. The page stops a run by ending this worker.

use js_sys::{Array, Float32Array, Object, Reflect, Uint8Array};
use tessera_core::analysis::{Data, Input, Slot};
use tessera_core::bundle::{self, Results};
use tessera_core::compute::cpu::Cpu;
use tessera_core::compute::gpu::Gpu;
use tessera_core::compute::Device;
use tessera_core::data::Dataset;
use tessera_core::io::{self, FileSet, Loaded};
use tessera_core::models::checkpoint::{self, Checkpoint, Kept};
use tessera_core::models::multiomics;
use tessera_core::session::{self, Opened};
use tessera_core::share::{DeviceChoice, Run, Source};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{DedicatedWorkerGlobalScope, File, MessageEvent, Response};

use crate::protocol::{
    from_js, preview, to_js, Card, CurveMeta, ImageMeta, LayerMeta, MatrixMeta, Outcome,
    PreviewMeta, Reply, Request, ResultMeta,
};

/// Installs the message handler and tells the page the worker is ready.
pub fn start() {
    let scope: DedicatedWorkerGlobalScope = js_sys::global().unchecked_into();
    // A panic ends this wasm instance: tell the page, which restarts the
    // worker, rather than leave its request waiting for ever.
    let crashed = scope.clone();
    std::panic::set_hook(Box::new(move |info| {
        console_error_panic_hook::hook(info);
        post(
            &crashed,
            &Reply::Crashed {
                message: info.to_string(),
            },
            vec![],
        );
    }));
    let reply_to = scope.clone();
    let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |ev: MessageEvent| {
        let scope = reply_to.clone();
        wasm_bindgen_futures::spawn_local(async move {
            let (reply, buffers) = handle(&scope, ev.data()).await;
            post(&scope, &reply, buffers);
        });
    });
    scope.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    on_message.forget();
    post(&scope, &Reply::Ready, vec![]);
}

fn post(scope: &DedicatedWorkerGlobalScope, reply: &Reply, buffers: Vec<JsValue>) {
    let msg = Object::new();
    // A reply that cannot be encoded still answers its request, as an error.
    let value = match to_js(reply) {
        Ok(v) => v,
        Err(error) => match to_js(&Reply::Failed {
            id: reply.id(),
            error,
        }) {
            Ok(v) => v,
            Err(e) => {
                web_sys::console::error_1(&format!("tessera worker: {e}").into());
                return;
            }
        },
    };
    let list: Array = buffers.into_iter().collect();
    let _ = Reflect::set(&msg, &"msg".into(), &value);
    let _ = Reflect::set(&msg, &"buffers".into(), &list);
    if scope.post_message_with_transfer(&msg, &list).is_err() {
        web_sys::console::error_1(&"tessera worker: could not post a reply".into());
    }
}

fn files_of(data: &JsValue, key: &str) -> Vec<File> {
    Reflect::get(data, &key.into())
        .ok()
        .filter(Array::is_array)
        .map(|v| Array::from(&v).iter().map(|f| f.unchecked_into()).collect())
        .unwrap_or_default()
}

async fn read_files(files: &[File]) -> Result<FileSet, String> {
    let mut set = FileSet::default();
    for file in files {
        session::admit(&file.name(), file.size() as u64)?;
        let buf = JsFuture::from(file.array_buffer())
            .await
            .map_err(|_| format!("{}: the browser could not read this file", file.name()))?;
        set.push(&file.name(), Uint8Array::new(&buf).to_vec());
    }
    Ok(set)
}

/// The last path segment of a URL, without query or fragment.
fn url_name(url: &str) -> String {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    path.trim_end_matches('/')
        .rsplit('/')
        .next()
        .filter(|s| !s.is_empty() && !s.contains(':'))
        .unwrap_or("download")
        .to_string()
}

async fn fetch(scope: &DedicatedWorkerGlobalScope, url: &str) -> Result<FileSet, String> {
    tessera_core::share::check_url("the address", url)?;
    let fail = |why: String| format!("{url}: could not be fetched ({why})");
    let resp: Response = JsFuture::from(scope.fetch_with_str(url))
        .await
        .map_err(|e| {
            fail(
                e.as_string()
                    .unwrap_or_else(|| "network error or CORS".into()),
            )
        })?
        .unchecked_into();
    if !resp.ok() {
        return Err(fail(format!(
            "HTTP {} {}",
            resp.status(),
            resp.status_text()
        )));
    }
    let declared = resp
        .headers()
        .get("content-length")
        .ok()
        .flatten()
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(n) = declared {
        session::admit(&url_name(url), n)?;
    }
    let buf = JsFuture::from(resp.array_buffer().map_err(|_| fail("no body".into()))?)
        .await
        .map_err(|_| fail("the download was cut short".into()))?;
    let body = Uint8Array::new(&buf);
    session::admit(&url_name(url), body.length() as u64)?;
    Ok(FileSet::single(&url_name(url), body.to_vec()))
}

async fn handle(scope: &DedicatedWorkerGlobalScope, data: JsValue) -> (Reply, Vec<JsValue>) {
    let request: Option<Request> = Reflect::get(&data, &"msg".into())
        .ok()
        .and_then(|m| from_js(m).ok());
    let mut buffers = Vec::new();
    match request {
        Some(Request::Open { id }) => {
            let mut outcomes = Vec::new();
            let mut set = FileSet::default();
            for f in files_of(&data, "files") {
                match read_files(std::slice::from_ref(&f)).await {
                    Ok(one) => set.files.extend(one.files),
                    Err(e) => outcomes.push(Outcome::Error(e)),
                }
            }
            for input in io::split_inputs(set) {
                outcomes.push(open(input, None, &mut buffers));
            }
            (Reply::Opened { id, outcomes }, buffers)
        }
        Some(Request::OpenUrl { id, url }) => {
            let outcome = match fetch(scope, &url).await {
                Ok(set) => open(set, Some(url), &mut buffers),
                Err(e) => Outcome::Error(e),
            };
            (
                Reply::Opened {
                    id,
                    outcomes: vec![outcome],
                },
                buffers,
            )
        }
        Some(Request::Demo { id }) => {
            let outcomes = demo_cards(demo_set(false), "Tessera demo tissue", &mut buffers);
            (Reply::Opened { id, outcomes }, buffers)
        }
        Some(Request::DemoMultiomics { id }) => {
            let format = "Tessera multi-omics demo (the preprint's synthetic design)";
            let outcomes = demo_cards(demo_set(true), format, &mut buffers);
            (Reply::Opened { id, outcomes }, buffers)
        }
        Some(Request::Run { id, run }) => match run_analysis(scope, id, &run, &data).await {
            Ok((r, device, seconds)) => match result_meta(r, Some(device), Some(seconds)) {
                Ok((meta, bufs)) => (
                    Reply::Finished {
                        id,
                        result: Box::new(meta),
                    },
                    bufs,
                ),
                Err(error) => (Reply::Failed { id, error }, vec![]),
            },
            Err(error) => (Reply::Failed { id, error }, vec![]),
        },
        None => (
            Reply::Opened {
                id: 0,
                outcomes: vec![Outcome::Error("malformed request to the worker".into())],
            },
            buffers,
        ),
    }
}

fn demo_cards(
    pair: [(Dataset, &str); 2],
    format: &str,
    buffers: &mut Vec<JsValue>,
) -> Vec<Outcome> {
    pair.into_iter()
        .map(|(dataset, name)| {
            let loaded = Loaded {
                dataset,
                format: format.into(),
                source: name.into(),
            };
            let mut c = card(&loaded, buffers);
            c.demo = Some(name.into());
            Outcome::Card(Box::new(c))
        })
        .collect()
}

/// One input: a results bundle, or a dataset card.
fn open(input: FileSet, url: Option<String>, buffers: &mut Vec<JsValue>) -> Outcome {
    let names: Vec<String> = input.files.iter().map(|f| f.path.clone()).collect();
    match session::open(input) {
        Ok(Opened::Bundle(r)) => match result_meta_into(*r, None, None, buffers) {
            Ok(meta) => Outcome::Results(Box::new(meta)),
            Err(e) => Outcome::Error(e),
        },
        Ok(Opened::Dataset(loaded)) => {
            let mut c = card(&loaded, buffers);
            c.files = if url.is_some() { vec![] } else { names };
            c.url = url;
            Outcome::Card(Box::new(c))
        }
        Err(e) => Outcome::Error(e),
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
        files: vec![],
        url: None,
        demo: None,
    }
}

fn bytes_buffer(bytes: &[u8]) -> JsValue {
    Uint8Array::from(bytes).buffer().into()
}

fn result_meta(
    r: Results,
    device: Option<String>,
    seconds: Option<f64>,
) -> Result<(ResultMeta, Vec<JsValue>), String> {
    let mut buffers = Vec::new();
    let meta = result_meta_into(r, device, seconds, &mut buffers)?;
    Ok((meta, buffers))
}

/// Moves a result's arrays into transferable buffers beside its metadata.
fn result_meta_into(
    r: Results,
    device: Option<String>,
    seconds: Option<f64>,
    buffers: &mut Vec<JsValue>,
) -> Result<ResultMeta, String> {
    let bundle = bundle::write(&r).map_err(|e| e.to_string())?;
    let mut push = |b: JsValue| {
        buffers.push(b);
        buffers.len() - 1
    };
    let xy_buffer = push(Float32Array::from(&r.xy[..]).buffer().into());
    let names_buffer = push(bytes_buffer(r.names.join("\n").as_bytes()));
    let layers = r
        .layers
        .iter()
        .map(|l| LayerMeta {
            name: l.name.clone(),
            columns: l.columns.clone(),
            buffer: push(Float32Array::from(&l.values[..]).buffer().into()),
        })
        .collect();
    let files = r
        .files
        .iter()
        .map(|(n, b)| (n.clone(), push(bytes_buffer(b))))
        .collect();
    let bundle_buffer = push(bytes_buffer(&bundle));
    let image = r.image.as_ref().map(|im| ImageMeta {
        width: im.width,
        height: im.height,
        scale: im.scale,
        buffer: push(bytes_buffer(&im.rgba)),
    });
    Ok(ResultMeta {
        analysis: r.analysis.clone(),
        params: r.params.clone(),
        view: r.view.clone(),
        n: r.n_points(),
        xy_buffer,
        names_buffer,
        layers,
        curves: r
            .curves
            .iter()
            .map(|c| CurveMeta {
                name: c.name.clone(),
                values: c.values.clone(),
            })
            .collect(),
        matrices: r
            .matrices
            .iter()
            .map(|m| MatrixMeta {
                name: m.name.clone(),
                rows: m.rows.clone(),
                cols: m.cols.clone(),
                values: m.values.clone(),
                plot: m.plot,
            })
            .collect(),
        files,
        bundle_buffer,
        image,
        device,
        seconds,
    })
}

/// The files the page sends beside a run for each slot.
fn files_key(slot: Slot) -> &'static str {
    match slot {
        Slot::Spatial => "sp_files",
        Slot::Reference => "sc_files",
        Slot::Proteins => "prot_files",
    }
}

/// A demo set, generated whole: the tissue and its reference, or the
/// multi-omics pair, each dataset under the name the analyses' inputs give.
fn demo_set(multi: bool) -> [(Dataset, &'static str); 2] {
    if multi {
        let d = multiomics::demo::generate(&multiomics::demo::BROWSER);
        [
            (d.transcripts, "demo_transcripts"),
            (d.proteins, "demo_proteins"),
        ]
    } else {
        let (spatial, reference) = tessera_core::demo::demo_pair(Default::default());
        [(spatial, "demo_spatial"), (reference, "demo_reference")]
    }
}

/// A demo dataset by name, from the sets generated so far in this run (a
/// set is generated once, whichever of its datasets comes first).
fn demo(name: &str, made: &mut Vec<(Dataset, &'static str)>) -> Result<Dataset, String> {
    if !made.iter().any(|(_, n)| *n == name) {
        let multi = matches!(name, "demo_transcripts" | "demo_proteins");
        if !multi && !matches!(name, "demo_spatial" | "demo_reference") {
            return Err(format!("no demo dataset '{name}'"));
        }
        made.extend(demo_set(multi));
    }
    let at = made
        .iter()
        .position(|(_, n)| *n == name)
        .expect("generated");
    Ok(made.swap_remove(at).0)
}

/// One input of a run, read from wherever it lives.
async fn input(
    scope: &DedicatedWorkerGlobalScope,
    source: &Source,
    data: &JsValue,
    input: &Input,
    demos: &mut Vec<(Dataset, &'static str)>,
) -> Result<(String, Dataset), String> {
    let files_key = files_key(input.slot);
    let read = session::dataset;
    match source {
        Source::Demo => Ok((input.demo.to_string(), demo(input.demo, demos)?)),
        Source::Url { url } => read(fetch(scope, url).await?),
        Source::Local { files } => {
            let got = files_of(data, files_key);
            if got.len() != files.len() {
                return Err(format!(
                    "the page sent {} files for {files_key}, expected {} ({})",
                    got.len(),
                    files.len(),
                    files.join(", ")
                ));
            }
            read(read_files(&got).await?)
        }
    }
}

fn now_ms() -> f64 {
    js_sys::Date::now()
}

/// Reads the run's inputs, picks the device, and runs the analysis through
/// the registry.
async fn run_analysis(
    scope: &DedicatedWorkerGlobalScope,
    id: u32,
    run: &Run,
    data: &JsValue,
) -> Result<(Results, String, f64), String> {
    // Checked before any input is fetched; session::run checks it again.
    run.validate()?;
    let mut notify = |stage: &str, done, total, loss| {
        post(
            scope,
            &Reply::Progress {
                id,
                stage: stage.into(),
                done,
                total,
                loss,
            },
            vec![],
        )
    };
    notify("reading the inputs", 0, 1, None);
    let info = run.params.info();
    let mut inputs = Data::default();
    let mut demos = Vec::new();
    for i in info.inputs {
        let source = run
            .inputs
            .get(i.slot)
            .ok_or_else(|| format!("{} needs the {}", info.name, i.label.to_lowercase()))?;
        let read = input(scope, source, data, i, &mut demos).await?;
        match i.slot {
            Slot::Spatial => inputs.sp = read,
            Slot::Reference => inputs.sc = Some(read),
            Slot::Proteins => inputs.prot = Some(read),
        }
    }
    if info.resumes {
        inputs.kept = kept(scope, id, data);
    }
    let t0 = now_ms();
    let seconds = || (now_ms() - t0) / 1e3;
    // Graph statistics are integer and sparse work: the CPU's.
    let gpu = match (info.gpu, run.device) {
        (true, DeviceChoice::Webgpu) => {
            notify("opening the GPU", 0, 1, None);
            Some(Gpu::new().await)
        }
        _ => None,
    };
    let (r, device) = match gpu {
        None => (
            session::run(&Cpu, run, inputs, &mut notify).await?,
            "CPU".into(),
        ),
        Some(Ok(gpu)) => {
            if gpu.is_software() {
                notice(scope, id, "This browser's WebGPU is a software emulation (no graphics card is in use), so the run will be slow; Device: CPU is faster here for small runs.".into());
            }
            // Said once, as soon as a progress report finds the GPU gone.
            let mut told = false;
            let mut watch = |stage: &str, done, total, loss| {
                if let Some(why) = gpu.lost().filter(|_| !told) {
                    told = true;
                    let then = if info.resumes {
                        "the run goes on on the CPU from its last checkpoint"
                    } else {
                        "this run cannot go on; run it again with Device: CPU"
                    };
                    notice(scope, id, format!("{why}: {then}."));
                }
                notify(stage, done, total, loss)
            };
            let r = session::run(&gpu, run, inputs, &mut watch).await?;
            match gpu.lost() {
                None => (r, format!("WebGPU: {}", gpu.adapter())),
                Some(_) => (
                    r,
                    format!(
                        "WebGPU ({}), then the CPU after the GPU was lost",
                        gpu.adapter()
                    ),
                ),
            }
        }
        Some(Err(e)) => {
            notice(
                scope,
                id,
                format!(
                    "This browser offers no WebGPU ({e}): the run uses the CPU and will be slower."
                ),
            );
            let r = session::run(&Cpu, run, inputs, &mut notify).await?;
            (r, "CPU (no WebGPU)".into())
        }
    };
    Ok((r, device, seconds()))
}

/// A resumable run's checkpoints: the one the page kept from a stopped run
/// of the same inputs and settings, and each new one posted to the page
/// (synchronously, so a CPU fit that never yields still hands them over).
fn kept(scope: &DedicatedWorkerGlobalScope, id: u32, data: &JsValue) -> Kept {
    let stored = Reflect::get(data, &"checkpoint".into())
        .ok()
        .filter(|b| b.is_instance_of::<js_sys::ArrayBuffer>())
        .map(|b| checkpoint::unpack(&Uint8Array::new(&b).to_vec()));
    let (from, finished) = match stored {
        Some(Ok((from, finished))) => {
            let at = from.as_ref().or(finished.last()).map(Checkpoint::at);
            let at = at.unwrap_or_default();
            let text = format!(
                "This run goes on from the checkpoint a stopped run of the same inputs and settings left at {at}."
            );
            notice(scope, id, text);
            (from, finished)
        }
        Some(Err(e)) => {
            notice(
                scope,
                id,
                format!("{e}: the run starts from the beginning."),
            );
            (None, vec![])
        }
        None => (None, vec![]),
    };
    let to = scope.clone();
    let save = move |cp: &Checkpoint, finished: &[Checkpoint]| {
        let reply = Reply::Checkpoint {
            id,
            at: cp.at(),
            buffer: 0,
        };
        post(
            &to,
            &reply,
            vec![bytes_buffer(&checkpoint::pack(cp, finished))],
        );
    };
    Kept::new(from, finished, Some(Box::new(save)))
}

fn notice(scope: &DedicatedWorkerGlobalScope, id: u32, text: String) {
    post(scope, &Reply::Notice { id, text }, vec![]);
}
