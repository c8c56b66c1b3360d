//! Fused count likelihoods: elementwise terms, gradients and the per-row sum
//! in one pass over the matrix, or over the non-zeros of groups of rows.
//! WGSL twins: shaders/{nb,poisson}_loglik_grad.wgsl, shaders/nb_grouped.wgsl.

use super::{grid, grid_for, kernel, Gpu, GpuBuf, GpuIndex};

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

#[allow(clippy::too_many_arguments)]
pub(super) fn nb_grouped(
    gpu: &Gpu,
    x: &GpuBuf,
    seg: &GpuIndex,
    count: &GpuBuf,
    mu: &GpuBuf,
    theta: &GpuBuf,
    groups: usize,
    cols: usize,
    out: [&GpuBuf; 3],
) {
    let n = groups * cols;
    assert!(
        seg.len > n
            && count.len >= groups
            && mu.len >= n
            && theta.len > 0
            && out.iter().all(|b| b.len >= n),
        "nb_grouped: bad lengths"
    );
    // Rows of the group means: the same parameters as the dense kernel's.
    let p = LikParams {
        rows: groups as u32,
        cols: cols as u32,
        n_theta: theta.len as u32,
        _pad: 0,
    };
    let bufs = [
        &x.buf,
        &seg.buf,
        &count.buf,
        &mu.buf,
        &theta.buf,
        &out[0].buf,
        &out[1].buf,
        &out[2].buf,
    ];
    gpu.dispatch(
        &kernel!("nb_grouped", "common"),
        bytemuck::bytes_of(&p),
        &bufs,
        grid_for(n),
        None,
    );
}
