//! The error type of dirkit-nn's configuration checks.

use thiserror::Error;

/// A configuration or input refused by dirkit-nn. Tensor operations return
/// `candle_core::Result`; this converts into `candle_core::Error` with `?`.
#[derive(Debug, Error)]
pub enum NnError {
    /// A hyper-parameter is outside its valid range.
    #[error("invalid {name} = {value}: {expected}")]
    InvalidParameter {
        /// Parameter name as the user would write it.
        name: &'static str,
        /// The value given, formatted.
        value: String,
        /// What a valid value looks like.
        expected: &'static str,
    },
    /// Tensor shapes that do not fit together.
    #[error("shape mismatch: {0}")]
    Shape(String),
    /// An error from dirkit-core (binning, kernels, LDS).
    #[error(transparent)]
    Core(#[from] dirkit_core::CoreError),
}

impl From<NnError> for candle_core::Error {
    fn from(e: NnError) -> Self {
        candle_core::Error::wrap(e)
    }
}

/// An [`NnError::InvalidParameter`].
pub(crate) fn bad(
    name: &'static str,
    value: impl std::fmt::Display,
    expected: &'static str,
) -> NnError {
    NnError::InvalidParameter {
        name,
        value: value.to_string(),
        expected,
    }
}

/// Returns an [`NnError::InvalidParameter`] as a candle error.
pub(crate) fn invalid<T>(
    name: &'static str,
    value: impl std::fmt::Display,
    expected: &'static str,
) -> candle_core::Result<T> {
    Err(NnError::InvalidParameter {
        name,
        value: value.to_string(),
        expected,
    }
    .into())
}
