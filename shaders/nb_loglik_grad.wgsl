// Gamma-Poisson (NB) log-likelihood of counts x with mean mu and concentration
// theta (broadcast), fused with the per-row sum; writes both gradients.
// One workgroup per row. Params twin: core/src/compute/gpu/likelihood.rs (LikParams).

struct Params { rows: u32, cols: u32, n_theta: u32, _pad: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> mu: array<f32>;
@group(0) @binding(3) var<storage, read> theta: array<f32>;
@group(0) @binding(4) var<storage, read_write> ll_rows: array<f32>;
@group(0) @binding(5) var<storage, read_write> grad_mu: array<f32>;
@group(0) @binding(6) var<storage, read_write> grad_theta: array<f32>;

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
        let t = theta[i % p.n_theta];
        let lt = log(t / (t + m));
        acc += lgamma(xv + t) - lgamma(t) - lgamma(xv + 1.0) + t * lt + xv * log(m / (t + m));
        grad_mu[i] = xv / m - (xv + t) / (t + m);
        grad_theta[i] = digamma(xv + t) - digamma(t) + lt + 1.0 - (xv + t) / (t + m);
    }
    acc = wg_reduce(lid, acc, false);
    if (lid == 0u) { ll_rows[r] = acc; }
}
