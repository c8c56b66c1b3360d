// C[rows x n] = A_csr * B[cols x n]; one thread per output element.
// Params twin: core/src/compute/gpu/csr_mm.rs (CsrParams).

struct Params { rows: u32, cols: u32, n: u32, _pad: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> indptr: array<u32>;
@group(0) @binding(2) var<storage, read> indices: array<u32>;
@group(0) @binding(3) var<storage, read> data: array<f32>;
@group(0) @binding(4) var<storage, read> b: array<f32>;
@group(0) @binding(5) var<storage, read_write> c: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= p.rows * p.n) { return; }
    let r = i / p.n;
    let j = i % p.n;
    var acc = 0.0;
    for (var k = indptr[r]; k < indptr[r + 1u]; k++) {
        acc += data[k] * b[indices[k] * p.n + j];
    }
    c[i] = acc;
}
