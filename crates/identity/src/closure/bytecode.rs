//! Bringing a Python program's byte code up to date before its closure is recorded.
//!
//! Python writes `__pycache__/NAME.cpython-XY.pyc` when it imports a module whose byte code is
//! missing or older than its source (a restored or hand-edited module, a package installed
//! with `--no-compile`). In a module tree the closure records whole, that write is a change
//! like any other: a certified program with stale byte code would break its own
//! certification the first time it ran. Byte code cannot simply be left out of the closure
//! either: Python loads a `.pyc` whose header matches its source's size and time, whoever
//! wrote it.
//!
//! So certification first has the interpreter compile what is stale (`compileall`, with the
//! interpreter's own options, isolated from the environment and from `site`), and then records
//! the result. Each folder is compiled by its owner: a user's site folder by that user, so the
//! service never writes as root where a user could have put a symbolic link.

use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::ClosureError;

/// A folder whose byte code to bring up to date.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Folder {
    pub path: PathBuf,
    /// Its sub-folders too (a module tree), or only its own files (a script's folder, which
    /// Python imports sibling modules from).
    pub recursive: bool,
}

/// What [`refresh`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Refreshed {
    /// The sources compiled, their byte code having been missing or stale.
    pub compiled: Vec<PathBuf>,
}

/// Compile the stale byte code of `folders` with `interpreter` (run with the certified
/// program's interpreter options `args`). Sources that do not compile are left as they are:
/// Python could not import them either, so it never writes byte code for them.
pub(crate) fn refresh(
    interpreter: &Path,
    args: &[String],
    folders: &[Folder],
) -> Result<Refreshed, ClosureError> {
    let mut done = Refreshed::default();
    for folder in folders {
        // Not there (a user site nobody made), or not a folder (an archive on sys.path).
        let Ok(meta) = std::fs::symlink_metadata(&folder.path) else {
            continue;
        };
        if !meta.is_dir() {
            continue;
        }
        let mut c = Command::new(interpreter);
        c.args(args).args([
            "-I",
            "-S",
            "-m",
            "compileall",
            "--invalidation-mode",
            "timestamp",
        ]);
        if !folder.recursive {
            c.arg("-l");
        }
        c.arg(&folder.path)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .current_dir("/");
        if meta.uid() != 0 {
            c.uid(meta.uid()).gid(meta.gid());
        }
        let out = c.output().map_err(|source| ClosureError::Io {
            path: interpreter.to_path_buf(),
            source,
        })?;
        // compileall exits 1 when a source does not compile; only what it says it compiled
        // counts. An interpreter that could not start says nothing of the kind.
        let stdout = String::from_utf8_lossy(&out.stdout);
        let compiled = compiled_sources(&stdout);
        if !out.status.success() && compiled.is_empty() && !stdout.contains("Listing ") {
            return Err(ClosureError::Interpreter {
                interpreter: interpreter.to_path_buf(),
                detail: format!(
                    "could not compile the byte code of {}: {}",
                    folder.path.display(),
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
            });
        }
        done.compiled.extend(compiled);
    }
    Ok(done)
}

/// The sources `compileall` reports compiling (`Compiling '/x/y.py'...`).
fn compiled_sources(stdout: &str) -> Vec<PathBuf> {
    stdout
        .lines()
        .filter_map(|l| {
            let quoted = l.strip_prefix("Compiling ")?.strip_suffix("...")?;
            // The name as Python's repr() gives it: in single quotes, or double when it
            // holds one.
            quoted
                .strip_prefix('\'')
                .and_then(|q| q.strip_suffix('\''))
                .or_else(|| quoted.strip_prefix('"')?.strip_suffix('"'))
        })
        .map(PathBuf::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiled_sources_are_read_from_compileall_output() {
        let out = "Listing '/m'...\nCompiling '/m/a.py'...\n*** Error compiling '/m/b.py'...\n\
                   Listing '/m/p'...\nCompiling \"/m/p/it's.py\"...\n";
        assert_eq!(
            compiled_sources(out),
            vec![PathBuf::from("/m/a.py"), PathBuf::from("/m/p/it's.py")]
        );
    }
}
