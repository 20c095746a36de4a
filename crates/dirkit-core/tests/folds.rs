//! The relevance-stratified splitter's guarantees: disjoint folds that cover every row, every
//! bump shared within one row, balanced fold sizes, determinism by seed.

use dirkit_core::relevance::{Relevance, RelevanceConfig, bumps};
use dirkit_core::{Fold, FoldConfig, SplitMix64, relevance_folds, relevance_holdout};

/// A long-tailed target with ties: most rows near 10, a thin high tail and a few low rows.
fn skewed(n: usize, seed: u64) -> Vec<f64> {
    let mut rng = SplitMix64::new(seed);
    (0..n)
        .map(|_| {
            let u = rng.uniform();
            if u < 0.03 {
                (rng.normal() * 0.5).round()
            } else if u < 0.12 {
                30.0 + (rng.normal() * 8.0).abs().round()
            } else {
                (10.0 + rng.normal() * 2.0).round()
            }
        })
        .collect()
}

fn phi_of(y: &[f64]) -> Vec<f64> {
    Relevance::from_targets(y, &RelevanceConfig::default())
        .unwrap()
        .phi_all(y)
}

fn check_partition(folds: &[Fold], n: usize, k: usize) {
    for rep in folds.chunks(k) {
        let mut seen = vec![0u32; n];
        for f in rep {
            assert_eq!(f.train.len() + f.test.len(), n);
            assert!(f.test.windows(2).all(|w| w[0] < w[1]));
            assert!(f.train.windows(2).all(|w| w[0] < w[1]));
            let mut in_test = vec![false; n];
            for &i in &f.test {
                seen[i] += 1;
                in_test[i] = true;
            }
            assert!(
                f.train.iter().all(|&i| !in_test[i]),
                "train and test overlap"
            );
        }
        assert!(
            seen.iter().all(|&c| c == 1),
            "a row is not in exactly one test fold"
        );
        let sizes: Vec<usize> = rep.iter().map(|f| f.test.len()).collect();
        let (lo, hi) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
        assert!(hi - lo <= 1, "fold sizes {sizes:?}");
    }
}

#[test]
fn folds_partition_and_share_every_bump() {
    for (n, k, seed) in [
        (1000, 5, 0),
        (997, 5, 1),
        (333, 10, 2),
        (57, 3, 3),
        (12, 2, 4),
    ] {
        let y = skewed(n, seed);
        let phi = phi_of(&y);
        let config = FoldConfig {
            n_splits: k,
            n_repeats: 3,
            threshold: 0.8,
            seed,
        };
        let folds = relevance_folds(&y, &phi, &config).unwrap();
        assert_eq!(folds.len(), 3 * k);
        check_partition(&folds, n, k);
        let bs = bumps(&y, &phi, 0.8).unwrap();
        assert!(
            bs.iter().any(|b| b.rare),
            "the test target should have a rare bump"
        );
        for rep in folds.chunks(k) {
            for b in &bs {
                let m = b.rows.len();
                for f in rep {
                    let c = f.test.iter().filter(|i| b.rows.contains(i)).count();
                    assert!(
                        c == m / k || c == m.div_ceil(k),
                        "bump of {m} rows gave a fold {c} (n {n}, k {k})"
                    );
                }
            }
        }
    }
}

#[test]
fn folds_stratify_the_target_order() {
    // Within a bump, each fold's targets spread over the whole range: the mean target of every
    // fold is within a few rows' spacing of the overall mean.
    let y: Vec<f64> = (0..500).map(f64::from).collect();
    let phi = vec![0.0; 500];
    let folds = relevance_folds(&y, &phi, &FoldConfig::default()).unwrap();
    for f in &folds {
        let mean = f.test.iter().map(|&i| y[i]).sum::<f64>() / f.test.len() as f64;
        assert!((mean - 249.5).abs() < 5.0, "fold mean {mean}");
    }
}

#[test]
fn folds_are_seeded() {
    let y = skewed(400, 9);
    let phi = phi_of(&y);
    let c = FoldConfig {
        n_repeats: 2,
        ..FoldConfig::default()
    };
    let a = relevance_folds(&y, &phi, &c).unwrap();
    assert_eq!(a, relevance_folds(&y, &phi, &c).unwrap());
    let b = relevance_folds(&y, &phi, &FoldConfig { seed: 1, ..c }).unwrap();
    assert_ne!(a, b);
    assert_ne!(a[0].test, a[5].test, "repeats should differ");
}

#[test]
fn folds_refuse_bad_settings() {
    let y = skewed(20, 1);
    let phi = phi_of(&y);
    let bad = |c: FoldConfig| relevance_folds(&y, &phi, &c).unwrap_err().to_string();
    assert!(
        bad(FoldConfig {
            n_splits: 1,
            ..FoldConfig::default()
        })
        .contains("n_splits")
    );
    assert!(
        bad(FoldConfig {
            n_splits: 21,
            ..FoldConfig::default()
        })
        .contains("fewer splits than rows")
    );
    assert!(
        bad(FoldConfig {
            n_repeats: 0,
            ..FoldConfig::default()
        })
        .contains("n_repeats")
    );
    assert!(
        bad(FoldConfig {
            threshold: 1.5,
            ..FoldConfig::default()
        })
        .contains("threshold")
    );
    let mut nan = y.clone();
    nan[3] = f64::NAN;
    assert!(
        relevance_folds(&nan, &phi, &FoldConfig::default())
            .unwrap_err()
            .to_string()
            .contains("#3")
    );
    assert!(relevance_folds(&y, &phi[1..], &FoldConfig::default()).is_err());
}

#[test]
fn holdout_shares_every_bump() {
    for (n, t, seed) in [(1000, 0.2, 0), (333, 0.25, 1), (50, 0.1, 2), (7, 0.5, 3)] {
        let y = skewed(n, seed);
        let phi = phi_of(&y);
        let f = relevance_holdout(&y, &phi, t, 0.8, seed).unwrap();
        let want = ((n as f64 * t).round() as usize).clamp(1, n - 1);
        assert_eq!(f.test.len(), want);
        let mut all: Vec<usize> = f.train.iter().chain(&f.test).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..n).collect::<Vec<_>>());
        for b in bumps(&y, &phi, 0.8).unwrap() {
            let c = f.test.iter().filter(|i| b.rows.contains(i)).count() as f64;
            let share = b.rows.len() as f64 * want as f64 / n as f64;
            assert!((c - share).abs() < 1.0 + 1e-9, "bump share {c} vs {share}");
        }
        assert_eq!(f, relevance_holdout(&y, &phi, t, 0.8, seed).unwrap());
    }
    let y = skewed(30, 0);
    let phi = phi_of(&y);
    for t in [0.0, 1.0, f64::NAN] {
        assert!(relevance_holdout(&y, &phi, t, 0.8, 0).is_err());
    }
}
