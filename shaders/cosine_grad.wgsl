// Cosine similarity of matching rows (axis 0) or columns (axis 1) of a and b
// with norms clamped at 1e-8 (torch's rule), and, when with_grad is 1, weight
// times its gradient w.r.t. a: w * (b / (|a||b|) - cos * a / |a|^2).
// One workgroup per output. Serves both the cosine and cosine_grad ops.
// Params twin: core/src/compute/gpu/reduce.rs (CosineParams).

struct Params { rows: u32, cols: u32, axis: u32, weight: f32, with_grad: u32, _pad0: u32, _pad1: u32, _pad2: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> cos: array<f32>;
@group(0) @binding(4) var<storage, read_write> grad: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let o = group_id(wid, nwg);
    var n_out = p.rows;
    var inner = p.cols;
    if (p.axis == 1u) { n_out = p.cols; inner = p.rows; }
    if (o >= n_out) { return; }
    var ab = 0.0;
    var aa = 0.0;
    var bb = 0.0;
    for (var i = lid; i < inner; i += WG) {
        var k = o * p.cols + i;
        if (p.axis == 1u) { k = i * p.cols + o; }
        ab += a[k] * b[k];
        aa += a[k] * a[k];
        bb += b[k] * b[k];
    }
    ab = wg_reduce(lid, ab, false);
    aa = wg_reduce(lid, aa, false);
    bb = wg_reduce(lid, bb, false);
    let na = max(sqrt(aa), 1e-8);
    let nb = max(sqrt(bb), 1e-8);
    let c = ab / (na * nb);
    let cb = p.weight / (na * nb);
    let ca = -p.weight * c / (na * na);
    if (lid == 0u) { cos[o] = c; }
    if (p.with_grad == 0u) { return; }
    for (var i = lid; i < inner; i += WG) {
        var k = o * p.cols + i;
        if (p.axis == 1u) { k = i * p.cols + o; }
        grad[k] = cb * b[k] + ca * a[k];
    }
}
