// Tree reductions across a 256-thread workgroup. Call in uniform control flow.

var<workgroup> scratch: array<f32, 256>;

const NEG_MAX: f32 = -3.402823e38;

fn wg_reduce(lid: u32, v: f32, take_max: bool) -> f32 {
    scratch[lid] = v;
    workgroupBarrier();
    for (var s = 128u; s > 0u; s = s >> 1u) {
        if (lid < s) {
            let o = scratch[lid + s];
            if (take_max) { scratch[lid] = max(scratch[lid], o); } else { scratch[lid] = scratch[lid] + o; }
        }
        workgroupBarrier();
    }
    let r = scratch[0];
    workgroupBarrier();
    return r;
}
