//! The error type of dirkit-compute's configuration and shape checks.

use thiserror::Error;

/// A configuration or input refused by dirkit-compute. Tensor operations return
/// `candle_core::Result`; this converts into `candle_core::Error` with `?`.
#[derive(Debug, Error)]
pub enum ComputeError {
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
}

impl From<ComputeError> for candle_core::Error {
    fn from(e: ComputeError) -> Self {
        candle_core::Error::wrap(e)
    }
}

/// A [`ComputeError::InvalidParameter`]: `name` (as the user would write it) has `value`, and
/// `expected` says what a valid value looks like.
pub fn bad(
    name: &'static str,
    value: impl std::fmt::Display,
    expected: &'static str,
) -> ComputeError {
    ComputeError::InvalidParameter {
        name,
        value: value.to_string(),
        expected,
    }
}

/// Returns a [`ComputeError::InvalidParameter`] as a candle error.
pub(crate) fn invalid<T>(
    name: &'static str,
    value: impl std::fmt::Display,
    expected: &'static str,
) -> candle_core::Result<T> {
    Err(bad(name, value, expected).into())
}
