//! Sparse (CSR) times dense, and its transpose. WGSL twins: shaders/csr_mm.wgsl,
//! shaders/csr_mm_t.wgsl.

use super::{grid_for, kernel, Gpu, GpuBuf};
use crate::compute::Csr;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct CsrParams {
    rows: u32,
    cols: u32,
    n: u32,
    _pad: u32,
}

pub(super) fn run(gpu: &Gpu, a: &Csr<Gpu>, b: &GpuBuf, n: usize, transpose: bool, c: &GpuBuf) {
    let p = CsrParams {
        rows: a.rows as u32,
        cols: a.cols as u32,
        n: n as u32,
        _pad: 0,
    };
    let bufs = [&a.indptr.buf, &a.indices.buf, &a.data.buf, &b.buf, &c.buf];
    if transpose {
        assert!(
            b.len >= a.rows * n && c.len >= a.cols * n,
            "csr_mm_t: buffer too small"
        );
        gpu.dispatch(
            &kernel!("csr_mm_t", "common"),
            bytemuck::bytes_of(&p),
            &bufs,
            grid_for(a.rows * n),
            Some(&c.buf),
        );
    } else {
        assert!(
            b.len >= a.cols * n && c.len >= a.rows * n,
            "csr_mm: buffer too small"
        );
        gpu.dispatch(
            &kernel!("csr_mm", "common"),
            bytemuck::bytes_of(&p),
            &bufs,
            grid_for(a.rows * n),
            None,
        );
    }
}
