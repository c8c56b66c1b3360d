//! `tessera bench ops`: median time of each op on a device, its throughput,
//! and its largest error against the CPU oracle (sampled entries computed on
//! the host, so huge shapes stay cheap to check).

use std::time::{Duration, Instant};

use serde::Serialize;

use super::conformance::{random_csr, uniform};
use super::cpu::{nb_terms, Cpu};
use super::special::lgamma;
use super::{philox, AdamParams, Axis, Csr, Device, Gemm, Reduce, Unary};

#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub op: String,
    pub shape: String,
    pub device: String,
    pub median_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gflops: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gbps: Option<f64>,
    pub max_abs_err: f64,
    /// CPU median / this median, when the CPU ran the same shape in this run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub speedup_vs_cpu: Option<f64>,
}

/// Problem sizes: `Quick` for tests and smoke runs, `Full` for the report
/// (the shapes: 4096³ GEMM, a 4,035 x 10,217 count matrix).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    Quick,
    Full,
}

/// Times `f` (synchronised with the device): at least 3 runs, at most 20 or ~2 s.
fn median_ms(sync: &dyn Fn(), f: &mut dyn FnMut()) -> f64 {
    f();
    sync();
    let mut times = Vec::new();
    let start = Instant::now();
    while times.len() < 3 || (times.len() < 20 && start.elapsed() < Duration::from_secs(2)) {
        let t = Instant::now();
        f();
        sync();
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// Error of sampled entries: `want(i)` is the host value of element i.
fn sampled_err(got: &[f32], want: impl Fn(usize) -> f64) -> f64 {
    let n = got.len();
    let picks = (0..257).map(|k| (k * 7919 + (k * k) % 13) % n.max(1));
    picks
        .map(|i| (got[i] as f64 - want(i)).abs())
        .fold(0.0, f64::max)
}

struct Bench<'a, D: Device> {
    dev: &'a D,
    name: String,
    size: Size,
    is_cpu: bool,
    rows: Vec<Row>,
}

impl<D: Device> Bench<'_, D> {
    fn block<T>(&self, f: impl std::future::Future<Output = T>) -> T {
        pollster::block_on(f)
    }

    fn push(&mut self, op: &str, shape: String, ms: f64, work: Work, err: f64) {
        let (gflops, gbps) = match work {
            Work::Flops(f) => (Some(f / ms / 1e6), None),
            Work::Bytes(b) => (None, Some(b / ms / 1e6)),
        };
        self.rows.push(Row {
            op: op.into(),
            shape,
            device: self.name.clone(),
            median_ms: ms,
            gflops,
            gbps,
            max_abs_err: err,
            speedup_vs_cpu: None,
        });
    }

    fn gemm(&mut self) {
        let sizes: &[usize] = match (self.size, self.is_cpu) {
            (Size::Quick, _) => &[64],
            (Size::Full, true) => &[256, 512],
            (Size::Full, false) => &[256, 512, 1024, 4096],
        };
        for &s in sizes {
            let a_h = uniform(s * s, -1.0, 1.0, 1);
            let b_h = uniform(s * s, -1.0, 1.0, 2);
            let (a, b, c) = (
                self.dev.upload(&a_h),
                self.dev.upload(&b_h),
                self.dev.zeros(s * s),
            );
            for (name, ta, tb) in [
                ("gemm_nn", false, false),
                ("gemm_nt", false, true),
                ("gemm_tn", true, false),
            ] {
                let g = Gemm {
                    trans_a: ta,
                    trans_b: tb,
                    ..Gemm::new(s, s, s)
                };
                let ms = median_ms(&|| self.dev.sync(), &mut || self.dev.gemm(g, &a, &b, &c));
                let got = self.block(self.dev.read(&c));
                let err = sampled_err(&got, |i| {
                    let (r, q) = (i / s, i % s);
                    (0..s)
                        .map(|l| {
                            let av = if ta { a_h[l * s + r] } else { a_h[r * s + l] };
                            let bv = if tb { b_h[q * s + l] } else { b_h[l * s + q] };
                            av as f64 * bv as f64
                        })
                        .sum()
                });
                self.push(
                    name,
                    format!("{s}x{s}x{s}"),
                    ms,
                    Work::Flops(g.flops()),
                    err,
                );
            }
        }
    }

    fn counts(&self) -> (usize, usize) {
        match self.size {
            Size::Quick => (101, 257),
            Size::Full => (4035, 10217),
        }
    }

    fn likelihood(&mut self) {
        let (rows, cols) = self.counts();
        let n = rows * cols;
        let x_h: Vec<f32> = uniform(n, 0.0, 8.0, 3).iter().map(|v| v.floor()).collect();
        let mu_h = uniform(n, 0.1, 10.0, 4);
        let th_h = uniform(cols, 0.5, 20.0, 5);
        let (x, mu, th) = (
            self.dev.upload(&x_h),
            self.dev.upload(&mu_h),
            self.dev.upload(&th_h),
        );
        let (ll, gm, gt) = (self.dev.zeros(rows), self.dev.zeros(n), self.dev.zeros(n));
        let ms = median_ms(&|| self.dev.sync(), &mut || {
            self.dev
                .nb_loglik_grad(&x, &mu, &th, rows, cols, &ll, &gm, &gt)
        });
        let got = self.block(self.dev.read(&gt));
        let err = sampled_err(&got, |i| {
            nb_terms(x_h[i] as f64, mu_h[i] as f64, th_h[i % cols] as f64).2
        });
        // Reads x and mu, writes two gradients: 16 bytes per entry.
        self.push(
            "nb_loglik_grad",
            format!("{rows}x{cols}"),
            ms,
            Work::Bytes(16.0 * n as f64),
            err,
        );
        let ms = median_ms(&|| self.dev.sync(), &mut || {
            self.dev.poisson_loglik_grad(&x, &mu, rows, cols, &ll, &gm)
        });
        let got = self.block(self.dev.read(&gm));
        let err = sampled_err(&got, |i| x_h[i] as f64 / mu_h[i] as f64 - 1.0);
        self.push(
            "poisson_loglik_grad",
            format!("{rows}x{cols}"),
            ms,
            Work::Bytes(12.0 * n as f64),
            err,
        );

        let sums = self.dev.zeros(rows);
        let ms = median_ms(&|| self.dev.sync(), &mut || {
            self.dev
                .reduce(Reduce::Sum, Axis::Rows, &mu, rows, cols, &sums)
        });
        let got = self.block(self.dev.read(&sums));
        let err = sampled_err(&got, |r| {
            mu_h[r * cols..(r + 1) * cols]
                .iter()
                .map(|&v| v as f64)
                .sum()
        });
        self.push(
            "sum_rows",
            format!("{rows}x{cols}"),
            ms,
            Work::Bytes(4.0 * n as f64),
            err,
        );

        let sm = self.dev.zeros(n);
        let ms = median_ms(&|| self.dev.sync(), &mut || {
            self.dev.softmax_rows(&mu, rows, cols, &sm)
        });
        let got = self.block(self.dev.read(&sm));
        let err = sampled_err(&got, |i| {
            let row = &mu_h[(i / cols) * cols..(i / cols + 1) * cols];
            let m = row.iter().fold(f64::MIN, |a, &v| a.max(v as f64));
            (mu_h[i] as f64 - m).exp() / row.iter().map(|&v| (v as f64 - m).exp()).sum::<f64>()
        });
        self.push(
            "softmax_rows",
            format!("{rows}x{cols}"),
            ms,
            Work::Bytes(8.0 * n as f64),
            err,
        );

        // Tangram's backward pass: dx = p (dp − Σ p dp) with dp = mu.
        let sm_h = self.block(self.dev.read(&sm));
        let dx = self.dev.zeros(n);
        let ms = median_ms(&|| self.dev.sync(), &mut || {
            self.dev.softmax_backward(&sm, &mu, rows, cols, &dx)
        });
        let got = self.block(self.dev.read(&dx));
        let err = sampled_err(&got, |i| {
            let r = i / cols;
            let dot: f64 = (r * cols..(r + 1) * cols)
                .map(|j| sm_h[j] as f64 * mu_h[j] as f64)
                .sum();
            sm_h[i] as f64 * (mu_h[i] as f64 - dot)
        });
        self.push(
            "softmax_backward",
            format!("{rows}x{cols}"),
            ms,
            Work::Bytes(12.0 * n as f64),
            err,
        );

        // Gene-wise cosine and its gradient (Tangram's main term).
        let (cs, cg) = (self.dev.zeros(cols), self.dev.zeros(n));
        let ms = median_ms(&|| self.dev.sync(), &mut || {
            self.dev
                .cosine_grad(Axis::Cols, &mu, &x, rows, cols, -1.0, &cs, &cg)
        });
        let got = self.block(self.dev.read(&cs));
        let err = sampled_err(&got, |j| {
            let (mut ab, mut aa, mut bb) = (0f64, 0f64, 0f64);
            for r in 0..rows {
                let (a, b) = (mu_h[r * cols + j] as f64, x_h[r * cols + j] as f64);
                ab += a * b;
                aa += a * a;
                bb += b * b;
            }
            ab / (aa.sqrt() * bb.sqrt())
        });
        self.push(
            "cosine_grad",
            format!("{rows}x{cols}"),
            ms,
            Work::Bytes(16.0 * n as f64),
            err,
        );

        let (ip, ix, dv) = random_csr(rows, cols, 0.05, 6);
        let nb = 16;
        let b_h = uniform(cols * nb, -1.0, 1.0, 7);
        let (ipd, ixd, dvd) = (
            self.dev.upload_index(&ip),
            self.dev.upload_index(&ix),
            self.dev.upload(&dv),
        );
        let a = Csr {
            rows,
            cols,
            indptr: &ipd,
            indices: &ixd,
            data: &dvd,
        };
        let (b, c) = (self.dev.upload(&b_h), self.dev.zeros(rows * nb));
        let ms = median_ms(&|| self.dev.sync(), &mut || {
            self.dev.csr_mm(&a, &b, nb, false, &c)
        });
        let got = self.block(self.dev.read(&c));
        let err = sampled_err(&got, |i| {
            let (r, j) = (i / nb, i % nb);
            (ip[r] as usize..ip[r + 1] as usize)
                .map(|k| dv[k] as f64 * b_h[ix[k] as usize * nb + j] as f64)
                .sum()
        });
        self.push(
            "csr_mm",
            format!("{rows}x{cols} nnz {} x {nb}", dv.len()),
            ms,
            Work::Flops(2.0 * (dv.len() * nb) as f64),
            err,
        );
    }

    fn elementwise(&mut self) {
        let n = match self.size {
            Size::Quick => 10_000,
            Size::Full => 1 << 24,
        };
        let x_h = uniform(n, 0.01, 50.0, 8);
        let (x, o) = (self.dev.upload(&x_h), self.dev.zeros(n));
        let ms = median_ms(&|| self.dev.sync(), &mut || {
            self.dev.unary(Unary::Lgamma, &x, &o)
        });
        let got = self.block(self.dev.read(&o));
        let err = sampled_err(&got, |i| lgamma(x_h[i] as f64));
        self.push(
            "lgamma",
            format!("{n}"),
            ms,
            Work::Bytes(8.0 * n as f64),
            err,
        );

        let ms = median_ms(&|| self.dev.sync(), &mut || self.dev.random(true, 7, 0, &o));
        let got = self.block(self.dev.read(&o));
        let err = sampled_err(&got, |i| philox::normal(7, 0, i) as f64);
        self.push(
            "philox_normal",
            format!("{n}"),
            ms,
            Work::Bytes(4.0 * n as f64),
            err,
        );

        let g_h = uniform(n, -1.0, 1.0, 9);
        let (w, g, m, v) = (
            self.dev.upload(&x_h),
            self.dev.upload(&g_h),
            self.dev.zeros(n),
            self.dev.zeros(n),
        );
        let p = AdamParams::default();
        let ms = median_ms(&|| self.dev.sync(), &mut || {
            self.dev.adam(p, &w, &g, &m, &v)
        });
        // Many steps ran: check one fresh step instead.
        let (w1, m1, v1) = (self.dev.upload(&x_h), self.dev.zeros(n), self.dev.zeros(n));
        self.dev.adam(p, &w1, &g, &m1, &v1);
        let got = self.block(self.dev.read(&w1));
        let err = sampled_err(&got, |i| {
            x_h[i] as f64
                - 1e-3
                    * (g_h[i] as f64).signum()
                    * (g_h[i].abs() as f64 / (g_h[i].abs() as f64 + 1e-8))
        });
        // Reads w, g, m, v and writes w, m, v.
        self.push(
            "adam",
            format!("{n}"),
            ms,
            Work::Bytes(28.0 * n as f64),
            err,
        );

        let buckets = 10_000.min(n);
        let idx_h: Vec<u32> = (0..n)
            .map(|i| (i * 2_654_435_761 % buckets) as u32)
            .collect();
        let (idx, acc) = (self.dev.upload_index(&idx_h), self.dev.zeros(buckets));
        let ms = median_ms(&|| self.dev.sync(), &mut || {
            self.dev.scatter_add(&g, &idx, &acc)
        });
        self.push(
            "scatter_add",
            format!("{n} into {buckets}"),
            ms,
            Work::Bytes(12.0 * n as f64),
            0.0,
        );
    }
}

enum Work {
    Flops(f64),
    Bytes(f64),
}

/// Runs every benchmark on `dev`; with `baseline`, the CPU runs the same
/// (affordable) shapes in this run and each row gets its speed-up.
pub fn run<D: Device>(dev: &D, size: Size, baseline: bool) -> Vec<Row> {
    let mut b = Bench {
        dev,
        name: dev.name(),
        size,
        is_cpu: dev.name() == "cpu",
        rows: Vec::new(),
    };
    b.gemm();
    b.likelihood();
    b.elementwise();
    let mut rows = b.rows;
    if baseline && dev.name() != "cpu" {
        let cpu = run(&Cpu, size, false);
        for r in rows.iter_mut() {
            if let Some(c) = cpu.iter().find(|c| c.op == r.op && c.shape == r.shape) {
                r.speedup_vs_cpu = Some(c.median_ms / r.median_ms);
            }
        }
    }
    rows
}

/// A fixed-width table for the terminal.
pub fn table(rows: &[Row]) -> String {
    let mut s = format!(
        "{:<20} {:<28} {:>11} {:>10} {:>10} {:>11} {:>9}\n",
        "op", "shape", "median ms", "GFLOP/s", "GB/s", "max err", "vs cpu"
    );
    for r in rows {
        let f = |v: Option<f64>| v.map_or("-".to_string(), |x| format!("{x:.2}"));
        s += &format!(
            "{:<20} {:<28} {:>11.3} {:>10} {:>10} {:>11.2e} {:>9}\n",
            r.op,
            r.shape,
            r.median_ms,
            f(r.gflops),
            f(r.gbps),
            r.max_abs_err,
            r.speedup_vs_cpu.map_or("-".into(), |x| format!("{x:.1}x"))
        );
    }
    s
}
