//! GP kernel matrices, batched Cholesky and triangular solves. WGSL twins:
//! shaders/{gp_kernel,cholesky,trsm}.wgsl; oracles: special::gp_kernel and
//! compute/linalg.rs.

use super::{grid, grid_for, kernel, Gpu, GpuBuf};
use crate::compute::{GpKernel, KernelPart};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct KernelParams {
    n: u32,
    batch: u32,
    kernel: u32,
    part: u32,
}

#[allow(clippy::too_many_arguments)]
pub(super) fn gp_kernel(
    gpu: &Gpu,
    kernel: GpKernel,
    part: KernelPart,
    dist: &GpuBuf,
    amp: &GpuBuf,
    ls: &GpuBuf,
    batch: usize,
    out: &GpuBuf,
) {
    let n = dist.len;
    assert!(
        amp.len >= batch && ls.len >= batch && out.len >= batch * n,
        "gp_kernel: bad lengths"
    );
    let p = KernelParams {
        n: n as u32,
        batch: batch as u32,
        kernel: kernel as u32,
        part: part as u32,
    };
    gpu.dispatch(
        &kernel!("gp_kernel", "common"),
        bytemuck::bytes_of(&p),
        &[&dist.buf, &amp.buf, &ls.buf, &out.buf],
        grid_for(batch * n),
        None,
    );
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    k: u32,
    batch: u32,
    transpose: u32,
}

pub(super) fn cholesky(gpu: &Gpu, a: &GpuBuf, n: usize, batch: usize, info: &GpuBuf) {
    assert!(
        a.len >= batch * n * n && info.len >= batch,
        "cholesky: bad lengths"
    );
    let p = Params {
        n: n as u32,
        k: 0,
        batch: batch as u32,
        transpose: 0,
    };
    gpu.dispatch(
        &kernel!("cholesky", "common"),
        bytemuck::bytes_of(&p),
        &[&a.buf, &info.buf],
        grid(if n == 0 { 0 } else { batch }),
        None,
    );
}

pub(super) fn trsm(
    gpu: &Gpu,
    l: &GpuBuf,
    b: &GpuBuf,
    n: usize,
    k: usize,
    batch: usize,
    transpose: bool,
) {
    assert!(
        l.len >= batch * n * n && b.len >= batch * n * k,
        "trsm: bad lengths"
    );
    let p = Params {
        n: n as u32,
        k: k as u32,
        batch: batch as u32,
        transpose: transpose as u32,
    };
    gpu.dispatch(
        &kernel!("trsm", "common"),
        bytemuck::bytes_of(&p),
        &[&l.buf, &b.buf],
        grid_for(if n == 0 { 0 } else { batch * k }),
        None,
    );
}
