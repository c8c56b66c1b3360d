//! scikit-learn's multiplicative-update solver (`solver='mu'`) for the
//! Frobenius and the generalised Kullback–Leibler loss, on a [`Device`].
//!
//! Frobenius: W ← W ∘ (X Hᵀ) / (W H Hᵀ), H ← H ∘ (Wᵀ X) / (Wᵀ W H).
//! KL: W ← W ∘ ((X / WH) Hᵀ) / (1 Hᵀ), H ← H ∘ (Wᵀ (X / WH)) / (Wᵀ 1),
//! with WH floored at float32's epsilon as scikit-learn does, and the
//! regularisation added to the denominators (l1 as a constant, l2 times the
//! factor). The loss is checked every 10 iterations; the fit stops when it
//! fell by less than `tol` times the starting loss since the last check.
//! (scikit-learn also zeroes entries of H below float64's epsilon after each
//! KL step; in float32 those stay at that size and change nothing visible.)

use super::{Nmf, NmfFit};
use crate::compute::{Axis, Binary, Device, Gemm, Reduce, Unary};
use crate::models::svi::Tally;

/// The loss of the multiplicative-update solver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loss {
    Frobenius,
    KullbackLeibler,
}

impl Loss {
    pub fn parse(s: &str) -> Option<Loss> {
        match s {
            "frobenius" => Some(Loss::Frobenius),
            "kullback-leibler" | "kl" => Some(Loss::KullbackLeibler),
            _ => None,
        }
    }
}

/// float32's machine epsilon (scikit-learn's EPSILON).
const EPS: f32 = f32::EPSILON;

/// Device buffers; no op writes a buffer it also reads (WebGPU forbids it).
struct Bufs<D: Device> {
    x: D::Buf,
    w: D::Buf,
    h: D::Buf,
    wh: D::Buf,
    r: D::Buf,
    r2: D::Buf,
    /// Numerator, denominator and two scratch buffers of W's update
    /// (rows × k), then of H's (k × cols).
    w_bufs: [D::Buf; 4],
    h_bufs: [D::Buf; 4],
    kk: D::Buf,
    vec: D::Buf,
    vec2: D::Buf,
    zero: D::Buf,
    /// The penalties (l1, l2) of W and of H, uploaded once.
    pen_w: [D::Buf; 2],
    pen_h: [D::Buf; 2],
    eps: D::Buf,
    tiny: D::Buf,
}

/// Fits X (rows × cols, dense, nonnegative) from W0 (rows × k), H0 (k × cols).
#[allow(clippy::too_many_arguments)]
pub async fn fit_mu<D: Device>(
    dev: &D,
    p: &Nmf,
    loss: Loss,
    x: &[f32],
    rows: usize,
    cols: usize,
    w0: &[f32],
    h0: &[f32],
) -> NmfFit {
    let k = p.n_components;
    let (rw, rh) = p.penalties(rows, cols);
    let b = Bufs {
        x: dev.upload(x),
        w: dev.upload(w0),
        h: dev.upload(h0),
        wh: dev.zeros(rows * cols),
        r: dev.zeros(rows * cols),
        r2: dev.zeros(rows * cols),
        w_bufs: std::array::from_fn(|_| dev.zeros(rows * k)),
        h_bufs: std::array::from_fn(|_| dev.zeros(k * cols)),
        kk: dev.zeros(k * k),
        vec: dev.zeros(k),
        vec2: dev.zeros(k),
        zero: dev.upload(&[0.0]),
        pen_w: [dev.upload(&[rw.0 as f32]), dev.upload(&[rw.1 as f32])],
        pen_h: [dev.upload(&[rh.0 as f32]), dev.upload(&[rh.1 as f32])],
        eps: dev.upload(&[EPS]),
        tiny: dev.upload(&[f32::MIN_POSITIVE]),
    };
    let mut tally = Tally::new(dev, &[1, 1, 1]);
    let start = loss_value(dev, &b, loss, rows, cols, k, &mut tally).await;
    let mut previous = start;
    let mut n_iter = 0;
    for it in 1..=p.max_iter {
        n_iter = it;
        update_w(dev, &b, loss, rows, cols, k);
        apply(dev, &b, &b.w, &b.w_bufs, &b.pen_w, rw);
        update_h(dev, &b, loss, rows, cols, k);
        apply(dev, &b, &b.h, &b.h_bufs, &b.pen_h, rh);
        if p.tol > 0.0 && it % 10 == 0 {
            let e = loss_value(dev, &b, loss, rows, cols, k, &mut tally).await;
            if (previous - e) / start < p.tol {
                break;
            }
            previous = e;
        }
    }
    let reconstruction_err = loss_value(dev, &b, loss, rows, cols, k, &mut tally).await;
    NmfFit {
        w: dev.read(&b.w).await[..rows * k].to_vec(),
        h: dev.read(&b.h).await[..k * cols].to_vec(),
        n_iter,
        reconstruction_err,
    }
}

/// r = X / max(WH, ε).
fn ratio<D: Device>(dev: &D, b: &Bufs<D>, rows: usize, cols: usize, k: usize) {
    dev.gemm(Gemm::new(rows, cols, k), &b.w, &b.h, &b.wh);
    dev.binary(Binary::Max, &b.wh, &b.eps, &b.r2);
    dev.binary(Binary::Div, &b.x, &b.r2, &b.r);
}

/// factor ← factor ∘ num / max(den + l1 + l2 · factor, tiny), with
/// [num, den, t1, t2] = bufs.
fn apply<D: Device>(
    dev: &D,
    b: &Bufs<D>,
    factor: &D::Buf,
    bufs: &[D::Buf; 4],
    [c1, c2]: &[D::Buf; 2],
    (l1, l2): (f64, f64),
) {
    let [num, den, t1, t2] = bufs;
    // `cur` holds the denominator so far; each step writes a free buffer.
    let mut cur = den;
    if l2 > 0.0 {
        dev.binary(Binary::Mul, factor, c2, t1);
        dev.binary(Binary::Add, cur, t1, t2);
        cur = t2;
    }
    if l1 > 0.0 {
        dev.binary(Binary::Add, cur, c1, t1);
        cur = t1;
    }
    let floor = if std::ptr::eq(cur, t1) { t2 } else { t1 };
    dev.binary(Binary::Max, cur, &b.tiny, floor);
    dev.binary(Binary::Div, num, floor, den);
    let other = if std::ptr::eq(floor, t1) { t2 } else { t1 };
    dev.binary(Binary::Mul, factor, den, other);
    dev.binary(Binary::Add, other, &b.zero, factor);
}

fn update_w<D: Device>(dev: &D, b: &Bufs<D>, loss: Loss, rows: usize, cols: usize, k: usize) {
    let [num, den, t1, _] = &b.w_bufs;
    let xht = Gemm {
        trans_b: true,
        ..Gemm::new(rows, k, cols)
    };
    match loss {
        Loss::Frobenius => {
            dev.gemm(xht, &b.x, &b.h, num);
            let hht = Gemm {
                trans_b: true,
                ..Gemm::new(k, k, cols)
            };
            dev.gemm(hht, &b.h, &b.h, &b.kk);
            dev.gemm(Gemm::new(rows, k, k), &b.w, &b.kk, den);
        }
        Loss::KullbackLeibler => {
            ratio(dev, b, rows, cols, k);
            dev.gemm(xht, &b.r, &b.h, num);
            // Each component's H row sum, on every row of W.
            dev.reduce(Reduce::Sum, Axis::Rows, &b.h, k, cols, &b.vec);
            dev.binary(Binary::Mul, &b.w, &b.zero, t1);
            dev.binary(Binary::Add, t1, &b.vec, den);
        }
    }
}

fn update_h<D: Device>(dev: &D, b: &Bufs<D>, loss: Loss, rows: usize, cols: usize, k: usize) {
    let [num, den, t1, _] = &b.h_bufs;
    let wtx = Gemm {
        trans_a: true,
        ..Gemm::new(k, cols, rows)
    };
    match loss {
        Loss::Frobenius => {
            dev.gemm(wtx, &b.w, &b.x, num);
            let wtw = Gemm {
                trans_a: true,
                ..Gemm::new(k, k, rows)
            };
            dev.gemm(wtw, &b.w, &b.w, &b.kk);
            dev.gemm(Gemm::new(k, cols, k), &b.kk, &b.h, den);
        }
        Loss::KullbackLeibler => {
            ratio(dev, b, rows, cols, k);
            dev.gemm(wtx, &b.w, &b.r, num);
            // Each component's W column sum on its row of H (an all-zero
            // column gives a zero numerator too).
            dev.reduce(Reduce::Sum, Axis::Cols, &b.w, rows, k, &b.vec);
            dev.binary(Binary::Max, &b.vec, &b.tiny, &b.vec2);
            dev.binary(Binary::Mul, &b.h, &b.zero, t1);
            dev.binary_rows(Binary::Add, t1, &b.vec2, k, cols, den);
        }
    }
}

/// ‖X − WH‖_F, or sqrt(2 · generalised KL(X ‖ WH)) (scikit-learn's
/// `reconstruction_err_` for each loss).
async fn loss_value<D: Device>(
    dev: &D,
    b: &Bufs<D>,
    loss: Loss,
    rows: usize,
    cols: usize,
    k: usize,
    tally: &mut Tally<D>,
) -> f64 {
    let n = rows * cols;
    tally.reset(dev);
    match loss {
        Loss::Frobenius => {
            dev.gemm(Gemm::new(rows, cols, k), &b.w, &b.h, &b.wh);
            dev.binary(Binary::Sub, &b.x, &b.wh, &b.r);
            dev.binary(Binary::Mul, &b.r, &b.r, &b.r2);
            tally.sum(dev, &b.r2, n, 0);
            tally.read(dev).await.at(0).max(0.0).sqrt()
        }
        Loss::KullbackLeibler => {
            // Σ X log(X / max(WH, ε)) over X > 0, + Σ WH − Σ X.
            ratio(dev, b, rows, cols, k);
            dev.binary(Binary::Max, &b.r, &b.tiny, &b.r2);
            dev.unary(Unary::Log, &b.r2, &b.r);
            dev.binary(Binary::Mul, &b.r, &b.x, &b.r2);
            tally.sum(dev, &b.r2, n, 0);
            tally.sum(dev, &b.wh, n, 1);
            tally.sum(dev, &b.x, n, 2);
            let t = tally.read(dev).await;
            (2.0 * (t.at(0) + t.at(1) - t.at(2)).max(0.0)).sqrt()
        }
    }
}
