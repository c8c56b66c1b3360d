//! The paper's `ModelTrainer`: full-batch Adam at lr 0.01 (the kernel's
//! amplitude and length scale at 1 % of it, stepped with a fresh K_uu
//! factorisation every 10 epochs), the smoothed-loss convergence check,
//! and the guard that turns a numerical divergence into a restart from a
//! checkpoint at half the learning rate instead of a crash.

use super::model::{Objective, Snapshot};
use crate::compute::Device;
use crate::models::checkpoint::{self, Checkpoint, Resume};
use crate::models::svi::mix;

/// Streams of the draws (`mix`'s site): the GP factors' and the
/// nonspatial factors' ε.
pub const DRAWS_F: u64 = 1;
pub const DRAWS_H: u64 = 2;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    pub max_epochs: usize,
    pub lr: f64,
    pub kernel_every: usize,
    pub status_every: usize,
    pub checkpoint_every: usize,
    pub span: usize,
    pub tol: f64,
    pub max_tries: usize,
}

impl Default for Schedule {
    /// The benchmark's settings (`num_epochs` 10,000 there; 5,000 is the
    /// method's default).
    fn default() -> Schedule {
        Schedule {
            max_epochs: 5000,
            lr: 0.01,
            kernel_every: 10,
            status_every: 10,
            checkpoint_every: 50,
            span: 100,
            tol: 5e-5,
            max_tries: 10,
        }
    }
}

/// How training went.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct History {
    /// The loss of each epoch kept (after restarts, the kept path only).
    pub loss: Vec<f64>,
    pub converged: bool,
    /// (epoch, why) of each restart.
    pub restarts: Vec<(usize, String)>,
    /// The learning rate at the end.
    pub lr: f64,
    /// Stopped by the caller.
    pub stopped: bool,
}

/// `ConvergenceChecker`: the relative change between the last two values
/// of a cubic fitted by least squares to `y`.
pub fn relative_change(y: &[f64]) -> f64 {
    let n = y.len();
    let mid = (n as f64 - 1.0) / 2.0;
    // Orthonormal basis of 1, x, x², x³ by modified Gram–Schmidt.
    let mut basis: Vec<Vec<f64>> = vec![];
    for p in 0..4 {
        let mut v: Vec<f64> = (0..n).map(|i| (i as f64 - mid).powi(p)).collect();
        for b in &basis {
            let d: f64 = v.iter().zip(b).map(|(a, c)| a * c).sum();
            v.iter_mut().zip(b).for_each(|(a, c)| *a -= d * c);
        }
        let norm = v.iter().map(|a| a * a).sum::<f64>().sqrt();
        if norm > 0.0 {
            v.iter_mut().for_each(|a| *a /= norm);
            basis.push(v);
        }
    }
    let fit = |i: usize| -> f64 {
        basis
            .iter()
            .map(|b| b[i] * b.iter().zip(y).map(|(a, c)| a * c).sum::<f64>())
            .sum()
    };
    let (prev, last) = (fit(n - 2), fit(n - 1));
    (last - prev) / (0.1 + prev.abs())
}

/// A loss this far (relative) above the first epoch's counts as diverged.
/// The paper's rule has no margin, but with fresh draws every epoch the
/// first few losses rise and fall by about 1 % by Monte Carlo noise alone
/// (PNMF on S1), which a margin-free rule reads as divergence, then halves
/// the rate until the noise wins ten times; a blow-up is far larger.
const RISE: f64 = 0.05;

/// Why a step could not continue.
fn divergence(loss: f64, first: Option<f64>) -> Option<String> {
    if !loss.is_finite() {
        return Some(format!("the loss is {loss}"));
    }
    match first {
        Some(f) if loss > f + RISE * f.abs() => Some(format!(
            "the loss {loss:.4} rose more than {}% above the first epoch's {f:.4}",
            RISE * 100.0
        )),
        _ => None,
    }
}

/// Trains until converged, `max_epochs`, or `status` returns false (it
/// gets the epoch and loss every `status_every` epochs). Draws come from
/// the Philox stream `seed`, one offset per epoch. Starts from
/// `resume.from` when given and leaves a checkpoint every
/// [`checkpoint::EVERY`] epochs; a lost device ends it with its reason.
pub async fn train<D: Device>(
    dev: &D,
    obj: &mut Objective<'_, D>,
    sched: &Schedule,
    seed: u64,
    resume: Resume<'_>,
    status: &mut dyn FnMut(usize, f64) -> bool,
) -> Result<History, String> {
    let sh = obj.shape;
    let eps_f = dev.zeros((sh.s * sh.t * sh.n).max(1));
    let eps_h = dev.zeros((sh.s * sh.n * sh.k).max(1));
    let mut h = History {
        lr: sched.lr,
        ..History::default()
    };
    // (epoch, Adam step counts of all parameters and of the kernel's,
    // snapshot), newest last: the start and the last three, enough for the
    // paper's rule (one interval back from each failure) without holding
    // ten copies of Ω in memory, as its disk checkpoints do.
    let (mut epoch, mut tries, mut cvg) = (0usize, 0usize, 0usize);
    // The kernel's optimiser counts only its own steps, as the paper's second Adam does.
    let (mut step, mut kstep) = (0u32, 0u32);
    if let Some(cp) = &resume.from {
        // One loss per epoch after the rate, one epoch per restart reason.
        if cp.values.len() != cp.epoch + 1 || cp.counters.len() != 4 + cp.text.len() {
            return Err(format!("the checkpoint of {} is incomplete", cp.fit));
        }
        obj.restore_host(cp)?;
        let c = |i: usize| cp.counters.get(i).copied().unwrap_or(0);
        (epoch, tries, cvg) = (cp.epoch, c(0) as usize, c(1) as usize);
        (step, kstep) = (c(2) as u32, c(3) as u32);
        h.lr = cp.values.first().copied().unwrap_or(sched.lr);
        h.loss = cp.values.get(1..).unwrap_or_default().to_vec();
        h.restarts = cp
            .text
            .iter()
            .zip(cp.counters.get(4..).unwrap_or_default())
            .map(|(why, &at)| (at as usize, why.clone()))
            .collect();
    }
    // Resumed off a kernel epoch, the cached K_uu factors are made now (a
    // fit resumed on one is exact; a divergence after a resume goes back no
    // further than the resume).
    if resume.from.is_some() && epoch % sched.kernel_every != 0 {
        obj.refresh().await.map_err(|e| {
            format!(
                "K_uu of factor {} is not positive definite on resuming",
                e.factor + 1
            )
        })?;
    }
    let mut checkpoints: Vec<(usize, (u32, u32), Snapshot<D>)> =
        vec![(epoch, (step, kstep), obj.snapshot())];
    let save = resume.save;
    while epoch < sched.max_epochs {
        let kernel = epoch % sched.kernel_every == 0;
        // (why, whether the epoch's step ran: the paper counts it before its
        // loss check, not when the Cholesky fails).
        let mut failed: Option<(String, bool)> = None;
        if kernel {
            if let Err(e) = obj.refresh().await {
                failed = Some((
                    format!(
                        "K_uu of factor {} is not positive definite (column {})",
                        e.factor + 1,
                        e.column
                    ),
                    false,
                ));
            }
        }
        if failed.is_none() {
            dev.random(true, mix(seed, DRAWS_F, epoch as u64), 0, &eps_f);
            dev.random(true, mix(seed, DRAWS_H, epoch as u64), 0, &eps_h);
            let loss = obj.loss_grad(&eps_f, &eps_h, kernel).await.total();
            if let Some(why) = dev.lost() {
                return Err(why);
            }
            failed = divergence(loss, h.loss.first().copied()).map(|why| (why, true));
            if failed.is_none() {
                step += 1;
                kstep += kernel as u32;
                obj.step(
                    h.lr as f32,
                    (h.lr * 0.01) as f32,
                    (step, kstep.max(1)),
                    kernel,
                );
                h.loss.push(loss);
            }
        }
        if let Some((why, stepped)) = failed {
            tries += 1;
            h.restarts.push((epoch, why.clone()));
            if tries >= sched.max_tries {
                return Err(format!(
                    "training diverged {tries} times (last at epoch {epoch}: {why}); \
                     try fewer factors, fewer inducing points or another likelihood"
                ));
            }
            // The checkpoint at least one checkpoint interval back.
            let i = epoch + stepped as usize;
            let back = (sched.checkpoint_every * (i / sched.checkpoint_every))
                .saturating_sub(sched.checkpoint_every);
            let (at, steps, snap) = checkpoints
                .iter()
                .rev()
                .find(|c| c.0 <= back)
                .unwrap_or(&checkpoints[0]);
            obj.restore(snap);
            epoch = *at;
            (step, kstep) = *steps;
            h.loss.truncate(epoch);
            checkpoints.retain(|c| c.0 <= epoch);
            h.lr *= 0.5;
            cvg = 0;
            continue;
        }
        epoch += 1;
        if epoch % sched.status_every == 0 || epoch == sched.max_epochs {
            if epoch > sched.span {
                let rel = relative_change(&h.loss[epoch - sched.span..epoch]);
                cvg = if rel.abs() < sched.tol { cvg + 1 } else { 0 };
                if cvg >= 2 {
                    h.converged = true;
                }
            }
            if !status(epoch, h.loss[epoch - 1]) {
                h.stopped = true;
                break;
            }
            if h.converged {
                break;
            }
        }
        if epoch % checkpoint::EVERY == 0 {
            let buffers = checkpoint::read_all(dev, &obj.state()).await;
            if let Some(why) = dev.lost() {
                return Err(why);
            }
            let mut counters = vec![tries as u64, cvg as u64, step as u64, kstep as u64];
            counters.extend(h.restarts.iter().map(|r| r.0 as u64));
            save(Checkpoint {
                fit: obj.fit_name(),
                epoch,
                steps: false,
                done: false,
                counters,
                values: [&[h.lr][..], &h.loss].concat(),
                text: h.restarts.iter().map(|r| r.1.clone()).collect(),
                buffers,
            });
        }
        if epoch % sched.checkpoint_every == 0 {
            checkpoints.push((epoch, (step, kstep), obj.snapshot()));
            if checkpoints.len() > 4 {
                checkpoints.remove(1);
            }
        }
    }
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cubic_has_the_change_of_its_last_step() {
        let y: Vec<f64> = (0..100)
            .map(|i| 5.0 - 0.01 * i as f64 + 1e-6 * (i as f64).powi(3))
            .collect();
        let want = (y[99] - y[98]) / (0.1 + y[98].abs());
        assert!((relative_change(&y) - want).abs() < 1e-12);
        // Noise around a flat line averages out.
        let y: Vec<f64> = (0..100)
            .map(|i| 1.0 + if i % 2 == 0 { 1e-3 } else { -1e-3 })
            .collect();
        assert!(relative_change(&y).abs() < 1e-4);
    }

    #[test]
    fn divergence_names_its_cause() {
        assert!(divergence(f64::NAN, None).unwrap().contains("NaN"));
        assert!(divergence(3.0, Some(2.0))
            .unwrap()
            .contains("rose more than 5%"));
        assert!(divergence(2.05, Some(2.0)).is_none());
        assert!(divergence(1.0, Some(2.0)).is_none());
    }
}
