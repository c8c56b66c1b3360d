//! The last result survives a reload: its bundle is kept in the browser's
//! Cache Storage until the user discards it (or a newer result replaces
//! it), and the page reopens it at start when no share link says otherwise.
//! So does a running fit's latest checkpoint, under the identity of its run
//! (inputs and settings): a run stopped, or lost with its tab, goes on from
//! it when the same run is started again.

use std::cell::Cell;

use js_sys::{Array, Uint8Array};
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{Cache, Response};

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

/// Keeps `bytes` as the checkpoint of `run` (one run's only: it replaces
/// any other run's), then calls `then` once it is stored.
pub fn store_checkpoint(run: &str, bytes: &[u8], then: impl FnOnce() + 'static) {
    let generation = GENERATION.get();
    let mut body = (run.len() as u32).to_le_bytes().to_vec();
    body.extend_from_slice(run.as_bytes());
    body.extend_from_slice(bytes);
    wasm_bindgen_futures::spawn_local(async move {
        let Some(c) = cache().await else { return };
        if GENERATION.get() != generation {
            return;
        }
        if let Ok(resp) = Response::new_with_opt_u8_array(Some(&mut body)) {
            if JsFuture::from(c.put_with_str(CHECKPOINT, &resp))
                .await
                .is_ok()
            {
                then();
            }
        }
    });
}

/// The kept checkpoint's bytes if it is `run`'s.
pub async fn checkpoint(run: &str) -> Option<Vec<u8>> {
    let c = cache().await?;
    let hit = JsFuture::from(c.match_with_str(CHECKPOINT)).await.ok()?;
    let resp: Response = hit.dyn_into().ok()?;
    let buf = JsFuture::from(resp.array_buffer().ok()?).await.ok()?;
    let body = Uint8Array::new(&buf).to_vec();
    let (len, rest) = body.split_first_chunk::<4>()?;
    let len = u32::from_le_bytes(*len) as usize;
    (rest.get(..len)? == run.as_bytes()).then(|| rest[len..].to_vec())
}

/// Forgets the kept checkpoint (its run finished or failed).
pub fn forget_checkpoint() {
    GENERATION.set(GENERATION.get().wrapping_add(1));
    wasm_bindgen_futures::spawn_local(async {
        if let Some(c) = cache().await {
            let _ = JsFuture::from(c.delete_with_str(CHECKPOINT)).await;
        }
    });
}
