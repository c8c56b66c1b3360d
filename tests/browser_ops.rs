//! The op conformance suite inside headless Chromium on WebGPU, run in a
//! dedicated Web Worker as the app's core runs. Built for wasm32 only:
//! `cargo test -p tessera-core --target wasm32-unknown-unknown --test browser_ops`
//! with wasm-bindgen-test-runner and chromedriver (tests/run.sh sets them up).
#![cfg(target_arch = "wasm32")]

use tessera_core::compute::conformance::{assert_conformant, check_device_small};
use tessera_core::compute::gpu::Gpu;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_dedicated_worker);

#[wasm_bindgen_test]
async fn every_op_matches_the_cpu_oracle_on_webgpu() {
    let gpu = Gpu::new()
        .await
        .expect("WebGPU adapter (chromium needs --enable-unsafe-webgpu)");
    web_sys::console::log_1(&format!("adapter: {}", gpu.adapter()).into());
    // SwiftShader emulates every launch: the large shapes (2-D grids) run
    // natively on lavapipe in tests/gpu_ops.rs.
    let checks = check_device_small(&gpu).await;
    assert_conformant(&checks);
}

/// A small Tangram fit on WebGPU in the worker gives the CPU's map.
#[wasm_bindgen_test]
async fn tangram_fits_on_webgpu_like_on_the_cpu() {
    use tessera_core::compute::cpu::Cpu;
    use tessera_core::models::numpy_rng::LegacyNormal;
    use tessera_core::models::tangram::fit::{fit, Hyper, Problem};

    let gpu = Gpu::new().await.expect("WebGPU adapter");
    let (n, ns, k) = (24, 17, 9);
    let s: Vec<f32> = (0..n * k).map(|i| ((i * 7) % 11) as f32 * 0.5).collect();
    let g: Vec<f32> = (0..ns * k)
        .map(|i| ((i * 5) % 13) as f32 * 0.3 + 0.1)
        .collect();
    let d: Vec<f64> = (0..ns)
        .map(|j| (j + 1) as f64 / (ns * (ns + 1) / 2) as f64)
        .collect();
    let hp = Hyper {
        num_epochs: 60,
        lambda_d: 1.0,
        lambda_g2: 0.3,
        ..Hyper::default()
    };
    let problem = || Problem {
        s: &s,
        g: &g,
        rows: n,
        spots: ns,
        genes: k,
        density: Some(&d),
        source: None,
        target_count: None,
        init_m: LegacyNormal::new(3).normals_f32(n * ns),
        init_f: None,
        block_rows: Some(10),
        read_gradient: false,
    };
    let a = fit(&Cpu, &problem(), &hp, &mut |_, _, _| {}).await;
    let b = fit(&gpu, &problem(), &hp, &mut |_, _, _| {}).await;
    let max = a
        .mapping
        .iter()
        .zip(&b.mapping)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max);
    assert!(max < 2e-3, "CPU and WebGPU maps differ by {max}");
    let (la, lb) = (a.history.total_loss[59], b.history.total_loss[59]);
    assert!((la - lb).abs() < 1e-3, "final loss {la} vs {lb}");
    assert!(la < a.history.total_loss[0]);
}
