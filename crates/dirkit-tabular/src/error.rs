//! The error type of dirkit-tabular: every message names the file, row and column it is about.

use thiserror::Error;

/// Why reading, resampling or writing a table failed.
#[derive(Debug, Error)]
pub enum TabularError {
    /// A file could not be opened, read or written.
    #[error("{path}: {source}")]
    Io {
        /// The path as given.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A cell is missing or not what its column holds.
    #[error("{path}:{line}: column '{column}': {message}")]
    Value {
        /// The input's name.
        path: String,
        /// 1-based line number in the file (the header is line 1).
        line: u64,
        /// Column name.
        column: String,
        /// What is wrong, quoting the value.
        message: String,
    },
    /// The table as a whole is malformed (empty, ragged, duplicate or unknown column…).
    #[error("{path}: {message}")]
    Table {
        /// The input's name.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// The request cannot be carried out on this data (no rare sample, constant target…).
    #[error("{0}")]
    Invalid(String),
    /// Refused by dirkit-core (relevance, bumps).
    #[error("{0}")]
    Core(#[from] dirkit_core::CoreError),
}

/// Result alias for dirkit-tabular.
pub type Result<T> = std::result::Result<T, TabularError>;
