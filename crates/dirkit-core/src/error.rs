//! The one error type of dirkit-core.

use thiserror::Error;

/// Everything dirkit-core can refuse: invalid hyper-parameters and invalid labels.
///
/// Messages are one line and name the offending value, so a CLI can print them as they are.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum CoreError {
    /// A hyper-parameter is outside its valid range (`name`, the value given, what is expected).
    #[error("invalid {name} = {value}: {expected}")]
    InvalidParameter {
        /// Parameter name as the user would write it (`ks`, `sigma`, `beta`, …).
        name: &'static str,
        /// The value given, formatted.
        value: String,
        /// What a valid value looks like.
        expected: &'static str,
    },
    /// A label is NaN or infinite; `index` is its 0-based position in the input.
    #[error("label #{index} is {value}: labels must be finite numbers")]
    NonFiniteLabel {
        /// 0-based position of the label in the input slice.
        index: usize,
        /// The offending value.
        value: f64,
    },
    /// A label falls outside the binning range under [`crate::OutOfRange::Error`].
    #[error("label #{index} = {value} is outside the bin range [{start}, {end})")]
    LabelOutOfRange {
        /// 0-based position of the label in the input slice.
        index: usize,
        /// The offending value.
        value: f64,
        /// Inclusive lower edge of the first bin.
        start: f64,
        /// Exclusive upper edge of the last bin.
        end: f64,
    },
    /// No label was given (or every label was dropped as out of range).
    #[error("{0}")]
    Empty(&'static str),
    /// Two inputs that must have the same length do not.
    #[error("length mismatch: {what} ({left} vs {right})")]
    LengthMismatch {
        /// What is being compared.
        what: &'static str,
        /// Length of the first input.
        left: usize,
        /// Length of the second input.
        right: usize,
    },
}

/// Result alias for dirkit-core.
pub type Result<T> = std::result::Result<T, CoreError>;

pub(crate) fn invalid<T>(
    name: &'static str,
    value: impl std::fmt::Display,
    expected: &'static str,
) -> Result<T> {
    Err(CoreError::InvalidParameter {
        name,
        value: value.to_string(),
        expected,
    })
}
