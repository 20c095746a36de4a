//! `dirkit split`: the `age,path,split` index of a folder of AgeDB-style face images.

use std::io::Write;
use std::path::Path;

use dirkit_data::DataError;
use dirkit_data::split::{
    AGEDB_CAP, IMAGE_EXTENSIONS, IMDB_WIKI_CAP, plan_split, scan_faces, split_counts, write_index,
};

use crate::args::{PresetArg, SplitArgs};
use crate::error::{CliError, Result};
use crate::output::check_writable;

/// The per-age cap the flags ask for: `--cap`, else the preset's.
pub fn cap(a: &SplitArgs) -> usize {
    a.cap.unwrap_or(match a.preset {
        PresetArg::Agedb => AGEDB_CAP,
        PresetArg::ImdbWiki => IMDB_WIKI_CAP,
    })
}

/// Runs `dirkit split`: scans the folder, plans the split, writes `--out` and prints a one-line
/// summary to `out`.
pub fn run(a: &SplitArgs, out: &mut dyn Write) -> Result<()> {
    let target = Path::new(&a.out);
    if target.is_dir() {
        return Err(CliError::Usage(format!(
            "{}: is a directory, expected the path of the CSV to write",
            a.out
        )));
    }
    let is_image = target
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()));
    if is_image {
        return Err(CliError::Usage(format!(
            "{}: refusing to write the index to an image file name, expected a .csv path",
            a.out
        )));
    }
    check_writable(&a.out, "-", a.force)?;

    let scan = scan_faces(Path::new(&a.image_dir)).map_err(data)?;
    if !a.skip_bad {
        scan.require_clean().map_err(data)?;
    }
    let (files, skipped) = scan.skipping_bad();
    if files.is_empty() {
        return Err(CliError::Input {
            path: a.image_dir.clone(),
            message: "no image name parses as id_name_age_gender.ext".into(),
        });
    }
    let cap = cap(a);
    let rows = plan_split(&files, cap, a.seed);
    write_index(target, &rows, a.force).map_err(data)?;

    let [train, val, test] = split_counts(&rows);
    let mut ages: Vec<f64> = rows.iter().map(|r| r.1).collect();
    ages.sort_by(f64::total_cmp);
    ages.dedup();
    let mut line = format!(
        "wrote {}: {} images, {} ages from {} to {}: train {train}, val {val}, test {test} \
         (cap {cap}, seed {})",
        a.out,
        rows.len(),
        ages.len(),
        ages[0],
        ages[ages.len() - 1],
        a.seed
    );
    if skipped > 0 {
        line.push_str(&format!(
            "; skipped {skipped} image{} with bad names",
            if skipped == 1 { "" } else { "s" }
        ));
    }
    line.push('\n');
    out.write_all(line.as_bytes())
        .map_err(|source| CliError::Io {
            path: "<stdout>".into(),
            source,
        })
}

/// A dirkit-data error as the CLI prints it (its message already names the file).
fn data(e: DataError) -> CliError {
    CliError::Usage(e.to_string())
}
