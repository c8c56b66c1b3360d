//! Every op on the wgpu device against the CPU oracle. In CI the adapter is
//! lavapipe (Mesa's CPU Vulkan); no adapter is a failure, never a skip.

use tessera_core::compute::conformance::{assert_conformant, check_device};
use tessera_core::compute::gpu::Gpu;

#[test]
fn every_op_matches_the_cpu_oracle_on_wgpu() {
    let gpu = pollster::block_on(Gpu::new()).unwrap_or_else(|e| {
        panic!(
            "{e}\nGPU tests need an adapter: `apt-get install mesa-vulkan-drivers` gives lavapipe"
        )
    });
    eprintln!("adapter: {}", gpu.adapter());
    let checks = pollster::block_on(check_device(&gpu));
    assert_conformant(&checks);
}

#[test]
fn cpu_passes_its_own_conformance_suite() {
    // Guards the suite itself: zero error everywhere against itself.
    let checks = pollster::block_on(check_device(&tessera_core::compute::cpu::Cpu));
    assert!(
        checks.iter().all(|c| c.err == 0.0),
        "{:?}",
        checks.iter().find(|c| c.err != 0.0)
    );
}
