//! Adam / ClippedAdam step. WGSL twin: shaders/adam.wgsl.

use super::{grid_for, kernel, Gpu, GpuBuf};
use crate::compute::AdamParams;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct AdamParamsGpu {
    n: u32,
    lr: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    /// Bias corrections 1 - beta^t, computed here in f64.
    c1: f32,
    c2: f32,
    /// <= 0 means no clipping.
    clip: f32,
}

pub(super) fn adam(gpu: &Gpu, p: AdamParams, w: &GpuBuf, g: &GpuBuf, m: &GpuBuf, v: &GpuBuf) {
    let n = w.len;
    assert!(g.len >= n && m.len >= n && v.len >= n, "adam: bad lengths");
    let t = p.step as i32;
    let q = AdamParamsGpu {
        n: n as u32,
        lr: (p.lr as f64 * (p.lrd as f64).powi(t - 1)) as f32,
        beta1: p.beta1,
        beta2: p.beta2,
        eps: p.eps,
        c1: (1.0 - (p.beta1 as f64).powi(t)) as f32,
        c2: (1.0 - (p.beta2 as f64).powi(t)) as f32,
        clip: p.clip.unwrap_or(0.0),
    };
    gpu.dispatch(
        &kernel!("adam", "common"),
        bytemuck::bytes_of(&q),
        &[&w.buf, &g.buf, &m.buf, &v.buf],
        grid_for(n),
        None,
    );
}
