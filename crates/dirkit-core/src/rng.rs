//! A small deterministic pseudo-random generator, so every random choice in dirkit takes a seed
//! and gives the same numbers on every platform and with every compiler.
//!
//! [`SplitMix64`] (Steele, Lea & Flood 2014; the reference C code is Vigna's `splitmix64.c`) has
//! a single `u64` of state and passes BigCrush; it is plenty for shuffles, initialisations and
//! synthetic data. Every derived draw uses only integer arithmetic and IEEE-754 operations that
//! are correctly rounded everywhere (`+ - * /`, `sqrt`); the logarithm in [`SplitMix64::normal`]
//! is computed here rather than by the platform's libm, whose last bit may differ between
//! systems. A stream is therefore bit-for-bit reproducible from its seed.

use serde::{Deserialize, Serialize};

/// Weyl-sequence increment of SplitMix64: the odd integer nearest 2^64 / φ.
const GOLDEN_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64 generator; `new(seed)` accepts any `u64`, including 0.
///
/// Serialisable, so a checkpoint can resume a stream exactly where it stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator whose stream is fully determined by `seed`.
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// The current position of the stream: `SplitMix64::new(g.state())` continues exactly
    /// where `g` stands.
    pub fn state(&self) -> u64 {
        self.state
    }

    /// Next 64 uniformly distributed bits (the reference `splitmix64` output function).
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GOLDEN_GAMMA);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform draw in [0, 1): the top 53 bits of [`next_u64`](Self::next_u64) times 2^-53, so
    /// every multiple of 2^-53 in the interval is equally likely.
    pub fn uniform(&mut self) -> f64 {
        const SCALE: f64 = 1.0 / (1u64 << 53) as f64;
        (self.next_u64() >> 11) as f64 * SCALE
    }

    /// Uniform integer in `0..n`, exactly unbiased (Lemire 2019, multiply-and-reject).
    ///
    /// # Panics
    /// If `n == 0`: the range is empty, which is a bug in the caller rather than bad input.
    pub fn below(&mut self, n: usize) -> usize {
        assert!(n > 0, "SplitMix64::below(0): empty range");
        let n = n as u64;
        let mut m = u128::from(self.next_u64()) * u128::from(n);
        if (m as u64) < n {
            // 2^64 mod n: the low words below it would make some results one draw more likely.
            let threshold = n.wrapping_neg() % n;
            while (m as u64) < threshold {
                m = u128::from(self.next_u64()) * u128::from(n);
            }
        }
        // The high word is < n, which came from a usize.
        (m >> 64) as usize
    }

    /// Standard normal draw (mean 0, variance 1) by Marsaglia's polar method.
    ///
    /// Each call consumes two or more uniforms (4/π pairs on average) and returns one value; the
    /// second value of the pair is discarded so the generator's state stays a single `u64`.
    pub fn normal(&mut self) -> f64 {
        loop {
            let u = 2.0 * self.uniform() - 1.0;
            let v = 2.0 * self.uniform() - 1.0;
            let s = u * u + v * v;
            if s > 0.0 && s < 1.0 {
                return u * (-2.0 * ln(s) / s).sqrt();
            }
        }
    }

    /// Shuffles `items` in place, every permutation equally likely (Fisher–Yates, from the end).
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i + 1);
            items.swap(i, j);
        }
    }
}

/// `ln 2` rounded to 32 significant bits (≈ 0.693147180369), so `k · LN2_HI` is exact for any
/// binary exponent `k` of an f64 (fdlibm's split).
const LN2_HI: f64 = f64::from_bits(0x3FE6_2E42_FEE0_0000);
/// `ln 2 - LN2_HI` (≈ 1.9082149292705877e-10).
const LN2_LO: f64 = f64::from_bits(0x3DEA_39EF_3579_3C76);

/// Natural logarithm of a finite `x > 0` from basic IEEE operations only, so it is the same on
/// every platform (within about one ulp of the true value).
///
/// `x = 2^e · m` with `m` in (√2/2, √2], then `ln m = 2 atanh(s)` with `s = (m - 1)/(m + 1)`,
/// `|s| < 0.172`, summed as an odd series to 25th order (the next term is below 1e-19 · |s|).
fn ln(x: f64) -> f64 {
    debug_assert!(x > 0.0 && x.is_finite());
    let (x, mut e) = if x < f64::MIN_POSITIVE {
        (x * (1u64 << 54) as f64, -54i64)
    } else {
        (x, 0)
    };
    let bits = x.to_bits();
    e += ((bits >> 52) & 0x7ff) as i64 - 1023;
    let mut m = f64::from_bits((bits & 0x000F_FFFF_FFFF_FFFF) | 0x3FF0_0000_0000_0000);
    if m > std::f64::consts::SQRT_2 {
        m *= 0.5;
        e += 1;
    }
    let s = (m - 1.0) / (m + 1.0);
    let s2 = s * s;
    let mut series = 0.0;
    for j in (1..=12u32).rev() {
        series = series * s2 + 1.0 / f64::from(2 * j + 1);
    }
    let ln_m = 2.0 * s + 2.0 * s * s2 * series;
    let e = e as f64;
    e * LN2_HI + (ln_m + e * LN2_LO)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_zero_matches_the_reference_splitmix64() {
        // Published first output of Vigna's splitmix64.c with state 0.
        assert_eq!(SplitMix64::new(0).next_u64(), 0xE220_A839_7B1D_CDAF);
    }

    #[test]
    fn seed_1234567_matches_the_reference_stream() {
        // Widely quoted test vector of splitmix64.c (seed 1234567).
        let mut rng = SplitMix64::new(1_234_567);
        let got: Vec<u64> = (0..5).map(|_| rng.next_u64()).collect();
        assert_eq!(
            got,
            [
                6_457_827_717_110_365_317,
                3_203_168_211_198_807_973,
                9_817_491_932_198_370_423,
                4_593_380_528_125_082_431,
                16_408_922_859_458_223_821,
            ]
        );
    }

    #[test]
    fn fixed_streams_never_change() {
        let mut rng = SplitMix64::new(0);
        let got: Vec<u64> = (0..4).map(|_| rng.next_u64()).collect();
        assert_eq!(got, SEED0_U64);
        let mut rng = SplitMix64::new(42);
        let got: Vec<u64> = (0..4).map(|_| rng.next_u64()).collect();
        assert_eq!(got, SEED42_U64);
        let mut rng = SplitMix64::new(42);
        let got: Vec<u64> = (0..4).map(|_| rng.uniform().to_bits()).collect();
        assert_eq!(got, SEED42_UNIFORM_BITS);
        let mut rng = SplitMix64::new(42);
        let got: Vec<usize> = (0..8).map(|_| rng.below(10)).collect();
        assert_eq!(got, SEED42_BELOW10);
        let mut rng = SplitMix64::new(42);
        let got: Vec<u64> = (0..4).map(|_| rng.normal().to_bits()).collect();
        assert_eq!(got, SEED42_NORMAL_BITS);
        let mut rng = SplitMix64::new(42);
        let mut perm: Vec<usize> = (0..10).collect();
        rng.shuffle(&mut perm);
        assert_eq!(perm, SEED42_SHUFFLE10);
    }

    // Values this implementation gives; any change to them breaks every seeded result.
    const SEED0_U64: [u64; 4] = [
        0xE220_A839_7B1D_CDAF,
        0x6E78_9E6A_A1B9_65F4,
        0x06C4_5D18_8009_454F,
        0xF88B_B8A8_724C_81EC,
    ];
    const SEED42_U64: [u64; 4] = [
        13_679_457_532_755_275_413,
        2_949_826_092_126_892_291,
        5_139_283_748_462_763_858,
        6_349_198_060_258_255_764,
    ];
    // 0.7415648787718233, 0.1599103928769201, 0.27860113025513866, 0.34419071652363753
    const SEED42_UNIFORM_BITS: [u64; 4] = [
        0x3FE7_BAE6_44C5_FD6D,
        0x3FC4_77F1_99D9_3378,
        0x3FD1_D499_D5C4_C3E6,
        0x3FD6_0738_7FC3_92B8,
    ];
    const SEED42_BELOW10: [usize; 8] = [7, 1, 2, 3, 0, 8, 2, 8];
    // 0.49295065581737485, -1.2810773478777024, -0.6018779810957331, -1.5423606818352653
    const SEED42_NORMAL_BITS: [u64; 4] = [
        0x3FDF_8C80_E851_C08C,
        0xBFF4_7F4A_F60C_7F94,
        0xBFE3_4295_9C9F_A344,
        0xBFF8_AD82_64F1_E64D,
    ];
    const SEED42_SHUFFLE10: [usize; 10] = [8, 3, 6, 5, 4, 0, 9, 2, 1, 7];

    #[test]
    fn uniform_mean_and_variance_within_four_standard_errors() {
        let n = 100_000;
        let mut rng = SplitMix64::new(7);
        let xs: Vec<f64> = (0..n).map(|_| rng.uniform()).collect();
        assert!(xs.iter().all(|&x| (0.0..1.0).contains(&x)));
        let nf = n as f64;
        let mean = xs.iter().sum::<f64>() / nf;
        let var = xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / nf;
        // Var(mean) = 1/(12 n); Var(sample variance) ≈ (μ4 - σ⁴)/n = (1/80 - 1/144)/n = 1/(180 n).
        assert!(
            (mean - 0.5).abs() < 4.0 * (1.0 / (12.0 * nf)).sqrt(),
            "{mean}"
        );
        assert!(
            (var - 1.0 / 12.0).abs() < 4.0 * (1.0 / (180.0 * nf)).sqrt(),
            "{var}"
        );
    }

    #[test]
    fn normal_mean_and_variance_within_four_standard_errors() {
        let n = 100_000;
        let mut rng = SplitMix64::new(11);
        let xs: Vec<f64> = (0..n).map(|_| rng.normal()).collect();
        let nf = n as f64;
        let mean = xs.iter().sum::<f64>() / nf;
        let var = xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / nf;
        // Var(mean) = 1/n; Var(sample variance) ≈ (μ4 - σ⁴)/n = 2/n.
        assert!(mean.abs() < 4.0 / nf.sqrt(), "{mean}");
        assert!((var - 1.0).abs() < 4.0 * (2.0 / nf).sqrt(), "{var}");
    }

    #[test]
    fn below_is_uniform_by_chi_square() {
        let n = 100_000;
        let mut rng = SplitMix64::new(3);
        let mut counts = [0usize; 10];
        for _ in 0..n {
            counts[rng.below(10)] += 1;
        }
        let expected = n as f64 / 10.0;
        let chi2: f64 = counts
            .iter()
            .map(|&c| (c as f64 - expected).powi(2) / expected)
            .sum();
        // 99.9th percentile of chi-square with 9 degrees of freedom.
        assert!(chi2 < 27.877, "chi2 = {chi2}, counts = {counts:?}");
    }

    #[test]
    fn below_edge_cases() {
        let mut rng = SplitMix64::new(5);
        assert!((0..100).all(|_| rng.below(1) == 0));
        let big = usize::MAX / 3 * 2;
        assert!((0..100).all(|_| rng.below(big) < big));
    }

    #[test]
    fn shuffle_is_a_permutation() {
        let mut rng = SplitMix64::new(9);
        for len in [0, 1, 2, 7, 100] {
            let mut v: Vec<usize> = (0..len).collect();
            rng.shuffle(&mut v);
            let mut sorted = v.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, (0..len).collect::<Vec<_>>());
        }
        let mut v: Vec<usize> = (0..100).collect();
        rng.shuffle(&mut v);
        assert_ne!(v, (0..100).collect::<Vec<_>>());
    }

    #[test]
    fn portable_ln_agrees_with_libm() {
        let mut rng = SplitMix64::new(13);
        let specials = [
            1.0,
            0.5,
            2.0,
            std::f64::consts::SQRT_2,
            1e-300,
            5e-324,
            1e300,
        ];
        let draws = (0..10_000).map(|_| rng.uniform() + 1e-12);
        for x in specials.into_iter().chain(draws) {
            let (a, b) = (ln(x), x.ln());
            assert!(
                (a - b).abs() <= 2.0 * f64::EPSILON * b.abs().max(1e-300),
                "{x}: {a} {b}"
            );
        }
        assert_eq!(ln(1.0), 0.0);
    }
}
