//! `--device cpu|gpu|cuda` (or automatic: CUDA, then wgpu, then the CPU).

use tessera_core::compute::{cpu::Cpu, gpu::Gpu};
use tessera_core::io;

pub enum Dev {
    Cpu(Cpu),
    Gpu(Box<Gpu>),
    #[cfg(feature = "cuda")]
    Cuda(Box<tessera_core::compute::cuda::Cuda>),
}

/// Runs `$body` with `$d` bound to the opened device, whatever its type.
/// A CUDA failure (cudarc's errors panic, running out of memory among them)
/// ends the command with its reason. With `$kept`, the body is a fit that
/// checkpoints into `$kept` (`&mut Kept`): after a CUDA failure it goes on on
/// the CPU from its last checkpoint, as a fit that loses its wgpu device does.
macro_rules! on_device {
    ($dev:expr, |$d:ident| $body:expr) => {
        match $dev {
            $crate::device::Dev::Cpu($d) => $body,
            $crate::device::Dev::Gpu($d) => {
                let $d = &**$d;
                let out = $body;
                $crate::device::after_gpu($d);
                out
            }
            #[cfg(feature = "cuda")]
            $crate::device::Dev::Cuda($d) => {
                let $d = &**$d;
                match tessera_core::io::caught(|| $body) {
                    Ok(out) => out,
                    Err(why) => $crate::device::cuda_failed(&why),
                }
            }
        }
    };
    ($dev:expr, $kept:ident, |$d:ident| $body:expr) => {
        match $dev {
            $crate::device::Dev::Cpu($d) => {
                let $kept = &mut tessera_core::models::checkpoint::Kept::default();
                $body
            }
            $crate::device::Dev::Gpu($d) => {
                let $d = &**$d;
                let $kept = &mut tessera_core::models::checkpoint::Kept::default();
                let out = $body;
                $crate::device::after_gpu($d);
                out
            }
            #[cfg(feature = "cuda")]
            $crate::device::Dev::Cuda(cuda) => {
                let cuda = &**cuda;
                match tessera_core::models::checkpoint::attempt(|$kept| {
                    let $d = cuda;
                    $body
                }) {
                    Ok(out) => out,
                    Err(mut resume) => {
                        let $d = &tessera_core::compute::cpu::Cpu;
                        let $kept = &mut *resume;
                        $body
                    }
                }
            }
        }
    };
}
pub(crate) use on_device;

/// A GPU lost (or out of memory) during a command: unless its fit moved to
/// the CPU from a checkpoint (NSF, RESOLVI, cell2location), nothing it
/// computed is kept.
pub fn after_gpu(g: &Gpu) {
    use tessera_core::compute::Device;
    if let Some(why) = g.lost() {
        if !tessera_core::models::checkpoint::moved() {
            eprintln!("error: {why}; this command cannot go on on the CPU mid-run: run it again with --device cpu");
            std::process::exit(1);
        }
    }
}

/// A CUDA failure in a command that cannot go on on the CPU.
#[cfg(feature = "cuda")]
pub fn cuda_failed(why: &str) -> ! {
    eprintln!("error: {why}; this command cannot go on on the CPU mid-run: run it again with --device cpu");
    std::process::exit(1);
}

#[cfg(feature = "cuda")]
fn cuda() -> Result<Dev, String> {
    Ok(Dev::Cuda(Box::new(
        tessera_core::compute::cuda::Cuda::new()?
    )))
}

#[cfg(not(feature = "cuda"))]
fn cuda() -> Result<Dev, String> {
    Err("this tessera was built without CUDA: cargo build --release --features cli,cuda".into())
}

fn gpu() -> Result<Dev, String> {
    Ok(Dev::Gpu(Box::new(pollster::block_on(Gpu::new())?)))
}

pub fn open(name: Option<&str>) -> Result<Dev, io::Error> {
    let fail = |m: String| io::Error::new("tessera", "--device", m);
    match name.unwrap_or("auto") {
        "cpu" => Ok(Dev::Cpu(Cpu)),
        "gpu" => gpu().map_err(fail),
        "cuda" => cuda().map_err(fail),
        "auto" => Ok(match cuda().or_else(|_| gpu()) {
            // A CPU-emulated GPU (lavapipe, SwiftShader) is slower than the
            // CPU device on the same cores.
            Ok(d) if d.is_software_gpu() => {
                eprintln!(
                    "note: the only GPU is emulated on the CPU ({}); using the CPU device, which is faster",
                    d.name()
                );
                Dev::Cpu(Cpu)
            }
            Ok(d) => d,
            Err(e) => {
                eprintln!("note: {e}; using the CPU");
                Dev::Cpu(Cpu)
            }
        }),
        other => Err(fail(format!(
            "unknown device {other:?}: expected cpu, gpu, cuda or auto"
        ))),
    }
}

impl Dev {
    /// A fit on it that fails goes on on the CPU from the start of a
    /// checkpoint interval, with its inputs a second time.
    pub fn is_cuda(&self) -> bool {
        #[cfg(feature = "cuda")]
        if let Dev::Cuda(_) = self {
            return true;
        }
        false
    }

    /// CPU-emulated GPUs time nothing useful.
    pub fn is_software_gpu(&self) -> bool {
        matches!(self, Dev::Gpu(g) if g.is_software())
    }

    pub fn name(&self) -> String {
        use tessera_core::compute::Device;
        on_device!(self, |d| d.name())
    }
}

/// The devices a benchmark times: those named, or the CPU and the best
/// other one (a software GPU skipped unless named); each device once.
pub fn bench_devices(named: &[String]) -> Result<Vec<Dev>, io::Error> {
    let names: Vec<String> = if named.is_empty() {
        vec!["cpu".into(), "auto".into()]
    } else {
        named.to_vec()
    };
    let mut out: Vec<Dev> = vec![];
    for name in &names {
        let dev = open(Some(name))?;
        if out.iter().any(|d| d.name() == dev.name()) {
            continue;
        }
        if named.is_empty() && dev.is_software_gpu() {
            eprintln!(
                "note: skipping {} (a software GPU; name it with --device to time it anyway)",
                dev.name()
            );
            continue;
        }
        out.push(dev);
    }
    Ok(out)
}
