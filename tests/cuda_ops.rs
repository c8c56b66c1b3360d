//! Every op on the CUDA device against the CPU oracle. Needs `--features cuda`
//! and an NVIDIA GPU with its driver: run it on a GPU machine with
//! `cargo test -p tessera-core --features cuda --test cuda_ops`. Without a
//! driver it fails with the reason; it never skips.

use tessera_core::compute::conformance::{assert_conformant, check_device};
use tessera_core::compute::cuda::Cuda;

#[test]
fn every_op_matches_the_cpu_oracle_on_cuda() {
    let cuda = Cuda::new().unwrap_or_else(|e| panic!("{e}"));
    let checks = pollster::block_on(check_device(&cuda));
    assert_conformant(&checks);
}
