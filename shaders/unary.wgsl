// out = f(x) elementwise. Params twin: core/src/compute/gpu/elementwise.rs (UnaryParams).
// op: 0 exp, 1 log, 2 softplus, 3 sigmoid, 4 lgamma, 5 digamma, 6 sign.

struct Params { n: u32, op: u32, _pad0: u32, _pad1: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= p.n) { return; }
    let v = x[i];
    var r = 0.0;
    switch p.op {
        case 0u: { r = exp(v); }
        case 1u: { r = log(v); }
        case 2u: { r = softplus(v); }
        case 3u: { r = sigmoid(v); }
        case 4u: { r = lgamma(v); }
        case 5u: { r = digamma(v); }
        default: { r = sign(v); }
    }
    out[i] = r;
}
