// out = a op b elementwise, b broadcast by index modulo its length, or one b
// per row of length row_len when row_len > 0.
// Params twin: core/src/compute/gpu/elementwise.rs (BinaryParams). op: 0 add, 1 sub, 2 mul, 3 div, 4 max.

struct Params { n: u32, op: u32, nb: u32, row_len: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= p.n) { return; }
    let x = a[i];
    var y = 0.0;
    if (p.row_len > 0u) { y = b[i / p.row_len]; } else { y = b[i % p.nb]; }
    var r = 0.0;
    switch p.op {
        case 0u: { r = x + y; }
        case 1u: { r = x - y; }
        case 2u: { r = x * y; }
        case 3u: { r = x / y; }
        default: { r = max(x, y); }
    }
    out[i] = r;
}
