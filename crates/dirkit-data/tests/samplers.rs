//! Frequencies, determinism and probabilities of the class-aware, progressive and weighted
//! samplers at fixed seeds.

mod common;

use common::{DRAWS, assert_fits, bins_of, chi2_critical_999, counts_of, long_tailed_bins};
use dirkit_data::{
    AliasTable, ClassAwareConfig, ClassAwareSampler, EpochSampler, Interpolation,
    ProgressiveConfig, ProgressiveSampler, WeightedSampler, bin_probabilities,
};

fn class_aware(cfg: ClassAwareConfig) -> (ClassAwareSampler, Vec<usize>, usize) {
    let (bins, n_bins) = long_tailed_bins();
    let s = ClassAwareSampler::new(&bins, n_bins, &cfg.with_epoch_len(DRAWS)).unwrap();
    (s, bins, n_bins)
}

#[test]
fn wilson_hilferty_is_close_to_the_table() {
    // 99.9th percentiles from the chi-square table.
    for (df, table) in [(1, 10.828), (5, 20.515), (9, 27.877), (100, 149.449)] {
        let wh = chi2_critical_999(df);
        assert!(wh >= table && wh < 1.031 * table, "{df}: {wh} vs {table}");
    }
}

#[test]
fn class_balanced_draws_every_non_empty_bin_equally() {
    let (s, bins, n_bins) = class_aware(ClassAwareConfig::class_balanced().with_seed(1));
    let draws = s.sample_epoch(0);
    assert_eq!(draws.len(), DRAWS);
    let p = [1.0, 1.0, 0.0, 1.0, 1.0, 1.0, 1.0, 0.0].map(|x| x / 6.0);
    // `assert_fits` also fails if an empty bin (2 or 7) is ever drawn.
    assert_fits(&bins_of(&draws, &bins), &p, "class-balanced bins");
    let freq = counts_of(&bins_of(&draws, &bins), n_bins);
    assert_eq!((freq[2], freq[7]), (0, 0));
    // Within a bin the samples are uniform, so each sample has p_b / n_b.
    assert_fits(&draws, &s.sample_probabilities(), "class-balanced samples");
}

#[test]
fn instance_balanced_is_uniform_over_samples() {
    let (s, bins, _) = class_aware(ClassAwareConfig::instance_balanced().with_seed(2));
    let n = bins.len();
    let probs = s.sample_probabilities();
    assert!(probs.iter().all(|p| (p - 1.0 / n as f64).abs() < 1e-15));
    assert_fits(
        &s.sample_epoch(3),
        &vec![1.0 / n as f64; n],
        "instance-balanced",
    );
}

#[test]
fn square_root_follows_root_counts() {
    let (s, bins, n_bins) = class_aware(ClassAwareConfig::square_root().with_seed(3));
    let counts = counts_of(&bins, n_bins);
    let roots: Vec<f64> = counts.iter().map(|&n| (n as f64).sqrt()).collect();
    let total: f64 = roots.iter().sum();
    let p: Vec<f64> = roots.iter().map(|r| r / total).collect();
    for (a, b) in s.bin_probabilities().iter().zip(&p) {
        assert!((a - b).abs() < 1e-15);
    }
    assert_fits(&bins_of(&s.sample_epoch(0), &bins), &p, "square-root bins");
}

#[test]
fn epochs_are_reproducible_and_distinct() {
    let (bins, n_bins) = long_tailed_bins();
    let cfg = ClassAwareConfig::square_root().with_seed(42);
    let a = ClassAwareSampler::new(&bins, n_bins, &cfg).unwrap();
    let b = ClassAwareSampler::new(&bins, n_bins, &cfg).unwrap();
    assert_eq!(a.epoch_len(), bins.len());
    assert_eq!(a.sample_epoch(5), b.sample_epoch(5));
    // Epoch 5 needs no replay of epochs 0..5.
    let _ = a.sample_epoch(4);
    assert_eq!(a.sample_epoch(5), b.sample_epoch(5));
    assert_ne!(a.sample_epoch(5), a.sample_epoch(6));
    let c = ClassAwareSampler::new(&bins, n_bins, &cfg.clone().with_seed(43)).unwrap();
    assert_ne!(a.sample_epoch(5), c.sample_epoch(5));
    assert!(a.sample_epoch(0).iter().all(|&i| i < bins.len()));

    let p = ProgressiveSampler::new(&bins, n_bins, &ProgressiveConfig::new(10)).unwrap();
    assert_eq!(p.sample_epoch(3), p.clone().sample_epoch(3));
    assert_ne!(p.sample_epoch(3), p.sample_epoch(4));
    let w = WeightedSampler::new(&[1.0, 2.0, 3.0], 9).unwrap();
    assert_eq!(w.sample_epoch(1), w.clone().sample_epoch(1));
    assert_ne!(w.sample_epoch(1), w.sample_epoch(2));
}

#[test]
fn progressive_goes_from_instance_to_class_balanced() {
    let (bins, n_bins) = long_tailed_bins();
    let counts = counts_of(&bins, n_bins);
    let ib = bin_probabilities(&counts, 1.0).unwrap();
    let cb = bin_probabilities(&counts, 0.0).unwrap();
    for interpolation in [Interpolation::Probabilities, Interpolation::Exponent] {
        let cfg = ProgressiveConfig::new(20)
            .with_interpolation(interpolation)
            .with_seed(4)
            .with_epoch_len(DRAWS);
        let s = ProgressiveSampler::new(&bins, n_bins, &cfg).unwrap();
        let close = |a: &[f64], b: &[f64]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-15);
        assert!(close(&s.bin_probabilities(0), &ib), "{interpolation:?}");
        assert!(close(&s.bin_probabilities(20), &cb), "{interpolation:?}");
        assert!(close(&s.bin_probabilities(500), &cb), "{interpolation:?}");
        let mid = s.bin_probabilities(10);
        assert!(mid[0] < ib[0] && mid[0] > cb[0]);
        assert!((mid.iter().sum::<f64>() - 1.0).abs() < 1e-15);
        assert_fits(
            &bins_of(&s.sample_epoch(0), &bins),
            &ib,
            "progressive epoch 0",
        );
        assert_fits(
            &bins_of(&s.sample_epoch(20), &bins),
            &cb,
            "progressive epoch T",
        );
        assert_fits(
            &bins_of(&s.sample_epoch(7), &bins),
            &s.bin_probabilities(7),
            "epoch 7",
        );
    }
    // The paper's mixture at t = T/2 is the average of the two ends.
    let s = ProgressiveSampler::new(&bins, n_bins, &ProgressiveConfig::new(20)).unwrap();
    for (b, p) in s.bin_probabilities(10).iter().enumerate() {
        assert!((p - 0.5 * (ib[b] + cb[b])).abs() < 1e-15);
    }
}

#[test]
fn weighted_frequencies_follow_the_weights() {
    let weights = [0.0, 5.0, 1.0, 0.0, 0.25, 12.0, 3.5, 0.0, 1e-2];
    let s = WeightedSampler::new(&weights, 5)
        .unwrap()
        .with_epoch_len(DRAWS)
        .unwrap();
    let total: f64 = weights.iter().sum();
    let p: Vec<f64> = weights.iter().map(|w| w / total).collect();
    for (a, b) in s.probabilities().iter().zip(&p) {
        assert!((a - b).abs() < 1e-15);
    }
    // Zero-weight indices 0, 3 and 7 are never drawn (checked inside).
    assert_fits(&s.sample_epoch(0), &p, "weighted");
}

#[test]
fn alias_table_on_many_uneven_weights() {
    // Zipf-like weights over 1000 indices, every third one zero.
    let weights: Vec<f64> = (0..1000)
        .map(|i| {
            if i % 3 == 0 {
                0.0
            } else {
                1.0 / (i as f64 + 1.0)
            }
        })
        .collect();
    let t = AliasTable::new(&weights).unwrap();
    let mut rng = dirkit_core::SplitMix64::new(6);
    let draws = t.sample_n(&mut rng, DRAWS);
    // Merge the sparse tail into one cell so every cell expects at least 5 draws.
    let p = t.probabilities();
    let (head, tail): (Vec<usize>, Vec<usize>) = draws.iter().partition(|&&i| i < 200);
    let mut merged_p = p[..200].to_vec();
    merged_p.push(p[200..].iter().sum());
    let mut merged: Vec<usize> = head;
    merged.extend(std::iter::repeat_n(200, tail.len()));
    assert_fits(&merged, &merged_p, "alias table, zipf weights");
}

#[test]
fn chi_square_rejects_a_nearby_wrong_distribution() {
    // The test has power: square-root draws do not pass as class-balanced, nor q = 0.5 as
    // q = 0.45.
    let (s, bins, n_bins) = class_aware(ClassAwareConfig::square_root().with_seed(8));
    let drawn = common::frequencies(&bins_of(&s.sample_epoch(0), &bins), n_bins);
    let counts = counts_of(&bins, n_bins);
    for q in [0.0, 0.45] {
        let (chi2, df) = common::pearson(&drawn, &bin_probabilities(&counts, q).unwrap());
        assert!(chi2 > chi2_critical_999(df), "q = {q}: chi2 = {chi2}");
    }
}

#[test]
fn configs_read_from_json_with_defaults() {
    let c: ClassAwareConfig = serde_json::from_str("{}").unwrap();
    assert_eq!(c, ClassAwareConfig::class_balanced());
    let c: ClassAwareConfig = serde_json::from_str(r#"{"q": 0.5, "seed": 3}"#).unwrap();
    assert_eq!(c, ClassAwareConfig::square_root().with_seed(3));
    let p: ProgressiveConfig =
        serde_json::from_str(r#"{"total_epochs": 30, "interpolation": "exponent"}"#).unwrap();
    assert_eq!(
        p,
        ProgressiveConfig::new(30).with_interpolation(Interpolation::Exponent)
    );
    assert_eq!(ProgressiveConfig::default().total_epochs, 90);
    let d: dirkit_data::DifficultyConfig = serde_json::from_str("{}").unwrap();
    assert_eq!((d.c, d.seed, d.epoch_len), (1.0, 0, None));
}
