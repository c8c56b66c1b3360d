// Elementwise log-densities; p1, p2 broadcast. dist: 0 Gamma(shape, rate),
// 1 Exponential(rate), 2 Normal(loc, scale).
// Params twin: core/src/compute/gpu/elementwise.rs (DensityParams).

struct Params { n: u32, dist: u32, n1: u32, n2: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> p1: array<f32>;
@group(0) @binding(3) var<storage, read> p2: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= p.n) { return; }
    let v = x[i];
    let a = p1[i % p.n1];
    let b = p2[i % p.n2];
    var r = 0.0;
    switch p.dist {
        case 0u: { r = a * log(b) - lgamma(a) + (a - 1.0) * log(v) - b * v; }
        case 1u: { r = log(a) - a * v; }
        default: {
            let z = (v - a) / b;
            r = -0.5 * z * z - log(b) - 0.91893853320467274;
        }
    }
    out[i] = r;
}
