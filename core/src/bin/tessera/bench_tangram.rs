//! `tessera bench tangram`: Tangram's fit in clusters and cells mode on the
//! largest pair with a reference run in $TESSERA_DATA/ref/tangram, per
//! device, as epochs/s and as a speed-up over the reference's recorded wall
//! time (tangram-sc on PyTorch, same machine class, 2 CPU threads).

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;
use tessera_core::compute::Device;
use tessera_core::io::{self, FileSet, TableOptions};
use tessera_core::models::tangram::{self, Mode, Named, Options};

use crate::device::{self, on_device};

#[derive(Serialize)]
pub struct Row {
    pub pair: String,
    pub mode: String,
    pub shape: String,
    pub device: String,
    pub epochs: usize,
    pub seconds: f64,
    pub epochs_per_s: f64,
    /// The reference's seconds for its 1000 epochs.
    pub reference_seconds: f64,
    /// reference epochs/s vs ours.
    pub speedup_vs_reference: f64,
    pub final_score: f64,
}

struct RefRun {
    pair: String,
    mode: String,
    sc: PathBuf,
    sp: PathBuf,
    cells: usize,
    spots: usize,
    seconds: f64,
    epochs: f64,
}

fn bad(m: String) -> io::Error {
    io::Error::new("tessera bench tangram", "", m)
}

fn ref_runs(data: &Path) -> Result<Vec<RefRun>, io::Error> {
    let root = data.join("ref/tangram");
    let mut out = vec![];
    let pairs = std::fs::read_dir(&root).map_err(|e| {
        bad(format!(
            "{}: {e} (set --data or TESSERA_DATA)",
            root.display()
        ))
    })?;
    for pair in pairs.flatten() {
        for mode in ["clusters", "cells"] {
            let p = pair.path().join(mode).join("summary.json");
            let Ok(text) = std::fs::read_to_string(&p) else {
                continue;
            };
            let j: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| bad(format!("{}: {e}", p.display())))?;
            let file = |k: &str| {
                j[k].as_str()
                    .map(|s| data.join(s.strip_prefix("data/").unwrap_or(s)))
            };
            let (Some(sc), Some(sp)) = (file("sc_file"), file("sp_file")) else {
                continue;
            };
            out.push(RefRun {
                pair: pair.file_name().to_string_lossy().into(),
                mode: mode.into(),
                sc,
                sp,
                cells: j["n_sc_obs"].as_u64().unwrap_or(0) as usize,
                spots: j["n_sp_obs"].as_u64().unwrap_or(0) as usize,
                seconds: j["wall_time_map_s"].as_f64().unwrap_or(f64::NAN),
                epochs: j["hyperparameters"]["num_epochs"]
                    .as_f64()
                    .unwrap_or(1000.0),
            });
        }
    }
    Ok(out)
}

fn load(p: &Path) -> Result<tessera_core::data::Dataset, io::Error> {
    Ok(io::read(FileSet::from_path(p)?, &TableOptions::default())?.dataset)
}

fn time_fit<D: Device>(
    dev: &D,
    r: &RefRun,
    sc: Named,
    sp: Named,
    epochs: usize,
) -> Result<Row, io::Error> {
    let mode = Mode::parse(&r.mode).expect("known mode");
    let opts = Options {
        mode,
        cluster_label: (mode == Mode::Clusters).then(|| "cell_type".into()),
        seed: Some(42),
        hyper: tangram::Hyper {
            num_epochs: epochs,
            ..Default::default()
        },
        ..Options::default()
    };
    let t0 = Instant::now();
    let m = pollster::block_on(tangram::map_cells_to_space(
        dev,
        sc,
        sp,
        &opts,
        &mut |_, _, _| {},
    ))?;
    let seconds = t0.elapsed().as_secs_f64();
    let ours = epochs as f64 / seconds;
    Ok(Row {
        pair: r.pair.clone(),
        mode: r.mode.clone(),
        shape: format!(
            "{} x {} x {}",
            m.rows.len(),
            r.spots,
            m.training_genes.len()
        ),
        device: dev.name(),
        epochs,
        seconds,
        epochs_per_s: ours,
        reference_seconds: r.seconds,
        speedup_vs_reference: ours / (r.epochs / r.seconds),
        final_score: m.history.main_loss.last().copied().unwrap_or(f64::NAN),
    })
}

pub fn run(
    data: Option<PathBuf>,
    devices: &[String],
    epochs: usize,
    json: bool,
) -> Result<(), io::Error> {
    let data = data
        .or_else(|| std::env::var_os("TESSERA_DATA").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("../shared/data"));
    let runs = ref_runs(&data)?;
    // The largest pair: most cells x spots among those with a reference run.
    let largest = runs
        .iter()
        .max_by_key(|r| r.cells * r.spots)
        .ok_or_else(|| {
            bad(format!(
                "no reference runs under {}",
                data.join("ref/tangram").display()
            ))
        })?
        .pair
        .clone();
    let mine: Vec<&RefRun> = runs.iter().filter(|r| r.pair == largest).collect();
    let (sc, sp) = (load(&mine[0].sc)?, load(&mine[0].sp)?);
    let (scs, sps) = (
        mine[0].sc.display().to_string(),
        mine[0].sp.display().to_string(),
    );
    let (scn, spn) = (Named::new(&scs, &sc), Named::new(&sps, &sp));
    let mut rows = vec![];
    for dev in device::bench_devices(devices)? {
        for r in &mine {
            eprintln!("{} {} on {}...", r.pair, r.mode, dev.name());
            rows.push(on_device!(&dev, |d| time_fit(d, r, scn, spn, epochs))?);
        }
    }
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&rows).expect("rows serialise")
        );
    } else {
        println!(
            "{:<22} {:<9} {:<20} {:<40} {:>9} {:>10} {:>12} {:>8}",
            "pair",
            "mode",
            "rows x spots x genes",
            "device",
            "epochs/s",
            "seconds",
            "vs reference",
            "score"
        );
        for r in &rows {
            println!(
                "{:<22} {:<9} {:<20} {:<40} {:>9.1} {:>10.2} {:>11.1}x {:>8.4}",
                r.pair,
                r.mode,
                r.shape,
                r.device.chars().take(40).collect::<String>(),
                r.epochs_per_s,
                r.seconds,
                r.speedup_vs_reference,
                r.final_score
            );
        }
    }
    Ok(())
}
