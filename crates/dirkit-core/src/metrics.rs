//! Regression metrics overall and by shot (methods.md §4): MAE, MSE, RMSE, G-mean,
//! balanced MAE/MSE and Pearson's r.

use serde::{Deserialize, Serialize};

use crate::binning::{Binning, OutOfRange};
use crate::error::{CoreError, Result};
use crate::shots::{Shot, ShotThresholds};

/// Metrics of one group of test samples. Per shot they are sample-weighted (sum over the
/// group's samples / its sample count); an empty group has `n = 0` and `None` metrics.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct GroupMetrics {
    /// Test samples in the group.
    pub n: u64,
    /// Distinct label bins among the group's test samples.
    pub n_test_bins: usize,
    /// Mean absolute error, label units.
    pub mae: Option<f64>,
    /// Mean squared error, label units squared.
    pub mse: Option<f64>,
    /// Root mean squared error, label units.
    pub rmse: Option<f64>,
    /// Geometric mean of |error|; 0 when any error is exactly 0 (reference behaviour).
    pub gmean: Option<f64>,
    /// SERA of the group (a sum over its samples, label units squared), when the report was
    /// asked for it ([`RegressionReport::with_sera`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sera: Option<f64>,
}

/// Sufficient sums for one group; adding errors is O(1), finishing gives the metrics.
#[derive(Debug, Clone, Copy, Default)]
struct Sums {
    n: u64,
    abs: f64,
    sq: f64,
    ln_abs: f64,
}

impl Sums {
    fn add(&mut self, e: f64) {
        self.n += 1;
        self.abs += e.abs();
        self.sq += e * e;
        // ln 0 = -inf makes the G-mean exactly 0, as the reference does.
        self.ln_abs += e.abs().ln();
    }

    fn finish(&self, n_test_bins: usize) -> GroupMetrics {
        if self.n == 0 {
            return GroupMetrics::default();
        }
        let n = self.n as f64;
        let mse = self.sq / n;
        GroupMetrics {
            n: self.n,
            n_test_bins,
            mae: Some(self.abs / n),
            mse: Some(mse),
            rmse: Some(mse.sqrt()),
            gmean: Some((self.ln_abs / n).exp()),
            sera: None,
        }
    }
}

/// The DIR evaluation report: All / Many / Medium / Few, balanced errors and Pearson's r.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegressionReport {
    /// Every test sample.
    pub all: GroupMetrics,
    /// Test samples whose label bin is many-shot in training.
    pub many: GroupMetrics,
    /// Medium-shot test samples.
    pub medium: GroupMetrics,
    /// Few-shot test samples (bins without training samples included).
    pub few: GroupMetrics,
    /// Mean over the test bins of the per-bin MAE (Balanced MSE paper protocol).
    pub balanced_mae: Option<f64>,
    /// Mean over the test bins of the per-bin MSE.
    pub balanced_mse: Option<f64>,
    /// Pearson correlation of predictions and targets; `None` when either is constant.
    pub pearson_r: Option<f64>,
    /// The thresholds the shots were taken with.
    pub thresholds: ShotThresholds,
    /// Utility-based precision, recall and F1 over all samples, when asked for
    /// ([`RegressionReport::with_utility`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub utility: Option<crate::relevance::UtilityScores>,
}

impl RegressionReport {
    /// The metrics of one shot group.
    pub fn shot(&self, shot: Shot) -> &GroupMetrics {
        match shot {
            Shot::Many => &self.many,
            Shot::Medium => &self.medium,
            Shot::Few => &self.few,
        }
    }

    /// Evaluates `predictions` against `targets`. Shots come from `train_counts` (per bin of
    /// `binning`, the training histogram); test targets are binned with `out_of_range`
    /// (dropped targets are left out of every group). Non-finite values are an error.
    pub fn compute(
        predictions: &[f64],
        targets: &[f64],
        binning: &Binning,
        train_counts: &[u64],
        thresholds: ShotThresholds,
        out_of_range: OutOfRange,
    ) -> Result<Self> {
        thresholds.validate()?;
        binning.validate()?;
        if predictions.len() != targets.len() {
            return Err(CoreError::LengthMismatch {
                what: "predictions vs targets",
                left: predictions.len(),
                right: targets.len(),
            });
        }
        if train_counts.len() != binning.n_bins {
            return Err(CoreError::LengthMismatch {
                what: "training counts vs n_bins",
                left: train_counts.len(),
                right: binning.n_bins,
            });
        }
        if let Some(i) = predictions.iter().position(|p| !p.is_finite()) {
            return Err(CoreError::NonFiniteLabel {
                index: i,
                value: predictions[i],
            });
        }
        let shots = thresholds.shots(train_counts);
        let mut all = Sums::default();
        let mut by_shot = [Sums::default(); 3];
        let mut by_bin = vec![Sums::default(); binning.n_bins];
        for (i, (&p, &t)) in predictions.iter().zip(targets).enumerate() {
            let Some(b) = binning.bin(t, i, out_of_range)? else {
                continue;
            };
            let e = p - t;
            all.add(e);
            by_shot[shots[b] as usize].add(e);
            by_bin[b].add(e);
        }
        if all.n == 0 {
            return Err(CoreError::Empty("no test sample to evaluate"));
        }
        let bins_in = |shot: Option<Shot>| {
            by_bin
                .iter()
                .zip(&shots)
                .filter(|(s, sh)| s.n > 0 && shot.is_none_or(|x| x == **sh))
                .count()
        };
        let tested: Vec<&Sums> = by_bin.iter().filter(|s| s.n > 0).collect();
        let k = tested.len() as f64;
        let balanced_mae = tested.iter().map(|s| s.abs / s.n as f64).sum::<f64>() / k;
        let balanced_mse = tested.iter().map(|s| s.sq / s.n as f64).sum::<f64>() / k;
        Ok(Self {
            all: all.finish(bins_in(None)),
            many: by_shot[Shot::Many as usize].finish(bins_in(Some(Shot::Many))),
            medium: by_shot[Shot::Medium as usize].finish(bins_in(Some(Shot::Medium))),
            few: by_shot[Shot::Few as usize].finish(bins_in(Some(Shot::Few))),
            balanced_mae: Some(balanced_mae),
            balanced_mse: Some(balanced_mse),
            pearson_r: if all.n as usize == targets.len() {
                pearson_r(predictions, targets)
            } else {
                let (p, t): (Vec<f64>, Vec<f64>) = predictions
                    .iter()
                    .zip(targets)
                    .enumerate()
                    .filter(|(i, (_, t))| matches!(binning.bin(**t, *i, out_of_range), Ok(Some(_))))
                    .map(|(_, (p, t))| (*p, *t))
                    .unzip();
                pearson_r(&p, &t)
            },
            thresholds,
            utility: None,
        })
    }
}

impl RegressionReport {
    /// Adds SERA (squared error-relevance area, [`crate::relevance::sera`]) to every group,
    /// with φ from `relevance` (built from the *training* targets) and the trapezoid `step`
    /// (0.001 as IRon). Shots and dropped targets follow the same binning as
    /// [`RegressionReport::compute`].
    #[allow(clippy::too_many_arguments)]
    pub fn with_sera(
        mut self,
        predictions: &[f64],
        targets: &[f64],
        binning: &Binning,
        train_counts: &[u64],
        out_of_range: OutOfRange,
        relevance: &crate::relevance::Relevance,
        step: f64,
    ) -> Result<Self> {
        let shots = self.thresholds.shots(train_counts);
        let phi = relevance.phi_all(targets);
        // (predictions, targets, φ) per group: all, many, medium, few.
        let mut groups: [(Vec<f64>, Vec<f64>, Vec<f64>); 4] = Default::default();
        for (i, (&p, &t)) in predictions.iter().zip(targets).enumerate() {
            let Some(b) = binning.bin(t, i, out_of_range)? else {
                continue;
            };
            for g in [0, 1 + shots[b] as usize] {
                groups[g].0.push(p);
                groups[g].1.push(t);
                groups[g].2.push(phi[i]);
            }
        }
        let value = |g: &(Vec<f64>, Vec<f64>, Vec<f64>)| -> Result<Option<f64>> {
            if g.0.is_empty() {
                return Ok(None);
            }
            crate::relevance::sera_with_phi(&g.0, &g.1, &g.2, step).map(Some)
        };
        self.all.sera = value(&groups[0])?;
        self.many.sera = value(&groups[1 + Shot::Many as usize])?;
        self.medium.sera = value(&groups[1 + Shot::Medium as usize])?;
        self.few.sera = value(&groups[1 + Shot::Few as usize])?;
        Ok(self)
    }
}

impl RegressionReport {
    /// Adds the utility-based precision, recall and F1 ([`crate::relevance::utility_scores`],
    /// β = 1) over every test sample at relevance `threshold` (0.8 is usual), φ from the
    /// training targets.
    pub fn with_utility(
        mut self,
        predictions: &[f64],
        targets: &[f64],
        relevance: &crate::relevance::Relevance,
        threshold: f64,
    ) -> Result<Self> {
        self.utility = Some(crate::relevance::utility_scores(
            predictions,
            targets,
            relevance,
            threshold,
            1.0,
        )?);
        Ok(self)
    }
}

/// Pearson correlation of two equally long slices, computed on centred values; `None` when
/// either is constant or shorter than 2.
pub fn pearson_r(x: &[f64], y: &[f64]) -> Option<f64> {
    if x.len() != y.len() || x.len() < 2 {
        return None;
    }
    let n = x.len() as f64;
    // r is scale-free: the deviations are divided by their largest magnitude, so values near
    // the f64 limit (1e308) do not overflow the sums of squares.
    let mx = x.iter().map(|a| a / n).sum::<f64>();
    let my = y.iter().map(|b| b / n).sum::<f64>();
    let sx = x.iter().fold(0.0f64, |m, a| m.max((a - mx).abs()));
    let sy = y.iter().fold(0.0f64, |m, b| m.max((b - my).abs()));
    if !(sx > 0.0 && sy > 0.0 && sx.is_finite() && sy.is_finite()) {
        return None;
    }
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        let (dx, dy) = ((a - mx) / sx, (b - my) / sy);
        sxy += dx * dy;
        sxx += dx * dx;
        syy += dy * dy;
    }
    let r = sxy / (sxx.sqrt() * syy.sqrt());
    (sxx > 0.0 && syy > 0.0 && r.is_finite()).then(|| r.clamp(-1.0, 1.0))
}
