//! The last result survives a reload: its bundle is kept in the browser's
//! Cache Storage until the user discards it (or a newer result replaces
//! it), and the page reopens it at start when no share link says otherwise.
//! So do a running fit's latest checkpoint and the results of the fits its
//! run finished before it, under the identity of the run (inputs and
//! settings): a run stopped, or lost with its tab, goes on from them when
//! the same run is started again.

use std::cell::Cell;

use js_sys::{Array, ArrayBuffer, Uint8Array};
use wasm_bindgen::JsCast;
use wasm_bindgen::JsValue;
use wasm_bindgen_futures::JsFuture;
use web_sys::{Blob, Cache, Response};

const CACHE: &str = "tessera-results";
const KEY: &str = "./kept/tessera_results.zip";
const CHECKPOINT: &str = "./kept/checkpoint";
/// The name the reopened bundle is shown under.
pub const NAME: &str = "tessera_results.zip";

async fn cache() -> Option<Cache> {
    let caches = web_sys::window()?.caches().ok()?;
    JsFuture::from(caches.open(CACHE))
        .await
        .ok()?
        .dyn_into()
        .ok()
}

/// Keeps a result's bundle (in the background; a full disk only loses it).
pub fn store(bytes: Vec<u8>) {
    wasm_bindgen_futures::spawn_local(async move {
        let Some(c) = cache().await else { return };
        let mut bytes = bytes;
        if let Ok(resp) = Response::new_with_opt_u8_array(Some(&mut bytes)) {
            let _ = JsFuture::from(c.put_with_str(KEY, &resp)).await;
        }
    });
}

/// Forgets the kept result, then calls `then` (so the page clears only
/// once a reload can no longer bring it back).
pub fn discard(then: impl FnOnce() + 'static) {
    wasm_bindgen_futures::spawn_local(async move {
        if let Some(c) = cache().await {
            let _ = JsFuture::from(c.delete_with_str(KEY)).await;
        }
        then();
    });
}

/// The kept result as a file to open, if there is one.
pub async fn load() -> Option<web_sys::File> {
    let c = cache().await?;
    let hit = JsFuture::from(c.match_with_str(KEY)).await.ok()?;
    let resp: Response = hit.dyn_into().ok()?;
    let buf = JsFuture::from(resp.array_buffer().ok()?).await.ok()?;
    let parts: Array = [Uint8Array::new(&buf)].iter().collect();
    web_sys::File::new_with_u8_array_sequence(&parts, NAME).ok()
}

thread_local! {
    /// Bumped by every forget: a store begun before it is dropped, so a
    /// finished run's checkpoint does not come back after it.
    static GENERATION: Cell<u32> = const { Cell::new(0) };
}

/// Keeps `bytes` (an ArrayBuffer) as the checkpoint of `run` (one run's
/// only: it replaces any other run's), then calls `then` once it is stored.
/// The bytes go to storage as they came from the worker, never copied into
/// the page's wasm memory, which does not shrink again.
pub fn store_checkpoint(run: &str, bytes: JsValue, then: impl FnOnce() + 'static) {
    let generation = GENERATION.get();
    let head = key_head(run);
    wasm_bindgen_futures::spawn_local(async move {
        let Some(c) = cache().await else { return };
        if GENERATION.get() != generation {
            return;
        }
        let parts: Array = [JsValue::from(Uint8Array::from(&head[..])), bytes]
            .iter()
            .collect();
        let Ok(blob) = Blob::new_with_u8_array_sequence(&parts) else {
            return;
        };
        let Ok(resp) = Response::new_with_opt_blob(Some(&blob)) else {
            return;
        };
        if JsFuture::from(c.put_with_str(CHECKPOINT, &resp))
            .await
            .is_ok()
        {
            then();
        }
    });
}

/// The stored body's start: the run's key and its length.
fn key_head(run: &str) -> Vec<u8> {
    let mut head = (run.len() as u32).to_le_bytes().to_vec();
    head.extend_from_slice(run.as_bytes());
    head
}

/// The kept checkpoint's body and where its bytes start, if it is `run`'s.
async fn kept_body(c: &Cache, run: &str) -> Option<(ArrayBuffer, u32)> {
    let hit = JsFuture::from(c.match_with_str(CHECKPOINT)).await.ok()?;
    let resp: Response = hit.dyn_into().ok()?;
    let buf: ArrayBuffer = JsFuture::from(resp.array_buffer().ok()?)
        .await
        .ok()?
        .dyn_into()
        .ok()?;
    let head = key_head(run);
    let n = head.len() as u32;
    let stored = (buf.byte_length() >= n)
        .then(|| Uint8Array::new_with_byte_offset_and_length(&buf, 0, n).to_vec())?;
    (stored == head).then_some((buf, n))
}

/// The kept checkpoint's bytes (an ArrayBuffer to hand the worker) if it
/// is `run`'s.
pub async fn checkpoint(run: &str) -> Option<ArrayBuffer> {
    let c = cache().await?;
    let (buf, start) = kept_body(&c, run).await?;
    Some(buf.slice(start))
}

/// Forgets `run`'s kept checkpoint (the run finished or failed); another
/// run's stays.
pub fn forget_checkpoint(run: String) {
    GENERATION.set(GENERATION.get().wrapping_add(1));
    wasm_bindgen_futures::spawn_local(async move {
        let Some(c) = cache().await else { return };
        if kept_body(&c, &run).await.is_some() {
            let _ = JsFuture::from(c.delete_with_str(CHECKPOINT)).await;
        }
    });
}
