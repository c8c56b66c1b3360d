//! Tangram's optimiser on a [`Device`], with hand-derived gradients.
//!
//! P = softmax_rows(M); G_pred = Pᵀ S' (S' = S, or f ∘ S row-wise in
//! constrained mode with f = sigmoid(F)). Minimised:
//!
//! ```text
//! L = −λ_g1 mean_genes cos(G_pred, G) − λ_g2 mean_spots cos(G_pred, G)
//!     + λ_d Σ_j d_j log(d_j / d_pred_j) + λ_r H(P)
//!     + λ_count |Σf − target| + λ_f_reg Σ(f − f²)
//! ```
//!
//! with d_pred = wᵀ P, w_i = 1/n (cells), the cluster fraction (clusters)
//! or f_i / Σf (constrained), and H(P) = −Σ P log P. Gradients:
//!
//! ```text
//! dL/dG_pred  from cosine_grad
//! dL/dP       = S' dL/dG_predᵀ + w ⊗ q − λ_r (log P + 1),  q_j = −λ_d d_j / d_pred_j
//! dL/dM       = softmax_backward(P, dL/dP)
//! dL/df_i     = Σ_j P_ij (S dL/dG_predᵀ)_ij + ((P q)_i − q·d_pred) / Σf
//!               + λ_count sign(Σf − target) + λ_f_reg (1 − 2 f_i)
//! dL/dF       = dL/df · f (1 − f)
//! ```
//!
//! Adam as torch.optim.Adam (β 0.9, 0.999, ε 1e-8).
//!
//! Cells are processed in row blocks small enough for the device's largest
//! buffer, so a map larger than one binding (WebGPU: 128 MiB–1 GiB) still fits.
//! Every epoch's loss terms are added into a device-side history; each
//! progress report reads that epoch's row, and the end reads it all.

use crate::compute::{AdamParams, Axis, Binary, Device, Gemm, Reduce, Unary};

/// What the optimiser sees (row-major f32 throughout).
pub struct Problem<'a> {
    /// rows (cells or clusters) x genes.
    pub s: &'a [f32],
    /// spots x genes.
    pub g: &'a [f32],
    pub rows: usize,
    pub spots: usize,
    pub genes: usize,
    /// Target density over spots (sums to 1); None disables the KL term.
    pub density: Option<&'a [f64]>,
    /// Per-row weight of d_pred in clusters mode (cluster fractions).
    pub source: Option<&'a [f64]>,
    /// Constrained mode: the number of cells the filter should keep.
    pub target_count: Option<f64>,
    /// Initial logits M (rows x spots) and, in constrained mode, F (rows).
    pub init_m: Vec<f32>,
    pub init_f: Option<Vec<f32>>,
    /// Rows per block; None: as many as the device's largest buffer holds.
    pub block_rows: Option<usize>,
    /// Read back dL/dM and dL/dF of the last epoch (for gradient checks).
    pub read_gradient: bool,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hyper {
    pub learning_rate: f32,
    pub num_epochs: usize,
    pub lambda_g1: f32,
    pub lambda_g2: f32,
    pub lambda_d: f32,
    pub lambda_r: f32,
    pub lambda_count: f32,
    pub lambda_f_reg: f32,
}

impl Default for Hyper {
    fn default() -> Self {
        Hyper {
            learning_rate: 0.1,
            num_epochs: 1000,
            lambda_g1: 1.0,
            lambda_g2: 0.0,
            lambda_d: 0.0,
            lambda_r: 0.0,
            lambda_count: 1.0,
            lambda_f_reg: 1.0,
        }
    }
}

/// Per-epoch loss terms, named as in `uns['training_history']`; NaN where a
/// term is off. Values are those of the parameters before that epoch's step.
#[derive(Debug, Clone, Default)]
pub struct History {
    pub total_loss: Vec<f64>,
    /// Mean gene-wise cosine (the "score").
    pub main_loss: Vec<f64>,
    pub vg_reg: Vec<f64>,
    pub kl_reg: Vec<f64>,
    /// Σ P log P (the negative entropy), as the reference logs it.
    pub entropy_reg: Vec<f64>,
    pub count_reg: Vec<f64>,
    pub lambda_f_reg: Vec<f64>,
}

pub struct Fit {
    /// rows x spots, each row summing to 1.
    pub mapping: Vec<f32>,
    /// Constrained mode: sigmoid(F) per cell.
    pub f_out: Option<Vec<f32>>,
    pub history: History,
    /// Cosine of G and the final G_pred for each training gene.
    pub train_scores: Vec<f64>,
    /// dL/dM (rows x spots) and dL/dF at the last epoch's parameters, when asked.
    pub gradient: Option<(Vec<f32>, Vec<f32>)>,
}

// Slots of one epoch's row in the device-side history.
const MAIN: usize = 0;
const VG: usize = 1;
const KL: usize = 2;
const ENT: usize = 3;
const FSUM: usize = 4;
const FREG: usize = 5;
const SLOTS: usize = 6;

/// Bytes of device memory a fit needs (the cells x spots matrices dominate).
pub fn bytes_needed(
    rows: usize,
    spots: usize,
    genes: usize,
    entropy: bool,
    constrained: bool,
) -> u64 {
    let per_row = (6 + 2 * usize::from(entropy) + 2 * usize::from(constrained)) * spots
        + genes * (1 + usize::from(constrained))
        + 16;
    4 * (rows * per_row + 6 * spots * genes + 8 * spots) as u64
}

/// Rows per block so every rows x spots (or x genes) buffer fits one binding.
pub fn block_rows(max_len: usize, spots: usize, genes: usize) -> usize {
    (max_len / spots.max(genes).max(1)).max(1)
}

/// One row block's device state.
struct Block<D: Device> {
    n: usize,
    m: D::Buf,
    m1: D::Buf,
    m2: D::Buf,
    p: D::Buf,
    dp: D::Buf,
    grad: D::Buf,
    s: D::Buf,
    /// Row weights of d_pred (cells: 1/n, clusters: fractions, constrained: f/Σf).
    w: D::Buf,
    ones: D::Buf,
    /// Entropy scratch: three rows x spots buffers and one per-row sum.
    ent: Option<([D::Buf; 3], D::Buf)>,
    filter: Option<Filter<D>>,
}

/// Constrained mode's per-block filter state and scratch.
struct Filter<D: Device> {
    raw: D::Buf,
    m1: D::Buf,
    m2: D::Buf,
    f: D::Buf,
    sf: D::Buf,
    e: D::Buf,
    pe: D::Buf,
    grad: D::Buf,
    t: [D::Buf; 6],
}

/// Scalars uploaded once.
struct Consts<D: Device> {
    one: D::Buf,
    neg_lambda_d: D::Buf,
    neg_lambda_r: D::Buf,
    lambda_count: D::Buf,
    lambda_f: D::Buf,
    neg_two_lambda_f: D::Buf,
    target: D::Buf,
}

pub async fn fit<D: Device>(
    dev: &D,
    pb: &Problem<'_>,
    hp: &Hyper,
    progress: &mut dyn FnMut(usize, usize, f64),
) -> Fit {
    let (n, ns, k) = (pb.rows, pb.spots, pb.genes);
    let constrained = pb.target_count.is_some();
    let density = pb.density.filter(|_| hp.lambda_d > 0.0);
    let entropy = hp.lambda_r != 0.0;
    let per = pb
        .block_rows
        .unwrap_or_else(|| block_rows(dev.max_buffer_len(), ns, k))
        .clamp(1, n.max(1));
    let c = Consts::<D> {
        one: dev.upload(&[1.0]),
        neg_lambda_d: dev.upload(&[-hp.lambda_d]),
        neg_lambda_r: dev.upload(&[-hp.lambda_r]),
        lambda_count: dev.upload(&[hp.lambda_count]),
        lambda_f: dev.upload(&[hp.lambda_f_reg]),
        neg_two_lambda_f: dev.upload(&[-2.0 * hp.lambda_f_reg]),
        target: dev.upload(&[pb.target_count.unwrap_or(0.0) as f32]),
    };
    let mut blocks: Vec<Block<D>> = Vec::new();
    for r0 in (0..n).step_by(per) {
        let nb = per.min(n - r0);
        let w: Vec<f32> = match pb.source {
            Some(src) => src[r0..r0 + nb].iter().map(|&v| v as f32).collect(),
            None => vec![1.0 / n as f32; nb],
        };
        let zeros = || dev.zeros(nb * ns);
        blocks.push(Block {
            n: nb,
            m: dev.upload(&pb.init_m[r0 * ns..(r0 + nb) * ns]),
            m1: zeros(),
            m2: zeros(),
            p: zeros(),
            dp: zeros(),
            grad: zeros(),
            s: dev.upload(&pb.s[r0 * k..(r0 + nb) * k]),
            w: dev.upload(&w),
            ones: dev.upload(&vec![1.0; nb]),
            ent: entropy.then(|| ([zeros(), zeros(), zeros()], dev.zeros(nb))),
            filter: pb.init_f.as_ref().filter(|_| constrained).map(|f0| Filter {
                raw: dev.upload(&f0[r0..r0 + nb]),
                m1: dev.zeros(nb),
                m2: dev.zeros(nb),
                f: dev.zeros(nb),
                sf: dev.zeros(nb * k),
                e: zeros(),
                pe: zeros(),
                grad: dev.zeros(nb),
                t: std::array::from_fn(|_| dev.zeros(nb)),
            }),
        });
    }
    let g = dev.upload(pb.g);
    let d_target: Vec<f32> = density.map_or(vec![], |d| d.iter().map(|&v| v as f32).collect());
    let d_buf = dev.upload(if d_target.is_empty() {
        &[0.0]
    } else {
        &d_target
    });
    let (gp, dg, d2, dt) = (
        dev.zeros(ns * k),
        dev.zeros(ns * k),
        dev.zeros(ns * k),
        dev.zeros(ns * k),
    );
    let (cos_k, cos_s) = (dev.zeros(k), dev.zeros(ns));
    let (dpred, ratio, q, logd, dl) = (
        dev.zeros(ns),
        dev.zeros(ns),
        dev.zeros(ns),
        dev.zeros(ns),
        dev.zeros(ns),
    );
    let scalars: [D::Buf; 8] = std::array::from_fn(|_| dev.zeros(1));
    let hist = dev.zeros(hp.num_epochs.max(1) * SLOTS);
    let log_term = |x: &D::Buf, t: usize, slot: usize| {
        let idx = dev.upload_index(&[(t * SLOTS + slot) as u32]);
        dev.scatter_add(x, &idx, &hist);
    };
    let sum_into = |x: &D::Buf, len: usize, out: &D::Buf| {
        dev.reduce(Reduce::Sum, Axis::Rows, x, 1, len, out);
    };

    // The forward pass shared by every epoch and the final scores.
    let forward = |blocks: &[Block<D>]| {
        for b in blocks {
            dev.softmax_rows(&b.m, b.n, ns, &b.p);
            if let Some(f) = &b.filter {
                dev.unary(Unary::Sigmoid, &f.raw, &f.f);
                dev.binary_rows(Binary::Mul, &b.s, &f.f, b.n, k, &f.sf);
            }
        }
        for (i, b) in blocks.iter().enumerate() {
            let src = b.filter.as_ref().map_or(&b.s, |f| &f.sf);
            let gm = Gemm {
                trans_a: true,
                beta: if i == 0 { 0.0 } else { 1.0 },
                ..Gemm::new(ns, k, b.n)
            };
            dev.gemm(gm, &b.p, src, &gp);
        }
    };

    // A report every 1% of the fit, and at least every 10 epochs so a long
    // fit in a slow browser still shows it is alive.
    let report_every = (hp.num_epochs / 100).clamp(1, 10);
    let last_row = dev.zeros(SLOTS);
    for t in 0..hp.num_epochs {
        forward(&blocks);
        let [fsum, inv_f, qd, cnt, sg, cg, ent_row, ent_sum] = &scalars;
        if constrained {
            for (i, b) in blocks.iter().enumerate() {
                let f = b.filter.as_ref().expect("filter");
                let gm = Gemm {
                    beta: if i == 0 { 0.0 } else { 1.0 },
                    ..Gemm::new(1, 1, b.n)
                };
                dev.gemm(gm, &b.ones, &f.f, fsum);
            }
            dev.binary(Binary::Div, &c.one, fsum, inv_f);
            for b in &blocks {
                let f = b.filter.as_ref().expect("filter");
                dev.binary(Binary::Mul, &f.f, inv_f, &b.w);
            }
            log_term(fsum, t, FSUM);
        }
        if density.is_some() {
            for (i, b) in blocks.iter().enumerate() {
                let gm = Gemm {
                    beta: if i == 0 { 0.0 } else { 1.0 },
                    ..Gemm::new(1, ns, b.n)
                };
                dev.gemm(gm, &b.w, &b.p, &dpred);
            }
            dev.binary(Binary::Div, &d_buf, &dpred, &ratio);
            dev.binary(Binary::Mul, &ratio, &c.neg_lambda_d, &q);
            dev.unary(Unary::Log, &dpred, &logd);
            dev.binary(Binary::Mul, &logd, &d_buf, &dl);
            sum_into(&dl, ns, ent_row);
            log_term(ent_row, t, KL);
            if constrained {
                dev.gemm(Gemm::new(1, 1, ns), &q, &dpred, qd);
            }
        }
        dev.cosine_grad(
            Axis::Cols,
            &gp,
            &g,
            ns,
            k,
            -hp.lambda_g1 / k as f32,
            &cos_k,
            &dg,
        );
        sum_into(&cos_k, k, ent_sum);
        log_term(ent_sum, t, MAIN);
        let dfull = if hp.lambda_g2 != 0.0 {
            dev.cosine_grad(
                Axis::Rows,
                &gp,
                &g,
                ns,
                k,
                -hp.lambda_g2 / ns as f32,
                &cos_s,
                &d2,
            );
            sum_into(&cos_s, ns, ent_sum);
            log_term(ent_sum, t, VG);
            dev.binary(Binary::Add, &dg, &d2, &dt);
            &dt
        } else {
            &dg
        };
        if constrained {
            dev.binary(Binary::Sub, fsum, &c.target, cnt);
            dev.unary(Unary::Sign, cnt, sg);
            dev.binary(Binary::Mul, sg, &c.lambda_count, cg);
        }
        let step = AdamParams {
            lr: hp.learning_rate,
            step: t as u32 + 1,
            ..AdamParams::default()
        };
        for b in &blocks {
            let nt = Gemm {
                trans_b: true,
                ..Gemm::new(b.n, ns, k)
            };
            match &b.filter {
                Some(f) => {
                    dev.gemm(nt, &b.s, dfull, &f.e);
                    dev.binary_rows(Binary::Mul, &f.e, &f.f, b.n, ns, &b.dp);
                }
                None => dev.gemm(nt, &b.s, dfull, &b.dp),
            }
            if density.is_some() {
                let rank1 = Gemm {
                    beta: 1.0,
                    ..Gemm::new(b.n, ns, 1)
                };
                dev.gemm(rank1, &b.w, &q, &b.dp);
            }
            let mut dp_final = &b.dp;
            if let Some(([t1, t2, t3], rows)) = &b.ent {
                dev.unary(Unary::Log, &b.p, t1);
                dev.binary(Binary::Mul, t1, &b.p, t2);
                dev.reduce(Reduce::Sum, Axis::Rows, t2, b.n, ns, rows);
                sum_into(rows, b.n, ent_row);
                log_term(ent_row, t, ENT);
                dev.binary(Binary::Add, t1, &c.one, t2);
                dev.binary(Binary::Mul, t2, &c.neg_lambda_r, t1);
                dev.binary(Binary::Add, &b.dp, t1, t3);
                dp_final = t3;
            }
            if let Some(f) = &b.filter {
                let [dfe, pq, a1, a2, ff, dfr] = &f.t;
                // Expression part: Σ_j P_ij (S dL/dG_predᵀ)_ij.
                dev.binary(Binary::Mul, &b.p, &f.e, &f.pe);
                dev.reduce(Reduce::Sum, Axis::Rows, &f.pe, b.n, ns, dfe);
                let mut acc = dfe;
                if density.is_some() {
                    dev.gemm(Gemm::new(b.n, 1, ns), &b.p, &q, pq);
                    dev.binary(Binary::Sub, pq, qd, a1);
                    dev.binary(Binary::Mul, a1, inv_f, a2);
                    dev.binary(Binary::Add, dfe, a2, a1);
                    acc = a1;
                }
                // λ_f (1 − 2f) + λ_count sign(Σf − target).
                dev.binary(Binary::Mul, &f.f, &c.neg_two_lambda_f, ff);
                dev.binary(Binary::Add, ff, &c.lambda_f, pq);
                dev.binary(Binary::Add, acc, pq, a2);
                dev.binary(Binary::Add, a2, cg, dfr);
                // Chain through the sigmoid: f(1 − f) = f − f².
                dev.binary(Binary::Mul, &f.f, &f.f, ff);
                dev.binary(Binary::Sub, &f.f, ff, a2);
                sum_into(a2, b.n, ent_row);
                log_term(ent_row, t, FREG);
                dev.binary(Binary::Mul, dfr, a2, &f.grad);
                dev.adam(step, &f.raw, &f.grad, &f.m1, &f.m2);
            }
            dev.softmax_backward(&b.p, dp_final, b.n, ns, &b.grad);
            dev.adam(step, &b.m, &b.grad, &b.m1, &b.m2);
        }
        if (t + 1) % report_every == 0 || t + 1 == hp.num_epochs {
            // Reading the history waits for the queue, which keeps it short
            // and the progress honest, and lets a browser worker breathe.
            let at: Vec<u32> = (0..SLOTS).map(|j| (t * SLOTS + j) as u32).collect();
            dev.gather(&hist, &dev.upload_index(&at), &last_row);
            let row = dev.read(&last_row).await;
            let one = Hyper {
                num_epochs: 1,
                ..*hp
            };
            progress(
                t + 1,
                hp.num_epochs,
                history(&row, pb, &one, density).total_loss[0],
            );
        }
    }

    // Final map, filter and per-gene scores.
    forward(&blocks);
    dev.cosine(Axis::Cols, &gp, &g, ns, k, &cos_k);
    let mut mapping = Vec::with_capacity(n * ns);
    let mut f_out = constrained.then(Vec::new);
    for b in &blocks {
        mapping.extend(dev.read(&b.p).await);
        if let (Some(out), Some(f)) = (f_out.as_mut(), &b.filter) {
            out.extend(dev.read(&f.f).await);
        }
    }
    let train_scores = dev.read(&cos_k).await.iter().map(|&v| v as f64).collect();
    let mut gradient = None;
    if pb.read_gradient {
        let (mut gm, mut gf) = (Vec::new(), Vec::new());
        for b in &blocks {
            gm.extend(dev.read(&b.grad).await);
            if let Some(f) = &b.filter {
                gf.extend(dev.read(&f.grad).await);
            }
        }
        gradient = Some((gm, gf));
    }
    let raw = dev.read(&hist).await;
    Fit {
        mapping,
        f_out,
        history: history(&raw, pb, hp, density),
        train_scores,
        gradient,
    }
}

fn history(raw: &[f32], pb: &Problem, hp: &Hyper, density: Option<&[f64]>) -> History {
    let dlogd: f64 = density.map_or(0.0, |d| {
        d.iter().filter(|&&v| v > 0.0).map(|&v| v * v.ln()).sum()
    });
    let mut h = History::default();
    let on = |flag: bool, v: f64| if flag { v } else { f64::NAN };
    let constrained = pb.target_count.is_some();
    for t in 0..hp.num_epochs {
        let r = &raw[t * SLOTS..(t + 1) * SLOTS];
        let main = r[MAIN] as f64 / pb.genes as f64;
        let vg = on(hp.lambda_g2 != 0.0, r[VG] as f64 / pb.spots as f64);
        let kl = on(density.is_some(), dlogd - r[KL] as f64);
        let ent = on(hp.lambda_r != 0.0, r[ENT] as f64);
        let count = on(
            constrained,
            (r[FSUM] as f64 - pb.target_count.unwrap_or(0.0)).abs(),
        );
        let freg = on(constrained, r[FREG] as f64);
        let nz = |lambda: f32, v: f64| {
            if lambda == 0.0 || v.is_nan() {
                0.0
            } else {
                lambda as f64 * v
            }
        };
        let total = -(hp.lambda_g1 as f64) * main - nz(hp.lambda_g2, vg) + nz(hp.lambda_d, kl)
            - nz(hp.lambda_r, ent)
            + nz(hp.lambda_count, count)
            + nz(hp.lambda_f_reg, freg);
        h.total_loss.push(total);
        h.main_loss.push(main);
        h.vg_reg.push(vg);
        h.kl_reg.push(kl);
        h.entropy_reg.push(ent);
        h.count_reg.push(count);
        h.lambda_f_reg.push(freg);
    }
    h
}
