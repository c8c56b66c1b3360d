// Shared helpers for every kernel. The Rust twin is core/src/compute/special.rs:
// same formulas and constants, so the CPU oracle is the reference.

const WG: u32 = 256u;
const PI: f32 = 3.14159265358979;

// Flat index of a 1-D launch laid out on a 2-D grid (65535 groups per axis).
fn flat_id(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * WG;
}

// Flat workgroup index of a 2-D grid of workgroups.
fn group_id(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wid.x + wid.y * nwg.x;
}

fn lanczos_sum(x: f32) -> f32 {
    var a = 0.99999999999980993;
    a += 676.5203681218851 / (x + 1.0);
    a += -1259.1392167224028 / (x + 2.0);
    a += 771.32342877765313 / (x + 3.0);
    a += -176.61502916214059 / (x + 4.0);
    a += 12.507343278686905 / (x + 5.0);
    a += -0.13857109526572012 / (x + 6.0);
    a += 9.9843695780195716e-6 / (x + 7.0);
    a += 1.5056327351493116e-7 / (x + 8.0);
    return a;
}

fn lgamma_pos(x: f32) -> f32 {
    let y = x - 1.0;
    let t = y + 7.5;
    return 0.91893853320467274 + (y + 0.5) * log(t) - t + log(lanczos_sum(y));
}

// sin and cos on [0, pi/2] by Taylor series (error < 1e-7): WGSL lets
// sin/cos be off by 2^-11 absolute, far too coarse for the reflection formula
// and Box-Muller. Twin: sincos_quarter in core/src/compute/philox.rs.
fn sin_quarter(x: f32) -> f32 {
    let x2 = x * x;
    return x * (1.0 + x2 * (-1.0 / 6.0 + x2 * (1.0 / 120.0 + x2 * (-1.0 / 5040.0 + x2 * (1.0 / 362880.0 + x2 * (-1.0 / 39916800.0))))));
}

fn cos_quarter(x: f32) -> f32 {
    let x2 = x * x;
    return 1.0 + x2 * (-0.5 + x2 * (1.0 / 24.0 + x2 * (-1.0 / 720.0 + x2 * (1.0 / 40320.0 + x2 * (-1.0 / 3628800.0 + x2 / 479001600.0)))));
}

// (sin, cos) of 2*pi*u for u in [0, 1), reduced by quadrant.
fn sincos_turn(u: f32) -> vec2<f32> {
    let q4 = 4.0 * u;
    let q = min(u32(q4), 3u);
    let x = (q4 - f32(q)) * 1.5707963267948966;
    let s = sin_quarter(x);
    let c = cos_quarter(x);
    switch q {
        case 0u: { return vec2<f32>(s, c); }
        case 1u: { return vec2<f32>(c, -s); }
        case 2u: { return vec2<f32>(-s, -c); }
        default: { return vec2<f32>(-c, s); }
    }
}

fn lgamma(x: f32) -> f32 {
    if (x < 0.5) {
        // sin(pi x) = sin of the turn x / 2.
        return log(PI / abs(sincos_turn(fract(x * 0.5)).x)) - lgamma_pos(1.0 - x);
    }
    return lgamma_pos(x);
}

fn digamma(x0: f32) -> f32 {
    var x = x0;
    var acc = 0.0;
    while (x < 10.0) {
        acc -= 1.0 / x;
        x += 1.0;
    }
    let f = 1.0 / (x * x);
    return acc + log(x) - 0.5 / x
        - f * (1.0 / 12.0 - f * (1.0 / 120.0 - f * (1.0 / 252.0 - f * (1.0 / 240.0 - f / 132.0))));
}

fn softplus(x: f32) -> f32 {
    if (x > 20.0) { return x; }
    if (x < -20.0) { return exp(x); }
    return log(1.0 + exp(x));
}

fn sigmoid(x: f32) -> f32 {
    if (x >= 0.0) { return 1.0 / (1.0 + exp(-x)); }
    let e = exp(x);
    return e / (1.0 + e);
}
