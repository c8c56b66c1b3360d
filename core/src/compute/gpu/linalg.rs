//! Batched Cholesky and triangular solves. WGSL twins:
//! shaders/{cholesky,trsm}.wgsl; oracle: compute/linalg.rs.

use super::{grid, grid_for, kernel, Gpu, GpuBuf};

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
