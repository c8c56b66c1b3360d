// One coordinate-descent sweep of NMF (scikit-learn's "cd" solver) over the
// rows of w (rows x k), one invocation per row: for t = 0..k-1,
// grad = -xht[i,t] + sum_r hht[t,r] w[i,r]; w[i,t] = max(w[i,t] - grad / hht[t,t], 0).
// violation[i] = sum_t |projected gradient|. Params twin:
// core/src/compute/gpu/elementwise.rs (NmfParams).

struct Params { rows: u32, k: u32, _pad0: u32, _pad1: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> w: array<f32>;
@group(0) @binding(2) var<storage, read> hht: array<f32>;
@group(0) @binding(3) var<storage, read> xht: array<f32>;
@group(0) @binding(4) var<storage, read_write> violation: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= p.rows) { return; }
    let base = i * p.k;
    var v = 0.0;
    for (var t = 0u; t < p.k; t += 1u) {
        var grad = -xht[base + t];
        for (var r = 0u; r < p.k; r += 1u) { grad += hht[t * p.k + r] * w[base + r]; }
        let cur = w[base + t];
        var pg = grad;
        if (cur == 0.0) { pg = min(0.0, grad); }
        v += abs(pg);
        let hess = hht[t * p.k + t];
        if (hess != 0.0) { w[base + t] = max(cur - grad / hess, 0.0); }
    }
    violation[i] = v;
}
