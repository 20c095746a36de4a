//! Goodness-of-fit helpers shared by the sampler tests.
#![allow(dead_code)]

/// Number of draws in each frequency test.
pub const DRAWS: usize = 200_000;

/// z of the standard normal's 99.9th percentile.
const Z_999: f64 = 3.090_232_306_167_813;

/// 99.9th percentile of the chi-square distribution with `df` degrees of freedom, by the
/// Wilson–Hilferty cube approximation `df·(1 - 2/(9 df) + z·√(2/(9 df)))³`. It lies above the
/// table by at most 3.1 % (11.16 vs 10.828 at 1 df, 28.06 vs 27.877 at 9, 149.50 vs 149.45 at
/// 100), so the tests are, if anything, lenient by that much.
pub fn chi2_critical_999(df: usize) -> f64 {
    let k = df as f64;
    let a = 2.0 / (9.0 * k);
    k * (1.0 - a + Z_999 * a.sqrt()).powi(3)
}

/// How often each of `0..n` occurs in `draws`.
pub fn frequencies(draws: &[usize], n: usize) -> Vec<usize> {
    let mut f = vec![0; n];
    for &d in draws {
        f[d] += 1;
    }
    f
}

/// Pearson's chi-square of observed `counts` against probabilities `p` and its degrees of
/// freedom; cells with `p = 0` must be empty and are left out.
pub fn pearson(counts: &[usize], p: &[f64]) -> (f64, usize) {
    assert_eq!(counts.len(), p.len());
    let n: usize = counts.iter().sum();
    let mut chi2 = 0.0;
    let mut cells = 0;
    for (&c, &pi) in counts.iter().zip(p) {
        if pi == 0.0 {
            assert_eq!(c, 0, "a cell of probability 0 was drawn");
            continue;
        }
        let e = n as f64 * pi;
        chi2 += (c as f64 - e).powi(2) / e;
        cells += 1;
    }
    (chi2, cells - 1)
}

/// Asserts that `draws` (values in `0..p.len()`) fit the probabilities `p` at the 99.9 % level.
pub fn assert_fits(draws: &[usize], p: &[f64], what: &str) {
    let (chi2, df) = pearson(&frequencies(draws, p.len()), p);
    let crit = chi2_critical_999(df);
    assert!(
        chi2 < crit,
        "{what}: chi2 = {chi2:.2} >= {crit:.2} (df {df})"
    );
}

/// Bins of a long-tailed training set of 764 samples over 8 bins, bins 2 and 7 empty; samples
/// of a bin are interleaved with the others rather than contiguous.
pub fn long_tailed_bins() -> (Vec<usize>, usize) {
    let counts = [500usize, 200, 0, 50, 10, 3, 1, 0];
    let mut bins: Vec<usize> = Vec::new();
    for (b, &n) in counts.iter().enumerate() {
        bins.extend(std::iter::repeat_n(b, n));
    }
    // A fixed interleaving: position i takes element (i · 389) mod 764 (389 is coprime to 764).
    let n = bins.len();
    let mixed = (0..n).map(|i| bins[(i * 389) % n]).collect();
    (mixed, counts.len())
}

/// The bin counts of [`long_tailed_bins`].
pub fn counts_of(bins: &[usize], n_bins: usize) -> Vec<usize> {
    frequencies(bins, n_bins)
}

/// Bin of each draw.
pub fn bins_of(draws: &[usize], bins: &[usize]) -> Vec<usize> {
    draws.iter().map(|&i| bins[i]).collect()
}
