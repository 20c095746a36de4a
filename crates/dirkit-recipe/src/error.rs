//! The recipe's error: what went wrong, with the file or setting it concerns.

use std::path::PathBuf;

/// An error of a training run.
#[derive(Debug, thiserror::Error)]
pub enum RecipeError {
    /// A setting is invalid or two settings contradict each other.
    #[error("{0}")]
    Config(String),
    /// The data could not be read (bad rows, unreadable images, …).
    #[error(transparent)]
    Data(#[from] dirkit_data::DataError),
    /// A core computation refused its input (labels, bins).
    #[error(transparent)]
    Core(#[from] dirkit_core::CoreError),
    /// A tensor operation, model or checkpoint failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// A file could not be read or written.
    #[error("{}: {message}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What failed.
        message: String,
    },
}

impl RecipeError {
    /// A [`RecipeError::Config`] from anything printable.
    pub fn config(message: impl std::fmt::Display) -> Self {
        Self::Config(message.to_string())
    }

    /// A [`RecipeError::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, message: impl std::fmt::Display) -> Self {
        Self::Io {
            path: path.into(),
            message: message.to_string(),
        }
    }
}

impl From<dirkit_nn::NnError> for RecipeError {
    fn from(e: dirkit_nn::NnError) -> Self {
        Self::Candle(e.into())
    }
}

/// The recipe's result type.
pub type Result<T> = std::result::Result<T, RecipeError>;
