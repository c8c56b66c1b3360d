//! Special functions shared by every device: the WGSL and CUDA kernels use the
//! same formulas (and constants), so a CPU result is the reference for both.
//!
//! lgamma: Lanczos (g = 7, n = 9) with reflection below 0.5.
//! digamma: recurrence up to x >= 10, then the asymptotic series.

const LANCZOS_G: f64 = 7.0;
const LANCZOS: [f64; 9] = [
    0.999_999_999_999_809_9,
    676.520_368_121_885_1,
    -1_259.139_216_722_402_8,
    771.323_428_777_653_1,
    -176.615_029_162_140_6,
    12.507_343_278_686_905,
    -0.138_571_095_265_720_12,
    9.984_369_578_019_572e-6,
    1.505_632_735_149_311_6e-7,
];

/// ln |Γ(x)|.
pub fn lgamma(x: f64) -> f64 {
    if x < 0.5 {
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin().abs()).ln() - lgamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = LANCZOS[0];
    let t = x + LANCZOS_G + 0.5;
    for (i, c) in LANCZOS.iter().enumerate().skip(1) {
        a += c / (x + i as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

/// ln x for positive normal x, NaN elsewhere (zero, subnormal, infinite,
/// negative or NaN): callers send those to `f64::ln`. Straight-line code
/// with no calls, so loops over it vectorise; within a few ulp of `ln`.
///
/// x = 2^k m with m in [√½, √2), f = m − 1, s = f/(2+f), and
/// ln(1+f) = 2 atanh s = f − s(f − R), R = Σ_{n≥1} 2 s^{2n}/(2n+1),
/// summed to n = 9 (|s| ≤ 0.172, so the rest is below 1e-17).
#[inline(always)]
pub fn ln_poly(x: f64) -> f64 {
    // ln 2 split so that k·LN2_HI is exact for every exponent (its low 21
    // bits are zero) and LN2_LO carries the rest.
    const LN2_HI: f64 = f64::from_bits(0x3fe6_2e42_fee0_0000);
    const LN2_LO: f64 = f64::from_bits(0x3dea_39ef_3579_3c76);
    // Adding 1.0's bits minus √½'s carries m ≥ √½ into the next exponent.
    const SHIFT: u64 = 0x3ff0_0000_0000_0000 - 0x3fe6_a09e_667f_3bcd;
    let bits = x.to_bits();
    let e = bits.wrapping_add(SHIFT) >> 52;
    let m = f64::from_bits(bits.wrapping_sub(e << 52).wrapping_add(1023 << 52));
    // e < 2^11: exact through the 2^52 trick (no 64-bit integer conversion).
    let k = f64::from_bits(0x4330_0000_0000_0000 | e) - 4_503_599_627_370_496.0 - 1023.0;
    let f = m - 1.0;
    let s = f / (2.0 + f);
    let z = s * s;
    const C: [f64; 8] = [
        2.0 / 17.0,
        2.0 / 15.0,
        2.0 / 13.0,
        2.0 / 11.0,
        2.0 / 9.0,
        2.0 / 7.0,
        2.0 / 5.0,
        2.0 / 3.0,
    ];
    let mut r = 2.0 / 19.0;
    for c in C {
        r = r * z + c;
    }
    let r = r * z;
    let v = k * LN2_HI + (f - (s * (f - r) - k * LN2_LO));
    if (f64::MIN_POSITIVE..=f64::MAX).contains(&x) {
        v
    } else {
        f64::NAN
    }
}

/// ψ(x) = d/dx ln Γ(x), for x > 0.
pub fn digamma(mut x: f64) -> f64 {
    let mut acc = 0.0;
    while x < 10.0 {
        acc -= 1.0 / x;
        x += 1.0;
    }
    acc + digamma_asymptotic(x, x.ln())
}

/// ψ(x) by its asymptotic series, given ln x (callers with a vectorisable
/// logarithm pass their own); accurate to f64 for x ≥ 10.
#[inline(always)]
pub fn digamma_asymptotic(x: f64, ln_x: f64) -> f64 {
    let f = 1.0 / (x * x);
    ln_x - 0.5 / x
        - f * (1.0 / 12.0 - f * (1.0 / 120.0 - f * (1.0 / 252.0 - f * (1.0 / 240.0 - f / 132.0))))
}

/// ln(1 + e^x) without overflow.
pub fn softplus(x: f64) -> f64 {
    if x > 20.0 {
        x
    } else if x < -20.0 {
        x.exp()
    } else {
        x.exp().ln_1p()
    }
}

pub fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// erfc(x): the Maclaurin series of erf below 2.5, the continued fraction
/// of erfc above (both to ~1e-13 relative).
pub fn erfc(x: f64) -> f64 {
    if x < 0.0 {
        return 2.0 - erfc(-x);
    }
    if x < 2.5 {
        // erf x = 2/√π Σ (−1)^n x^(2n+1) / (n! (2n+1))
        let (mut term, mut sum, x2) = (x, x, x * x);
        for n in 1..200 {
            term *= -x2 / n as f64;
            let add = term / (2 * n + 1) as f64;
            sum += add;
            if add.abs() < 1e-17 * sum.abs() {
                break;
            }
        }
        return 1.0 - sum * std::f64::consts::FRAC_2_SQRT_PI;
    }
    // erfc x = e^(−x²)/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + ...)))), evaluated from the tail.
    let mut f = x;
    for k in (1..=80).rev() {
        f = x + (k as f64 / 2.0) / f;
    }
    (-x * x).exp() / (std::f64::consts::PI.sqrt() * f)
}

/// P(Z <= z) for a standard normal Z.
pub fn norm_cdf(z: f64) -> f64 {
    0.5 * erfc(-z / std::f64::consts::SQRT_2)
}

/// The GP kernels of [`super::Device::gp_kernel`] in f64 (the WGSL and
/// CUDA twins are in shaders/{,cuda/}gp_kernel).
pub fn gp_kernel(kernel: super::GpKernel, part: super::KernelPart, d: f64, a: f64, l: f64) -> f64 {
    use super::{GpKernel, KernelPart};
    let (k, dk_dl) = match kernel {
        GpKernel::Matern32 => {
            let t = 3f64.sqrt() * d / l;
            let e = (-t).exp();
            ((1.0 + t) * e, t * t * e / l)
        }
        GpKernel::Rbf => {
            let z2 = (d / l).powi(2);
            let k = (-0.5 * z2).exp();
            (k, k * z2 / l)
        }
    };
    match part {
        KernelPart::Value => a * a * k,
        KernelPart::Amplitude => 2.0 * a * k,
        KernelPart::LengthScale => a * a * dk_dl,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ln_poly_matches_ln_and_refuses_what_it_cannot_take() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut worst = 0f64;
        for i in 0..200_000 {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            // Every exponent of a normal number, and many values near 1.
            let x = if i % 2 == 0 {
                f64::from_bits((state >> 12) | (((state % 2045) + 1) << 52))
            } else {
                1.0 + ((state >> 11) as f64 / (1u64 << 53) as f64 - 0.5) * 1e-3
            };
            let (a, b) = (ln_poly(x), x.ln());
            worst = worst.max((a - b).abs() / b.abs().max(f64::MIN_POSITIVE));
        }
        assert!(worst < 4.0 * f64::EPSILON, "relative error {worst:e}");
        for x in [1.0, f64::MIN_POSITIVE, f64::MAX, 0.5f64.sqrt(), 2f64.sqrt()] {
            assert!(
                (ln_poly(x) - x.ln()).abs() <= 4.0 * f64::EPSILON * x.ln().abs(),
                "{x}"
            );
        }
        for x in [0.0, -1.0, 1e-310, f64::INFINITY, f64::NAN] {
            assert!(ln_poly(x).is_nan(), "{x}");
        }
    }

    #[test]
    fn lgamma_matches_known_values() {
        // Γ(1) = Γ(2) = 1, Γ(5) = 24, Γ(1/2) = √π.
        assert!(lgamma(1.0).abs() < 1e-12);
        assert!(lgamma(2.0).abs() < 1e-12);
        assert!((lgamma(5.0) - 24f64.ln()).abs() < 1e-12);
        assert!((lgamma(0.5) - std::f64::consts::PI.sqrt().ln()).abs() < 1e-12);
        assert!((lgamma(100.0) - 359.134_205_369_575_4).abs() < 1e-9);
        assert!((lgamma(1e-3) - 6.907_178_885_383_854).abs() < 1e-9);
    }

    #[test]
    fn digamma_is_the_derivative_of_lgamma() {
        assert!((digamma(1.0) + 0.577_215_664_901_532_9).abs() < 1e-12);
        for &x in &[0.01f64, 0.3, 1.7, 6.5, 42.0] {
            let h = 1e-5 * x.max(1.0);
            let fd = (lgamma(x + h) - lgamma(x - h)) / (2.0 * h);
            assert!(
                (fd - digamma(x)).abs() < 1e-6 * digamma(x).abs().max(1.0),
                "x = {x}"
            );
        }
    }

    #[test]
    fn normal_cdf_matches_quadrature() {
        // Simpson's rule on the density from -12 (where the mass is ~1e-33).
        let pdf = |t: f64| (-0.5 * t * t).exp() / (2.0 * std::f64::consts::PI).sqrt();
        for z in [-9.0, -5.5, -3.0, -1.7, -0.3, 0.0, 0.4, 1.96, 3.3, 6.0] {
            let (a, n) = (-12.0f64, 20_000);
            let h = (z - a) / n as f64;
            let mut s = pdf(a) + pdf(z);
            for i in 1..n {
                s += pdf(a + i as f64 * h) * if i % 2 == 1 { 4.0 } else { 2.0 };
            }
            let want = s * h / 3.0;
            let got = norm_cdf(z);
            assert!(
                (got - want).abs() <= 1e-11 * want.max(1e-300) + 1e-16,
                "{z}: {got} vs {want}"
            );
        }
        assert!((norm_cdf(1.959_963_984_540_054) - 0.975).abs() < 1e-14);
        assert_eq!(erfc(0.0), 1.0);
    }

    #[test]
    fn softplus_and_sigmoid_are_stable() {
        assert_eq!(softplus(100.0), 100.0);
        assert!((softplus(0.0) - 2f64.ln()).abs() < 1e-15);
        assert!(softplus(-100.0) > 0.0);
        assert!((sigmoid(0.0) - 0.5).abs() < 1e-15);
        assert!(sigmoid(-800.0) >= 0.0 && sigmoid(800.0) <= 1.0);
    }
}
