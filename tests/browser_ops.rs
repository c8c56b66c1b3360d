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

/// WebGPU lost in the middle of a RESOLVI fit (the device destroyed, as a
/// browser reclaiming the GPU would): the fit goes on on the CPU from its
/// checkpoint at epoch 10, says so, and ends close to the CPU's own fit.
#[wasm_bindgen_test]
async fn a_fit_survives_losing_webgpu() {
    use tessera_core::compute::cpu::Cpu;
    use tessera_core::compute::Device;
    use tessera_core::demo::{demo_pair, DemoSpec};
    use tessera_core::models::resolvi::fit::{fit, Options};
    use tessera_core::models::resolvi::model::Config;

    // Small: SwiftShader pays for every launch and compiles every kernel.
    let (ds, _) = demo_pair(DemoSpec {
        grid: 8,
        n_genes: 20,
        ..DemoSpec::default()
    });
    let o = Options {
        batch_key: None,
        labels_key: None,
        unlabeled: "unknown".into(),
        min_counts: 0.0,
        config: Config {
            epochs: 12,
            batch_size: 64,
            n_hidden: 8,
            n_hidden_encoder: 16,
            n_layers: 1,
            mixture_k: 5,
            particles: 1,
            ..Config::default()
        },
    };
    let (cpu, _) = fit(&Cpu, "demo", &ds, &o, &mut |_, _, _| true)
        .await
        .unwrap();
    let gpu = Gpu::new().await.expect("WebGPU adapter");
    let (got, _) = fit(&gpu, "demo", &ds, &o, &mut |e, _, _| {
        if e == 11 {
            gpu.destroy();
        }
        true
    })
    .await
    .unwrap();
    assert!(gpu.lost().is_some());
    assert!(
        got.notes
            .iter()
            .any(|n| n.contains("resumed on the CPU from its checkpoint at epoch 10")),
        "{:?}",
        got.notes
    );
    assert_eq!(got.history.loss.len(), 12);
    let f = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<_>>();
    let r = tessera_core::models::pearson(&f(&got.outputs.fractions), &f(&cpu.outputs.fractions));
    web_sys::console::log_1(
        &format!("RESOLVI on WebGPU lost at epoch 11, resumed on the CPU: fractions r = {r:.5} with the CPU's fit").into(),
    );
    assert!(r > 0.99, "fractions r = {r}");
}
