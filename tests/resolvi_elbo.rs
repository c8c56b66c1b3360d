//! RESOLVI's loss past the networks (`models::resolvi::elbo::head`): its
//! value and every gradient against central differences of an independent
//! f64 version written with plain loops, on the CPU device and wgpu, with
//! and without the semi-supervised classifier.

use tessera_core::compute::philox;
use tessera_core::compute::special::lgamma;
use tessera_core::compute::Device;
use tessera_core::models::resolvi::elbo::{self, Dims, HeadIn, Layout, Scalars};
use tessera_core::models::svi::Tally;

const MEDIAN: f64 = 4.0;

/// Every input of the loss, in f64.
#[derive(Clone)]
struct In64 {
    x: Vec<f64>,
    lib: Vec<f64>,
    d2: Vec<f64>,
    kappa: f64,
    batch: Vec<usize>,
    z: Vec<f64>,
    qm: Vec<f64>,
    qv: Vec<f64>,
    px_scale: Vec<f64>,
    px_scale_n: Vec<f64>,
    m: Vec<f64>,
    map: Vec<f64>,
    normals: Vec<f64>,
    px_r_inv: Vec<f64>,
    background: Vec<f64>,
    alpha: Vec<f64>,
    mu: Vec<f64>,
    u: Vec<f64>,
    sigma: f64,
    /// Per cell: its label, or none.
    labels: Vec<Option<usize>>,
    logits: Vec<f64>,
    kl_weight: f64,
}

fn dir64(x: &[f64], a: &[f64]) -> f64 {
    let sa: f64 = a.iter().sum();
    lgamma(sa)
        + x.iter()
            .zip(a)
            .map(|(x, a)| (a - 1.0) * x.ln() - lgamma(*a))
            .sum::<f64>()
}

fn lse(v: &[f64]) -> f64 {
    let m = v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    m + v.iter().map(|x| (x - m).exp()).sum::<f64>().ln()
}

fn softmax(v: &[f64]) -> Vec<f64> {
    let l = lse(v);
    v.iter().map(|x| (x - l).exp()).collect()
}

/// −ELBO, written from the model's definition.
fn loss64(p: &In64, d: Dims) -> f64 {
    let Dims {
        s,
        b,
        g,
        k,
        l,
        c,
        e,
        ..
    } = d;
    let scale = d.n_obs as f64 / b as f64;
    let wp = scale / s as f64;
    let mut elbo = 0.0;
    let mut pis = vec![];
    for i in 0..b {
        let dd: Vec<f64> = (0..k).map(|j| p.d2[i * k + j] / MEDIAN).collect();
        let t: Vec<f64> = (0..k)
            .map(|j| p.map[i * k + j] - dd[j].sqrt().min(10.0))
            .collect();
        let pi = softmax(&t);
        let conc: Vec<f64> = dd
            .iter()
            .map(|r| 30.0 * ((-(p.kappa * r).min(20.0)).exp() + 1e-3))
            .collect();
        elbo += scale * dir64(&pi, &conc);
        elbo += 5.0 * scale * dir64(&p.m[i * 3..i * 3 + 3], &p.alpha);
        elbo -= p.px_r_inv.iter().sum::<f64>() * scale;
        pis.push(pi);
    }
    for bb in 0..e {
        elbo += dir64(&p.background[bb * g..(bb + 1) * g], &vec![5.0; g]);
    }
    for si in 0..s {
        for (i, pi) in pis.iter().enumerate() {
            let r = si * b + i;
            let el = p.lib[i];
            let (mt, md, mb) = (p.m[3 * i], p.m[3 * i + 1], p.m[3 * i + 2]);
            for gg in 0..g {
                let mut rate = mt * el * p.px_scale[r * g + gg];
                for (j, w) in pi.iter().enumerate() {
                    rate += w * md * el * p.px_scale_n[(r * k + j) * g + gg];
                }
                let phi = 1.0 / p.px_r_inv[gg];
                let dd = phi - 1.0 / 3.0;
                let t = (1.0 + p.normals[r * g + gg] / (3.0 * dd.sqrt())).max(0.0);
                let y = (rate + 1e-6) * dd / phi * t.powi(3);
                let mean = y + mb * el * p.background[p.batch[i] * g + gg] + 1e-9;
                let x = p.x[i * g + gg];
                elbo += wp * (x * mean.ln() - mean - lgamma(x + 1.0));
            }
            let z = &p.z[r * l..(r + 1) * l];
            let var = p.sigma * p.sigma;
            let mut logits = p.u.clone();
            if let Some(y) = p.labels[i] {
                logits[y] += 10.0;
            }
            let lz = lse(&logits);
            let parts: Vec<f64> = (0..c)
                .map(|cc| {
                    let d2: f64 = (0..l).map(|q| (z[q] - p.mu[cc * l + q]).powi(2)).sum();
                    logits[cc]
                        - lz
                        - d2 / (2.0 * var)
                        - 0.5 * l as f64 * (2.0 * std::f64::consts::PI * var).ln()
                })
                .collect();
            let logq: f64 = (0..l)
                .map(|q| {
                    let v = p.qv[i * l + q];
                    -0.5 * (2.0 * std::f64::consts::PI * v).ln()
                        - (z[q] - p.qm[i * l + q]).powi(2) / (2.0 * v)
                })
                .sum();
            elbo += wp * p.kl_weight * (lse(&parts) - logq);
            if let (Some(y), n) = (p.labels[i], d.labels) {
                if n > 0 {
                    let lg = &p.logits[r * n..(r + 1) * n];
                    elbo += 50.0 * wp * (lg[y] - lse(lg));
                }
            }
        }
    }
    -elbo
}

fn inputs(d: Dims) -> In64 {
    let Dims {
        s,
        b,
        g,
        k,
        l,
        c,
        e,
        ..
    } = d;
    let mut stream = 100u64;
    let mut uni = |n: usize, lo: f64, hi: f64| -> Vec<f64> {
        stream += 1;
        (0..n)
            .map(|i| lo + (hi - lo) * philox::uniform(stream, 0, i) as f64)
            .collect()
    };
    let simplex = |v: Vec<f64>, w: usize| -> Vec<f64> {
        v.chunks(w)
            .flat_map(|r| {
                let t: f64 = r.iter().sum();
                r.iter().map(move |x| x / t).collect::<Vec<_>>()
            })
            .collect()
    };
    let x = uni(b * g, 0.0, 6.0).iter().map(|v| v.floor()).collect();
    let px_scale = simplex(uni(s * b * g, 0.2, 1.0), g);
    let px_scale_n = simplex(uni(s * b * k * g, 0.2, 1.0), g);
    let mut m = uni(b * 3, 0.05, 1.0);
    m.iter_mut().for_each(|v| *v /= 2.0);
    let background = simplex(uni(e * g, 0.3, 1.0), g);
    let normals = uni(s * b * g, -2.0, 2.0);
    In64 {
        x,
        lib: uni(b, 5.0, 20.0),
        d2: uni(b * k, 0.5, 40.0),
        kappa: 0.8,
        batch: (0..b).map(|i| i % e).collect(),
        z: uni(s * b * l, -1.5, 1.5),
        qm: uni(b * l, -1.0, 1.0),
        qv: uni(b * l, 0.3, 1.5),
        px_scale,
        px_scale_n,
        m,
        map: uni(b * k, -1.0, 1.0),
        normals,
        px_r_inv: uni(g, 0.05, 0.3),
        background,
        alpha: vec![5.0, 3.0, 0.7],
        mu: uni(c * l, -1.0, 1.0),
        u: uni(c, -0.5, 0.5),
        sigma: 0.7,
        labels: (0..b)
            .map(|i| (d.labels > 0 && i % 3 != 2).then_some(i % d.labels.max(1)))
            .collect(),
        logits: uni(s * b * d.labels.max(1), -1.0, 1.0),
        kl_weight: 0.6,
    }
}

struct Got {
    loss: f64,
    grads: Vec<(&'static str, Vec<f64>)>,
}

fn run<D: Device>(dev: &D, d: Dims, p: &In64) -> Got {
    let up = |v: &[f64]| dev.upload(&v.iter().map(|&a| a as f32).collect::<Vec<_>>());
    let lay = Layout::new(dev, d);
    let [off, conc, dconc] = elbo::neighbour_terms(
        &p.d2.iter().map(|&v| v as f32).collect::<Vec<_>>(),
        MEDIAN,
        p.kappa,
    );
    let x_rep: Vec<f64> = (0..d.s).flat_map(|_| p.x.clone()).collect();
    let mut onehot = vec![0.0; d.b * d.e];
    for (i, &bb) in p.batch.iter().enumerate() {
        onehot[i * d.e + bb] = 1.0;
    }
    let n = d.labels;
    let sb = d.s * d.b;
    let (mut offset, mut target, mut mask) =
        (vec![0.0; sb * d.c], vec![0.0; sb * n.max(1)], vec![0.0; sb]);
    for r in 0..sb {
        if let Some(y) = p.labels[r % d.b] {
            offset[r * d.c + y] = 10.0;
            if n > 0 {
                target[r * n + y] = 1.0;
                mask[r] = 1.0;
            }
        }
    }
    let (xb, lib, ob, cb, db, bb) = (
        up(&x_rep),
        up(&p.lib),
        dev.upload(&off),
        dev.upload(&conc),
        dev.upload(&dconc),
        up(&onehot),
    );
    let bufs: Vec<D::Buf> = [
        &p.z,
        &p.qm,
        &p.qv,
        &p.px_scale,
        &p.px_scale_n,
        &p.m,
        &p.map,
        &p.normals,
        &p.px_r_inv,
        &p.background,
        &p.alpha,
        &p.mu,
        &p.u,
        &offset,
        &p.logits,
        &target,
        &mask,
    ]
    .iter()
    .map(|v| up(v))
    .collect();
    let tally = Tally::new(dev, &elbo::TALLY);
    let h = HeadIn {
        x_rep: &xb,
        lib: &lib,
        offset_pi: &ob,
        conc: &cb,
        dconc: &db,
        batch: &bb,
        z: &bufs[0],
        qm: &bufs[1],
        qv: &bufs[2],
        px_scale: &bufs[3],
        px_scale_n: &bufs[4],
        m: &bufs[5],
        map: &bufs[6],
        normals: &bufs[7],
        px_r_inv: &bufs[8],
        background: &bufs[9],
        alpha: &bufs[10],
        mu: &bufs[11],
        u: &bufs[12],
        u_offset: (n > 0).then_some(&bufs[13]),
        sigma: p.sigma as f32,
        classes: (n > 0).then_some((&bufs[14], &bufs[15], &bufs[16])),
        kl_weight: p.kl_weight as f32,
    };
    let gr = elbo::head(dev, &lay, &h, &tally);
    let read = |b: &D::Buf| -> Vec<f64> {
        pollster::block_on(dev.read(b))
            .into_iter()
            .map(|v| v as f64)
            .collect()
    };
    let t = pollster::block_on(tally.read(dev));
    let mut grads = vec![
        ("z", read(&gr.z)),
        ("qm", read(&gr.qm)),
        ("qv", read(&gr.qv)),
        ("px_scale", read(&gr.px_scale)),
        ("m", read(&gr.m)),
        ("map", read(&gr.map)),
        ("px_r_inv", read(&gr.px_r_inv)),
        ("background", read(&gr.background)),
        ("mu", read(&gr.mu)),
        ("u", read(&gr.u)),
        ("alpha", t.seg(elbo::G_ALPHA).to_vec()),
        ("kappa", vec![t.at(elbo::G_KAPPA)]),
    ];
    if let Some(g) = &gr.logits {
        grads.push(("logits", read(g)));
    }
    Got {
        loss: t.at(elbo::LOSS),
        grads,
    }
}

fn field<'a>(p: &'a mut In64, name: &str) -> &'a mut Vec<f64> {
    match name {
        "z" => &mut p.z,
        "qm" => &mut p.qm,
        "qv" => &mut p.qv,
        "px_scale" => &mut p.px_scale,
        "m" => &mut p.m,
        "map" => &mut p.map,
        "px_r_inv" => &mut p.px_r_inv,
        "background" => &mut p.background,
        "mu" => &mut p.mu,
        "u" => &mut p.u,
        "alpha" => &mut p.alpha,
        "logits" => &mut p.logits,
        other => panic!("no field {other}"),
    }
}

fn check<D: Device>(dev: &D, labels: usize) {
    let d = Dims {
        s: 2,
        b: 3,
        g: 5,
        k: 3,
        l: 2,
        c: if labels > 0 { labels } else { 4 },
        e: 2,
        labels,
        n_obs: 11,
    };
    let p = inputs(d);
    let got = run(dev, d, &p);
    let want = loss64(&p, d);
    assert!(
        (got.loss - want).abs() < 2e-5 * want.abs().max(1.0),
        "{}: loss {} vs {want}",
        dev.name(),
        got.loss
    );
    let h = 1e-6;
    let mut worst = 0f64;
    for (name, g) in &got.grads {
        for (q, &gq) in g.iter().enumerate() {
            let at = |delta: f64| {
                let mut p = p.clone();
                if *name == "kappa" {
                    p.kappa += delta;
                } else {
                    field(&mut p, name)[q] += delta;
                }
                loss64(&p, d)
            };
            let fd = (at(h) - at(-h)) / (2.0 * h);
            let err = (gq - fd).abs() / fd.abs().max(0.5);
            worst = worst.max(err);
            assert!(
                err < 3e-3,
                "{} (labels {labels}): d/d{name}[{q}] = {gq}, finite differences {fd}",
                dev.name()
            );
        }
    }
    println!(
        "{} (labels {labels}): loss {want:.4}, worst relative gradient error {worst:.1e}",
        dev.name()
    );
}

#[test]
fn loss_and_gradients_match_finite_differences() {
    let cpu = tessera_core::compute::cpu::Cpu;
    check(&cpu, 0);
    check(&cpu, 3);
    let gpu = pollster::block_on(tessera_core::compute::gpu::Gpu::new())
        .expect("a wgpu adapter (lavapipe in CI)");
    check(&gpu, 0);
    check(&gpu, 3);
}

#[test]
fn the_scalar_priors_match_finite_differences() {
    let s = Scalars {
        sparsity: 7.0,
        alpha: [4.0, 2.5, 0.8],
        kappa: 1.3,
    };
    let ratio = 0.04;
    let (loss, g) = s.prior_loss(ratio);
    assert!(loss.is_finite());
    let h = 1e-6;
    for (q, &gq) in g.iter().enumerate() {
        let at = |delta: f64| {
            let mut t = s;
            match q {
                0 => t.sparsity += delta,
                4 => t.kappa += delta,
                j => t.alpha[j - 1] += delta,
            }
            t.prior_loss(ratio).0
        };
        let fd = (at(h) - at(-h)) / (2.0 * h);
        assert!(
            (gq - fd).abs() < 1e-6 * fd.abs().max(1.0),
            "[{q}] {gq} vs {fd}"
        );
    }
}
