// C[cols x n] += A_csrᵀ * B[rows x n]: rows scatter into C with atomic adds
// (C is cleared first). Params twin: core/src/compute/gpu/csr_mm.rs (CsrParams).

struct Params { rows: u32, cols: u32, n: u32, _pad: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> indptr: array<u32>;
@group(0) @binding(2) var<storage, read> indices: array<u32>;
@group(0) @binding(3) var<storage, read> data: array<f32>;
@group(0) @binding(4) var<storage, read> b: array<f32>;
@group(0) @binding(5) var<storage, read_write> c: array<atomic<u32>>;

fn atomic_add(i: u32, v: f32) {
    var old = atomicLoad(&c[i]);
    loop {
        let r = atomicCompareExchangeWeak(&c[i], old, bitcast<u32>(bitcast<f32>(old) + v));
        if (r.exchanged) { break; }
        old = r.old_value;
    }
}

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= p.rows * p.n) { return; }
    let r = i / p.n;
    let j = i % p.n;
    let x = b[r * p.n + j];
    for (var k = indptr[r]; k < indptr[r + 1u]; k++) {
        atomic_add(indices[k] * p.n + j, data[k] * x);
    }
}
