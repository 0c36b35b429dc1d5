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
use super::{bytecode, ClosureError};

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
    /// How this interpreter names and marks its byte code (`None`: it writes none).
    cache_tag: Option<String>,
    magic: String,
    optimize: u32,
}

const PYTHON_PATHS: &str = "import sys, json, importlib.util; \
    print(json.dumps({'path': [p for p in sys.path if p], \
    'version': '%d.%d' % sys.version_info[:2], \
    'cache_tag': sys.implementation.cache_tag, \
    'magic': importlib.util.MAGIC_NUMBER.hex(), 'optimize': sys.flags.optimize}))";

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
    let mut cache = None;
    let mut sys_path: Vec<PathBuf> = vec![];
    for home in homes {
        let out = ask(interpreter, args, &["-c", PYTHON_PATHS], home)?;
        let paths: PythonPaths =
            serde_json::from_str(out.trim()).map_err(|e| ClosureError::Interpreter {
                interpreter: interpreter.to_path_buf(),
                detail: format!("unexpected answer about sys.path: {e}"),
            })?;
        for p in paths.path {
            if !sys_path.iter().any(|q| q.as_os_str() == p.as_str()) {
                sys_path.push(PathBuf::from(p));
            }
        }
        version = paths.version;
        cache = bytecode::Cache::of(paths.cache_tag, &paths.magic, paths.optimize);
    }
    let user_sites: Vec<PathBuf> = homes
        .iter()
        .map(|home| {
            home.join(".local/lib")
                .join(format!("python{version}"))
                .join("site-packages")
        })
        .collect();
    let script_dir = script.and_then(Path::parent);

    // Byte code first, so that the record holds what the program's first run will find.
    let tree = |p: &PathBuf| bytecode::Folder {
        path: p.clone(),
        recursive: true,
    };
    let mut folders: Vec<bytecode::Folder> = sys_path.iter().chain(&user_sites).map(tree).collect();
    if let Some(dir) = script_dir {
        folders.extend(script_folder(dir));
    }
    if let Some(cache) = &cache {
        b.bytecode_compiled(bytecode::refresh(interpreter, args, cache, &folders)?.compiled);
    }

    for p in sys_path.iter().chain(&user_sites) {
        b.path(p, Role::Module)?;
    }
    if let Some(dir) = script_dir {
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

/// A script's own folder, as byte code goes: its sibling modules and its packages (folders
/// with `__init__.py`), not every folder below it (a script in a home folder).
fn script_folder(dir: &Path) -> Vec<bytecode::Folder> {
    let mut folders = vec![bytecode::Folder {
        path: dir.to_path_buf(),
        recursive: false,
    }];
    let mut packages: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("__init__.py").is_file())
        .collect();
    packages.sort();
    folders.extend(packages.into_iter().map(|path| bytecode::Folder {
        path,
        recursive: true,
    }));
    folders
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
