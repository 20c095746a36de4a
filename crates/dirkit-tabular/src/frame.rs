//! A column-major table of numeric and nominal columns, read from and written to CSV.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::Path;

use crate::error::{Result, TabularError};

/// One column: numbers, or categories stored as codes into a level list.
#[derive(Debug, Clone, PartialEq)]
pub enum Column {
    /// Finite numbers.
    Numeric(Vec<f64>),
    /// Categories: `codes[i]` indexes `levels`.
    Nominal {
        /// The distinct values, in order of first appearance.
        levels: Vec<String>,
        /// One code per row.
        codes: Vec<u32>,
    },
}

impl Column {
    /// Number of rows.
    pub fn len(&self) -> usize {
        match self {
            Column::Numeric(v) => v.len(),
            Column::Nominal { codes, .. } => codes.len(),
        }
    }

    /// Whether the column has no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The numbers of a numeric column.
    pub fn numbers(&self) -> Option<&[f64]> {
        match self {
            Column::Numeric(v) => Some(v),
            Column::Nominal { .. } => None,
        }
    }

    /// The text of row `i` as written to CSV (numbers in shortest round-trip form).
    pub fn text(&self, i: usize) -> String {
        match self {
            Column::Numeric(v) => format_number(v[i]),
            Column::Nominal { levels, codes } => levels[codes[i] as usize].clone(),
        }
    }
}

/// Shortest decimal that reads back as the same f64 (`7.4`, `11`, `0.001`).
pub fn format_number(v: f64) -> String {
    if v == 0.0 {
        return "0".to_string();
    }
    let a = v.abs();
    if (1e-5..1e17).contains(&a) {
        format!("{v}")
    } else {
        format!("{v:e}")
    }
}

/// A table: named columns of equal length.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    /// Column names, in file order.
    pub names: Vec<String>,
    /// The columns, in the same order.
    pub columns: Vec<Column>,
}

/// Cells read as missing: the resamplers need complete rows.
const MISSING: [&str; 8] = ["", "NA", "N/A", "NaN", "nan", "null", "NULL", "?"];

impl Frame {
    /// Number of rows.
    pub fn n_rows(&self) -> usize {
        self.columns.first().map_or(0, Column::len)
    }

    /// Index of the column called `name`, or an error listing the columns there are.
    pub fn column_index(&self, name: &str, source: &str) -> Result<usize> {
        self.names
            .iter()
            .position(|n| n == name)
            .ok_or_else(|| TabularError::Table {
                path: source.to_string(),
                message: format!(
                    "no column '{name}' (the columns are: {})",
                    self.names.join(", ")
                ),
            })
    }

    /// Reads a CSV file with a header row (delimiter sniffed from the header: comma, tab,
    /// semicolon or pipe). A column is nominal when it is listed in `nominal` or its first
    /// value is not a number; every other column must hold finite numbers on every row.
    /// Missing cells (empty, `NA`, `NaN`, `null`, `?`) are an error that names row and column.
    pub fn read_csv(path: &Path, nominal: &[String]) -> Result<Frame> {
        let name = path.display().to_string();
        let io = |source| TabularError::Io {
            path: name.clone(),
            source,
        };
        if path.is_dir() {
            return Err(TabularError::Table {
                path: name,
                message: "is a directory, expected a CSV file".into(),
            });
        }
        let mut bytes = Vec::new();
        std::fs::File::open(path)
            .map_err(io)?
            .read_to_end(&mut bytes)
            .map_err(io)?;
        Self::parse_csv(&bytes, &name, nominal)
    }

    /// [`Frame::read_csv`] from bytes already in memory; `name` is used in messages.
    pub fn parse_csv(bytes: &[u8], name: &str, nominal: &[String]) -> Result<Frame> {
        let bytes = bytes.strip_prefix("\u{feff}".as_bytes()).unwrap_or(bytes);
        let first_line = bytes.split(|&b| b == b'\n').next().unwrap_or_default();
        let delimiter = [b',', b'\t', b';', b'|']
            .into_iter()
            .max_by_key(|d| first_line.iter().filter(|&&c| c == *d).count())
            .unwrap_or(b',');
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(delimiter)
            .has_headers(true)
            .trim(csv::Trim::All)
            .from_reader(bytes);
        // Editor lines (the csv crate's own count leaves out blank lines).
        let line_at = |byte: u64| dirkit_core::lines::record_line_in(bytes, byte);
        let table_err = |message: String| TabularError::Table {
            path: name.to_string(),
            message,
        };
        let names: Vec<String> = reader
            .headers()
            .map_err(|e| table_err(format!("header: {e}")))?
            .iter()
            .map(str::to_string)
            .collect();
        if names.is_empty() || names.iter().all(String::is_empty) {
            return Err(table_err(
                "is empty: expected a header row and data rows".into(),
            ));
        }
        if names.iter().any(|n| n.contains(['\n', '\r'])) {
            return Err(TabularError::Table {
                path: format!("{name}:1"),
                message: "a quote opened in the header is never closed (the field runs over \
                          the following lines)"
                    .into(),
            });
        }
        let mut seen = HashMap::new();
        for (i, n) in names.iter().enumerate() {
            if n.is_empty() {
                return Err(table_err(format!("column {} has an empty name", i + 1)));
            }
            if let Some(j) = seen.insert(n.clone(), i) {
                return Err(table_err(format!(
                    "columns {} and {} are both called '{n}'",
                    j + 1,
                    i + 1
                )));
            }
        }
        for n in nominal {
            if !names.contains(n) {
                return Err(table_err(format!(
                    "--nominal {n}: no such column (the columns are: {})",
                    names.join(", ")
                )));
            }
        }
        enum Builder {
            Numeric(Vec<f64>),
            Nominal(HashMap<String, u32>, Vec<String>, Vec<u32>),
        }
        let mut builders: Vec<Option<Builder>> = names
            .iter()
            .map(|n| {
                nominal
                    .contains(n)
                    .then(|| Builder::Nominal(HashMap::new(), Vec::new(), Vec::new()))
            })
            .collect();
        let mut record = csv::StringRecord::new();
        loop {
            match reader.read_record(&mut record) {
                Ok(false) => break,
                Ok(true) => {}
                Err(e) => {
                    let line = e.position().map_or(0, |p| line_at(p.byte()));
                    let message = match e.kind() {
                        csv::ErrorKind::UnequalLengths {
                            expected_len, len, ..
                        } => format!(
                            "row has {len} field{}, the header has {expected_len}",
                            if *len == 1 { "" } else { "s" }
                        ),
                        _ => e.to_string(),
                    };
                    return Err(TabularError::Table {
                        path: format!("{name}:{line}"),
                        message,
                    });
                }
            }
            let byte = record.position().map_or(0, |p| p.byte());
            if record.len() == 1 && record[0].is_empty() && names.len() > 1 {
                continue; // blank line
            }
            for (c, text) in record.iter().enumerate() {
                // Quoted with control characters escaped, so a message stays one line.
                let shown = text.escape_debug();
                let cell_err = |message: String| TabularError::Value {
                    path: name.to_string(),
                    line: line_at(byte),
                    column: names[c].clone(),
                    message,
                };
                if MISSING.contains(&text) {
                    return Err(cell_err(format!(
                        "missing value '{shown}': the resamplers need complete rows (drop or impute it first)"
                    )));
                }
                let b = builders[c].get_or_insert_with(|| {
                    if text.parse::<f64>().is_ok() {
                        Builder::Numeric(Vec::new())
                    } else {
                        Builder::Nominal(HashMap::new(), Vec::new(), Vec::new())
                    }
                });
                match b {
                    Builder::Numeric(v) => match text.parse::<f64>() {
                        Ok(x) if x.is_finite() => v.push(x),
                        Ok(_) => {
                            return Err(cell_err(format!(
                                "'{shown}' is not finite, expected a finite number"
                            )));
                        }
                        Err(_) => {
                            return Err(cell_err(format!(
                                "'{shown}' is not a number, but the column's first value is \
                                 one (list the column with --nominal if it holds categories)"
                            )));
                        }
                    },
                    Builder::Nominal(index, levels, codes) => {
                        let next = levels.len() as u32;
                        let code = *index.entry(text.to_string()).or_insert_with(|| {
                            levels.push(text.to_string());
                            next
                        });
                        codes.push(code);
                    }
                }
            }
        }
        let columns: Vec<Column> = builders
            .into_iter()
            .map(|b| match b {
                None => Column::Numeric(Vec::new()),
                Some(Builder::Numeric(v)) => Column::Numeric(v),
                Some(Builder::Nominal(_, levels, codes)) => Column::Nominal { levels, codes },
            })
            .collect();
        let frame = Frame { names, columns };
        if frame.n_rows() == 0 {
            return Err(table_err("has a header but no data rows".into()));
        }
        Ok(frame)
    }

    /// Writes the table as CSV (comma-separated, header first) to `path` through a temporary
    /// file in the same folder renamed into place, so a failed write never leaves half a file
    /// and never touches an existing `path` until the new one is complete.
    pub fn write_csv(&self, path: &Path) -> Result<()> {
        let io = |source| TabularError::Io {
            path: path.display().to_string(),
            source,
        };
        dirkit_core::atomic::write_atomic(path, |w| self.write_to(w)).map_err(io)
    }

    /// Writes CSV to any writer.
    pub fn write_to(&self, w: &mut dyn Write) -> std::io::Result<()> {
        let mut csv = csv::WriterBuilder::new().from_writer(w);
        csv.write_record(&self.names)?;
        let mut row: Vec<String> = vec![String::new(); self.columns.len()];
        for i in 0..self.n_rows() {
            for (cell, col) in row.iter_mut().zip(&self.columns) {
                *cell = col.text(i);
            }
            csv.write_record(&row)?;
        }
        csv.flush()
    }
}
