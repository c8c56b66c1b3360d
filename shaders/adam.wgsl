// One Adam step in place (ClippedAdam when clip > 0: gradients clamped).
// lr already includes the decay; c1, c2 are the bias corrections 1 - beta^t.
// Params twin: core/src/compute/gpu/optim.rs (AdamParamsGpu).

struct Params { n: u32, lr: f32, beta1: f32, beta2: f32, eps: f32, c1: f32, c2: f32, clip: f32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> w: array<f32>;
@group(0) @binding(2) var<storage, read> g: array<f32>;
@group(0) @binding(3) var<storage, read_write> m: array<f32>;
@group(0) @binding(4) var<storage, read_write> v: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= p.n) { return; }
    var gi = g[i];
    if (p.clip > 0.0) { gi = clamp(gi, -p.clip, p.clip); }
    let mi = p.beta1 * m[i] + (1.0 - p.beta1) * gi;
    let vi = p.beta2 * v[i] + (1.0 - p.beta2) * gi * gi;
    w[i] = w[i] - p.lr * (mi / p.c1) / (sqrt(vi / p.c2) + p.eps);
    m[i] = mi;
    v[i] = vi;
}
