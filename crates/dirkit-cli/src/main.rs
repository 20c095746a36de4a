//! The `dirkit` command line: effective-density reweighting tables (`dirkit weights`),
//! per-shot evaluation reports (`dirkit eval`), balanced dataset splits (`dirkit split`), the
//! relevance function φ (`dirkit relevance`) and relevance-based resampling of tables
//! (`dirkit resample`). A thin layer over dirkit-core, dirkit-tabular and dirkit-data.

mod args;
mod error;
mod eval;
mod input;
mod labels;
mod output;
mod phi;
mod resample;
mod split;
mod table;
mod weights;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

use args::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let result = match &cli.command {
        Command::Weights(a) => weights::run(a, &mut out),
        Command::Eval(a) => eval::run(a, &mut out),
        Command::Split(a) => split::run(a, &mut out),
        Command::Relevance(a) => phi::run(a, &mut out),
        Command::Resample(a) => resample::run(a, &mut out),
    };
    let flushed = out.flush();
    match result {
        Ok(()) => match flushed {
            // A closed pipe (`dirkit weights … | head`) is not an error.
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                eprintln!("dirkit: error: <stdout>: {e}");
                ExitCode::from(2)
            }
            _ => ExitCode::SUCCESS,
        },
        Err(error::CliError::Io { source, .. })
            if source.kind() == std::io::ErrorKind::BrokenPipe =>
        {
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("dirkit: error: {e}");
            ExitCode::from(2)
        }
    }
}
