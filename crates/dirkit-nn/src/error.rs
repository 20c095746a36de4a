//! The error type of dirkit-nn's configuration checks.

use dirkit_compute::ComputeError;
use thiserror::Error;

/// A configuration or input refused by dirkit-nn. Tensor operations return
/// `candle_core::Result`; this converts into `candle_core::Error` with `?`.
#[derive(Debug, Error)]
pub enum NnError {
    /// A hyper-parameter outside its valid range, or tensor shapes that do not fit together:
    /// the same two kinds of refusal as dirkit-compute's layers and optimisers, so one type
    /// describes both.
    #[error(transparent)]
    Invalid(#[from] ComputeError),
    /// An error from dirkit-core (binning, kernels, LDS).
    #[error(transparent)]
    Core(#[from] dirkit_core::CoreError),
}

impl NnError {
    /// A [`ComputeError::Shape`]: tensors whose shapes do not fit, described by `message`.
    pub fn shape(message: String) -> Self {
        ComputeError::Shape(message).into()
    }
}

impl From<NnError> for candle_core::Error {
    fn from(e: NnError) -> Self {
        candle_core::Error::wrap(e)
    }
}

/// A [`ComputeError::InvalidParameter`] as an [`NnError`].
pub(crate) fn bad(
    name: &'static str,
    value: impl std::fmt::Display,
    expected: &'static str,
) -> NnError {
    dirkit_compute::error::bad(name, value, expected).into()
}

/// Returns a [`ComputeError::InvalidParameter`] as a candle error.
pub(crate) fn invalid<T>(
    name: &'static str,
    value: impl std::fmt::Display,
    expected: &'static str,
) -> candle_core::Result<T> {
    Err(bad(name, value, expected).into())
}
