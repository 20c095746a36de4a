//! Class-aware sampling over bins (methods.md §8): bin `b` is chosen with probability
//! `p_b ∝ n_b^q` over the non-empty bins, then a sample uniformly within it (with replacement,
//! as the reference samplers of Kang et al. 2020 do).

use dirkit_core::{MAX_BINS, SplitMix64};
use serde::{Deserialize, Serialize};

use crate::epoch::{EpochSampler, epoch_rng, resolve_epoch_len};
use crate::error::{DataError, Result, invalid};
use crate::weighted::AliasTable;

/// `q` of instance-balanced sampling: `p_b ∝ n_b`, the same as drawing samples uniformly.
pub const Q_INSTANCE_BALANCED: f64 = 1.0;
/// `q` of square-root sampling: `p_b ∝ √n_b` (Mahajan et al. 2018; Kang et al. 2020).
pub const Q_SQUARE_ROOT: f64 = 0.5;
/// `q` of class-balanced sampling: every non-empty bin equally likely (Shen et al. 2016).
pub const Q_CLASS_BALANCED: f64 = 0.0;

/// The training samples grouped by bin, to draw a sample uniformly within a chosen bin.
#[derive(Debug, Clone, PartialEq)]
pub struct BinMembers {
    /// Sample indices ordered by bin (stable: ascending within a bin).
    order: Vec<usize>,
    /// Bin `b`'s samples are `order[offsets[b]..offsets[b + 1]]`.
    offsets: Vec<usize>,
}

impl BinMembers {
    /// Groups samples by their bin: `bin_of[i]` is the bin (class) of sample `i`, in
    /// `0..n_bins`.
    ///
    /// Errors: [`DataError::Empty`] for no samples, [`DataError::InvalidParameter`] for
    /// `n_bins` outside `1..=2^24` ([`MAX_BINS`]), [`DataError::BinOutOfRange`] for the first
    /// sample whose bin is `>= n_bins`.
    pub fn new(bin_of: &[usize], n_bins: usize) -> Result<Self> {
        if bin_of.is_empty() {
            return Err(DataError::Empty("no samples to sample from"));
        }
        if n_bins == 0 || n_bins > MAX_BINS {
            return invalid("n_bins", n_bins, "between 1 and 2^24 (16777216)");
        }
        let mut offsets = vec![0usize; n_bins + 1];
        for (index, &bin) in bin_of.iter().enumerate() {
            if bin >= n_bins {
                return Err(DataError::BinOutOfRange { index, bin, n_bins });
            }
            offsets[bin + 1] += 1;
        }
        for b in 0..n_bins {
            offsets[b + 1] += offsets[b];
        }
        let mut next = offsets.clone();
        let mut order = vec![0usize; bin_of.len()];
        for (i, &bin) in bin_of.iter().enumerate() {
            order[next[bin]] = i;
            next[bin] += 1;
        }
        Ok(Self { order, offsets })
    }

    /// Number of bins.
    pub fn n_bins(&self) -> usize {
        self.offsets.len() - 1
    }

    /// Number of samples.
    pub fn n_samples(&self) -> usize {
        self.order.len()
    }

    /// The samples of bin `b`, ascending (empty for an empty bin or `b >= n_bins`).
    pub fn members(&self, b: usize) -> &[usize] {
        match (self.offsets.get(b), self.offsets.get(b + 1)) {
            (Some(&lo), Some(&hi)) => &self.order[lo..hi],
            _ => &[],
        }
    }

    /// Number of samples `n_b` in each bin.
    pub fn counts(&self) -> Vec<usize> {
        self.offsets.windows(2).map(|w| w[1] - w[0]).collect()
    }

    /// A sample of the non-empty bin `b`, uniformly.
    pub(crate) fn draw(&self, b: usize, rng: &mut SplitMix64) -> usize {
        let lo = self.offsets[b];
        self.order[lo + rng.below(self.offsets[b + 1] - lo)]
    }
}

/// Checks a class-aware exponent: finite and in [0, 1].
pub(crate) fn check_q(q: f64) -> Result<()> {
    if !(0.0..=1.0).contains(&q) {
        return invalid(
            "q",
            q,
            "a number in [0, 1] (1 instance-balanced, 0.5 square-root, 0 class-balanced)",
        );
    }
    Ok(())
}

/// Bin probabilities `p_b = n_b^q / Σ_{b': n_b' > 0} n_b'^q`; empty bins get 0 (with `q = 0`
/// they would otherwise count as `0^0 = 1`).
///
/// Errors: [`DataError::InvalidParameter`] for `q` outside [0, 1], [`DataError::Empty`] when
/// every count is zero.
pub fn bin_probabilities(counts: &[usize], q: f64) -> Result<Vec<f64>> {
    check_q(q)?;
    let w: Vec<f64> = counts.iter().map(|&n| bin_weight(n, q)).collect();
    let total: f64 = w.iter().sum();
    if total == 0.0 {
        return Err(DataError::Empty("every bin is empty"));
    }
    Ok(w.iter().map(|x| x / total).collect())
}

/// `n^q` for a non-empty bin, 0 for an empty one; `q = 1` gives `n` exactly.
fn bin_weight(n: usize, q: f64) -> f64 {
    if n == 0 { 0.0 } else { (n as f64).powf(q) }
}

/// Hyper-parameters of a [`ClassAwareSampler`]; the default is class-balanced (`q = 0`),
/// seed 0, epochs as long as the training set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClassAwareConfig {
    /// Exponent `q` in [0, 1] of `p_b ∝ n_b^q`: 1 instance-balanced, 0.5 square-root,
    /// 0 class-balanced (default).
    pub q: f64,
    /// Seed of the per-epoch random streams ([`epoch_rng`]).
    pub seed: u64,
    /// Indices per epoch; `None` (default) for the number of samples.
    pub epoch_len: Option<usize>,
}

impl Default for ClassAwareConfig {
    fn default() -> Self {
        Self::class_balanced()
    }
}

impl ClassAwareConfig {
    /// `q = 1`: every sample equally likely, the plain uniform sampler.
    pub fn instance_balanced() -> Self {
        Self::new(Q_INSTANCE_BALANCED)
    }

    /// `q = 0.5`: bins drawn in proportion to the square root of their counts.
    pub fn square_root() -> Self {
        Self::new(Q_SQUARE_ROOT)
    }

    /// `q = 0`: every non-empty bin equally likely.
    pub fn class_balanced() -> Self {
        Self::new(Q_CLASS_BALANCED)
    }

    /// Any exponent `q` (checked by [`validate`](Self::validate)), seed 0, default epoch length.
    pub fn new(q: f64) -> Self {
        Self {
            q,
            seed: 0,
            epoch_len: None,
        }
    }

    /// The same configuration with another seed.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// The same configuration with `epoch_len` indices per epoch.
    pub fn with_epoch_len(mut self, epoch_len: usize) -> Self {
        self.epoch_len = Some(epoch_len);
        self
    }

    /// Checks `q` (in [0, 1]) and the epoch length (>= 1 when given).
    pub fn validate(&self) -> Result<()> {
        check_q(self.q)?;
        resolve_epoch_len(self.epoch_len, 1)?;
        Ok(())
    }
}

/// Class-aware sampler: each draw picks bin `b` with probability `p_b ∝ n_b^q` (non-empty bins
/// only, so an empty bin is never drawn), then one of its samples uniformly, with replacement.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassAwareSampler {
    members: BinMembers,
    bins: AliasTable,
    config: ClassAwareConfig,
    epoch_len: usize,
}

impl ClassAwareSampler {
    /// A sampler over samples whose bins are `bin_of` (values in `0..n_bins`).
    ///
    /// Errors: those of [`ClassAwareConfig::validate`] and [`BinMembers::new`].
    pub fn new(bin_of: &[usize], n_bins: usize, config: &ClassAwareConfig) -> Result<Self> {
        config.validate()?;
        let members = BinMembers::new(bin_of, n_bins)?;
        let weights: Vec<f64> = members
            .counts()
            .iter()
            .map(|&n| bin_weight(n, config.q))
            .collect();
        let bins = AliasTable::new(&weights)?;
        let epoch_len = resolve_epoch_len(config.epoch_len, members.n_samples())?;
        Ok(Self {
            members,
            bins,
            config: config.clone(),
            epoch_len,
        })
    }

    /// The configuration it was built with.
    pub fn config(&self) -> &ClassAwareConfig {
        &self.config
    }

    /// The samples grouped by bin.
    pub fn members(&self) -> &BinMembers {
        &self.members
    }

    /// Probability `p_b` of each bin (0 for empty bins).
    pub fn bin_probabilities(&self) -> &[f64] {
        self.bins.probabilities()
    }

    /// Probability of each sample being drawn: `p_{b_i} / n_{b_i}`.
    pub fn sample_probabilities(&self) -> Vec<f64> {
        sample_probabilities(&self.members, self.bins.probabilities())
    }
}

/// Per-sample probabilities from bin probabilities: `p_{b_i} / n_{b_i}`.
pub(crate) fn sample_probabilities(members: &BinMembers, bin_p: &[f64]) -> Vec<f64> {
    let mut p = vec![0.0; members.n_samples()];
    for (b, &pb) in bin_p.iter().enumerate() {
        let m = members.members(b);
        for &i in m {
            p[i] = pb / m.len() as f64;
        }
    }
    p
}

/// `n` draws: a bin from `bins`, then a sample within it.
pub(crate) fn draw_two_stage(
    members: &BinMembers,
    bins: &AliasTable,
    rng: &mut SplitMix64,
    n: usize,
) -> Vec<usize> {
    (0..n)
        .map(|_| members.draw(bins.sample(rng), rng))
        .collect()
}

impl EpochSampler for ClassAwareSampler {
    fn n_samples(&self) -> usize {
        self.members.n_samples()
    }

    fn epoch_len(&self) -> usize {
        self.epoch_len
    }

    fn sample_epoch(&self, epoch: usize) -> Vec<usize> {
        let mut rng = epoch_rng(self.config.seed, epoch);
        draw_two_stage(&self.members, &self.bins, &mut rng, self.epoch_len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_group_samples_by_bin() {
        let m = BinMembers::new(&[2, 0, 2, 3, 0, 2], 5).unwrap();
        assert_eq!(m.counts(), [2, 0, 3, 1, 0]);
        assert_eq!(m.members(0), [1, 4]);
        assert_eq!(m.members(1), [] as [usize; 0]);
        assert_eq!(m.members(2), [0, 2, 5]);
        assert_eq!(m.members(9), [] as [usize; 0]);
    }

    #[test]
    fn probabilities_of_the_three_presets() {
        let counts = [100, 0, 25, 1];
        let ib = bin_probabilities(&counts, 1.0).unwrap();
        assert_eq!(ib, [100.0 / 126.0, 0.0, 25.0 / 126.0, 1.0 / 126.0]);
        let sq = bin_probabilities(&counts, 0.5).unwrap();
        assert_eq!(sq, [10.0 / 16.0, 0.0, 5.0 / 16.0, 1.0 / 16.0]);
        let cb = bin_probabilities(&counts, 0.0).unwrap();
        assert_eq!(cb, [1.0 / 3.0, 0.0, 1.0 / 3.0, 1.0 / 3.0]);
    }
}
