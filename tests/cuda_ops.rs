//! Every op on the CUDA device against the CPU oracle, and a fit that runs
//! out of CUDA memory going on on the CPU. Needs `--features cuda`
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

/// A fit on CUDA asked after epoch 30 for memory no GPU has (4 TiB, so the
/// driver answers CUDA_ERROR_OUT_OF_MEMORY through cudarc's error path) goes
/// on on the CPU from its checkpoint at epoch 20, says so, and ends where
/// the CPU's own fit does, to the order of f32 sums.
#[test]
fn a_fit_that_runs_out_of_cuda_memory_goes_on_on_the_cpu() {
    use tessera_core::compute::cpu::Cpu;
    use tessera_core::compute::Device;
    use tessera_core::models::checkpoint::{attempt, Kept};
    use tessera_core::models::nsf::run::{run_kept, Model, Options};
    let cuda = Cuda::new().unwrap_or_else(|e| panic!("{e}"));
    let (ds, _) = tessera_core::demo::demo_pair(Default::default());
    let o = Options {
        model: Model::Nsfh,
        factors: 4,
        inducing: 40,
        epochs: 35,
        ..Options::default()
    };
    let on_cpu = |kept: &mut Kept| {
        pollster::block_on(run_kept(&Cpu, "demo", &ds, &o, &mut |_, _, _| true, kept)).unwrap()
    };
    let cpu = on_cpu(&mut Kept::default());
    let first = attempt(|kept| {
        let mut status = |e: usize, _: usize, _: f64| {
            if e == 30 {
                drop(cuda.zeros(1 << 40));
            }
            true
        };
        pollster::block_on(run_kept(&cuda, "demo", &ds, &o, &mut status, kept))
    });
    let Err(mut resume) = first else {
        panic!("the fit did not run out of CUDA memory");
    };
    assert_eq!(resume.from.as_ref().map(|c| c.epoch), Some(20));
    let why = resume.after.clone().unwrap_or_default();
    assert!(why.contains("OUT_OF_MEMORY"), "{why}");
    let c = on_cpu(&mut resume);
    assert!(
        c.notes
            .iter()
            .any(|n| n.contains("resumed on the CPU from its checkpoint at epoch 20")),
        "{:?}",
        c.notes
    );
    assert_eq!(c.history.loss.len(), cpu.history.loss.len());
    let scale = cpu.factors.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let worst = cpu
        .factors
        .iter()
        .zip(&c.factors)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max);
    eprintln!("NSFH out of CUDA memory after epoch 30, resumed on the CPU: max |diff| {worst:.2e} from the CPU's fit");
    assert!(worst <= 1e-3 * scale, "factors differ by {worst}");
}
