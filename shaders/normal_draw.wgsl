// Reparameterised draw of a mean-field Normal guide (Pyro's AutoNormal):
// z = loc + softplus(scale_raw) * eps, eps from the Philox normal stream.
// Params twin: core/src/compute/gpu/random.rs (RandomParams).

struct Params { n: u32, normal: u32, seed_lo: u32, seed_hi: u32, offset: u32, _p0: u32, _p1: u32, _p2: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> loc: array<f32>;
@group(0) @binding(2) var<storage, read> scale_raw: array<f32>;
@group(0) @binding(3) var<storage, read_write> z: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= p.n) { return; }
    z[i] = loc[i] + softplus(scale_raw[i]) * philox_normal(i, vec2<u32>(p.seed_lo, p.seed_hi), p.offset);
}
