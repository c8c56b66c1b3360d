// NB log-likelihood and gradients summed over groups of rows that share a
// mean, from the non-zero counts only (Device::nb_grouped); one thread per
// (group, column). Params twin: core/src/compute/gpu/likelihood.rs (LikParams,
// rows = groups).

struct Params { groups: u32, cols: u32, n_theta: u32, _pad: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> seg: array<u32>;
@group(0) @binding(3) var<storage, read> count: array<f32>;
@group(0) @binding(4) var<storage, read> mu: array<f32>;
@group(0) @binding(5) var<storage, read> theta: array<f32>;
@group(0) @binding(6) var<storage, read_write> ll: array<f32>;
@group(0) @binding(7) var<storage, read_write> grad_mu: array<f32>;
@group(0) @binding(8) var<storage, read_write> grad_theta: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= p.groups * p.cols) { return; }
    let n = count[i / p.cols];
    let m = mu[i];
    let t = theta[i % p.n_theta];
    let inv = 1.0 / (t + m);
    let lt = log(t * inv);
    var sx = 0.0;
    var lg = 0.0;
    var dg = 0.0;
    for (var e = seg[i]; e < seg[i + 1u]; e += 1u) {
        let xv = x[e];
        sx += xv;
        // Small whole counts: the lgamma and digamma differences as short
        // sums, which keep f32 precision where the differences would not.
        if (xv < 16.0 && xv == floor(xv)) {
            for (var j = 0.0; j < xv; j += 1.0) {
                lg += log((t + j) / (j + 1.0));
                dg += 1.0 / (t + j);
            }
        } else {
            lg += lgamma(xv + t) - lgamma(t) - lgamma(xv + 1.0);
            dg += digamma(xv + t) - digamma(t);
        }
    }
    var lm = 0.0;
    if (sx > 0.0) { lm = log(m * inv); }
    ll[i] = lg + n * t * lt + sx * lm;
    grad_mu[i] = sx / m - (sx + n * t) * inv;
    grad_theta[i] = dg + n * (lt + 1.0) - (sx + n * t) * inv;
}
