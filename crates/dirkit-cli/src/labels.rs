//! Training labels from a file, one row per sample or a `label,count` histogram, and the
//! binning built from them and the command-line flags.

use dirkit_core::relevance::{BinRule, bin_width};
use dirkit_core::{Binning, CoreError, OutOfRange, ShotThresholds};

use crate::args::{BinArgs, OutOfRangeArg};
use crate::error::{CliError, Result};
use crate::input::{ColumnSpec, Kind, Table};

/// The most samples a histogram is expanded to when an option needs every sample (a bin-width
/// rule, the box plot of `--sera`): 100 million (800 MB).
pub const MAX_EXPANDED: u64 = 100_000_000;

/// Labels read from an input file.
pub struct Labels {
    /// The input's name for messages.
    pub source: String,
    /// One label per row, in input order.
    pub values: Vec<f64>,
    /// Samples per row for a histogram input (`--count-column`); `None` for one row per sample.
    pub counts: Option<Vec<u64>>,
    /// Whether the input had a header line (mirrored by `--per-sample`).
    pub has_header: bool,
    /// The label column's name for messages (its header name, or `#i`).
    pub column: String,
    /// 1-based file line of each row.
    pub lines: Vec<u64>,
}

impl Labels {
    /// Reads the label column (and the count column, if given) of `path`.
    pub fn read(path: &str, column: Option<&str>, count_column: Option<&str>) -> Result<Labels> {
        let mut table = Table::open(path)?;
        let count_idx = count_column
            .map(|c| table.resolve(&ColumnSpec::parse(c), "--count-column"))
            .transpose()?;
        let label_idx = match column {
            Some(c) => table.resolve(&ColumnSpec::parse(c), "--column")?,
            None => default_label_column(&table, count_idx)?,
        };
        if Some(label_idx) == count_idx {
            return Err(CliError::Usage(
                "the label column and the count column are the same column".into(),
            ));
        }
        let mut wanted = vec![(label_idx, Kind::Value)];
        if let Some(c) = count_idx {
            wanted.push((c, Kind::Count));
        }
        let mut cols = table.read_numbers(&wanted)?;
        let counts: Option<Vec<u64>> = count_idx.map(|_| {
            cols.pop()
                .unwrap_or_default()
                .into_iter()
                .map(|c| c as u64)
                .collect()
        });
        if let Some(c) = &counts {
            // Every total below stays exact in f64 and never overflows u64.
            let total = c.iter().fold(0u64, |t, &n| t.saturating_add(n));
            if total > dirkit_core::lds::MAX_SAMPLES {
                return Err(CliError::Input {
                    path: table.name.clone(),
                    message: format!(
                        "the counts add up to {total}, more than 2^53: expected a histogram \
                         of at most 9007199254740992 samples"
                    ),
                });
            }
        }
        let values = cols.pop().unwrap_or_default();
        Ok(Labels {
            source: table.name.clone(),
            values,
            counts,
            has_header: table.header.is_some(),
            column: table.column_name(label_idx),
            lines: std::mem::take(&mut table.lines),
        })
    }

    /// Total number of samples (sum of counts for a histogram).
    pub fn n_samples(&self) -> u64 {
        match &self.counts {
            Some(c) => c.iter().sum(),
            None => self.values.len() as u64,
        }
    }

    /// Refuses to repeat each label of a histogram by its count when that would take more
    /// than [`MAX_EXPANDED`] samples (`what` names the option that needs it).
    pub fn check_expandable(&self, what: &str) -> Result<()> {
        if self.counts.is_some() && self.n_samples() > MAX_EXPANDED {
            return Err(CliError::Usage(format!(
                "{what} needs every sample of {}'s histogram, {} of them: at most {MAX_EXPANDED} \
                 are expanded (give the option's value by hand)",
                self.source,
                self.n_samples()
            )));
        }
        Ok(())
    }

    /// Smallest and largest label (over every row, zero-count rows included).
    pub fn span(&self) -> (f64, f64) {
        self.values
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &y| {
                (lo.min(y), hi.max(y))
            })
    }

    /// Samples per bin under `policy`, with the number dropped; a label outside the range
    /// under [`OutOfRange::Error`] is named by its file line.
    pub fn bin_counts(&self, binning: &Binning, policy: OutOfRange) -> Result<(Vec<u64>, u64)> {
        let counted = match &self.counts {
            None => binning.counts(&self.values, policy),
            Some(counts) => (|| {
                let mut out = vec![0u64; binning.n_bins];
                let mut dropped = 0;
                for (i, (&y, &n)) in self.values.iter().zip(counts).enumerate() {
                    match binning.bin(y, i, policy)? {
                        Some(b) => out[b] += n,
                        None => dropped += n,
                    }
                }
                Ok((out, dropped))
            })(),
        };
        counted.map_err(|e| self.locate(e))
    }

    /// A core error about sample `#i` as a message naming the file, line and column.
    pub fn locate(&self, e: CoreError) -> CliError {
        locate(&self.source, &self.column, &self.lines, e)
    }
}

/// A core error about row `#i` of `source` (whose rows are on `lines`) as a message naming the
/// file, line and column; other errors as they are.
pub fn locate(source: &str, column: &str, lines: &[u64], e: CoreError) -> CliError {
    match e {
        CoreError::LabelOutOfRange {
            index,
            value,
            start,
            end,
        } if index < lines.len() => CliError::Value {
            path: source.to_string(),
            line: lines[index],
            column: column.to_string(),
            message: format!(
                "{value} is outside the bin range [{start}, {end}) (--out-of-range error); \
                 widen --range, or clip or drop such labels with --out-of-range"
            ),
        },
        e => e.into(),
    }
}

fn default_label_column(table: &Table, count_idx: Option<usize>) -> Result<usize> {
    match (table.n_fields, count_idx) {
        (1, _) => Ok(0),
        (2, Some(c)) => Ok(1 - c),
        _ => Err(CliError::Input {
            path: table.name.clone(),
            message: format!(
                "has {}; choose the label column with --column",
                table.describe_columns()
            ),
        }),
    }
}

/// Parses `A:B` into two finite numbers.
pub fn parse_pair(flag: &str, s: &str) -> Result<(f64, f64)> {
    let bad = || CliError::Usage(format!("invalid {flag} '{s}': expected two numbers as A:B"));
    let (a, b) = s.split_once(':').ok_or_else(bad)?;
    let a: f64 = a.trim().parse().map_err(|_| bad())?;
    let b: f64 = b.trim().parse().map_err(|_| bad())?;
    if !(a.is_finite() && b.is_finite()) {
        return Err(bad());
    }
    Ok((a, b))
}

impl BinArgs {
    /// The out-of-range policy.
    pub fn policy(&self) -> OutOfRange {
        match self.out_of_range {
            OutOfRangeArg::Clip => OutOfRange::Clip,
            OutOfRangeArg::Error => OutOfRange::Error,
            OutOfRangeArg::Drop => OutOfRange::Drop,
        }
    }

    /// Shot thresholds, validated.
    pub fn thresholds(&self) -> Result<ShotThresholds> {
        let t = ShotThresholds {
            many: self.many,
            few: self.few,
        };
        t.validate()?;
        Ok(t)
    }

    /// The bin width: the number given, or the rule's choice over the training labels
    /// (`counts` repeats each label for a histogram input), announced on stderr.
    pub fn width(&self, labels: &Labels) -> Result<f64> {
        let rule = match self.bin_width.trim() {
            "auto" | "fd" => BinRule::FreedmanDiaconis,
            "scott" => BinRule::Scott,
            "sturges" => BinRule::Sturges,
            s => {
                // A number is checked by the binning, which names what a width must be.
                return match s.parse::<f64>() {
                    Ok(w) => Ok(w),
                    Err(_) => Err(CliError::Usage(format!(
                        "invalid --bin-width '{s}': expected a positive number, auto, fd, scott or sturges"
                    ))),
                };
            }
        };
        let expanded: Vec<f64>;
        let sample: &[f64] = match &labels.counts {
            None => &labels.values,
            Some(c) => {
                labels.check_expandable(&format!("--bin-width {}", self.bin_width))?;
                expanded = labels
                    .values
                    .iter()
                    .zip(c)
                    .flat_map(|(&v, &n)| std::iter::repeat_n(v, n as usize))
                    .collect();
                &expanded
            }
        };
        let choice = bin_width(sample, rule)
            .map_err(|e| CliError::Usage(format!("--bin-width {}: {e}", self.bin_width)))?;
        let name = match choice.rule {
            BinRule::FreedmanDiaconis => "Freedman–Diaconis",
            BinRule::Scott => "Scott",
            BinRule::Sturges => "Sturges",
        };
        eprintln!(
            "dirkit: --bin-width {}: {name} over {} training labels gives {}{}",
            self.bin_width,
            sample.len(),
            choice.width,
            if choice.integer_targets {
                " (rounded to a whole number: the labels are integers)"
            } else {
                ""
            }
        );
        Ok(choice.width)
    }

    /// The binning of width `width`: `--range` if given (which must contain at least one of
    /// the labels in `span`), else the auto range over `span`.
    pub fn binning(
        &self,
        span: (f64, f64),
        width: f64,
        has_label_in: impl Fn(f64, f64) -> bool,
    ) -> Result<Binning> {
        match &self.range {
            Some(r) => {
                let (start, end) = parse_pair("--range", r)?;
                let b = Binning::from_range(start, end, width)?;
                if !has_label_in(start, end) {
                    return Err(CliError::Usage(format!(
                        "--range {r}: no label falls in [{start}, {end}) (the labels span {} to {})",
                        span.0, span.1
                    )));
                }
                Ok(b)
            }
            None => Binning::auto_from_min_max(span.0, span.1, width).map_err(|e| {
                let bins = (span.1 - span.0) / width;
                if width.is_finite() && width > 0.0 && bins > dirkit_core::binning::MAX_BINS as f64
                {
                    CliError::Usage(format!(
                        "--bin-width {} over the labels' span {} to {} would make {bins:.3e} \
                         bins, at most 2^24: give a larger --bin-width, --bin-width auto, or a \
                         --range",
                        self.bin_width,
                        crate::table::label(span.0),
                        crate::table::label(span.1)
                    ))
                } else {
                    e.into()
                }
            }),
        }
    }
}
