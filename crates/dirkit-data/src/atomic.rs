//! Writing a file so that it is either the old file or the whole new one: the bytes go to a
//! temporary file in the same folder (`.NAME.PID.partial`), which is flushed, synced and then
//! renamed over the target. A crash, a full disk or an error mid-write leaves the previous file
//! as it was and removes the temporary one.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// The temporary sibling of `path` that [`write_atomic`] writes first.
pub fn partial_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    path.with_file_name(format!(".{name}.{}.partial", std::process::id()))
}

/// Writes `path` through `write` atomically (see the module documentation). The error is the
/// first I/O error; the target is untouched when there is one.
pub fn write_atomic(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let tmp = partial_path(path);
    let result = (|| {
        let file = std::fs::File::create(&tmp)?;
        let mut w = BufWriter::with_capacity(1 << 20, file);
        write(&mut w)?;
        let file = w.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_write_keeps_the_previous_file_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("report.json");
        write_atomic(&path, |w| w.write_all(b"first")).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"first");
        // The writer fails half-way: the old content stays whole.
        let e = write_atomic(&path, |w| {
            w.write_all(b"half of the sec")?;
            Err(std::io::Error::other("disk full"))
        })
        .unwrap_err();
        assert_eq!(e.to_string(), "disk full");
        assert_eq!(std::fs::read(&path).unwrap(), b"first");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("report.json")]);
        write_atomic(&path, |w| w.write_all(b"second")).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second");
        // A missing folder: an error, nothing created.
        let missing = dir.path().join("nope").join("x.csv");
        assert!(write_atomic(&missing, |w| w.write_all(b"x")).is_err());
        assert!(!missing.exists());
    }
}
