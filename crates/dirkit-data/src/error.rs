//! The one error type of dirkit-data.

use std::fmt;
use std::path::PathBuf;

use thiserror::Error;

/// Everything dirkit-data can refuse: invalid hyper-parameters, bin indices, weights,
/// probabilities and losses.
///
/// Messages are one line and name the offending position and value, so a CLI can print them as
/// they are.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum DataError {
    /// A hyper-parameter is outside its valid range (`name`, the value given, what is expected).
    #[error("invalid {name} = {value}: {expected}")]
    InvalidParameter {
        /// Parameter name as the user would write it (`q`, `c`, `epoch_len`, …).
        name: &'static str,
        /// The value given, formatted.
        value: String,
        /// What a valid value looks like.
        expected: &'static str,
    },
    /// An input that must hold at least one element is empty.
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
    /// A per-sample bin (class) index is not below the number of bins.
    #[error("sample #{index} has bin {bin}, but there are only {n_bins} bins (0..{n_bins})")]
    BinOutOfRange {
        /// 0-based position of the sample.
        index: usize,
        /// The offending bin index.
        bin: usize,
        /// Number of bins (valid indices are `0..n_bins`).
        n_bins: usize,
    },
    /// A sampling weight is NaN, infinite or negative.
    #[error("weight #{index} is {value}: weights must be finite and >= 0")]
    InvalidWeight {
        /// 0-based position of the weight.
        index: usize,
        /// The offending value.
        value: f64,
    },
    /// Every sampling weight is zero, so there is nothing to draw.
    #[error("all {0} weights are zero: at least one must be positive")]
    AllZeroWeights(usize),
    /// A predicted class probability is NaN, infinite or outside [0, 1].
    #[error("probability at row {row}, column {column} is {value}: expected a number in [0, 1]")]
    InvalidProbability {
        /// 0-based sample (row) index.
        row: usize,
        /// 0-based class (column) index.
        column: usize,
        /// The offending value.
        value: f64,
    },
    /// A row of predicted class probabilities does not sum to 1.
    #[error("probabilities of row {row} sum to {sum}: expected 1 (within {tolerance})")]
    RowSum {
        /// 0-based sample (row) index.
        row: usize,
        /// The row's sum.
        sum: f64,
        /// The accepted distance from 1.
        tolerance: f64,
    },
    /// A per-sample loss is NaN, infinite or negative.
    #[error("loss #{index} is {value}: losses must be finite and >= 0")]
    InvalidLoss {
        /// 0-based sample index.
        index: usize,
        /// The offending value.
        value: f64,
    },
    /// An update would push a sample's difficulty `(c + Σdu) / (c + Σdl)` out of the finite,
    /// positive f64 range (losses near the f64 limit, or a tiny `c`).
    #[error(
        "sample #{index}: difficulty from learning {learning} and unlearning {unlearning} \
         leaves the f64 range; use a larger c or smaller losses"
    )]
    DifficultyOutOfRange {
        /// 0-based sample index.
        index: usize,
        /// `Σdl` the update would give.
        learning: f64,
        /// `Σdu` the update would give.
        unlearning: f64,
    },
    /// A deserialised sampler state breaks one of its invariants.
    #[error("invalid sampler state: {0}")]
    InvalidState(String),
    /// A file or folder could not be opened, listed, read or written (`path`, the OS message).
    #[error("{path}: {message}")]
    Io {
        /// The path as given.
        path: String,
        /// What the operating system said, or what was expected of the path.
        message: String,
    },
    /// A dataset index lacks a required column.
    #[error(
        "{path}: the header '{header}' has no column '{column}': expected the columns {expected} \
         (in any order)"
    )]
    MissingColumn {
        /// The CSV file.
        path: String,
        /// The missing column.
        column: &'static str,
        /// The header as read, comma-joined.
        header: String,
        /// Every required column, comma-joined.
        expected: &'static str,
    },
    /// A file is malformed as a whole (CSV syntax, a duplicated column, no rows…); `path` may
    /// end in `:line`.
    #[error("{path}: {message}")]
    Malformed {
        /// The file, with `:line` when one line is at fault.
        path: String,
        /// What is wrong and what was expected.
        message: String,
    },
    /// Rows of a dataset index are invalid: a summary line, the likely fix when there is one,
    /// and the first [`SHOWN_BAD`] problems ([`DataError::full_list`] has every one).
    #[error("{}", list_bad(.path, "row", "rows of the index are invalid", .hint, .rows, false))]
    BadRows {
        /// The CSV file.
        path: String,
        /// Every problem, in file order (a row with several problems has several).
        rows: Vec<BadRow>,
        /// What most likely fixes most of them, when one cause dominates.
        hint: Option<String>,
    },
    /// Image file names do not follow `id_name_age_gender.ext`: a summary line and the first
    /// [`SHOWN_BAD`] files ([`DataError::full_list`] has every one).
    #[error(
        "{}",
        list_bad(.dir, "file name", "names do not follow id_name_age_gender.ext", &None, .names, false)
    )]
    BadNames {
        /// The image folder.
        dir: String,
        /// Every file whose name does not parse, sorted by name.
        names: Vec<BadName>,
    },
    /// An image file could not be read or decoded while loading a batch.
    #[error("{path}: cannot load the image: {message}")]
    Image {
        /// The image file.
        path: String,
        /// The decoder's message.
        message: String,
    },
}

/// How many bad rows or names an error message shows; the rest are counted.
pub const SHOWN_BAD: usize = 5;

/// `path: N bad things (what); fix them or skip them (--skip-bad):`, the hint, then the first
/// [`SHOWN_BAD`] items (every item with `all`) and a count of the others.
fn list_bad<T: std::fmt::Display>(
    path: &str,
    noun: &str,
    what: &str,
    hint: &Option<String>,
    items: &[T],
    all: bool,
) -> String {
    let mut s = format!(
        "{path}: {} bad {noun}{} ({what}); fix them or skip them (--skip-bad):",
        items.len(),
        if items.len() == 1 { "" } else { "s" },
    );
    if let Some(h) = hint {
        s.push_str("\nlikely fix: ");
        s.push_str(h);
    }
    let shown = if all { items.len() } else { SHOWN_BAD };
    for item in items.iter().take(shown) {
        s.push('\n');
        s.push_str(&item.to_string());
    }
    if items.len() > shown {
        s.push_str(&format!(
            "\n… and {} more (--list-bad lists them all)",
            items.len() - shown
        ));
    }
    s
}

impl DataError {
    /// The message with every bad row or file name listed, for `--list-bad`; other errors as
    /// their one-line message.
    pub fn full_list(&self) -> String {
        match self {
            DataError::BadRows { path, rows, hint } => list_bad(
                path,
                "row",
                "rows of the index are invalid",
                hint,
                rows,
                true,
            ),
            DataError::BadNames { dir, names } => list_bad(
                dir,
                "file name",
                "names do not follow id_name_age_gender.ext",
                &None,
                names,
                true,
            ),
            e => e.to_string(),
        }
    }
}

/// Result alias for dirkit-data.
pub type Result<T> = std::result::Result<T, DataError>;

/// Shorthand for an [`DataError::InvalidParameter`] error.
pub(crate) fn invalid<T>(
    name: &'static str,
    value: impl std::fmt::Display,
    expected: &'static str,
) -> Result<T> {
    Err(DataError::InvalidParameter {
        name,
        value: value.to_string(),
        expected,
    })
}

/// One problem with one row of the index; a row with several problems gives several.
///
/// Displays as `file.csv:17: column 'age': '-3': expected a non-negative number`.
#[derive(Debug, Clone, PartialEq)]
pub struct BadRow {
    /// The CSV file the row is in.
    pub file: PathBuf,
    /// 1-based line of the row.
    pub line: usize,
    /// The column at fault (`age`, `path` or `split`).
    pub column: &'static str,
    /// The field as written (lossily decoded when it is not UTF-8).
    pub value: String,
    /// What is wrong and what was expected.
    pub reason: String,
}

impl fmt::Display for BadRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: column '{}': '{}': {}",
            self.file.display(),
            self.line,
            self.column,
            self.value.escape_debug(),
            self.reason
        )
    }
}

/// An image whose file name does not parse; displays as `dir/file: what was expected`.
#[derive(Debug, Clone, PartialEq)]
pub struct BadName {
    /// The file (folder joined with the name).
    pub path: PathBuf,
    /// What is wrong and what was expected.
    pub reason: String,
}

impl fmt::Display for BadName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.reason)
    }
}
