//! The interpreted part of a closure: what a script's interpreter can load code from, asked of
//! the interpreter itself (started with an empty environment, as the service would see it).
//!
//! - Python: every folder and archive on `sys.path` (the standard library, `lib-dynload`,
//!   every site folder, whatever `.pth` files add), the user site folder of each certified
//!   home, the script's own folder (first on `sys.path`), and the files that would turn the
//!   interpreter into another installation (`pyvenv.cfg`, `._pth`) next to it.
//! - Perl: every folder of `@INC`.
//!
//! Start-up hooks (`sitecustomize`, `usercustomize`, `*.pth`) live in those folders, so their
//! appearance is a change like any other.

use std::path::{Path, PathBuf};
use std::process::Command;

use imageguard_policy::Role;
use serde::Deserialize;

use super::scan::Builder;
use super::ClosureError;

/// Which interpreter a script runs under, by the interpreter's file name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Language {
    Python,
    Perl,
    Shell,
}

impl Language {
    /// By the program's name, or, for a copy under another name, by the entry point its binary
    /// exports (`Py_BytesMain`, `perl_construct`).
    pub fn of(interpreter: &Path) -> Option<Language> {
        let name = interpreter.file_name()?.to_string_lossy();
        if name.starts_with("python") {
            return Some(Language::Python);
        } else if name.starts_with("perl") {
            return Some(Language::Perl);
        } else if ["sh", "bash", "dash"].contains(&&*name) {
            return Some(Language::Shell);
        }
        let bytes = std::fs::read(interpreter).ok()?;
        let has = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
        if has(b"Py_BytesMain") {
            Some(Language::Python)
        } else if has(b"perl_construct") {
            Some(Language::Perl)
        } else {
            None
        }
    }
}

fn ask(
    interpreter: &Path,
    args: &[String],
    code: &[&str],
    home: &Path,
) -> Result<String, ClosureError> {
    let out = Command::new(interpreter)
        .args(args)
        .args(code)
        .env_clear()
        .env("HOME", home)
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .output()
        .map_err(|source| ClosureError::Io {
            path: interpreter.to_path_buf(),
            source,
        })?;
    if !out.status.success() {
        return Err(ClosureError::Interpreter {
            interpreter: interpreter.to_path_buf(),
            detail: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[derive(Deserialize)]
struct PythonPaths {
    path: Vec<String>,
    version: String,
}

const PYTHON_PATHS: &str = "import sys, json; \
    print(json.dumps({'path': [p for p in sys.path if p], \
    'version': '%d.%d' % sys.version_info[:2]}))";

/// Record what a Python interpreter loads for `script` (or for whatever it is given to run,
/// when the interpreter itself is certified), run by the users of `homes`.
pub(crate) fn python(
    b: &mut Builder,
    interpreter: &Path,
    invoked_as: &Path,
    args: &[String],
    script: Option<&Path>,
    homes: &[PathBuf],
) -> Result<(), ClosureError> {
    let mut version = String::new();
    for home in homes {
        let out = ask(interpreter, args, &["-c", PYTHON_PATHS], home)?;
        let paths: PythonPaths =
            serde_json::from_str(out.trim()).map_err(|e| ClosureError::Interpreter {
                interpreter: interpreter.to_path_buf(),
                detail: format!("unexpected answer about sys.path: {e}"),
            })?;
        for p in &paths.path {
            b.path(Path::new(p), Role::Module)?;
        }
        version = paths.version;
    }
    for home in homes {
        let user_site = home
            .join(".local/lib")
            .join(format!("python{version}"))
            .join("site-packages");
        b.path(&user_site, Role::Module)?;
    }
    if let Some(dir) = script.and_then(Path::parent) {
        b.python_importable(dir, Role::Module)?;
    }
    let names = |v: &str| {
        vec![
            "pyvenv.cfg".to_string(),
            "python._pth".to_string(),
            format!("python{}._pth", v.replace('.', "")),
            format!("python{v}._pth"),
        ]
    };
    for exe in [invoked_as, interpreter] {
        if let Some(dir) = exe.parent() {
            b.names(dir, &names(&version), Role::Module)?;
            if let Some(up) = dir.parent() {
                b.names(up, &["pyvenv.cfg".to_string()], Role::Module)?;
            }
        }
    }
    Ok(())
}

/// Record every folder of perl's `@INC`.
pub(crate) fn perl(
    b: &mut Builder,
    interpreter: &Path,
    args: &[String],
    home: &Path,
) -> Result<(), ClosureError> {
    let out = ask(interpreter, args, &["-e", r#"print "$_\n" for @INC"#], home)?;
    for dir in out.lines().filter(|l| l.starts_with('/')) {
        b.path(Path::new(dir), Role::Module)?;
    }
    Ok(())
}
