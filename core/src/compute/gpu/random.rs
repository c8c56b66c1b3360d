//! Philox streams and reparameterised guide draws. WGSL twins:
//! shaders/{random,normal_draw}.wgsl (with shaders/utils/philox.wgsl).

use super::{grid_for, kernel, Gpu, GpuBuf};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct RandomParams {
    n: u32,
    normal: u32,
    seed_lo: u32,
    seed_hi: u32,
    offset: u32,
    _pad: [u32; 3],
}

fn params(n: usize, normal: bool, seed: u64, offset: u32) -> RandomParams {
    RandomParams {
        n: n as u32,
        normal: normal.into(),
        seed_lo: seed as u32,
        seed_hi: (seed >> 32) as u32,
        offset,
        _pad: [0; 3],
    }
}

pub(super) fn fill(gpu: &Gpu, normal: bool, seed: u64, offset: u32, out: &GpuBuf) {
    let p = params(out.len, normal, seed, offset);
    gpu.dispatch(
        &kernel!("random", "common", "philox"),
        bytemuck::bytes_of(&p),
        &[&out.buf],
        grid_for(out.len),
        None,
    );
}

pub(super) fn normal_draw(
    gpu: &Gpu,
    loc: &GpuBuf,
    scale_raw: &GpuBuf,
    seed: u64,
    offset: u32,
    z: &GpuBuf,
) {
    assert!(
        scale_raw.len >= loc.len && z.len >= loc.len,
        "normal_draw: bad lengths"
    );
    let p = params(loc.len, true, seed, offset);
    let bufs = [&loc.buf, &scale_raw.buf, &z.buf];
    gpu.dispatch(
        &kernel!("normal_draw", "common", "philox"),
        bytemuck::bytes_of(&p),
        &bufs,
        grid_for(loc.len),
        None,
    );
}
