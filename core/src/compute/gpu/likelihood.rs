//! Fused count likelihoods: elementwise terms, gradients and the per-row sum
//! in one pass over the matrix. WGSL twins: shaders/{nb,poisson}_loglik_grad.wgsl.

use super::{grid, kernel, Gpu, GpuBuf};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct LikParams {
    rows: u32,
    cols: u32,
    n_theta: u32,
    _pad: u32,
}

#[allow(clippy::too_many_arguments)]
pub(super) fn nb(
    gpu: &Gpu,
    x: &GpuBuf,
    mu: &GpuBuf,
    theta: &GpuBuf,
    rows: usize,
    cols: usize,
    ll: &GpuBuf,
    gm: &GpuBuf,
    gt: &GpuBuf,
) {
    let n = rows * cols;
    assert!(
        x.len >= n && mu.len >= n && theta.len > 0 && ll.len >= rows && gm.len >= n && gt.len >= n,
        "nb_loglik_grad: bad lengths"
    );
    let p = LikParams {
        rows: rows as u32,
        cols: cols as u32,
        n_theta: theta.len as u32,
        _pad: 0,
    };
    let bufs = [&x.buf, &mu.buf, &theta.buf, &ll.buf, &gm.buf, &gt.buf];
    gpu.dispatch(
        &kernel!("nb_loglik_grad", "common", "workgroup"),
        bytemuck::bytes_of(&p),
        &bufs,
        grid(rows),
        None,
    );
}

pub(super) fn poisson(
    gpu: &Gpu,
    x: &GpuBuf,
    mu: &GpuBuf,
    rows: usize,
    cols: usize,
    ll: &GpuBuf,
    gm: &GpuBuf,
) {
    let n = rows * cols;
    assert!(
        x.len >= n && mu.len >= n && ll.len >= rows && gm.len >= n,
        "poisson_loglik_grad: bad lengths"
    );
    let p = LikParams {
        rows: rows as u32,
        cols: cols as u32,
        n_theta: 1,
        _pad: 0,
    };
    let bufs = [&x.buf, &mu.buf, &ll.buf, &gm.buf];
    gpu.dispatch(
        &kernel!("poisson_loglik_grad", "common", "workgroup"),
        bytemuck::bytes_of(&p),
        &bufs,
        grid(rows),
        None,
    );
}
