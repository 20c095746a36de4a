//! # dirkit-core
//!
//! The pure-Rust label-density core of dirkit (no Candle; of files only [`atomic`], the
//! all-or-nothing replacement every crate that writes shares): equal-width [`Binning`] of
//! continuous targets, smoothing [`Kernel`] windows, label distribution smoothing and per-sample
//! weights ([`LabelDensity`]), [`DenseWeight`], shot groups ([`ShotThresholds`]), the DIR
//! evaluation report ([`RegressionReport`]), the label mixture of Balanced MSE's GAI
//! ([`Gmm1d`]), the relevance function φ of utility-based regression with SERA and the
//! utility-based F-measure ([`relevance`]), the calibration of predicted uncertainty
//! ([`UncertaintyReport`]), `ln Γ` and digamma ([`special`]), the seeded generator behind
//! every random choice ([`SplitMix64`]), and editor line numbers for messages about parsed text
//! ([`lines`]).
//!
//! ```
//! use dirkit_core::{Binning, LabelDensity, LdsConfig, OutOfRange};
//!
//! let ages = [23.0, 25.0, 25.0, 31.0, 47.0, 25.0, 24.0, 80.0];
//! let bins = Binning::new(0.0, 1.0, 121)?;            // AgeDB-DIR bins
//! // sqrt-inverse re-weighting smoothed by a gaussian kernel (ks 5, σ 2): the LDS default.
//! let lds = LabelDensity::fit(&ages, bins, OutOfRange::Clip, &LdsConfig::default())?;
//! let w = lds.sample_weights(&ages)?;
//! assert!((w.iter().sum::<f64>() / w.len() as f64 - 1.0).abs() < 1e-12); // mean weight 1
//! assert!(w[7] > w[1]);                                // the rare age 80 weighs more than 25
//! # Ok::<(), dirkit_core::CoreError>(())
//! ```
#![warn(missing_docs)]

pub mod atomic;
pub mod binning;
pub mod calibration;
pub mod classification;
pub mod denseweight;
pub mod error;
pub mod folds;
pub mod gmm;
pub mod kernel;
pub mod lds;
pub mod lines;
pub mod metrics;
pub mod parallel;
pub mod relevance;
pub mod rng;
pub mod selection;
pub mod shots;
pub mod special;

pub use binning::{Binning, MAX_BINS, OutOfRange};
pub use calibration::{PredictiveDist, SparsificationPoint, UncertaintyReport};
pub use classification::{ClassificationReport, GroupAccuracy};
pub use denseweight::{Bandwidth, DenseWeight, DenseWeightConfig};
pub use error::{CoreError, Result};
pub use folds::{Fold, FoldConfig, relevance_folds, relevance_holdout};
pub use gmm::{EmTrace, Gmm1d, GmmConfig};
pub use kernel::{Kernel, KernelKind, Normalisation};
pub use lds::{LabelDensity, LdsConfig, Numerics, Reweight, smooth};
pub use metrics::{GroupMetrics, RegressionReport, pearson_r};
pub use relevance::{
    BinRule, BinWidthChoice, BoxPlot, BoxPlotStats, Bump, ControlPoint, Extremes, Relevance,
    RelevanceConfig, UtilityScores, bin_width, box_plot_stats, bumps, medcouple, sera, sera_curve,
    sera_with_phi, utility_scores,
};
pub use rng::SplitMix64;
pub use shots::{Shot, ShotThresholds};
