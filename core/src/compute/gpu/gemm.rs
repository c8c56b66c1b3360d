//! Tiled GEMM (16x16 tiles in workgroup memory). WGSL twin: shaders/gemm.wgsl.

use super::{kernel, Gpu, GpuBuf};
use crate::compute::Gemm;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct GemmParams {
    m: u32,
    n: u32,
    k: u32,
    trans_a: u32,
    trans_b: u32,
    batch: u32,
    alpha: f32,
    beta: f32,
}

pub(super) fn run(gpu: &Gpu, g: Gemm, a: &GpuBuf, b: &GpuBuf, c: &GpuBuf) {
    assert!(
        a.len >= g.batch * g.m * g.k
            && b.len >= g.batch * g.k * g.n
            && c.len >= g.batch * g.m * g.n,
        "gemm: buffer too small"
    );
    let p = GemmParams {
        m: g.m as u32,
        n: g.n as u32,
        k: g.k as u32,
        trans_a: g.trans_a.into(),
        trans_b: g.trans_b.into(),
        batch: g.batch as u32,
        alpha: g.alpha,
        beta: g.beta,
    };
    let groups = [
        g.n.div_ceil(16) as u32,
        g.m.div_ceil(16) as u32,
        g.batch as u32,
    ];
    gpu.dispatch(
        &kernel!("gemm"),
        bytemuck::bytes_of(&p),
        &[&a.buf, &b.buf, &c.buf],
        groups,
        None,
    );
}
