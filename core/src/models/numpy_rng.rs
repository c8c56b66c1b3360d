//! numpy's legacy `RandomState` normal stream (MT19937 seeded by
//! `init_genrand`, 53-bit doubles, Marsaglia's polar method with the spare
//! value cached), so a seed gives the reference tools' exact initial values:
//! Tangram draws its logits with `np.random.seed(s); np.random.normal(0, 1, n)`.

pub struct LegacyNormal {
    mt: [u32; 624],
    pos: usize,
    spare: Option<f64>,
}

impl LegacyNormal {
    pub fn new(seed: u32) -> LegacyNormal {
        let mut mt = [0u32; 624];
        mt[0] = seed;
        for i in 1..624 {
            mt[i] = 1_812_433_253u32
                .wrapping_mul(mt[i - 1] ^ (mt[i - 1] >> 30))
                .wrapping_add(i as u32);
        }
        LegacyNormal {
            mt,
            pos: 624,
            spare: None,
        }
    }

    fn twist(&mut self) {
        const UPPER: u32 = 0x8000_0000;
        const LOWER: u32 = 0x7fff_ffff;
        for i in 0..624 {
            let y = (self.mt[i] & UPPER) | (self.mt[(i + 1) % 624] & LOWER);
            let mut v = self.mt[(i + 397) % 624] ^ (y >> 1);
            if y & 1 == 1 {
                v ^= 0x9908_b0df;
            }
            self.mt[i] = v;
        }
        self.pos = 0;
    }

    pub fn next_u32(&mut self) -> u32 {
        if self.pos >= 624 {
            self.twist();
        }
        let mut y = self.mt[self.pos];
        self.pos += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }

    /// Uniform [0, 1) with 53 random bits (numpy's `random_sample`).
    pub fn next_f64(&mut self) -> f64 {
        let a = (self.next_u32() >> 5) as f64;
        let b = (self.next_u32() >> 6) as f64;
        (a * 67_108_864.0 + b) / 9_007_199_254_740_992.0
    }

    /// One standard normal (numpy's `legacy_gauss`).
    pub fn next_normal(&mut self) -> f64 {
        if let Some(v) = self.spare.take() {
            return v;
        }
        loop {
            let x1 = 2.0 * self.next_f64() - 1.0;
            let x2 = 2.0 * self.next_f64() - 1.0;
            let r2 = x1 * x1 + x2 * x2;
            if r2 < 1.0 && r2 != 0.0 {
                let f = (-2.0 * r2.ln() / r2).sqrt();
                self.spare = Some(f * x1);
                return f * x2;
            }
        }
    }

    /// Uniform on [0, max] by masked rejection (numpy's legacy `random_interval`).
    pub fn interval(&mut self, max: u32) -> u32 {
        if max == 0 {
            return 0;
        }
        let mask = u32::MAX >> max.leading_zeros();
        loop {
            let v = self.next_u32() & mask;
            if v <= max {
                return v;
            }
        }
    }

    /// `RandomState.shuffle` of a 1-D array: Fisher-Yates from the last item.
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.interval(i as u32) as usize;
            v.swap(i, j);
        }
    }

    /// `n` draws of N(0, 1) as f32, as `np.random.normal(0, 1, n).astype(float32)`.
    pub fn normals_f32(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.next_normal() as f32).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_mt19937_reference_outputs() {
        // The first outputs of init_genrand(5489), the generator's published default.
        let mut r = LegacyNormal::new(5489);
        let first: Vec<u32> = (0..3).map(|_| r.next_u32()).collect();
        assert_eq!(first, vec![3_499_211_612, 581_869_302, 3_890_346_734]);
        // The 10000th output for that seed (C++11 std::mt19937 requirement).
        let mut r = LegacyNormal::new(5489);
        let v = (0..10_000).map(|_| r.next_u32()).last().unwrap();
        assert_eq!(v, 4_123_659_995);
    }

    #[test]
    fn shuffles_are_permutations_drawn_uniformly() {
        let mut r = LegacyNormal::new(0);
        let mut hits = [0usize; 4];
        for _ in 0..4000 {
            let mut v = [0, 1, 2, 3];
            r.shuffle(&mut v);
            let mut s = v;
            s.sort_unstable();
            assert_eq!(s, [0, 1, 2, 3]);
            hits[v[0]] += 1;
        }
        assert!(hits.iter().all(|&h| (900..1100).contains(&h)), "{hits:?}");
        assert!((0..1000).all(|_| r.interval(5) <= 5));
    }

    #[test]
    fn normals_have_unit_moments() {
        let mut r = LegacyNormal::new(42);
        let v: Vec<f64> = (0..200_000).map(|_| r.next_normal()).collect();
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / v.len() as f64;
        assert!(
            mean.abs() < 0.01 && (var - 1.0).abs() < 0.01,
            "{mean} {var}"
        );
    }
}
