//! Reading numeric columns from CSV/TSV files (delimiter sniffed, header detected) or from one
//! number per line, from a path or `-` for standard input.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Cursor, Read};

use dirkit_core::lines::LineIndex;

use crate::error::{CliError, Result};

/// A column chosen by the user: a header name, or a 0-based index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColumnSpec {
    /// Match this header name exactly (case-sensitive, after trimming).
    Name(String),
    /// 0-based position.
    Index(usize),
}

impl ColumnSpec {
    /// Parses `--column` values: a name, or a 0-based index when it is a whole number (a header
    /// name that looks like a number still matches by name first).
    pub fn parse(s: &str) -> ColumnSpec {
        match s.parse::<usize>() {
            Ok(i) => ColumnSpec::Index(i),
            Err(_) => ColumnSpec::Name(s.to_string()),
        }
    }
}

/// An opened input: its name for messages, delimiter, header (if any) and the rows to come.
pub struct Table {
    /// Path as given, or `<stdin>`.
    pub name: String,
    /// Header fields, or `None` when the first line is data.
    pub header: Option<Vec<String>>,
    /// Number of fields per row.
    pub n_fields: usize,
    /// 1-based file line of each row [`Table::read_numbers`] returned, in order (for messages
    /// about a value found later, e.g. a label outside `--range`).
    pub lines: Vec<u64>,
    newlines: LineIndex,
    reader: csv::Reader<Box<dyn Read>>,
}

impl Table {
    /// Opens `path` (`-` is standard input), sniffs the delimiter from the first line
    /// (tab, comma, semicolon or pipe, the most frequent; none means one column) and treats the
    /// first line as a header when any of its fields is not a number.
    pub fn open(path: &str) -> Result<Table> {
        let name = if path == "-" {
            "<stdin>".to_string()
        } else {
            path.to_string()
        };
        let io_err = |source| CliError::Io {
            path: name.clone(),
            source,
        };
        let raw: Box<dyn Read> = if path == "-" {
            Box::new(io::stdin().lock())
        } else {
            let meta = std::fs::metadata(path).map_err(io_err)?;
            if meta.is_dir() {
                return Err(CliError::Input {
                    path: name,
                    message: "is a directory, expected a CSV file".into(),
                });
            }
            Box::new(File::open(path).map_err(io_err)?)
        };
        let mut buffered = BufReader::with_capacity(1 << 20, raw);
        // Skip leading blank lines but keep them in the stream so line numbers stay true.
        let mut first = Vec::new();
        loop {
            let before = first.len();
            let n = buffered.read_until(b'\n', &mut first).map_err(io_err)?;
            if n == 0 || !first[before..].iter().all(|c| c.is_ascii_whitespace()) {
                break;
            }
        }
        let first_line = String::from_utf8_lossy(&first);
        let first_line = first_line.trim_start_matches('\u{feff}');
        if first_line.trim().is_empty() {
            return Err(CliError::Input {
                path: name,
                message: "is empty: expected a header and at least one row, or one number per line"
                    .into(),
            });
        }
        let delimiter = sniff_delimiter(first_line.trim());
        let fields: Vec<String> = first_line
            .trim()
            .split(delimiter as char)
            .map(|f| f.trim().trim_matches('"').to_string())
            .collect();
        let is_header = fields.iter().any(|f| f.parse::<f64>().is_err());
        let newlines = LineIndex::new();
        let stream: Box<dyn Read> = Box::new(newlines.wrap(Cursor::new(first).chain(buffered)));
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(delimiter)
            .has_headers(is_header)
            .trim(csv::Trim::All)
            .flexible(false)
            .from_reader(stream);
        // The parser's view of the first line (quotes resolved) is the one rows are checked
        // against; without a header this peeks at the first record without consuming it.
        let parsed: Vec<String> = match reader.headers() {
            Ok(h) => h.iter().map(str::to_string).collect(),
            Err(e) => {
                return Err(CliError::Input {
                    path: name,
                    message: format!("first line: {e}"),
                });
            }
        };
        if parsed.iter().any(|f| f.contains(['\n', '\r'])) {
            return Err(CliError::Input {
                path: format!("{name}:1"),
                message: "a quote opened on the first line is never closed (the field runs \
                          over the following lines)"
                    .into(),
            });
        }
        Ok(Table {
            name,
            n_fields: parsed.len(),
            header: is_header.then_some(parsed),
            lines: Vec::new(),
            newlines,
            reader,
        })
    }

    /// Resolves a column spec to its index, with an error that lists the columns there are.
    pub fn resolve(&self, spec: &ColumnSpec, flag: &str) -> Result<usize> {
        if let (Some(h), ColumnSpec::Name(s)) = (&self.header, spec) {
            let at: Vec<usize> = (0..h.len()).filter(|&i| h[i] == *s).collect();
            if at.len() > 1 {
                return Err(CliError::Input {
                    path: self.name.clone(),
                    message: format!(
                        "{flag} '{s}': the header names {} columns '{s}' (0-based {}); rename \
                         them or choose one by its index",
                        at.len(),
                        at.iter()
                            .map(|i| i.to_string())
                            .collect::<Vec<_>>()
                            .join(" and ")
                    ),
                });
            }
        }
        if let Some(h) = &self.header {
            let by_name = |s: &str| h.iter().position(|c| c == s);
            match spec {
                ColumnSpec::Name(s) => by_name(s),
                ColumnSpec::Index(i) => by_name(&i.to_string()).or((*i < h.len()).then_some(*i)),
            }
        } else {
            match spec {
                ColumnSpec::Index(i) if *i < self.n_fields => Some(*i),
                _ => None,
            }
        }
        .ok_or_else(|| CliError::Input {
            path: self.name.clone(),
            message: format!(
                "{flag} {}: no such column (the input has {})",
                match spec {
                    ColumnSpec::Name(s) => format!("'{s}'"),
                    ColumnSpec::Index(i) => i.to_string(),
                },
                self.describe_columns()
            ),
        })
    }

    /// Resolves the first of several default column names that the header has.
    pub fn find_any(&self, names: &[&str]) -> Option<usize> {
        let h = self.header.as_ref()?;
        names.iter().find_map(|n| h.iter().position(|c| c == n))
    }

    /// "3 columns: age, path, split" or "2 columns without a header (use 0-based indices)".
    pub fn describe_columns(&self) -> String {
        match &self.header {
            Some(h) => format!(
                "{} column{}: {}",
                h.len(),
                if h.len() == 1 { "" } else { "s" },
                h.iter()
                    .map(|c| c.escape_debug().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            None => format!(
                "{} column{} and no header: use a 0-based index",
                self.n_fields,
                if self.n_fields == 1 { "" } else { "s" }
            ),
        }
    }

    /// Display name of column `i`: its header name, or `#i`.
    pub fn column_name(&self, i: usize) -> String {
        match &self.header {
            Some(h) => h[i].clone(),
            None => format!("#{i}"),
        }
    }

    /// Reads the given columns of every row as finite numbers; `counts` marks columns that must
    /// hold non-negative whole numbers. Returns one vector per requested column, in row order,
    /// and records each row's line in [`Table::lines`].
    ///
    /// Blank lines at the end are ignored; in a one-column file a blank line between numbers is
    /// an error (it is a missing value, and skipping it would shift every later row).
    pub fn read_numbers(&mut self, columns: &[(usize, Kind)]) -> Result<Vec<Vec<f64>>> {
        let mut out: Vec<Vec<f64>> = columns.iter().map(|_| Vec::new()).collect();
        let mut rows = 0usize;
        let mut record = csv::ByteRecord::new();
        let mut previous: Option<u64> = None;
        self.lines.clear();
        loop {
            match self.reader.read_byte_record(&mut record) {
                Ok(false) => break,
                Ok(true) => {}
                Err(e) => return Err(self.csv_error(e)),
            }
            // The csv crate's own line count leaves out blank lines.
            let line = record
                .position()
                .map_or(0, |p| self.newlines.record_line(p.byte()));
            if self.n_fields == 1
                && let Some(prev) = previous
                && line > prev + 1
            {
                return Err(CliError::Value {
                    path: self.name.clone(),
                    line: prev + 1,
                    column: self.column_name(0),
                    message: "blank line between values: a missing value? (a one-column file \
                              needs one number per line; blank lines may only end the file)"
                        .into(),
                });
            }
            previous = Some(line);
            for (k, &(col, kind)) in columns.iter().enumerate() {
                let text = record.get(col).unwrap_or_default();
                let v = self.number(text, line, col, kind)?;
                out[k].push(v);
            }
            self.lines.push(line);
            rows += 1;
        }
        if rows == 0 {
            return Err(CliError::Input {
                path: self.name.clone(),
                message: "has a header but no data rows".into(),
            });
        }
        Ok(out)
    }

    fn number(&self, text: &[u8], line: u64, col: usize, kind: Kind) -> Result<f64> {
        let err = |message: String| CliError::Value {
            path: self.name.clone(),
            line,
            column: self.column_name(col),
            message,
        };
        let raw = std::str::from_utf8(text).map_err(|_| err("is not valid UTF-8".into()))?;
        // Quoted in messages with control characters escaped, so a message stays one line.
        let s = raw.escape_debug().to_string();
        let v: f64 = raw.parse().map_err(|_| {
            if s.is_empty() {
                err(format!("empty field, expected {}", kind.expected()))
            } else {
                err(format!(
                    "'{s}' is not a number, expected {}",
                    kind.expected()
                ))
            }
        })?;
        if !v.is_finite() {
            return Err(err(format!(
                "'{s}' is not finite, expected {}",
                kind.expected()
            )));
        }
        if kind == Kind::Count && (v < 0.0 || v.fract() != 0.0) {
            return Err(err(format!(
                "'{s}' is not a count, expected {}",
                kind.expected()
            )));
        }
        if kind == Kind::Count && v > MAX_COUNT {
            return Err(err(format!(
                "'{s}' is too large a count, expected {}",
                kind.expected()
            )));
        }
        if kind == Kind::Positive && v <= 0.0 {
            return Err(err(format!(
                "'{s}' is not positive, expected {}",
                kind.expected()
            )));
        }
        Ok(v)
    }

    fn csv_error(&self, e: csv::Error) -> CliError {
        let line = e
            .position()
            .map_or(0, |p| self.newlines.record_line(p.byte()));
        let message = match e.kind() {
            csv::ErrorKind::UnequalLengths {
                expected_len, len, ..
            } => format!(
                "row has {len} field{}, expected {expected_len} like the first line",
                if *len == 1 { "" } else { "s" }
            ),
            csv::ErrorKind::Io(io) => io.to_string(),
            _ => e.to_string(),
        };
        CliError::Input {
            path: format!("{}:{line}", self.name),
            message,
        }
    }
}

/// The largest count a histogram row may hold: 2^53, the largest whole number an f64 holds
/// exactly (a file's total is checked separately).
pub const MAX_COUNT: f64 = dirkit_core::lds::MAX_SAMPLES as f64;

/// What a numeric column holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Any finite number (labels, predictions).
    Value,
    /// A non-negative whole number (histogram counts).
    Count,
    /// A finite number > 0 (predicted standard deviations).
    Positive,
}

impl Kind {
    fn expected(self) -> &'static str {
        match self {
            Kind::Value => "a finite number",
            Kind::Count => "a non-negative whole number up to 2^53",
            Kind::Positive => "a finite number > 0",
        }
    }
}

fn sniff_delimiter(line: &str) -> u8 {
    let mut best = (0usize, b',');
    for d in [b'\t', b',', b';', b'|'] {
        let n = line.bytes().filter(|&c| c == d).count();
        if n > best.0 {
            best = (n, d);
        }
    }
    best.1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_tabs_commas_and_single_columns() {
        assert_eq!(sniff_delimiter("age\tpath\tsplit"), b'\t');
        assert_eq!(sniff_delimiter("a,b;c,d"), b',');
        assert_eq!(sniff_delimiter("a;b;c"), b';');
        assert_eq!(sniff_delimiter("42.5"), b',');
    }

    #[test]
    fn numeric_column_names_resolve_by_index() {
        assert_eq!(ColumnSpec::parse("2"), ColumnSpec::Index(2));
        assert_eq!(ColumnSpec::parse("age"), ColumnSpec::Name("age".into()));
    }
}
