//! scvi-tools' fully connected blocks on a [`Device`], with their backward
//! passes written by hand. `FCLayers` as RESOLVI builds them: each layer is
//! Linear → LayerNorm (no affine, eps 1e-5) → ReLU → Dropout; the encoders
//! and the decoder put their heads (linear maps, a softmax) on top.
//! Matrices are row-major with one row per cell; a forward pass returns the
//! tape its backward pass reads.

use crate::compute::{Axis, Binary, Device, Gemm, Reduce, Unary};
use crate::models::svi::mix;

/// torch's `LayerNorm` default.
pub const LAYER_NORM_EPS: f32 = 1e-5;

fn gemm(m: usize, n: usize, k: usize, trans_a: bool, trans_b: bool) -> Gemm {
    Gemm {
        trans_a,
        trans_b,
        ..Gemm::new(m, n, k)
    }
}

/// `len` values uniform on ±bound from the Philox stream `seed`.
fn uniform<D: Device>(dev: &D, len: usize, bound: f32, seed: u64) -> D::Buf {
    let (u, scaled, out) = (dev.zeros(len), dev.zeros(len), dev.zeros(len));
    dev.random(false, seed, 0, &u);
    dev.binary(Binary::Mul, &u, &dev.upload(&[2.0 * bound]), &scaled);
    dev.binary(Binary::Add, &scaled, &dev.upload(&[-bound]), &out);
    out
}

/// y = x W + b for W n_in × n_out, with the gradients of the last
/// backward pass.
pub struct Linear<D: Device> {
    pub n_in: usize,
    pub n_out: usize,
    pub w: D::Buf,
    pub b: D::Buf,
    pub gw: D::Buf,
    pub gb: D::Buf,
}

impl<D: Device> Linear<D> {
    /// torch's start: W and b uniform on ±1/√n_in (Philox stream `seed`).
    pub fn new(dev: &D, n_in: usize, n_out: usize, seed: u64) -> Linear<D> {
        Linear::with_fan_in(dev, n_in, n_out, n_in, seed)
    }

    /// The same with the bound of a layer whose input is `fan_in` wide
    /// (its covariate columns included).
    fn with_fan_in(dev: &D, n_in: usize, n_out: usize, fan_in: usize, seed: u64) -> Linear<D> {
        let bound = 1.0 / (fan_in.max(1) as f32).sqrt();
        Linear {
            n_in,
            n_out,
            w: uniform(dev, n_in * n_out, bound, mix(seed, 1, 0)),
            b: uniform(dev, n_out, bound, mix(seed, 2, 0)),
            gw: dev.zeros(n_in * n_out),
            gb: dev.zeros(n_out),
        }
    }

    /// rows × n_out.
    pub fn forward(&self, dev: &D, x: &D::Buf, rows: usize) -> D::Buf {
        let (xw, y) = (dev.zeros(rows * self.n_out), dev.zeros(rows * self.n_out));
        dev.gemm(
            gemm(rows, self.n_out, self.n_in, false, false),
            x,
            &self.w,
            &xw,
        );
        dev.binary(Binary::Add, &xw, &self.b, &y);
        y
    }

    /// Each weight and its gradient.
    pub fn params(&self) -> Vec<(&D::Buf, &D::Buf)> {
        vec![(&self.w, &self.gw), (&self.b, &self.gb)]
    }

    /// Sets gw = xᵀ gy and gb = Σ_rows gy; returns gx = gy Wᵀ when asked.
    pub fn backward(
        &self,
        dev: &D,
        x: &D::Buf,
        gy: &D::Buf,
        rows: usize,
        want_gx: bool,
    ) -> Option<D::Buf> {
        let (i, o) = (self.n_in, self.n_out);
        dev.gemm(gemm(i, o, rows, true, false), x, gy, &self.gw);
        dev.reduce(Reduce::Sum, Axis::Cols, gy, rows, o, &self.gb);
        want_gx.then(|| {
            let gx = dev.zeros(rows * i);
            dev.gemm(gemm(rows, i, o, false, true), gy, &self.w, &gx);
            gx
        })
    }
}

/// Scalars every pass reads, uploaded once per block.
struct Scalars<D: Device> {
    zero: D::Buf,
    one: D::Buf,
    neg_half: D::Buf,
    eps: D::Buf,
}

impl<D: Device> Scalars<D> {
    fn new(dev: &D) -> Scalars<D> {
        Scalars {
            zero: dev.upload(&[0.0]),
            one: dev.upload(&[1.0]),
            neg_half: dev.upload(&[-0.5]),
            eps: dev.upload(&[LAYER_NORM_EPS]),
        }
    }
}

/// Row-wise (x − mean) / √(var + eps) of a rows × cols matrix (biased
/// variance, as torch): the normalised rows and 1/√(var + eps) per row.
/// `inv_cols` holds 1/cols.
fn layer_norm<D: Device>(
    dev: &D,
    k: &Scalars<D>,
    inv_cols: &D::Buf,
    x: &D::Buf,
    rows: usize,
    cols: usize,
) -> (D::Buf, D::Buf) {
    let row = || dev.zeros(rows);
    let (s, mean, v, var, ve, lv, h, inv) =
        (row(), row(), row(), row(), row(), row(), row(), row());
    dev.reduce(Reduce::Sum, Axis::Rows, x, rows, cols, &s);
    dev.binary(Binary::Mul, &s, inv_cols, &mean);
    let (xc, sq, y) = (
        dev.zeros(rows * cols),
        dev.zeros(rows * cols),
        dev.zeros(rows * cols),
    );
    dev.binary_rows(Binary::Sub, x, &mean, rows, cols, &xc);
    dev.binary(Binary::Mul, &xc, &xc, &sq);
    dev.reduce(Reduce::Sum, Axis::Rows, &sq, rows, cols, &v);
    dev.binary(Binary::Mul, &v, inv_cols, &var);
    dev.binary(Binary::Add, &var, &k.eps, &ve);
    dev.unary(Unary::Log, &ve, &lv);
    dev.binary(Binary::Mul, &lv, &k.neg_half, &h);
    dev.unary(Unary::Exp, &h, &inv);
    dev.binary_rows(Binary::Mul, &xc, &inv, rows, cols, &y);
    (y, inv)
}

/// The layer norm's input gradient from its output `y`, the per-row
/// 1/√(var + eps) and the output gradient g:
/// inv · (g − mean(g) − y · mean(g ∘ y)) row by row.
fn layer_norm_backward<D: Device>(
    dev: &D,
    inv_cols: &D::Buf,
    (y, inv): (&D::Buf, &D::Buf),
    g: &D::Buf,
    rows: usize,
    cols: usize,
) -> D::Buf {
    let row = || dev.zeros(rows);
    let full = || dev.zeros(rows * cols);
    let (sg, mg, sgy, mgy) = (row(), row(), row(), row());
    let (gy, t1, t2, t3, dx) = (full(), full(), full(), full(), full());
    dev.reduce(Reduce::Sum, Axis::Rows, g, rows, cols, &sg);
    dev.binary(Binary::Mul, &sg, inv_cols, &mg);
    dev.binary(Binary::Mul, g, y, &gy);
    dev.reduce(Reduce::Sum, Axis::Rows, &gy, rows, cols, &sgy);
    dev.binary(Binary::Mul, &sgy, inv_cols, &mgy);
    dev.binary_rows(Binary::Sub, g, &mg, rows, cols, &t1);
    dev.binary_rows(Binary::Mul, y, &mgy, rows, cols, &t2);
    dev.binary(Binary::Sub, &t1, &t2, &t3);
    dev.binary_rows(Binary::Mul, &t3, inv, rows, cols, &dx);
    dx
}

/// g where the ReLU's output `y` is positive, else 0 (torch's subgradient).
fn relu_backward<D: Device>(dev: &D, y: &D::Buf, g: &D::Buf) -> D::Buf {
    let (mask, dx) = (dev.zeros(dev.len(y)), dev.zeros(dev.len(y)));
    dev.unary(Unary::Sign, y, &mask);
    dev.binary(Binary::Mul, g, &mask, &dx);
    dx
}

/// Inverted dropout: p and the mask's value for a kept entry's half,
/// 0.5/(1 − p), on the device.
struct Dropout<D: Device> {
    p: D::Buf,
    half_keep: D::Buf,
}

/// Inverted dropout's mask for `len` values: 1/(1 − p) where a Philox
/// uniform is above p, else 0 (sign(u − p) + 1 is 0 or 2).
fn dropout_mask<D: Device>(
    dev: &D,
    (k, d): (&Scalars<D>, &Dropout<D>),
    len: usize,
    seed: u64,
    offset: u32,
) -> D::Buf {
    let full = || dev.zeros(len);
    let (u, diff, s, s1, mask) = (full(), full(), full(), full(), full());
    dev.random(false, seed, offset, &u);
    dev.binary(Binary::Sub, &u, &d.p, &diff);
    dev.unary(Unary::Sign, &diff, &s);
    dev.binary(Binary::Add, &s, &k.one, &s1);
    dev.binary(Binary::Mul, &s1, &d.half_keep, &mask);
    mask
}

/// What one forward pass of [`FcLayers`] keeps for the backward one.
pub struct FcTape<D: Device> {
    /// Each layer's normalised rows and 1/√(var + eps).
    norm: Vec<(D::Buf, D::Buf)>,
    /// Each layer's ReLU output and dropout mask, when dropout ran (else
    /// the ReLU output is the layer's output).
    dropped: Vec<Option<(D::Buf, D::Buf)>>,
    /// Each layer's output, the next one's input.
    outs: Vec<D::Buf>,
    rows: usize,
}

impl<D: Device> FcTape<D> {
    /// The block's output, rows × n_out.
    pub fn output(&self) -> &D::Buf {
        self.outs.last().expect("at least one layer")
    }

    /// Layer i's dropout mask, when dropout ran.
    pub fn mask(&self, i: usize) -> Option<&D::Buf> {
        self.dropped[i].as_ref().map(|(_, m)| m)
    }
}

/// `FCLayers` with layer norm, ReLU and dropout: one [`Linear`] per pair of
/// consecutive widths, and with covariates (scvi's `inject_covariates`)
/// one n_cat × n_out block per layer: the one-hot category concatenated to
/// each layer's input.
pub struct FcLayers<D: Device> {
    pub layers: Vec<Linear<D>>,
    pub n_cat: usize,
    /// Per layer: the covariate block and its gradient (none without
    /// covariates).
    pub cov: Vec<(D::Buf, D::Buf)>,
    /// None when the rate is 0.
    dropout: Option<Dropout<D>>,
    k: Scalars<D>,
    /// Per layer: 1/width, the layer norm's mean.
    inv_width: Vec<D::Buf>,
}

/// A batch's categories as one-hot rows (rows × n_cat), for layers with
/// injected covariates.
pub struct Cats<D: Device> {
    pub onehot: D::Buf,
}

impl<D: Device> Cats<D> {
    /// Category codes (each below `n_cat`) of the rows.
    pub fn new(dev: &D, codes: &[u32], n_cat: usize) -> Cats<D> {
        let mut v = vec![0f32; codes.len() * n_cat];
        for (i, &c) in codes.iter().enumerate() {
            assert!((c as usize) < n_cat, "category {c} of {n_cat}");
            v[i * n_cat + c as usize] = 1.0;
        }
        Cats {
            onehot: dev.upload_owned(v),
        }
    }
}

/// Dropout draws for one training step: the Philox stream and where in it.
#[derive(Debug, Clone, Copy)]
pub struct Draw {
    pub seed: u64,
    pub offset: u32,
}

impl<D: Device> FcLayers<D> {
    /// Widths n_in, hidden…, n_out (at least two), with `n_cat`
    /// categories injected into every layer (none when n_cat ≤ 1, as
    /// scvi-tools drops a single category).
    pub fn new(dev: &D, widths: &[usize], n_cat: usize, dropout: f32, seed: u64) -> FcLayers<D> {
        assert!(
            widths.len() >= 2,
            "FcLayers needs an input and an output width"
        );
        assert!((0.0..1.0).contains(&dropout), "dropout must be in [0, 1)");
        let n_cat = if n_cat > 1 { n_cat } else { 0 };
        let mut layers = vec![];
        let mut cov = vec![];
        for (i, w) in widths.windows(2).enumerate() {
            let s = mix(seed, 10 + i as u64, 0);
            layers.push(Linear::with_fan_in(dev, w[0], w[1], w[0] + n_cat, s));
            if n_cat > 0 {
                let bound = 1.0 / ((w[0] + n_cat) as f32).sqrt();
                let block = uniform(dev, n_cat * w[1], bound, mix(s, 3, 0));
                cov.push((block, dev.zeros(n_cat * w[1])));
            }
        }
        FcLayers {
            layers,
            n_cat,
            cov,
            dropout: (dropout > 0.0).then(|| Dropout {
                p: dev.upload(&[dropout]),
                half_keep: dev.upload(&[0.5 / (1.0 - dropout)]),
            }),
            k: Scalars::new(dev),
            inv_width: widths[1..]
                .iter()
                .map(|&w| dev.upload(&[1.0 / w as f32]))
                .collect(),
        }
    }

    /// Each weight and its gradient.
    pub fn params(&self) -> Vec<(&D::Buf, &D::Buf)> {
        let mut p: Vec<_> = self.layers.iter().flat_map(|l| l.params()).collect();
        p.extend(self.cov.iter().map(|(w, g)| (w, g)));
        p
    }

    /// Runs the block on x (rows × n_in) with the rows' categories (which
    /// a block built with covariates needs); dropout only when `train`
    /// gives its draws (inference has none, as torch's eval mode).
    pub fn forward(
        &self,
        dev: &D,
        x: &D::Buf,
        cats: Option<&Cats<D>>,
        rows: usize,
        train: Option<Draw>,
    ) -> FcTape<D> {
        assert_eq!(
            cats.is_some(),
            self.n_cat > 0,
            "categories go with a block built with covariates"
        );
        let mut tape = FcTape {
            norm: vec![],
            dropped: vec![],
            outs: vec![],
            rows,
        };
        for (i, layer) in self.layers.iter().enumerate() {
            let input = if i == 0 { x } else { &tape.outs[i - 1] };
            let lin = layer.forward(dev, input, rows);
            if let Some(c) = cats {
                let g = Gemm {
                    beta: 1.0,
                    ..Gemm::new(rows, layer.n_out, self.n_cat)
                };
                dev.gemm(g, &c.onehot, &self.cov[i].0, &lin);
            }
            let (ln, inv) = layer_norm(dev, &self.k, &self.inv_width[i], &lin, rows, layer.n_out);
            let a = dev.zeros(rows * layer.n_out);
            dev.binary(Binary::Max, &ln, &self.k.zero, &a);
            match (train, &self.dropout) {
                (Some(d), Some(drop)) => {
                    let len = rows * layer.n_out;
                    let seed = mix(d.seed, 20 + i as u64, 0);
                    let mask = dropout_mask(dev, (&self.k, drop), len, seed, d.offset);
                    let out = dev.zeros(len);
                    dev.binary(Binary::Mul, &a, &mask, &out);
                    tape.outs.push(out);
                    tape.dropped.push(Some((a, mask)));
                }
                _ => {
                    tape.outs.push(a);
                    tape.dropped.push(None);
                }
            }
            tape.norm.push((ln, inv));
        }
        tape
    }

    /// Every layer's gw and gb (and covariate block's) from the gradient
    /// of the output, with the categories of the forward pass; the
    /// gradient of the input x when asked.
    pub fn backward(
        &self,
        dev: &D,
        x: &D::Buf,
        cats: Option<&Cats<D>>,
        tape: &FcTape<D>,
        g_out: &D::Buf,
        want_gx: bool,
    ) -> Option<D::Buf> {
        let rows = tape.rows;
        let mut carried: Option<D::Buf> = None;
        for (i, layer) in self.layers.iter().enumerate().rev() {
            let g = carried.as_ref().unwrap_or(g_out);
            let gln = match &tape.dropped[i] {
                Some((a, mask)) => {
                    let ga = dev.zeros(dev.len(mask));
                    dev.binary(Binary::Mul, g, mask, &ga);
                    relu_backward(dev, a, &ga)
                }
                None => relu_backward(dev, &tape.outs[i], g),
            };
            let (ln, inv) = &tape.norm[i];
            let glin =
                layer_norm_backward(dev, &self.inv_width[i], (ln, inv), &gln, rows, layer.n_out);
            if let Some(c) = cats {
                dev.gemm(
                    gemm(self.n_cat, layer.n_out, rows, true, false),
                    &c.onehot,
                    &glin,
                    &self.cov[i].1,
                );
            }
            let input = if i == 0 { x } else { &tape.outs[i - 1] };
            carried = layer.backward(dev, input, &glin, rows, i > 0 || want_gx);
        }
        carried
    }
}

/// How an encoder's second head becomes positive: scvi's default exp (a
/// variance), or a softmax over the outputs (RESOLVI's mixture
/// proportions).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VarActivation {
    Exp,
    Softmax,
}

/// scvi's `Encoder`: [`FcLayers`] then a linear mean head and a positive
/// second head, var_activation(linear) + var_eps.
pub struct Encoder<D: Device> {
    pub fc: FcLayers<D>,
    pub mean: Linear<D>,
    pub var: Linear<D>,
    pub activation: VarActivation,
    var_eps: D::Buf,
}

/// An encoder's forward pass: its outputs and what the backward pass reads.
pub struct EncoderTape<D: Device> {
    pub fc: FcTape<D>,
    /// rows × n_out: the mean head and the positive head.
    pub m: D::Buf,
    pub v: D::Buf,
    /// exp(raw) or softmax(raw): v without var_eps.
    act: D::Buf,
}

impl<D: Device> Encoder<D> {
    /// `hidden` layers of width `n_hidden` (scvi's n_layers), then the heads.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        dev: &D,
        n_in: usize,
        n_out: usize,
        n_hidden: usize,
        hidden: usize,
        dropout: f32,
        activation: VarActivation,
        var_eps: f32,
        seed: u64,
    ) -> Encoder<D> {
        let widths: Vec<usize> = std::iter::once(n_in)
            .chain(std::iter::repeat_n(n_hidden, hidden))
            .collect();
        Encoder {
            fc: FcLayers::new(dev, &widths, 0, dropout, mix(seed, 1, 0)),
            mean: Linear::new(dev, n_hidden, n_out, mix(seed, 2, 0)),
            var: Linear::new(dev, n_hidden, n_out, mix(seed, 3, 0)),
            activation,
            var_eps: dev.upload(&[var_eps]),
        }
    }

    /// Each weight and its gradient.
    pub fn params(&self) -> Vec<(&D::Buf, &D::Buf)> {
        let mut p = self.fc.params();
        p.extend(self.mean.params());
        p.extend(self.var.params());
        p
    }

    pub fn forward(&self, dev: &D, x: &D::Buf, rows: usize, train: Option<Draw>) -> EncoderTape<D> {
        let fc = self.fc.forward(dev, x, None, rows, train);
        let h = fc.output();
        let m = self.mean.forward(dev, h, rows);
        let raw = self.var.forward(dev, h, rows);
        let n = self.var.n_out;
        let (act, v) = (dev.zeros(rows * n), dev.zeros(rows * n));
        match self.activation {
            VarActivation::Exp => dev.unary(Unary::Exp, &raw, &act),
            VarActivation::Softmax => dev.softmax_rows(&raw, rows, n, &act),
        }
        dev.binary(Binary::Add, &act, &self.var_eps, &v);
        EncoderTape { fc, m, v, act }
    }

    /// Every weight's gradient from those of the two heads' outputs; the
    /// input's when asked.
    pub fn backward(
        &self,
        dev: &D,
        x: &D::Buf,
        tape: &EncoderTape<D>,
        gm: &D::Buf,
        gv: &D::Buf,
        want_gx: bool,
    ) -> Option<D::Buf> {
        let rows = tape.fc.rows;
        let n = self.var.n_out;
        let graw = dev.zeros(rows * n);
        match self.activation {
            VarActivation::Exp => dev.binary(Binary::Mul, gv, &tape.act, &graw),
            VarActivation::Softmax => dev.softmax_backward(&tape.act, gv, rows, n, &graw),
        }
        let h = tape.fc.output();
        let g1 = self.mean.backward(dev, h, gm, rows, true).expect("asked");
        let g2 = self.var.backward(dev, h, &graw, rows, true).expect("asked");
        let gh = dev.zeros(dev.len(&g1));
        dev.binary(Binary::Add, &g1, &g2, &gh);
        self.fc.backward(dev, x, None, &tape.fc, &gh, want_gx)
    }
}

/// scvi's `DecoderSCVI` as RESOLVI builds it: [`FcLayers`] with the batch
/// injected into every layer and no dropout, then px_scale =
/// softmax(Linear(hidden → genes)).
pub struct Decoder<D: Device> {
    pub fc: FcLayers<D>,
    pub scale: Linear<D>,
}

/// A decoder's forward pass: px_scale (rows × genes) and what the backward
/// pass reads.
pub struct DecoderTape<D: Device> {
    pub fc: FcTape<D>,
    pub px_scale: D::Buf,
}

impl<D: Device> Decoder<D> {
    /// `hidden` layers of width `n_hidden`, `n_cat` batches injected.
    pub fn new(
        dev: &D,
        n_latent: usize,
        n_genes: usize,
        (n_hidden, hidden): (usize, usize),
        n_cat: usize,
        seed: u64,
    ) -> Decoder<D> {
        let widths: Vec<usize> = std::iter::once(n_latent)
            .chain(std::iter::repeat_n(n_hidden, hidden))
            .collect();
        Decoder {
            fc: FcLayers::new(dev, &widths, n_cat, 0.0, mix(seed, 1, 0)),
            scale: Linear::new(dev, n_hidden, n_genes, mix(seed, 2, 0)),
        }
    }

    /// Each weight and its gradient.
    pub fn params(&self) -> Vec<(&D::Buf, &D::Buf)> {
        let mut p = self.fc.params();
        p.extend(self.scale.params());
        p
    }

    pub fn forward(
        &self,
        dev: &D,
        z: &D::Buf,
        cats: Option<&Cats<D>>,
        rows: usize,
    ) -> DecoderTape<D> {
        let fc = self.fc.forward(dev, z, cats, rows, None);
        let logits = self.scale.forward(dev, fc.output(), rows);
        let px_scale = dev.zeros(rows * self.scale.n_out);
        dev.softmax_rows(&logits, rows, self.scale.n_out, &px_scale);
        DecoderTape { fc, px_scale }
    }

    /// Every weight's gradient from px_scale's; z's when asked.
    pub fn backward(
        &self,
        dev: &D,
        z: &D::Buf,
        cats: Option<&Cats<D>>,
        tape: &DecoderTape<D>,
        g_scale: &D::Buf,
        want_gz: bool,
    ) -> Option<D::Buf> {
        let rows = tape.fc.rows;
        let n = self.scale.n_out;
        let glogits = dev.zeros(rows * n);
        dev.softmax_backward(&tape.px_scale, g_scale, rows, n, &glogits);
        let h = tape.fc.output();
        let gh = self
            .scale
            .backward(dev, h, &glogits, rows, true)
            .expect("asked");
        self.fc.backward(dev, z, cats, &tape.fc, &gh, want_gz)
    }
}
