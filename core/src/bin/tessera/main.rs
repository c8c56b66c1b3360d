//! `tessera`: the native command line (inspect, convert, map, benchmark).

mod bench_cell2location;
mod bench_nsf;
mod bench_resolvi;
mod bench_spatial;
mod bench_tangram;
mod bench_tutorial;
mod cell2location;
mod device;
mod multiomics;
mod nsf;
mod progress;
mod resolvi;
mod rss;
mod run;
mod simulate;
mod spatial;
mod tangram;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tessera_core::io::{self, FileSet, TableOptions};

#[derive(Parser)]
#[command(
    name = "tessera",
    version,
    about = "Spatial-omics workbench: inspect, convert and analyse datasets"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone, Default)]
pub struct TableArgs {
    /// Cell id column of a cell table
    #[arg(long)]
    id_col: Option<String>,
    /// x coordinate column of a cell table
    #[arg(long, requires = "y_col")]
    x_col: Option<String>,
    /// y coordinate column of a cell table
    #[arg(long, requires = "x_col")]
    y_col: Option<String>,
    /// Comma-separated feature columns (everything else is metadata)
    #[arg(long, value_delimiter = ',')]
    features: Option<Vec<String>>,
    /// Comma-separated numeric columns to keep as metadata, not features
    #[arg(long, value_delimiter = ',')]
    metadata: Option<Vec<String>>,
}

impl TableArgs {
    fn options(&self) -> TableOptions {
        TableOptions {
            id_column: self.id_col.clone(),
            x_column: self.x_col.clone(),
            y_column: self.y_col.clone(),
            features: self.features.clone(),
            metadata: self.metadata.clone(),
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Describe an .h5ad, a Space Ranger folder or .zip, a 10x .h5, or cell tables
    Info {
        /// One input, or several tables that describe the same cells
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Print JSON instead of text
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        table: TableArgs,
    },
    /// Convert any readable input to .h5ad
    Convert {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Output .h5ad path
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        table: TableArgs,
    },
    /// Benchmark the compute layer: one row per op and shape
    Bench {
        #[command(subcommand)]
        what: BenchWhat,
    },
    /// cell2location: reference signatures, spatial mapping
    Cell2location {
        #[command(subcommand)]
        what: cell2location::Cell2location,
    },
    /// Simulated data with known truth, for benchmarking the models
    Simulate {
        #[command(subcommand)]
        what: simulate::Simulate,
    },
    /// Joint transcript + protein factorisation, factor annotation, niches and co-localization
    Multiomics(Box<multiomics::Args>),
    /// Nonnegative spatial factorization (Townes & Engelhardt): NSF, NSFH, PNMF and RSF
    Nsf(Box<nsf::Args>),
    /// Correct segmentation spill-over in single-cell spatial data (RESOLVI): corrected expression, latent space, fractions, labels
    Resolvi(Box<resolvi::Args>),
    /// squidpy-class spatial statistics: neighbour graphs, enrichment, co-occurrence, autocorrelation, niches
    Spatial {
        #[command(subcommand)]
        what: spatial::Spatial,
    },
    /// Map single cells onto space (Tangram): cells, clusters or constrained mode
    Tangram(Box<tangram::TangramArgs>),
    /// Run any analysis of the page from a share link or its parameters, on local files
    Run(Box<run::Args>),
    /// Write Tessera's synthetic demo pair (spatial + reference) as .h5ad
    Demo {
        /// Output folder
        #[arg(long, default_value = ".")]
        out: PathBuf,
    },
}

#[derive(Subcommand)]
enum BenchWhat {
    /// Median time, throughput and error vs the CPU oracle of every op
    Ops {
        /// cpu, gpu or cuda (default: the best available)
        #[arg(long)]
        device: Option<String>,
        /// Print a JSON array instead of a table
        #[arg(long)]
        json: bool,
        /// Small shapes (seconds instead of minutes)
        #[arg(long)]
        quick: bool,
        /// Also time the CPU on the shapes it can afford and print speed-ups
        #[arg(long)]
        baseline: bool,
    },
    /// Tangram's fit (clusters and cells mode) on the largest reference pair, per device
    Tangram {
        /// Devices to time, repeatable (default: cpu and the best other one)
        #[arg(long)]
        device: Vec<String>,
        /// The data folder (default: $TESSERA_DATA, else ../shared/data)
        #[arg(long)]
        data: Option<PathBuf>,
        /// Epochs per fit (the reference ran 1000; ratios are per epoch)
        #[arg(long, default_value_t = 1000)]
        epochs: usize,
        /// Print a JSON array instead of a table
        #[arg(long)]
        json: bool,
    },
    /// cell2location's spatial model: steps/s at the reference run's and the lymph node's size
    Cell2location {
        /// Devices to time, repeatable (default: cpu and the best other one)
        #[arg(long)]
        device: Vec<String>,
        /// The data folder (default: $TESSERA_DATA, else ../shared/data)
        #[arg(long)]
        data: Option<PathBuf>,
        /// Steps at the reference run's size (313 x 124 x 17)
        #[arg(long, default_value_t = 300)]
        steps: usize,
        /// Steps at the lymph node's size (4,035 x 10,217 x 34)
        #[arg(long, default_value_t = 5)]
        lymph_steps: usize,
        /// A tenth of the lymph node's genes (a smoke test)
        #[arg(long)]
        quick: bool,
        /// Print a JSON array instead of a table
        #[arg(long)]
        json: bool,
        /// reference (the two sizes above) or tutorial: both fits of the
        /// lymph-node tutorial at full size on a generated pair, per epoch
        /// and per step, with peak memory and the ratio to this machine's floor
        #[arg(long, default_value = "reference")]
        size: String,
        /// Regression epochs timed at --size tutorial
        #[arg(long, default_value_t = 3)]
        epochs: usize,
    },
    /// RESOLVI on the Xenium mouse brain set: seconds per epoch, the projected 50 epochs, peak memory, ratio to the GEMM floor; a memory row on the set tiled 4 times
    Resolvi {
        /// Devices to time, repeatable (default: cpu and the best other one)
        #[arg(long)]
        device: Vec<String>,
        /// The data folder (default: $TESSERA_DATA, else ../shared/data)
        #[arg(long)]
        data: Option<PathBuf>,
        /// Epochs timed on the set
        #[arg(long, default_value_t = 3)]
        epochs: usize,
        /// No tiled memory row
        #[arg(long)]
        quick: bool,
        /// Print a JSON array instead of a table
        #[arg(long)]
        json: bool,
    },
    /// NSF, NSFH and PNMF at the simulation's and the Visium CytAssist set's size: epochs/s, time to convergence, peak memory, ratio to the GEMM floor
    Nsf {
        /// Devices to time, repeatable (default: cpu and the best other one)
        #[arg(long)]
        device: Vec<String>,
        /// The data folder (default: $TESSERA_DATA, else ../shared/data)
        #[arg(long)]
        data: Option<PathBuf>,
        /// The most epochs per fit (fits stop at convergence)
        #[arg(long, default_value_t = 2000)]
        epochs: usize,
        /// 20 epochs per fit and no M = 3,000 row (a smoke test)
        #[arg(long)]
        quick: bool,
        /// Print a JSON array instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Neighbourhood enrichment and co-occurrence vs squidpy's recorded times (100,000 cells)
    Spatial {
        /// The data folder (default: $TESSERA_DATA, else ../shared/data)
        #[arg(long)]
        data: Option<PathBuf>,
        /// Cells in the large run (the CODEX spleen, tiled)
        #[arg(long, default_value_t = 100_000)]
        cells: usize,
        /// Permutations in the large run
        #[arg(long, default_value_t = 1000)]
        perms: usize,
        /// Print a JSON array instead of a table
        #[arg(long)]
        json: bool,
    },
}

fn bench_ops(
    device: Option<&str>,
    json: bool,
    quick: bool,
    baseline: bool,
) -> Result<(), io::Error> {
    use tessera_core::compute::{bench, cpu::Cpu, gpu::Gpu};
    let size = if quick {
        bench::Size::Quick
    } else {
        bench::Size::Full
    };
    let fail = |m: String| io::Error::new("bench", "--device", m);
    let rows = match device.unwrap_or("auto") {
        "cpu" => bench::run(&Cpu, size, false),
        "cuda" => cuda_bench(size, baseline).map_err(fail)?,
        "gpu" => bench::run(
            &pollster::block_on(Gpu::new()).map_err(fail)?,
            size,
            baseline,
        ),
        // CUDA, then wgpu, then the CPU.
        "auto" => match cuda_bench(size, baseline) {
            Ok(rows) => rows,
            Err(_) => match pollster::block_on(Gpu::new()) {
                Ok(gpu) => bench::run(&gpu, size, baseline),
                Err(e) => {
                    eprintln!("note: {e}; benchmarking the CPU");
                    bench::run(&Cpu, size, false)
                }
            },
        },
        other => {
            return Err(fail(format!(
                "unknown device {other:?}: expected cpu, gpu or cuda"
            )))
        }
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&rows).expect("rows serialise")
        );
    } else {
        print!("{}", bench::table(&rows));
    }
    Ok(())
}

#[cfg(feature = "cuda")]
fn cuda_bench(
    size: tessera_core::compute::bench::Size,
    baseline: bool,
) -> Result<Vec<tessera_core::compute::bench::Row>, String> {
    let cuda = tessera_core::compute::cuda::Cuda::new()?;
    Ok(tessera_core::compute::bench::run(&cuda, size, baseline))
}

#[cfg(not(feature = "cuda"))]
fn cuda_bench(
    _: tessera_core::compute::bench::Size,
    _: bool,
) -> Result<Vec<tessera_core::compute::bench::Row>, String> {
    Err("this tessera was built without CUDA: cargo build --release --features cli,cuda".into())
}

/// A single `.h5ad` file given by path.
fn one_h5ad(paths: &[PathBuf]) -> Option<&Path> {
    match paths {
        [one]
            if one.is_file()
                && one
                    .extension()
                    .is_some_and(|e| e.eq_ignore_ascii_case("h5ad")) =>
        {
            Some(one)
        }
        _ => None,
    }
}

pub fn load(paths: &[PathBuf], table: &TableArgs) -> Result<io::Loaded, io::Error> {
    // An .h5ad is read from disk as it is decoded, never held whole first.
    if let Some(p) = one_h5ad(paths) {
        return Ok(io::Loaded {
            dataset: io::h5ad::read_file(p)?,
            format: "h5ad".into(),
            source: p.display().to_string(),
        });
    }
    let mut set = FileSet::default();
    for p in paths {
        set.files.extend(FileSet::from_path(p)?.files);
    }
    if let [one] = paths {
        set.name = Some(one.display().to_string());
    }
    io::read(set, &table.options())
}

pub fn write(path: &Path, bytes: &[u8]) -> Result<(), io::Error> {
    std::fs::write(path, bytes)
        .map_err(|e| io::Error::new(&path.display().to_string(), "", e.to_string()))
}

fn run(cli: Cli) -> Result<(), io::Error> {
    match cli.command {
        Command::Info { paths, json, table } => {
            // anndata's backed mode: the annotations, and X scanned in blocks.
            let summary = match one_h5ad(&paths) {
                Some(p) => io::h5ad::summary_of_file(p)?,
                None => load(&paths, &table)?.summary(),
            };
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&summary).expect("summary serialises")
                );
            } else {
                print!("{}", summary.to_text());
            }
        }
        Command::Convert { paths, out, table } => {
            let loaded = load(&paths, &table)?;
            write(&out, &io::h5ad_write::write(&loaded.dataset)?)?;
            eprintln!(
                "wrote {} ({} x {})",
                out.display(),
                loaded.dataset.n_obs(),
                loaded.dataset.n_vars()
            );
        }
        Command::Bench {
            what:
                BenchWhat::Ops {
                    device,
                    json,
                    quick,
                    baseline,
                },
        } => {
            bench_ops(device.as_deref(), json, quick, baseline)?;
        }
        Command::Bench {
            what:
                BenchWhat::Tangram {
                    device,
                    data,
                    epochs,
                    json,
                },
        } => bench_tangram::run(data, &device, epochs, json)?,
        Command::Bench {
            what:
                BenchWhat::Nsf {
                    device,
                    data,
                    epochs,
                    quick,
                    json,
                },
        } => bench_nsf::run(data, &device, epochs, quick, json)?,
        Command::Bench {
            what:
                BenchWhat::Resolvi {
                    device,
                    data,
                    epochs,
                    quick,
                    json,
                },
        } => bench_resolvi::run(data, &device, epochs, quick, json)?,
        Command::Bench {
            what:
                BenchWhat::Cell2location {
                    device,
                    lymph_steps,
                    quick,
                    json,
                    size,
                    epochs,
                    ..
                },
        } if size == "tutorial" => bench_tutorial::run(bench_tutorial::Args {
            devices: device,
            epochs,
            steps: lymph_steps,
            quick,
            json,
        })?,
        Command::Bench {
            what:
                BenchWhat::Cell2location {
                    device,
                    data,
                    steps,
                    lymph_steps,
                    quick,
                    json,
                    size,
                    ..
                },
        } if size == "reference" => bench_cell2location::run(bench_cell2location::Args {
            devices: device,
            data,
            steps,
            lymph_steps,
            quick,
            json,
        })?,
        Command::Bench {
            what: BenchWhat::Cell2location { size, .. },
        } => {
            return Err(io::Error::new(
                "tessera bench cell2location",
                "--size",
                format!("unknown size {size:?}: expected reference or tutorial"),
            ))
        }
        Command::Bench {
            what:
                BenchWhat::Spatial {
                    data,
                    cells,
                    perms,
                    json,
                },
        } => bench_spatial::run(bench_spatial::Args {
            data,
            cells,
            perms,
            json,
        })?,
        Command::Tangram(args) => tangram::run(*args)?,
        Command::Cell2location { what } => cell2location::run(what)?,
        Command::Simulate { what } => simulate::run(what)?,
        Command::Spatial { what } => spatial::run(what)?,
        Command::Multiomics(args) => multiomics::run(*args)?,
        Command::Nsf(args) => nsf::run(*args)?,
        Command::Resolvi(args) => resolvi::run(*args)?,
        Command::Run(args) => run::run(*args)?,
        Command::Demo { out } => {
            let (spatial, reference) = tessera_core::demo::demo_pair(Default::default());
            std::fs::create_dir_all(&out)
                .map_err(|e| io::Error::new(&out.display().to_string(), "", e.to_string()))?;
            write(
                &out.join("demo_spatial.h5ad"),
                &io::h5ad_write::write(&spatial)?,
            )?;
            write(
                &out.join("demo_reference.h5ad"),
                &io::h5ad_write::write(&reference)?,
            )?;
            eprintln!(
                "wrote demo_spatial.h5ad and demo_reference.h5ad to {}",
                out.display()
            );
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
