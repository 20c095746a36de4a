//! Runs a command on hostile input in a folder of its own and checks what a user is promised:
//! the exit code, an error on stderr that names what is wrong, no panic, every input file
//! unchanged, and no file left behind by a failed command.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Every file under `dir` (recursively) with its bytes.
pub fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(bytes) = std::fs::read(&p) {
                out.insert(p.strip_prefix(dir).unwrap().to_path_buf(), bytes);
            }
        }
    }
    out
}

/// What a command is expected to do.
pub enum Expect {
    /// Exit code 2; stderr holds every needle.
    Fails(Vec<String>),
    /// Exit code 0; stdout + stderr hold every needle; only the listed files are new.
    Succeeds {
        /// Needles of the output.
        needles: Vec<String>,
        /// Files (relative to the case folder) the command may create.
        creates: Vec<String>,
    },
}

/// One hostile-input case: files to lay out, the command line, the expected outcome.
pub struct Case {
    /// Short name shown when the case fails.
    pub name: String,
    /// Files (relative path, bytes) written into the case folder first; a path ending in `/` is
    /// an empty folder.
    pub files: Vec<(String, Vec<u8>)>,
    /// Arguments after the program, relative to the case folder.
    pub args: Vec<String>,
    /// The outcome.
    pub expect: Expect,
}

impl Case {
    /// A case; `args` is split on spaces (arguments with spaces go through [`Case::arg`]).
    pub fn new(name: &str, args: &str, expect: Expect) -> Case {
        Case {
            name: name.into(),
            files: Vec::new(),
            args: args.split_whitespace().map(str::to_string).collect(),
            expect,
        }
    }

    /// Adds a file.
    pub fn file(mut self, path: &str, bytes: impl AsRef<[u8]>) -> Case {
        self.files.push((path.into(), bytes.as_ref().to_vec()));
        self
    }

    /// Adds one argument as it is.
    pub fn arg(mut self, a: &str) -> Case {
        self.args.push(a.into());
        self
    }
}

/// Expect exit code 2 and these needles on stderr.
pub fn fails(needles: &[&str]) -> Expect {
    Expect::Fails(needles.iter().map(|s| s.to_string()).collect())
}

/// Expect success with these needles in the output and these new files.
pub fn succeeds(needles: &[&str], creates: &[&str]) -> Expect {
    Expect::Succeeds {
        needles: needles.iter().map(|s| s.to_string()).collect(),
        creates: creates.iter().map(|s| s.to_string()).collect(),
    }
}

/// Runs `case` with `program` in a fresh folder; `Err` says every broken promise.
pub fn check(program: &Path, case: &Case) -> Result<(), String> {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    for (path, bytes) in &case.files {
        let p = dir.join(path);
        if path.ends_with('/') {
            std::fs::create_dir_all(&p).unwrap();
        } else {
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, bytes).unwrap();
        }
    }
    let before = snapshot(dir);
    let out = Command::new(program)
        .args(&case.args)
        .current_dir(dir)
        // A panic would print its backtrace; the check looks for the panic message itself.
        .env("RUST_BACKTRACE", "0")
        .output()
        .map_err(|e| format!("{}: cannot run: {e}", program.display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let after = snapshot(dir);
    let mut problems = Vec::new();
    if stderr.contains("panicked") || stderr.contains("RUST_BACKTRACE") {
        problems.push("panicked".to_string());
    }
    for (path, bytes) in &before {
        match after.get(path) {
            None => problems.push(format!("input {} was removed", path.display())),
            Some(b) if b != bytes => problems.push(format!("input {} changed", path.display())),
            Some(_) => {}
        }
    }
    let new: Vec<&PathBuf> = after.keys().filter(|p| !before.contains_key(*p)).collect();
    match &case.expect {
        Expect::Fails(needles) => {
            if out.status.code() != Some(2) {
                problems.push(format!("exit code {:?}, expected 2", out.status.code()));
            }
            for n in needles {
                if !stderr.contains(n.as_str()) {
                    problems.push(format!("stderr lacks {n:?}"));
                }
            }
            if !new.is_empty() {
                problems.push(format!("a failed command left files behind: {new:?}"));
            }
        }
        Expect::Succeeds { needles, creates } => {
            if out.status.code() != Some(0) {
                problems.push(format!("exit code {:?}, expected 0", out.status.code()));
            }
            let all = format!("{stdout}{stderr}");
            for n in needles {
                if !all.contains(n.as_str()) {
                    problems.push(format!("output lacks {n:?}"));
                }
            }
            for p in &new {
                let allowed = creates
                    .iter()
                    .any(|c| p.starts_with(c) || p.to_str() == Some(c.as_str()));
                if !allowed {
                    problems.push(format!("unexpected new file {}", p.display()));
                }
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{}: {}\n  args: {:?}\n  stderr: {}",
            case.name,
            problems.join("; "),
            case.args,
            stderr.trim_end()
        ))
    }
}

/// Runs every case and fails with the list of broken ones.
pub fn check_all(program: &Path, cases: &[Case]) {
    println!("{} hostile-input cases", cases.len());
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|c| check(program, c).err())
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} hostile-input cases broke a promise:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
