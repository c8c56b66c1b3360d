//! The op conformance suite inside headless Chromium on WebGPU, run in a
//! dedicated Web Worker as the app's core runs. Built for wasm32 only:
//! `cargo test -p tessera-core --target wasm32-unknown-unknown --test browser_ops`
//! with wasm-bindgen-test-runner and chromedriver (tests/run.sh sets them up).
#![cfg(target_arch = "wasm32")]

use tessera_core::compute::conformance::{assert_conformant, check_device};
use tessera_core::compute::gpu::Gpu;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_dedicated_worker);

#[wasm_bindgen_test]
async fn every_op_matches_the_cpu_oracle_on_webgpu() {
    let gpu = Gpu::new()
        .await
        .expect("WebGPU adapter (chromium needs --enable-unsafe-webgpu)");
    web_sys::console::log_1(&format!("adapter: {}", gpu.adapter()).into());
    let checks = check_device(&gpu).await;
    assert_conformant(&checks);
}
