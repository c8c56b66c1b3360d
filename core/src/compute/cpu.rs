//! The CPU device: plain loops in f64 accumulation, written to be obviously
//! right. It is the oracle every GPU kernel is tested against.

use std::cell::RefCell;

use super::special::{digamma, lgamma, sigmoid, softplus};
use super::{philox, AdamParams, Axis, Binary, Csr, Density, Device, Gemm, Reduce, Unary};

#[derive(Debug, Default, Clone, Copy)]
pub struct Cpu;

/// Host storage; interior mutability so ops can take every buffer by `&`.
#[derive(Debug)]
pub struct CpuBuf(RefCell<Vec<f32>>);

impl CpuBuf {
    fn get(&self) -> Vec<f32> {
        self.0.borrow().clone()
    }

    fn set(&self, v: Vec<f32>) {
        *self.0.borrow_mut() = v;
    }
}

fn bcast(p: &[f32], i: usize) -> f64 {
    p[i % p.len()] as f64
}

/// Γ-Poisson log-pmf and gradients, in f64.
pub fn nb_terms(x: f64, mu: f64, theta: f64) -> (f64, f64, f64) {
    let lt = (theta / (theta + mu)).ln();
    let ll = lgamma(x + theta) - lgamma(theta) - lgamma(x + 1.0)
        + theta * lt
        + x * (mu / (theta + mu)).ln();
    let d_mu = x / mu - (x + theta) / (theta + mu);
    let d_theta = digamma(x + theta) - digamma(theta) + lt + 1.0 - (x + theta) / (theta + mu);
    (ll, d_mu, d_theta)
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

    fn zeros(&self, len: usize) -> CpuBuf {
        CpuBuf(RefCell::new(vec![0.0; len]))
    }

    fn len(&self, buf: &CpuBuf) -> usize {
        buf.0.borrow().len()
    }

    async fn read(&self, buf: &CpuBuf) -> Vec<f32> {
        buf.get()
    }

    fn gemm(&self, g: Gemm, a: &CpuBuf, b: &CpuBuf, c: &CpuBuf) {
        let (a, b, mut out) = (a.get(), b.get(), c.get());
        assert!(
            a.len() >= g.batch * g.m * g.k
                && b.len() >= g.batch * g.k * g.n
                && out.len() >= g.batch * g.m * g.n,
            "gemm: buffer too small"
        );
        for t in 0..g.batch {
            let (a, b) = (&a[t * g.m * g.k..], &b[t * g.k * g.n..]);
            let c = &mut out[t * g.m * g.n..];
            for i in 0..g.m {
                for j in 0..g.n {
                    let mut s = 0f64;
                    for l in 0..g.k {
                        let av = if g.trans_a {
                            a[l * g.m + i]
                        } else {
                            a[i * g.k + l]
                        };
                        let bv = if g.trans_b {
                            b[j * g.k + l]
                        } else {
                            b[l * g.n + j]
                        };
                        s += av as f64 * bv as f64;
                    }
                    let prev = if g.beta == 0.0 {
                        0.0
                    } else {
                        g.beta as f64 * c[i * g.n + j] as f64
                    };
                    c[i * g.n + j] = (g.alpha as f64 * s + prev) as f32;
                }
            }
        }
        c.set(out);
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
        let f = |v: f64| match op {
            Unary::Exp => v.exp(),
            Unary::Log => v.ln(),
            Unary::Softplus => softplus(v),
            Unary::Sigmoid => sigmoid(v),
            Unary::Lgamma => lgamma(v),
            Unary::Digamma => digamma(v),
        };
        out.set(x.get().into_iter().map(|v| f(v as f64) as f32).collect());
    }

    fn binary(&self, op: Binary, a: &CpuBuf, b: &CpuBuf, out: &CpuBuf) {
        let (a, b) = (a.get(), b.get());
        let r = a
            .iter()
            .enumerate()
            .map(|(i, &x)| {
                let (x, y) = (x as f64, bcast(&b, i));
                (match op {
                    Binary::Add => x + y,
                    Binary::Sub => x - y,
                    Binary::Mul => x * y,
                    Binary::Div => x / y,
                }) as f32
            })
            .collect();
        out.set(r);
    }

    fn reduce(&self, op: Reduce, axis: Axis, x: &CpuBuf, rows: usize, cols: usize, out: &CpuBuf) {
        let x = x.get();
        let (outer, inner) = match axis {
            Axis::Rows => (rows, cols),
            Axis::Cols => (cols, rows),
        };
        let at = |o: usize, i: usize| match axis {
            Axis::Rows => x[o * cols + i] as f64,
            Axis::Cols => x[i * cols + o] as f64,
        };
        let r = (0..outer)
            .map(|o| {
                let vals = (0..inner).map(|i| at(o, i));
                (match op {
                    Reduce::Sum => vals.sum::<f64>(),
                    Reduce::Max => vals.fold(f64::NEG_INFINITY, f64::max),
                    Reduce::LogSumExp => {
                        let m = (0..inner)
                            .map(|i| at(o, i))
                            .fold(f64::NEG_INFINITY, f64::max);
                        m + vals.map(|v| (v - m).exp()).sum::<f64>().ln()
                    }
                }) as f32
            })
            .collect();
        out.set(r);
    }

    fn softmax_rows(&self, x: &CpuBuf, rows: usize, cols: usize, out: &CpuBuf) {
        let x = x.get();
        let mut r = vec![0f32; rows * cols];
        for i in 0..rows {
            let row = &x[i * cols..(i + 1) * cols];
            let m = row.iter().fold(f64::NEG_INFINITY, |a, &v| a.max(v as f64));
            let s: f64 = row.iter().map(|&v| (v as f64 - m).exp()).sum();
            for j in 0..cols {
                r[i * cols + j] = ((row[j] as f64 - m).exp() / s) as f32;
            }
        }
        out.set(r);
    }

    fn cosine(&self, axis: Axis, a: &CpuBuf, b: &CpuBuf, rows: usize, cols: usize, out: &CpuBuf) {
        let (a, b) = (a.get(), b.get());
        let (outer, inner) = match axis {
            Axis::Rows => (rows, cols),
            Axis::Cols => (cols, rows),
        };
        let idx = |o: usize, i: usize| match axis {
            Axis::Rows => o * cols + i,
            Axis::Cols => i * cols + o,
        };
        let r = (0..outer)
            .map(|o| {
                let (mut ab, mut aa, mut bb) = (0f64, 0f64, 0f64);
                for i in 0..inner {
                    let (x, y) = (a[idx(o, i)] as f64, b[idx(o, i)] as f64);
                    ab += x * y;
                    aa += x * x;
                    bb += y * y;
                }
                (ab / (aa.sqrt() * bb.sqrt()).max(1e-12)) as f32
            })
            .collect();
        out.set(r);
    }

    fn gather(&self, x: &CpuBuf, idx: &Vec<u32>, out: &CpuBuf) {
        let x = x.get();
        out.set(idx.iter().map(|&i| x[i as usize]).collect());
    }

    fn scatter_add(&self, x: &CpuBuf, idx: &Vec<u32>, out: &CpuBuf) {
        let (x, mut o) = (x.get(), out.get());
        for (v, &i) in x.iter().zip(idx) {
            o[i as usize] += v;
        }
        out.set(o);
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
        let (x, mu, theta) = (x.get(), mu.get(), theta.get());
        let (mut ll, mut gm, mut gt) = (
            vec![0f64; rows],
            vec![0f32; rows * cols],
            vec![0f32; rows * cols],
        );
        for i in 0..rows * cols {
            let (l, dm, dt) = nb_terms(x[i] as f64, mu[i] as f64, bcast(&theta, i));
            ll[i / cols] += l;
            gm[i] = dm as f32;
            gt[i] = dt as f32;
        }
        ll_rows.set(ll.into_iter().map(|v| v as f32).collect());
        grad_mu.set(gm);
        grad_theta.set(gt);
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
        let (x, mu) = (x.get(), mu.get());
        let (mut ll, mut gm) = (vec![0f64; rows], vec![0f32; rows * cols]);
        for i in 0..rows * cols {
            let (x, m) = (x[i] as f64, mu[i] as f64);
            ll[i / cols] += x * m.ln() - m - lgamma(x + 1.0);
            gm[i] = (x / m - 1.0) as f32;
        }
        ll_rows.set(ll.into_iter().map(|v| v as f32).collect());
        grad_mu.set(gm);
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
        let (mut w, g, mut m1, mut v1) = (param.get(), grad.get(), m.get(), v.get());
        let lr = p.lr as f64 * (p.lrd as f64).powi(p.step as i32 - 1);
        let (b1, b2) = (p.beta1 as f64, p.beta2 as f64);
        let (c1, c2) = (1.0 - b1.powi(p.step as i32), 1.0 - b2.powi(p.step as i32));
        for i in 0..w.len() {
            let mut gi = g[i] as f64;
            if let Some(c) = p.clip {
                gi = gi.clamp(-c as f64, c as f64);
            }
            let mi = b1 * m1[i] as f64 + (1.0 - b1) * gi;
            let vi = b2 * v1[i] as f64 + (1.0 - b2) * gi * gi;
            w[i] = (w[i] as f64 - lr * (mi / c1) / ((vi / c2).sqrt() + p.eps as f64)) as f32;
            m1[i] = mi as f32;
            v1[i] = vi as f32;
        }
        param.set(w);
        m.set(m1);
        v.set(v1);
    }

    fn random(&self, normal: bool, seed: u64, offset: u32, out: &CpuBuf) {
        let n = self.len(out);
        out.set(
            (0..n)
                .map(|i| {
                    if normal {
                        philox::normal(seed, offset, i)
                    } else {
                        philox::uniform(seed, offset, i)
                    }
                })
                .collect(),
        );
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
}
