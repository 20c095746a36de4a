//! # dirkit-tabular
//!
//! The resampling family of utility-based imbalanced regression over tables with numeric and
//! nominal columns — random over- and under-sampling, Gaussian noise, SMOTER, SMOGN and WERCS
//! (Torgo, Ribeiro & Branco; the R package UBL) — exact, seeded and parallel, with the CSV
//! reading and writing around them. The relevance function φ, bumps and SERA come from
//! [`dirkit_core::relevance`].
//!
//! ```
//! use dirkit_core::relevance::{Relevance, RelevanceConfig};
//! use dirkit_tabular::{Frame, Method, ResampleConfig, resample};
//!
//! let mut csv = String::from("x,colour,y\n");
//! for i in 0..60 {
//!     let y = if i < 54 { 10.0 + (i % 7) as f64 } else { 40.0 + i as f64 };
//!     csv.push_str(&format!("{},{},{y}\n", i as f64 / 3.0, ["red", "blue"][i % 2]));
//! }
//! let frame = Frame::parse_csv(csv.as_bytes(), "example.csv", &[])?;
//! let target = frame.column_index("y", "example.csv")?;
//! let phi = Relevance::from_targets(frame.columns[target].numbers().unwrap(),
//!                                   &RelevanceConfig::default())?;
//! let config = ResampleConfig { seed: 7, ..ResampleConfig::new(Method::Smogn) };
//! let (out, report) = resample(&frame, target, &phi, &config)?;
//! assert!(report.rare_share_after > report.rare_share_before);
//! assert_eq!(out.names, frame.names);
//! # Ok::<(), dirkit_tabular::TabularError>(())
//! ```
//!
//! Differences from the `smogn` Python package (0.1.2), on purpose: under-sampling keeps the
//! rows it draws (smogn keeps the complement of its draw from the whole table), the original
//! rare rows are always kept, and SMOTER's target is the distance-weighted mean
//! `(d_b·y_a + d_a·y_b)/(d_a + d_b)` (smogn computes `a + b/2`). Differences from UBL: the
//! distances to the two parents sum over every feature (UBL keeps only the last feature's), and
//! SMOGN's extra rows use `pert` like the others (UBL caps them at 0.02).
#![warn(missing_docs)]

pub mod error;
pub mod frame;
mod neighbours;
pub mod resample;

pub use error::{Result, TabularError};
pub use frame::{Column, Frame, format_number};
pub use resample::{
    BumpReport, Distance, Method, ResampleConfig, ResampleReport, Strategy, resample,
};
