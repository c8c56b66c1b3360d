// Philox 4x32-10; the Rust twin is core/src/compute/philox.rs (same stream layout).

fn mulhi(a: u32, b: u32) -> u32 {
    let a_lo = a & 0xffffu;
    let a_hi = a >> 16u;
    let b_lo = b & 0xffffu;
    let b_hi = b >> 16u;
    let lo_lo = a_lo * b_lo;
    let hi_lo = a_hi * b_lo;
    let lo_hi = a_lo * b_hi;
    let cross = (lo_lo >> 16u) + (hi_lo & 0xffffu) + lo_hi;
    return a_hi * b_hi + (hi_lo >> 16u) + (cross >> 16u);
}

fn philox4x32(c0: vec4<u32>, k0: vec2<u32>) -> vec4<u32> {
    var c = c0;
    var k = k0;
    for (var r = 0u; r < 10u; r++) {
        let hi0 = mulhi(0xD2511F53u, c.x);
        let lo0 = 0xD2511F53u * c.x;
        let hi1 = mulhi(0xCD9E8D57u, c.z);
        let lo1 = 0xCD9E8D57u * c.z;
        c = vec4<u32>(hi1 ^ c.y ^ k.x, lo1, hi0 ^ c.w ^ k.y, lo0);
        k = k + vec2<u32>(0x9E3779B9u, 0xBB67AE85u);
    }
    return c;
}

fn to_uniform(x: u32) -> f32 {
    return (f32(x >> 8u) + 0.5) * (1.0 / 16777216.0);
}

fn philox_block(i: u32, seed: vec2<u32>, offset: u32) -> vec4<u32> {
    return philox4x32(vec4<u32>(i / 4u + offset, 0u, 0u, 0u), seed);
}

fn philox_uniform(i: u32, seed: vec2<u32>, offset: u32) -> f32 {
    return to_uniform(philox_block(i, seed, offset)[i % 4u]);
}

fn philox_normal(i: u32, seed: vec2<u32>, offset: u32) -> f32 {
    let b = philox_block(i, seed, offset);
    let pair = (i % 4u) / 2u;
    let u1 = to_uniform(b[2u * pair]);
    let u2 = to_uniform(b[2u * pair + 1u]);
    let r = sqrt(-2.0 * log(u1));
    let sc = sincos_turn(u2);
    if (i % 2u == 0u) { return r * sc.y; }
    return r * sc.x;
}
