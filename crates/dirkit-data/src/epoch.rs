//! What every sampler shares: the [`EpochSampler`] trait and the per-epoch random stream.

use dirkit_core::SplitMix64;

use crate::error::{Result, invalid};

/// A sampler that yields one epoch's training indices at a time.
///
/// The indices of epoch `k` depend only on the sampler's seed, its current probabilities and `k`,
/// never on which epochs were drawn before, so a resumed run draws exactly what an uninterrupted
/// one would have.
pub trait EpochSampler {
    /// Number of samples in the training set (indices are in `0..n_samples()`).
    fn n_samples(&self) -> usize;

    /// Number of indices per epoch (defaults to the number of samples).
    fn epoch_len(&self) -> usize;

    /// The indices of epoch `epoch` (0-based), drawn with replacement; `epoch_len()` of them.
    fn sample_epoch(&self, epoch: usize) -> Vec<usize>;
}

/// The random stream of epoch `epoch` under `seed`.
///
/// Its state is two SplitMix64 outputs chained over `(seed, epoch)`. Both steps are bijections,
/// so every epoch of a seed starts from a different state, and the states are scattered over
/// the 2^64 cycle: two epochs' streams would share draws only if their starts were a few steps
/// apart, which has a chance of about `draws / 2^64`. (Seeding with `seed + epoch` instead
/// would make epoch `k + 1` replay epoch `k` shifted by one draw.)
pub fn epoch_rng(seed: u64, epoch: usize) -> SplitMix64 {
    let key = SplitMix64::new(seed).next_u64();
    let state = SplitMix64::new(key ^ epoch as u64).next_u64();
    SplitMix64::new(state)
}

/// The epoch length to use: `requested` when given (it must be >= 1), else `n_samples`.
pub(crate) fn resolve_epoch_len(requested: Option<usize>, n_samples: usize) -> Result<usize> {
    match requested {
        Some(0) => invalid("epoch_len", 0, "at least 1 index per epoch"),
        Some(n) => Ok(n),
        None => Ok(n_samples),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_streams_differ_and_repeat() {
        let draw = |seed, epoch| {
            let mut r = epoch_rng(seed, epoch);
            (0..4).map(|_| r.next_u64()).collect::<Vec<_>>()
        };
        assert_eq!(draw(7, 3), draw(7, 3));
        assert_ne!(draw(7, 3), draw(7, 4));
        assert_ne!(draw(7, 3), draw(8, 3));
        // No shifted replay between neighbouring epochs.
        let (a, b) = (draw(7, 0), draw(7, 1));
        assert!(a[1..].iter().all(|x| !b.contains(x)));
    }

    #[test]
    fn epoch_len_defaults_to_the_number_of_samples() {
        assert_eq!(resolve_epoch_len(None, 12), Ok(12));
        assert_eq!(resolve_epoch_len(Some(5), 12), Ok(5));
        assert!(resolve_epoch_len(Some(0), 12).is_err());
    }
}
