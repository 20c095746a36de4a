//! Building the `age,path,split` index of a face data set from a folder of images named
//! `id_name_age_gender.ext` (the AgeDB naming, e.g. `0_MariaCallas_35_f.jpg`), with the balanced
//! validation and test sets of the DIR benchmarks.
//!
//! The recipe is Yang et al.'s (`agedb-dir/data/create_agedb.py` and `preprocess_agedb.py`):
//! for each age, shuffle that age's images, put `k = min(n / 3, cap)` (integer division) into
//! `val`, the next `k` into `test` and the rest into `train`. The cap is 30 images per age for
//! AgeDB-DIR ([`AGEDB_CAP`]) and 150 for IMDB-WIKI-DIR ([`IMDB_WIKI_CAP`]). The shuffle is
//! seeded here (the reference used NumPy's global state), so the same seed gives the same split.
//!
//! ```
//! use std::path::PathBuf;
//! use dirkit_data::dataset::Split;
//! use dirkit_data::split::plan_split;
//!
//! let files: Vec<(PathBuf, f64)> =
//!     (0..10).map(|i| (PathBuf::from(format!("{i}_A_20_f.jpg")), 20.0)).collect();
//! let rows = plan_split(&files, 2, 0);
//! let count = |s| rows.iter().filter(|r| r.2 == s).count();
//! assert_eq!((count(Split::Train), count(Split::Val), count(Split::Test)), (6, 2, 2));
//! ```

use std::cmp::Ordering;
use std::path::{Path, PathBuf};

use dirkit_core::SplitMix64;

use crate::dataset::Split;
pub use crate::error::BadName;
use crate::error::{DataError, Result};

/// Validation and test images per age in AgeDB-DIR (Yang et al. 2021).
pub const AGEDB_CAP: usize = 30;
/// Validation and test images per age in IMDB-WIKI-DIR (Yang et al. 2021).
pub const IMDB_WIKI_CAP: usize = 150;
/// File extensions taken as images (compared in lower case); other files are ignored.
pub const IMAGE_EXTENSIONS: [&str; 3] = ["jpg", "jpeg", "png"];

/// The fields of an `id_name_age_gender.ext` file name.
///
/// The age is the second-to-last `_` field and the gender the last, so a name may itself
/// contain underscores (`7_Jean_Paul_Belmondo_60_m.jpg` is id 7, name `Jean_Paul_Belmondo`).
#[derive(Debug, Clone, PartialEq)]
pub struct FaceName {
    /// The first field (AgeDB's running number), non-empty.
    pub id: String,
    /// Everything between the id and the age, non-empty.
    pub name: String,
    /// Age in whole years.
    pub age: f64,
    /// `m` or `f`, lower case.
    pub gender: char,
}

/// Parses an image file name `id_name_age_gender.ext`; the error says what was expected.
pub fn parse_face_name(file_name: &str) -> std::result::Result<FaceName, String> {
    let stem = file_name
        .rsplit_once('.')
        .map_or(file_name, |(stem, _ext)| stem);
    let fields: Vec<&str> = stem.split('_').collect();
    let n = fields.len();
    if n < 4 {
        return Err(format!(
            "expected id_name_age_gender.ext (like 0_MariaCallas_35_f.jpg), found {n} \
             '_'-separated field{}",
            if n == 1 { "" } else { "s" }
        ));
    }
    let (id, name) = (fields[0], fields[1..n - 2].join("_"));
    if id.is_empty() || name.is_empty() {
        return Err("expected id_name_age_gender.ext with a non-empty id and name".into());
    }
    let age_text = fields[n - 2];
    let age = match age_text.parse::<u32>() {
        Ok(a) if age_text.bytes().all(|b| b.is_ascii_digit()) => f64::from(a),
        _ => {
            return Err(format!(
                "age '{age_text}' (the second-to-last field): expected a whole number of years"
            ));
        }
    };
    let gender = match fields[n - 1] {
        "m" | "M" => 'm',
        "f" | "F" => 'f',
        g => return Err(format!("gender '{g}' (the last field): expected m or f")),
    };
    Ok(FaceName {
        id: id.to_string(),
        name,
        age,
        gender,
    })
}

/// The images of a folder: `(file name, age)` of those whose names parse, and the others.
#[derive(Debug, Clone, PartialEq)]
pub struct Scan {
    /// The folder scanned.
    pub dir: PathBuf,
    /// File names (relative to `dir`) and ages, sorted by name.
    pub files: Vec<(PathBuf, f64)>,
    /// Image files whose names do not parse, sorted by name.
    pub bad: Vec<BadName>,
    /// Entries that are not images and were left alone: sub-folders, hidden files, other
    /// extensions (such as an index CSV written into the folder).
    pub ignored: usize,
}

impl Scan {
    /// The default policy: `Ok` when every image name parses, else a [`DataError::BadNames`]
    /// listing all of them, one per line.
    pub fn require_clean(&self) -> Result<()> {
        if self.bad.is_empty() {
            return Ok(());
        }
        Err(DataError::BadNames {
            dir: self.dir.display().to_string(),
            names: self.bad.clone(),
        })
    }

    /// The `--skip-bad` policy: the parsed files and how many images were left out.
    pub fn skipping_bad(self) -> (Vec<(PathBuf, f64)>, usize) {
        (self.files, self.bad.len())
    }
}

/// Lists the images (`.jpg`, `.jpeg`, `.png`, any case) directly in `dir`, not in
/// sub-folders, and parses their names with [`parse_face_name`]. Hidden files and other
/// extensions are counted in [`Scan::ignored`]. Nothing is opened or modified. A folder without
/// any image is an error.
pub fn scan_faces(dir: &Path) -> Result<Scan> {
    let io_err = |path: &Path, e: std::io::Error| DataError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    let mut scan = Scan {
        dir: dir.to_path_buf(),
        files: Vec::new(),
        bad: Vec::new(),
        ignored: 0,
    };
    for entry in std::fs::read_dir(dir).map_err(|e| io_err(dir, e))? {
        let entry = entry.map_err(|e| io_err(dir, e))?;
        let path = entry.path();
        let file_name = entry.file_name();
        let is_image = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()));
        let hidden = file_name.as_encoded_bytes().first() == Some(&b'.');
        if !is_image || hidden || !path.is_file() {
            scan.ignored += 1;
            continue;
        }
        let parsed = file_name
            .to_str()
            .ok_or_else(|| "the name is not valid UTF-8".to_string())
            .and_then(parse_face_name);
        match parsed {
            Ok(face) => scan.files.push((PathBuf::from(file_name), face.age)),
            Err(reason) => scan.bad.push(BadName { path, reason }),
        }
    }
    if scan.files.is_empty() && scan.bad.is_empty() {
        return Err(DataError::Io {
            path: dir.display().to_string(),
            message: "has no .jpg, .jpeg or .png files: expected face images named \
                      id_name_age_gender.ext"
                .into(),
        });
    }
    scan.files.sort_by(|a, b| a.0.cmp(&b.0));
    scan.bad.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(scan)
}

/// The generator that shuffles the images of one age: two SplitMix64 steps over `seed` and the
/// age's bits, so each age's draw depends on the seed and that age only.
fn age_rng(seed: u64, age: f64) -> SplitMix64 {
    let key = SplitMix64::new(seed).next_u64();
    SplitMix64::new(SplitMix64::new(key ^ age.to_bits()).next_u64())
}

/// Assigns each `(path, age)` to a split by the DIR recipe: per age, the images sorted by
/// path and shuffled with the age's generator, then `k = min(n / 3, cap)` to `val`, `k` to
/// `test`, the rest to `train`.
///
/// The result does not depend on the order of `files`. Rows come out sorted by split (train,
/// val, test), then age, then path. Ages are grouped by exact value; they should be finite.
pub fn plan_split(files: &[(PathBuf, f64)], cap: usize, seed: u64) -> Vec<(PathBuf, f64, Split)> {
    let mut sorted: Vec<&(PathBuf, f64)> = files.iter().collect();
    sorted.sort_by(|a, b| a.1.total_cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
    let mut rows = Vec::with_capacity(files.len());
    for group in sorted.chunk_by(|a, b| a.1.total_cmp(&b.1) == Ordering::Equal) {
        let age = group[0].1;
        let mut order: Vec<usize> = (0..group.len()).collect();
        age_rng(seed, age).shuffle(&mut order);
        let k = (group.len() / 3).min(cap);
        for (rank, &i) in order.iter().enumerate() {
            let split = if rank < k {
                Split::Val
            } else if rank < 2 * k {
                Split::Test
            } else {
                Split::Train
            };
            rows.push((group[i].0.clone(), age, split));
        }
    }
    rows.sort_by(|a, b| {
        (a.2.cmp(&b.2))
            .then_with(|| a.1.total_cmp(&b.1))
            .then_with(|| a.0.cmp(&b.0))
    });
    rows
}

/// Number of rows per split, in the order of [`Split::ALL`].
pub fn split_counts(rows: &[(PathBuf, f64, Split)]) -> [usize; 3] {
    let mut c = [0; 3];
    for r in rows {
        c[r.2 as usize] += 1;
    }
    c
}

/// Writes `rows` as a CSV with the header `age,path,split` (ages as written by Rust, `35` for
/// 35.0). Refuses a path that exists unless `overwrite` (checked when opening, so nothing can
/// slip in between), and refuses any path with an image extension even then, so an image is
/// never overwritten.
pub fn write_index(out: &Path, rows: &[(PathBuf, f64, Split)], overwrite: bool) -> Result<()> {
    let err = |message: String| DataError::Io {
        path: out.display().to_string(),
        message,
    };
    let is_image = out
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()));
    if is_image {
        return Err(err(
            "refusing to write the index to an image file name: expected a .csv path".into(),
        ));
    }
    if !overwrite && out.exists() {
        return Err(err("already exists (refusing to overwrite it)".into()));
    }
    dirkit_core::atomic::write_atomic(out, |w| {
        let mut csv = csv::Writer::from_writer(w);
        csv.write_record(["age", "path", "split"])?;
        for (path, age, split) in rows {
            let path = path.to_string_lossy();
            csv.write_record([age.to_string().as_str(), &path, split.as_str()])?;
        }
        csv.flush()
    })
    .map_err(|e| err(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_with_underscores_take_age_and_gender_from_the_end() {
        let f = parse_face_name("7_Jean_Paul_Belmondo_60_m.jpg").unwrap();
        assert_eq!(
            (f.id.as_str(), f.name.as_str(), f.age, f.gender),
            ("7", "Jean_Paul_Belmondo", 60.0, 'm')
        );
        let f = parse_face_name("0_MariaCallas_35_F.JPG").unwrap();
        assert_eq!((f.age, f.gender), (35.0, 'f'));
    }

    #[test]
    fn malformed_names_say_what_was_expected() {
        let e = |n| parse_face_name(n).unwrap_err();
        assert!(e("MariaCallas_35_f.jpg").contains("found 3"));
        assert!(e("0_Maria_x5_f.jpg").contains("age 'x5'"));
        assert!(e("0_Maria_-5_f.jpg").contains("age '-5'"));
        assert!(e("0_Maria_+5_f.jpg").contains("age '+5'"));
        assert!(e("0_Maria_35_x.jpg").contains("gender 'x'"));
        assert!(e("0__35_f.jpg").contains("non-empty"));
    }
}
