//! `dirkit split`: the `age,path,split` index of a folder of AgeDB-style face images.

use std::io::Write;
use std::path::{Path, PathBuf};

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
        scan.require_clean().map_err(|e| {
            CliError::Usage(if a.list_bad {
                e.full_list()
            } else {
                e.to_string()
            })
        })?;
    }
    let (files, skipped) = scan.skipping_bad();
    if files.is_empty() {
        return Err(CliError::Input {
            path: a.image_dir.clone(),
            message: "no image name parses as id_name_age_gender.ext".into(),
        });
    }
    let cap = cap(a);
    // Paths relative to the index's own folder, so that the index finds its images wherever it
    // is kept (the example resolves them against the index's folder by default).
    let prefix = image_prefix(Path::new(&a.image_dir), target);
    let rows: Vec<_> = plan_split(&files, cap, a.seed)
        .into_iter()
        .map(|(p, age, split)| (prefix.join(p), age, split))
        .collect();
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

/// The image folder as seen from the folder of `index`: a relative path (empty when the index
/// is in the image folder) when both resolve on one root, else the image folder's absolute path.
fn image_prefix(image_dir: &Path, index: &Path) -> PathBuf {
    let Ok(images) = std::fs::canonicalize(image_dir) else {
        return image_dir.to_path_buf();
    };
    let parent = index
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let Ok(base) = std::fs::canonicalize(parent) else {
        return images;
    };
    let (from, to): (Vec<_>, Vec<_>) = (base.components().collect(), images.components().collect());
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    if common == 0 {
        return images;
    }
    let mut rel = PathBuf::new();
    for _ in common..from.len() {
        rel.push("..");
    }
    for c in &to[common..] {
        rel.push(c);
    }
    rel
}

/// A dirkit-data error as the CLI prints it (its message already names the file).
fn data(e: DataError) -> CliError {
    CliError::Usage(e.to_string())
}
