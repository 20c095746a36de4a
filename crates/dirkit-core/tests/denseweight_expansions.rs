//! DenseWeight above 2048 distinct labels sums the KDE by Hermite expansions of boxes of labels;
//! these tests hold it to the term-by-term sum (`density_exact`) on inputs that stress each
//! part: heavy boxes (moments), sparse boxes (term by term), duplicated labels, far tails.

use dirkit_core::{Bandwidth, DenseWeight, DenseWeightConfig, SplitMix64};

fn exponential_tail(n: usize, seed: u64) -> Vec<f64> {
    let mut rng = SplitMix64::new(seed);
    (0..n)
        .map(|_| {
            // Mostly a narrow bump, with an exponential right tail and some repeats.
            let u = rng.uniform();
            if u < 0.7 {
                30.0 + 4.0 * rng.normal()
            } else if u < 0.95 {
                30.0 - 25.0 * (1.0 - rng.uniform()).ln()
            } else {
                (60.0 + 10.0 * rng.uniform()).round()
            }
        })
        .collect()
}

/// Largest |fast - exact| / exact over `points`.
fn max_rel_err(dw: &DenseWeight, points: &[f64]) -> f64 {
    points
        .iter()
        .map(|&y| {
            let exact = dw.density_exact(y);
            (dw.density(y) - exact).abs() / exact
        })
        .fold(0.0, f64::max)
}

#[test]
fn expansions_match_the_exact_sum_at_every_training_label() {
    let labels = exponential_tail(5000, 1);
    for bandwidth in [
        Bandwidth::Silverman,
        Bandwidth::Fixed(0.05),
        Bandwidth::Fixed(8.0),
    ] {
        let config = DenseWeightConfig {
            bandwidth,
            ..DenseWeightConfig::default()
        };
        let dw = DenseWeight::fit(&labels, config).unwrap();
        assert!(dw.uses_expansions(), "{bandwidth:?}");
        let err = max_rel_err(&dw, &labels);
        assert!(err < 1e-13, "{bandwidth:?}: max relative error {err:e}");
        // Weights: the same formula on the exact densities.
        let exact: Vec<f64> = labels.iter().map(|&y| dw.density_exact(y)).collect();
        let lo = exact.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = exact.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let w_star: Vec<f64> = exact
            .iter()
            .map(|p| (1.0 - (p - lo) / (hi - lo)).max(1e-6))
            .collect();
        let mean = w_star.iter().sum::<f64>() / w_star.len() as f64;
        let got = dw.weights(&labels);
        for (i, (g, w)) in got.iter().zip(&w_star).enumerate() {
            assert!(
                (g - w / mean).abs() <= 1e-12,
                "{bandwidth:?} label {i}: {g} vs {}",
                w / mean
            );
        }
        let avg = got.iter().sum::<f64>() / got.len() as f64;
        assert!((avg - 1.0).abs() < 1e-12, "mean weight {avg}");
    }
}

#[test]
fn expansions_match_between_and_beyond_the_training_labels() {
    let labels = exponential_tail(4000, 2);
    let dw = DenseWeight::fit(&labels, DenseWeightConfig::default()).unwrap();
    assert!(dw.uses_expansions());
    let h = dw.bandwidth;
    let lo = labels.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = labels.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let peak = dw.density_max;
    // A grid through the data and 12 bandwidths beyond each end, where the density falls by
    // e^-72: the error is bounded absolutely, so it is checked against the peak there.
    let steps = 3000;
    for i in 0..=steps {
        let y = lo - 12.0 * h + (hi - lo + 24.0 * h) * i as f64 / steps as f64;
        let (fast, exact) = (dw.density(y), dw.density_exact(y));
        assert!(
            (fast - exact).abs() <= 1e-13 * exact + 1e-16 * peak,
            "y = {y}: {fast:e} vs {exact:e}"
        );
    }
    // Far beyond every label: no overflow, and 0 as the exact sum.
    for y in [hi + 1e6 * h, lo - 1e6 * h, 1e300, -1e300] {
        assert_eq!(dw.density(y), dw.density_exact(y), "y = {y}");
    }
}

#[test]
fn heavy_duplicates_and_a_single_dense_box() {
    // 3000 distinct labels within one bandwidth of each other, one of them repeated 100,000
    // times: every box is summed by moments and their mass spans five orders of magnitude.
    let mut labels: Vec<f64> = (0..3000).map(|i| 10.0 + i as f64 * 1e-4).collect();
    labels.extend(std::iter::repeat_n(10.1, 100_000));
    labels.extend((0..50).map(|i| 20.0 + i as f64));
    let dw = DenseWeight::fit(&labels, DenseWeightConfig::default()).unwrap();
    assert!(dw.uses_expansions());
    let mut distinct = labels.clone();
    distinct.sort_by(f64::total_cmp);
    distinct.dedup();
    let err = max_rel_err(&dw, &distinct);
    assert!(err < 1e-13, "max relative error {err:e}");
}

#[test]
fn extreme_spreads_give_finite_weights_or_an_error() {
    let mut rng = SplitMix64::new(5);
    let cases: Vec<Vec<f64>> = vec![
        (0..3000)
            .map(|_| (rng.uniform() - 0.5) * f64::MAX * 1.9)
            .collect(),
        (0..3000).map(|_| rng.uniform() * 1e-300).collect(),
        (0..3000)
            .map(|i| if i < 2990 { i as f64 * 1e-9 } else { 1e300 })
            .collect(),
    ];
    for (c, labels) in cases.iter().enumerate() {
        for bandwidth in [Bandwidth::Silverman, Bandwidth::Fixed(1e-300)] {
            let config = DenseWeightConfig {
                bandwidth,
                ..DenseWeightConfig::default()
            };
            if let Ok(dw) = DenseWeight::fit(labels, config) {
                let w = dw.weights(labels);
                assert!(
                    w.iter().all(|v| v.is_finite() && *v > 0.0),
                    "case {c} {bandwidth:?}: {:?}",
                    w.iter().find(|v| !(v.is_finite() && **v > 0.0))
                );
            }
        }
    }
}
