//! One thread per element: unary and binary maps, gather / scatter-add and
//! log-densities. WGSL twins: shaders/{unary,binary,gather,scatter_add,log_density}.wgsl.

use super::{grid_for, kernel, Gpu, GpuBuf, GpuIndex};
use crate::compute::{Binary, Density, Unary};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct UnaryParams {
    n: u32,
    op: u32,
    _pad: [u32; 2],
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct BinaryParams {
    n: u32,
    op: u32,
    nb: u32,
    /// 0: b repeats (index modulo nb); otherwise one b per row of this length.
    row_len: u32,
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct DensityParams {
    n: u32,
    dist: u32,
    n1: u32,
    n2: u32,
}

pub(super) fn unary(gpu: &Gpu, op: Unary, x: &GpuBuf, out: &GpuBuf) {
    assert!(out.len >= x.len, "unary: output too small");
    let op = match op {
        Unary::Exp => 0,
        Unary::Log => 1,
        Unary::Softplus => 2,
        Unary::Sigmoid => 3,
        Unary::Lgamma => 4,
        Unary::Digamma => 5,
        Unary::Sign => 6,
    };
    let p = UnaryParams {
        n: x.len as u32,
        op,
        _pad: [0; 2],
    };
    gpu.dispatch(
        &kernel!("unary", "common"),
        bytemuck::bytes_of(&p),
        &[&x.buf, &out.buf],
        grid_for(x.len),
        None,
    );
}

pub(super) fn binary(gpu: &Gpu, op: Binary, a: &GpuBuf, b: &GpuBuf, out: &GpuBuf) {
    assert!(out.len >= a.len && b.len > 0, "binary: bad lengths");
    binary_with(gpu, op, a, b, a.len, 0, out);
}

pub(super) fn binary_rows(
    gpu: &Gpu,
    op: Binary,
    a: &GpuBuf,
    v: &GpuBuf,
    rows: usize,
    cols: usize,
    out: &GpuBuf,
) {
    assert!(
        a.len >= rows * cols && v.len >= rows && out.len >= rows * cols,
        "binary_rows: bad lengths"
    );
    if cols > 0 {
        binary_with(gpu, op, a, v, rows * cols, cols, out);
    }
}

fn binary_with(
    gpu: &Gpu,
    op: Binary,
    a: &GpuBuf,
    b: &GpuBuf,
    n: usize,
    row_len: usize,
    out: &GpuBuf,
) {
    let op = match op {
        Binary::Add => 0,
        Binary::Sub => 1,
        Binary::Mul => 2,
        Binary::Div => 3,
        Binary::Max => 4,
    };
    let p = BinaryParams {
        n: n as u32,
        op,
        nb: b.len as u32,
        row_len: row_len as u32,
    };
    gpu.dispatch(
        &kernel!("binary", "common"),
        bytemuck::bytes_of(&p),
        &[&a.buf, &b.buf, &out.buf],
        grid_for(n),
        None,
    );
}

pub(super) fn gather(gpu: &Gpu, x: &GpuBuf, idx: &GpuIndex, out: &GpuBuf) {
    assert!(out.len >= idx.len, "gather: output too small");
    let p = UnaryParams {
        n: idx.len as u32,
        op: 0,
        _pad: [0; 2],
    };
    gpu.dispatch(
        &kernel!("gather", "common"),
        bytemuck::bytes_of(&p),
        &[&x.buf, &idx.buf, &out.buf],
        grid_for(idx.len),
        None,
    );
}

pub(super) fn scatter_add(gpu: &Gpu, x: &GpuBuf, idx: &GpuIndex, out: &GpuBuf) {
    assert!(idx.len >= x.len, "scatter_add: index too short");
    let p = UnaryParams {
        n: x.len as u32,
        op: 0,
        _pad: [0; 2],
    };
    gpu.dispatch(
        &kernel!("scatter_add", "common"),
        bytemuck::bytes_of(&p),
        &[&x.buf, &idx.buf, &out.buf],
        grid_for(x.len),
        None,
    );
}

pub(super) fn log_density(
    gpu: &Gpu,
    d: Density,
    x: &GpuBuf,
    p1: &GpuBuf,
    p2: &GpuBuf,
    out: &GpuBuf,
) {
    assert!(
        out.len >= x.len && p1.len > 0 && p2.len > 0,
        "log_density: bad lengths"
    );
    let dist = match d {
        Density::Gamma => 0,
        Density::Exponential => 1,
        Density::Normal => 2,
    };
    let p = DensityParams {
        n: x.len as u32,
        dist,
        n1: p1.len as u32,
        n2: p2.len as u32,
    };
    let bufs = [&x.buf, &p1.buf, &p2.buf, &out.buf];
    gpu.dispatch(
        &kernel!("log_density", "common"),
        bytemuck::bytes_of(&p),
        &bufs,
        grid_for(x.len),
        None,
    );
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct NmfParams {
    rows: u32,
    k: u32,
    _pad: [u32; 2],
}

pub(super) fn nmf_cd_rows(
    gpu: &Gpu,
    w: &GpuBuf,
    hht: &GpuBuf,
    xht: &GpuBuf,
    rows: usize,
    k: usize,
    violation: &GpuBuf,
) {
    assert!(
        w.len >= rows * k && hht.len >= k * k && xht.len >= rows * k && violation.len >= rows,
        "nmf_cd_rows: bad lengths"
    );
    let p = NmfParams {
        rows: rows as u32,
        k: k as u32,
        _pad: [0; 2],
    };
    gpu.dispatch(
        &kernel!("nmf_cd", "common"),
        bytemuck::bytes_of(&p),
        &[&w.buf, &hht.buf, &xht.buf, &violation.buf],
        grid_for(rows),
        None,
    );
}
