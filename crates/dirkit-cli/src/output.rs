//! Writing output files without ever overwriting what the user did not ask to overwrite.

use std::path::Path;

use crate::error::{CliError, Result};

/// Refuses an output path that exists (unless `force`) or that is the input itself.
pub fn check_writable(path: &str, input: &str, force: bool) -> Result<()> {
    let p = Path::new(path);
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
