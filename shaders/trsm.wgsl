// Solves L X = B (L^T X = B when transpose) in place in b for `batch`
// lower-triangular n x n L and n x k B, one invocation per column of B.
// Oracle: core/src/compute/linalg.rs; params twin: core/src/compute/gpu/linalg.rs.

struct Params { n: u32, k: u32, batch: u32, transpose: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> l: array<f32>;
@group(0) @binding(2) var<storage, read_write> x: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let id = flat_id(gid, nwg);
    if (id >= p.batch * p.k) { return; }
    let n = p.n;
    let k = p.k;
    let lb = (id / k) * n * n;
    let xb = (id / k) * n * k + id % k;
    for (var r = 0u; r < n; r += 1u) {
        var i = r;
        if (p.transpose != 0u) { i = n - 1u - r; }
        var s = x[xb + i * k];
        if (p.transpose != 0u) {
            for (var q = i + 1u; q < n; q += 1u) { s -= l[lb + q * n + i] * x[xb + q * k]; }
        } else {
            for (var q = 0u; q < i; q += 1u) { s -= l[lb + i * n + q] * x[xb + q * k]; }
        }
        x[xb + i * k] = s / l[lb + i * n + i];
    }
}
