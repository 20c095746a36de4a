//! Cross-validation folds and hold-out splits stratified on a continuous target *and* on its
//! relevance φ, so that every fold holds its share of every rare region of the target.
//!
//! Stratified K-fold for classification balances each class across folds; a continuous target
//! has no classes, and plain shuffled K-fold leaves a rare tail of a dozen rows unevenly spread
//! (a fold may get none of them, so its few-shot error is undefined). Here the rows are sorted by
//! target (ties in a seeded random order) and cut into *bumps*, the runs of consecutive rows on
//! one side of the relevance threshold (UBL's bumps, [`crate::relevance::bumps`]). Within each
//! bump, every group of `n_splits` consecutive rows sends one row to each fold in a seeded random
//! order; the last, partial group of a bump goes to the folds that are smallest so far. Hence:
//!
//! - folds are disjoint and cover every row once per repeat;
//! - every fold holds ⌊m / K⌋ or ⌈m / K⌉ rows of each bump of m rows (within one row), and
//!   every fold's size is within one row of every other's;
//! - within a bump the folds see the same range of targets (stratification on fine target
//!   bins of K rows);
//! - the folds depend on the seed and the data only: no thread count or platform changes them.

use crate::error::{CoreError, Result, invalid};
use crate::rng::SplitMix64;

/// Settings of [`relevance_folds`]. Defaults: 5 splits, 1 repeat, rare at φ ≥ 0.8, seed 0.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FoldConfig {
    /// Folds per repeat, K ≥ 2 (default 5).
    pub n_splits: usize,
    /// Independent repetitions of the K-fold partition, each with its own shuffle (default 1).
    pub n_repeats: usize,
    /// Relevance threshold: rows with φ ≥ `threshold` are rare (default 0.8, UBL's usual
    /// value).
    pub threshold: f64,
    /// Seed of every random choice.
    pub seed: u64,
}

impl Default for FoldConfig {
    fn default() -> Self {
        Self {
            n_splits: 5,
            n_repeats: 1,
            threshold: 0.8,
            seed: 0,
        }
    }
}

/// One train/validation split: row indices into the data, each list ascending.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Fold {
    /// Rows to fit on.
    pub train: Vec<usize>,
    /// Rows to evaluate on.
    pub test: Vec<usize>,
}

/// The seed of repeat `r` of a run seeded with `seed` (distinct streams per repeat).
fn repeat_seed(seed: u64, r: usize) -> u64 {
    SplitMix64::new(seed ^ (r as u64).wrapping_mul(0xD1B5_4A32_D192_ED03)).next_u64()
}

fn check(y: &[f64], phi: &[f64], threshold: f64) -> Result<()> {
    if y.len() != phi.len() {
        return Err(CoreError::LengthMismatch {
            what: "targets vs relevance",
            left: y.len(),
            right: phi.len(),
        });
    }
    if let Some(i) = y.iter().position(|v| !v.is_finite()) {
        return Err(CoreError::NonFiniteLabel {
            index: i,
            value: y[i],
        });
    }
    if !(threshold.is_finite() && (0.0..=1.0).contains(&threshold)) {
        return invalid("threshold", threshold, "a relevance in [0, 1]");
    }
    Ok(())
}

/// The rows sorted by target with ties in a random order, cut into bumps (runs of rows on one
/// side of the threshold). Each bump lists its rows in target order.
fn sorted_bumps(y: &[f64], phi: &[f64], threshold: f64, rng: &mut SplitMix64) -> Vec<Vec<usize>> {
    let keys: Vec<u64> = (0..y.len()).map(|_| rng.next_u64()).collect();
    let mut order: Vec<usize> = (0..y.len()).collect();
    order.sort_by(|&a, &b| {
        y[a].total_cmp(&y[b])
            .then(keys[a].cmp(&keys[b]))
            .then(a.cmp(&b))
    });
    let mut out: Vec<Vec<usize>> = Vec::new();
    let mut last: Option<bool> = None;
    for i in order {
        let rare = phi[i] >= threshold;
        if last == Some(rare) {
            if let Some(b) = out.last_mut() {
                b.push(i);
            }
        } else {
            out.push(vec![i]);
            last = Some(rare);
        }
    }
    out
}

/// K-fold cross-validation folds of `y` stratified on the target and on the bumps of its
/// relevance `phi` (`phi[i]` = φ(`y[i]`), from [`crate::Relevance::phi_all`]); see the module
/// docs for the guarantees. Returns `n_repeats × n_splits` folds, repeat by repeat. Errors on
/// `n_splits < 2`, more splits than rows, `n_repeats = 0`, a non-finite target, a threshold
/// outside [0, 1] or mismatched lengths.
pub fn relevance_folds(y: &[f64], phi: &[f64], config: &FoldConfig) -> Result<Vec<Fold>> {
    check(y, phi, config.threshold)?;
    let n = y.len();
    let k = config.n_splits;
    if k < 2 {
        return invalid("n_splits", k, "at least 2 folds");
    }
    if k > n {
        return Err(CoreError::InvalidParameter {
            name: "n_splits",
            value: k.to_string(),
            expected: "at most one fold per row (fewer splits than rows)",
        });
    }
    if config.n_repeats == 0 {
        return invalid("n_repeats", 0, "at least 1 repeat");
    }
    let mut folds = Vec::with_capacity(k * config.n_repeats);
    for r in 0..config.n_repeats {
        let mut rng = SplitMix64::new(repeat_seed(config.seed, r));
        let assignment = assign(y, phi, config.threshold, k, &mut rng);
        for f in 0..k {
            let (test, train): (Vec<usize>, Vec<usize>) = (0..n).partition(|&i| assignment[i] == f);
            folds.push(Fold { train, test });
        }
    }
    Ok(folds)
}

/// The fold of every row for one repeat.
fn assign(y: &[f64], phi: &[f64], threshold: f64, k: usize, rng: &mut SplitMix64) -> Vec<usize> {
    let mut fold_of = vec![0usize; y.len()];
    let mut size = vec![0usize; k];
    let mut perm: Vec<usize> = (0..k).collect();
    for bump in sorted_bumps(y, phi, threshold, rng) {
        for group in bump.chunks(k) {
            if group.len() == k {
                rng.shuffle(&mut perm);
                for (&row, &f) in group.iter().zip(&perm) {
                    fold_of[row] = f;
                    size[f] += 1;
                }
            } else {
                // The smallest folds take the remainder; ties in a random order.
                rng.shuffle(&mut perm);
                let mut by_size = perm.clone();
                by_size.sort_by_key(|&f| size[f]);
                let mut chosen = by_size[..group.len()].to_vec();
                rng.shuffle(&mut chosen);
                for (&row, &f) in group.iter().zip(&chosen) {
                    fold_of[row] = f;
                    size[f] += 1;
                }
            }
        }
    }
    fold_of
}

/// A hold-out split stratified like [`relevance_folds`]: `test_size` of the rows (rounded to a
/// whole number, at least one row and at least one row left to train on) go to `test`, each
/// bump contributing its share (largest remainders, ties at random), spread evenly over its
/// target order from a random offset. Errors as [`relevance_folds`], and on a `test_size`
/// outside (0, 1) or fewer than two rows.
pub fn relevance_holdout(
    y: &[f64],
    phi: &[f64],
    test_size: f64,
    threshold: f64,
    seed: u64,
) -> Result<Fold> {
    check(y, phi, threshold)?;
    if !(test_size > 0.0 && test_size < 1.0) {
        return invalid("test_size", test_size, "a fraction in (0, 1)");
    }
    let n = y.len();
    if n < 2 {
        return Err(CoreError::Empty("a hold-out split needs at least two rows"));
    }
    let mut rng = SplitMix64::new(repeat_seed(seed, usize::MAX));
    let bumps = sorted_bumps(y, phi, threshold, &mut rng);
    let total = ((n as f64 * test_size).round() as usize).clamp(1, n - 1);
    // Largest-remainder apportionment of `total` over the bumps.
    let quota: Vec<f64> = bumps
        .iter()
        .map(|b| b.len() as f64 * total as f64 / n as f64)
        .collect();
    let mut count: Vec<usize> = quota.iter().map(|q| q.floor() as usize).collect();
    let mut rest: Vec<usize> = (0..bumps.len()).collect();
    rng.shuffle(&mut rest);
    rest.sort_by(|&a, &b| {
        let fa = quota[a] - quota[a].floor();
        let fb = quota[b] - quota[b].floor();
        fb.total_cmp(&fa)
    });
    let mut missing = total - count.iter().sum::<usize>();
    for &b in &rest {
        if missing == 0 {
            break;
        }
        if count[b] < bumps[b].len() {
            count[b] += 1;
            missing -= 1;
        }
    }
    let mut is_test = vec![false; n];
    for (bump, &c) in bumps.iter().zip(&count) {
        if c == 0 {
            continue;
        }
        let m = bump.len();
        let u = rng.uniform();
        for j in 0..c {
            // Positions ⌊(j + u)·m / c⌋ are distinct and increasing because m ≥ c.
            let pos = (((j as f64 + u) * m as f64 / c as f64).floor() as usize).min(m - 1);
            is_test[bump[pos]] = true;
        }
    }
    let (test, train): (Vec<usize>, Vec<usize>) = (0..n).partition(|&i| is_test[i]);
    Ok(Fold { train, test })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holdout_takes_the_rounded_share() {
        let y: Vec<f64> = (0..101).map(|i| f64::from(i % 17)).collect();
        let phi: Vec<f64> = y
            .iter()
            .map(|&v| if v > 14.0 { 1.0 } else { 0.0 })
            .collect();
        let f = relevance_holdout(&y, &phi, 0.2, 0.8, 3).unwrap();
        assert_eq!(f.test.len(), 20);
        assert_eq!(f.train.len() + f.test.len(), 101);
        let rare_test = f.test.iter().filter(|&&i| phi[i] >= 0.8).count();
        let rare = phi.iter().filter(|&&p| p >= 0.8).count();
        assert!((rare_test as f64 - rare as f64 * 0.2).abs() <= 1.0);
    }
}
