//! The ResolVI networks' layers (Linear → LayerNorm → ReLU → Dropout,
//! stacked) against central differences of an independent f64
//! implementation, with the device's own dropout masks; the CPU device and
//! wgpu (lavapipe in CI) must both agree with it.

use tessera_core::compute::cpu::Cpu;
use tessera_core::compute::gpu::Gpu;
use tessera_core::compute::{philox, Device};
use tessera_core::models::resolvi::nn::{
    Cats, Decoder, Draw, Encoder, FcLayers, Linear, VarActivation, LAYER_NORM_EPS,
};

/// One layer's weights (n_in × n_out) and biases, in f64.
#[derive(Clone)]
struct Host {
    w: Vec<f64>,
    b: Vec<f64>,
}

/// The block's output, plain loops.
fn forward64(
    layers: &[Host],
    widths: &[usize],
    masks: &[Option<Vec<f64>>],
    x: &[f64],
    rows: usize,
) -> Vec<f64> {
    forward64_cov(layers, widths, masks, x, rows, None)
}

/// The block's output with covariates: each layer adds row `codes[r]` of
/// its n_cat × n_out block.
fn forward64_cov(
    layers: &[Host],
    widths: &[usize],
    masks: &[Option<Vec<f64>>],
    x: &[f64],
    rows: usize,
    cov: Option<(&[Host], &[u32])>,
) -> Vec<f64> {
    let mut h = x.to_vec();
    for (l, p) in layers.iter().enumerate() {
        let (ni, no) = (widths[l], widths[l + 1]);
        let mut out = vec![0.0; rows * no];
        for r in 0..rows {
            let lin: Vec<f64> = (0..no)
                .map(|o| {
                    let c = cov.map_or(0.0, |(blocks, codes)| {
                        blocks[l].w[codes[r] as usize * no + o]
                    });
                    c + p.b[o]
                        + (0..ni)
                            .map(|i| h[r * ni + i] * p.w[i * no + o])
                            .sum::<f64>()
                })
                .collect();
            let mean = lin.iter().sum::<f64>() / no as f64;
            let var = lin.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / no as f64;
            let sd = (var + LAYER_NORM_EPS as f64).sqrt();
            for o in 0..no {
                let a = ((lin[o] - mean) / sd).max(0.0);
                out[r * no + o] = a * masks[l].as_ref().map_or(1.0, |m| m[r * no + o]);
            }
        }
        h = out;
    }
    h
}

async fn read64<D: Device>(dev: &D, b: &D::Buf) -> Vec<f64> {
    dev.read(b).await.into_iter().map(|v| v as f64).collect()
}

/// Each linear layer's gradients (gw, gb), read back.
async fn grads<D: Device>(dev: &D, linears: &[&Linear<D>]) -> Vec<(Vec<f64>, Vec<f64>)> {
    let mut out = vec![];
    for l in linears {
        out.push((read64(dev, &l.gw).await, read64(dev, &l.gb).await));
    }
    out
}

/// Central differences of `loss` (over the host weights and the input)
/// against the device's gradients `grads` (per host entry: of w and of b)
/// and the input gradient `gx`; returns how many were compared.
async fn compare<D: Device>(
    dev: &D,
    what: &str,
    grads: &[(Vec<f64>, Vec<f64>)],
    host: &[Host],
    x: &[f64],
    gx: &D::Buf,
    loss: &dyn Fn(&[Host], &[f64]) -> f64,
) -> usize {
    let h = 1e-6;
    let close = |got: f64, fd: f64, name: &str| {
        assert!(
            (got - fd).abs() < 2e-3 * fd.abs().max(0.05),
            "{} {what}: d/d{name} = {got}, finite differences {fd}",
            dev.name()
        );
    };
    let mut checked = 0;
    for (l, (gw, gb)) in grads.iter().enumerate() {
        for (name, grad) in [("w", gw), ("b", gb)] {
            for (k, &g) in grad.iter().enumerate() {
                let at = |delta: f64| {
                    let mut p = host.to_vec();
                    let v = if name == "w" {
                        &mut p[l].w
                    } else {
                        &mut p[l].b
                    };
                    v[k] += delta;
                    loss(&p, x)
                };
                close(g, (at(h) - at(-h)) / (2.0 * h), &format!("{name}{l}[{k}]"));
                checked += 1;
            }
        }
    }
    let gx = read64(dev, gx).await;
    for (k, &g) in gx.iter().enumerate() {
        let at = |delta: f64| {
            let mut xp = x.to_vec();
            xp[k] += delta;
            loss(host, &xp)
        };
        close(g, (at(h) - at(-h)) / (2.0 * h), &format!("x[{k}]"));
        checked += 1;
    }
    checked
}

fn normal(seed: u64, n: usize) -> Vec<f64> {
    (0..n).map(|i| philox::normal(seed, 0, i) as f64).collect()
}

fn check<D: Device>(dev: &D, dropout: f32) {
    let widths = [5, 7, 6, 4];
    let rows = 6;
    let net = FcLayers::new(dev, &widths, 0, dropout, 3);
    let x = normal(1, rows * widths[0]);
    let c = normal(2, rows * widths[3]);
    let xb = dev.upload(&x.iter().map(|&v| v as f32).collect::<Vec<_>>());
    let cb = dev.upload(&c.iter().map(|&v| v as f32).collect::<Vec<_>>());
    let tape = net.forward(dev, &xb, None, rows, Some(Draw { seed: 9, offset: 0 }));
    let gx = net
        .backward(dev, &xb, None, &tape, &cb, true)
        .expect("input gradient");
    pollster::block_on(async {
        let mut host = vec![];
        let mut masks = vec![];
        for (i, l) in net.layers.iter().enumerate() {
            host.push(Host {
                w: read64(dev, &l.w).await,
                b: read64(dev, &l.b).await,
            });
            masks.push(match tape.mask(i) {
                Some(m) => Some(read64(dev, m).await),
                None => None,
            });
        }
        // Dropout ran when asked: about a `dropout` share of zeros, the
        // rest scaled by 1/(1 − p).
        if dropout > 0.0 {
            let all: Vec<f64> = masks.iter().flatten().flatten().copied().collect();
            let zeros = all.iter().filter(|&&v| v == 0.0).count() as f64 / all.len() as f64;
            assert!((zeros - dropout as f64).abs() < 0.15, "{zeros} dropped");
            let keep = 1.0 / (1.0 - dropout as f64);
            assert!(all.iter().all(|&v| v == 0.0 || (v - keep).abs() < 1e-6));
        } else {
            assert!(masks.iter().all(Option::is_none));
        }
        let out = read64(dev, tape.output()).await;
        let want = forward64(&host, &widths, &masks, &x, rows);
        for (a, b) in out.iter().zip(&want) {
            assert!(
                (a - b).abs() < 1e-4,
                "{}: output {a} vs f64 {b}",
                dev.name()
            );
        }
        let loss = |host: &[Host], x: &[f64]| -> f64 {
            forward64(host, &widths, &masks, x, rows)
                .iter()
                .zip(&c)
                .map(|(o, c)| o * c)
                .sum()
        };
        let linears: Vec<&Linear<D>> = net.layers.iter().collect();
        let g = grads(dev, &linears).await;
        let checked = compare(dev, "FcLayers", &g, &host, &x, &gx, &loss).await;
        // Every weight and bias of the three layers, and every input.
        assert_eq!(checked, 42 + 48 + 28 + 30);
    });
}

/// rows × n_out = h W + b.
fn linear64(p: &Host, h: &[f64], rows: usize, ni: usize, no: usize) -> Vec<f64> {
    (0..rows * no)
        .map(|q| {
            let (r, o) = (q / no, q % no);
            p.b[o]
                + (0..ni)
                    .map(|i| h[r * ni + i] * p.w[i * no + o])
                    .sum::<f64>()
        })
        .collect()
}

/// The encoder's Σ c_m ∘ mean + Σ c_v ∘ var: `host` holds the hidden
/// layers, then the mean head, then the variance head.
#[allow(clippy::too_many_arguments)]
fn encoder_loss64(
    host: &[Host],
    widths: &[usize],
    masks: &[Option<Vec<f64>>],
    x: &[f64],
    rows: usize,
    act: VarActivation,
    eps: f64,
    (cm, cv): (&[f64], &[f64]),
) -> f64 {
    let nl = widths.len() - 1;
    let h = forward64(&host[..nl], widths, masks, x, rows);
    let (nh, no) = (widths[nl], cm.len() / rows);
    let m = linear64(&host[nl], &h, rows, nh, no);
    let raw = linear64(&host[nl + 1], &h, rows, nh, no);
    let v: Vec<f64> = match act {
        VarActivation::Exp => raw.iter().map(|r| r.exp() + eps).collect(),
        VarActivation::Softmax => raw
            .chunks_exact(no)
            .flat_map(|row| {
                let mx = row.iter().copied().fold(f64::MIN, f64::max);
                let z: f64 = row.iter().map(|r| (r - mx).exp()).sum();
                row.iter()
                    .map(move |r| (r - mx).exp() / z + eps)
                    .collect::<Vec<_>>()
            })
            .collect(),
    };
    m.iter().zip(cm).map(|(a, b)| a * b).sum::<f64>()
        + v.iter().zip(cv).map(|(a, b)| a * b).sum::<f64>()
}

fn check_encoder<D: Device>(dev: &D, act: VarActivation) {
    let (n_in, n_out, n_hidden, rows, eps) = (6, 3, 5, 7, 1e-3);
    let enc = Encoder::new(dev, n_in, n_out, n_hidden, 2, 0.1, act, eps as f32, 4);
    let widths = [n_in, n_hidden, n_hidden];
    let x = normal(21, rows * n_in);
    let (cm, cv) = (normal(22, rows * n_out), normal(23, rows * n_out));
    let up = |v: &[f64]| dev.upload(&v.iter().map(|&a| a as f32).collect::<Vec<_>>());
    let xb = up(&x);
    let tape = enc.forward(dev, &xb, rows, Some(Draw { seed: 5, offset: 0 }));
    let gx = enc
        .backward(dev, &xb, &tape, &up(&cm), &up(&cv), true)
        .expect("input gradient");
    pollster::block_on(async {
        let linears: Vec<_> = enc.fc.layers.iter().chain([&enc.mean, &enc.var]).collect();
        let mut host = vec![];
        for l in &linears {
            host.push(Host {
                w: read64(dev, &l.w).await,
                b: read64(dev, &l.b).await,
            });
        }
        let mut masks = vec![];
        for i in 0..enc.fc.layers.len() {
            masks.push(match tape.fc.mask(i) {
                Some(m) => Some(read64(dev, m).await),
                None => None,
            });
        }
        let loss = |host: &[Host], x: &[f64]| {
            encoder_loss64(host, &widths, &masks, x, rows, act, eps, (&cm, &cv))
        };
        // The heads' outputs themselves.
        let (m, v) = (read64(dev, &tape.m).await, read64(dev, &tape.v).await);
        let got = m.iter().zip(&cm).map(|(a, b)| a * b).sum::<f64>()
            + v.iter().zip(&cv).map(|(a, b)| a * b).sum::<f64>();
        let want = loss(&host, &x);
        assert!(
            (got - want).abs() < 1e-4 * want.abs().max(1.0),
            "{act:?}: {got} vs {want}"
        );
        if act == VarActivation::Softmax {
            for row in v.chunks_exact(n_out) {
                let s: f64 = row.iter().sum();
                assert!((s - 1.0 - n_out as f64 * eps).abs() < 1e-5, "{row:?}");
            }
        }
        let what = format!("{act:?} encoder");
        let g = grads(dev, &linears).await;
        let checked = compare(dev, &what, &g, &host, &x, &gx, &loss).await;
        // Two hidden layers, two heads, and every input.
        assert_eq!(checked, 35 + 30 + 18 + 18 + 42);
    });
}

/// The decoder with 3 batches injected into both hidden layers: every
/// weight, covariate block and latent gradient of Σ c ∘ px_scale.
fn check_decoder<D: Device>(dev: &D) {
    let (n_latent, n_genes, n_hidden, n_cat, rows) = (4, 9, 5, 3, 8);
    let dec = Decoder::new(dev, n_latent, n_genes, (n_hidden, 2), n_cat, 6);
    assert_eq!((dec.fc.n_cat, dec.fc.cov.len()), (3, 2));
    let widths = [n_latent, n_hidden, n_hidden];
    let codes: Vec<u32> = (0..rows as u32).map(|i| (i * 7 + 1) % 3).collect();
    let cats = Cats::new(dev, &codes, n_cat);
    let z = normal(31, rows * n_latent);
    let c = normal(32, rows * n_genes);
    let up = |v: &[f64]| dev.upload(&v.iter().map(|&a| a as f32).collect::<Vec<_>>());
    let zb = up(&z);
    let tape = dec.forward(dev, &zb, Some(&cats), rows);
    let gz = dec
        .backward(dev, &zb, Some(&cats), &tape, &up(&c), true)
        .expect("latent gradient");
    pollster::block_on(async {
        // Host entries: the two hidden layers, the scale head, then the two
        // covariate blocks (as w, with no b).
        let linears: Vec<&Linear<D>> = dec.fc.layers.iter().chain([&dec.scale]).collect();
        let mut host = vec![];
        let mut g = grads(dev, &linears).await;
        for l in &linears {
            host.push(Host {
                w: read64(dev, &l.w).await,
                b: read64(dev, &l.b).await,
            });
        }
        for (block, grad) in &dec.fc.cov {
            host.push(Host {
                w: read64(dev, block).await,
                b: vec![],
            });
            g.push((read64(dev, grad).await, vec![]));
        }
        let loss = |host: &[Host], z: &[f64]| -> f64 {
            let h = forward64_cov(
                &host[..2],
                &widths,
                &[None, None],
                z,
                rows,
                Some((&host[3..], &codes)),
            );
            let logits = linear64(&host[2], &h, rows, n_hidden, n_genes);
            logits
                .chunks_exact(n_genes)
                .zip(c.chunks_exact(n_genes))
                .map(|(row, cr)| {
                    let mx = row.iter().copied().fold(f64::MIN, f64::max);
                    let s: f64 = row.iter().map(|v| (v - mx).exp()).sum();
                    row.iter()
                        .zip(cr)
                        .map(|(v, w)| (v - mx).exp() / s * w)
                        .sum::<f64>()
                })
                .sum()
        };
        let p = read64(dev, &tape.px_scale).await;
        let got: f64 = p.iter().zip(&c).map(|(a, b)| a * b).sum();
        let want = loss(&host, &z);
        assert!(
            (got - want).abs() < 1e-5 * want.abs().max(1.0),
            "decoder {got} vs {want}"
        );
        let checked = compare(dev, "decoder", &g, &host, &z, &gz, &loss).await;
        // Hidden layers, head, covariate blocks, latent.
        assert_eq!(checked, 25 + 30 + 54 + 15 + 15 + 32);
    });
}

#[test]
fn decoders_with_injected_batches_match_finite_differences() {
    check_decoder(&Cpu);
    let gpu = pollster::block_on(Gpu::new()).expect("a wgpu adapter (lavapipe in CI)");
    check_decoder(&gpu);
}

#[test]
fn encoders_match_finite_differences() {
    check_encoder(&Cpu, VarActivation::Exp);
    check_encoder(&Cpu, VarActivation::Softmax);
    let gpu = pollster::block_on(Gpu::new()).expect("a wgpu adapter (lavapipe in CI)");
    check_encoder(&gpu, VarActivation::Softmax);
}

#[test]
fn fc_layers_match_finite_differences_on_the_cpu_device() {
    check(&Cpu, 0.2);
    check(&Cpu, 0.0);
}

#[test]
fn fc_layers_match_finite_differences_on_wgpu() {
    let gpu = pollster::block_on(Gpu::new()).expect("a wgpu adapter (lavapipe in CI)");
    check(&gpu, 0.2);
}
