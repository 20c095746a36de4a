//! # dirkit
//!
//! Deep imbalanced regression: the label-density core ([`dirkit_core`], re-exported at the
//! root) and the Candle layer ([`nn`]: FDS, losses, regression heads).

pub use dirkit_core::*;
/// FDS, regression losses and the regression head on Candle (the `dirkit-nn` crate).
pub use dirkit_nn as nn;
