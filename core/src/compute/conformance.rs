//! Every op of a device against the CPU oracle, on deterministic random
//! inputs of awkward sizes (1, 7, 65, 1000+: not multiples of 16 or 256).
//! Used by the device tests (native and in the browser) and by
//! `tessera bench ops` for its error column.

use super::cpu::Cpu;
use super::{
    philox, AdamParams, Axis, Binary, Csr, Density, Device, Gemm, GpKernel, KernelPart, Reduce,
    Unary,
};

/// One op on one shape: the largest error against the oracle, scaled by
/// max(1, |oracle|), and the tolerance it must meet.
#[derive(Debug, Clone)]
pub struct Check {
    pub op: String,
    pub shape: String,
    pub err: f32,
    pub tol: f32,
}

impl Check {
    pub fn ok(&self) -> bool {
        self.err <= self.tol && self.err.is_finite()
    }
}

/// Panics with one line per op that missed its tolerance.
pub fn assert_conformant(checks: &[Check]) {
    assert!(checks.len() > 120, "only {} checks ran", checks.len());
    let failed: Vec<String> = checks
        .iter()
        .filter(|c| !c.ok())
        .map(|c| {
            format!(
                "{} [{}]: error {:e} > tolerance {:e}",
                c.op, c.shape, c.err, c.tol
            )
        })
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} checks failed:\n{}",
        failed.len(),
        checks.len(),
        failed.join("\n")
    );
}

/// Inputs in [lo, hi) from the Philox stream `seed`.
pub fn uniform(n: usize, lo: f32, hi: f32, seed: u64) -> Vec<f32> {
    (0..n)
        .map(|i| lo + (hi - lo) * philox::uniform(seed, 0, i))
        .collect()
}

fn err(got: &[f32], want: &[f32]) -> f32 {
    if got.len() != want.len() {
        return f32::INFINITY;
    }
    got.iter()
        .zip(want)
        .map(|(g, w)| {
            if g.is_nan() && w.is_nan() {
                0.0
            } else {
                (g - w).abs() / w.abs().max(1.0)
            }
        })
        .fold(0.0, f32::max)
}

struct Runner<'a, D: Device> {
    dev: &'a D,
    /// Include the shapes past 65,535 rows or elements (2-D launch grids).
    large: bool,
    cpu: Cpu,
    out: Vec<Check>,
}

impl<D: Device> Runner<'_, D> {
    async fn compare(
        &mut self,
        op: &str,
        shape: String,
        tol: f32,
        got: &D::Buf,
        want: &<Cpu as Device>::Buf,
    ) {
        let (g, w) = (self.dev.read(got).await, self.cpu.read(want).await);
        self.out.push(Check {
            op: op.into(),
            shape,
            err: err(&g, &w),
            tol,
        });
    }

    /// Uploads the same data to both devices.
    fn both(&self, data: &[f32]) -> (D::Buf, <Cpu as Device>::Buf) {
        (self.dev.upload(data), self.cpu.upload(data))
    }
}

/// Runs every op; the caller asserts `Check::ok` (or prints the table).
pub async fn check_device<D: Device>(dev: &D) -> Vec<Check> {
    run_checks(dev, true).await
}

/// Every op on the shapes below 65,536 rows or elements: for emulated
/// adapters where the large launches cost minutes (SwiftShader in a
/// browser); the same kernels meet the large shapes natively.
pub async fn check_device_small<D: Device>(dev: &D) -> Vec<Check> {
    run_checks(dev, false).await
}

async fn run_checks<D: Device>(dev: &D, large: bool) -> Vec<Check> {
    let mut r = Runner {
        dev,
        large,
        cpu: Cpu,
        out: Vec::new(),
    };
    gemm_cases(&mut r).await;
    csr_cases(&mut r).await;
    elementwise_cases(&mut r).await;
    reduction_cases(&mut r).await;
    index_cases(&mut r).await;
    likelihood_cases(&mut r).await;
    random_cases(&mut r).await;
    nmf_cases(&mut r).await;
    linalg_cases(&mut r).await;
    r.out
}

/// A symmetric positive-definite n×n matrix per batch entry: a Gram
/// matrix of uniform rows plus a ridge, conditioned like a GP kernel
/// matrix with a nugget.
fn spd(n: usize, batch: usize, seed: u64) -> Vec<f32> {
    let g = uniform(batch * n * n, -0.5, 0.5, seed);
    let mut a = vec![0f32; batch * n * n];
    for t in 0..batch {
        let g = &g[t * n * n..];
        for i in 0..n {
            for j in 0..n {
                let s: f64 = (0..n).map(|q| (g[i * n + q] * g[j * n + q]) as f64).sum();
                a[t * n * n + i * n + j] = (s + if i == j { 0.05 * n as f64 } else { 0.0 }) as f32;
            }
        }
    }
    a
}

async fn linalg_cases<D: Device>(r: &mut Runner<'_, D>) {
    let (d, dc) = r.both(&uniform(1000, 0.0, 3.0, 111));
    let (a, ac) = r.both(&[1.0, 0.5, 2.0]);
    let (l, lc) = r.both(&[0.1, 1.0, 0.7]);
    for kernel in [GpKernel::Matern32, GpKernel::Rbf] {
        for part in [
            KernelPart::Value,
            KernelPart::Amplitude,
            KernelPart::LengthScale,
        ] {
            let (o, oc) = (r.dev.zeros(3000), r.cpu.zeros(3000));
            r.dev.gp_kernel(kernel, part, &d, &a, &l, 3, &o);
            r.cpu.gp_kernel(kernel, part, &dc, &ac, &lc, 3, &oc);
            r.compare(
                "gp_kernel",
                format!("3x1000 {kernel:?} {part:?}"),
                1e-5,
                &o,
                &oc,
            )
            .await;
        }
    }
    for &(n, k, batch) in &[
        (1usize, 1usize, 1usize),
        (7, 3, 2),
        (65, 70, 3),
        (300, 5, 1),
    ] {
        let a = spd(n, batch, 101 + n as u64);
        let (f, fc) = r.both(&a);
        let (info, infoc) = (r.dev.zeros(batch), r.cpu.zeros(batch));
        r.dev.cholesky(&f, n, batch, &info);
        r.cpu.cholesky(&fc, n, batch, &infoc);
        r.compare("cholesky", format!("{batch}x{n}x{n}"), 1e-4, &f, &fc)
            .await;
        r.compare(
            "cholesky",
            format!("{batch}x{n}x{n} info"),
            0.0,
            &info,
            &infoc,
        )
        .await;
        for transpose in [false, true] {
            let rhs = uniform(batch * n * k, -1.0, 1.0, 107);
            let (x, xc) = r.both(&rhs);
            r.dev.trsm(&f, &x, n, k, batch, transpose);
            r.cpu.trsm(&fc, &xc, n, k, batch, transpose);
            let t = if transpose { "T" } else { "" };
            r.compare("trsm", format!("{batch}x{n}x{k}{t}"), 1e-4, &x, &xc)
                .await;
        }
    }
    // The second matrix of the batch is indefinite at its third column.
    let mut a = spd(4, 2, 5);
    a[16 + 2 * 4 + 2] = -1.0;
    let (f, fc) = r.both(&a);
    let (info, infoc) = (r.dev.zeros(2), r.cpu.zeros(2));
    r.dev.cholesky(&f, 4, 2, &info);
    r.cpu.cholesky(&fc, 4, 2, &infoc);
    r.compare(
        "cholesky",
        "2x4x4 indefinite info".into(),
        0.0,
        &info,
        &infoc,
    )
    .await;
    r.compare("cholesky", "2x4x4 indefinite".into(), 1e-4, &f, &fc)
        .await;
}

async fn nmf_cases<D: Device>(r: &mut Runner<'_, D>) {
    for &(rows, k) in &[(1usize, 1usize), (7, 5), (1000, 13), (70_001, 3)] {
        if !r.large && rows > 65_535 {
            continue;
        }
        // A Gram matrix (positive diagonal) and a right-hand side that
        // drives some entries to the zero bound.
        let h = uniform(k * 4, 0.0, 1.0, 91);
        let mut hht = vec![0f32; k * k];
        for a in 0..k {
            for b in 0..k {
                hht[a * k + b] = (0..4).map(|j| h[a * 4 + j] * h[b * 4 + j]).sum::<f32>()
                    + 0.1 * (a == b) as u8 as f32;
            }
        }
        let (w, wc) = r.both(&uniform(rows * k, 0.0, 2.0, 92));
        let (xht, xhtc) = r.both(&uniform(rows * k, -0.5, 1.5, 93));
        let (hh, hhc) = r.both(&hht);
        let (v, vc) = (r.dev.zeros(rows), r.cpu.zeros(rows));
        r.dev.nmf_cd_rows(&w, &hh, &xht, rows, k, &v);
        r.cpu.nmf_cd_rows(&wc, &hhc, &xhtc, rows, k, &vc);
        r.compare("nmf_cd_rows", format!("{rows}x{k} w"), 1e-5, &w, &wc)
            .await;
        r.compare(
            "nmf_cd_rows",
            format!("{rows}x{k} violation"),
            1e-5,
            &v,
            &vc,
        )
        .await;
    }
}

async fn gemm_cases<D: Device>(r: &mut Runner<'_, D>) {
    let shapes = [(1, 1, 1), (7, 65, 13), (65, 7, 1000), (130, 70, 33)];
    for (i, &(m, n, k)) in shapes.iter().enumerate() {
        for (ta, tb) in [(false, false), (false, true), (true, false)] {
            let batch = if i == 1 { 3 } else { 1 };
            let g = Gemm {
                trans_a: ta,
                trans_b: tb,
                batch,
                alpha: 1.5,
                beta: if i == 2 { 0.5 } else { 0.0 },
                ..Gemm::new(m, n, k)
            };
            let (a, ac) = r.both(&uniform(batch * m * k, -1.0, 1.0, 11 + i as u64));
            let (b, bc) = r.both(&uniform(batch * k * n, -1.0, 1.0, 21 + i as u64));
            let (c, cc) = r.both(&uniform(batch * m * n, -1.0, 1.0, 31 + i as u64));
            r.dev.gemm(g, &a, &b, &c);
            r.cpu.gemm(g, &ac, &bc, &cc);
            let name = match (ta, tb) {
                (false, false) => "gemm_nn",
                (false, true) => "gemm_nt",
                _ => "gemm_tn",
            };
            r.compare(
                name,
                format!("{m}x{n}x{k} batch {batch}"),
                1e-5 * k as f32 + 1e-5,
                &c,
                &cc,
            )
            .await;
        }
    }
}

/// A random CSR matrix with about `density` of its entries set.
pub fn random_csr(
    rows: usize,
    cols: usize,
    density: f32,
    seed: u64,
) -> (Vec<u32>, Vec<u32>, Vec<f32>) {
    let (mut indptr, mut indices, mut data) = (vec![0u32], vec![], vec![]);
    let mut i = 0;
    for _ in 0..rows {
        for c in 0..cols {
            if philox::uniform(seed, 0, i) < density {
                indices.push(c as u32);
                data.push(philox::uniform(seed + 1, 0, i) * 4.0);
            }
            i += 1;
        }
        indptr.push(indices.len() as u32);
    }
    (indptr, indices, data)
}

async fn csr_cases<D: Device>(r: &mut Runner<'_, D>) {
    for &(rows, cols, n) in &[(1, 1, 1), (65, 1000, 7), (300, 17, 65)] {
        let (ip, ix, dv) = random_csr(rows, cols, 0.1, 5);
        let (ipd, ixd, (dvd, dvc)) = (
            r.dev.upload_index(&ip),
            r.dev.upload_index(&ix),
            r.both(&dv),
        );
        let a = Csr {
            rows,
            cols,
            indptr: &ipd,
            indices: &ixd,
            data: &dvd,
        };
        let ac = Csr {
            rows,
            cols,
            indptr: &ip,
            indices: &ix,
            data: &dvc,
        };
        for transpose in [false, true] {
            let (b_rows, c_rows) = if transpose {
                (rows, cols)
            } else {
                (cols, rows)
            };
            let (b, bc) = r.both(&uniform(b_rows * n, -1.0, 1.0, 7));
            let (c, cc) = (r.dev.zeros(c_rows * n), r.cpu.zeros(c_rows * n));
            r.dev.csr_mm(&a, &b, n, transpose, &c);
            r.cpu.csr_mm(&ac, &bc, n, transpose, &cc);
            let name = if transpose { "csr_t_mm" } else { "csr_mm" };
            r.compare(
                name,
                format!("{rows}x{cols} nnz {} x {n}", dv.len()),
                1e-5 * rows.max(cols) as f32,
                &c,
                &cc,
            )
            .await;
        }
    }
}

async fn elementwise_cases<D: Device>(r: &mut Runner<'_, D>) {
    for &n in &[1usize, 7, 65, 1000, 70_001] {
        if !r.large && n > 65_535 {
            continue;
        }
        for (op, lo, hi, tol) in [
            (Unary::Exp, -5.0, 5.0, 2e-6),
            (Unary::Log, 1e-3, 100.0, 2e-6),
            (Unary::Softplus, -30.0, 30.0, 2e-6),
            (Unary::Sigmoid, -30.0, 30.0, 2e-6),
            (Unary::Lgamma, 1e-3, 200.0, 5e-5),
            (Unary::Digamma, 1e-2, 200.0, 5e-5),
            (Unary::Sign, -1.0, 1.0, 0.0),
        ] {
            let (x, xc) = r.both(&uniform(n, lo, hi, n as u64));
            let (o, oc) = (r.dev.zeros(n), r.cpu.zeros(n));
            r.dev.unary(op, &x, &o);
            r.cpu.unary(op, &xc, &oc);
            r.compare(
                &format!("{op:?}").to_lowercase(),
                format!("{n}"),
                tol,
                &o,
                &oc,
            )
            .await;
        }
        let cols = 7.min(n);
        for op in [
            Binary::Add,
            Binary::Sub,
            Binary::Mul,
            Binary::Div,
            Binary::Max,
        ] {
            let (a, ac) = r.both(&uniform(n, -3.0, 3.0, 1));
            let (b, bc) = r.both(&uniform(cols, 0.5, 2.0, 2));
            let (o, oc) = (r.dev.zeros(n), r.cpu.zeros(n));
            r.dev.binary(op, &a, &b, &o);
            r.cpu.binary(op, &ac, &bc, &oc);
            r.compare(
                &format!("{op:?}").to_lowercase(),
                format!("{n} by {cols}"),
                1e-6,
                &o,
                &oc,
            )
            .await;
        }
        let rows = n / cols;
        for op in [Binary::Add, Binary::Mul, Binary::Div, Binary::Max] {
            let (a, ac) = r.both(&uniform(rows * cols, -3.0, 3.0, 13));
            let (v, vc) = r.both(&uniform(rows, 0.5, 2.0, 14));
            let (o, oc) = (r.dev.zeros(rows * cols), r.cpu.zeros(rows * cols));
            r.dev.binary_rows(op, &a, &v, rows, cols, &o);
            r.cpu.binary_rows(op, &ac, &vc, rows, cols, &oc);
            r.compare(
                &format!("{op:?}_rows").to_lowercase(),
                format!("{rows}x{cols}"),
                1e-6,
                &o,
                &oc,
            )
            .await;
        }
        for (d, lo, hi) in [
            (Density::Gamma, 0.01f32, 20.0f32),
            (Density::Exponential, 0.001, 20.0),
            (Density::Normal, -5.0, 5.0),
        ] {
            let (x, xc) = r.both(&uniform(n, lo, hi, 3));
            let (p1, p1c) = r.both(&uniform(cols, 0.5, 5.0, 4));
            let (p2, p2c) = r.both(&uniform(1, 0.5, 3.0, 5));
            let (o, oc) = (r.dev.zeros(n), r.cpu.zeros(n));
            r.dev.log_density(d, &x, &p1, &p2, &o);
            r.cpu.log_density(d, &xc, &p1c, &p2c, &oc);
            r.compare(
                &format!("log_density_{d:?}").to_lowercase(),
                format!("{n}"),
                2e-5,
                &o,
                &oc,
            )
            .await;
        }
    }
}

async fn reduction_cases<D: Device>(r: &mut Runner<'_, D>) {
    for &(rows, cols) in &[(1, 1), (7, 65), (65, 1000), (1000, 7), (3, 70_001)] {
        if !r.large && cols > 65_535 {
            continue;
        }
        let (x, xc) = r.both(&uniform(rows * cols, -4.0, 4.0, 9));
        for axis in [Axis::Rows, Axis::Cols] {
            let n_out = if axis == Axis::Rows { rows } else { cols };
            let inner = if axis == Axis::Rows { cols } else { rows };
            for op in [Reduce::Sum, Reduce::Max, Reduce::LogSumExp] {
                let (o, oc) = (r.dev.zeros(n_out), r.cpu.zeros(n_out));
                r.dev.reduce(op, axis, &x, rows, cols, &o);
                r.cpu.reduce(op, axis, &xc, rows, cols, &oc);
                let name = format!("{op:?}_{axis:?}").to_lowercase();
                r.compare(
                    &name,
                    format!("{rows}x{cols}"),
                    1e-6 * inner as f32 + 1e-6,
                    &o,
                    &oc,
                )
                .await;
            }
            let (b, bc) = r.both(&uniform(rows * cols, -1.0, 1.0, 10));
            let (o, oc) = (r.dev.zeros(n_out), r.cpu.zeros(n_out));
            r.dev.cosine(axis, &x, &b, rows, cols, &o);
            r.cpu.cosine(axis, &xc, &bc, rows, cols, &oc);
            r.compare(
                &format!("cosine_{axis:?}").to_lowercase(),
                format!("{rows}x{cols}"),
                1e-5,
                &o,
                &oc,
            )
            .await;
            let (cs, csc) = (r.dev.zeros(n_out), r.cpu.zeros(n_out));
            let (g, gc) = (r.dev.zeros(rows * cols), r.cpu.zeros(rows * cols));
            r.dev.cosine_grad(axis, &x, &b, rows, cols, -0.5, &cs, &g);
            r.cpu
                .cosine_grad(axis, &xc, &bc, rows, cols, -0.5, &csc, &gc);
            let name = format!("cosine_grad_{axis:?}").to_lowercase();
            r.compare(&name, format!("{rows}x{cols} cos"), 1e-5, &cs, &csc)
                .await;
            r.compare(&name, format!("{rows}x{cols} grad"), 1e-5, &g, &gc)
                .await;
        }
        let (o, oc) = (r.dev.zeros(rows * cols), r.cpu.zeros(rows * cols));
        r.dev.softmax_rows(&x, rows, cols, &o);
        r.cpu.softmax_rows(&xc, rows, cols, &oc);
        r.compare("softmax_rows", format!("{rows}x{cols}"), 1e-6, &o, &oc)
            .await;
        let (dp, dpc) = r.both(&uniform(rows * cols, -2.0, 2.0, 12));
        let (dx, dxc) = (r.dev.zeros(rows * cols), r.cpu.zeros(rows * cols));
        r.dev.softmax_backward(&o, &dp, rows, cols, &dx);
        r.cpu.softmax_backward(&oc, &dpc, rows, cols, &dxc);
        r.compare(
            "softmax_backward",
            format!("{rows}x{cols}"),
            1e-6,
            &dx,
            &dxc,
        )
        .await;
    }
}

async fn index_cases<D: Device>(r: &mut Runner<'_, D>) {
    for &(n, m) in &[(1usize, 1usize), (1000, 65), (70_001, 7)] {
        if !r.large && n > 65_535 {
            continue;
        }
        let idx: Vec<u32> = (0..n)
            .map(|i| (philox::uniform(77, 0, i) * m as f32) as u32 % m as u32)
            .collect();
        let (x, xc) = r.both(&uniform(n, -1.0, 1.0, 8));
        let (id, idc) = (r.dev.upload_index(&idx), r.cpu.upload_index(&idx));
        let (o, oc) = r.both(&uniform(m, 0.0, 1.0, 9));
        r.dev.scatter_add(&x, &id, &o);
        r.cpu.scatter_add(&xc, &idc, &oc);
        r.compare(
            "scatter_add",
            format!("{n} into {m}"),
            1e-6 * (n / m).max(1) as f32,
            &o,
            &oc,
        )
        .await;
        let (g, gc) = (r.dev.zeros(n), r.cpu.zeros(n));
        let (src, srcc) = r.both(&uniform(m, -1.0, 1.0, 12));
        r.dev.gather(&src, &id, &g);
        r.cpu.gather(&srcc, &idc, &gc);
        r.compare("gather", format!("{n} from {m}"), 0.0, &g, &gc)
            .await;
    }
}

async fn likelihood_cases<D: Device>(r: &mut Runner<'_, D>) {
    for &(rows, cols) in &[(1, 1), (7, 65), (65, 1000), (1000, 7)] {
        let n = rows * cols;
        let counts: Vec<f32> = uniform(n, 0.0, 60.0, 13)
            .iter()
            .map(|v| v.floor())
            .collect();
        let (x, xc) = r.both(&counts);
        let (mu, muc) = r.both(&uniform(n, 0.05, 50.0, 14));
        let (th, thc) = r.both(&uniform(cols, 0.2, 30.0, 15));
        let (ll, llc) = (r.dev.zeros(rows), r.cpu.zeros(rows));
        let (gm, gmc) = (r.dev.zeros(n), r.cpu.zeros(n));
        let (gt, gtc) = (r.dev.zeros(n), r.cpu.zeros(n));
        r.dev
            .nb_loglik_grad(&x, &mu, &th, rows, cols, &ll, &gm, &gt);
        r.cpu
            .nb_loglik_grad(&xc, &muc, &thc, rows, cols, &llc, &gmc, &gtc);
        let shape = format!("{rows}x{cols}");
        r.compare("nb_loglik", shape.clone(), 2e-5 * cols as f32, &ll, &llc)
            .await;
        r.compare("nb_grad_mu", shape.clone(), 1e-5, &gm, &gmc)
            .await;
        r.compare("nb_grad_theta", shape.clone(), 5e-5, &gt, &gtc)
            .await;
        // The same counts as groups of rows sharing a mean: group k of rows
        // k, k + groups, …; only the non-zeros are passed.
        let groups = rows.div_ceil(3);
        let (mut seg, mut vals) = (vec![0u32], vec![]);
        for k in 0..groups {
            for j in 0..cols {
                let rs = (k..rows).step_by(groups);
                vals.extend(rs.map(|i| counts[i * cols + j]).filter(|&v| v != 0.0));
                seg.push(vals.len() as u32);
            }
        }
        vals.push(0.0);
        let count: Vec<f32> = (0..groups)
            .map(|k| (k..rows).step_by(groups).count() as f32)
            .collect();
        let (gx, gxc) = r.both(&vals);
        let (sg, sgc) = (r.dev.upload_index(&seg), r.cpu.upload_index(&seg));
        let (nk, nkc) = r.both(&count);
        let m = groups * cols;
        let (gmu, gmuc) = r.both(&uniform(m, 0.05, 50.0, 24));
        let out: [_; 3] = std::array::from_fn(|_| r.dev.zeros(m));
        let outc: [_; 3] = std::array::from_fn(|_| r.cpu.zeros(m));
        r.dev.nb_grouped(
            &gx,
            &sg,
            &nk,
            &gmu,
            &th,
            groups,
            cols,
            [&out[0], &out[1], &out[2]],
        );
        r.cpu.nb_grouped(
            &gxc,
            &sgc,
            &nkc,
            &gmuc,
            &thc,
            groups,
            cols,
            [&outc[0], &outc[1], &outc[2]],
        );
        let shape = format!("{groups} groups of {rows}x{cols}");
        for (name, i, tol) in [
            ("nb_grouped_ll", 0, 1e-4),
            ("nb_grouped_mu", 1, 2e-5),
            ("nb_grouped_theta", 2, 1e-4),
        ] {
            r.compare(name, shape.clone(), tol, &out[i], &outc[i]).await;
        }
        let (ll, llc) = (r.dev.zeros(rows), r.cpu.zeros(rows));
        r.dev.poisson_loglik_grad(&x, &mu, rows, cols, &ll, &gm);
        r.cpu.poisson_loglik_grad(&xc, &muc, rows, cols, &llc, &gmc);
        r.compare(
            "poisson_loglik",
            shape.clone(),
            2e-5 * cols as f32,
            &ll,
            &llc,
        )
        .await;
        r.compare("poisson_grad", shape, 1e-5, &gm, &gmc).await;
    }
}

async fn random_cases<D: Device>(r: &mut Runner<'_, D>) {
    for &n in &[1usize, 7, 65, 70_001] {
        if !r.large && n > 65_535 {
            continue;
        }
        for normal in [false, true] {
            let (o, oc) = (r.dev.zeros(n), r.cpu.zeros(n));
            r.dev.random(normal, 0x1234_5678_9abc, 3, &o);
            r.cpu.random(normal, 0x1234_5678_9abc, 3, &oc);
            // Uniforms are exact; normals pass through log, whose WGSL precision
            // (3 ULP) differs between drivers (SwiftShader: 2.6e-5 at worst).
            let (name, tol) = if normal {
                ("philox_normal", 5e-5)
            } else {
                ("philox_uniform", 0.0)
            };
            r.compare(name, format!("{n}"), tol, &o, &oc).await;
        }
        let (loc, locc) = r.both(&uniform(n, -2.0, 2.0, 16));
        let (s, sc) = r.both(&uniform(n, -3.0, 1.0, 17));
        let (z, zc) = (r.dev.zeros(n), r.cpu.zeros(n));
        r.dev.normal_draw(&loc, &s, 99, 0, &z);
        r.cpu.normal_draw(&locc, &sc, 99, 0, &zc);
        r.compare("normal_draw", format!("{n}"), 5e-5, &z, &zc)
            .await;
        for clip in [None, Some(0.5)] {
            let (w, wc) = r.both(&uniform(n, -1.0, 1.0, 18));
            let (m, mc) = (r.dev.zeros(n), r.cpu.zeros(n));
            let (v, vc) = (r.dev.zeros(n), r.cpu.zeros(n));
            for step in 1..=3u32 {
                let (g, gc) = r.both(&uniform(n, -2.0, 2.0, 19 + step as u64));
                let p = AdamParams {
                    lr: 0.01,
                    step,
                    clip,
                    lrd: 0.999,
                    ..AdamParams::default()
                };
                r.dev.adam(p, &w, &g, &m, &v);
                r.cpu.adam(p, &wc, &gc, &mc, &vc);
            }
            let name = if clip.is_some() {
                "clipped_adam"
            } else {
                "adam"
            };
            r.compare(name, format!("{n} x 3 steps"), 1e-5, &w, &wc)
                .await;
        }
    }
}
