//! numpy's legacy `RandomState` normal stream (MT19937 seeded by
//! `init_genrand`, 53-bit doubles, Marsaglia's polar method with the spare
//! value cached), so a seed gives the reference tools' exact initial values:
//! Tangram draws its logits with `np.random.seed(s); np.random.normal(0, 1, n)`.

pub struct LegacyNormal {
    mt: [u32; 624],
    /// The current block's outputs, tempered all at once after each twist.
    out: [u32; 624],
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
            out: [0; 624],
            pos: 624,
            spare: None,
        }
    }

    /// The next 624 states and their tempered outputs. State i reads the
    /// new state i − 227 once past 227; splitting the block where those
    /// reads change region keeps every loop over disjoint slices, which
    /// the compiler vectorises.
    fn twist(&mut self) {
        const UPPER: u32 = 0x8000_0000;
        const LOWER: u32 = 0x7fff_ffff;
        fn mix(a: u32, b: u32, c: u32) -> u32 {
            let y = (a & UPPER) | (b & LOWER);
            c ^ (y >> 1) ^ (0u32.wrapping_sub(y & 1) & 0x9908_b0df)
        }
        let old = self.mt;
        let mut new = [0u32; 624];
        {
            let (a, rest) = new.split_at_mut(227);
            for (i, n) in a.iter_mut().enumerate() {
                *n = mix(old[i], old[i + 1], old[i + 397]);
            }
            let (b, c) = rest.split_at_mut(227);
            for (i, n) in b.iter_mut().enumerate() {
                *n = mix(old[227 + i], old[228 + i], a[i]);
            }
            let (c, last) = c.split_at_mut(169);
            for (i, n) in c.iter_mut().enumerate() {
                *n = mix(old[454 + i], old[455 + i], b[i]);
            }
            last[0] = mix(old[623], a[0], b[169]);
        }
        self.mt = new;
        for (o, &m) in self.out.iter_mut().zip(&self.mt) {
            let mut y = m;
            y ^= y >> 11;
            y ^= (y << 7) & 0x9d2c_5680;
            y ^= (y << 15) & 0xefc6_0000;
            *o = y ^ (y >> 18);
        }
        self.pos = 0;
    }

    pub fn next_u32(&mut self) -> u32 {
        if self.pos >= 624 {
            self.twist();
        }
        let y = self.out[self.pos];
        self.pos += 1;
        y
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
    /// The swap targets are drawn a block at a time with a branch-free
    /// rejection loop (each output word is tried once against the current
    /// bound; a rejected word is overwritten by the next), then applied.
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        self.shuffle_by(v.len(), |a, b| v.swap(a, b));
    }

    /// The same shuffle of a length-`n` array stored elsewhere: `swap(a, b)`
    /// exchanges its items a and b (e.g. through an index map).
    pub fn shuffle_by(&mut self, n: usize, mut swap: impl FnMut(usize, usize)) {
        let mut js = [0u32; 1024];
        let mut top = n.saturating_sub(1);
        while top >= 1 {
            let want = top.min(js.len());
            let mut k = 0;
            while k < want {
                if self.pos >= 624 {
                    self.twist();
                }
                // One mask while the bound stays in (mask / 2, mask]: only
                // the comparison then depends on the previous word.
                let mask = u32::MAX >> ((top - k) as u32).leading_zeros();
                let stop = want.min(top - (mask >> 1) as usize);
                let mut p = self.pos;
                while p < 624 && k < stop {
                    let x = self.out[p] & mask;
                    js[k] = x;
                    k += usize::from(x as usize <= top - k);
                    p += 1;
                }
                self.pos = p;
            }
            for (k, &j) in js[..want].iter().enumerate() {
                swap(top - k, j as usize);
            }
            top -= want;
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
