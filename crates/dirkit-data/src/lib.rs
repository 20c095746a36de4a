//! # dirkit-data
//!
//! The data side of dirkit: samplers that yield each epoch's training indices from a seed
//! (methods.md §8). Every sampler implements [`EpochSampler`]: epoch `k`'s indices, drawn with
//! replacement, depend only on the seed, the sampler's probabilities and `k` ([`epoch_rng`]), so
//! a resumed run draws what an uninterrupted one would have.
//!
//! - [`ClassAwareSampler`]: bin `b` with probability `∝ n_b^q` (instance-balanced `q = 1`,
//!   square-root `0.5`, class-balanced `0`), then a sample of it uniformly.
//! - [`ProgressiveSampler`]: from instance- to class-balanced over the epochs (Kang et al. 2020).
//! - [`InstanceDifficultySampler`]: samples drawn in proportion to a difficulty updated after
//!   each epoch from predicted class probabilities or losses (Yu et al. 2022).
//! - [`WeightedSampler`] / [`AliasTable`]: any non-negative per-sample weights, O(1) per draw.
//!
//! ```
//! use dirkit_data::{ClassAwareConfig, ClassAwareSampler, EpochSampler};
//!
//! // Bin (class) of each training sample: bin 0 is common, bin 2 rare, bin 1 empty.
//! let bins = [0, 0, 0, 0, 0, 0, 2, 0, 0, 3];
//! let cfg = ClassAwareConfig::class_balanced().with_seed(7);
//! let sampler = ClassAwareSampler::new(&bins, 4, &cfg)?;
//! assert_eq!(sampler.bin_probabilities(), [1.0 / 3.0, 0.0, 1.0 / 3.0, 1.0 / 3.0]);
//!
//! let epoch_3 = sampler.sample_epoch(3);                 // 10 indices, as many as samples
//! assert_eq!(epoch_3.len(), 10);
//! assert!(epoch_3.iter().all(|&i| bins[i] != 1));        // an empty bin is never drawn
//! assert_eq!(epoch_3, sampler.sample_epoch(3));          // reproducible from (seed, epoch)
//! # Ok::<(), dirkit_data::DataError>(())
//! ```
#![warn(missing_docs)]

pub mod class_aware;
pub mod dataset;
pub mod difficulty;
pub mod epoch;
pub mod error;
pub mod faces;
pub mod progressive;
pub mod split;
pub mod synthetic;
pub mod weighted;

pub use class_aware::{
    BinMembers, ClassAwareConfig, ClassAwareSampler, Q_CLASS_BALANCED, Q_INSTANCE_BALANCED,
    Q_SQUARE_ROOT, bin_probabilities,
};
pub use difficulty::{
    DifficultyChange, DifficultyConfig, InstanceDifficultySampler, LOG_FLOOR, ROW_SUM_TOLERANCE,
};
pub use epoch::{EpochSampler, epoch_rng};
pub use error::{DataError, Result};
pub use progressive::{Interpolation, ProgressiveConfig, ProgressiveSampler};
pub use synthetic::{AGEDB_DIR_TRAIN_COUNTS, SinusoidTask};
pub use weighted::{AliasTable, WeightedSampler};
