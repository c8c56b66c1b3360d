// C = alpha * op(A) * op(B) + beta * C, batched over workgroup z.
// Params twin: core/src/compute/gpu/gemm.rs (GemmParams).

struct Params {
    m: u32, n: u32, k: u32, trans_a: u32,
    trans_b: u32, batch: u32, alpha: f32, beta: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;

const T: u32 = 16u;
var<workgroup> tile_a: array<array<f32, 16>, 16>;
var<workgroup> tile_b: array<array<f32, 16>, 16>;

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let row = wid.y * T + lid.y;
    let col = wid.x * T + lid.x;
    let ao = wid.z * p.m * p.k;
    let bo = wid.z * p.k * p.n;
    let co = wid.z * p.m * p.n;
    var acc = 0.0;
    let tiles = (p.k + T - 1u) / T;
    for (var t = 0u; t < tiles; t++) {
        let ka = t * T + lid.x;
        var av = 0.0;
        if (row < p.m && ka < p.k) {
            if (p.trans_a != 0u) { av = a[ao + ka * p.m + row]; } else { av = a[ao + row * p.k + ka]; }
        }
        tile_a[lid.y][lid.x] = av;
        let kb = t * T + lid.y;
        var bv = 0.0;
        if (kb < p.k && col < p.n) {
            if (p.trans_b != 0u) { bv = b[bo + col * p.k + kb]; } else { bv = b[bo + kb * p.n + col]; }
        }
        tile_b[lid.y][lid.x] = bv;
        workgroupBarrier();
        for (var j = 0u; j < T; j++) {
            acc += tile_a[lid.y][j] * tile_b[j][lid.x];
        }
        workgroupBarrier();
    }
    if (row < p.m && col < p.n) {
        let i = co + row * p.n + col;
        var prev = 0.0;
        if (p.beta != 0.0) { prev = p.beta * c[i]; }
        c[i] = p.alpha * acc + prev;
    }
}
