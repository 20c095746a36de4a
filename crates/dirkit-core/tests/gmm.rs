//! The 1-D Gaussian mixture of Balanced MSE's GAI: parameter recovery, determinism, edge rules.

use dirkit_core::{CoreError, Gmm1d, GmmConfig, SplitMix64};

const PI: [f64; 3] = [0.5, 0.3, 0.2];
const MU: [f64; 3] = [4.0, 9.0, 15.0];
const VAR: [f64; 3] = [1.0, 2.25, 4.0];

/// `n` draws of the well-separated reference mixture, from a seeded stream.
fn sample(n: usize, seed: u64) -> Vec<f64> {
    let mut rng = SplitMix64::new(seed);
    (0..n)
        .map(|_| {
            let u = rng.uniform();
            let j = if u < PI[0] {
                0
            } else if u < PI[0] + PI[1] {
                1
            } else {
                2
            };
            MU[j] + VAR[j].sqrt() * rng.normal()
        })
        .collect()
}

fn cfg(k: usize, seed: u64) -> GmmConfig {
    GmmConfig {
        k,
        seed,
        ..GmmConfig::default()
    }
}

fn bits(g: &Gmm1d) -> Vec<u64> {
    [&g.weights, &g.means, &g.variances]
        .into_iter()
        .flatten()
        .map(|x| x.to_bits())
        .collect()
}

fn max_abs_diff(a: &Gmm1d, b: &Gmm1d) -> f64 {
    [
        (&a.weights, &b.weights),
        (&a.means, &b.means),
        (&a.variances, &b.variances),
    ]
    .into_iter()
    .flat_map(|(x, y)| x.iter().zip(y).map(|(p, q)| (p - q).abs()))
    .fold(0.0, f64::max)
}

#[test]
fn recovers_a_known_well_separated_mixture() {
    let labels = sample(20_000, 2024);
    let (g, trace) = Gmm1d::fit_trace(&labels, &cfg(3, 0)).expect("fit");
    println!(
        "recovered {g:?}, {} EM iterations",
        trace.log_likelihood.len() - 1
    );
    g.validate().expect("a valid mixture");
    assert!(trace.converged);
    assert_eq!(g.k(), 3);
    for j in 0..3 {
        assert!((g.weights[j] - PI[j]).abs() < 0.02, "weight {j}: {g:?}");
        assert!((g.means[j] - MU[j]).abs() < 0.1, "mean {j}: {g:?}");
        assert!(
            (g.variances[j] / VAR[j] - 1.0).abs() < 0.1,
            "var {j}: {g:?}"
        );
    }
    let ll = g.mean_log_likelihood(&labels);
    let last = *trace.log_likelihood.last().expect("non-empty trace");
    assert!((ll - last).abs() < 1e-12 * ll.abs(), "{ll} vs {last}");
}

#[test]
fn same_seed_gives_a_bit_identical_fit() {
    let labels = sample(5_000, 1);
    let c = GmmConfig {
        k: 4,
        n_init: 3,
        seed: 17,
        ..GmmConfig::default()
    };
    let a = Gmm1d::fit(&labels, &c).expect("fit");
    let b = Gmm1d::fit(&labels, &c).expect("fit");
    assert_eq!(bits(&a), bits(&b));
    // The fit sees the multiset of labels only, so their order does not matter either.
    let mut shuffled = labels.clone();
    SplitMix64::new(99).shuffle(&mut shuffled);
    assert_eq!(bits(&a), bits(&Gmm1d::fit(&shuffled, &c).expect("fit")));
}

#[test]
fn other_seeds_reach_the_same_fit_on_well_separated_data() {
    let labels = sample(20_000, 2024);
    // EM converges linearly, so parameters settle to about the square root of the
    // log-likelihood tolerance: 1e-8 (the default) leaves ~6e-4 between seeds, 1e-12 ~3e-7.
    for (tol, within) in [(1e-8, 1e-3), (1e-12, 1e-6)] {
        let c = |seed| GmmConfig {
            k: 3,
            seed,
            tol,
            ..GmmConfig::default()
        };
        let reference = Gmm1d::fit(&labels, &c(0)).expect("fit");
        for seed in [1, 42, u64::MAX] {
            let g = Gmm1d::fit(&labels, &c(seed)).expect("fit");
            let d = max_abs_diff(&reference, &g);
            assert!(d < within, "tol {tol:e}, seed {seed}: max difference {d:e}");
        }
    }
}

#[test]
fn k_above_the_number_of_distinct_labels_is_clamped() {
    let labels = [1.0, 1.0, 2.0, 2.0, 2.0, 3.0];
    let g = Gmm1d::fit(&labels, &cfg(8, 0)).expect("fit");
    assert_eq!(g.k(), 3);
    let mean = 11.0 / 6.0;
    let var = labels.iter().map(|y| (y - mean) * (y - mean)).sum::<f64>() / 6.0;
    let floor = GmmConfig::default().reg_var * var;
    let expected_w = [2.0 / 6.0, 3.0 / 6.0, 1.0 / 6.0];
    for (j, w) in expected_w.into_iter().enumerate() {
        assert!((g.means[j] - (j + 1) as f64).abs() < 1e-12, "{g:?}");
        assert!((g.weights[j] - w).abs() < 1e-12, "{g:?}");
        // One value per component: only the floor is left.
        assert!((g.variances[j] / floor - 1.0).abs() < 1e-9, "{g:?}");
    }
}

#[test]
fn em_never_lowers_the_log_likelihood() {
    // Overlapping components and more of them than the data has: slow, many-step EM.
    let mut labels = sample(3_000, 5);
    let mut rng = SplitMix64::new(6);
    labels.extend((0..500).map(|_| (30.0 * rng.uniform()).round()));
    for (k, seed) in [(2, 0), (5, 1), (8, 2)] {
        let c = GmmConfig {
            k,
            seed,
            tol: 1e-12,
            max_iter: 120,
            ..GmmConfig::default()
        };
        let (g, trace) = Gmm1d::fit_trace(&labels, &c).expect("fit");
        assert_eq!(trace.reseeds, 0, "k = {k}");
        let ll = &trace.log_likelihood;
        assert!(ll.len() > 5, "k = {k}: only {} steps", ll.len());
        for (t, w) in ll.windows(2).enumerate() {
            assert!(
                w[1] >= w[0] - 1e-12 * w[0].abs(),
                "k = {k}, step {t}: {w:?}"
            );
        }
        assert!(g.means.windows(2).all(|m| m[0] <= m[1]), "sorted: {g:?}");
    }
}

#[test]
fn restarts_keep_the_best_initialisation() {
    let labels = sample(2_000, 8);
    let c = GmmConfig {
        k: 6,
        n_init: 4,
        max_iter: 60,
        ..GmmConfig::default()
    };
    let (g, trace) = Gmm1d::fit_trace(&labels, &c).expect("fit");
    assert_eq!(trace.per_init.len(), 4);
    let best = trace.per_init.iter().copied().fold(f64::MIN, f64::max);
    assert_eq!(trace.log_likelihood.last().copied(), Some(best));
    g.validate().expect("a valid mixture");
}

#[test]
fn many_components_on_tied_long_tailed_labels_stay_valid() {
    // Integer, long-tailed labels with heavy ties, as in age data.
    let mut rng = SplitMix64::new(21);
    let labels: Vec<f64> = (0..4_000)
        .map(|_| (20.0 + 60.0 * rng.uniform().powi(3)).round())
        .collect();
    let c = GmmConfig {
        n_init: 2,
        ..GmmConfig::default()
    };
    let g = Gmm1d::fit(&labels, &c).expect("fit");
    assert_eq!(g.k(), 8);
    g.validate().expect("a valid mixture");
    assert!(g.means.windows(2).all(|m| m[0] <= m[1]));
}

#[test]
fn log_density_is_a_normalised_density() {
    let g = Gmm1d {
        weights: vec![0.25, 0.75],
        means: vec![-1.0, 2.0],
        variances: vec![0.5, 2.0],
    };
    g.validate().expect("valid");
    let (lo, hi, n) = (-15.0, 20.0, 35_000);
    let h = (hi - lo) / n as f64;
    let integral: f64 = (0..=n)
        .map(|i| {
            let w = if i == 0 || i == n { 0.5 } else { 1.0 };
            w * g.log_density(lo + h * i as f64).exp()
        })
        .sum::<f64>()
        * h;
    assert!((integral - 1.0).abs() < 1e-9, "{integral}");
    // A single component is the normal log-density.
    let one = Gmm1d {
        weights: vec![1.0],
        means: vec![3.0],
        variances: vec![4.0],
    };
    let expected = -0.5 * (std::f64::consts::TAU * 4.0).ln() - 0.5 * 2.5 * 2.5 / 4.0;
    assert!((one.log_density(5.5) - expected).abs() < 1e-14);
    // Far in the tail the log-sum-exp stays finite where the density underflows.
    assert!(one.log_density(1e4).is_finite());
    assert!(g.mean_log_likelihood(&[]).is_nan());
}

#[test]
fn invalid_configs_and_labels_are_typed_errors() {
    let labels = sample(100, 3);
    let bad = [
        (
            "k",
            GmmConfig {
                k: 0,
                ..GmmConfig::default()
            },
        ),
        (
            "tol",
            GmmConfig {
                tol: 0.0,
                ..GmmConfig::default()
            },
        ),
        (
            "tol",
            GmmConfig {
                tol: -1e-8,
                ..GmmConfig::default()
            },
        ),
        (
            "tol",
            GmmConfig {
                tol: f64::NAN,
                ..GmmConfig::default()
            },
        ),
        (
            "max_iter",
            GmmConfig {
                max_iter: 0,
                ..GmmConfig::default()
            },
        ),
        (
            "n_init",
            GmmConfig {
                n_init: 0,
                ..GmmConfig::default()
            },
        ),
        (
            "reg_var",
            GmmConfig {
                reg_var: 0.0,
                ..GmmConfig::default()
            },
        ),
        (
            "reg_var",
            GmmConfig {
                reg_var: f64::INFINITY,
                ..GmmConfig::default()
            },
        ),
    ];
    for (name, c) in bad {
        match Gmm1d::fit(&labels, &c) {
            Err(CoreError::InvalidParameter { name: got, .. }) => assert_eq!(got, name),
            other => panic!("{name}: expected InvalidParameter, got {other:?}"),
        }
    }
    let c = GmmConfig::default();
    assert!(matches!(
        Gmm1d::fit(&[1.0, f64::NAN, 2.0], &c),
        Err(CoreError::NonFiniteLabel { index: 1, .. })
    ));
    assert!(matches!(
        Gmm1d::fit(&[1.0, 2.0, f64::NEG_INFINITY], &c),
        Err(CoreError::NonFiniteLabel { index: 2, .. })
    ));
    assert!(matches!(Gmm1d::fit(&[], &c), Err(CoreError::Empty(_))));
    assert!(matches!(
        Gmm1d::fit(&[7.0; 5], &c),
        Err(CoreError::Empty(_))
    ));
}

#[test]
fn config_serde_defaults_and_model_validation() {
    let c: GmmConfig = serde_json::from_str(r#"{"k": 3}"#).expect("parse");
    assert_eq!(
        c,
        GmmConfig {
            k: 3,
            ..GmmConfig::default()
        }
    );
    let g = Gmm1d::fit(&sample(500, 4), &cfg(2, 0)).expect("fit");
    let back: Gmm1d =
        serde_json::from_str(&serde_json::to_string(&g).expect("json")).expect("parse");
    assert_eq!(bits(&g), bits(&back));

    let uneven = Gmm1d {
        weights: vec![0.5, 0.5],
        means: vec![0.0],
        variances: vec![1.0, 1.0],
    };
    assert!(matches!(
        uneven.validate(),
        Err(CoreError::LengthMismatch { .. })
    ));
    let unnormalised = Gmm1d {
        weights: vec![0.5, 0.6],
        means: vec![0.0, 1.0],
        variances: vec![1.0, 1.0],
    };
    assert!(matches!(
        unnormalised.validate(),
        Err(CoreError::InvalidParameter { .. })
    ));
    let degenerate = Gmm1d {
        weights: vec![1.0],
        means: vec![0.0],
        variances: vec![0.0],
    };
    assert!(matches!(
        degenerate.validate(),
        Err(CoreError::InvalidParameter {
            name: "variance",
            ..
        })
    ));
}
