//! The wgpu device: WGSL kernels from `shaders/` (one kernel per file, shared
//! helpers in `shaders/utils/`), run natively on Vulkan/Metal/DX12 (lavapipe
//! in CI) and in the browser on WebGPU, including inside a Web Worker.
//!
//! Every kernel's uniform block is mirrored by a `#[repr(C)]` bytemuck struct
//! in the sibling module named in the shader's header comment.

mod csr_mm;
mod elementwise;
mod gemm;
mod likelihood;
mod linalg;
mod optim;
mod random;
mod reduce;

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use wgpu::util::DeviceExt;

use super::{
    AdamParams, Axis, Binary, Csr, Density, Device, Gemm, GpKernel, KernelPart, Reduce, Unary,
};

/// A WGSL kernel: its helpers concatenated in front of the kernel file.
pub(crate) struct Kernel {
    pub name: &'static str,
    pub source: &'static str,
}

/// `kernel!("name", "util", ...)` assembles `shaders/utils/<util>.wgsl` + `shaders/<name>.wgsl`.
macro_rules! kernel {
    ($name:literal $(, $util:literal)*) => {
        $crate::compute::gpu::Kernel {
            name: $name,
            source: concat!(
                $(include_str!(concat!("../../../../shaders/utils/", $util, ".wgsl")),)*
                include_str!(concat!("../../../../shaders/", $name, ".wgsl"))
            ),
        }
    };
}
pub(crate) use kernel;

/// Threads per workgroup of the 1-D and per-row kernels (WG in common.wgsl).
const WG: usize = 256;
/// Workgroups per grid axis (WebGPU's guaranteed minimum).
const MAX_GROUPS: usize = 65_535;

pub struct Gpu {
    device: wgpu::Device,
    queue: wgpu::Queue,
    info: wgpu::AdapterInfo,
    max_binding: u64,
    pipelines: RefCell<HashMap<&'static str, (wgpu::ComputePipeline, wgpu::BindGroupLayout)>>,
    /// Dispatches recorded but not yet submitted: one submit per batch, not
    /// per kernel (a browser pays for every submit).
    pending: RefCell<Option<(wgpu::CommandEncoder, usize)>>,
    /// Why the device can no longer be trusted (lost, out of memory, an
    /// operation refused), set by wgpu's callbacks: work after it is moot,
    /// and a fit that sees it resumes on the CPU.
    lost: Arc<Mutex<Option<String>>>,
}

/// Kernels per submitted command buffer.
const BATCH: usize = 128;

#[derive(Debug)]
pub struct GpuBuf {
    buf: wgpu::Buffer,
    len: usize,
}

#[derive(Debug)]
pub struct GpuIndex {
    buf: wgpu::Buffer,
    len: usize,
}

/// The best adapter (for `surface` when given), a software one only if
/// nothing else exists: browsers hide CPU adapters unless asked for the
/// fallback. The page's plot asks through here too.
pub async fn request_adapter(
    instance: &wgpu::Instance,
    surface: Option<&wgpu::Surface<'_>>,
) -> Result<wgpu::Adapter, wgpu::RequestAdapterError> {
    let mut options = wgpu::RequestAdapterOptions {
        power_preference: wgpu::PowerPreference::HighPerformance,
        compatible_surface: surface,
        ..Default::default()
    };
    match instance.request_adapter(&options).await {
        Ok(a) => Ok(a),
        Err(_) => {
            options.force_fallback_adapter = true;
            instance.request_adapter(&options).await
        }
    }
}

impl Gpu {
    /// Opens the best adapter (a software one only if nothing else exists).
    pub async fn new() -> Result<Gpu, String> {
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle());
        let adapter = request_adapter(&instance, None)
            .await
            .map_err(|e| format!("no GPU adapter found ({e}); install a Vulkan/Metal/DX12 driver or use --device cpu"))?;
        let limits = adapter.limits();
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("tessera"),
                required_limits: limits.clone(),
                ..Default::default()
            })
            .await
            .map_err(|e| format!("the GPU adapter refused a device: {e}"))?;
        // wgpu's default handler panics; a lost or full GPU must end in a
        // notice and a CPU resume instead.
        let lost = Arc::new(Mutex::new(None::<String>));
        let note = |slot: &Arc<Mutex<Option<String>>>, why: String| {
            if let Ok(mut s) = slot.lock() {
                s.get_or_insert(why);
            }
        };
        {
            let slot = lost.clone();
            device.set_device_lost_callback(move |reason, msg| {
                note(
                    &slot,
                    format!(
                        "the GPU device was lost ({reason:?}{}{msg})",
                        if msg.is_empty() { "" } else { ": " }
                    ),
                )
            });
            let slot = lost.clone();
            device.on_uncaptured_error(Arc::new(move |e| {
                let why = match e {
                    wgpu::Error::OutOfMemory { .. } => "the GPU ran out of memory".to_string(),
                    other => format!("a GPU operation failed ({other})"),
                };
                note(&slot, why)
            }));
        }
        Ok(Gpu {
            lost,
            info: adapter.get_info(),
            max_binding: limits
                .max_storage_buffer_binding_size
                .min(limits.max_buffer_size),
            device,
            queue,
            pipelines: RefCell::new(HashMap::new()),
            pending: RefCell::new(None),
        })
    }

    /// Adapter name, backend and type, for logs and benchmark tables.
    pub fn adapter(&self) -> String {
        format!(
            "{} ({:?}, {:?})",
            self.info.name, self.info.backend, self.info.device_type
        )
    }

    /// A CPU emulation (lavapipe, SwiftShader): right answers, no speed.
    pub fn is_software(&self) -> bool {
        self.info.device_type == wgpu::DeviceType::Cpu
    }

    /// Ends the device on purpose, as a driver reset or a browser
    /// reclaiming the GPU would (the tests lose it this way).
    pub fn destroy(&self) {
        if let Ok(mut s) = self.lost.lock() {
            s.get_or_insert_with(|| "the GPU device was destroyed".into());
        }
        self.device.destroy();
    }

    /// The largest buffer one kernel can bind on this adapter, in bytes.
    pub fn max_buffer_bytes(&self) -> u64 {
        self.max_binding
    }

    /// A storage buffer holding `bytes`, or `len` zero bytes when None. One
    /// that cannot fit this adapter marks the device lost (the fit goes on
    /// on the CPU, which has no such limit) and gets a placeholder.
    fn storage(&self, bytes: Option<&[u8]>, len: u64, what: &str) -> wgpu::Buffer {
        let usage = wgpu::BufferUsages::STORAGE
            | wgpu::BufferUsages::COPY_SRC
            | wgpu::BufferUsages::COPY_DST;
        let fits = len <= self.max_binding;
        // A lost device cannot map a new buffer (wgpu's init path panics):
        // it gets a placeholder, and nothing it computes is kept.
        let live = self.lost().is_none();
        if !fits {
            if let Ok(mut s) = self.lost.lock() {
                s.get_or_insert_with(|| {
                    format!(
                        "{what}: a {len}-byte buffer cannot fit this GPU ({} bytes per binding)",
                        self.max_binding
                    )
                });
            }
        }
        // Created unmapped and filled through the queue: wgpu's mapped
        // init panics when an allocation fails, this reports it instead.
        // Zero-length bindings are invalid: keep one padding element; wgpu
        // zeroes new buffers.
        let buf = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(what),
            size: if fits && live { len.max(4) } else { 4 },
            usage,
            mapped_at_creation: false,
        });
        if let Some(b) = bytes.filter(|b| fits && live && !b.is_empty()) {
            self.queue.write_buffer(&buf, 0, b);
        }
        buf
    }

    fn pipeline(&self, k: &Kernel) -> (wgpu::ComputePipeline, wgpu::BindGroupLayout) {
        let mut cache = self.pipelines.borrow_mut();
        cache
            .entry(k.name)
            .or_insert_with(|| {
                let module = self
                    .device
                    .create_shader_module(wgpu::ShaderModuleDescriptor {
                        label: Some(k.name),
                        source: wgpu::ShaderSource::Wgsl(k.source.into()),
                    });
                let p = self
                    .device
                    .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                        label: Some(k.name),
                        layout: None,
                        module: &module,
                        entry_point: Some("main"),
                        compilation_options: Default::default(),
                        cache: None,
                    });
                let layout = p.get_bind_group_layout(0);
                (p, layout)
            })
            .clone()
    }

    /// Runs one kernel: binding 0 is the params block, 1.. the buffers in order.
    /// `clear` is zeroed first (outputs accumulated with atomics).
    pub(crate) fn dispatch(
        &self,
        k: &Kernel,
        params: &[u8],
        bufs: &[&wgpu::Buffer],
        groups: [u32; 3],
        clear: Option<&wgpu::Buffer>,
    ) {
        if groups.contains(&0) || self.lost().is_some() {
            return;
        }
        let (pipeline, layout) = self.pipeline(k);
        let uniform = self
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("params"),
                contents: params,
                usage: wgpu::BufferUsages::UNIFORM,
            });
        let mut entries = vec![wgpu::BindGroupEntry {
            binding: 0,
            resource: uniform.as_entire_binding(),
        }];
        entries.extend(bufs.iter().enumerate().map(|(i, b)| wgpu::BindGroupEntry {
            binding: i as u32 + 1,
            resource: b.as_entire_binding(),
        }));
        let bind = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(k.name),
            layout: &layout,
            entries: &entries,
        });
        let mut pending = self.pending.borrow_mut();
        let (enc, count) = pending.get_or_insert_with(|| {
            let enc = self
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None });
            (enc, 0)
        });
        if let Some(c) = clear {
            enc.clear_buffer(c, 0, None);
        }
        {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some(k.name),
                timestamp_writes: None,
            });
            pass.set_pipeline(&pipeline);
            pass.set_bind_group(0, &bind, &[]);
            pass.dispatch_workgroups(groups[0], groups[1], groups[2]);
        }
        *count += 1;
        if *count >= BATCH {
            drop(pending);
            self.flush();
        }
    }

    /// Submits the recorded kernels, plus `then` after them.
    fn flush_with(&self, then: Option<wgpu::CommandEncoder>) {
        let mut cmds = Vec::new();
        if let Some((enc, _)) = self.pending.borrow_mut().take() {
            cmds.push(enc.finish());
        }
        cmds.extend(then.map(|e| e.finish()));
        if !cmds.is_empty() {
            self.queue.submit(cmds);
        }
    }

    fn flush(&self) {
        self.flush_with(None);
    }

    /// Waits for queued work (native); a no-op in the browser, which drives the queue.
    fn wait(&self) {
        #[cfg(not(target_arch = "wasm32"))]
        let _ = self.device.poll(wgpu::PollType::wait_indefinitely());
    }
}

/// A grid of `n` workgroups laid out on x then y (each axis at most 65 535).
fn grid(n: usize) -> [u32; 3] {
    if n == 0 {
        return [0, 1, 1];
    }
    let x = n.min(MAX_GROUPS);
    let y = n.div_ceil(x);
    assert!(y <= MAX_GROUPS, "launch of {n} workgroups is too large");
    [x as u32, y as u32, 1]
}

/// Grid for one thread per element.
fn grid_for(n: usize) -> [u32; 3] {
    grid(n.div_ceil(WG))
}

impl Device for Gpu {
    type Buf = GpuBuf;
    type Index = GpuIndex;

    fn name(&self) -> String {
        format!("gpu: {}", self.adapter())
    }

    fn upload(&self, data: &[f32]) -> GpuBuf {
        GpuBuf {
            buf: self.storage(
                Some(bytemuck::cast_slice(data)),
                data.len() as u64 * 4,
                "f32 buffer",
            ),
            len: data.len(),
        }
    }

    fn upload_index(&self, data: &[u32]) -> GpuIndex {
        GpuIndex {
            buf: self.storage(
                Some(bytemuck::cast_slice(data)),
                data.len() as u64 * 4,
                "index buffer",
            ),
            len: data.len(),
        }
    }

    fn zeros(&self, len: usize) -> GpuBuf {
        GpuBuf {
            buf: self.storage(None, len as u64 * 4, "f32 buffer"),
            len,
        }
    }

    fn len(&self, buf: &GpuBuf) -> usize {
        buf.len
    }

    /// WebGPU does not report memory: a software adapter gets the host's
    /// free memory, a browser 2 GiB, a native GPU `TESSERA_GPU_MEMORY_GB` or 8 GiB.
    fn memory_budget(&self) -> Option<u64> {
        if self.info.device_type == wgpu::DeviceType::Cpu {
            return super::cpu::host_memory_available();
        }
        if cfg!(target_arch = "wasm32") {
            return Some(2 << 30);
        }
        let gb = std::env::var("TESSERA_GPU_MEMORY_GB")
            .ok()
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(8.0);
        Some((gb * (1u64 << 30) as f64) as u64)
    }

    fn max_buffer_len(&self) -> usize {
        (self.max_binding / 4) as usize
    }

    fn lost(&self) -> Option<String> {
        self.lost.lock().ok().and_then(|s| s.clone())
    }

    fn sync(&self) {
        self.flush();
        self.wait();
    }

    async fn read(&self, buf: &GpuBuf) -> Vec<f32> {
        let bytes = (buf.len * 4) as u64;
        if bytes == 0 {
            return vec![];
        }
        if self.lost().is_some() {
            return vec![f32::NAN; buf.len];
        }
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size: bytes,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut enc = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("readback"),
            });
        enc.copy_buffer_to_buffer(&buf.buf, 0, &staging, 0, bytes);
        self.flush_with(Some(enc));
        let (tx, rx) = futures_channel::oneshot::channel();
        staging.slice(..).map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        self.wait();
        // A lost device answers with NaN, never stale numbers; the fit
        // sees `lost()` before it keeps anything.
        let lost = |why: String| {
            if let Ok(mut s) = self.lost.lock() {
                s.get_or_insert(why);
            }
            vec![f32::NAN; buf.len]
        };
        match rx.await {
            Ok(Ok(())) => {}
            other => return lost(format!("a GPU readback failed ({other:?})")),
        }
        if self.lost().is_some() {
            return vec![f32::NAN; buf.len];
        }
        let out = match staging.slice(..).get_mapped_range() {
            Ok(view) => bytemuck::cast_slice::<u8, f32>(&view).to_vec(),
            Err(e) => return lost(format!("a GPU readback failed ({e:?})")),
        };
        staging.unmap();
        out
    }

    fn gemm(&self, g: Gemm, a: &GpuBuf, b: &GpuBuf, c: &GpuBuf) {
        gemm::run(self, g, a, b, c);
    }

    fn csr_mm(&self, a: &Csr<Self>, b: &GpuBuf, n: usize, transpose: bool, c: &GpuBuf) {
        csr_mm::run(self, a, b, n, transpose, c);
    }

    fn unary(&self, op: Unary, x: &GpuBuf, out: &GpuBuf) {
        elementwise::unary(self, op, x, out);
    }

    fn binary(&self, op: Binary, a: &GpuBuf, b: &GpuBuf, out: &GpuBuf) {
        elementwise::binary(self, op, a, b, out);
    }

    fn binary_rows(
        &self,
        op: Binary,
        a: &GpuBuf,
        v: &GpuBuf,
        rows: usize,
        cols: usize,
        out: &GpuBuf,
    ) {
        elementwise::binary_rows(self, op, a, v, rows, cols, out);
    }

    fn reduce(&self, op: Reduce, axis: Axis, x: &GpuBuf, rows: usize, cols: usize, out: &GpuBuf) {
        reduce::reduce(self, op, axis, x, rows, cols, out);
    }

    fn softmax_rows(&self, x: &GpuBuf, rows: usize, cols: usize, out: &GpuBuf) {
        reduce::softmax_rows(self, x, rows, cols, out);
    }

    fn gp_kernel(
        &self,
        kernel: GpKernel,
        part: KernelPart,
        dist: &GpuBuf,
        amp: &GpuBuf,
        ls: &GpuBuf,
        batch: usize,
        out: &GpuBuf,
    ) {
        linalg::gp_kernel(self, kernel, part, dist, amp, ls, batch, out);
    }

    fn cholesky(&self, a: &GpuBuf, n: usize, batch: usize, info: &GpuBuf) {
        linalg::cholesky(self, a, n, batch, info);
    }

    fn trsm(&self, l: &GpuBuf, b: &GpuBuf, n: usize, k: usize, batch: usize, transpose: bool) {
        linalg::trsm(self, l, b, n, k, batch, transpose);
    }

    fn nmf_cd_rows(
        &self,
        w: &GpuBuf,
        hht: &GpuBuf,
        xht: &GpuBuf,
        rows: usize,
        k: usize,
        violation: &GpuBuf,
    ) {
        elementwise::nmf_cd_rows(self, w, hht, xht, rows, k, violation);
    }

    fn softmax_backward(&self, p: &GpuBuf, dp: &GpuBuf, rows: usize, cols: usize, dx: &GpuBuf) {
        reduce::softmax_backward(self, p, dp, rows, cols, dx);
    }

    fn cosine(&self, axis: Axis, a: &GpuBuf, b: &GpuBuf, rows: usize, cols: usize, out: &GpuBuf) {
        reduce::cosine(self, axis, a, b, rows, cols, out);
    }

    fn cosine_grad(
        &self,
        axis: Axis,
        a: &GpuBuf,
        b: &GpuBuf,
        rows: usize,
        cols: usize,
        weight: f32,
        cos: &GpuBuf,
        grad: &GpuBuf,
    ) {
        reduce::cosine_grad(self, axis, a, b, rows, cols, weight, cos, grad);
    }

    fn gather(&self, x: &GpuBuf, idx: &GpuIndex, out: &GpuBuf) {
        elementwise::gather(self, x, idx, out);
    }

    fn scatter_add(&self, x: &GpuBuf, idx: &GpuIndex, out: &GpuBuf) {
        elementwise::scatter_add(self, x, idx, out);
    }

    fn nb_loglik_grad(
        &self,
        x: &GpuBuf,
        mu: &GpuBuf,
        theta: &GpuBuf,
        rows: usize,
        cols: usize,
        ll_rows: &GpuBuf,
        grad_mu: &GpuBuf,
        grad_theta: &GpuBuf,
    ) {
        likelihood::nb(self, x, mu, theta, rows, cols, ll_rows, grad_mu, grad_theta);
    }

    fn nb_grouped(
        &self,
        x: &GpuBuf,
        seg: &GpuIndex,
        count: &GpuBuf,
        mu: &GpuBuf,
        theta: &GpuBuf,
        groups: usize,
        cols: usize,
        out: [&GpuBuf; 3],
    ) {
        likelihood::nb_grouped(self, x, seg, count, mu, theta, groups, cols, out);
    }

    fn poisson_loglik_grad(
        &self,
        x: &GpuBuf,
        mu: &GpuBuf,
        rows: usize,
        cols: usize,
        ll_rows: &GpuBuf,
        grad_mu: &GpuBuf,
    ) {
        likelihood::poisson(self, x, mu, rows, cols, ll_rows, grad_mu);
    }

    fn log_density(&self, d: Density, x: &GpuBuf, p1: &GpuBuf, p2: &GpuBuf, out: &GpuBuf) {
        elementwise::log_density(self, d, x, p1, p2, out);
    }

    fn normal_draw(&self, loc: &GpuBuf, scale_raw: &GpuBuf, seed: u64, offset: u32, z: &GpuBuf) {
        random::normal_draw(self, loc, scale_raw, seed, offset, z);
    }

    fn adam(&self, p: AdamParams, param: &GpuBuf, grad: &GpuBuf, m: &GpuBuf, v: &GpuBuf) {
        optim::adam(self, p, param, grad, m, v);
    }

    fn random(&self, normal: bool, seed: u64, offset: u32, out: &GpuBuf) {
        random::fill(self, normal, seed, offset, out);
    }
}
