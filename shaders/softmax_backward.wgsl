// Backward pass of the row softmax, one workgroup per row:
// dx = p * (dp - sum_j p_j dp_j). Params twin: core/src/compute/gpu/reduce.rs (ReduceParams).

struct Params { rows: u32, cols: u32, op: u32, axis: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> prob: array<f32>;
@group(0) @binding(2) var<storage, read> dp: array<f32>;
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let r = group_id(wid, nwg);
    if (r >= p.rows) { return; }
    let base = r * p.cols;
    var s = 0.0;
    for (var j = lid; j < p.cols; j += WG) { s += prob[base + j] * dp[base + j]; }
    s = wg_reduce(lid, s, false);
    for (var j = lid; j < p.cols; j += WG) { dx[base + j] = prob[base + j] * (dp[base + j] - s); }
}
