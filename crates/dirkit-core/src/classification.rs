//! Metrics of a binned target learned as classification (methods.md §7): accuracy overall and
//! per shot, and the balanced error rate `(1/L) Σ_y P(ŷ ≠ y | y)` over the `L` bins present in
//! the test set — the mean per-bin error, which every bin weighs equally in however rare.

use serde::{Deserialize, Serialize};

use crate::error::{CoreError, Result, invalid};
use crate::shots::{Shot, ShotThresholds};

/// Accuracy of one group of test samples.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GroupAccuracy {
    /// Test samples in the group.
    pub samples: usize,
    /// Fraction predicted in the right bin; `None` for an empty group.
    pub accuracy: Option<f64>,
}

/// The classification report of binned predictions: All / Many / Medium / Few accuracy and the
/// balanced error rate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassificationReport {
    /// Every test sample.
    pub all: GroupAccuracy,
    /// Test samples whose true bin is many-shot in training.
    pub many: GroupAccuracy,
    /// Medium-shot test samples.
    pub medium: GroupAccuracy,
    /// Few-shot test samples (bins without training samples included).
    pub few: GroupAccuracy,
    /// `(1/L) Σ_y P(ŷ ≠ y | y)` over the `L` bins with test samples.
    pub balanced_error_rate: f64,
    /// Number of bins with test samples (`L`).
    pub test_bins: usize,
    /// The thresholds the shots were taken with.
    pub thresholds: ShotThresholds,
}

impl ClassificationReport {
    /// The accuracy of one shot group.
    pub fn shot(&self, shot: Shot) -> &GroupAccuracy {
        match shot {
            Shot::Many => &self.many,
            Shot::Medium => &self.medium,
            Shot::Few => &self.few,
        }
    }

    /// Evaluates predicted bins against true bins; shots come from `train_counts` (one per
    /// bin). Every bin index must be below `train_counts.len()`.
    pub fn compute(
        predicted: &[usize],
        truth: &[usize],
        train_counts: &[u64],
        thresholds: ShotThresholds,
    ) -> Result<Self> {
        thresholds.validate()?;
        if predicted.len() != truth.len() {
            return Err(CoreError::LengthMismatch {
                what: "predicted vs true bins",
                left: predicted.len(),
                right: truth.len(),
            });
        }
        if truth.is_empty() {
            return Err(CoreError::Empty("no test samples to evaluate"));
        }
        let k = train_counts.len();
        if let Some(&b) = predicted.iter().chain(truth).find(|&&b| b >= k) {
            return invalid(
                "bin index",
                b,
                "below the number of bins of the training counts",
            );
        }
        let shots = thresholds.shots(train_counts);
        let mut per_bin = vec![(0usize, 0usize); k];
        let mut groups = [(0usize, 0usize); 4];
        for (&p, &t) in predicted.iter().zip(truth) {
            let hit = usize::from(p == t);
            per_bin[t].0 += 1;
            per_bin[t].1 += hit;
            for g in [3, shots[t] as usize] {
                groups[g].0 += 1;
                groups[g].1 += hit;
            }
        }
        let acc = |(n, hits): (usize, usize)| GroupAccuracy {
            samples: n,
            accuracy: (n > 0).then(|| hits as f64 / n as f64),
        };
        let present: Vec<(usize, usize)> = per_bin.into_iter().filter(|(n, _)| *n > 0).collect();
        let ber = present
            .iter()
            .map(|&(n, hits)| 1.0 - hits as f64 / n as f64)
            .sum::<f64>()
            / present.len() as f64;
        Ok(Self {
            all: acc(groups[3]),
            many: acc(groups[Shot::Many as usize]),
            medium: acc(groups[Shot::Medium as usize]),
            few: acc(groups[Shot::Few as usize]),
            balanced_error_rate: ber,
            test_bins: present.len(),
            thresholds,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_report() {
        // Bins 0 (many: 150 train), 1 (medium: 50), 2 (few: 3).
        let counts = [150, 50, 3];
        let truth = [0, 0, 0, 0, 1, 1, 2];
        let pred = [0, 0, 0, 1, 1, 0, 0];
        let r = ClassificationReport::compute(&pred, &truth, &counts, ShotThresholds::default())
            .unwrap();
        assert_eq!(r.all.samples, 7);
        assert_eq!(r.all.accuracy, Some(4.0 / 7.0));
        assert_eq!(r.many.accuracy, Some(0.75));
        assert_eq!(r.medium.accuracy, Some(0.5));
        assert_eq!(r.few.accuracy, Some(0.0));
        // Per-bin errors 0.25, 0.5, 1.0.
        assert!((r.balanced_error_rate - (0.25 + 0.5 + 1.0) / 3.0).abs() < 1e-15);
        assert_eq!(r.test_bins, 3);
    }

    #[test]
    fn balanced_error_ignores_bins_absent_from_the_test_set_and_weighs_bins_equally() {
        let counts = [10, 10, 10, 10];
        // 99 right in bin 0, 1 wrong in bin 3: accuracy 0.99 but BER 0.5.
        let mut truth = vec![0; 99];
        truth.push(3);
        let mut pred = vec![0; 99];
        pred.push(1);
        let r = ClassificationReport::compute(&pred, &truth, &counts, ShotThresholds::default())
            .unwrap();
        assert_eq!(r.all.accuracy, Some(0.99));
        assert_eq!(r.balanced_error_rate, 0.5);
        assert_eq!(r.test_bins, 2);
        assert_eq!(r.many.accuracy, None);
    }

    #[test]
    fn bad_input_is_an_error() {
        let t = ShotThresholds::default();
        assert!(ClassificationReport::compute(&[0], &[0, 1], &[1, 1], t).is_err());
        assert!(ClassificationReport::compute(&[], &[], &[1], t).is_err());
        assert!(ClassificationReport::compute(&[2], &[0], &[1, 1], t).is_err());
    }
}
