//! Drawing indices with probability proportional to non-negative weights: Walker's alias method
//! in Vose's numerically stable construction (Vose 1991), O(n) to build and O(1) per draw.

use dirkit_core::SplitMix64;

use crate::epoch::{EpochSampler, epoch_rng, resolve_epoch_len};
use crate::error::{DataError, Result};

/// Alias table over `n` weights: draws index `i` with probability `w_i / Σ w`.
///
/// Zero weights are left out of the table, so their indices are never drawn. The draw is exact
/// up to the f64 rounding of the table's thresholds (relative error about 1e-16 per index). Each
/// draw consumes one [`SplitMix64::below`] and one [`SplitMix64::uniform`].
#[derive(Debug, Clone, PartialEq)]
pub struct AliasTable {
    /// Original indices of the positive weights; table slot `k` stands for `support[k]`.
    support: Vec<usize>,
    /// Probability of keeping slot `k` once it is chosen (else its alias is returned).
    threshold: Vec<f64>,
    /// Slot returned when slot `k` is chosen but not kept.
    alias: Vec<usize>,
    /// `w_i / Σ w` for every original index, zeros included.
    probabilities: Vec<f64>,
}

impl AliasTable {
    /// Builds the table from `weights` (any positive scale; they need not sum to 1). A weight
    /// below `2^-1074` times the largest one is indistinguishable from zero in f64 and is
    /// treated as zero.
    ///
    /// Errors: [`DataError::Empty`] for no weights, [`DataError::InvalidWeight`] for the first
    /// NaN, infinite or negative weight, [`DataError::AllZeroWeights`] when none is positive.
    pub fn new(weights: &[f64]) -> Result<Self> {
        if weights.is_empty() {
            return Err(DataError::Empty("no weights to sample from"));
        }
        if let Some((index, &value)) = weights
            .iter()
            .enumerate()
            .find(|(_, w)| !(w.is_finite() && **w >= 0.0))
        {
            return Err(DataError::InvalidWeight { index, value });
        }
        let max = weights.iter().copied().fold(0.0, f64::max);
        if max == 0.0 {
            return Err(DataError::AllZeroWeights(weights.len()));
        }
        // Dividing by the largest weight first keeps the sum finite for weights near f64::MAX.
        let scaled: Vec<f64> = weights.iter().map(|w| w / max).collect();
        let total: f64 = scaled.iter().sum();
        let probabilities: Vec<f64> = scaled.iter().map(|w| w / total).collect();
        let support: Vec<usize> = (0..weights.len()).filter(|&i| scaled[i] > 0.0).collect();

        let m = support.len();
        let mut mass: Vec<f64> = support
            .iter()
            .map(|&i| scaled[i] * m as f64 / total)
            .collect();
        let mut threshold = vec![1.0; m];
        let mut alias: Vec<usize> = (0..m).collect();
        let (mut small, mut large): (Vec<usize>, Vec<usize>) = (0..m).partition(|&k| mass[k] < 1.0);
        while let (Some(&s), Some(&l)) = (small.last(), large.last()) {
            small.pop();
            threshold[s] = mass[s];
            alias[s] = l;
            mass[l] = (mass[l] + mass[s]) - 1.0;
            if mass[l] < 1.0 {
                large.pop();
                small.push(l);
            }
        }
        // Whatever is left holds a mass of 1 up to rounding: it keeps itself (threshold 1).
        Ok(Self {
            support,
            threshold,
            alias,
            probabilities,
        })
    }

    /// Number of weights the table was built from (zeros included).
    pub fn len(&self) -> usize {
        self.probabilities.len()
    }

    /// Always false: a table has at least one positive weight.
    pub fn is_empty(&self) -> bool {
        self.probabilities.is_empty()
    }

    /// The normalised probabilities `w_i / Σ w`, one per weight (they sum to 1 up to rounding).
    pub fn probabilities(&self) -> &[f64] {
        &self.probabilities
    }

    /// One index drawn with probability `w_i / Σ w`.
    pub fn sample(&self, rng: &mut SplitMix64) -> usize {
        let slot = rng.below(self.support.len());
        let kept = rng.uniform() < self.threshold[slot];
        self.support[if kept { slot } else { self.alias[slot] }]
    }

    /// `n` independent draws (with replacement).
    pub fn sample_n(&self, rng: &mut SplitMix64, n: usize) -> Vec<usize> {
        (0..n).map(|_| self.sample(rng)).collect()
    }
}

/// Epoch sampler over fixed per-sample weights (for example LDS weights from dirkit-core):
/// each epoch draws `epoch_len` indices with replacement, index `i` with probability
/// `w_i / Σ w`.
#[derive(Debug, Clone, PartialEq)]
pub struct WeightedSampler {
    table: AliasTable,
    seed: u64,
    epoch_len: usize,
}

impl WeightedSampler {
    /// A sampler over `weights` (one per training sample) whose epochs derive from `seed`;
    /// epochs are as long as the training set. Weight errors as in [`AliasTable::new`].
    pub fn new(weights: &[f64], seed: u64) -> Result<Self> {
        let table = AliasTable::new(weights)?;
        let epoch_len = table.len();
        Ok(Self {
            table,
            seed,
            epoch_len,
        })
    }

    /// The same sampler with `epoch_len` draws per epoch (must be >= 1).
    pub fn with_epoch_len(mut self, epoch_len: usize) -> Result<Self> {
        self.epoch_len = resolve_epoch_len(Some(epoch_len), self.table.len())?;
        Ok(self)
    }

    /// The probability of drawing each sample.
    pub fn probabilities(&self) -> &[f64] {
        self.table.probabilities()
    }
}

impl EpochSampler for WeightedSampler {
    fn n_samples(&self) -> usize {
        self.table.len()
    }

    fn epoch_len(&self) -> usize {
        self.epoch_len
    }

    fn sample_epoch(&self, epoch: usize) -> Vec<usize> {
        let mut rng = epoch_rng(self.seed, epoch);
        self.table.sample_n(&mut rng, self.epoch_len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Probability that the table returns each index, read off the table itself.
    fn table_distribution(t: &AliasTable) -> Vec<f64> {
        let m = t.support.len() as f64;
        let mut p = vec![0.0; t.len()];
        for k in 0..t.support.len() {
            p[t.support[k]] += t.threshold[k] / m;
            p[t.support[t.alias[k]]] += (1.0 - t.threshold[k]) / m;
        }
        p
    }

    #[test]
    fn table_encodes_the_weights_exactly() {
        let cases: [&[f64]; 5] = [
            &[1.0],
            &[0.0, 3.0, 0.0],
            &[1.0, 2.0, 3.0, 4.0],
            &[1e-300, 1.0, 0.0, 5.0, 5.0, 1e10],
            &[f64::MAX, f64::MAX, 1.0],
        ];
        for w in cases {
            let t = AliasTable::new(w).unwrap();
            let total: f64 = t.probabilities().iter().sum();
            assert!((total - 1.0).abs() < 1e-15, "{w:?}");
            for (got, want) in table_distribution(&t).iter().zip(t.probabilities()) {
                assert!((got - want).abs() < 1e-15, "{w:?}: {got} vs {want}");
            }
            for (i, &wi) in w.iter().enumerate() {
                assert_eq!(wi == 0.0, t.probabilities()[i] == 0.0);
            }
        }
    }

    #[test]
    fn zero_weights_never_drawn() {
        let t = AliasTable::new(&[0.0, 1.0, 0.0, 1e-3, 0.0]).unwrap();
        let mut rng = SplitMix64::new(1);
        let draws = t.sample_n(&mut rng, 50_000);
        assert!(draws.iter().all(|&i| i == 1 || i == 3));
        assert!(draws.contains(&3));
    }
}
