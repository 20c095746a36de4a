#![warn(missing_docs)]
//! The `dirkit` command line as a library: the argument definitions and one function per
//! subcommand, so that tests and fuzzers run a command in-process exactly as the binary does.
//!
//! Subcommands: effective-density reweighting tables (`dirkit weights`), per-shot evaluation
//! reports (`dirkit eval`), balanced dataset splits (`dirkit split`), the relevance function φ
//! (`dirkit relevance`) and relevance-based resampling of tables (`dirkit resample`) and method selection by
//! cross-validation (`dirkit select`). A thin
//! layer over dirkit-core, dirkit-tabular and dirkit-data.

pub mod args;
pub mod error;
pub mod eval;
pub mod input;
pub mod labels;
pub mod output;
pub mod phi;
pub mod resample;
pub mod select;
pub mod split;
pub mod table;
pub mod weights;

use std::io::Write;

use args::{Cli, Command};

/// Runs the parsed command line, writing its report to `out` (files it was asked to write are
/// written as it goes); an `Err` is the one-line message the binary prints with exit code 2.
pub fn run(cli: &Cli, out: &mut dyn Write) -> error::Result<()> {
    match &cli.command {
        Command::Weights(a) => weights::run(a, out),
        Command::Eval(a) => eval::run(a, out),
        Command::Split(a) => split::run(a, out),
        Command::Relevance(a) => phi::run(a, out),
        Command::Resample(a) => resample::run(a, out),
        Command::Select(a) => select::run(a, out),
    }
}
