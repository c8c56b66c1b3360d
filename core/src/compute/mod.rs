//! The compute layer: one small op set that every model is written against,
//! implemented by the CPU oracle ([`cpu::Cpu`]) and by the GPU devices.
//!
//! Conventions: matrices are row-major f32; an op writes into an output
//! buffer the caller allocated; parameters of length 1 or `cols` broadcast
//! (element i reads `p[i % p.len()]`), which covers scalars and per-column
//! (per-gene) parameters. Readback is the only async step.

#[cfg(not(target_arch = "wasm32"))]
pub mod bench;
pub mod conformance;
pub mod cpu;
#[cfg(all(feature = "cuda", not(target_arch = "wasm32")))]
pub mod cuda;
#[cfg(feature = "gpu")]
pub mod gpu;
mod linalg;
pub mod philox;
pub mod special;

use std::future::Future;

/// C[m×n] = alpha · op(A) · op(B) + beta · C, repeated `batch` times over
/// consecutive blocks (strides m·k, k·n, m·n).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Gemm {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    /// A is stored k×m and used transposed.
    pub trans_a: bool,
    /// B is stored n×k and used transposed.
    pub trans_b: bool,
    pub alpha: f32,
    pub beta: f32,
    pub batch: usize,
}

impl Gemm {
    pub fn new(m: usize, n: usize, k: usize) -> Gemm {
        Gemm {
            m,
            n,
            k,
            trans_a: false,
            trans_b: false,
            alpha: 1.0,
            beta: 0.0,
            batch: 1,
        }
    }

    pub fn flops(&self) -> f64 {
        2.0 * (self.m * self.n * self.k * self.batch) as f64
    }
}

/// A triangular shape a device may exploit in [`Device::gemm_tri`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tri {
    /// B (square, not transposed) is lower triangular: its upper triangle
    /// holds zeros.
    LowerB,
    /// Only C's lower triangle (diagonal included) is wanted; C is square.
    LowerC,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unary {
    Exp,
    Log,
    Softplus,
    Sigmoid,
    Lgamma,
    Digamma,
    /// -1, 0 or 1 (the subgradient torch gives |x|).
    Sign,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Binary {
    Add,
    Sub,
    Mul,
    Div,
    /// The larger of the two (a floor when b is a scalar).
    Max,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reduce {
    Sum,
    Max,
    LogSumExp,
}

/// Which way a reduction runs: `Rows` gives one value per row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Axis {
    Rows,
    Cols,
}

/// Stationary GP kernels of a distance d, amplitude a and length scale ℓ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GpKernel {
    /// a² (1 + t) e^{−t}, t = √3 d/ℓ.
    Matern32,
    /// a² exp(−d²/2ℓ²) (the exponentiated quadratic).
    Rbf,
}

/// What [`Device::gp_kernel`] writes: the kernel or a partial derivative.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelPart {
    Value,
    Amplitude,
    LengthScale,
}

/// Log-densities with (p1, p2): Gamma(shape, rate), Exponential(rate, unused), Normal(loc, scale).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Density {
    Gamma,
    Exponential,
    Normal,
}

/// Adam, or Pyro's ClippedAdam when `clip` is set (gradients clamped to
/// [-clip, clip], learning rate lr · lrd^step).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamParams {
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub clip: Option<f32>,
    pub lrd: f32,
    /// 1-based step number (bias correction).
    pub step: u32,
}

impl Default for AdamParams {
    fn default() -> Self {
        AdamParams {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            clip: None,
            lrd: 1.0,
            step: 1,
        }
    }
}

/// A CSR matrix on a device.
pub struct Csr<'a, D: Device + ?Sized> {
    pub rows: usize,
    pub cols: usize,
    pub indptr: &'a D::Index,
    pub indices: &'a D::Index,
    pub data: &'a D::Buf,
}

/// The op set. Lengths are checked by each device; a mismatch is a bug in the
/// caller and panics with the op's name.
pub trait Device {
    /// f32 storage.
    type Buf;
    /// u32 storage (indices, CSR structure).
    type Index;

    fn name(&self) -> String;
    fn upload(&self, data: &[f32]) -> Self::Buf;
    fn upload_index(&self, data: &[u32]) -> Self::Index;
    /// [`Device::upload`] of data the caller is done with (the CPU device
    /// keeps it rather than copying).
    fn upload_owned(&self, data: Vec<f32>) -> Self::Buf {
        self.upload(&data)
    }
    fn upload_index_owned(&self, data: Vec<u32>) -> Self::Index {
        self.upload_index(&data)
    }
    fn zeros(&self, len: usize) -> Self::Buf;
    fn len(&self, buf: &Self::Buf) -> usize;
    /// The most f32 values one buffer may hold on this device; models split
    /// larger matrices into row blocks below it.
    fn max_buffer_len(&self) -> usize {
        usize::MAX / 4
    }
    /// Bytes a model may allocate on this device, when the device can tell.
    fn memory_budget(&self) -> Option<u64> {
        None
    }
    /// True when buffers are host memory (the CPU device): an input a model
    /// can rebuild each step from data it holds anyway is cheaper rebuilt
    /// than kept as a second copy.
    fn shares_host_memory(&self) -> bool {
        false
    }
    /// Why this device can no longer run work (lost, out of memory), once
    /// that happened: what it computed since is not to be kept. A fit
    /// checks it at each checkpoint and resumes on the CPU.
    fn lost(&self) -> Option<String> {
        None
    }
    /// Blocks until queued work has finished (native; benchmarks use it).
    fn sync(&self) {}
    /// Copies a buffer back to the host (the one async step).
    fn read(&self, buf: &Self::Buf) -> impl Future<Output = Vec<f32>>;

    fn gemm(&self, g: Gemm, a: &Self::Buf, b: &Self::Buf, c: &Self::Buf);
    /// [`Device::gemm`] for a triangular B or C: a device may skip the zero
    /// half (the CPU device does); with `LowerC` the entries above C's
    /// diagonal are left unspecified.
    fn gemm_tri(&self, g: Gemm, tri: Tri, a: &Self::Buf, b: &Self::Buf, c: &Self::Buf) {
        let _ = tri;
        self.gemm(g, a, b, c);
    }
    /// C = A · B (A is rows×cols CSR, B is cols×n), or C = Aᵀ · B when `transpose` (B is rows×n).
    fn csr_mm(&self, a: &Csr<Self>, b: &Self::Buf, n: usize, transpose: bool, c: &Self::Buf);
    fn unary(&self, op: Unary, x: &Self::Buf, out: &Self::Buf);
    /// out = a ∘ b, b broadcasting.
    fn binary(&self, op: Binary, a: &Self::Buf, b: &Self::Buf, out: &Self::Buf);
    /// out = a ∘ v with one value of v per row of the rows×cols matrix a.
    fn binary_rows(
        &self,
        op: Binary,
        a: &Self::Buf,
        v: &Self::Buf,
        rows: usize,
        cols: usize,
        out: &Self::Buf,
    );
    fn reduce(
        &self,
        op: Reduce,
        axis: Axis,
        x: &Self::Buf,
        rows: usize,
        cols: usize,
        out: &Self::Buf,
    );
    fn softmax_rows(&self, x: &Self::Buf, rows: usize, cols: usize, out: &Self::Buf);
    /// Backward pass of the row softmax: given p = softmax(x) and the
    /// gradient dp w.r.t. p, dx = p ∘ (dp − Σ_j p_j dp_j) row by row.
    fn softmax_backward(
        &self,
        p: &Self::Buf,
        dp: &Self::Buf,
        rows: usize,
        cols: usize,
        dx: &Self::Buf,
    );
    /// Cosine similarity of matching rows (or columns) of a and b, each norm
    /// clamped at 1e-8 as torch does.
    fn cosine(
        &self,
        axis: Axis,
        a: &Self::Buf,
        b: &Self::Buf,
        rows: usize,
        cols: usize,
        out: &Self::Buf,
    );
    /// Cosine similarity of matching rows (or columns) of a and b, with norms
    /// clamped at 1e-8 as torch does, and `weight` times its gradient w.r.t.
    /// a: grad = w · (b / (|a||b|) − cos · a / |a|²), per row (or column).
    #[allow(clippy::too_many_arguments)]
    fn cosine_grad(
        &self,
        axis: Axis,
        a: &Self::Buf,
        b: &Self::Buf,
        rows: usize,
        cols: usize,
        weight: f32,
        cos: &Self::Buf,
        grad: &Self::Buf,
    );
    /// out[i] = x[idx[i]].
    fn gather(&self, x: &Self::Buf, idx: &Self::Index, out: &Self::Buf);
    /// out[idx[i]] += x[i].
    fn scatter_add(&self, x: &Self::Buf, idx: &Self::Index, out: &Self::Buf);
    /// Negative-binomial (Gamma-Poisson, mean mu, concentration theta)
    /// log-likelihood of counts x: per-row sums into `ll_rows`, and the
    /// elementwise gradients w.r.t. mu and theta. theta broadcasts.
    #[allow(clippy::too_many_arguments)]
    fn nb_loglik_grad(
        &self,
        x: &Self::Buf,
        mu: &Self::Buf,
        theta: &Self::Buf,
        rows: usize,
        cols: usize,
        ll_rows: &Self::Buf,
        grad_mu: &Self::Buf,
        grad_theta: &Self::Buf,
    );
    /// [`nb_loglik_grad`](Device::nb_loglik_grad) summed over groups of rows
    /// that share a mean, from the non-zero counts only: group k has
    /// `count[k]` rows, all with mean `mu[k, ·]`; the non-zero counts of its
    /// column j are `x[seg[k·cols + j] .. seg[k·cols + j + 1]]`, its other
    /// entries are zeros. Writes per (k, j) into `out` = [ll, grad_mu,
    /// grad_theta] the summed log-likelihood and gradients. theta
    /// broadcasts. A sparse count matrix costs one evaluation per group and
    /// column plus one per non-zero, and is never densified.
    #[allow(clippy::too_many_arguments)]
    fn nb_grouped(
        &self,
        x: &Self::Buf,
        seg: &Self::Index,
        count: &Self::Buf,
        mu: &Self::Buf,
        theta: &Self::Buf,
        groups: usize,
        cols: usize,
        out: [&Self::Buf; 3],
    );
    /// Poisson log-likelihood per row and its gradient w.r.t. the rate.
    #[allow(clippy::too_many_arguments)]
    fn poisson_loglik_grad(
        &self,
        x: &Self::Buf,
        mu: &Self::Buf,
        rows: usize,
        cols: usize,
        ll_rows: &Self::Buf,
        grad_mu: &Self::Buf,
    );
    /// Elementwise log-density of x; p1 and p2 broadcast.
    fn log_density(
        &self,
        d: Density,
        x: &Self::Buf,
        p1: &Self::Buf,
        p2: &Self::Buf,
        out: &Self::Buf,
    );
    /// Reparameterised draw of a mean-field Normal guide in unconstrained
    /// space: z = loc + softplus(scale_raw) · ε, ε the Philox normal stream.
    fn normal_draw(
        &self,
        loc: &Self::Buf,
        scale_raw: &Self::Buf,
        seed: u64,
        offset: u32,
        z: &Self::Buf,
    );
    /// One Adam / ClippedAdam step on `param` with moment buffers m, v.
    fn adam(
        &self,
        p: AdamParams,
        param: &Self::Buf,
        grad: &Self::Buf,
        m: &Self::Buf,
        v: &Self::Buf,
    );
    /// Philox uniform (0, 1) or standard normal stream into `out`.
    fn random(&self, normal: bool, seed: u64, offset: u32, out: &Self::Buf);
    /// Kernel matrices of `batch` factors over one distance matrix:
    /// out[b·n + i] = k(dist[i]; amp[b], ls[b]) (or its derivative `part`),
    /// n = dist's length.
    #[allow(clippy::too_many_arguments)]
    fn gp_kernel(
        &self,
        kernel: GpKernel,
        part: KernelPart,
        dist: &Self::Buf,
        amp: &Self::Buf,
        ls: &Self::Buf,
        batch: usize,
        out: &Self::Buf,
    );
    /// Lower Cholesky factors of `batch` symmetric n×n matrices stored one
    /// after another in `a`, in place (the upper triangles are zeroed).
    /// `info[b]` is 0, or the 1-based column of matrix b whose pivot was not
    /// positive; that factor continues with NaN, so every device reports the
    /// same column.
    fn cholesky(&self, a: &Self::Buf, n: usize, batch: usize, info: &Self::Buf);
    /// Solves L X = B (Lᵀ X = B when `transpose`) in place in `b` for
    /// `batch` lower-triangular n×n factors L and n×k right-hand sides B,
    /// both stored one after another.
    fn trsm(&self, l: &Self::Buf, b: &Self::Buf, n: usize, k: usize, batch: usize, transpose: bool);
    /// One coordinate-descent sweep of NMF (scikit-learn's `cd` solver) over
    /// each row i of w (rows×k), in place: for t in 0..k,
    /// grad = −xht[i,t] + Σ_r hht[t,r] w[i,r] and
    /// w[i,t] = max(w[i,t] − grad / hht[t,t], 0) when hht[t,t] ≠ 0.
    /// `violation[i]` = Σ_t |projected gradient| (sklearn's stopping test).
    fn nmf_cd_rows(
        &self,
        w: &Self::Buf,
        hht: &Self::Buf,
        xht: &Self::Buf,
        rows: usize,
        k: usize,
        violation: &Self::Buf,
    );
}
