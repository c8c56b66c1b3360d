// out[idx[i]] += x[i] with a compare-and-swap float add (WGSL has no f32 atomics).
// Params twin: core/src/compute/gpu/elementwise.rs (UnaryParams).

struct Params { n: u32, op: u32, _pad0: u32, _pad1: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> idx: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<atomic<u32>>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= p.n) { return; }
    let k = idx[i];
    var old = atomicLoad(&out[k]);
    loop {
        let r = atomicCompareExchangeWeak(&out[k], old, bitcast<u32>(bitcast<f32>(old) + x[i]));
        if (r.exchanged) { break; }
        old = r.old_value;
    }
}
