//! A fit's whole state on the host, taken every [`EVERY`] epochs: what a
//! run resumes from on the CPU when its GPU is lost or runs out of memory,
//! or when a stopped run is started again (with the results of the fits it
//! had finished, which it does not fit again).
//! Resuming from a checkpoint on the same device gives the uninterrupted
//! run's numbers exactly: it holds every parameter, every optimiser moment
//! and counter, and the random streams are keyed by those counters.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Serialize};

use crate::compute::{Binary, Device};

/// Epochs between checkpoints.
pub const EVERY: usize = 10;

/// Optimiser steps between checkpoints of a fit counted in full-data steps
/// (cell2location's mapping takes 30,000 by default, each a fraction of an
/// epoch's work elsewhere; its spot sites are read back each time).
pub const EVERY_STEPS: usize = 500;

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The fit it belongs to (a model's name and sizes), checked on resume.
    pub fit: String,
    /// Epochs done (optimiser steps when `steps`).
    pub epoch: usize,
    /// The fit counts optimiser steps, not epochs.
    pub steps: bool,
    /// The fit had finished: its results, not its state (a run of several
    /// fits that goes on skips the ones it finished).
    pub done: bool,
    /// Step counters and other whole numbers of the loop.
    pub counters: Vec<u64>,
    /// Host-side numbers (learning rate, losses so far, scalar sites).
    pub values: Vec<f64>,
    /// Words the loop keeps (why it restarted).
    pub text: Vec<String>,
    /// Device buffers, in the fit's fixed order.
    pub buffers: Vec<Vec<f32>>,
}

/// What the bytes of a stored checkpoint start with.
const MAGIC: &[u8; 4] = b"TSC1";

/// The checkpoint's whole numbers and words; the numbers follow it as raw
/// little-endian bytes (f64 values, then each f32 buffer), so NaN and the
/// last bit of every number come back as they were.
#[derive(Serialize, Deserialize)]
struct Header {
    fit: String,
    epoch: usize,
    #[serde(default)]
    steps: bool,
    #[serde(default)]
    done: bool,
    counters: Vec<u64>,
    text: Vec<String>,
    values: usize,
    buffers: Vec<usize>,
}

impl Checkpoint {
    /// Where the fit stood: "epoch 20", "step 500", "epoch 250 (finished)".
    pub fn at(&self) -> String {
        let unit = if self.steps { "step" } else { "epoch" };
        let end = if self.done { " (finished)" } else { "" };
        format!("{unit} {}{end}", self.epoch)
    }

    /// Appends the checkpoint's bytes (what [`Checkpoint::read`] reads).
    fn write(&self, out: &mut Vec<u8>) {
        let header = Header {
            fit: self.fit.clone(),
            epoch: self.epoch,
            steps: self.steps,
            done: self.done,
            counters: self.counters.clone(),
            text: self.text.clone(),
            values: self.values.len(),
            buffers: self.buffers.iter().map(Vec::len).collect(),
        };
        let json = serde_json::to_vec(&header).expect("a header of plain fields");
        let floats: usize = self.buffers.iter().map(Vec::len).sum();
        out.reserve(8 + json.len() + 8 * self.values.len() + 4 * floats);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(json.len() as u32).to_le_bytes());
        out.extend_from_slice(&json);
        for v in &self.values {
            out.extend_from_slice(&v.to_le_bytes());
        }
        for v in self.buffers.iter().flatten() {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }

    /// One checkpoint from the start of `bytes`, and the bytes after it.
    fn read(bytes: &[u8]) -> Result<(Checkpoint, &[u8]), String> {
        let rest = bytes.strip_prefix(MAGIC).ok_or_else(|| bad("no header"))?;
        let (len, rest) = rest
            .split_first_chunk::<4>()
            .ok_or_else(|| bad("cut short"))?;
        let len = u32::from_le_bytes(*len) as usize;
        let json = rest.get(..len).ok_or_else(|| bad("cut short"))?;
        let h: Header = serde_json::from_slice(json).map_err(|e| bad(&e.to_string()))?;
        let body = &rest[len..];
        let need = h
            .buffers
            .iter()
            .try_fold(0usize, |n, &b| n.checked_add(b.checked_mul(4)?))
            .and_then(|n| n.checked_add(h.values.checked_mul(8)?));
        let Some((body, after)) = need.filter(|&n| n <= body.len()).map(|n| body.split_at(n))
        else {
            return Err(bad("its sizes do not match its length"));
        };
        let (values, mut floats) = body.split_at(8 * h.values);
        let values = values
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect();
        let buffers = h
            .buffers
            .iter()
            .map(|&n| {
                let (b, rest) = floats.split_at(4 * n);
                floats = rest;
                b.chunks_exact(4)
                    .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
                    .collect()
            })
            .collect();
        let cp = Checkpoint {
            fit: h.fit,
            epoch: h.epoch,
            steps: h.steps,
            done: h.done,
            counters: h.counters,
            values,
            text: h.text,
            buffers,
        };
        Ok((cp, after))
    }
}

fn bad(why: &str) -> String {
    format!("a kept checkpoint is unreadable ({why})")
}

/// A run's checkpoints as one stored piece: the running fit's latest and
/// the results of the fits it finished before it.
pub fn pack(latest: &Checkpoint, finished: &[Checkpoint]) -> Vec<u8> {
    let mut out = vec![];
    // In the order the fits ran.
    for cp in finished.iter().chain([latest]) {
        cp.write(&mut out);
    }
    out
}

/// Reads what [`pack`] wrote: the running fit's checkpoint (None when the
/// last fit to leave one had finished) and the finished fits' results.
pub fn unpack(mut bytes: &[u8]) -> Result<(Option<Checkpoint>, Vec<Checkpoint>), String> {
    let (mut running, mut finished) = (None, vec![]);
    loop {
        let (cp, rest) = Checkpoint::read(bytes)?;
        if cp.done {
            finished.push(cp);
        } else if running.replace(cp).is_some() {
            return Err(bad("two fits running at once"));
        }
        if rest.is_empty() {
            return Ok((running, finished));
        }
        bytes = rest;
    }
}

/// Where a run's new checkpoints go: the running fit's latest, with the
/// results of the fits the run finished before it (stored together, see
/// [`pack`]).
pub type Save = Box<dyn FnMut(&Checkpoint, &[Checkpoint])>;

/// A run's checkpoints as its caller sees them: a stopped run's last one to
/// start from, and where each new one goes (a tab keeps the latest in its
/// storage, so a stopped or closed run can go on when it is run again).
#[derive(Default)]
pub struct Kept {
    pub from: Option<Checkpoint>,
    pub save: Option<Save>,
    /// Why the fit starts from `from` on this device: its first device
    /// failed (see [`attempt`]). None: a stopped run left it.
    pub after: Option<String>,
    /// Shared, so a caller that hands this `Kept` to a run that fails
    /// still finds what it held (see [`attempt`]).
    held: Rc<RefCell<Held>>,
}

#[derive(Default)]
struct Held {
    /// The running fit's latest checkpoint: where it goes on on the CPU if
    /// its device is lost.
    latest: Option<Checkpoint>,
    /// Results of the fits of this run that had finished (a stopped run's,
    /// or this run's): each is used instead of fitting again.
    finished: Vec<Checkpoint>,
}

impl Kept {
    /// A run that starts from what a stopped run left ([`unpack`]'s
    /// checkpoint and finished fits), showing each new checkpoint to `save`.
    pub fn new(from: Option<Checkpoint>, finished: Vec<Checkpoint>, save: Option<Save>) -> Kept {
        let held = Held {
            latest: None,
            finished,
        };
        Kept {
            from,
            save,
            after: None,
            held: Rc::new(RefCell::new(held)),
        }
    }

    /// Holds a new checkpoint and shows it to whoever keeps them.
    fn show(&mut self, cp: Checkpoint) {
        let mut held = self.held.borrow_mut();
        if let Some(save) = self.save.as_mut() {
            save(&cp, &held.finished);
        }
        held.latest = Some(cp);
    }

    /// The checkpoint to start from when it is this fit's (a run of several
    /// fits, as cell2location's two, starts each from its own).
    pub fn take_for(&mut self, fit: &str) -> Option<Checkpoint> {
        self.from.take_if(|c| c.fit == fit)
    }

    /// `read` of the result of `fit`, when this run or a stopped one
    /// finished it.
    pub fn finished<T>(&self, fit: &str, read: impl FnOnce(&Checkpoint) -> T) -> Option<T> {
        self.held
            .borrow()
            .finished
            .iter()
            .find(|c| c.fit == fit)
            .map(read)
    }

    /// Keeps a fit's result (`done` set), so a run that goes on after it
    /// skips the fit.
    pub fn finish(&mut self, result: Checkpoint) {
        let mut held = self.held.borrow_mut();
        held.latest = None;
        held.finished.push(result);
        if let (Some(save), Some((last, before))) = (self.save.as_mut(), held.finished.split_last())
        {
            save(last, before);
        }
    }

    /// The note of a fit that starts from `from` (None: from the start).
    fn note_from(&self, from: Option<&Checkpoint>) -> Option<String> {
        match (&self.after, from) {
            (Some(why), from) => Some(moved_note(why, from)),
            (None, Some(c)) => Some(format!(
                "resumed from the checkpoint a stopped run left at {}",
                c.at()
            )),
            (None, None) => None,
        }
    }
}

/// One fit's checkpoints within a run: each goes to the caller's [`Kept`],
/// which holds the last so the fit can go on on the CPU if its device is
/// lost.
pub struct Keeper<'k> {
    kept: &'k mut Kept,
}

impl<'k> Keeper<'k> {
    /// The keeper, the checkpoint the fit starts from (`fit`'s, or when
    /// None whichever `kept` holds) and the note that says so.
    pub fn start(
        kept: &'k mut Kept,
        fit: Option<&str>,
    ) -> (Keeper<'k>, Option<Checkpoint>, Option<String>) {
        let from = match fit {
            Some(f) => kept.take_for(f),
            None => kept.from.take(),
        };
        let note = kept.note_from(from.as_ref());
        kept.held.borrow_mut().latest = from.clone();
        (Keeper { kept }, from, note)
    }

    /// Where the fit leaves its checkpoints.
    pub fn sink(&mut self) -> impl FnMut(Checkpoint) + '_ {
        |c| self.kept.show(c)
    }

    /// The device was lost (`why`): the checkpoint to go on from on the
    /// CPU, and the note that says so.
    pub fn moved(&mut self, why: &str) -> (Option<Checkpoint>, String) {
        let from = self.kept.held.borrow_mut().latest.take();
        let note = moved_note(why, from.as_ref());
        (from, note)
    }
}

/// Runs a fit on a device whose failures panic (CUDA: cudarc's errors, out
/// of memory among them), keeping its checkpoints. When it fails, the
/// [`Kept`] to run it again with on the CPU: its last checkpoint, the fits
/// it finished, and why.
#[cfg(not(target_arch = "wasm32"))]
pub fn attempt<T>(fit: impl FnOnce(&mut Kept) -> T) -> Result<T, Box<Kept>> {
    let mut kept = Kept::default();
    let held = kept.held.clone();
    crate::io::caught(|| fit(&mut kept)).map_err(|why| {
        let Held { latest, finished } = held.take();
        Box::new(Kept {
            after: Some(why),
            ..Kept::new(latest, finished, None)
        })
    })
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
    put(
        dev,
        bufs.iter()
            .copied()
            .zip(cp.buffers.iter().map(Vec::as_slice)),
    );
    Ok(())
}

/// Writes each host slice into its device buffer of the same length (as the
/// device's own add of zero: every device has it).
pub fn put<'a, D: Device + 'a>(dev: &D, pairs: impl IntoIterator<Item = (&'a D::Buf, &'a [f32])>) {
    let zero = dev.upload(&[0.0]);
    for (b, v) in pairs {
        dev.binary(Binary::Add, &dev.upload(v), &zero, b);
    }
}

/// Set once a fit has moved to the CPU in this process: a command whose
/// GPU was lost may keep its results only then.
static MOVED: AtomicBool = AtomicBool::new(false);

/// The note a fit leaves when it moved to the CPU (and the record of it).
pub fn moved_note(why: &str, from: Option<&Checkpoint>) -> String {
    MOVED.store(true, Ordering::Relaxed);
    match from {
        Some(cp) => format!(
            "{why}: the fit resumed on the CPU from its checkpoint at {}",
            cp.at()
        ),
        None => format!("{why}: the fit ran again on the CPU from the start"),
    }
}

/// Whether a fit of this process went on on the CPU after losing its GPU.
pub fn moved() -> bool {
    MOVED.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_round_trip_every_number_and_refuse_anything_else() {
        let cp = Checkpoint {
            fit: "NSF 4 factors".into(),
            epoch: 30,
            steps: true,
            done: false,
            counters: vec![1, u64::MAX],
            values: vec![0.1, f64::NAN, -0.0, f64::INFINITY],
            text: vec!["why".into()],
            buffers: vec![vec![1.5, f32::NAN], vec![], vec![f32::MIN_POSITIVE]],
        };
        let finished = Checkpoint {
            fit: "regression".into(),
            epoch: 12,
            done: true,
            values: vec![f64::MIN_POSITIVE],
            ..Checkpoint::default()
        };
        let bytes = pack(&cp, std::slice::from_ref(&finished));
        let (back, before) = unpack(&bytes).unwrap();
        let back = back.unwrap();
        assert_eq!(
            (&back.fit, back.at(), &back.counters),
            (&cp.fit, "step 30".into(), &cp.counters)
        );
        let bits = |c: &Checkpoint| {
            let v: Vec<u64> = c.values.iter().map(|v| v.to_bits()).collect();
            let b: Vec<Vec<u32>> = c
                .buffers
                .iter()
                .map(|b| b.iter().map(|v| v.to_bits()).collect())
                .collect();
            (v, b)
        };
        assert_eq!(bits(&back), bits(&cp));
        assert_eq!(back.text, cp.text);
        assert_eq!(before.len(), 1);
        assert_eq!(before[0].at(), "epoch 12 (finished)");
        assert_eq!(bits(&before[0]), bits(&finished));
        // The last fit to leave a checkpoint may have finished.
        let (none, just) = unpack(&pack(&finished, &[])).unwrap();
        assert!(none.is_none() && just.len() == 1);
        let both_running = pack(&cp, std::slice::from_ref(&cp));
        for bad in [
            &bytes[..bytes.len() - 1],
            &bytes[..6],
            &bytes[1..],
            &[bytes.as_slice(), &[0]].concat()[..],
            &[][..],
            &both_running[..],
        ] {
            let e = unpack(bad).unwrap_err();
            assert!(e.starts_with("a kept checkpoint is unreadable"), "{e}");
        }
    }
}
