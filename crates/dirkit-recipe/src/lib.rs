//! End-to-end DIR training on images — the age-estimation recipe of the DIR papers
//! (Yang et al. 2021; Ren et al. 2022; Gong et al. 2022) on Candle:
//!
//! - [`RunConfig`]: data (a folder in the AgeDB-DIR layout or the built-in synthetic faces),
//!   backbone, loss and head (LDS weights, FDS, Balanced MSE, RankSim, binned losses), schedule,
//!   seed — serialised with every checkpoint;
//! - [`RunData`]: the three splits, loaded in parallel with the reference augmentation;
//! - [`Model`]: ResNet backbone + dirkit head + Adam, one training step;
//! - [`Trainer`]: the epoch loop with prefetching, progress bars, FDS's statistics pass,
//!   validation, best/last checkpoints and exact resume; [`EvalReport`]: the test report by
//!   shot, as a table, JSON and figures;
//! - [`speed::measure`]: images/s of a configuration, data loading and compute apart;
//! - [`select`]: which DIR method, at what strength, for a table, by relevance-stratified
//!   cross-validation (the engine behind `dirkit select` and `examples/tabular.rs`).
//!
//! - [`flags::RunFlags`]: the run's settings as command-line flags; [`train::train_and_report`]:
//!   one run from settings to its written report; [`compare`]: the ten methods over seeds.
//!
//! `examples/age_estimation.rs` is the command line over this crate.

#![warn(missing_docs)]

pub mod compare;
pub mod config;
pub mod data;
pub mod error;
pub mod flags;
pub mod model;
pub mod report;
pub mod run;
pub mod select;
pub mod speed;
pub mod train;

pub use config::{
    Arch, BinnedOptions, DataSource, LossSpec, RncSpec, RunConfig, scaled_milestones,
};
pub use data::{RunData, SplitData};
pub use error::{RecipeError, Result};
pub use model::Model;
pub use report::{BinError, EvalReport};
pub use run::{EpochRecord, RunOptions, RunState, Trainer, fresh_run_dir, prepare_run_dir};
