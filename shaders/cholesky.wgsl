// Lower Cholesky factors of `batch` n x n matrices in place, one workgroup
// per matrix, right-looking one column at a time. info[b] = 1-based column
// of the first pivot that was not positive (then NaN onwards), else 0.
// Oracle: core/src/compute/linalg.rs; params twin: core/src/compute/gpu/linalg.rs.

struct Params { n: u32, k: u32, batch: u32, transpose: u32 }  // k is 0

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> a: array<f32>;
@group(0) @binding(2) var<storage, read_write> info: array<f32>;

var<workgroup> pivot: f32;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let b = group_id(wid, nwg);
    // b is uniform across the workgroup, so barriers below stay uniform.
    if (b >= p.batch) { return; }
    let n = p.n;
    let base = b * n * n;
    var first = 0u;
    for (var j = 0u; j < n; j += 1u) {
        if (lid == 0u) {
            let d = a[base + j * n + j];
            // A runtime NaN (k is 0 here): a constant one is a shader-creation
            // error in WGSL, which Tint enforces and naga does not.
            var s = bitcast<f32>(0x7fc00000u | p.k);
            if (d > 0.0) { s = sqrt(d); } else if (first == 0u) { first = j + 1u; }
            a[base + j * n + j] = s;
            pivot = s;
        }
        storageBarrier();
        workgroupBarrier();
        let s = pivot;
        for (var i = j + 1u + lid; i < n; i += 256u) { a[base + i * n + j] = a[base + i * n + j] / s; }
        storageBarrier();
        workgroupBarrier();
        for (var i = j + 1u + lid; i < n; i += 256u) {
            let lij = a[base + i * n + j];
            for (var c = j + 1u; c <= i; c += 1u) {
                a[base + i * n + c] = a[base + i * n + c] - lij * a[base + c * n + j];
            }
        }
        storageBarrier();
        workgroupBarrier();
    }
    for (var t = lid; t < n * n; t += 256u) {
        if (t % n > t / n) { a[base + t] = 0.0; }
    }
    if (lid == 0u) { info[b] = f32(first); }
}
