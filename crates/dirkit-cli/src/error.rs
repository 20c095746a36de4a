//! The CLI's error type: every failure is one line that names the file, line, column and value.

use thiserror::Error;

/// Why a `dirkit` command failed; printed as `dirkit: error: …` with exit code 2.
#[derive(Debug, Error)]
pub enum CliError {
    /// A file could not be opened, read or written.
    #[error("{path}: {source}")]
    Io {
        /// The path as the user gave it.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A value in an input file is not what was expected.
    #[error("{path}:{line}: column '{column}': {message}")]
    Value {
        /// The input's name (`<stdin>` for `-`).
        path: String,
        /// 1-based line number.
        line: u64,
        /// Column name, or its 0-based index when the input has no header.
        column: String,
        /// What is wrong with the value, quoting it.
        message: String,
    },
    /// The input is malformed as a whole (empty, ragged, unknown column…).
    #[error("{path}: {message}")]
    Input {
        /// The input's name.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// A flag value is invalid or flags contradict each other.
    #[error("{0}")]
    Usage(String),
    /// A hyper-parameter or label refused by dirkit-core.
    #[error("{0}")]
    Core(#[from] dirkit_core::CoreError),
}

/// Result alias for the CLI.
pub type Result<T> = std::result::Result<T, CliError>;
