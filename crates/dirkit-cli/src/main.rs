//! The `dirkit` binary: parses the command line and runs it (see the `dirkit_cli` library).

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

use dirkit_cli::args::Cli;
use dirkit_cli::error::CliError;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let result = dirkit_cli::run(&cli, &mut out);
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
        Err(CliError::Io { source, .. }) if source.kind() == std::io::ErrorKind::BrokenPipe => {
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("dirkit: error: {e}");
            ExitCode::from(2)
        }
    }
}
