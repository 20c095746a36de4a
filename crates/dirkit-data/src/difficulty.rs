//! Instance-difficulty re-sampling (Yu et al. 2022, "A Re-Balancing Strategy for
//! Class-Imbalanced Classification Based on Instance Difficulty"; methods.md §8).
//!
//! After every epoch the change of each sample's predicted distribution is split into a
//! *learning* part `dl` and an *unlearning* part `du`. With `p = p_t` and `p' = p_{t-1}` (class
//! `j`, true class `y`), each class contributes `δ_j = (p_j - p'_j)·ln(p_j / p'_j) >= 0` (one
//! term of the symmetric KL divergence `J(p, p')`, so `dl + du = J(p, p')`):
//!
//! - to `dl` when the move is towards the label: `p_y` up, or a wrong `p_j` down;
//! - to `du` when it is away from it: `p_y` down, or a wrong `p_j` up.
//!
//! Difficulty `D_i = (c + Σ_t du) / (c + Σ_t dl)` (1 before any update); each epoch draws
//! samples with replacement with probability `D_i / Σ_k D_k`. This reproduces every number of
//! the reference block `instance_difficulty_extra` of `discrete_losses.json`.
//!
//! **Regression** (no class probabilities): the same form on the per-sample loss `ℓ`,
//! `δ = (ℓ_t - ℓ_{t-1})·ln(ℓ_t / ℓ_{t-1})`, learning when the loss goes down and unlearning when
//! it goes up. `δ` scales with the loss, so `c` is in the loss's units: a larger `c` damps the
//! difficulty more.

use serde::{Deserialize, Serialize};

use crate::epoch::{EpochSampler, epoch_rng, resolve_epoch_len};
use crate::error::{DataError, Result, invalid};
use crate::weighted::AliasTable;

/// Floor applied to probabilities and losses inside the logarithm only, so a value that is
/// exactly 0 (an f32 softmax underflow, a perfect fit) gives a large but finite change. The
/// same `ε = 1e-12` as the logs of priors in methods.md §7.
pub const LOG_FLOOR: f64 = 1e-12;

/// How far a row of predicted probabilities may sum from 1 (covers f32 softmax rounding).
pub const ROW_SUM_TOLERANCE: f64 = 1e-3;

/// One sample's change between two epochs, split by direction (both >= 0).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct DifficultyChange {
    /// `dl`: the part of the change that moves towards the label.
    pub learning: f64,
    /// `du`: the part of the change that moves away from it.
    pub unlearning: f64,
}

impl DifficultyChange {
    /// The whole change `dl + du` (the symmetric KL divergence for class probabilities).
    pub fn total(&self) -> f64 {
        self.learning + self.unlearning
    }
}

/// `(a - b)·ln(a / b)` with both floored at [`LOG_FLOOR`] inside the log.
fn change_term(a: f64, b: f64) -> f64 {
    (a - b) * (a.max(LOG_FLOOR) / b.max(LOG_FLOOR)).ln()
}

/// The change of one sample's predicted distribution from `prev` to `curr` with true class
/// `label`; unchecked (the caller validates lengths, label and values).
fn probability_change(prev: &[f64], curr: &[f64], label: usize) -> DifficultyChange {
    let mut d = DifficultyChange::default();
    for (j, (&p0, &p1)) in prev.iter().zip(curr).enumerate() {
        let term = change_term(p1, p0);
        if (j == label) == (p1 > p0) {
            d.learning += term;
        } else {
            d.unlearning += term;
        }
    }
    d
}

/// The change of one sample's loss from `prev` to `curr`: learning when it goes down.
fn loss_change(prev: f64, curr: f64) -> DifficultyChange {
    let term = change_term(curr, prev);
    if curr < prev {
        DifficultyChange {
            learning: term,
            unlearning: 0.0,
        }
    } else {
        DifficultyChange {
            learning: 0.0,
            unlearning: term,
        }
    }
}

/// Hyper-parameters of an [`InstanceDifficultySampler`]; defaults `c = 1` (the reference
/// block's value), seed 0, epochs as long as the training set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DifficultyConfig {
    /// Smoothing constant `c > 0` of `D = (c + Σdu) / (c + Σdl)`: the larger, the slower the
    /// difficulties move away from 1.
    pub c: f64,
    /// Seed of the per-epoch random streams.
    pub seed: u64,
    /// Indices per epoch; `None` (default) for the number of samples.
    pub epoch_len: Option<usize>,
}

impl Default for DifficultyConfig {
    fn default() -> Self {
        Self {
            c: 1.0,
            seed: 0,
            epoch_len: None,
        }
    }
}

impl DifficultyConfig {
    /// Checks `c` (finite, > 0) and the epoch length (>= 1 when given).
    pub fn validate(&self) -> Result<()> {
        if !(self.c.is_finite() && self.c > 0.0) {
            return invalid("c", self.c, "a finite number > 0");
        }
        resolve_epoch_len(self.epoch_len, 1)?;
        Ok(())
    }
}

/// Per-sample difficulty state and the sampler it drives.
///
/// Serialisable: the accumulated `Σdl`, `Σdu` are stored, so a resumed run continues exactly
/// with a format that round-trips f64 (serde_json does with its `float_roundtrip` feature;
/// without it the last bit may change). Deserialising checks every invariant. Update it once per epoch with
/// [`update_from_probabilities`](Self::update_from_probabilities) or
/// [`update_from_losses`](Self::update_from_losses); keeping the previous epoch's predictions
/// is the caller's job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "DifficultyState")]
pub struct InstanceDifficultySampler {
    config: DifficultyConfig,
    /// `Σ_t dl` per sample.
    learning: Vec<f64>,
    /// `Σ_t du` per sample.
    unlearning: Vec<f64>,
    /// Number of updates so far.
    updates: usize,
}

/// The unchecked form serde reads before [`InstanceDifficultySampler::try_from`] checks it.
#[derive(Deserialize)]
struct DifficultyState {
    config: DifficultyConfig,
    learning: Vec<f64>,
    unlearning: Vec<f64>,
    updates: usize,
}

impl TryFrom<DifficultyState> for InstanceDifficultySampler {
    type Error = DataError;

    fn try_from(s: DifficultyState) -> Result<Self> {
        s.config.validate()?;
        if s.learning.is_empty() {
            return Err(DataError::InvalidState("no samples".into()));
        }
        if s.learning.len() != s.unlearning.len() {
            return Err(DataError::InvalidState(format!(
                "{} learning sums but {} unlearning sums",
                s.learning.len(),
                s.unlearning.len()
            )));
        }
        let sums = s.learning.iter().chain(&s.unlearning);
        if let Some(v) = sums.copied().find(|v| !(v.is_finite() && *v >= 0.0)) {
            return Err(DataError::InvalidState(format!(
                "accumulated change {v}: expected finite and >= 0"
            )));
        }
        for (i, (&l, &u)) in s.learning.iter().zip(&s.unlearning).enumerate() {
            check_difficulty(i, s.config.c, l, u)
                .map_err(|e| DataError::InvalidState(e.to_string()))?;
        }
        Ok(Self {
            config: s.config,
            learning: s.learning,
            unlearning: s.unlearning,
            updates: s.updates,
        })
    }
}

impl InstanceDifficultySampler {
    /// A fresh state for `n_samples` samples, every `D_i = 1` (uniform sampling).
    ///
    /// Errors: [`DataError::Empty`] for no samples, those of [`DifficultyConfig::validate`].
    pub fn new(n_samples: usize, config: &DifficultyConfig) -> Result<Self> {
        config.validate()?;
        if n_samples == 0 {
            return Err(DataError::Empty("no samples to sample from"));
        }
        Ok(Self {
            config: config.clone(),
            learning: vec![0.0; n_samples],
            unlearning: vec![0.0; n_samples],
            updates: 0,
        })
    }

    /// The configuration it was built with.
    pub fn config(&self) -> &DifficultyConfig {
        &self.config
    }

    /// Number of updates (epochs) accumulated so far.
    pub fn updates(&self) -> usize {
        self.updates
    }

    /// Accumulates one epoch from the predicted class distributions of the previous (`prev`)
    /// and current (`curr`) epoch, row-major `n_samples × n_classes`, and the true classes
    /// `labels`. Returns each sample's change; nothing is changed when an input is refused.
    ///
    /// Errors: [`DataError::LengthMismatch`] for wrong lengths, [`DataError::BinOutOfRange`]
    /// for a label `>= n_classes`, [`DataError::InvalidProbability`] for a value that is not in
    /// [0, 1], [`DataError::RowSum`] for a row that does not sum to 1 within
    /// [`ROW_SUM_TOLERANCE`].
    pub fn update_from_probabilities(
        &mut self,
        prev: &[f64],
        curr: &[f64],
        labels: &[usize],
        n_classes: usize,
    ) -> Result<Vec<DifficultyChange>> {
        let n = self.learning.len();
        check_len("labels vs samples", labels.len(), n)?;
        if n_classes == 0 {
            return invalid("n_classes", 0, "at least 1");
        }
        let cells = n.saturating_mul(n_classes);
        check_len(
            "previous probabilities vs samples × classes",
            prev.len(),
            cells,
        )?;
        check_len(
            "current probabilities vs samples × classes",
            curr.len(),
            cells,
        )?;
        if let Some((index, &bin)) = labels.iter().enumerate().find(|(_, l)| **l >= n_classes) {
            return Err(DataError::BinOutOfRange {
                index,
                bin,
                n_bins: n_classes,
            });
        }
        check_probabilities(prev, n_classes)?;
        check_probabilities(curr, n_classes)?;
        let changes: Vec<DifficultyChange> = prev
            .chunks_exact(n_classes)
            .zip(curr.chunks_exact(n_classes))
            .zip(labels)
            .map(|((p0, p1), &y)| probability_change(p0, p1, y))
            .collect();
        self.accumulate(&changes)?;
        Ok(changes)
    }

    /// Accumulates one epoch from each sample's loss in the previous (`prev`) and current
    /// (`curr`) epoch (regression; see the module docs). Nothing is changed when an input is
    /// refused.
    ///
    /// Errors: [`DataError::LengthMismatch`] for wrong lengths, [`DataError::InvalidLoss`] for
    /// a NaN, infinite or negative loss, [`DataError::DifficultyOutOfRange`] when a change is
    /// so large (losses near the f64 limit, a tiny `c`) that a difficulty would overflow.
    pub fn update_from_losses(
        &mut self,
        prev: &[f64],
        curr: &[f64],
    ) -> Result<Vec<DifficultyChange>> {
        let n = self.learning.len();
        check_len("previous losses vs samples", prev.len(), n)?;
        check_len("current losses vs samples", curr.len(), n)?;
        for losses in [prev, curr] {
            if let Some((index, &value)) = losses
                .iter()
                .enumerate()
                .find(|(_, l)| !(l.is_finite() && **l >= 0.0))
            {
                return Err(DataError::InvalidLoss { index, value });
            }
        }
        let changes: Vec<DifficultyChange> = prev
            .iter()
            .zip(curr)
            .map(|(&a, &b)| loss_change(a, b))
            .collect();
        self.accumulate(&changes)?;
        Ok(changes)
    }

    /// Adds one epoch's changes, or nothing when a difficulty would leave the f64 range.
    fn accumulate(&mut self, changes: &[DifficultyChange]) -> Result<()> {
        let c = self.config.c;
        for (index, d) in changes.iter().enumerate() {
            let l = self.learning[index] + d.learning;
            let u = self.unlearning[index] + d.unlearning;
            check_difficulty(index, c, l, u)?;
        }
        for (i, d) in changes.iter().enumerate() {
            self.learning[i] += d.learning;
            self.unlearning[i] += d.unlearning;
        }
        self.updates += 1;
        Ok(())
    }

    /// `D_i = (c + Σdu) / (c + Σdl)` for every sample (all 1 before the first update).
    pub fn difficulties(&self) -> Vec<f64> {
        let c = self.config.c;
        self.learning
            .iter()
            .zip(&self.unlearning)
            .map(|(&dl, &du)| difficulty(c, dl, du))
            .collect()
    }

    /// The probability `D_i / Σ_k D_k` of drawing each sample.
    pub fn sampling_probabilities(&self) -> Vec<f64> {
        let d = self.difficulties();
        // Scaled by the largest first, so the sum cannot overflow.
        let max = d.iter().copied().fold(0.0, f64::max);
        let total: f64 = d.iter().map(|x| x / max).sum();
        d.iter().map(|x| x / max / total).collect()
    }
}

/// `D = (c + Σdu) / (c + Σdl)`.
fn difficulty(c: f64, learning: f64, unlearning: f64) -> f64 {
    (c + unlearning) / (c + learning)
}

/// Refuses sums whose difficulty is not a finite number > 0 (the sampler's invariant).
fn check_difficulty(index: usize, c: f64, learning: f64, unlearning: f64) -> Result<()> {
    let d = difficulty(c, learning, unlearning);
    if learning.is_finite() && unlearning.is_finite() && d.is_finite() && d > 0.0 {
        Ok(())
    } else {
        Err(DataError::DifficultyOutOfRange {
            index,
            learning,
            unlearning,
        })
    }
}

fn check_len(what: &'static str, left: usize, right: usize) -> Result<()> {
    if left != right {
        return Err(DataError::LengthMismatch { what, left, right });
    }
    Ok(())
}

/// Every value in [0, 1] and every row summing to 1 within [`ROW_SUM_TOLERANCE`].
fn check_probabilities(p: &[f64], n_classes: usize) -> Result<()> {
    for (row, values) in p.chunks_exact(n_classes).enumerate() {
        if let Some((column, &value)) = values
            .iter()
            .enumerate()
            .find(|(_, v)| !(0.0..=1.0).contains(*v))
        {
            return Err(DataError::InvalidProbability { row, column, value });
        }
        let sum: f64 = values.iter().sum();
        if (sum - 1.0).abs() > ROW_SUM_TOLERANCE {
            return Err(DataError::RowSum {
                row,
                sum,
                tolerance: ROW_SUM_TOLERANCE,
            });
        }
    }
    Ok(())
}

impl EpochSampler for InstanceDifficultySampler {
    fn n_samples(&self) -> usize {
        self.learning.len()
    }

    fn epoch_len(&self) -> usize {
        self.config.epoch_len.unwrap_or(self.learning.len())
    }

    fn sample_epoch(&self, epoch: usize) -> Vec<usize> {
        let mut rng = epoch_rng(self.config.seed, epoch);
        // Every D_i is finite and > 0 (checked on update and on deserialising), so the table
        // always builds.
        match AliasTable::new(&self.difficulties()) {
            Ok(table) => table.sample_n(&mut rng, self.epoch_len()),
            Err(_) => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_split_by_direction() {
        // True class 0 goes up, class 1 goes down (learning); class 2 goes up (unlearning).
        let d = probability_change(&[0.5, 0.3, 0.2], &[0.6, 0.1, 0.3], 0);
        let t = |a: f64, b: f64| (a - b) * (a / b).ln();
        assert!((d.learning - (t(0.6, 0.5) + t(0.1, 0.3))).abs() < 1e-15);
        assert!((d.unlearning - t(0.3, 0.2)).abs() < 1e-15);
        // An exact zero is floored inside the log, not turned into an infinity.
        let z = probability_change(&[0.0, 1.0], &[0.5, 0.5], 1);
        assert!(z.learning == 0.0 && z.unlearning.is_finite() && z.unlearning > 10.0);
    }

    #[test]
    fn loss_direction() {
        assert_eq!(loss_change(2.0, 1.0).unlearning, 0.0);
        assert!((loss_change(2.0, 1.0).learning - 2f64.ln()).abs() < 1e-15);
        assert!((loss_change(1.0, 2.0).unlearning - 2f64.ln()).abs() < 1e-15);
        assert_eq!(loss_change(1.5, 1.5).total(), 0.0);
    }
}
