// Poisson log-likelihood per row and its gradient w.r.t. the rate; one
// workgroup per row. Params twin: core/src/compute/gpu/likelihood.rs (LikParams).

struct Params { rows: u32, cols: u32, n_theta: u32, _pad: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> mu: array<f32>;
@group(0) @binding(3) var<storage, read_write> ll_rows: array<f32>;
@group(0) @binding(4) var<storage, read_write> grad_mu: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let r = group_id(wid, nwg);
    if (r >= p.rows) { return; }
    var acc = 0.0;
    for (var j = lid; j < p.cols; j += WG) {
        let i = r * p.cols + j;
        let xv = x[i];
        let m = mu[i];
        acc += xv * log(m) - m - lgamma(xv + 1.0);
        grad_mu[i] = xv / m - 1.0;
    }
    acc = wg_reduce(lid, acc, false);
    if (lid == 0u) { ll_rows[r] = acc; }
}
