//! Philox 4x32-10 (Salmon et al. 2011, "Parallel random numbers: as easy as
//! 1, 2, 3"): a counter-based generator, so element i of a stream is a pure
//! function of (seed, counter) and every device draws the same numbers.
//!
//! Stream layout: element i uses counter (i / 4 + offset, 0, 0, 0) and word
//! i % 4. Uniforms are (u32 >> 8 + 0.5) / 2^24 in (0, 1); normals use
//! Box-Muller on the pair of words (2j, 2j + 1) of the same block.

const M0: u32 = 0xD251_1F53;
const M1: u32 = 0xCD9E_8D57;
const W0: u32 = 0x9E37_79B9;
const W1: u32 = 0xBB67_AE85;

fn mulhilo(a: u32, b: u32) -> (u32, u32) {
    let p = a as u64 * b as u64;
    ((p >> 32) as u32, p as u32)
}

/// Ten rounds of Philox 4x32 on `ctr` with key `key`.
pub fn philox4x32(mut ctr: [u32; 4], mut key: [u32; 2]) -> [u32; 4] {
    for _ in 0..10 {
        let (hi0, lo0) = mulhilo(M0, ctr[0]);
        let (hi1, lo1) = mulhilo(M1, ctr[2]);
        ctr = [hi1 ^ ctr[1] ^ key[0], lo1, hi0 ^ ctr[3] ^ key[1], lo0];
        key = [key[0].wrapping_add(W0), key[1].wrapping_add(W1)];
    }
    ctr
}

fn key(seed: u64) -> [u32; 2] {
    [seed as u32, (seed >> 32) as u32]
}

/// Uniform in (0, 1) from the top 24 bits: exactly representable in f32.
pub fn to_uniform(x: u32) -> f32 {
    ((x >> 8) as f32 + 0.5) * (1.0 / 16_777_216.0)
}

/// Element `i` of the uniform stream.
pub fn uniform(seed: u64, offset: u32, i: usize) -> f32 {
    uniform4(seed, offset, i / 4)[i % 4]
}

/// (sin, cos) of 2π·u for u in [0, 1): quadrant reduction and Taylor series
/// on [0, π/2], the same arithmetic as `sincos_turn` in shaders/utils/common.wgsl
/// (WGSL's own sin/cos may be off by 2^-11).
pub fn sincos_turn(u: f32) -> (f32, f32) {
    let q4 = 4.0 * u;
    let q = (q4 as u32).min(3);
    let x = (q4 - q as f32) * std::f32::consts::FRAC_PI_2;
    let x2 = x * x;
    let s = x
        * (1.0
            + x2 * (-1.0 / 6.0
                + x2 * (1.0 / 120.0
                    + x2 * (-1.0 / 5040.0 + x2 * (1.0 / 362_880.0 + x2 * (-1.0 / 39_916_800.0))))));
    let c = 1.0
        + x2 * (-0.5
            + x2 * (1.0 / 24.0
                + x2 * (-1.0 / 720.0
                    + x2 * (1.0 / 40_320.0 + x2 * (-1.0 / 3_628_800.0 + x2 / 479_001_600.0)))));
    match q {
        0 => (s, c),
        1 => (c, -s),
        2 => (-s, -c),
        _ => (-c, s),
    }
}

/// Element `i` of the standard-normal stream.
pub fn normal(seed: u64, offset: u32, i: usize) -> f32 {
    let block = philox4x32([((i / 4) as u32).wrapping_add(offset), 0, 0, 0], key(seed));
    let pair = (i % 4) / 2;
    let (u1, u2) = (to_uniform(block[2 * pair]), to_uniform(block[2 * pair + 1]));
    let r = (-2.0 * u1.ln()).sqrt();
    let (sin, cos) = sincos_turn(u2);
    if i.is_multiple_of(2) {
        r * cos
    } else {
        r * sin
    }
}

/// Elements 4b..4b+4 of the standard-normal stream: one Philox block, two
/// Box–Muller pairs (cosine for even elements, sine for odd).
pub fn normal4(seed: u64, offset: u32, b: usize) -> [f32; 4] {
    let block = philox4x32([(b as u32).wrapping_add(offset), 0, 0, 0], key(seed));
    let mut out = [0.0; 4];
    for pair in 0..2 {
        let (u1, u2) = (to_uniform(block[2 * pair]), to_uniform(block[2 * pair + 1]));
        let r = (-2.0 * u1.ln()).sqrt();
        let (sin, cos) = sincos_turn(u2);
        out[2 * pair] = r * cos;
        out[2 * pair + 1] = r * sin;
    }
    out
}

/// Elements 4b..4b+4 of the uniform stream.
pub fn uniform4(seed: u64, offset: u32, b: usize) -> [f32; 4] {
    philox4x32([(b as u32).wrapping_add(offset), 0, 0, 0], key(seed)).map(to_uniform)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_of_four_are_the_per_element_streams() {
        for (seed, offset) in [(7u64, 0u32), (1 << 40, 5), (3, u32::MAX - 2)] {
            for b in [0usize, 1, 17, 1 << 20] {
                let (n, u) = (normal4(seed, offset, b), uniform4(seed, offset, b));
                for j in 0..4 {
                    assert_eq!(n[j].to_bits(), normal(seed, offset, 4 * b + j).to_bits());
                    assert_eq!(u[j].to_bits(), uniform(seed, offset, 4 * b + j).to_bits());
                }
            }
        }
    }

    #[test]
    fn matches_the_random123_known_answer() {
        // Known-answer vectors of Random123 for philox4x32-10.
        assert_eq!(
            philox4x32([0; 4], [0; 2]),
            [0x6627_e8d5, 0xe169_c58d, 0xbc57_ac4c, 0x9b00_dbd8]
        );
        assert_eq!(
            philox4x32([0xffff_ffff; 4], [0xffff_ffff; 2]),
            [0x408f_276d, 0x41c8_3b0e, 0xa20b_c7c6, 0x6d54_51fd]
        );
        assert_eq!(
            philox4x32(
                [0x243f_6a88, 0x85a3_08d3, 0x1319_8a2e, 0x0370_7344],
                [0xa409_3822, 0x299f_31d0]
            ),
            [0xd16c_fe09, 0x94fd_cceb, 0x5001_e420, 0x2412_6ea1]
        );
    }

    #[test]
    fn sincos_turn_is_accurate() {
        for k in 0..10_000 {
            let u = k as f32 / 10_000.0;
            let (s, c) = sincos_turn(u);
            let a = std::f64::consts::TAU * u as f64;
            assert!(
                (s as f64 - a.sin()).abs() < 3e-7 && (c as f64 - a.cos()).abs() < 3e-7,
                "u = {u}"
            );
        }
    }

    #[test]
    fn streams_have_the_right_moments() {
        let n = 200_000;
        let u: Vec<f64> = (0..n).map(|i| uniform(42, 0, i) as f64).collect();
        let z: Vec<f64> = (0..n).map(|i| normal(42, 0, i) as f64).collect();
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        let var = |v: &[f64]| {
            let m = mean(v);
            v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / v.len() as f64
        };
        assert!((mean(&u) - 0.5).abs() < 0.005 && (var(&u) - 1.0 / 12.0).abs() < 0.002);
        assert!(mean(&z).abs() < 0.01 && (var(&z) - 1.0).abs() < 0.01);
        assert!(u.iter().all(|&x| x > 0.0 && x < 1.0));
        assert_ne!(uniform(42, 0, 5), uniform(43, 0, 5));
        assert_eq!(
            uniform(42, 1, 0),
            uniform(42, 0, 4),
            "offset counts blocks of four"
        );
    }
}
