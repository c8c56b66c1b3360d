//! One workgroup per output row or column: reductions, row softmax, cosine.
//! WGSL twins: shaders/{reduce,softmax_rows,softmax_backward,cosine_grad}.wgsl.

use super::{grid, kernel, Gpu, GpuBuf};
use crate::compute::{Axis, Device, Reduce};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct ReduceParams {
    rows: u32,
    cols: u32,
    op: u32,
    axis: u32,
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct CosineParams {
    rows: u32,
    cols: u32,
    axis: u32,
    weight: f32,
    /// 0: cosines only (the grad binding is a placeholder).
    with_grad: u32,
    _pad: [u32; 3],
}

fn params(rows: usize, cols: usize, op: u32, axis: Axis) -> ReduceParams {
    ReduceParams {
        rows: rows as u32,
        cols: cols as u32,
        op,
        axis: u32::from(axis == Axis::Cols),
    }
}

fn outputs(axis: Axis, rows: usize, cols: usize) -> usize {
    if axis == Axis::Rows {
        rows
    } else {
        cols
    }
}

pub(super) fn reduce(
    gpu: &Gpu,
    op: Reduce,
    axis: Axis,
    x: &GpuBuf,
    rows: usize,
    cols: usize,
    out: &GpuBuf,
) {
    let n_out = outputs(axis, rows, cols);
    assert!(
        x.len >= rows * cols && out.len >= n_out,
        "reduce: bad lengths"
    );
    let op = match op {
        Reduce::Sum => 0,
        Reduce::Max => 1,
        Reduce::LogSumExp => 2,
    };
    let p = params(rows, cols, op, axis);
    gpu.dispatch(
        &kernel!("reduce", "common", "workgroup"),
        bytemuck::bytes_of(&p),
        &[&x.buf, &out.buf],
        grid(n_out),
        None,
    );
}

pub(super) fn softmax_rows(gpu: &Gpu, x: &GpuBuf, rows: usize, cols: usize, out: &GpuBuf) {
    assert!(
        x.len >= rows * cols && out.len >= rows * cols,
        "softmax_rows: bad lengths"
    );
    let p = params(rows, cols, 0, Axis::Rows);
    gpu.dispatch(
        &kernel!("softmax_rows", "common", "workgroup"),
        bytemuck::bytes_of(&p),
        &[&x.buf, &out.buf],
        grid(rows),
        None,
    );
}

pub(super) fn cosine(
    gpu: &Gpu,
    axis: Axis,
    a: &GpuBuf,
    b: &GpuBuf,
    rows: usize,
    cols: usize,
    out: &GpuBuf,
) {
    assert!(
        a.len >= rows * cols && b.len >= rows * cols && out.len >= outputs(axis, rows, cols),
        "cosine: bad lengths"
    );
    let placeholder = gpu.zeros(1);
    cosine_kernel(gpu, axis, a, b, rows, cols, 0.0, false, out, &placeholder);
}

pub(super) fn softmax_backward(
    gpu: &Gpu,
    p: &GpuBuf,
    dp: &GpuBuf,
    rows: usize,
    cols: usize,
    dx: &GpuBuf,
) {
    assert!(
        p.len >= rows * cols && dp.len >= rows * cols && dx.len >= rows * cols,
        "softmax_backward: bad lengths"
    );
    let prm = params(rows, cols, 0, Axis::Rows);
    gpu.dispatch(
        &kernel!("softmax_backward", "common", "workgroup"),
        bytemuck::bytes_of(&prm),
        &[&p.buf, &dp.buf, &dx.buf],
        grid(rows),
        None,
    );
}

#[allow(clippy::too_many_arguments)]
pub(super) fn cosine_grad(
    gpu: &Gpu,
    axis: Axis,
    a: &GpuBuf,
    b: &GpuBuf,
    rows: usize,
    cols: usize,
    weight: f32,
    cos: &GpuBuf,
    grad: &GpuBuf,
) {
    assert!(
        a.len >= rows * cols
            && b.len >= rows * cols
            && cos.len >= outputs(axis, rows, cols)
            && grad.len >= rows * cols,
        "cosine_grad: bad lengths"
    );
    cosine_kernel(gpu, axis, a, b, rows, cols, weight, true, cos, grad);
}

#[allow(clippy::too_many_arguments)]
fn cosine_kernel(
    gpu: &Gpu,
    axis: Axis,
    a: &GpuBuf,
    b: &GpuBuf,
    rows: usize,
    cols: usize,
    weight: f32,
    with_grad: bool,
    cos: &GpuBuf,
    grad: &GpuBuf,
) {
    let p = CosineParams {
        rows: rows as u32,
        cols: cols as u32,
        axis: u32::from(axis == Axis::Cols),
        weight,
        with_grad: u32::from(with_grad),
        _pad: [0; 3],
    };
    gpu.dispatch(
        &kernel!("cosine_grad", "common", "workgroup"),
        bytemuck::bytes_of(&p),
        &[&a.buf, &b.buf, &cos.buf, &grad.buf],
        grid(outputs(axis, rows, cols)),
        None,
    );
}
