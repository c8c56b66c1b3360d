//! A fit's whole state on the host, taken every [`EVERY`] epochs: what a
//! run resumes from on the CPU when its GPU is lost or runs out of memory.
//! Resuming from a checkpoint on the same device gives the uninterrupted
//! run's numbers exactly: it holds every parameter, every optimiser moment
//! and counter, and the random streams are keyed by those counters.

use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Serialize};

use crate::compute::{Binary, Device};

/// Epochs between checkpoints.
pub const EVERY: usize = 10;

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The fit it belongs to (a model's name and sizes), checked on resume.
    pub fit: String,
    /// Epochs done.
    pub epoch: usize,
    /// Step counters and other whole numbers of the loop.
    pub counters: Vec<u64>,
    /// Host-side numbers (learning rate, losses so far, scalar sites).
    pub values: Vec<f64>,
    /// Words the loop keeps (why it restarted).
    pub text: Vec<String>,
    /// Device buffers, in the fit's fixed order.
    pub buffers: Vec<Vec<f32>>,
}

/// Where a fit starts from and where it leaves its checkpoints.
pub struct Resume<'a> {
    pub from: Option<Checkpoint>,
    pub save: &'a mut dyn FnMut(Checkpoint),
}

impl Resume<'_> {
    /// A fit from the start whose checkpoints nobody keeps.
    pub fn none(save: &mut dyn FnMut(Checkpoint)) -> Resume<'_> {
        Resume { from: None, save }
    }
}

/// Every buffer copied to the host.
pub async fn read_all<D: Device>(dev: &D, bufs: &[&D::Buf]) -> Vec<Vec<f32>> {
    let mut out = Vec::with_capacity(bufs.len());
    for b in bufs {
        out.push(dev.read(b).await);
    }
    out
}

/// Writes a checkpoint's buffers back, after checking that it belongs to
/// this fit and that every length matches.
pub fn write_all<D: Device>(
    dev: &D,
    fit: &str,
    cp: &Checkpoint,
    bufs: &[&D::Buf],
) -> Result<(), String> {
    if cp.fit != fit
        || cp.buffers.len() != bufs.len()
        || bufs
            .iter()
            .zip(&cp.buffers)
            .any(|(b, v)| dev.len(b) != v.len())
    {
        return Err(format!(
            "the checkpoint is of another fit ({}; this one is {fit})",
            cp.fit
        ));
    }
    let zero = dev.upload(&[0.0]);
    for (b, v) in bufs.iter().zip(&cp.buffers) {
        dev.binary(Binary::Add, &dev.upload(v), &zero, b);
    }
    Ok(())
}

/// Set once a fit has moved to the CPU in this process: a command whose
/// GPU was lost may keep its results only then.
static MOVED: AtomicBool = AtomicBool::new(false);

/// The note a fit leaves when it moved to the CPU (and the record of it).
pub fn moved_note(why: &str, from_epoch: usize) -> String {
    MOVED.store(true, Ordering::Relaxed);
    format!("{why}: the fit resumed on the CPU from its checkpoint at epoch {from_epoch}")
}

/// Whether a fit of this process went on on the CPU after losing its GPU.
pub fn moved() -> bool {
    MOVED.load(Ordering::Relaxed)
}
