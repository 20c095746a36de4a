//! Progressively-balanced sampling (Kang et al. 2020, "Decoupling Representation and Classifier
//! for Long-Tailed Recognition", §3): from instance-balanced at epoch 0 to class-balanced at
//! epoch `T`, linearly, then class-balanced for every later epoch.

use serde::{Deserialize, Serialize};

use crate::class_aware::{
    BinMembers, Q_CLASS_BALANCED, Q_INSTANCE_BALANCED, bin_probabilities, draw_two_stage,
    sample_probabilities,
};
use crate::epoch::{EpochSampler, epoch_rng, resolve_epoch_len};
use crate::error::{Result, invalid};
use crate::weighted::AliasTable;

/// What moves linearly with the epoch, with `λ = min(t / T, 1)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Interpolation {
    /// The paper's form (default): `p_b(t) = (1 - λ)·p_b^IB + λ·p_b^CB`, a mixture of the
    /// instance- and class-balanced bin probabilities.
    #[default]
    Probabilities,
    /// The exponent: `p_b(t) ∝ n_b^q` with `q = 1 - λ`. Same end points; in between it favours
    /// the rare bins more than the mixture does (at `λ = 1/2` it is square-root sampling).
    Exponent,
}

/// Hyper-parameters of a [`ProgressiveSampler`]; defaults: `T = 90` (the DIR training recipe's
/// epoch count), the paper's probability interpolation, seed 0, epochs as long as the training
/// set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProgressiveConfig {
    /// `T` (>= 1): the epoch at which sampling becomes class-balanced. The paper writes
    /// `t / T` with `T` the number of epochs; for a run of `E` epochs `0..E` that ends exactly
    /// class-balanced, use `T = E - 1`.
    pub total_epochs: usize,
    /// Interpolate the probabilities (the paper) or the exponent `q`.
    pub interpolation: Interpolation,
    /// Seed of the per-epoch random streams.
    pub seed: u64,
    /// Indices per epoch; `None` (default) for the number of samples.
    pub epoch_len: Option<usize>,
}

impl Default for ProgressiveConfig {
    fn default() -> Self {
        Self {
            total_epochs: 90,
            interpolation: Interpolation::Probabilities,
            seed: 0,
            epoch_len: None,
        }
    }
}

impl ProgressiveConfig {
    /// The paper's interpolation reaching class balance at epoch `total_epochs`, seed 0.
    pub fn new(total_epochs: usize) -> Self {
        Self {
            total_epochs,
            ..Self::default()
        }
    }

    /// The same configuration with another seed.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// The same configuration with another interpolation.
    pub fn with_interpolation(mut self, interpolation: Interpolation) -> Self {
        self.interpolation = interpolation;
        self
    }

    /// The same configuration with `epoch_len` indices per epoch.
    pub fn with_epoch_len(mut self, epoch_len: usize) -> Self {
        self.epoch_len = Some(epoch_len);
        self
    }

    /// Checks `total_epochs` (>= 1) and the epoch length (>= 1 when given).
    pub fn validate(&self) -> Result<()> {
        if self.total_epochs == 0 {
            return invalid(
                "total_epochs",
                0,
                "at least 1 (the epoch at which sampling becomes class-balanced)",
            );
        }
        resolve_epoch_len(self.epoch_len, 1)?;
        Ok(())
    }

    /// The mixing weight `λ = min(t / T, 1)` of epoch `epoch`: 0 instance-, 1 class-balanced.
    pub fn lambda(&self, epoch: usize) -> f64 {
        epoch.min(self.total_epochs) as f64 / self.total_epochs.max(1) as f64
    }
}

/// Progressively-balanced sampler: bin probabilities change with the epoch (see
/// [`Interpolation`]); within a bin, samples are drawn uniformly, with replacement.
#[derive(Debug, Clone, PartialEq)]
pub struct ProgressiveSampler {
    members: BinMembers,
    instance_balanced: Vec<f64>,
    class_balanced: Vec<f64>,
    config: ProgressiveConfig,
    epoch_len: usize,
}

impl ProgressiveSampler {
    /// A sampler over samples whose bins are `bin_of` (values in `0..n_bins`).
    ///
    /// Errors: those of [`ProgressiveConfig::validate`] and [`BinMembers::new`].
    pub fn new(bin_of: &[usize], n_bins: usize, config: &ProgressiveConfig) -> Result<Self> {
        config.validate()?;
        let members = BinMembers::new(bin_of, n_bins)?;
        let counts = members.counts();
        let epoch_len = resolve_epoch_len(config.epoch_len, members.n_samples())?;
        Ok(Self {
            instance_balanced: bin_probabilities(&counts, Q_INSTANCE_BALANCED)?,
            class_balanced: bin_probabilities(&counts, Q_CLASS_BALANCED)?,
            members,
            config: config.clone(),
            epoch_len,
        })
    }

    /// The configuration it was built with.
    pub fn config(&self) -> &ProgressiveConfig {
        &self.config
    }

    /// The samples grouped by bin.
    pub fn members(&self) -> &BinMembers {
        &self.members
    }

    /// Bin probabilities of epoch `epoch` (0 for empty bins; they sum to 1).
    pub fn bin_probabilities(&self, epoch: usize) -> Vec<f64> {
        let lambda = self.config.lambda(epoch);
        match self.config.interpolation {
            Interpolation::Probabilities => self
                .instance_balanced
                .iter()
                .zip(&self.class_balanced)
                .map(|(ib, cb)| (1.0 - lambda) * ib + lambda * cb)
                .collect(),
            Interpolation::Exponent => {
                let q = 1.0 - lambda;
                // q is in [0, 1] and some bin is non-empty, so this cannot fail.
                bin_probabilities(&self.members.counts(), q)
                    .unwrap_or_else(|_| self.class_balanced.clone())
            }
        }
    }

    /// Probability of each sample being drawn in epoch `epoch`: `p_{b_i}(t) / n_{b_i}`.
    pub fn sample_probabilities(&self, epoch: usize) -> Vec<f64> {
        sample_probabilities(&self.members, &self.bin_probabilities(epoch))
    }
}

impl EpochSampler for ProgressiveSampler {
    fn n_samples(&self) -> usize {
        self.members.n_samples()
    }

    fn epoch_len(&self) -> usize {
        self.epoch_len
    }

    fn sample_epoch(&self, epoch: usize) -> Vec<usize> {
        let mut rng = epoch_rng(self.config.seed, epoch);
        // Non-negative, finite and summing to 1, so the table always builds.
        match AliasTable::new(&self.bin_probabilities(epoch)) {
            Ok(bins) => draw_two_stage(&self.members, &bins, &mut rng, self.epoch_len),
            Err(_) => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lambda_ramps_then_stays() {
        let c = ProgressiveConfig::new(4);
        let l: Vec<f64> = (0..7).map(|t| c.lambda(t)).collect();
        assert_eq!(l, [0.0, 0.25, 0.5, 0.75, 1.0, 1.0, 1.0]);
    }

    #[test]
    fn midway_mixture_and_exponent() {
        let bins = [0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        let mix = ProgressiveSampler::new(&bins, 2, &ProgressiveConfig::new(2)).unwrap();
        let p = mix.bin_probabilities(1);
        assert!((p[0] - (0.5 * 0.9 + 0.25)).abs() < 1e-15);
        let cfg = ProgressiveConfig::new(2).with_interpolation(Interpolation::Exponent);
        let exp = ProgressiveSampler::new(&bins, 2, &cfg).unwrap();
        let p = exp.bin_probabilities(1);
        let s = 9f64.sqrt();
        assert!((p[0] - s / (s + 1.0)).abs() < 1e-15);
    }
}
