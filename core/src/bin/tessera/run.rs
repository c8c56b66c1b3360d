//! `tessera run`: any analysis of the registry, from a share link or its
//! parameters, on local files: the page's run natively, on a GPU a tab does
//! not have or data it cannot hold. It leaves the files the page offers and
//! the results bundle, which the page opens to the same view.

use std::path::{Path, PathBuf};

use tessera_core::analysis::{Data, Params, Slot};
use tessera_core::compute::cpu::Cpu;
use tessera_core::share::{DeviceChoice, Inputs, Link, Run, Source};
use tessera_core::{bundle, io, session};

use crate::device::{self, on_device};
use crate::progress::Bar;
use crate::{load, write, TableArgs};

#[derive(clap::Args)]
pub struct Args {
    /// A share link (the whole address or what follows `#link=`), or the
    /// parameters as JSON: `{"analysis": "nhood", "cluster_key": "cell_type", ...}`
    link: String,
    /// The spatial data (the transcripts for the multi-omics analysis)
    #[arg(long)]
    sp: PathBuf,
    /// The single-cell reference (Tangram, cell2location)
    #[arg(long)]
    sc: Option<PathBuf>,
    /// The protein data (multi-omics)
    #[arg(long)]
    prot: Option<PathBuf>,
    /// cpu, gpu or cuda (default: the best available) for analyses that use one
    #[arg(long)]
    device: Option<String>,
    /// Output folder
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    table: TableArgs,
}

/// The analysis and its parameters, from a link or JSON; checked.
fn params(text: &str) -> Result<Params, io::Error> {
    let bad = |m: String| io::Error::new("tessera run", "LINK", m);
    let text = text.trim();
    let params: Params = if text.starts_with('{') {
        serde_json::from_str(text)
            .map_err(|e| bad(format!("the parameters are not understood: {e}")))?
    } else {
        let payload = text.rsplit_once("#link=").map_or(text, |(_, p)| p);
        Link::decode(payload).map_err(bad)?.run.params
    };
    params.validate().map_err(bad)?;
    Ok(params)
}

/// A file as a link names it: files on this machine, by name.
fn local(path: &Path) -> Source {
    Source::Local {
        files: vec![path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into(),
        )],
    }
}

pub fn run(a: Args) -> Result<(), io::Error> {
    let params = params(&a.link)?;
    let info = params.info();
    let read = |p: &PathBuf| -> Result<(String, tessera_core::data::Dataset), io::Error> {
        Ok((
            p.display().to_string(),
            load(std::slice::from_ref(p), &a.table)?.dataset,
        ))
    };
    let mut data = Data {
        sp: read(&a.sp)?,
        ..Data::default()
    };
    for input in info.inputs {
        let (flag, path, slot) = match input.slot {
            Slot::Spatial => continue,
            Slot::Reference => ("--sc", &a.sc, &mut data.sc),
            Slot::Proteins => ("--prot", &a.prot, &mut data.prot),
        };
        let path = path.as_ref().ok_or_else(|| {
            io::Error::new(
                "tessera run",
                flag,
                format!(
                    "{} needs {} ({flag})",
                    info.name,
                    input.label.to_lowercase()
                ),
            )
        })?;
        *slot = Some(read(path)?);
    }
    // What the bundle stores: the run as a link holds it, on local files.
    let run = Run {
        params: params.clone(),
        inputs: Inputs {
            sp: local(&a.sp),
            sc: data.sc.as_ref().and(a.sc.as_deref()).map(local),
            prot: data.prot.as_ref().and(a.prot.as_deref()).map(local),
        },
        device: DeviceChoice::default(),
    };
    let mut bar = Bar::new(info.name);
    let mut progress = |_stage: &str, done: usize, total: usize, loss: Option<f64>| {
        bar.update_with(
            done,
            total,
            &loss.map(|l| format!("loss {l:.4}")).unwrap_or_default(),
        )
    };
    // The analyses' errors name their file already.
    let fail = |e: String| io::Error::new("tessera run", "", e);
    let r = if info.gpu {
        let dev = device::open(a.device.as_deref())?;
        eprintln!("{}: {}", info.name, dev.name());
        let out = if info.resumes {
            // A CUDA fit that fails goes on on the CPU, from the inputs again.
            let mut spare = dev.is_cuda().then(|| Data {
                sp: data.sp.clone(),
                sc: data.sc.clone(),
                prot: data.prot.clone(),
                ..Data::default()
            });
            let mut data = Some(data);
            on_device!(&dev, kept, |d| {
                let mut inputs = data.take().or_else(|| spare.take()).unwrap_or_default();
                inputs.kept = std::mem::take(kept);
                pollster::block_on(session::run(d, &run, inputs, &mut progress))
            })
        } else {
            on_device!(&dev, |d| pollster::block_on(session::run(
                d,
                &run,
                data,
                &mut progress
            )))
        };
        out.map_err(fail)?
    } else {
        pollster::block_on(session::run(&Cpu, &run, data, &mut progress)).map_err(fail)?
    };
    std::fs::create_dir_all(&a.out)
        .map_err(|e| io::Error::new(&a.out.display().to_string(), "", e.to_string()))?;
    for (name, bytes) in &r.files {
        write(&a.out.join(name), bytes)?;
    }
    write(&a.out.join("tessera_results.zip"), &bundle::write(&r)?)?;
    eprintln!(
        "{}: {} files and tessera_results.zip in {}",
        info.name,
        r.files.len(),
        a.out.display()
    );
    Ok(())
}
