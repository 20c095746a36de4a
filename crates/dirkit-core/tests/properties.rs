//! Properties of LDS re-weighting that must hold for any input.

use dirkit_core::{
    Binning, DenseWeight, DenseWeightConfig, Kernel, KernelKind, LabelDensity, LdsConfig,
    Normalisation, Numerics, OutOfRange, Reweight, smooth,
};
use proptest::prelude::*;

fn kernel() -> impl Strategy<Value = Kernel> {
    (
        prop_oneof![
            Just(KernelKind::Gaussian),
            Just(KernelKind::GaussianExact),
            Just(KernelKind::Triangular),
            Just(KernelKind::Laplace),
            Just(KernelKind::Epanechnikov),
        ],
        0usize..6,
        0.1f64..5.0,
    )
        .prop_map(|(k, h, sigma)| k.with(2 * h + 1, sigma))
}

fn reweight() -> impl Strategy<Value = Reweight> {
    prop_oneof![
        Just(Reweight::INVERSE),
        Just(Reweight::SqrtInverse),
        (0.5f64..0.9999).prop_map(|beta| Reweight::EffectiveNumber { beta }),
    ]
}

fn config() -> impl Strategy<Value = LdsConfig> {
    (reweight(), proptest::option::of(kernel())).prop_map(|(reweight, lds)| LdsConfig {
        reweight,
        lds,
        numerics: Numerics::F64,
    })
}

/// Long-tailed labels: squares of uniforms, scaled, with some exact repeats.
fn labels() -> impl Strategy<Value = Vec<f64>> {
    prop::collection::vec(0.0f64..1.0, 1..400).prop_map(|u| {
        u.into_iter()
            .map(|x| (x * x * 60.0).round() / 2.0)
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn sum_normalised_smoothing_preserves_mass(
        k in kernel(),
        inner in prop::collection::vec(0.0f64..1000.0, 1..60),
    ) {
        let h = k.half_width();
        // Zero margins of h bins: no mass leaves through the zero padding.
        let mut v = vec![0.0; h];
        v.extend(&inner);
        v.extend(std::iter::repeat_n(0.0, h));
        let s = smooth(&v, &k.window(Normalisation::Sum).unwrap());
        let (a, b): (f64, f64) = (v.iter().sum(), s.iter().sum());
        prop_assert!((a - b).abs() <= 1e-9 * a.max(1.0), "{a} vs {b}");
        prop_assert!(s.iter().all(|x| *x >= 0.0));
    }

    #[test]
    fn weights_average_one(cfg in config(), y in labels(), width in prop_oneof![Just(1.0), Just(0.5), Just(2.5)]) {
        let b = Binning::auto(&y, width).unwrap();
        let fit = LabelDensity::fit(&y, b, OutOfRange::Clip, &cfg).unwrap();
        let w = fit.sample_weights(&y).unwrap();
        let mean = w.iter().sum::<f64>() / w.len() as f64;
        prop_assert!((mean - 1.0).abs() < 1e-12, "mean {mean}");
        prop_assert!(w.iter().all(|x| x.is_finite() && *x > 0.0));
        let reference = LdsConfig { numerics: Numerics::Reference, ..cfg };
        let fit = LabelDensity::fit(&y, b, OutOfRange::Clip, &reference).unwrap();
        let w = fit.sample_weights(&y).unwrap();
        let mean = w.iter().sum::<f64>() / w.len() as f64;
        prop_assert!((mean - 1.0).abs() < 1e-5, "reference mean {mean}");
    }

    #[test]
    fn permuting_the_input_leaves_the_table_unchanged(cfg in config(), y in labels(), seed in any::<u64>()) {
        let b = Binning::auto(&y, 1.0).unwrap();
        let a = LabelDensity::fit(&y, b, OutOfRange::Clip, &cfg).unwrap();
        // A seeded Fisher–Yates shuffle.
        let mut p = y.clone();
        let mut s = seed | 1;
        for i in (1..p.len()).rev() {
            s ^= s << 13; s ^= s >> 7; s ^= s << 17;
            p.swap(i, (s % (i as u64 + 1)) as usize);
        }
        let c = LabelDensity::fit(&p, b, OutOfRange::Clip, &cfg).unwrap();
        prop_assert_eq!(&a, &c);
    }

    #[test]
    fn without_lds_a_rarer_bin_never_weighs_less(rw in reweight(), y in labels()) {
        let cfg = LdsConfig { reweight: rw, lds: None, numerics: Numerics::F64 };
        let b = Binning::auto(&y, 1.0).unwrap();
        let fit = LabelDensity::fit(&y, b, OutOfRange::Clip, &cfg).unwrap();
        for i in 0..b.n_bins {
            for j in 0..b.n_bins {
                if let (Some(wi), Some(wj)) = (fit.bin_weight[i], fit.bin_weight[j])
                    && fit.counts[i] < fit.counts[j]
                {
                    prop_assert!(wi >= wj, "bin {i} (n={}) w={wi} < bin {j} (n={}) w={wj}",
                        fit.counts[i], fit.counts[j]);
                }
            }
        }
    }

    #[test]
    fn denseweight_weights_average_one_and_stay_positive(
        y in prop::collection::vec(-50.0f64..50.0, 2..200),
        alpha in 0.0f64..3.0,
    ) {
        prop_assume!(y.iter().any(|v| *v != y[0]));
        let dw = DenseWeight::fit(&y, DenseWeightConfig { alpha, ..Default::default() }).unwrap();
        let w = dw.weights(&y);
        let mean = w.iter().sum::<f64>() / w.len() as f64;
        prop_assert!((mean - 1.0).abs() < 1e-9, "mean {mean}");
        prop_assert!(w.iter().all(|x| *x > 0.0));
    }

    #[test]
    fn histogram_and_sample_fits_agree(cfg in config(), y in labels()) {
        let b = Binning::auto(&y, 1.0).unwrap();
        let a = LabelDensity::fit(&y, b, OutOfRange::Clip, &cfg).unwrap();
        let (counts, _) = b.counts(&y, OutOfRange::Clip).unwrap();
        let h = LabelDensity::from_counts(b, counts, &cfg).unwrap();
        prop_assert_eq!(a.effective_density, h.effective_density);
        prop_assert_eq!(a.bin_weight, h.bin_weight);
    }
}

/// Inputs large enough to be split across threads give the serial answers, and an error in a
/// later part still names the first offending label.
#[test]
fn large_inputs_split_across_threads_agree_with_a_naive_loop() {
    let n = 3 * dirkit_core::parallel::MIN_PER_THREAD + 7;
    let y: Vec<f64> = (0..n).map(|i| ((i * 7919) % 1000) as f64 / 10.0).collect();
    let b = Binning::new(0.0, 0.5, 200).unwrap();
    let (counts, dropped) = b.counts(&y, OutOfRange::Clip).unwrap();
    let mut naive = vec![0u64; 200];
    for &v in &y {
        naive[((v / 0.5).floor() as usize).min(199)] += 1;
    }
    assert_eq!((counts, dropped), (naive, 0));

    let fit = LabelDensity::fit(&y, b, OutOfRange::Clip, &LdsConfig::default()).unwrap();
    let w = fit.sample_weights(&y).unwrap();
    for i in (0..n).step_by(99_991) {
        assert_eq!(Some(w[i]), fit.sample_weight(y[i], i).unwrap());
    }

    let mut bad = y.clone();
    bad[n - 5] = f64::NAN;
    bad[n - 3] = 1e9;
    let e = b.counts(&bad, OutOfRange::Error).unwrap_err();
    assert!(
        matches!(e, dirkit_core::CoreError::NonFiniteLabel { index, .. } if index == n - 5),
        "{e}"
    );
    bad[n - 5] = 1.0;
    let e = b.counts(&bad, OutOfRange::Error).unwrap_err();
    assert!(
        matches!(e, dirkit_core::CoreError::LabelOutOfRange { index, .. } if index == n - 3),
        "{e}"
    );
}

#[test]
fn relevance_of_signed_zeros_subnormals_and_values_near_the_limit_stays_in_the_unit_interval() {
    let labels = [
        -0.0,
        0.0,
        76.46932127209813,
        2.2250738585072014e-308,
        5e-324,
        -121.18190072905345,
        -72.80007968675942,
        0.0,
    ];
    let near_limit = [74.04613026635545, 1e308, 1e308, 1e308, 74.0476874638525];
    let opposite = [-1.7e308, 3.0, 1.7e308, 2.0, 2.5, 2.0];
    for labels in [&labels[..], &near_limit, &opposite] {
        let phi = dirkit_core::Relevance::from_targets(labels, &Default::default()).unwrap();
        for &y in labels.iter().chain(&[0.0, -1e308, 1e308]) {
            let p = phi.phi(y);
            assert!(
                (0.0..=1.0).contains(&p),
                "φ({y:e}) = {p}: {:?}",
                phi.control_points()
            );
        }
    }
}

#[test]
fn pearson_r_and_the_nll_survive_values_near_the_f64_limits() {
    // Scale-free: r of (x, y) equals r of (1e307·x, y), though Σx² would overflow.
    let x = [1.0, 2.0, 4.0, 3.0];
    let y = [1.5, 1.0, 5.0, 2.0];
    let r = dirkit_core::pearson_r(&x, &y).unwrap();
    let big: Vec<f64> = x.iter().map(|v| v * 1e307).collect();
    let r_big = dirkit_core::pearson_r(&big, &y).unwrap();
    assert!((r - r_big).abs() < 1e-12, "{r} vs {r_big}");
    // A value at the limit next to small ones: a finite r or none, never NaN.
    let r = dirkit_core::pearson_r(&[1.51e308, 2.5, 20.0, 4.5], &[1.0, 2.0, 30.0, 4.0]);
    assert!(r.is_none_or(|r| r.is_finite()), "{r:?}");
    // A subnormal σ: σ² would underflow to 0; the NLL is large or +∞, never NaN.
    use dirkit_core::PredictiveDist;
    for dist in [PredictiveDist::Gaussian, PredictiveDist::Laplace] {
        let at_mean = dist.nll(2.0, 1.5e-323, 2.0);
        assert!(
            at_mean.is_finite() && at_mean < -700.0,
            "{dist:?}: {at_mean}"
        );
        let off = dist.nll(2.0, 1.5e-323, 2.5);
        assert!(off == f64::INFINITY, "{dist:?}: {off}");
    }
}
