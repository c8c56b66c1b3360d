// One workgroup per output: sum, max or logsumexp along rows (axis 0: one value
// per row) or columns (axis 1). Params twin: core/src/compute/gpu/reduce.rs (ReduceParams).

struct Params { rows: u32, cols: u32, op: u32, axis: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

fn at(o: u32, i: u32) -> f32 {
    if (p.axis == 0u) { return x[o * p.cols + i]; }
    return x[i * p.cols + o];
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let o = group_id(wid, nwg);
    var n_out = p.rows;
    var inner = p.cols;
    if (p.axis == 1u) { n_out = p.cols; inner = p.rows; }
    if (o >= n_out) { return; }
    var m = NEG_MAX;
    for (var i = lid; i < inner; i += WG) { m = max(m, at(o, i)); }
    m = wg_reduce(lid, m, true);
    if (p.op == 1u) {
        if (lid == 0u) { out[o] = m; }
        return;
    }
    var s = 0.0;
    for (var i = lid; i < inner; i += WG) {
        if (p.op == 2u) { s += exp(at(o, i) - m); } else { s += at(o, i); }
    }
    s = wg_reduce(lid, s, false);
    if (lid == 0u) {
        if (p.op == 2u) { out[o] = m + log(s); } else { out[o] = s; }
    }
}
