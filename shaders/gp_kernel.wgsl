// GP kernel matrices of `batch` factors over one distance matrix (n values):
// out[b*n + i] = k(dist[i]; amp[b], ls[b]) or its derivative (part 1: amp,
// 2: length scale). kernel 0: Matern-3/2, 1: exponentiated quadratic.
// Oracle: special::gp_kernel; params twin: core/src/compute/gpu/linalg.rs.

struct Params { n: u32, batch: u32, kernel: u32, part: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> dist: array<f32>;
@group(0) @binding(2) var<storage, read> amp: array<f32>;
@group(0) @binding(3) var<storage, read> ls: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= p.n * p.batch) { return; }
    let b = i / p.n;
    let d = dist[i % p.n];
    let a = amp[b];
    let l = ls[b];
    var k = 0.0;
    var dk = 0.0;
    if (p.kernel == 0u) {
        let t = sqrt(3.0) * d / l;
        let e = exp(-t);
        k = (1.0 + t) * e;
        dk = t * t * e / l;
    } else {
        let z2 = (d / l) * (d / l);
        k = exp(-0.5 * z2);
        dk = k * z2 / l;
    }
    var r = a * a * k;
    if (p.part == 1u) { r = 2.0 * a * k; } else if (p.part == 2u) { r = a * a * dk; }
    out[i] = r;
}
