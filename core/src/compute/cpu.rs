//! The CPU device: plain loops, written to be obviously right, with f64
//! accumulation in every reduction. It is the oracle every GPU kernel is
//! tested against, and a usable device in its own right: GEMM goes through
//! matrixmultiply (both cores natively) and large elementwise passes split
//! across threads, because models run on it when no GPU is present.

use std::cell::{Ref, RefCell};

use multiversion::multiversion;

use super::special::{digamma, digamma_asymptotic, lgamma, ln_poly, sigmoid, softplus};
use super::{
    philox, AdamParams, Axis, Binary, Csr, Density, Device, Gemm, GpKernel, KernelPart, Reduce,
    Tri, Unary,
};

#[derive(Debug, Default, Clone, Copy)]
pub struct Cpu;

/// Host storage; interior mutability so ops can take every buffer by `&`.
#[derive(Debug)]
pub struct CpuBuf(RefCell<Vec<f32>>);

impl CpuBuf {
    fn get(&self) -> Vec<f32> {
        self.0.borrow().clone()
    }

    /// Writes `v` at the start; a longer buffer keeps its length (and its
    /// tail), as a GPU buffer would.
    fn set(&self, v: Vec<f32>) {
        let mut b = self.0.borrow_mut();
        if b.len() > v.len() {
            b[..v.len()].copy_from_slice(&v);
        } else {
            *b = v;
        }
    }

    fn view(&self) -> Ref<'_, Vec<f32>> {
        self.0.borrow()
    }
}

/// A read view of `input` that stays valid while `out` is written: a copy
/// when they are the same buffer (in-place use), a borrow otherwise.
enum In<'a> {
    Borrowed(Ref<'a, Vec<f32>>),
    Owned(Vec<f32>),
}

impl std::ops::Deref for In<'_> {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        match self {
            In::Borrowed(r) => r,
            In::Owned(v) => v,
        }
    }
}

fn input<'a>(x: &'a CpuBuf, out: &CpuBuf) -> In<'a> {
    if std::ptr::eq(x, out) {
        In::Owned(x.get())
    } else {
        In::Borrowed(x.view())
    }
}

fn bcast(p: &[f32], i: usize) -> f64 {
    p[i % p.len()] as f64
}

/// Below this many elements a pass stays on one thread.
#[cfg_attr(target_arch = "wasm32", allow(dead_code))]
pub const PAR_MIN: usize = 1 << 16;

pub fn threads() -> usize {
    #[cfg(target_arch = "wasm32")]
    {
        1
    }
    // Asked once: on Linux each call reads cgroup files (~0.1 ms).
    #[cfg(not(target_arch = "wasm32"))]
    {
        static N: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
        *N.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get().min(8)))
    }
}

/// Runs `f(first_row, rows_chunk)` over `out` split into whole rows of
/// `row_len`, on several threads when the matrix is large.
fn par_rows(out: &mut [f32], row_len: usize, f: impl Fn(usize, &mut [f32]) + Sync) {
    par_rows_work(out, row_len, out.len(), f)
}

/// [`par_rows`] for passes whose `work` (elements read) exceeds `out`.
fn par_rows_work(
    out: &mut [f32],
    row_len: usize,
    work: usize,
    f: impl Fn(usize, &mut [f32]) + Sync,
) {
    let rows = out.len().checked_div(row_len).unwrap_or(0);
    let t = threads();
    #[cfg(not(target_arch = "wasm32"))]
    if t > 1 && work >= PAR_MIN && rows >= 2 {
        let per = rows.div_ceil(t);
        std::thread::scope(|s| {
            for (i, chunk) in out.chunks_mut(per * row_len).enumerate() {
                let f = &f;
                s.spawn(move || f(i * per, chunk));
            }
        });
        return;
    }
    let _ = (t, rows, work);
    f(0, out);
}

/// Runs `f` on each job, the jobs on threads of their own (one thread in
/// wasm32): for work the caller has already split evenly.
pub fn par_jobs<T: Send>(jobs: Vec<T>, f: impl Fn(T) + Sync) {
    #[cfg(not(target_arch = "wasm32"))]
    if jobs.len() > 1 {
        std::thread::scope(|s| {
            for job in jobs {
                let f = &f;
                s.spawn(move || f(job));
            }
        });
        return;
    }
    jobs.into_iter().for_each(f);
}

/// Elementwise pass out[i] = f(i) over chunks (threads when large).
fn par_map(out: &mut [f32], f: impl Fn(usize) -> f32 + Sync) {
    let chunk = out.len().div_ceil(threads()).max(1);
    par_rows(out, chunk.min(out.len()).max(1), |r0, o| {
        let base = r0 * chunk;
        for (j, v) in o.iter_mut().enumerate() {
            *v = f(base + j);
        }
    });
}

/// Memory the host can give: MemAvailable on Linux; 2 GiB in wasm32, whose
/// 4 GiB address space browsers rarely grant in full.
pub fn host_memory_available() -> Option<u64> {
    #[cfg(target_arch = "wasm32")]
    {
        Some(2 << 30)
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        let info = std::fs::read_to_string("/proc/meminfo").ok()?;
        let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
        let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb * 1024)
    }
}

/// Γ-Poisson log-pmf and gradients, in f64.
pub fn nb_terms(x: f64, mu: f64, theta: f64) -> (f64, f64, f64) {
    let (l, p, d_mu, d_theta) = nb_entry(x, mu, theta);
    (if p == 1.0 { l } else { l + p.ln() }, d_mu, d_theta)
}

/// One entry of [`nb_terms`] with its log-pmf split as `l + ln(p)`, so that
/// the products of many entries share one logarithm ([`LogSum`]): a small
/// whole count's lgamma(x+θ) − lgamma(θ) − ln x! + x ln(μ/(θ+μ)) is the log
/// of Π (θ+j) q/(j+1), q = μ/(θ+μ), and digamma's difference a short sum.
/// Entries then cost the one logarithm of ln(θ/(θ+μ)).
#[inline]
fn nb_entry(x: f64, mu: f64, theta: f64) -> (f64, f64, f64, f64) {
    let inv = 1.0 / (theta + mu);
    let lt = (theta * inv).ln();
    let d_mu = x / mu - (x + theta) * inv;
    let rest = lt + 1.0 - (x + theta) * inv;
    if x == 0.0 {
        return (theta * lt, 1.0, d_mu, rest);
    }
    if x > 0.0 && x < SMALL_COUNT as f64 && x.fract() == 0.0 {
        let (p, dg) = small_count(x as usize, theta, mu * inv);
        if p.is_finite() && p > 0.0 {
            return (theta * lt, p, d_mu, dg + rest);
        }
    }
    let (lg, dg) = lgamma_digamma_shift(x, theta);
    (lg + theta * lt + x * (mu * inv).ln(), 1.0, d_mu, dg + rest)
}

/// lgamma(k+θ) − lgamma(θ) − ln k! and digamma(k+θ) − digamma(θ) for
/// each θ and each count k below [`SMALL_COUNT`]: the part of a small
/// count's terms that does not depend on the mean.
/// With them, lgamma(θ) and digamma(θ) for the large counts.
struct SmallCounts {
    lg: Vec<[f64; SMALL_COUNT]>,
    dg: Vec<[f64; SMALL_COUNT]>,
    lg_theta: Vec<f64>,
    dg_theta: Vec<f64>,
}

impl SmallCounts {
    fn new(theta: &[f32]) -> SmallCounts {
        let (mut lg, mut dg) = (vec![], vec![]);
        let lg_theta = theta.iter().map(|&t| lgamma(t as f64)).collect();
        let dg_theta = theta.iter().map(|&t| digamma(t as f64)).collect();
        for &t in theta {
            let (mut l, mut d) = ([0f64; SMALL_COUNT], [0f64; SMALL_COUNT]);
            for k in 1..SMALL_COUNT {
                let v = t as f64 + (k - 1) as f64;
                l[k] = l[k - 1] + (v / k as f64).ln();
                d[k] = d[k - 1] + 1.0 / v;
            }
            lg.push(l);
            dg.push(d);
        }
        SmallCounts {
            lg,
            dg,
            lg_theta,
            dg_theta,
        }
    }
}

/// One row of [`Device::nb_loglik_grad`] with θ per column: zero and small
/// whole counts in one vectorised pass, counts of [`SMALL_COUNT`] or more
/// in a second over their positions, then what those leave (values outside
/// ln_poly's range or the series') one at a time. Returns the row's
/// log-likelihood.
fn nb_row(
    x: &[f32],
    mu: &[f32],
    th: &[f32],
    tab: &SmallCounts,
    gm: &mut [f32],
    gt: &mut [f32],
    scratch: &mut NbScratch,
) -> f64 {
    let NbScratch {
        ll,
        left,
        large,
        out,
    } = scratch;
    // The tables go as slices: the compiler then knows nothing writes them.
    nb_small_counts(x, mu, th, &tab.lg, &tab.dg, gm, gt, ll, left);
    large.clear();
    large.extend(
        (0..x.len() as u32).filter(|&k| left[k as usize] && x[k as usize] >= SMALL_COUNT as f32),
    );
    out.resize(large.len(), [0.0; 3]);
    nb_large_counts(large, x, mu, th, &tab.lg_theta, &tab.dg_theta, out);
    for (&k, &[l, dm, dt]) in large.iter().zip(out.iter()) {
        let k = k as usize;
        if l.is_finite() && dm.is_finite() && dt.is_finite() {
            (ll[k], gm[k], gt[k], left[k]) = (l, dm as f32, dt as f32, false);
        }
    }
    let mut acc = sum8(&ll[..]);
    let mut lp = LogSum::new();
    for k in 0..x.len() {
        if left[k] {
            let (l, p, dm, dt) = nb_entry(x[k] as f64, mu[k] as f64, th[k] as f64);
            acc += l;
            if p != 1.0 {
                lp.mul(p);
            }
            gm[k] = dm as f32;
            gt[k] = dt as f32;
        }
    }
    acc + lp.ln()
}

#[derive(Default)]
struct NbScratch {
    ll: Vec<f64>,
    left: Vec<bool>,
    large: Vec<u32>,
    out: Vec<[f64; 3]>,
}

/// [`nb_entry`] at the positions `at` (counts of [`SMALL_COUNT`] or more,
/// so x + θ and x + 1 are past 16): lgamma and digamma of them by their
/// asymptotic series (terms below 1e-16 at 16 left out), of θ from the
/// tables. Straight-line code over gathered entries, each one's log-pmf
/// and gradients in `out` (not finite where the scalar path must take it).
#[multiversion(targets("x86_64+avx+avx2+fma+avx512f+avx512dq+avx512vl", "x86_64+avx+avx2+fma"))]
fn nb_large_counts(
    at: &[u32],
    x: &[f32],
    mu: &[f32],
    th: &[f32],
    lg_theta: &[f64],
    dg_theta: &[f64],
    out: &mut [[f64; 3]],
) {
    // lgamma(z) − (z − ½) ln z + z − ½ ln 2π in powers of r = 1/z.
    let lg_series = |r: f64| {
        let r2 = r * r;
        r * (1.0 / 12.0
            - r2 * (1.0 / 360.0
                - r2 * (1.0 / 1260.0
                    - r2 * (1.0 / 1680.0 - r2 * (1.0 / 1188.0 - r2 * (691.0 / 360_360.0))))))
    };
    for (&k, o) in at.iter().zip(out.iter_mut()) {
        let k = k as usize;
        let (xv, m, t) = (x[k] as f64, mu[k] as f64, th[k] as f64);
        let (z, w) = (xv + t, xv + 1.0);
        let (lz, lw) = (ln_poly(z), ln_poly(w));
        // lgamma(x+θ) − lgamma(x+1), the ½ ln 2π cancelling.
        let lg_diff =
            (z - 0.5) * lz - z + lg_series(1.0 / z) - ((w - 0.5) * lw - w + lg_series(1.0 / w));
        let dg_z = digamma_asymptotic(z, lz);
        let inv = 1.0 / (t + m);
        let lt = ln_poly(t * inv);
        let xt = (xv + t) * inv;
        *o = [
            lg_diff - lg_theta[k] + t * lt + xv * ln_poly(m * inv),
            xv / m - xt,
            dg_z - dg_theta[k] + lt + 1.0 - xt,
        ];
    }
}

/// Σ v in f64 over eight running sums, so that the loop vectorises.
fn sum8<T: Copy + Into<f64>>(v: &[T]) -> f64 {
    let mut acc = [0f64; 8];
    let chunks = v.chunks_exact(8);
    let tail: f64 = chunks.remainder().iter().map(|&x| x.into()).sum();
    for c in chunks {
        for l in 0..8 {
            acc[l] += c[l].into();
        }
    }
    acc.iter().sum::<f64>() + tail
}

/// [`nb_entry`] for every count that is 0 or a whole number below
/// [`SMALL_COUNT`], the count's own terms from `tab` and the logarithms by
/// [`ln_poly`]: straight-line code the compiler vectorises. Writes each
/// entry's log-pmf to `ll`; other entries are marked in `left` (ll 0).
#[multiversion(targets("x86_64+avx+avx2+fma+avx512f+avx512dq+avx512vl", "x86_64+avx+avx2+fma"))]
#[allow(clippy::too_many_arguments)]
fn nb_small_counts(
    x: &[f32],
    mu: &[f32],
    th: &[f32],
    lg: &[[f64; SMALL_COUNT]],
    dg: &[[f64; SMALL_COUNT]],
    gm: &mut [f32],
    gt: &mut [f32],
    ll: &mut Vec<f64>,
    left: &mut Vec<bool>,
) {
    let n = x.len();
    ll.resize(n, 0.0);
    left.resize(n, false);
    let (mu, th, lgt, dgt) = (&mu[..n], &th[..n], &lg[..n], &dg[..n]);
    let (gm, gt, ll, left) = (&mut gm[..n], &mut gt[..n], &mut ll[..n], &mut left[..n]);
    for k in 0..n {
        let (x, m, t) = (x[k] as f64, mu[k] as f64, th[k] as f64);
        let small = x >= 0.0 && x < SMALL_COUNT as f64 && x.trunc() == x;
        let c = if small {
            x as usize & (SMALL_COUNT - 1)
        } else {
            0
        };
        let inv = 1.0 / (t + m);
        let lt = ln_poly(t * inv);
        let lq = if x == 0.0 { 0.0 } else { x * ln_poly(m * inv) };
        let xt = (x + t) * inv;
        let l = lgt[k][c] + t * lt + lq;
        let dt = dgt[k][c] + lt + 1.0 - xt;
        let ok = small && l.is_finite() && dt.is_finite();
        gm[k] = (x / m - xt) as f32;
        gt[k] = dt as f32;
        ll[k] = if ok { l } else { 0.0 };
        left[k] = !ok;
    }
}

/// 1/(j+1) for the small counts' products.
const SMALL_INV: [f64; SMALL_COUNT] = [
    1.0,
    1.0 / 2.0,
    1.0 / 3.0,
    1.0 / 4.0,
    1.0 / 5.0,
    1.0 / 6.0,
    1.0 / 7.0,
    1.0 / 8.0,
    1.0 / 9.0,
    1.0 / 10.0,
    1.0 / 11.0,
    1.0 / 12.0,
    1.0 / 13.0,
    1.0 / 14.0,
    1.0 / 15.0,
    1.0 / 16.0,
];

/// Π_{j<k} (θ+j) q/(j+1) and Σ_{j<k} 1/(θ+j), for a whole count k.
#[inline]
fn small_count(k: usize, theta: f64, q: f64) -> (f64, f64) {
    let (mut p, mut dg) = (1.0, 0.0);
    for (j, inv_j) in SMALL_INV.iter().enumerate().take(k) {
        let v = theta + j as f64;
        p *= v * q * inv_j;
        dg += 1.0 / v;
    }
    (p, dg)
}

/// A sum of logarithms kept as a running product, with one logarithm each
/// time the product leaves [1e-250, 1e250].
struct LogSum {
    prod: f64,
    sum: f64,
}

impl LogSum {
    fn new() -> LogSum {
        LogSum {
            prod: 1.0,
            sum: 0.0,
        }
    }

    #[inline]
    fn mul(&mut self, p: f64) {
        let next = self.prod * p;
        if (1e-250..=1e250).contains(&next) {
            self.prod = next;
        } else {
            // Each factor's logarithm on its own: their product may not be finite.
            self.sum += self.prod.ln() + p.ln();
            self.prod = 1.0;
        }
    }

    fn ln(&self) -> f64 {
        self.sum + self.prod.ln()
    }
}

/// [`nb_terms`] summed over `n` entries sharing one mean and concentration,
/// of which `xs` are the non-zero counts and the rest zeros: the terms that
/// depend on the parameters only are evaluated once, a small count's terms
/// come from a table built up to the largest count seen, and the counts
/// share logarithms: two per group and gene.
pub fn nb_group_terms(xs: &[f32], n: f64, mu: f64, theta: f64, ln_theta: f64) -> (f64, f64, f64) {
    let inv = 1.0 / (theta + mu);
    let ln_sum = (theta + mu).ln();
    let lt = ln_theta - ln_sum;
    // table[k] = (Π_{j<k} (θ+j) μ/(j+1), Σ_{j<k} 1/(θ+j)); ln of the first
    // is lgamma(k+θ) − lgamma(θ) − ln k! + k ln μ.
    let mut table = [(1.0, 0.0); SMALL_COUNT];
    let mut built = 1;
    let (mut sum_x, mut lg, mut dg, mut lp) = (0.0, 0.0, 0.0, LogSum::new());
    for &x in xs {
        let x = x as f64;
        sum_x += x;
        if x > 0.0 && x < SMALL_COUNT as f64 && x.fract() == 0.0 {
            let k = x as usize;
            while built <= k {
                let (p, d) = table[built - 1];
                let v = theta + (built - 1) as f64;
                table[built] = (p * v * mu / built as f64, d + 1.0 / v);
                built += 1;
            }
            let (p, d) = table[k];
            if p.is_finite() && p > 0.0 {
                lp.mul(p);
                dg += d;
                continue;
            }
        }
        let (l, d) = lgamma_digamma_shift(x, theta);
        lg += l + x * mu.ln();
        dg += d;
    }
    // Σ x ln(μ/(θ+μ)): the ln μ part rode in the products.
    let ll = lg + lp.ln() + n * theta * lt - sum_x * ln_sum;
    let d_mu = sum_x / mu - (sum_x + n * theta) * inv;
    let d_theta = dg + n * (lt + 1.0) - (sum_x + n * theta) * inv;
    (ll, d_mu, d_theta)
}

/// lgamma(x + θ) − lgamma(θ) − ln x! and digamma(x + θ) − digamma(θ).
fn lgamma_digamma_shift(x: f64, theta: f64) -> (f64, f64) {
    if x >= 0.0 && x < SMALL_COUNT as f64 && x.fract() == 0.0 {
        let k = x as usize;
        let (p, dg) = small_count(k, theta, 1.0);
        let lg = if p.is_finite() && p > 0.0 {
            p.ln()
        } else {
            (0..k)
                .map(|j| ((theta + j as f64) / (j + 1) as f64).ln())
                .sum()
        };
        (lg, dg)
    } else {
        (
            lgamma(x + theta) - lgamma(theta) - lgamma(x + 1.0),
            digamma(x + theta) - digamma(theta),
        )
    }
}

/// Counts below this take the summed form in [`nb_terms`]; a power of two,
/// so that the vector pass can mask a count into its table.
const SMALL_COUNT: usize = 16;
const _: () = assert!(SMALL_COUNT.is_power_of_two());

/// ln y! for a count y: a table below 1024, lgamma above.
fn ln_factorial(y: f64) -> f64 {
    static TABLE: std::sync::OnceLock<Vec<f64>> = std::sync::OnceLock::new();
    let t = TABLE.get_or_init(|| {
        let mut t = vec![0f64; 1024];
        for k in 2..1024 {
            t[k] = t[k - 1] + (k as f64).ln();
        }
        t
    });
    if (0.0..1024.0).contains(&y) && y.fract() == 0.0 {
        t[y as usize]
    } else {
        lgamma(y + 1.0)
    }
}

pub fn log_density_term(d: Density, x: f64, p1: f64, p2: f64) -> f64 {
    match d {
        Density::Gamma => p1 * p2.ln() - lgamma(p1) + (p1 - 1.0) * x.ln() - p2 * x,
        Density::Exponential => p1.ln() - p1 * x,
        Density::Normal => {
            let z = (x - p1) / p2;
            -0.5 * z * z - p2.ln() - 0.5 * (2.0 * std::f64::consts::PI).ln()
        }
    }
}

fn apply(op: Binary, x: f32, y: f32) -> f32 {
    match op {
        Binary::Add => x + y,
        Binary::Sub => x - y,
        Binary::Mul => x * y,
        Binary::Div => x / y,
        Binary::Max => x.max(y),
    }
}

/// torch's clamp on each norm in cosine_similarity.
pub const COSINE_EPS: f64 = 1e-8;

/// Checks a GEMM's buffers and returns the (row, column) strides of op(A)
/// (m×k) and op(B) (k×n) in row-major storage.
fn gemm_strides(g: &Gemm, a: usize, b: usize, c: usize) -> ((usize, usize), (usize, usize)) {
    assert!(
        a >= g.batch * g.m * g.k && b >= g.batch * g.k * g.n && c >= g.batch * g.m * g.n,
        "gemm: buffer too small"
    );
    (
        if g.trans_a { (1, g.m) } else { (g.k, 1) },
        if g.trans_b { (1, g.k) } else { (g.n, 1) },
    )
}

/// Output rows below which [`gemm_few_rows`] replaces matrixmultiply.
const FEW_ROWS: usize = 4;

/// C = α op(A) B + β C for a C of a few rows over a tall row-major B (the
/// per-batch sums of the models' gradients): one pass over B, in f64,
/// columns split across threads; matrixmultiply would copy all of B first.
fn gemm_few_rows(g: &Gemm, a: &[f32], b: &[f32], c: &mut [f32]) {
    let (m, n, k) = (g.m, g.n, g.k);
    let a_at = |i: usize, kk: usize| {
        (if g.trans_a {
            a[kk * m + i]
        } else {
            a[i * k + kk]
        }) as f64
    };
    let block = |j0: usize, j1: usize| {
        let w = j1 - j0;
        let mut acc = vec![0f64; m * w];
        for kk in 0..k {
            let row = &b[kk * n + j0..kk * n + j1];
            for i in 0..m {
                // No skipping zeros of A: 0 · ∞ must stay NaN, as on a GPU.
                let v = a_at(i, kk);
                for (s, &x) in acc[i * w..(i + 1) * w].iter_mut().zip(row) {
                    *s += v * x as f64;
                }
            }
        }
        acc
    };
    let t = if k * n >= PAR_MIN && n >= 2 * threads() {
        threads()
    } else {
        1
    };
    let per = n.div_ceil(t);
    let parts: Vec<(usize, Vec<f64>)> = if t > 1 && cfg!(not(target_arch = "wasm32")) {
        std::thread::scope(|s| {
            let hs: Vec<_> = (0..n)
                .step_by(per)
                .map(|j0| {
                    let block = &block;
                    s.spawn(move || (j0, block(j0, (j0 + per).min(n))))
                })
                .collect();
            hs.into_iter()
                .map(|h| h.join().expect("gemm thread"))
                .collect()
        })
    } else {
        vec![(0, block(0, n))]
    };
    for (j0, acc) in parts {
        let w = acc.len() / m.max(1);
        for i in 0..m {
            for (jj, &v) in acc[i * w..(i + 1) * w].iter().enumerate() {
                let o = &mut c[i * n + j0 + jj];
                *o = (g.alpha as f64 * v
                    + if g.beta == 0.0 {
                        0.0
                    } else {
                        g.beta as f64 * *o as f64
                    }) as f32;
            }
        }
    }
}

impl Device for Cpu {
    type Buf = CpuBuf;
    type Index = Vec<u32>;

    fn name(&self) -> String {
        "cpu".into()
    }

    fn upload(&self, data: &[f32]) -> CpuBuf {
        CpuBuf(RefCell::new(data.to_vec()))
    }

    fn upload_index(&self, data: &[u32]) -> Vec<u32> {
        data.to_vec()
    }

    fn upload_owned(&self, data: Vec<f32>) -> CpuBuf {
        CpuBuf(RefCell::new(data))
    }

    fn upload_index_owned(&self, data: Vec<u32>) -> Vec<u32> {
        data
    }

    fn zeros(&self, len: usize) -> CpuBuf {
        CpuBuf(RefCell::new(vec![0.0; len]))
    }

    fn len(&self, buf: &CpuBuf) -> usize {
        buf.0.borrow().len()
    }

    fn memory_budget(&self) -> Option<u64> {
        host_memory_available()
    }

    fn shares_host_memory(&self) -> bool {
        true
    }

    async fn read(&self, buf: &CpuBuf) -> Vec<f32> {
        buf.get()
    }

    fn gemm(&self, g: Gemm, a: &CpuBuf, b: &CpuBuf, c: &CpuBuf) {
        let (a, b) = (input(a, c), input(b, c));
        let mut out = c.0.borrow_mut();
        let ((rsa, csa), (rsb, csb)) = gemm_strides(&g, a.len(), b.len(), out.len());
        for t in 0..g.batch {
            let (a, b) = (&a[t * g.m * g.k..], &b[t * g.k * g.n..]);
            let c = &mut out[t * g.m * g.n..(t + 1) * g.m * g.n];
            if g.k == 0 {
                c.iter_mut().for_each(|v| *v *= g.beta);
                continue;
            }
            if g.m <= FEW_ROWS && !g.trans_b {
                gemm_few_rows(&g, a, b, c);
                continue;
            }
            // SAFETY: the asserts above keep every index of the strided
            // m×k, k×n and m×n views inside a, b and c.
            unsafe {
                matrixmultiply::sgemm(
                    g.m,
                    g.k,
                    g.n,
                    g.alpha,
                    a.as_ptr(),
                    rsa as isize,
                    csa as isize,
                    b.as_ptr(),
                    rsb as isize,
                    csb as isize,
                    g.beta,
                    c.as_mut_ptr(),
                    g.n as isize,
                    1,
                );
            }
        }
    }

    fn gemm_tri(&self, g: Gemm, tri: Tri, a: &CpuBuf, b: &CpuBuf, c: &CpuBuf) {
        if g.k == 0 {
            return self.gemm(g, a, b, c);
        }
        let (a, b) = (input(a, c), input(b, c));
        let mut out = c.0.borrow_mut();
        let ((rsa, csa), (rsb, csb)) = gemm_strides(&g, a.len(), b.len(), out.len());
        match tri {
            Tri::LowerB => assert!(
                g.k == g.n && !g.trans_b,
                "gemm_tri: B must be square, stored as is"
            ),
            Tri::LowerC => assert!(g.m == g.n, "gemm_tri: C must be square"),
        }
        const NB: usize = 128;
        for t in 0..g.batch {
            let (a, b) = (&a[t * g.m * g.k..], &b[t * g.k * g.n..]);
            let c = &mut out[t * g.m * g.n..(t + 1) * g.m * g.n];
            for j0 in (0..g.n).step_by(NB) {
                let w = NB.min(g.n - j0);
                // LowerB: C's columns j0.. meet B's rows j0.. only. LowerC:
                // C's rows j0..j0+w are wanted up to column j0+w.
                let (m, k, n, ai, bi, ci, ak, bk) = match tri {
                    Tri::LowerB => (g.m, g.k - j0, w, 0, j0 * rsb + j0 * csb, j0, j0 * csa, 0),
                    Tri::LowerC => (w, g.k, j0 + w, j0 * rsa, 0, j0 * g.n, 0, 0),
                };
                if m == 0 || k == 0 {
                    continue;
                }
                // SAFETY: the sub-blocks lie inside the asserted extents of
                // the strided m×k, k×n and m×n views.
                unsafe {
                    matrixmultiply::sgemm(
                        m,
                        k,
                        n,
                        g.alpha,
                        a.as_ptr().add(ai + ak),
                        rsa as isize,
                        csa as isize,
                        b.as_ptr().add(bi + bk),
                        rsb as isize,
                        csb as isize,
                        g.beta,
                        c.as_mut_ptr().add(ci),
                        g.n as isize,
                        1,
                    );
                }
            }
        }
    }

    fn csr_mm(&self, a: &Csr<Self>, b: &CpuBuf, n: usize, transpose: bool, c: &CpuBuf) {
        let (b, data) = (b.get(), a.data.get());
        let out_rows = if transpose { a.cols } else { a.rows };
        let mut out = vec![0f64; out_rows * n];
        for r in 0..a.rows {
            let span = a.indptr[r] as usize..a.indptr[r + 1] as usize;
            for (&col, &v) in a.indices[span.clone()].iter().zip(&data[span]) {
                let (col, v) = (col as usize, v as f64);
                for j in 0..n {
                    if transpose {
                        out[col * n + j] += v * b[r * n + j] as f64;
                    } else {
                        out[r * n + j] += v * b[col * n + j] as f64;
                    }
                }
            }
        }
        c.set(out.into_iter().map(|v| v as f32).collect());
    }

    fn unary(&self, op: Unary, x: &CpuBuf, out: &CpuBuf) {
        let x = input(x, out);
        let x: &[f32] = &x;
        let mut o = out.0.borrow_mut();
        assert!(o.len() >= x.len(), "unary: output too small");
        let o = &mut o[..x.len()];
        match op {
            // f32 is exact enough for these two and twice as fast.
            Unary::Exp => par_map(o, |i| x[i].exp()),
            Unary::Log => par_map(o, |i| x[i].ln()),
            _ => {
                let f = |v: f64| match op {
                    Unary::Softplus => softplus(v),
                    Unary::Sigmoid => sigmoid(v),
                    Unary::Lgamma => lgamma(v),
                    Unary::Digamma => digamma(v),
                    _ => {
                        if v == 0.0 {
                            0.0
                        } else {
                            v.signum()
                        }
                    }
                };
                par_map(o, |i| f(x[i] as f64) as f32)
            }
        }
    }

    fn binary(&self, op: Binary, a: &CpuBuf, b: &CpuBuf, out: &CpuBuf) {
        let (a, b) = (input(a, out), input(b, out));
        let (a, b): (&[f32], &[f32]) = (&a, &b);
        let mut o = out.0.borrow_mut();
        assert!(o.len() >= a.len() && !b.is_empty(), "binary: bad lengths");
        let (n, nb) = (a.len(), b.len());
        let o = &mut o[..n];
        macro_rules! each {
            ($f:expr) => {{
                let f = $f;
                if nb == n {
                    par_map(o, |i| f(a[i], b[i]))
                } else if nb == 1 {
                    par_map(o, |i| f(a[i], b[0]))
                } else if n % nb == 0 {
                    // b repeats along rows of its own length.
                    par_rows(o, nb, |r0, chunk| {
                        for (rr, row) in chunk.chunks_exact_mut(nb).enumerate() {
                            let ar = &a[(r0 + rr) * nb..(r0 + rr + 1) * nb];
                            for ((x, &u), &v) in row.iter_mut().zip(ar).zip(b) {
                                *x = f(u, v);
                            }
                        }
                    })
                } else {
                    par_map(o, |i| f(a[i], b[i % nb]))
                }
            }};
        }
        match op {
            Binary::Add => each!(|x: f32, y: f32| x + y),
            Binary::Sub => each!(|x: f32, y: f32| x - y),
            Binary::Mul => each!(|x: f32, y: f32| x * y),
            Binary::Div => each!(|x: f32, y: f32| x / y),
            Binary::Max => each!(|x: f32, y: f32| x.max(y)),
        }
    }

    fn binary_rows(
        &self,
        op: Binary,
        a: &CpuBuf,
        v: &CpuBuf,
        rows: usize,
        cols: usize,
        out: &CpuBuf,
    ) {
        let (a, v) = (input(a, out), input(v, out));
        let (a, v): (&[f32], &[f32]) = (&a, &v);
        let mut o = out.0.borrow_mut();
        assert!(
            a.len() >= rows * cols && v.len() >= rows && o.len() >= rows * cols,
            "binary_rows: bad lengths"
        );
        par_rows(&mut o[..rows * cols], cols.max(1), |r0, chunk| {
            for (rr, row) in chunk.chunks_exact_mut(cols.max(1)).enumerate() {
                let (r, ar) = (r0 + rr, &a[(r0 + rr) * cols..(r0 + rr + 1) * cols]);
                for (x, &u) in row.iter_mut().zip(ar) {
                    *x = apply(op, u, v[r]);
                }
            }
        });
    }

    fn reduce(&self, op: Reduce, axis: Axis, x: &CpuBuf, rows: usize, cols: usize, out: &CpuBuf) {
        let x = input(x, out);
        let r: Vec<f32> = match axis {
            Axis::Rows if op == Reduce::Sum => {
                let (mut r, x): (_, &[f32]) = (vec![0f32; rows], &x);
                par_rows_work(&mut r, 1, rows * cols, |r0, o| {
                    for (i, v) in o.iter_mut().enumerate() {
                        *v = sum8(&x[(r0 + i) * cols..(r0 + i + 1) * cols]) as f32;
                    }
                });
                r
            }
            Axis::Rows => (0..rows)
                .map(|i| reduce_slice(op, x[i * cols..(i + 1) * cols].iter().copied()))
                .collect(),
            Axis::Cols if op == Reduce::Sum => {
                // Row-major sweep: cache-friendly for tall matrices.
                let mut acc = vec![0f64; cols];
                for row in x[..rows * cols].chunks_exact(cols.max(1)) {
                    for (a, &v) in acc.iter_mut().zip(row) {
                        *a += v as f64;
                    }
                }
                acc.into_iter().map(|v| v as f32).collect()
            }
            Axis::Cols => (0..cols)
                .map(|j| reduce_slice(op, (0..rows).map(|i| x[i * cols + j])))
                .collect(),
        };
        let mut o = out.0.borrow_mut();
        o[..r.len()].copy_from_slice(&r);
    }

    fn softmax_rows(&self, x: &CpuBuf, rows: usize, cols: usize, out: &CpuBuf) {
        let x = input(x, out);
        let x: &[f32] = &x;
        let mut o = out.0.borrow_mut();
        par_rows(&mut o[..rows * cols], cols.max(1), |r0, chunk| {
            for (k, orow) in chunk.chunks_exact_mut(cols).enumerate() {
                let row = &x[(r0 + k) * cols..(r0 + k + 1) * cols];
                let m = row.iter().fold(f32::NEG_INFINITY, |a, &v| a.max(v));
                let mut s = 0f64;
                for (o, &v) in orow.iter_mut().zip(row) {
                    *o = (v - m).exp();
                    s += *o as f64;
                }
                let inv = (1.0 / s) as f32;
                orow.iter_mut().for_each(|o| *o *= inv);
            }
        });
    }

    fn softmax_backward(&self, p: &CpuBuf, dp: &CpuBuf, rows: usize, cols: usize, dx: &CpuBuf) {
        let (p, dp) = (input(p, dx), input(dp, dx));
        let (p, dp): (&[f32], &[f32]) = (&p, &dp);
        let mut o = dx.0.borrow_mut();
        assert!(
            p.len() >= rows * cols && dp.len() >= rows * cols && o.len() >= rows * cols,
            "softmax_backward: bad lengths"
        );
        par_rows(&mut o[..rows * cols], cols.max(1), |r0, chunk| {
            for (k, orow) in chunk.chunks_exact_mut(cols).enumerate() {
                let span = (r0 + k) * cols..(r0 + k + 1) * cols;
                let (pr, dr) = (&p[span.clone()], &dp[span]);
                let dot: f64 = pr.iter().zip(dr).map(|(&a, &b)| a as f64 * b as f64).sum();
                let dot = dot as f32;
                for ((o, &a), &b) in orow.iter_mut().zip(pr).zip(dr) {
                    *o = a * (b - dot);
                }
            }
        });
    }

    fn cosine(&self, axis: Axis, a: &CpuBuf, b: &CpuBuf, rows: usize, cols: usize, out: &CpuBuf) {
        let (a, b) = (input(a, out), input(b, out));
        let stats = cosine_stats(axis, &a, &b, rows, cols);
        let r: Vec<f32> = stats
            .iter()
            .map(|&(ab, aa, bb)| {
                (ab / (aa.sqrt().max(COSINE_EPS) * bb.sqrt().max(COSINE_EPS))) as f32
            })
            .collect();
        out.0.borrow_mut()[..r.len()].copy_from_slice(&r);
    }

    fn cosine_grad(
        &self,
        axis: Axis,
        a: &CpuBuf,
        b: &CpuBuf,
        rows: usize,
        cols: usize,
        weight: f32,
        cos: &CpuBuf,
        grad: &CpuBuf,
    ) {
        let (a, b) = (input(a, grad), input(b, grad));
        assert!(
            a.len() >= rows * cols && b.len() >= rows * cols,
            "cosine_grad: bad lengths"
        );
        // Per output: (cos, coefficient of b, coefficient of a) in the gradient.
        let coef: Vec<(f64, f64, f64)> = cosine_stats(axis, &a, &b, rows, cols)
            .into_iter()
            .map(|(ab, aa, bb)| {
                let (na, nb) = (aa.sqrt().max(COSINE_EPS), bb.sqrt().max(COSINE_EPS));
                let c = ab / (na * nb);
                let w = weight as f64;
                (c, w / (na * nb), -w * c / (na * na))
            })
            .collect();
        {
            let mut cs = cos.0.borrow_mut();
            assert!(cs.len() >= coef.len(), "cosine_grad: cos too small");
            for (o, c) in cs.iter_mut().zip(&coef) {
                *o = c.0 as f32;
            }
        }
        let mut g = grad.0.borrow_mut();
        assert!(g.len() >= rows * cols, "cosine_grad: grad too small");
        for i in 0..rows * cols {
            let (_, cb, ca) = coef[if axis == Axis::Rows {
                i / cols
            } else {
                i % cols
            }];
            g[i] = (cb * b[i] as f64 + ca * a[i] as f64) as f32;
        }
    }

    fn gather(&self, x: &CpuBuf, idx: &Vec<u32>, out: &CpuBuf) {
        let x = x.get();
        let mut o = out.0.borrow_mut();
        for (o, &i) in o.iter_mut().zip(idx) {
            *o = x[i as usize];
        }
    }

    fn scatter_add(&self, x: &CpuBuf, idx: &Vec<u32>, out: &CpuBuf) {
        let x = x.get();
        let mut o = out.0.borrow_mut();
        for (v, &i) in x.iter().zip(idx) {
            o[i as usize] += v;
        }
    }

    fn nb_loglik_grad(
        &self,
        x: &CpuBuf,
        mu: &CpuBuf,
        theta: &CpuBuf,
        rows: usize,
        cols: usize,
        ll_rows: &CpuBuf,
        grad_mu: &CpuBuf,
        grad_theta: &CpuBuf,
    ) {
        let (xv, muv, thv) = (x.view(), mu.view(), theta.view());
        let (x, mu, theta): (&[f32], &[f32], &[f32]) = (&xv, &muv, &thv);
        let n = rows * cols;
        let (mut gm, mut gt) = (grad_mu.0.borrow_mut(), grad_theta.0.borrow_mut());
        assert!(
            x.len() >= n && mu.len() >= n && gm.len() >= n && gt.len() >= n && !theta.is_empty(),
            "nb_loglik_grad: bad lengths"
        );
        let mut ll = vec![0f64; rows];
        // θ per column, the models' case, shares its small-count terms.
        let tab = (theta.len() == cols).then(|| SmallCounts::new(theta));
        let work = |r0: usize, ll: &mut [f64], gm: &mut [f32], gt: &mut [f32]| {
            let rows = gm
                .chunks_exact_mut(cols.max(1))
                .zip(gt.chunks_exact_mut(cols.max(1)));
            let mut scratch = NbScratch::default();
            for (rr, (gm, gt)) in rows.enumerate() {
                let base = (r0 + rr) * cols;
                let (x, mu) = (&x[base..base + cols], &mu[base..base + cols]);
                if let Some(tab) = &tab {
                    ll[rr] = nb_row(x, mu, &theta[..cols], tab, gm, gt, &mut scratch);
                    continue;
                }
                let (mut acc, mut lp) = (0.0, LogSum::new());
                for k in 0..cols {
                    let (l, p, dm, dt) =
                        nb_entry(x[k] as f64, mu[k] as f64, bcast(theta, base + k));
                    acc += l;
                    if p != 1.0 {
                        lp.mul(p);
                    }
                    gm[k] = dm as f32;
                    gt[k] = dt as f32;
                }
                ll[rr] = acc + lp.ln();
            }
        };
        let t = threads();
        if t > 1 && n >= PAR_MIN && rows >= 2 && cfg!(not(target_arch = "wasm32")) {
            let per = rows.div_ceil(t);
            std::thread::scope(|s| {
                let chunks = ll
                    .chunks_mut(per)
                    .zip(gm[..n].chunks_mut(per * cols))
                    .zip(gt[..n].chunks_mut(per * cols));
                for (i, ((l, m), g)) in chunks.enumerate() {
                    let work = &work;
                    s.spawn(move || work(i * per, l, m, g));
                }
            });
        } else if cols > 0 {
            work(0, &mut ll, &mut gm[..n], &mut gt[..n]);
        }
        drop((gm, gt));
        ll_rows.set(ll.into_iter().map(|v| v as f32).collect());
    }

    fn nb_grouped(
        &self,
        x: &CpuBuf,
        seg: &Vec<u32>,
        count: &CpuBuf,
        mu: &CpuBuf,
        theta: &CpuBuf,
        groups: usize,
        cols: usize,
        out: [&CpuBuf; 3],
    ) {
        let (xv, cv, muv, thv) = (x.view(), count.view(), mu.view(), theta.view());
        let (x, count, mu, theta): (&[f32], &[f32], &[f32], &[f32]) = (&xv, &cv, &muv, &thv);
        let n = groups * cols;
        let [mut ll, mut gm, mut gt] = out.map(|b| b.0.borrow_mut());
        assert!(
            seg.len() > n
                && seg[n] as usize <= x.len()
                && count.len() >= groups
                && mu.len() >= n
                && [ll.len(), gm.len(), gt.len()].iter().all(|&l| l >= n)
                && !theta.is_empty(),
            "nb_grouped: bad lengths"
        );
        let ln_theta: Vec<f64> = theta.iter().map(|&t| (t as f64).ln()).collect();
        let nt = theta.len();
        let work = |r0: usize, ll: &mut [f32], gm: &mut [f32], gt: &mut [f32]| {
            let c = cols.max(1);
            let rows = ll.chunks_mut(c).zip(gm.chunks_mut(c)).zip(gt.chunks_mut(c));
            for (rr, ((ll, gm), gt)) in rows.enumerate() {
                let n = count[r0 + rr] as f64;
                for j in 0..ll.len() {
                    let i = (r0 + rr) * cols + j;
                    let xs = &x[seg[i] as usize..seg[i + 1] as usize];
                    // theta per column in practice: an index, not a modulo.
                    let ti = if nt == cols { j } else { i % nt };
                    let th = theta[ti] as f64;
                    let (a, b, d) = nb_group_terms(xs, n, mu[i] as f64, th, ln_theta[ti]);
                    (ll[j], gm[j], gt[j]) = (a as f32, b as f32, d as f32);
                }
            }
        };
        let t = threads();
        let (ll, gm, gt) = (&mut ll[..n], &mut gm[..n], &mut gt[..n]);
        if t > 1 && n >= PAR_MIN && groups >= 2 && cfg!(not(target_arch = "wasm32")) {
            let per = groups.div_ceil(t) * cols;
            std::thread::scope(|s| {
                let chunks = ll
                    .chunks_mut(per)
                    .zip(gm.chunks_mut(per))
                    .zip(gt.chunks_mut(per));
                for (i, ((l, m), g)) in chunks.enumerate() {
                    let work = &work;
                    s.spawn(move || work(i * per / cols, l, m, g));
                }
            });
        } else {
            work(0, ll, gm, gt);
        }
    }

    fn nmf_cd_rows(
        &self,
        w: &CpuBuf,
        hht: &CpuBuf,
        xht: &CpuBuf,
        rows: usize,
        k: usize,
        violation: &CpuBuf,
    ) {
        let (h, x) = (hht.view(), xht.view());
        let mut wv = w.0.borrow_mut();
        assert!(
            wv.len() >= rows * k && h.len() >= k * k && x.len() >= rows * k,
            "nmf_cd_rows: bad lengths"
        );
        let mut viol = vec![0f32; rows];
        for (i, v) in viol.iter_mut().enumerate() {
            let row = &mut wv[i * k..(i + 1) * k];
            for t in 0..k {
                let mut grad = -x[i * k + t];
                for r in 0..k {
                    grad += h[t * k + r] * row[r];
                }
                let pg = if row[t] == 0.0 { grad.min(0.0) } else { grad };
                *v += pg.abs();
                let hess = h[t * k + t];
                if hess != 0.0 {
                    row[t] = (row[t] - grad / hess).max(0.0);
                }
            }
        }
        drop(wv);
        violation.set(viol);
    }

    fn gp_kernel(
        &self,
        kernel: GpKernel,
        part: KernelPart,
        dist: &CpuBuf,
        amp: &CpuBuf,
        ls: &CpuBuf,
        batch: usize,
        out: &CpuBuf,
    ) {
        let (d, a, l) = (dist.get(), amp.get(), ls.get());
        assert!(
            a.len() >= batch && l.len() >= batch,
            "gp_kernel: bad lengths"
        );
        let n = d.len();
        let mut o = vec![0f32; batch * n];
        par_map(&mut o, |i| {
            let b = i / n;
            super::special::gp_kernel(kernel, part, d[i % n] as f64, a[b] as f64, l[b] as f64)
                as f32
        });
        out.set(o);
    }

    fn cholesky(&self, a: &CpuBuf, n: usize, batch: usize, info: &CpuBuf) {
        let mut av = a.0.borrow_mut();
        assert!(av.len() >= batch * n * n, "cholesky: bad lengths");
        let mut codes = vec![0f32; batch];
        for (t, c) in codes.iter_mut().enumerate() {
            *c = super::linalg::cholesky(&mut av[t * n * n..(t + 1) * n * n], n) as f32;
        }
        drop(av);
        info.set(codes);
    }

    fn trsm(&self, l: &CpuBuf, b: &CpuBuf, n: usize, k: usize, batch: usize, transpose: bool) {
        let l = input(l, b);
        let mut bv = b.0.borrow_mut();
        assert!(
            l.len() >= batch * n * n && bv.len() >= batch * n * k,
            "trsm: bad lengths"
        );
        for t in 0..batch {
            super::linalg::trsm(
                &l[t * n * n..],
                &mut bv[t * n * k..(t + 1) * n * k],
                n,
                k,
                transpose,
            );
        }
    }

    fn poisson_loglik_grad(
        &self,
        x: &CpuBuf,
        mu: &CpuBuf,
        rows: usize,
        cols: usize,
        ll_rows: &CpuBuf,
        grad_mu: &CpuBuf,
    ) {
        let (x, mu) = (input(x, grad_mu), input(mu, grad_mu));
        let (x, mu): (&[f32], &[f32]) = (&x, &mu);
        let mut g = grad_mu.0.borrow_mut();
        assert!(
            x.len() >= rows * cols && mu.len() >= rows * cols && g.len() >= rows * cols,
            "poisson_loglik_grad: bad lengths"
        );
        let mut ll = vec![0f32; rows];
        let per = rows.div_ceil(threads()).max(1);
        let jobs: Vec<_> = g[..rows * cols]
            .chunks_mut(per * cols.max(1))
            .zip(ll.chunks_mut(per))
            .enumerate()
            .collect();
        par_jobs(jobs, |(c, (g, ll))| {
            let r0 = c * per;
            for (rr, (gr, l)) in g
                .chunks_exact_mut(cols.max(1))
                .zip(ll.iter_mut())
                .enumerate()
            {
                let base = (r0 + rr) * cols;
                let mut acc = 0f64;
                for (j, gv) in gr.iter_mut().enumerate() {
                    let (y, m) = (x[base + j] as f64, mu[base + j] as f64);
                    // Most counts are 0: no log, no log-factorial.
                    acc -= m;
                    if y != 0.0 {
                        acc += y * m.ln() - ln_factorial(y);
                    }
                    *gv = (y / m - 1.0) as f32;
                }
                *l = acc as f32;
            }
        });
        drop(g);
        ll_rows.set(ll);
    }

    fn log_density(&self, d: Density, x: &CpuBuf, p1: &CpuBuf, p2: &CpuBuf, out: &CpuBuf) {
        let (x, p1, p2) = (x.get(), p1.get(), p2.get());
        out.set(
            x.iter()
                .enumerate()
                .map(|(i, &v)| log_density_term(d, v as f64, bcast(&p1, i), bcast(&p2, i)) as f32)
                .collect(),
        );
    }

    fn normal_draw(&self, loc: &CpuBuf, scale_raw: &CpuBuf, seed: u64, offset: u32, z: &CpuBuf) {
        let (loc, s) = (loc.get(), scale_raw.get());
        z.set(
            (0..loc.len())
                .map(|i| {
                    (loc[i] as f64 + softplus(s[i] as f64) * philox::normal(seed, offset, i) as f64)
                        as f32
                })
                .collect(),
        );
    }

    fn adam(&self, p: AdamParams, param: &CpuBuf, grad: &CpuBuf, m: &CpuBuf, v: &CpuBuf) {
        let g = grad.view();
        let g: &[f32] = &g;
        let (mut w, mut m1, mut v1) = (param.0.borrow_mut(), m.0.borrow_mut(), v.0.borrow_mut());
        let lr = p.lr as f64 * (p.lrd as f64).powi(p.step as i32 - 1);
        let (b1, b2) = (p.beta1 as f64, p.beta2 as f64);
        let (c1, c2) = (1.0 - b1.powi(p.step as i32), 1.0 - b2.powi(p.step as i32));
        // Per element in f32 with the constants folded in f64: the same
        // arithmetic as the kernels, fast enough for a 10⁸-entry map.
        let (b1f, b2f) = (p.beta1, p.beta2);
        let step = (lr / c1) as f32;
        let inv_c2 = (1.0 / c2.sqrt()) as f32;
        let clip = p.clip;
        let n = w.len();
        let (ws, ms, vs) = (&mut w[..n], &mut m1[..n], &mut v1[..n]);
        let update = |i0: usize, ws: &mut [f32], ms: &mut [f32], vs: &mut [f32]| {
            for k in 0..ws.len() {
                let mut gi = g[i0 + k];
                if let Some(c) = clip {
                    gi = gi.clamp(-c, c);
                }
                let mi = b1f * ms[k] + (1.0 - b1f) * gi;
                let vi = b2f * vs[k] + (1.0 - b2f) * gi * gi;
                ws[k] -= step * mi / (vi.sqrt() * inv_c2 + p.eps);
                ms[k] = mi;
                vs[k] = vi;
            }
        };
        let t = threads();
        #[cfg(not(target_arch = "wasm32"))]
        if t > 1 && n >= PAR_MIN {
            let per = n.div_ceil(t);
            std::thread::scope(|s| {
                let parts = ws
                    .chunks_mut(per)
                    .zip(ms.chunks_mut(per))
                    .zip(vs.chunks_mut(per))
                    .enumerate();
                for (i, ((w, m), v)) in parts {
                    let update = &update;
                    s.spawn(move || update(i * per, w, m, v));
                }
            });
            return;
        }
        let _ = t;
        update(0, ws, ms, vs);
    }

    fn random(&self, normal: bool, seed: u64, offset: u32, out: &CpuBuf) {
        let n = self.len(out);
        // A block of four values per Philox call (the per-element form
        // would compute each block four times).
        let mut v = Vec::with_capacity(n.next_multiple_of(4));
        for b in 0..n.div_ceil(4) {
            v.extend(if normal {
                philox::normal4(seed, offset, b)
            } else {
                philox::uniform4(seed, offset, b)
            });
        }
        v.truncate(n);
        out.set(v);
    }
}

fn reduce_slice(op: Reduce, vals: impl Iterator<Item = f32> + Clone) -> f32 {
    (match op {
        Reduce::Sum => vals.map(|v| v as f64).sum::<f64>(),
        Reduce::Max => vals.fold(f64::NEG_INFINITY, |a, v| a.max(v as f64)),
        Reduce::LogSumExp => {
            let m = vals.clone().fold(f64::NEG_INFINITY, |a, v| a.max(v as f64));
            m + vals.map(|v| (v as f64 - m).exp()).sum::<f64>().ln()
        }
    }) as f32
}

/// (a·b, a·a, b·b) per row or per column, in f64.
fn cosine_stats(
    axis: Axis,
    a: &[f32],
    b: &[f32],
    rows: usize,
    cols: usize,
) -> Vec<(f64, f64, f64)> {
    match axis {
        Axis::Rows => (0..rows)
            .map(|i| {
                let span = i * cols..(i + 1) * cols;
                a[span.clone()].iter().zip(&b[span]).fold(
                    (0.0, 0.0, 0.0),
                    |(ab, aa, bb), (&x, &y)| {
                        let (x, y) = (x as f64, y as f64);
                        (ab + x * y, aa + x * x, bb + y * y)
                    },
                )
            })
            .collect(),
        Axis::Cols => {
            let mut acc = vec![(0f64, 0f64, 0f64); cols];
            for i in 0..rows {
                for (j, s) in acc.iter_mut().enumerate() {
                    let (x, y) = (a[i * cols + j] as f64, b[i * cols + j] as f64);
                    s.0 += x * y;
                    s.1 += x * x;
                    s.2 += y * y;
                }
            }
            acc
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run<F: std::future::Future>(f: F) -> F::Output {
        // CPU reads complete immediately.
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        let mut f = std::pin::pin!(f);
        match f.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(v) => v,
            std::task::Poll::Pending => panic!("cpu read pending"),
        }
    }

    fn central(f: impl Fn(f64) -> f64, x: f64) -> f64 {
        let h = 1e-5 * x.abs().max(1.0);
        (f(x + h) - f(x - h)) / (2.0 * h)
    }

    #[test]
    fn nb_gradients_match_finite_differences() {
        for &(x, mu, theta) in &[
            (0.0, 0.5, 2.0),
            (3.0, 2.5, 0.7),
            (40.0, 55.0, 12.0),
            (1.0, 0.01, 100.0),
        ] {
            let (_, dm, dt) = nb_terms(x, mu, theta);
            let fm = central(|m| nb_terms(x, m, theta).0, mu);
            let ft = central(|t| nb_terms(x, mu, t).0, theta);
            assert!(
                (dm - fm).abs() < 1e-5 * fm.abs().max(1.0),
                "d/dmu at {x},{mu},{theta}: {dm} vs {fm}"
            );
            assert!(
                (dt - ft).abs() < 1e-5 * ft.abs().max(1.0),
                "d/dtheta at {x},{mu},{theta}: {dt} vs {ft}"
            );
        }
        // The pmf sums to one over x.
        let total: f64 = (0..2000)
            .map(|x| nb_terms(x as f64, 7.0, 1.5).0.exp())
            .sum();
        assert!((total - 1.0).abs() < 1e-9);
    }

    #[test]
    fn large_counts_by_their_series_match_lanczos_lgamma() {
        // Whole and fractional counts from 16 up, small to huge θ and μ.
        let x = [16.0f32, 17.0, 40.5, 200.0, 5000.0, 1e6, 33.0, 16.0];
        let mu = [3.0f32, 2000.0, 0.01, 150.0, 4800.0, 1e6, 1e-4, 16.0];
        let th = [1e-3f32, 0.3, 12.0, 1e5, 2.0, 50.0, 7.0, 1e-30];
        let tab = SmallCounts::new(&th);
        let mut out = vec![[f64::NAN; 3]; 8];
        let at: Vec<u32> = (0..8).collect();
        nb_large_counts(&at, &x, &mu, &th, &tab.lg_theta, &tab.dg_theta, &mut out);
        for k in 0..8 {
            let [got, gm, gt] = out[k];
            let (l, p, dm, dt) = nb_entry(x[k] as f64, mu[k] as f64, th[k] as f64);
            let want = l + p.ln();
            let tol = 1e-12 * (1.0 + want.abs() + (x[k] as f64) * (x[k] as f64).ln());
            assert!((got - want).abs() <= tol, "{k}: {got} vs {want}");
            assert!(
                (gm - dm).abs() <= 1e-12 * dm.abs().max(1.0),
                "{k}: {gm} vs {dm}"
            );
            assert!(
                (gt - dt).abs() <= 1e-10 * dt.abs().max(1.0),
                "{k}: {gt} vs {dt}"
            );
        }
    }

    #[test]
    fn nb_small_counts_take_a_shortcut_to_the_same_values() {
        for x in 0..super::SMALL_COUNT {
            for &(mu, theta) in &[(0.3f64, 0.05f64), (4.0, 2.0), (60.0, 900.0), (3.0, 1e5)] {
                let x = x as f64;
                let lt = (theta / (theta + mu)).ln();
                let ll = lgamma(x + theta) - lgamma(theta) - lgamma(x + 1.0)
                    + theta * lt
                    + x * (mu / (theta + mu)).ln();
                let dt =
                    digamma(x + theta) - digamma(theta) + lt + 1.0 - (x + theta) / (theta + mu);
                let (l, _, d) = nb_terms(x, mu, theta);
                assert!(
                    (l - ll).abs() < 1e-9 * ll.abs().max(1.0),
                    "{x} {mu} {theta}"
                );
                assert!(
                    (d - dt).abs() < 1e-9 * dt.abs().max(1.0),
                    "{x} {mu} {theta}"
                );
            }
        }
    }

    #[test]
    fn nb_rows_match_the_entrywise_terms_over_every_kind_of_entry() {
        let d = Cpu;
        // 3 rows of 13 (a whole vector of 8 and a tail): zero, small, large
        // and fractional counts; a zero θ and an infinite μ leave ln_poly's range.
        let (rows, cols) = (3, 13);
        let xs = [
            0.0f32, 1.0, 3.0, 15.0, 16.0, 40.5, 200.0, 0.0, 2.0, 0.0, 7.0, 0.0, 1.0,
        ];
        let mus = [
            0.3f32,
            4.0,
            60.0,
            3.0,
            2000.0,
            0.01,
            150.0,
            7.0,
            1e-3,
            5.0,
            9.0,
            f32::INFINITY,
            2.0,
        ];
        let ths = [
            0.05f32, 2.0, 900.0, 1e5, 30.0, 0.3, 12.0, 0.0, 1.0, 3.0, 1e-30, 4.0, 6.0,
        ];
        let x: Vec<f32> = (0..rows * cols).map(|i| xs[(i * 5) % cols]).collect();
        // μ = ∞ only in row 0 and, where `tame`, θ = 0 only there too: the
        // other rows' sums are then finite, and checked.
        let off_row0 = |i: usize, v: f32, instead: f32| {
            if i >= cols && (v.is_infinite() || v == 0.0) {
                instead
            } else {
                v
            }
        };
        let mu: Vec<f32> = (0..rows * cols)
            .map(|i| off_row0(i, mus[i % cols], 5.0))
            .collect();
        for (per_entry, tame) in [(false, false), (false, true), (true, true)] {
            let th: Vec<f32> = if per_entry {
                (0..rows * cols)
                    .map(|i| off_row0(i, ths[(i * 7) % cols], 0.5))
                    .collect()
            } else if tame {
                ths.map(|t| if t == 0.0 { 0.5 } else { t }).to_vec()
            } else {
                ths.to_vec()
            };
            let (ll, gm, gt) = (d.zeros(rows), d.zeros(rows * cols), d.zeros(rows * cols));
            d.nb_loglik_grad(
                &d.upload(&x),
                &d.upload(&mu),
                &d.upload(&th),
                rows,
                cols,
                &ll,
                &gm,
                &gt,
            );
            let (ll, gm, gt) = (run(d.read(&ll)), run(d.read(&gm)), run(d.read(&gt)));
            let same = |a: f32, b: f64| {
                (a.is_nan() && b.is_nan())
                    || a as f64 == b
                    || (a as f64 - b).abs() <= 1e-6 * b.abs().max(1.0)
            };
            for (r, &got) in ll.iter().enumerate() {
                let mut want = 0.0;
                for k in 0..cols {
                    let i = r * cols + k;
                    let t = th[if per_entry { i } else { k }] as f64;
                    let (l, dm, dt) = nb_terms(x[i] as f64, mu[i] as f64, t);
                    want += l;
                    assert!(
                        same(gm[i], dm) && same(gt[i], dt),
                        "entry {i}: {} {}, want {dm} {dt}",
                        gm[i],
                        gt[i]
                    );
                }
                assert!(same(got, want), "row {r}: {got} vs {want}");
                assert!(!tame || r == 0 || got.is_finite(), "row {r}: {got}");
            }
        }
    }

    #[test]
    fn grouped_products_stay_finite_where_each_factor_is_huge() {
        // μ^x grows past 1e58 per entry: the running product must not overflow.
        let xs = vec![15.0f32; 40];
        let (mu, theta) = (2000.0f64, 30.0f64);
        let got = nb_group_terms(&xs, 40.0, mu, theta, theta.ln());
        let want: f64 = xs.iter().map(|&x| nb_terms(x as f64, mu, theta).0).sum();
        assert!(
            got.0.is_finite() && (got.0 - want).abs() < 1e-9 * want.abs(),
            "{} vs {want}",
            got.0
        );
    }

    #[test]
    fn nb_grouped_sums_the_terms_of_every_entry_zeros_included() {
        let xs = [3.0f32, 1.0, 40.5, 17.0];
        for &(n, mu, theta) in &[(4.0, 0.7, 2.5), (9.0, 30.0, 0.3), (4.0, 2.0, 1e4)] {
            let got = nb_group_terms(&xs, n + xs.len() as f64, mu, theta, theta.ln());
            let mut want = nb_terms(0.0, mu, theta);
            want.0 *= n;
            want.1 *= n;
            want.2 *= n;
            for &x in &xs {
                let t = nb_terms(x as f64, mu, theta);
                want = (want.0 + t.0, want.1 + t.1, want.2 + t.2);
            }
            for (g, w) in [(got.0, want.0), (got.1, want.1), (got.2, want.2)] {
                assert!((g - w).abs() <= 1e-9 * w.abs().max(1.0), "{g} vs {w}");
            }
        }
    }

    #[test]
    fn poisson_gradient_matches_finite_differences() {
        let d = Cpu;
        let ll_at = |x: f32, mu: f32| {
            let (ll, g) = (d.zeros(1), d.zeros(1));
            d.poisson_loglik_grad(&d.upload(&[x]), &d.upload(&[mu]), 1, 1, &ll, &g);
            (run(d.read(&ll))[0] as f64, run(d.read(&g))[0] as f64)
        };
        for &(x, mu) in &[(0.0f32, 0.7f32), (3.0, 2.5), (40.0, 55.0)] {
            let h = 1e-2 * mu;
            let fd = (ll_at(x, mu + h).0 - ll_at(x, mu - h).0) / (2.0 * h as f64);
            let g = ll_at(x, mu).1;
            assert!(
                (fd - g).abs() < 1e-3 * g.abs().max(1.0),
                "x {x}, mu {mu}: {g} vs {fd}"
            );
        }
    }

    #[test]
    fn few_row_gemms_and_large_row_sums_match_plain_loops() {
        let d = Cpu;
        let val = |i: usize| ((i * 37 % 101) as f32 - 50.0) / 7.0;
        // Large enough for threads: k·n ≥ PAR_MIN.
        let (k, n) = (300, 400);
        for (m, trans_a, alpha, beta) in [
            (1, true, 1.0, 0.0),
            (3, false, 0.5, 1.0),
            (4, true, 2.0, 0.25),
        ] {
            let a: Vec<f32> = (0..m * k).map(val).collect();
            let b: Vec<f32> = (0..k * n).map(|i| val(i + 11)).collect();
            let c0: Vec<f32> = (0..m * n).map(|i| val(i + 5)).collect();
            let c = d.upload(&c0);
            let g = Gemm {
                trans_a,
                alpha,
                beta,
                ..Gemm::new(m, n, k)
            };
            d.gemm(g, &d.upload(&a), &d.upload(&b), &c);
            let got = run(d.read(&c));
            for i in 0..m {
                for j in 0..n {
                    let dot: f64 = (0..k)
                        .map(|kk| {
                            let av = if trans_a {
                                a[kk * m + i]
                            } else {
                                a[i * k + kk]
                            };
                            av as f64 * b[kk * n + j] as f64
                        })
                        .sum();
                    let want = alpha as f64 * dot + beta as f64 * c0[i * n + j] as f64;
                    assert!(
                        (got[i * n + j] as f64 - want).abs() < 1e-4 * want.abs().max(1.0),
                        "{m} {i} {j}"
                    );
                }
            }
        }
        let (rows, cols) = (700, 123);
        let x: Vec<f32> = (0..rows * cols).map(val).collect();
        let out = d.zeros(rows);
        d.reduce(Reduce::Sum, Axis::Rows, &d.upload(&x), rows, cols, &out);
        let got = run(d.read(&out));
        for r in 0..rows {
            let want: f64 = x[r * cols..(r + 1) * cols].iter().map(|&v| v as f64).sum();
            assert!(
                (got[r] as f64 - want).abs() < 1e-5 * want.abs().max(1.0),
                "row {r}"
            );
        }
    }

    #[test]
    fn ops_through_the_device_interface() {
        let d = Cpu;
        let a = d.upload(&[1., 2., 3., 4., 5., 6.]); // 2x3
        let b = d.upload(&[1., 0., 0., 1., 1., 1.]); // 3x2
        let c = d.zeros(4);
        d.gemm(Gemm::new(2, 2, 3), &a, &b, &c);
        assert_eq!(run(d.read(&c)), vec![4., 5., 10., 11.]);
        // Aᵀ·A via trans_a: A stored 2x3, used as 3x2.
        let c = d.zeros(9);
        d.gemm(
            Gemm {
                trans_a: true,
                ..Gemm::new(3, 3, 2)
            },
            &a,
            &a,
            &c,
        );
        assert_eq!(run(d.read(&c))[..3], [17., 22., 27.]);
        // CSR [[1,0,2],[0,3,0]] times b (3x2), and its transpose times a 2x2.
        let (ip, ix, dv) = (
            d.upload_index(&[0, 2, 3]),
            d.upload_index(&[0, 2, 1]),
            d.upload(&[1., 2., 3.]),
        );
        let csr = Csr {
            rows: 2,
            cols: 3,
            indptr: &ip,
            indices: &ix,
            data: &dv,
        };
        let c = d.zeros(4);
        d.csr_mm(&csr, &b, 2, false, &c);
        assert_eq!(run(d.read(&c)), vec![3., 2., 0., 3.]);
        let y = d.upload(&[1., 2., 3., 4.]);
        let c = d.zeros(6);
        d.csr_mm(&csr, &y, 2, true, &c);
        assert_eq!(run(d.read(&c)), vec![1., 2., 9., 12., 2., 4.]);
        let s = d.zeros(2);
        d.reduce(Reduce::LogSumExp, Axis::Rows, &a, 2, 3, &s);
        let lse = run(d.read(&s));
        assert!((lse[0] - (1f64.exp() + 2f64.exp() + 3f64.exp()).ln() as f32).abs() < 1e-6);
        let sm = d.zeros(6);
        d.softmax_rows(&a, 2, 3, &sm);
        let sm = run(d.read(&sm));
        assert!((sm[..3].iter().sum::<f32>() - 1.0).abs() < 1e-6 && sm[2] > sm[1]);
        let cs = d.zeros(3);
        d.cosine(Axis::Cols, &a, &a, 2, 3, &cs);
        assert!(run(d.read(&cs)).iter().all(|&v| (v - 1.0).abs() < 1e-6));
        let out = d.upload(&[0., 0.]);
        d.scatter_add(&a, &d.upload_index(&[0, 1, 0, 1, 0, 1]), &out);
        assert_eq!(run(d.read(&out)), vec![9., 12.]);
    }

    #[test]
    fn adam_minimises_a_quadratic() {
        let d = Cpu;
        let (w, m, v, g) = (d.upload(&[5.0, -3.0]), d.zeros(2), d.zeros(2), d.zeros(2));
        for step in 1..=2000 {
            let cur = run(d.read(&w));
            g.set(cur.iter().map(|x| 2.0 * (x - 1.0)).collect());
            d.adam(
                AdamParams {
                    lr: 0.05,
                    step,
                    clip: Some(10.0),
                    ..AdamParams::default()
                },
                &w,
                &g,
                &m,
                &v,
            );
        }
        assert!(run(d.read(&w)).iter().all(|x| (x - 1.0).abs() < 1e-3));
    }

    #[test]
    fn log_densities_integrate_to_one() {
        for (dist, p1, p2, lo, hi) in [
            (Density::Gamma, 2.5, 1.5, 1e-6, 40.0),
            (Density::Exponential, 0.7, 0.0, 0.0, 60.0),
            (Density::Normal, 1.0, 2.0, -30.0, 30.0),
        ] {
            let n = 200_000;
            let h = (hi - lo) / n as f64;
            let total: f64 = (0..n)
                .map(|i| log_density_term(dist, lo + (i as f64 + 0.5) * h, p1, p2).exp() * h)
                .sum();
            assert!((total - 1.0).abs() < 1e-4, "{dist:?}: {total}");
        }
    }

    /// A scalar function of a through `cosine` summed with weights, for
    /// finite differences of `cosine_grad`.
    fn cos_sum(axis: Axis, a: &[f32], b: &[f32], rows: usize, cols: usize) -> f64 {
        let d = Cpu;
        let n_out = if axis == Axis::Rows { rows } else { cols };
        let (c, g) = (d.zeros(n_out), d.zeros(rows * cols));
        d.cosine_grad(axis, &d.upload(a), &d.upload(b), rows, cols, 1.0, &c, &g);
        run(d.read(&c)).iter().map(|&v| v as f64).sum()
    }

    #[test]
    fn cosine_gradient_matches_finite_differences() {
        let (rows, cols) = (5, 4);
        let a: Vec<f32> = (0..rows * cols)
            .map(|i| ((i * 7 % 11) as f32 - 4.0) * 0.3)
            .collect();
        let b: Vec<f32> = (0..rows * cols)
            .map(|i| ((i * 5 % 13) as f32 - 6.0) * 0.2)
            .collect();
        let d = Cpu;
        for axis in [Axis::Rows, Axis::Cols] {
            let n_out = if axis == Axis::Rows { rows } else { cols };
            let (c, g) = (d.zeros(n_out), d.zeros(rows * cols));
            d.cosine_grad(axis, &d.upload(&a), &d.upload(&b), rows, cols, -2.0, &c, &g);
            let g = run(d.read(&g));
            // The cosines agree with the plain op.
            let plain = d.zeros(n_out);
            d.cosine(axis, &d.upload(&a), &d.upload(&b), rows, cols, &plain);
            for (x, y) in run(d.read(&c)).iter().zip(run(d.read(&plain))) {
                assert!((x - y).abs() < 1e-6);
            }
            for i in 0..rows * cols {
                let h = 1e-3f32;
                let (mut ap, mut am) = (a.clone(), a.clone());
                ap[i] += h;
                am[i] -= h;
                let fd = (cos_sum(axis, &ap, &b, rows, cols) - cos_sum(axis, &am, &b, rows, cols))
                    / (2.0 * h as f64);
                assert!(
                    (g[i] as f64 + 2.0 * fd).abs() < 2e-3,
                    "{axis:?} entry {i}: {} vs {}",
                    g[i],
                    -2.0 * fd
                );
            }
        }
    }

    #[test]
    fn softmax_backward_matches_finite_differences() {
        let (rows, cols) = (3, 6);
        let x: Vec<f32> = (0..rows * cols)
            .map(|i| ((i * 7 % 9) as f32 - 4.0) * 0.4)
            .collect();
        let w: Vec<f32> = (0..rows * cols)
            .map(|i| ((i * 3 % 5) as f32 - 2.0) * 0.7)
            .collect();
        let d = Cpu;
        // f(x) = Σ w ∘ softmax(x): its gradient is softmax_backward(p, w).
        let f = |x: &[f32]| -> f64 {
            let p = d.zeros(rows * cols);
            d.softmax_rows(&d.upload(x), rows, cols, &p);
            run(d.read(&p))
                .iter()
                .zip(&w)
                .map(|(&p, &w)| p as f64 * w as f64)
                .sum()
        };
        let p = d.zeros(rows * cols);
        d.softmax_rows(&d.upload(&x), rows, cols, &p);
        let g = d.zeros(rows * cols);
        d.softmax_backward(&p, &d.upload(&w), rows, cols, &g);
        let g = run(d.read(&g));
        for i in 0..rows * cols {
            let h = 1e-3f32;
            let (mut xp, mut xm) = (x.clone(), x.clone());
            xp[i] += h;
            xm[i] -= h;
            let fd = (f(&xp) - f(&xm)) / (2.0 * h as f64);
            assert!(
                (g[i] as f64 - fd).abs() < 1e-3,
                "entry {i}: {} vs {fd}",
                g[i]
            );
        }
    }

    #[test]
    fn triangular_products_match_the_full_gemm_where_wanted() {
        let d = Cpu;
        let n = 300;
        let mut lower: Vec<f32> = (0..2 * n * n)
            .map(|i| ((i * 7919) % 101) as f32 / 50.0 - 1.0)
            .collect();
        for t in 0..2 {
            for r in 0..n {
                for c in r + 1..n {
                    lower[t * n * n + r * n + c] = 0.0;
                }
            }
        }
        let a: Vec<f32> = (0..2 * 250 * n)
            .map(|i| ((i * 104729) % 97) as f32 / 40.0 - 1.2)
            .collect();
        for ta in [false, true] {
            let g = Gemm {
                m: 250,
                n,
                k: n,
                trans_a: ta,
                trans_b: false,
                alpha: 1.5,
                beta: 0.5,
                batch: 2,
            };
            let (a_, l_) = (d.upload(&a[..2 * 250 * n]), d.upload(&lower));
            let (full, tri) = (
                d.upload(&vec![1.0; 2 * 250 * n]),
                d.upload(&vec![1.0; 2 * 250 * n]),
            );
            d.gemm(g, &a_, &l_, &full);
            d.gemm_tri(g, Tri::LowerB, &a_, &l_, &tri);
            let (f, t) = (full.get(), tri.get());
            assert!(
                f.iter()
                    .zip(&t)
                    .all(|(x, y)| (x - y).abs() <= 1e-4 * x.abs().max(1.0)),
                "LowerB {ta}"
            );
            // A lower-triangular C of Aᵀ A (square).
            let g = Gemm {
                m: n,
                n,
                k: 250,
                trans_a: true,
                ..g
            };
            let (full, tri) = (
                d.upload(&vec![2.0; 2 * n * n]),
                d.upload(&vec![2.0; 2 * n * n]),
            );
            d.gemm(g, &a_, &a_, &full);
            d.gemm_tri(g, Tri::LowerC, &a_, &a_, &tri);
            let (f, t) = (full.get(), tri.get());
            for b in 0..2 {
                for r in 0..n {
                    for c in 0..=r {
                        let i = b * n * n + r * n + c;
                        assert!(
                            (f[i] - t[i]).abs() <= 1e-4 * f[i].abs().max(1.0),
                            "LowerC {r},{c}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn gemm_matches_a_plain_f64_triple_loop() {
        let d = Cpu;
        let (m, n, k) = (37, 29, 301);
        let a: Vec<f32> = (0..m * k).map(|i| philox::uniform(1, 0, i) - 0.5).collect();
        let b: Vec<f32> = (0..k * n).map(|i| philox::uniform(2, 0, i) - 0.5).collect();
        let c0: Vec<f32> = (0..m * n).map(|i| philox::uniform(3, 0, i)).collect();
        for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
            let g = Gemm {
                trans_a: ta,
                trans_b: tb,
                alpha: 0.7,
                beta: 0.3,
                ..Gemm::new(m, n, k)
            };
            let c = d.upload(&c0);
            d.gemm(g, &d.upload(&a), &d.upload(&b), &c);
            let c = run(d.read(&c));
            for i in 0..m {
                for j in 0..n {
                    let s: f64 = (0..k)
                        .map(|l| {
                            let av = if ta { a[l * m + i] } else { a[i * k + l] };
                            let bv = if tb { b[j * k + l] } else { b[l * n + j] };
                            av as f64 * bv as f64
                        })
                        .sum();
                    let want = 0.7 * s + 0.3 * c0[i * n + j] as f64;
                    assert!(
                        (c[i * n + j] as f64 - want).abs() < 1e-4,
                        "{ta} {tb} ({i},{j})"
                    );
                }
            }
        }
    }

    #[test]
    fn in_place_ops_read_their_input_first() {
        let d = Cpu;
        let x = d.upload(&[1.0, 2.0, 3.0, 4.0]);
        d.binary(Binary::Mul, &x, &x, &x);
        assert_eq!(run(d.read(&x)), vec![1.0, 4.0, 9.0, 16.0]);
        d.binary_rows(Binary::Sub, &x, &d.upload(&[1.0, 9.0]), 2, 2, &x);
        assert_eq!(run(d.read(&x)), vec![0.0, 3.0, 0.0, 7.0]);
    }
}
