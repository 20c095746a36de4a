//! Replacing a file so that it is either the old file or the whole new one: the bytes go to a
//! temporary sibling (`.NAME.PID.partial.EXT`, same folder and extension), which is synced and
//! then renamed over the target. A crash, a full disk or an error mid-write leaves the previous
//! file as it was, and an error removes the temporary file.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// The temporary sibling of `path` that [`replace_with`] and [`write_atomic`] fill first. It
/// keeps the extension, for writers that pick a format from it (a PNG encoder).
pub fn partial_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    let ext = path
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.{}.partial{ext}", std::process::id()))
}

/// Replaces `path` with what `fill` writes to the temporary path it is given (see the module
/// documentation). The error is the first one; the target is untouched when there is one.
pub fn replace_with(
    path: &Path,
    fill: impl FnOnce(&Path) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let tmp = partial_path(path);
    let result = fill(&tmp)
        .and_then(|()| File::open(&tmp)?.sync_all())
        .and_then(|()| std::fs::rename(&tmp, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// [`replace_with`] through a buffered writer.
pub fn write_atomic(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> std::io::Result<()> {
    replace_with(path, |tmp| {
        let mut w = BufWriter::with_capacity(1 << 20, File::create(tmp)?);
        write(&mut w)?;
        w.flush()
    })
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
        // The temporary sibling keeps the extension.
        let tmp = partial_path(&dir.path().join("fig.png"));
        assert_eq!(tmp.extension().unwrap(), "png");
        assert_eq!(tmp.parent(), Some(dir.path()));
    }

    #[test]
    fn replace_with_fails_cleanly_when_the_filler_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.safetensors");
        std::fs::write(&path, b"old").unwrap();
        // A filler that reports success without writing: syncing the missing file fails.
        assert!(replace_with(&path, |_| Ok(())).is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
    }
}
