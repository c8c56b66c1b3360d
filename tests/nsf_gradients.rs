//! The NSF family's hand-written gradients against central differences of
//! an independent f64 objective (plain loops, its own Cholesky), on small
//! problems with fixed draws: NSF, PNMF and NSFH, Poisson and NB, both
//! kernels, the kernel's own gradient included. The CPU device and wgpu
//! (lavapipe in CI) must agree with it.

use tessera_core::compute::cpu::Cpu;
use tessera_core::compute::gpu::Gpu;
use tessera_core::compute::{philox, Device, GpKernel, KernelPart};
use tessera_core::models::checkpoint::{Checkpoint, Resume};
use tessera_core::models::nsf::model::{
    Data, Likelihood, Objective, Params, Shape, DIAG_SHIFT, NUGGET,
};

fn softplus(x: f64) -> f64 {
    if x > 20.0 {
        x
    } else {
        x.exp().ln_1p()
    }
}

fn lgamma(x: f64) -> f64 {
    tessera_core::compute::special::lgamma(x)
}

struct Problem {
    shape: Shape,
    nonneg: bool,
    lik: Likelihood,
    kernel: GpKernel,
    y: Vec<f32>,
    sz: Vec<f32>,
    x: Vec<[f64; 2]>,
    z: Vec<[f64; 2]>,
    eps_f: Vec<f32>,
    eps_h: Vec<f32>,
}

fn normal(seed: u64, n: usize) -> Vec<f32> {
    (0..n).map(|i| philox::normal(seed, 0, i)).collect()
}

fn uniform(seed: u64, n: usize, lo: f64, hi: f64) -> Vec<f64> {
    (0..n)
        .map(|i| lo + (hi - lo) * philox::uniform(seed, 0, i) as f64)
        .collect()
}

fn problem(t: usize, k: usize, lik: Likelihood, kernel: GpKernel) -> (Problem, Params) {
    problem_with(t, k, lik, kernel, true)
}

fn problem_with(
    t: usize,
    k: usize,
    lik: Likelihood,
    kernel: GpKernel,
    nonneg: bool,
) -> (Problem, Params) {
    let (n, j, m, s) = (9, 4, 5, 2);
    let xy = uniform(1, 2 * n, -1.0, 1.0);
    let x: Vec<[f64; 2]> = (0..n).map(|i| [xy[2 * i], xy[2 * i + 1]]).collect();
    let z: Vec<[f64; 2]> = x[..m].to_vec();
    let y: Vec<f32> = uniform(2, n * j, 0.0, 6.0)
        .iter()
        .map(|v| v.floor() as f32)
        .collect();
    let sz: Vec<f32> = uniform(3, n, 0.5, 1.5).iter().map(|&v| v as f32).collect();
    let small = |seed, len, scale: f32| -> Vec<f32> {
        normal(seed, len).iter().map(|v| v * scale).collect()
    };
    let mut omega = small(4, t * m * m, 0.1);
    for l in 0..t {
        for r in 0..m {
            omega[l * m * m + r * m + r] = -1.5 + 0.1 * r as f32;
            for c in r + 1..m {
                omega[l * m * m + r * m + c] = 0.0;
            }
        }
    }
    let pos = |seed, len| -> Vec<f32> {
        uniform(seed, len, 0.2, 1.0)
            .iter()
            .map(|&v| v as f32)
            .collect()
    };
    let p = Params {
        delta: small(5, t * m, 0.5),
        omega,
        beta0: small(6, t, 0.3),
        beta: small(7, t * 2, 0.3),
        amp: (0..t).map(|l| 0.3 + 0.2 * l as f32).collect(),
        ls: (0..t).map(|l| -0.2 + 0.3 * l as f32).collect(),
        w: pos(8, j * t),
        qloc: small(9, n * k, 0.4),
        qscale: small(10, n * k, 0.3).iter().map(|v| v - 1.0).collect(),
        ploc: small(11, k, 0.3),
        pscale: small(12, k, 0.2),
        v: pos(13, j * k),
        disp: match lik {
            Likelihood::Poisson => vec![],
            Likelihood::Nb => small(14, j, 0.5).iter().map(|v| v - 1.0).collect(),
            // σ between about 0.5 and 1.5, so the residuals of counts 0–5
            // weigh like the other terms.
            Likelihood::Gaussian => small(14, j, 0.5).iter().map(|v| v + 0.5).collect(),
        },
    };
    let shape = Shape { n, j, t, k, m, s };
    (
        Problem {
            shape,
            nonneg,
            lik,
            kernel,
            y,
            sz,
            x,
            z,
            eps_f: normal(15, s * t * n),
            eps_h: normal(16, s * n * k),
        },
        p,
    )
}

fn kern(kernel: GpKernel, d: f64, a: f64, l: f64) -> f64 {
    match kernel {
        GpKernel::Matern32 => {
            let t = 3f64.sqrt() * d / l;
            a * a * (1.0 + t) * (-t).exp()
        }
        GpKernel::Rbf => a * a * (-0.5 * (d / l).powi(2)).exp(),
    }
}

fn chol(a: &[f64], m: usize) -> Vec<f64> {
    let mut l = vec![0.0; m * m];
    for i in 0..m {
        for j in 0..=i {
            let s: f64 = (0..j).map(|q| l[i * m + q] * l[j * m + q]).sum();
            if i == j {
                l[i * m + i] = (a[i * m + i] - s).sqrt();
            } else {
                l[i * m + j] = (a[i * m + j] - s) / l[j * m + j];
            }
        }
    }
    l
}

/// Solves K x = b with K's Cholesky factor.
fn solve(l: &[f64], b: &[f64], m: usize) -> Vec<f64> {
    let mut y = vec![0.0; m];
    for i in 0..m {
        y[i] = (b[i] - (0..i).map(|q| l[i * m + q] * y[q]).sum::<f64>()) / l[i * m + i];
    }
    let mut x = vec![0.0; m];
    for i in (0..m).rev() {
        x[i] = (y[i] - (i + 1..m).map(|q| l[q * m + i] * x[q]).sum::<f64>()) / l[i * m + i];
    }
    x
}

fn dist(a: [f64; 2], b: [f64; 2]) -> f64 {
    ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)).sqrt()
}

/// The loss per observation, in f64, straight from the model's definition.
fn loss64(pr: &Problem, p: &Params) -> f64 {
    let Shape { n, j, t, k, m, s } = pr.shape;
    let mut f = vec![0.0; s * t * n];
    let mut kl = 0.0;
    for l in 0..t {
        let (a, ls) = (softplus(p.amp[l] as f64), softplus(p.ls[l] as f64));
        let mut kuu = vec![0.0; m * m];
        for r in 0..m {
            for c in 0..m {
                kuu[r * m + c] = kern(pr.kernel, dist(pr.z[r], pr.z[c]), a, ls)
                    + if r == c { NUGGET as f64 } else { 0.0 };
            }
        }
        let lu = chol(&kuu, m);
        let mut om = vec![0.0; m * m];
        for r in 0..m {
            for c in 0..r {
                om[r * m + c] = p.omega[l * m * m + r * m + c] as f64;
            }
            om[r * m + r] = softplus(p.omega[l * m * m + r * m + r] as f64) + DIAG_SHIFT as f64;
        }
        let mean = |q: [f64; 2]| {
            p.beta0[l] as f64 + p.beta[2 * l] as f64 * q[0] + p.beta[2 * l + 1] as f64 * q[1]
        };
        let rvec: Vec<f64> = (0..m)
            .map(|r| p.delta[l * m + r] as f64 - mean(pr.z[r]))
            .collect();
        for i in 0..n {
            let kuf: Vec<f64> = (0..m)
                .map(|r| kern(pr.kernel, dist(pr.z[r], pr.x[i]), a, ls))
                .collect();
            let alpha = solve(&lu, &kuf, m);
            let mu = mean(pr.x[i]) + (0..m).map(|r| alpha[r] * rvec[r]).sum::<f64>();
            let omega_alpha: f64 = (0..m)
                .map(|c| {
                    (0..m)
                        .map(|r| om[r * m + c] * alpha[r])
                        .sum::<f64>()
                        .powi(2)
                })
                .sum();
            let var = a * a + NUGGET as f64 - (0..m).map(|r| kuf[r] * alpha[r]).sum::<f64>()
                + omega_alpha;
            for d in 0..s {
                f[d * t * n + l * n + i] = mu + var.sqrt() * pr.eps_f[d * t * n + l * n + i] as f64;
            }
        }
        // KL(N(δ, ΩΩᵀ) ‖ N(m(Z), K)).
        let mut tr = 0.0;
        for c in 0..m {
            let col: Vec<f64> = (0..m).map(|r| om[r * m + c]).collect();
            let kc = solve(&lu, &col, m);
            tr += (0..m).map(|r| kc[r] * col[r]).sum::<f64>();
        }
        let kr = solve(&lu, &rvec, m);
        let quad: f64 = (0..m).map(|r| kr[r] * rvec[r]).sum();
        let logdet_k: f64 = 2.0 * (0..m).map(|r| lu[r * m + r].ln()).sum::<f64>();
        let logdet_s: f64 = 2.0 * (0..m).map(|r| om[r * m + r].ln()).sum::<f64>();
        kl += 0.5 * (tr + quad - m as f64 + logdet_k - logdet_s);
    }
    let mut h = vec![0.0; s * n * k];
    for d in 0..s {
        for i in 0..n * k {
            h[d * n * k + i] =
                p.qloc[i] as f64 + softplus(p.qscale[i] as f64) * pr.eps_h[d * n * k + i] as f64;
        }
    }
    for i in 0..n {
        for c in 0..k {
            let (q, sq) = (
                p.qloc[i * k + c] as f64,
                softplus(p.qscale[i * k + c] as f64),
            );
            let (pl, ps) = (p.ploc[c] as f64, softplus(p.pscale[c] as f64));
            kl += ps.ln() - sq.ln() + (sq * sq + (q - pl).powi(2)) / (2.0 * ps * ps) - 0.5;
        }
    }
    let mut ll = 0.0;
    for d in 0..s {
        for i in 0..n {
            for g in 0..j {
                let mut lam = 0.0;
                for l in 0..t {
                    let fl = f[d * t * n + l * n + i];
                    lam += p.w[g * t + l] as f64 * if pr.nonneg { fl.exp() } else { fl };
                }
                let gaussian = pr.lik == Likelihood::Gaussian;
                // RSF's log link for counts; the Gaussian's identity.
                if !pr.nonneg && !gaussian {
                    lam = lam.exp();
                }
                for c in 0..k {
                    lam += p.v[g * k + c] as f64 * h[d * n * k + i * k + c].exp();
                }
                // The Gaussian reads normalised data: no size factors.
                let mu = if gaussian { lam } else { pr.sz[i] as f64 * lam };
                let y = pr.y[i * j + g] as f64;
                ll += match pr.lik {
                    Likelihood::Gaussian => {
                        let sd = softplus(p.disp[g] as f64);
                        -0.5 * (2.0 * std::f64::consts::PI).ln()
                            - sd.ln()
                            - (y - mu).powi(2) / (2.0 * sd * sd)
                    }
                    Likelihood::Poisson => y * mu.ln() - mu - lgamma(y + 1.0),
                    Likelihood::Nb => {
                        let th = 1.0 / softplus(p.disp[g] as f64);
                        lgamma(y + th) - lgamma(th) - lgamma(y + 1.0)
                            + th * (th / (th + mu)).ln()
                            + y * (mu / (th + mu)).ln()
                    }
                };
            }
        }
    }
    -ll / (s * n) as f64 + kl / n as f64
}

fn fields(p: &mut Params) -> Vec<(&'static str, &mut Vec<f32>)> {
    vec![
        ("delta", &mut p.delta),
        ("omega", &mut p.omega),
        ("beta0", &mut p.beta0),
        ("beta", &mut p.beta),
        ("amp", &mut p.amp),
        ("ls", &mut p.ls),
        ("w", &mut p.w),
        ("qloc", &mut p.qloc),
        ("qscale", &mut p.qscale),
        ("ploc", &mut p.ploc),
        ("pscale", &mut p.pscale),
        ("v", &mut p.v),
        ("disp", &mut p.disp),
    ]
}

fn device_loss_grad<D: Device>(dev: &D, pr: &Problem, p: &Params) -> (f64, Params) {
    let data = Data {
        y: &pr.y,
        sz: &pr.sz,
        x: &pr.x,
        z: &pr.z,
    };
    let mut obj = Objective::new(dev, pr.shape, pr.lik, pr.kernel, pr.nonneg, &data, p);
    pollster::block_on(async {
        obj.refresh().await.expect("K_uu is positive definite");
        let (ef, eh) = (dev.upload(&pr.eps_f), dev.upload(&pr.eps_h));
        let loss = obj.loss_grad(&ef, &eh, true).await;
        (loss.total(), obj.grads().await)
    })
}

fn check<D: Device>(dev: &D, t: usize, k: usize, lik: Likelihood, kernel: GpKernel) {
    check_with(dev, t, k, lik, kernel, true);
}

fn check_with<D: Device>(
    dev: &D,
    t: usize,
    k: usize,
    lik: Likelihood,
    kernel: GpKernel,
    nonneg: bool,
) {
    let (pr, p) = problem_with(t, k, lik, kernel, nonneg);
    let (loss, mut g) = device_loss_grad(dev, &pr, &p);
    let want = loss64(&pr, &p);
    let what = format!(
        "{} t={t} k={k} {lik:?} {kernel:?} nonneg={nonneg}",
        dev.name()
    );
    assert!(
        (loss - want).abs() < 1e-4 * want.abs().max(1.0),
        "{what}: loss {loss} vs f64 {want}"
    );
    let mut base = p.clone();
    let mut checked = 0;
    for ((name, gv), (_, pv)) in fields(&mut g).into_iter().zip(fields(&mut base)) {
        for i in 0..pv.len() {
            // The upper triangle of Ω is not a parameter.
            let q = i % (pr.shape.m * pr.shape.m);
            if name == "omega" && q % pr.shape.m > q / pr.shape.m {
                assert_eq!(gv[i], 0.0, "{what}: omega upper triangle {i}");
                continue;
            }
            let h = 1e-3f32;
            let x0 = pv[i];
            pv[i] = x0 + h;
            let mut hi = Params::clone(&p);
            copy_field(&mut hi, name, pv);
            let up = loss64(&pr, &hi);
            pv[i] = x0 - h;
            copy_field(&mut hi, name, pv);
            let down = loss64(&pr, &hi);
            pv[i] = x0;
            let fd = (up - down) / (2.0 * h as f64);
            let got = gv[i] as f64;
            assert!(
                (got - fd).abs() < 2e-3 * fd.abs().max(0.05),
                "{what}: d/d{name}[{i}] = {got}, finite differences {fd}"
            );
            checked += 1;
        }
    }
    assert!(checked > 20, "{what}: only {checked} gradients checked");
}

fn copy_field(p: &mut Params, name: &str, v: &[f32]) {
    for (n, f) in fields(p) {
        if n == name {
            f.copy_from_slice(v);
        }
    }
}

#[test]
fn every_gradient_matches_finite_differences_on_the_cpu_device() {
    for (t, k) in [(2, 0), (0, 2), (2, 1)] {
        for lik in [Likelihood::Poisson, Likelihood::Nb, Likelihood::Gaussian] {
            check(&Cpu, t, k, lik, GpKernel::Matern32);
        }
    }
    check(&Cpu, 2, 1, Likelihood::Poisson, GpKernel::Rbf);
    // RSF: real-valued factors and loadings, log link (identity for the
    // Gaussian).
    for lik in [Likelihood::Poisson, Likelihood::Nb, Likelihood::Gaussian] {
        check_with(&Cpu, 2, 0, lik, GpKernel::Matern32, false);
    }
}

#[test]
fn wgpu_gives_the_same_gradients() {
    let gpu = pollster::block_on(Gpu::new()).expect("a wgpu adapter (lavapipe in CI)");
    check(&gpu, 2, 1, Likelihood::Nb, GpKernel::Matern32);
    check(&gpu, 2, 0, Likelihood::Poisson, GpKernel::Rbf);
    check_with(&gpu, 2, 0, Likelihood::Nb, GpKernel::Matern32, false);
    check(&gpu, 2, 1, Likelihood::Gaussian, GpKernel::Matern32);
    check_with(&gpu, 2, 0, Likelihood::Gaussian, GpKernel::Rbf, false);
}

#[test]
fn the_kernel_part_names_its_derivative() {
    // gp_kernel's derivatives are what the kernel gradient contracts with.
    let (a, l, d) = (0.8f32, 0.3f32, 0.25f32);
    for kernel in [GpKernel::Matern32, GpKernel::Rbf] {
        let dev = Cpu;
        let run = |part, a: f32, l: f32| {
            let out = dev.zeros(1);
            dev.gp_kernel(
                kernel,
                part,
                &dev.upload(&[d]),
                &dev.upload(&[a]),
                &dev.upload(&[l]),
                1,
                &out,
            );
            pollster::block_on(dev.read(&out))[0] as f64
        };
        let h = 1e-3;
        let fa = (run(KernelPart::Value, a + h, l) - run(KernelPart::Value, a - h, l))
            / (2.0 * h as f64);
        let fl = (run(KernelPart::Value, a, l + h) - run(KernelPart::Value, a, l - h))
            / (2.0 * h as f64);
        assert!(
            (run(KernelPart::Amplitude, a, l) - fa).abs() < 1e-3,
            "{kernel:?} amplitude"
        );
        assert!(
            (run(KernelPart::LengthScale, a, l) - fl).abs() < 1e-3,
            "{kernel:?} length scale"
        );
    }
}

/// A learning rate far too large diverges: the trainer goes back to a
/// checkpoint at half the rate instead of crashing, and the losses it keeps
/// are finite and within the divergence margin of the first.
#[test]
fn divergence_restarts_from_a_checkpoint_at_half_the_rate() {
    use tessera_core::models::nsf::train::{train, Schedule};
    let (pr, p) = problem(2, 1, Likelihood::Poisson, GpKernel::Matern32);
    let data = Data {
        y: &pr.y,
        sz: &pr.sz,
        x: &pr.x,
        z: &pr.z,
    };
    let mut obj = Objective::new(&Cpu, pr.shape, pr.lik, pr.kernel, true, &data, &p);
    let sched = Schedule {
        lr: 20.0,
        max_epochs: 300,
        checkpoint_every: 20,
        ..Schedule::default()
    };
    let mut seen = 0;
    let mut keep = |_| {};
    let h = pollster::block_on(train(
        &Cpu,
        &mut obj,
        &sched,
        3,
        Resume::none(&mut keep),
        &mut |_, _| {
            seen += 1;
            true
        },
    ));
    match h {
        Ok(h) => {
            assert!(!h.restarts.is_empty(), "lr 20 did not diverge");
            assert!(h.lr <= 10.0, "the rate was not halved: {}", h.lr);
            let cap = h.loss[0] + 0.05 * h.loss[0].abs();
            assert!(h.loss.iter().all(|l| l.is_finite() && *l <= cap));
            assert!(seen > 0);
            eprintln!("{} restarts, final lr {}", h.restarts.len(), h.lr);
        }
        Err(e) => assert!(e.contains("diverged 10 times"), "{e}"),
    }
}

/// A fit resumed from a checkpoint ends where the uninterrupted fit does,
/// to the bit: the checkpoint holds every parameter, moment and counter.
#[test]
fn a_fit_resumed_from_its_checkpoint_ends_where_the_whole_fit_does() {
    use tessera_core::models::nsf::train::{train, Schedule};
    for (t, k) in [(2, 1), (0, 2)] {
        let (pr, p) = problem(t, k, Likelihood::Nb, GpKernel::Matern32);
        let data = Data {
            y: &pr.y,
            sz: &pr.sz,
            x: &pr.x,
            z: &pr.z,
        };
        let sched = Schedule {
            max_epochs: 45,
            ..Schedule::default()
        };
        let fit = |resume: Resume| {
            let mut obj = Objective::new(&Cpu, pr.shape, pr.lik, pr.kernel, true, &data, &p);
            let h = pollster::block_on(train(&Cpu, &mut obj, &sched, 3, resume, &mut |_, _| true))
                .unwrap();
            (h, pollster::block_on(obj.params()))
        };
        let mut kept: Vec<Checkpoint> = vec![];
        let mut keep = |c| kept.push(c);
        let (whole, want) = fit(Resume::none(&mut keep));
        assert_eq!(
            kept.iter().map(|c| c.epoch).collect::<Vec<_>>(),
            [10, 20, 30, 40],
            "a checkpoint every 10 epochs"
        );
        let mut none = |_| {};
        let (resumed, got) = fit(Resume {
            from: Some(kept[1].clone()),
            save: &mut none,
        });
        assert_eq!(resumed.loss, whole.loss, "T={t}: the losses after epoch 20");
        assert_eq!(got, want, "T={t}: the parameters at the end");
        // Another fit's checkpoint is refused, not half applied.
        let mut other = kept[1].clone();
        other.buffers.pop();
        let mut obj = Objective::new(&Cpu, pr.shape, pr.lik, pr.kernel, true, &data, &p);
        let e = pollster::block_on(train(
            &Cpu,
            &mut obj,
            &sched,
            3,
            Resume {
                from: Some(other),
                save: &mut none,
            },
            &mut |_, _| true,
        ))
        .unwrap_err();
        assert!(e.contains("another fit"), "{e}");
    }
}
