//! One workgroup per output row or column: reductions, row softmax, cosine.
//! WGSL twins: shaders/{reduce,softmax_rows,softmax_backward,cosine,cosine_grad}.wgsl.

use super::{grid, kernel, Gpu, GpuBuf};
use crate::compute::{Axis, Reduce};

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
struct CosineGradParams {
    rows: u32,
    cols: u32,
    axis: u32,
    weight: f32,
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
    let n_out = outputs(axis, rows, cols);
    assert!(
        a.len >= rows * cols && b.len >= rows * cols && out.len >= n_out,
        "cosine: bad lengths"
    );
    let p = params(rows, cols, 0, axis);
    let bufs = [&a.buf, &b.buf, &out.buf];
    gpu.dispatch(
        &kernel!("cosine", "common", "workgroup"),
        bytemuck::bytes_of(&p),
        &bufs,
        grid(n_out),
        None,
    );
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
    let n_out = outputs(axis, rows, cols);
    assert!(
        a.len >= rows * cols && b.len >= rows * cols && cos.len >= n_out && grad.len >= rows * cols,
        "cosine_grad: bad lengths"
    );
    let p = CosineGradParams {
        rows: rows as u32,
        cols: cols as u32,
        axis: u32::from(axis == Axis::Cols),
        weight,
    };
    gpu.dispatch(
        &kernel!("cosine_grad", "common", "workgroup"),
        bytemuck::bytes_of(&p),
        &[&a.buf, &b.buf, &cos.buf, &grad.buf],
        grid(n_out),
        None,
    );
}
