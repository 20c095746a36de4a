//! Writing output files without ever overwriting what the user did not ask to overwrite.

use std::path::Path;

use crate::error::{CliError, Result};

/// Refuses an output path that exists (unless `force`), that is the input itself, that is a
/// folder, or whose folder does not exist — before any work is done.
pub fn check_writable(path: &str, input: &str, force: bool) -> Result<()> {
    let p = Path::new(path);
    if p.is_dir() {
        return Err(CliError::Usage(format!(
            "{path}: is a folder, expected the path of a file to write"
        )));
    }
    if let Some(dir) = p.parent()
        && !dir.as_os_str().is_empty()
        && !dir.is_dir()
    {
        return Err(CliError::Usage(format!(
            "{path}: the folder {} does not exist (create it first)",
            dir.display()
        )));
    }
    if input != "-"
        && let (Ok(a), Ok(b)) = (p.canonicalize(), Path::new(input).canonicalize())
        && a == b
    {
        return Err(CliError::Usage(format!(
            "{path}: refusing to overwrite the input file"
        )));
    }
    if p.exists() && !force {
        return Err(CliError::Usage(format!(
            "{path}: already exists (pass --force to overwrite it)"
        )));
    }
    Ok(())
}
