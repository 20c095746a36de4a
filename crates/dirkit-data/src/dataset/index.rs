//! The `age,path,split` index of an image regression dataset, read and checked row by row.

use std::fmt;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use dirkit_core::lines::LineIndex;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

pub use crate::error::BadRow;
use crate::error::{DataError, Result};

/// The columns an index must have, in any order; other columns are ignored.
pub const REQUIRED_COLUMNS: [&str; 3] = ["age", "path", "split"];

/// Which part of a dataset a sample belongs to (the `split` column: `train`, `val` or `test`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    /// Training set (`train`).
    Train,
    /// Validation set (`val`), balanced over ages in the DIR benchmarks.
    Val,
    /// Test set (`test`), balanced over ages in the DIR benchmarks.
    Test,
}

impl Split {
    /// The three splits in the order they are reported: train, val, test.
    pub const ALL: [Split; 3] = [Split::Train, Split::Val, Split::Test];

    /// The name used in the CSV (`train`, `val`, `test`).
    pub fn as_str(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Val => "val",
            Split::Test => "test",
        }
    }
}

impl fmt::Display for Split {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Split {
    type Err = DataError;

    /// Parses `train`, `val` or `test` exactly (lower case, as in the reference CSVs).
    fn from_str(s: &str) -> Result<Split> {
        match s {
            "train" => Ok(Split::Train),
            "val" => Ok(Split::Val),
            "test" => Ok(Split::Test),
            _ => Err(DataError::InvalidParameter {
                name: "split",
                value: s.to_string(),
                expected: "train, val or test",
            }),
        }
    }
}

/// One valid row of the index.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// 1-based line of the row in the CSV file.
    pub line: usize,
    /// The regression target (years for AgeDB / IMDB-WIKI), finite and >= 0.
    pub age: f64,
    /// The image file: the CSV's path joined to the image root.
    pub path: PathBuf,
    /// Which split the row belongs to.
    pub split: Split,
}

/// A read index: the valid rows and every problem found, both in file order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Index {
    /// Rows without any problem.
    pub records: Vec<Record>,
    /// Problems of the other rows (a row is either a record or has at least one bad entry).
    pub bad: Vec<BadRow>,
    /// The folder the image paths were resolved against.
    pub root: PathBuf,
}

impl Index {
    /// The valid records of one split, in file order.
    pub fn split(&self, split: Split) -> Vec<&Record> {
        self.records.iter().filter(|r| r.split == split).collect()
    }

    /// Number of valid records per split, in the order of [`Split::ALL`].
    pub fn counts(&self) -> [usize; 3] {
        let mut c = [0; 3];
        for r in &self.records {
            c[r.split as usize] += 1;
        }
        c
    }

    /// Number of distinct rows with at least one problem.
    pub fn bad_row_count(&self) -> usize {
        let mut lines: Vec<usize> = self.bad.iter().map(|b| b.line).collect();
        lines.dedup();
        lines.len()
    }

    /// The default policy before training: `Ok` when every row is valid, else a
    /// [`DataError::BadRows`] that names `csv` and lists every problem, one per line.
    pub fn require_clean(&self, csv: &Path) -> Result<()> {
        if self.bad.is_empty() {
            return Ok(());
        }
        Err(DataError::BadRows {
            path: csv.display().to_string(),
            rows: self.bad.clone(),
            hint: self.likely_fix(),
        })
    }

    /// The fix of the problem that most (over half) of the bad rows share, if there is one: image
    /// paths that do not resolve (the wrong image folder), or one column's values.
    pub fn likely_fix(&self) -> Option<String> {
        let rows = self.bad_row_count();
        let count = |f: &dyn Fn(&BadRow) -> bool| {
            let mut lines: Vec<usize> = self.bad.iter().filter(|b| f(b)).map(|b| b.line).collect();
            lines.dedup();
            lines.len()
        };
        let missing = count(&|b| b.column == "path" && b.reason.starts_with("no such file"));
        if rows > 0 && missing * 2 > rows {
            return Some(format!(
                "{missing} of {rows} bad rows name images that do not exist under {}; if the \
                 paths are relative to another folder, give it with --data-dir (`dirkit split` \
                 writes them relative to the index's own folder)",
                self.root.display()
            ));
        }
        for (column, fix) in [
            (
                "age",
                "the age column must hold numbers >= 0 (years); check the column order",
            ),
            (
                "split",
                "the split column must read train, val or test (lower case)",
            ),
            (
                "path",
                "the images exist but do not decode: re-download or remove them",
            ),
        ] {
            let n = count(&|b| b.column == column && !b.reason.starts_with("no such file"));
            if rows > 1 && n * 2 > rows {
                return Some(format!("{n} of {rows} bad rows: {fix}"));
            }
        }
        None
    }

    /// The `--skip-bad` policy: the valid records and how many rows were left out.
    pub fn skipping_bad(self) -> (Vec<Record>, usize) {
        let skipped = self.bad_row_count();
        (self.records, skipped)
    }
}

/// A row's three fields, each parsed or refused.
struct Parsed {
    line: usize,
    age: std::result::Result<f64, BadRow>,
    path: std::result::Result<(String, PathBuf), BadRow>,
    split: std::result::Result<Split, BadRow>,
}

/// Reads the index `csv` of images under `root` and checks every row.
///
/// The header must name the columns `age`, `path` and `split` (any order, extra columns
/// ignored); a missing one is a [`DataError::MissingColumn`]. A row is bad when its age is not a
/// finite number >= 0, its split is not `train`/`val`/`test`, its path is empty, its image
/// does not exist under `root`, or — with `check_images` — the image does not decode (a full
/// decode, run in parallel; without it only the file's existence is checked). Bad rows are
/// returned in [`Index::bad`], not as an error: choose [`Index::require_clean`] or
/// [`Index::skipping_bad`]. An absolute path in the CSV is used as it is.
pub fn read_index(csv: &Path, root: &Path, check_images: bool) -> Result<Index> {
    // The folder of `index.csv` is the empty path: the current folder.
    let root = if root.as_os_str().is_empty() {
        Path::new(".")
    } else {
        root
    };
    let io_err = |path: &Path, message: String| DataError::Io {
        path: path.display().to_string(),
        message,
    };
    match std::fs::metadata(root) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(io_err(
                root,
                "is not a directory: expected the folder the image paths are relative to".into(),
            ));
        }
        Err(e) => return Err(io_err(root, e.to_string())),
    }
    let file = File::open(csv).map_err(|e| io_err(csv, e.to_string()))?;
    // Editor lines for messages (the csv crate's own count leaves out blank lines).
    let newlines = LineIndex::new();
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(newlines.wrap(std::io::BufReader::new(file)));
    let line_of = |p: Option<&csv::Position>| p.map(|p| newlines.record_line(p.byte()));
    let malformed = |line: Option<u64>, message: String| DataError::Malformed {
        path: match line {
            Some(l) => format!("{}:{l}", csv.display()),
            None => csv.display().to_string(),
        },
        message,
    };
    let header: Vec<String> = reader
        .byte_headers()
        .map_err(|e| malformed(line_of(e.position()), csv_message(&e)))?
        .iter()
        .map(|f| {
            String::from_utf8_lossy(f)
                .trim_start_matches('\u{feff}')
                .to_string()
        })
        .collect();
    if header.iter().all(|h| h.is_empty()) {
        return Err(malformed(
            None,
            "is empty: expected a header with the columns age, path, split".into(),
        ));
    }
    let mut columns = [0usize; 3];
    for (k, name) in REQUIRED_COLUMNS.into_iter().enumerate() {
        let mut found = header.iter().enumerate().filter(|(_, h)| *h == name);
        columns[k] = match (found.next(), found.next()) {
            (Some((i, _)), None) => i,
            (Some(_), Some(_)) => {
                return Err(malformed(
                    Some(1),
                    format!("column '{name}' appears more than once in the header"),
                ));
            }
            (None, _) => {
                return Err(DataError::MissingColumn {
                    path: csv.display().to_string(),
                    column: name,
                    header: header.join(","),
                    expected: "age, path, split",
                });
            }
        };
    }

    let mut rows = Vec::new();
    let mut record = csv::ByteRecord::new();
    loop {
        match reader.read_byte_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => return Err(malformed(line_of(e.position()), csv_message(&e))),
        }
        let line = line_of(record.position()).unwrap_or(0) as usize;
        rows.push(parse_row(&record, line, &columns, header.len(), csv, root));
    }
    if rows.is_empty() {
        return Err(malformed(
            None,
            "has a header but no rows: expected one row per image".into(),
        ));
    }

    // The file checks are the slow part (one stat, or a full decode, per image).
    let image_problems: Vec<Option<String>> = rows
        .par_iter()
        .map(|row| match &row.path {
            Ok((_, full)) => check_image(full, check_images),
            Err(_) => None,
        })
        .collect();

    let mut index = Index {
        root: root.to_path_buf(),
        ..Index::default()
    };
    for (row, problem) in rows.into_iter().zip(image_problems) {
        let bad = |value: String, reason: String| BadRow {
            file: csv.to_path_buf(),
            line: row.line,
            column: "path",
            value,
            reason,
        };
        let path = match (row.path, problem) {
            (Ok((written, _)), Some(reason)) => Err(bad(written, reason)),
            (p, _) => p,
        };
        match (row.age, path, row.split) {
            (Ok(age), Ok((_, path)), Ok(split)) => index.records.push(Record {
                line: row.line,
                age,
                path,
                split,
            }),
            (age, path, split) => {
                index.bad.extend(age.err());
                index.bad.extend(path.err());
                index.bad.extend(split.err());
            }
        }
    }
    Ok(index)
}

/// Parses the three required fields of one CSV row.
fn parse_row(
    record: &csv::ByteRecord,
    line: usize,
    columns: &[usize; 3],
    n_header: usize,
    csv: &Path,
    root: &Path,
) -> Parsed {
    let bad = |column: &'static str, value: &str, reason: String| BadRow {
        file: csv.to_path_buf(),
        line,
        column,
        value: value.to_string(),
        reason,
    };
    // Each field as UTF-8 text, or the problem with it.
    let field = |k: usize| -> std::result::Result<String, BadRow> {
        let name = REQUIRED_COLUMNS[k];
        match record.get(columns[k]) {
            None => Err(bad(
                name,
                "",
                format!(
                    "missing: the row has {} field{}, the header {n_header}",
                    record.len(),
                    if record.len() == 1 { "" } else { "s" }
                ),
            )),
            Some(bytes) => std::str::from_utf8(bytes).map(str::to_string).map_err(|_| {
                let lossy = String::from_utf8_lossy(bytes);
                bad(name, &lossy, "is not valid UTF-8".into())
            }),
        }
    };
    let age = field(0).and_then(|s| match s.parse::<f64>() {
        // `+ 0.0` turns `-0` into 0.
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v + 0.0),
        _ => Err(bad("age", &s, "expected a non-negative number".into())),
    });
    let path = field(1).and_then(|s| {
        if s.is_empty() {
            Err(bad(
                "path",
                &s,
                format!(
                    "expected the path of an image, relative to {}",
                    root.display()
                ),
            ))
        } else {
            let full = root.join(&s);
            Ok((s, full))
        }
    });
    let split = field(2).and_then(|s| {
        s.parse::<Split>()
            .map_err(|_| bad("split", &s, "expected train, val or test".into()))
    });
    Parsed {
        line,
        age,
        path,
        split,
    }
}

/// Why the image at `path` cannot be used, if it cannot: missing, not a file, or (when
/// `decode`) not decodable.
fn check_image(path: &Path, decode: bool) -> Option<String> {
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Some(format!("no such file: {}", path.display()));
        }
        Err(e) => return Some(format!("{}: {e}", path.display())),
        Ok(m) if !m.is_file() => {
            return Some(format!("{} is not a file", path.display()));
        }
        Ok(_) => {}
    }
    if decode && let Err(e) = super::decode::decode_rgb(path) {
        return Some(format!("{}: {e}", path.display()));
    }
    None
}

/// A CSV error's message without the position the caller already prints.
fn csv_message(e: &csv::Error) -> String {
    match e.kind() {
        csv::ErrorKind::Io(io) => io.to_string(),
        csv::ErrorKind::Utf8 { err, .. } => format!("invalid UTF-8: {err}"),
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_names_round_trip() {
        for s in Split::ALL {
            assert_eq!(s.to_string().parse::<Split>(), Ok(s));
            assert_eq!(serde_json::to_string(&s).unwrap(), format!("\"{s}\""));
        }
        assert!("Train".parse::<Split>().is_err());
        assert!("validation".parse::<Split>().is_err());
    }

    #[test]
    fn bad_row_display_names_file_line_column_and_value() {
        let b = BadRow {
            file: PathBuf::from("agedb.csv"),
            line: 17,
            column: "age",
            value: "-3".into(),
            reason: "expected a non-negative number".into(),
        };
        assert_eq!(
            b.to_string(),
            "agedb.csv:17: column 'age': '-3': expected a non-negative number"
        );
    }
}
