//! # dirkit
//!
//! Deep imbalanced regression: the label-density core ([`dirkit_core`], re-exported at the
//! root), the Candle layer ([`nn`]: FDS, regression and binned losses, heads) over the generic
//! training compute ([`compute`]: CPU kernels, ResNets, Adam, checkpoints), the data
//! side ([`data`]: samplers, datasets, the built-in synthetic data) and the training recipe
//! ([`recipe`]: age estimation end to end).

/// Generic training compute on Candle: CPU kernels, the work-sized matmul and linear layer,
/// ResNets, Adam, checkpoints (the `dirkit-compute` crate).
pub use dirkit_compute as compute;
pub use dirkit_core::*;
/// Samplers over binned training sets and the built-in synthetic data (the `dirkit-data` crate).
pub use dirkit_data as data;
/// FDS, regression and discretised-label losses, and the heads on Candle (the `dirkit-nn` crate).
pub use dirkit_nn as nn;
/// End-to-end training on images: the age-estimation recipe (the `dirkit-recipe` crate).
pub use dirkit_recipe as recipe;
/// The tabular resamplers (SMOTER, SMOGN, GN, RO, RU, WERCS) and their CSV tables.
pub use dirkit_tabular as tabular;
