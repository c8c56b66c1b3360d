//! The CUDA device (cargo feature `cuda`): cudarc with the driver, NVRTC and
//! cuBLAS loaded at run time, so it builds on machines without CUDA and says
//! so clearly when the driver is missing. GEMM is cuBLAS; every other op is a
//! kernel from `shaders/cuda/<op>.cu` compiled by NVRTC with the shared
//! helpers of `shaders/cuda/common.cuh` in front (same formulas as the WGSL).

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use cudarc::cublas::{
    sys::cublasOperation_t as Op, CudaBlas, Gemm as _, GemmConfig, StridedBatchedConfig,
};
use cudarc::driver::{
    CudaContext, CudaFunction, CudaSlice, CudaStream, LaunchConfig, PushKernelArg,
};
use cudarc::nvrtc::{compile_ptx_with_opts, CompileOptions};

use super::{
    AdamParams, Axis, Binary, Csr, Density, Device, Gemm, GpKernel, KernelPart, Reduce, Unary,
};

const COMMON: &str = include_str!("../../../../shaders/cuda/common.cuh");

macro_rules! cuda_kernel {
    ($name:literal) => {
        (
            $name,
            include_str!(concat!("../../../../shaders/cuda/", $name, ".cu")),
        )
    };
}

const KERNELS: [(&str, &str); 21] = [
    cuda_kernel!("unary"),
    cuda_kernel!("binary"),
    cuda_kernel!("reduce"),
    cuda_kernel!("softmax_rows"),
    cuda_kernel!("softmax_backward"),
    cuda_kernel!("cosine_grad"),
    cuda_kernel!("gather"),
    cuda_kernel!("scatter_add"),
    cuda_kernel!("csr_mm"),
    cuda_kernel!("csr_mm_t"),
    cuda_kernel!("nb_loglik_grad"),
    cuda_kernel!("nb_grouped"),
    cuda_kernel!("poisson_loglik_grad"),
    cuda_kernel!("log_density"),
    cuda_kernel!("normal_draw"),
    cuda_kernel!("philox_fill"),
    cuda_kernel!("adam"),
    cuda_kernel!("nmf_cd"),
    cuda_kernel!("cholesky"),
    cuda_kernel!("trsm"),
    cuda_kernel!("gp_kernel"),
];

const WG: u32 = 256;

pub struct Cuda {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    blas: CudaBlas,
    name: String,
    functions: RefCell<HashMap<&'static str, CudaFunction>>,
}

/// Device memory; interior mutability so outputs can be passed by `&`
/// (passing one buffer as both input and output panics, as on wgpu).
pub struct CudaBuf(RefCell<CudaSlice<f32>>);
pub struct CudaIndex(CudaSlice<u32>);

fn one_d(n: usize) -> LaunchConfig {
    LaunchConfig {
        grid_dim: ((n as u32).div_ceil(WG).max(1), 1, 1),
        block_dim: (WG, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// One block per output row or column; None when there are none to launch.
fn per_block(blocks: usize) -> Option<LaunchConfig> {
    (blocks > 0).then_some(LaunchConfig {
        grid_dim: (blocks as u32, 1, 1),
        block_dim: (WG, 1, 1),
        shared_mem_bytes: 0,
    })
}

fn check<T, E: std::fmt::Debug>(what: &str, r: Result<T, E>) -> T {
    r.unwrap_or_else(|e| panic!("CUDA {what} failed: {e:?}"))
}

impl Cuda {
    /// Opens GPU 0, or explains what is missing.
    pub fn new() -> Result<Cuda, String> {
        // cudarc panics when a library is absent, so look first.
        if !unsafe { cudarc::driver::sys::is_culib_present() } {
            return Err("no CUDA driver (libcuda) found: install the NVIDIA driver or use --device gpu / cpu".into());
        }
        if !unsafe { cudarc::nvrtc::sys::is_culib_present() } {
            return Err(
                "CUDA driver found but not NVRTC (libnvrtc): install the CUDA runtime libraries"
                    .into(),
            );
        }
        if !unsafe { cudarc::cublas::sys::is_culib_present() } {
            return Err(
                "CUDA driver found but not cuBLAS (libcublas): install the CUDA runtime libraries"
                    .into(),
            );
        }
        let ctx = CudaContext::new(0).map_err(|e| format!("no usable CUDA device: {e}"))?;
        let stream = ctx.default_stream();
        let blas =
            CudaBlas::new(stream.clone()).map_err(|e| format!("cuBLAS failed to start: {e:?}"))?;
        let name = ctx.name().unwrap_or_else(|_| "CUDA device 0".into());
        Ok(Cuda {
            ctx,
            stream,
            blas,
            name,
            functions: RefCell::new(HashMap::new()),
        })
    }

    /// out = a op b over n elements; b repeats, or one b per row of `row_len`.
    fn binary_with(
        &self,
        op: Binary,
        a: &CudaBuf,
        b: &CudaBuf,
        n: usize,
        row_len: usize,
        out: &CudaBuf,
    ) {
        let (ab, bb, mut ob) = (a.0.borrow(), b.0.borrow(), out.0.borrow_mut());
        assert!(ob.len() >= n && !bb.is_empty(), "binary: bad lengths");
        let (n32, nb, code, rl) = (n as u32, bb.len() as u32, op as u32, row_len as u32);
        let f = self.func("binary");
        let mut l = self.stream.launch_builder(&f);
        l.arg(&*ab)
            .arg(&*bb)
            .arg(&mut *ob)
            .arg(&n32)
            .arg(&nb)
            .arg(&code)
            .arg(&rl);
        check("binary", unsafe { l.launch(one_d(n)) });
    }

    /// Cosines of rows or columns, and `weight` times their gradient when `with_grad`.
    #[allow(clippy::too_many_arguments)]
    fn cosine_kernel(
        &self,
        axis: Axis,
        a: &CudaBuf,
        b: &CudaBuf,
        rows: usize,
        cols: usize,
        weight: f32,
        with_grad: bool,
        cos: &CudaBuf,
        grad: &CudaBuf,
    ) {
        let (ab, bb) = (a.0.borrow(), b.0.borrow());
        let (mut cb, mut gb) = (cos.0.borrow_mut(), grad.0.borrow_mut());
        let n_out = if axis == Axis::Rows { rows } else { cols };
        assert!(
            ab.len() >= rows * cols && bb.len() >= rows * cols && cb.len() >= n_out,
            "cosine: bad lengths"
        );
        let (r, c, ax, wg) = (
            rows as u32,
            cols as u32,
            u32::from(axis == Axis::Cols),
            u32::from(with_grad),
        );
        let f = self.func("cosine_grad");
        let mut l = self.stream.launch_builder(&f);
        l.arg(&*ab)
            .arg(&*bb)
            .arg(&mut *cb)
            .arg(&mut *gb)
            .arg(&r)
            .arg(&c)
            .arg(&ax)
            .arg(&weight)
            .arg(&wg);
        if let Some(cfg) = per_block(n_out) {
            check("cosine", unsafe { l.launch(cfg) });
        }
    }

    fn func(&self, name: &'static str) -> CudaFunction {
        let mut cache = self.functions.borrow_mut();
        cache
            .entry(name)
            .or_insert_with(|| {
                let src = KERNELS
                    .iter()
                    .find(|(n, _)| *n == name)
                    .expect("kernel is listed")
                    .1;
                let opts = CompileOptions {
                    use_fast_math: Some(false),
                    ..Default::default()
                };
                let ptx = compile_ptx_with_opts(format!("{COMMON}\n{src}"), opts)
                    .unwrap_or_else(|e| panic!("NVRTC could not compile {name}: {e}"));
                let module = check("load_module", self.ctx.load_module(ptx));
                check("load_function", module.load_function(name))
            })
            .clone()
    }
}

impl Device for Cuda {
    type Buf = CudaBuf;
    type Index = CudaIndex;

    fn name(&self) -> String {
        format!("cuda: {}", self.name)
    }

    fn upload(&self, data: &[f32]) -> CudaBuf {
        CudaBuf(RefCell::new(check("upload", self.stream.clone_htod(data))))
    }

    fn upload_index(&self, data: &[u32]) -> CudaIndex {
        CudaIndex(check("upload", self.stream.clone_htod(data)))
    }

    fn zeros(&self, len: usize) -> CudaBuf {
        CudaBuf(RefCell::new(check(
            "alloc",
            self.stream.alloc_zeros::<f32>(len),
        )))
    }

    fn len(&self, buf: &CudaBuf) -> usize {
        buf.0.borrow().len()
    }

    fn memory_budget(&self) -> Option<u64> {
        // Free memory of this context's device (the context is current on this thread).
        self.ctx.bind_to_thread().ok()?;
        cudarc::driver::result::mem_get_info()
            .ok()
            .map(|(free, _)| free as u64)
    }

    fn sync(&self) {
        check("synchronize", self.stream.synchronize());
    }

    async fn read(&self, buf: &CudaBuf) -> Vec<f32> {
        check("readback", self.stream.clone_dtoh(&*buf.0.borrow()))
    }

    fn gemm(&self, g: Gemm, a: &CudaBuf, b: &CudaBuf, c: &CudaBuf) {
        // Row-major C = op(A) op(B) is column-major Cᵀ = op(B)ᵀ op(A)ᵀ: hand
        // cuBLAS our B as its A, flags unchanged, m and n swapped.
        let op = |t: bool| if t { Op::CUBLAS_OP_T } else { Op::CUBLAS_OP_N };
        let cfg = GemmConfig {
            transa: op(g.trans_b),
            transb: op(g.trans_a),
            m: g.n as i32,
            n: g.m as i32,
            k: g.k as i32,
            alpha: g.alpha,
            lda: (if g.trans_b { g.k } else { g.n }) as i32,
            ldb: (if g.trans_a { g.m } else { g.k }) as i32,
            beta: g.beta,
            ldc: g.n as i32,
        };
        let (ab, bb, mut cb) = (a.0.borrow(), b.0.borrow(), c.0.borrow_mut());
        if g.batch == 1 {
            check("sgemm", unsafe {
                self.blas.gemm(cfg, &*bb, &*ab, &mut *cb)
            });
        } else {
            let cfg = StridedBatchedConfig {
                gemm: cfg,
                batch_size: g.batch as i32,
                stride_a: (g.k * g.n) as i64,
                stride_b: (g.m * g.k) as i64,
                stride_c: (g.m * g.n) as i64,
            };
            check("sgemm_strided_batched", unsafe {
                self.blas.gemm_strided_batched(cfg, &*bb, &*ab, &mut *cb)
            });
        }
    }

    fn csr_mm(&self, a: &Csr<Self>, b: &CudaBuf, n: usize, transpose: bool, c: &CudaBuf) {
        let (data, bb, mut cb) = (a.data.0.borrow(), b.0.borrow(), c.0.borrow_mut());
        let (rows, n32) = (a.rows as u32, n as u32);
        let name = if transpose { "csr_mm_t" } else { "csr_mm" };
        if transpose {
            check("memset", self.stream.memset_zeros(&mut *cb));
        }
        let f = self.func(name);
        let mut l = self.stream.launch_builder(&f);
        l.arg(&a.indptr.0)
            .arg(&a.indices.0)
            .arg(&*data)
            .arg(&*bb)
            .arg(&mut *cb)
            .arg(&rows)
            .arg(&n32);
        check(name, unsafe { l.launch(one_d(a.rows * n)) });
    }

    fn unary(&self, op: Unary, x: &CudaBuf, out: &CudaBuf) {
        let (xb, mut ob) = (x.0.borrow(), out.0.borrow_mut());
        let n = xb.len() as u32;
        let code = op as u32;
        let f = self.func("unary");
        let mut l = self.stream.launch_builder(&f);
        l.arg(&*xb).arg(&mut *ob).arg(&n).arg(&code);
        check("unary", unsafe { l.launch(one_d(n as usize)) });
    }

    fn binary(&self, op: Binary, a: &CudaBuf, b: &CudaBuf, out: &CudaBuf) {
        let n = a.0.borrow().len();
        self.binary_with(op, a, b, n, 0, out);
    }

    fn binary_rows(
        &self,
        op: Binary,
        a: &CudaBuf,
        v: &CudaBuf,
        rows: usize,
        cols: usize,
        out: &CudaBuf,
    ) {
        assert!(
            a.0.borrow().len() >= rows * cols && v.0.borrow().len() >= rows,
            "binary_rows: bad lengths"
        );
        if cols > 0 {
            self.binary_with(op, a, v, rows * cols, cols, out);
        }
    }

    fn reduce(&self, op: Reduce, axis: Axis, x: &CudaBuf, rows: usize, cols: usize, out: &CudaBuf) {
        let (xb, mut ob) = (x.0.borrow(), out.0.borrow_mut());
        let (r, c, code, ax) = (
            rows as u32,
            cols as u32,
            op as u32,
            u32::from(axis == Axis::Cols),
        );
        let f = self.func("reduce");
        let mut l = self.stream.launch_builder(&f);
        l.arg(&*xb)
            .arg(&mut *ob)
            .arg(&r)
            .arg(&c)
            .arg(&code)
            .arg(&ax);
        if let Some(cfg) = per_block(if axis == Axis::Rows { rows } else { cols }) {
            check("reduce", unsafe { l.launch(cfg) });
        }
    }

    fn softmax_rows(&self, x: &CudaBuf, rows: usize, cols: usize, out: &CudaBuf) {
        let (xb, mut ob) = (x.0.borrow(), out.0.borrow_mut());
        let (r, c) = (rows as u32, cols as u32);
        let f = self.func("softmax_rows");
        let mut l = self.stream.launch_builder(&f);
        l.arg(&*xb).arg(&mut *ob).arg(&r).arg(&c);
        if let Some(cfg) = per_block(rows) {
            check("softmax_rows", unsafe { l.launch(cfg) });
        }
    }

    fn gp_kernel(
        &self,
        kernel: GpKernel,
        part: KernelPart,
        dist: &CudaBuf,
        amp: &CudaBuf,
        ls: &CudaBuf,
        batch: usize,
        out: &CudaBuf,
    ) {
        let (db, ab, lb, mut ob) = (
            dist.0.borrow(),
            amp.0.borrow(),
            ls.0.borrow(),
            out.0.borrow_mut(),
        );
        let n = db.len();
        assert!(
            ab.len() >= batch && lb.len() >= batch && ob.len() >= batch * n,
            "gp_kernel: bad lengths"
        );
        let (nn, bb, kk, pp) = (n as u32, batch as u32, kernel as u32, part as u32);
        let f = self.func("gp_kernel");
        let mut l = self.stream.launch_builder(&f);
        l.arg(&*db)
            .arg(&*ab)
            .arg(&*lb)
            .arg(&mut *ob)
            .arg(&nn)
            .arg(&bb)
            .arg(&kk)
            .arg(&pp);
        if n * batch > 0 {
            check("gp_kernel", unsafe { l.launch(one_d(n * batch)) });
        }
    }

    fn cholesky(&self, a: &CudaBuf, n: usize, batch: usize, info: &CudaBuf) {
        let (mut ab, mut ib) = (a.0.borrow_mut(), info.0.borrow_mut());
        assert!(
            ab.len() >= batch * n * n && ib.len() >= batch,
            "cholesky: bad lengths"
        );
        let (nn, bb) = (n as u32, batch as u32);
        let f = self.func("cholesky");
        let mut l = self.stream.launch_builder(&f);
        l.arg(&mut *ab).arg(&mut *ib).arg(&nn).arg(&bb);
        if let Some(cfg) = per_block(if n == 0 { 0 } else { batch }) {
            check("cholesky", unsafe { l.launch(cfg) });
        }
    }

    fn trsm(&self, l: &CudaBuf, b: &CudaBuf, n: usize, k: usize, batch: usize, transpose: bool) {
        let (lb, mut bb) = (l.0.borrow(), b.0.borrow_mut());
        assert!(
            lb.len() >= batch * n * n && bb.len() >= batch * n * k,
            "trsm: bad lengths"
        );
        let (nn, kk, ba, tr) = (n as u32, k as u32, batch as u32, transpose as u32);
        let f = self.func("trsm");
        let mut launch = self.stream.launch_builder(&f);
        launch
            .arg(&*lb)
            .arg(&mut *bb)
            .arg(&nn)
            .arg(&kk)
            .arg(&ba)
            .arg(&tr);
        if n > 0 && batch * k > 0 {
            check("trsm", unsafe { launch.launch(one_d(batch * k)) });
        }
    }

    fn nmf_cd_rows(
        &self,
        w: &CudaBuf,
        hht: &CudaBuf,
        xht: &CudaBuf,
        rows: usize,
        k: usize,
        violation: &CudaBuf,
    ) {
        let (mut wb, hb, xb, mut vb) = (
            w.0.borrow_mut(),
            hht.0.borrow(),
            xht.0.borrow(),
            violation.0.borrow_mut(),
        );
        assert!(
            wb.len() >= rows * k && hb.len() >= k * k && xb.len() >= rows * k && vb.len() >= rows,
            "nmf_cd_rows: bad lengths"
        );
        let (r, kk) = (rows as u32, k as u32);
        let f = self.func("nmf_cd");
        let mut l = self.stream.launch_builder(&f);
        l.arg(&mut *wb)
            .arg(&*hb)
            .arg(&*xb)
            .arg(&mut *vb)
            .arg(&r)
            .arg(&kk);
        if rows > 0 {
            check("nmf_cd", unsafe { l.launch(one_d(rows)) });
        }
    }

    fn softmax_backward(&self, p: &CudaBuf, dp: &CudaBuf, rows: usize, cols: usize, dx: &CudaBuf) {
        let (pb, db, mut ob) = (p.0.borrow(), dp.0.borrow(), dx.0.borrow_mut());
        assert!(
            pb.len() >= rows * cols && db.len() >= rows * cols && ob.len() >= rows * cols,
            "softmax_backward: bad lengths"
        );
        let (r, c) = (rows as u32, cols as u32);
        let f = self.func("softmax_backward");
        let mut l = self.stream.launch_builder(&f);
        l.arg(&*pb).arg(&*db).arg(&mut *ob).arg(&r).arg(&c);
        if let Some(cfg) = per_block(rows) {
            check("softmax_backward", unsafe { l.launch(cfg) });
        }
    }

    fn cosine_grad(
        &self,
        axis: Axis,
        a: &CudaBuf,
        b: &CudaBuf,
        rows: usize,
        cols: usize,
        weight: f32,
        cos: &CudaBuf,
        grad: &CudaBuf,
    ) {
        assert!(
            grad.0.borrow().len() >= rows * cols,
            "cosine_grad: grad too small"
        );
        self.cosine_kernel(axis, a, b, rows, cols, weight, true, cos, grad);
    }

    fn cosine(
        &self,
        axis: Axis,
        a: &CudaBuf,
        b: &CudaBuf,
        rows: usize,
        cols: usize,
        out: &CudaBuf,
    ) {
        let placeholder = self.zeros(1);
        self.cosine_kernel(axis, a, b, rows, cols, 0.0, false, out, &placeholder);
    }

    fn gather(&self, x: &CudaBuf, idx: &CudaIndex, out: &CudaBuf) {
        let (xb, mut ob) = (x.0.borrow(), out.0.borrow_mut());
        let n = idx.0.len() as u32;
        let f = self.func("gather");
        let mut l = self.stream.launch_builder(&f);
        l.arg(&*xb).arg(&idx.0).arg(&mut *ob).arg(&n);
        check("gather", unsafe { l.launch(one_d(n as usize)) });
    }

    fn scatter_add(&self, x: &CudaBuf, idx: &CudaIndex, out: &CudaBuf) {
        let (xb, mut ob) = (x.0.borrow(), out.0.borrow_mut());
        let n = xb.len() as u32;
        let f = self.func("scatter_add");
        let mut l = self.stream.launch_builder(&f);
        l.arg(&*xb).arg(&idx.0).arg(&mut *ob).arg(&n);
        check("scatter_add", unsafe { l.launch(one_d(n as usize)) });
    }

    fn nb_loglik_grad(
        &self,
        x: &CudaBuf,
        mu: &CudaBuf,
        theta: &CudaBuf,
        rows: usize,
        cols: usize,
        ll_rows: &CudaBuf,
        grad_mu: &CudaBuf,
        grad_theta: &CudaBuf,
    ) {
        let (xb, mb, tb) = (x.0.borrow(), mu.0.borrow(), theta.0.borrow());
        let (mut lb, mut gm, mut gt) = (
            ll_rows.0.borrow_mut(),
            grad_mu.0.borrow_mut(),
            grad_theta.0.borrow_mut(),
        );
        let (r, c, nt) = (rows as u32, cols as u32, tb.len() as u32);
        let f = self.func("nb_loglik_grad");
        let mut l = self.stream.launch_builder(&f);
        l.arg(&*xb)
            .arg(&*mb)
            .arg(&*tb)
            .arg(&mut *lb)
            .arg(&mut *gm)
            .arg(&mut *gt)
            .arg(&r)
            .arg(&c)
            .arg(&nt);
        if let Some(cfg) = per_block(rows) {
            check("nb_loglik_grad", unsafe { l.launch(cfg) });
        }
    }

    fn nb_grouped(
        &self,
        x: &CudaBuf,
        seg: &CudaIndex,
        count: &CudaBuf,
        mu: &CudaBuf,
        theta: &CudaBuf,
        groups: usize,
        cols: usize,
        out: [&CudaBuf; 3],
    ) {
        let n = groups * cols;
        let (xb, cb, mb, tb) = (
            x.0.borrow(),
            count.0.borrow(),
            mu.0.borrow(),
            theta.0.borrow(),
        );
        let [mut lb, mut gm, mut gt] = out.map(|b| b.0.borrow_mut());
        assert!(
            seg.0.len() > n
                && cb.len() >= groups
                && mb.len() >= n
                && !tb.is_empty()
                && [lb.len(), gm.len(), gt.len()].iter().all(|&l| l >= n),
            "nb_grouped: bad lengths"
        );
        let (k, c, nt) = (groups as u32, cols as u32, tb.len() as u32);
        let f = self.func("nb_grouped");
        let mut l = self.stream.launch_builder(&f);
        l.arg(&*xb)
            .arg(&seg.0)
            .arg(&*cb)
            .arg(&*mb)
            .arg(&*tb)
            .arg(&mut *lb)
            .arg(&mut *gm)
            .arg(&mut *gt)
            .arg(&k)
            .arg(&c)
            .arg(&nt);
        check("nb_grouped", unsafe { l.launch(one_d(n)) });
    }

    fn poisson_loglik_grad(
        &self,
        x: &CudaBuf,
        mu: &CudaBuf,
        rows: usize,
        cols: usize,
        ll_rows: &CudaBuf,
        grad_mu: &CudaBuf,
    ) {
        let (xb, mb) = (x.0.borrow(), mu.0.borrow());
        let (mut lb, mut gm) = (ll_rows.0.borrow_mut(), grad_mu.0.borrow_mut());
        let (r, c) = (rows as u32, cols as u32);
        let f = self.func("poisson_loglik_grad");
        let mut l = self.stream.launch_builder(&f);
        l.arg(&*xb)
            .arg(&*mb)
            .arg(&mut *lb)
            .arg(&mut *gm)
            .arg(&r)
            .arg(&c);
        if let Some(cfg) = per_block(rows) {
            check("poisson_loglik_grad", unsafe { l.launch(cfg) });
        }
    }

    fn log_density(&self, d: Density, x: &CudaBuf, p1: &CudaBuf, p2: &CudaBuf, out: &CudaBuf) {
        let (xb, ab, bb, mut ob) = (
            x.0.borrow(),
            p1.0.borrow(),
            p2.0.borrow(),
            out.0.borrow_mut(),
        );
        let (n, dist, n1, n2) = (xb.len() as u32, d as u32, ab.len() as u32, bb.len() as u32);
        let f = self.func("log_density");
        let mut l = self.stream.launch_builder(&f);
        l.arg(&*xb)
            .arg(&*ab)
            .arg(&*bb)
            .arg(&mut *ob)
            .arg(&n)
            .arg(&dist)
            .arg(&n1)
            .arg(&n2);
        check("log_density", unsafe { l.launch(one_d(n as usize)) });
    }

    fn normal_draw(&self, loc: &CudaBuf, scale_raw: &CudaBuf, seed: u64, offset: u32, z: &CudaBuf) {
        let (lb, sb, mut zb) = (loc.0.borrow(), scale_raw.0.borrow(), z.0.borrow_mut());
        let n = lb.len() as u32;
        let f = self.func("normal_draw");
        let mut l = self.stream.launch_builder(&f);
        l.arg(&*lb)
            .arg(&*sb)
            .arg(&mut *zb)
            .arg(&n)
            .arg(&seed)
            .arg(&offset);
        check("normal_draw", unsafe { l.launch(one_d(n as usize)) });
    }

    fn adam(&self, p: AdamParams, param: &CudaBuf, grad: &CudaBuf, m: &CudaBuf, v: &CudaBuf) {
        let (mut wb, gb, mut mb, mut vb) = (
            param.0.borrow_mut(),
            grad.0.borrow(),
            m.0.borrow_mut(),
            v.0.borrow_mut(),
        );
        let t = p.step as i32;
        let n = wb.len() as u32;
        let lr = (p.lr as f64 * (p.lrd as f64).powi(t - 1)) as f32;
        let c1 = (1.0 - (p.beta1 as f64).powi(t)) as f32;
        let c2 = (1.0 - (p.beta2 as f64).powi(t)) as f32;
        let clip = p.clip.unwrap_or(0.0);
        let f = self.func("adam");
        let mut l = self.stream.launch_builder(&f);
        l.arg(&mut *wb)
            .arg(&*gb)
            .arg(&mut *mb)
            .arg(&mut *vb)
            .arg(&n)
            .arg(&lr)
            .arg(&p.beta1)
            .arg(&p.beta2)
            .arg(&p.eps)
            .arg(&c1)
            .arg(&c2)
            .arg(&clip);
        check("adam", unsafe { l.launch(one_d(n as usize)) });
    }

    fn random(&self, normal: bool, seed: u64, offset: u32, out: &CudaBuf) {
        let mut ob = out.0.borrow_mut();
        let (n, nm) = (ob.len() as u32, u32::from(normal));
        let f = self.func("philox_fill");
        let mut l = self.stream.launch_builder(&f);
        l.arg(&mut *ob).arg(&n).arg(&nm).arg(&seed).arg(&offset);
        check("philox_fill", unsafe { l.launch(one_d(n as usize)) });
    }
}
