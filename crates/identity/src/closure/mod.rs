//! Recording a certified program's closure (everything its process can load code from) and
//! checking it again later. What the closure is, and the judgements over it, live in
//! [`imageguard_policy::closure`]; this module gathers the facts.
//!
//! - [`scan`]: recording files and folders, scanning a record again, comparing.
//! - [`native`]: the dynamic loader, shared libraries, name-service modules, loader inputs.
//! - [`interpreters`]: Python's `sys.path` and user site, Perl's `@INC`.
//! - [`bytecode`]: Python byte code brought up to date before a Python closure is recorded.

mod bytecode;
mod interpreters;
mod native;
pub mod scan;

use std::io;
use std::path::{Path, PathBuf};

use imageguard_policy::{Closure, Role, Runtime};

use crate::elf;
use interpreters::Language;
use native::Native;
use scan::Builder;
pub use scan::{verify, View};

#[derive(Debug, thiserror::Error)]
pub enum ClosureError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{0}: not a regular file")]
    NotAFile(PathBuf),
    #[error("the dynamic loader cannot resolve the libraries of {object}: {detail}")]
    Loader { object: PathBuf, detail: String },
    #[error("{interpreter} could not tell what it loads: {detail}")]
    Interpreter {
        interpreter: PathBuf,
        detail: String,
    },
    #[error(
        "imageguard does not know what {0} loads besides the script (it knows Python, Perl and \
         sh/bash/dash): use --force to certify the script with only its interpreter, its \
         libraries and the script itself recorded"
    )]
    UnknownInterpreter(PathBuf),
}

/// What to record besides what the program itself loads.
#[derive(Debug, Clone, Default)]
pub struct ClosureOptions {
    /// Files the administrator adds by hand (`--also`): sourced scripts, plugins.
    pub listed: Vec<PathBuf>,
    /// Files seen mapped executable while `certify --learn` ran the program's job.
    pub learned: Vec<PathBuf>,
    /// Home folders of the users who run the program (a Python program imports from the user
    /// site folder under `$HOME`).
    pub homes: Vec<PathBuf>,
    /// Certify a script whose interpreter imageguard does not model.
    pub force: bool,
    /// Certified as a helper of other programs (it counts only while they run it): a file tool
    /// (`cp`, `rm`) needs no `--force` then, and a shell only gets a warning.
    pub as_helper: bool,
}

/// A recorded closure and what recording it changed.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub closure: Closure,
    /// Python sources whose missing or stale byte code was compiled first ([`bytecode`]).
    pub bytecode_compiled: Vec<PathBuf>,
}

/// The interpreter of a certified script, as the closure needs it.
#[derive(Debug, Clone)]
pub struct ScriptInterpreter<'a> {
    /// Canonical path of the interpreter.
    pub path: &'a Path,
    /// The path the `#!` line gives (argv[0] when the kernel starts the script).
    pub invoked_as: &'a Path,
    pub args: &'a [String],
}

/// Record the closure of `program` (canonical), run directly or, for a script, by
/// `interpreter`.
pub fn record(
    program: &Path,
    interpreter: Option<&ScriptInterpreter<'_>>,
    options: &ClosureOptions,
) -> Result<Recorded, ClosureError> {
    let mut b = Builder::default();
    let mut runtimes = vec![];
    b.file(program, Role::Program)?;
    let native_program = match interpreter {
        Some(i) => {
            b.file(i.path, Role::Interpreter)?;
            i.path
        }
        None => program,
    };
    let loader = elf::loader(native_program).map_err(|source| ClosureError::Io {
        path: native_program.to_path_buf(),
        source,
    })?;
    let homes: Vec<PathBuf> = if options.homes.is_empty() {
        vec![root_home()]
    } else {
        options.homes.clone()
    };
    // A script's interpreter, or an interpreter certified itself (with --force): what it
    // loads besides native code.
    let (language, invoked_as, args, script) = match interpreter {
        Some(i) => (Language::of(i.path), i.invoked_as, i.args, Some(program)),
        None => (Language::of(program), program, &[][..], None),
    };
    match language {
        Some(Language::Python) => {
            runtimes.push(Runtime::Python);
            interpreters::python(&mut b, native_program, invoked_as, args, script, &homes)?;
        }
        Some(Language::Perl) => {
            runtimes.push(Runtime::Perl);
            interpreters::perl(&mut b, native_program, args, &homes[0])?;
        }
        Some(Language::Shell) => runtimes.push(Runtime::Shell),
        None if interpreter.is_none() || options.force => {}
        None => {
            return Err(ClosureError::UnknownInterpreter(
                native_program.to_path_buf(),
            ))
        }
    }
    let mut native = loader.map(Native::new);
    if let Some(native) = &mut native {
        runtimes.insert(0, Runtime::GlibcLoader);
        native.object(&mut b, native_program)?;
    }
    // After the loader's own answer, so that a learned library it maps anyway keeps its role.
    for p in &options.listed {
        b.file(&canonical(p)?, Role::Listed)?;
    }
    for p in &options.learned {
        b.file(&canonical(p)?, Role::Learned)?;
    }
    if let Some(mut native) = native {
        // Every other shared object the closure holds (extension modules, listed and learned
        // libraries) brings its own libraries (the loader's answer above is already whole).
        let objects: Vec<PathBuf> = b
            .files()
            .filter(|(p, role)| {
                matches!(role, Role::Module | Role::Learned | Role::Listed)
                    && (p.ends_with(".so") || p.contains(".so."))
            })
            .map(|(p, _)| PathBuf::from(p))
            .filter(|p| elf::is_elf(p))
            .collect();
        for o in objects {
            native.object(&mut b, &o)?;
        }
        native.nss_modules(&mut b)?;
        native.finish(&mut b)?;
    }
    let homes = if runtimes.contains(&Runtime::Python) {
        homes
            .iter()
            .map(|h| h.to_string_lossy().into_owned())
            .collect()
    } else {
        vec![]
    };
    let bytecode_compiled = std::mem::take(&mut b.bytecode_compiled);
    Ok(Recorded {
        closure: b.finish(runtimes, homes),
        bytecode_compiled,
    })
}

fn canonical(p: &Path) -> Result<PathBuf, ClosureError> {
    p.canonicalize().map_err(|source| ClosureError::Io {
        path: p.to_path_buf(),
        source,
    })
}

/// root's home folder, from the password database (`/root` when it is not there).
pub fn root_home() -> PathBuf {
    home_of(0).unwrap_or_else(|| PathBuf::from("/root"))
}

/// The home folder of user `uid` in `/etc/passwd`.
pub fn home_of(uid: u32) -> Option<PathBuf> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() >= 6 && f[2].parse::<u32>().ok() == Some(uid)).then(|| PathBuf::from(f[5]))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certify::certify_path;

    /// borg, as Debian ships it: a Python script (the tests' machines install borgbackup).
    #[test]
    fn borg_closure_holds_its_interpreter_modules_hooks_and_libraries() {
        let t = std::time::Instant::now();
        let c = certify_path(Path::new("/usr/bin/borg"), &ClosureOptions::default(), 0).unwrap();
        let took = t.elapsed();
        let closure = c.entry.closure.unwrap();
        eprintln!(
            "borg: {} files, {} folders, recorded in {:.2} s",
            closure.files.len(),
            closure.dirs.len(),
            took.as_secs_f64()
        );
        let file = |p: &str| closure.files.iter().find(|f| f.path == p);
        let dir = |p: &str| closure.dirs.iter().find(|d| d.path == p);
        assert_eq!(
            closure.runtimes,
            vec![Runtime::GlibcLoader, Runtime::Python]
        );
        assert_eq!(file("/usr/bin/borg").unwrap().role, Role::Program);
        assert_eq!(
            file("/usr/lib/python3.11/os.py").unwrap().role,
            Role::Module
        );
        assert!(closure
            .files
            .iter()
            .any(|f| f.path.starts_with("/usr/lib/python3/dist-packages/borg/")));
        // The standard library, borg's package and every site folder are whole trees.
        for d in [
            "/usr/lib/python3.11",
            "/usr/lib/python3.11/lib-dynload",
            "/usr/lib/python3/dist-packages",
            "/usr/lib/python3/dist-packages/borg",
        ] {
            assert!(dir(d).unwrap().entries.all, "{d}");
        }
        // The script's folder counts for what Python would import from it.
        let bin = dir("/usr/bin").unwrap();
        assert!(bin.entries.covers("argparse.py", false) && !bin.entries.covers("vim", false));
        // The user site folder of root, and the system site folder that does not exist, are
        // watched from their deepest existing ancestor.
        let home = root_home();
        let user_site_watched = closure
            .dirs
            .iter()
            .any(|d| Path::new(&d.path).starts_with(&home) && !d.entries.names.is_empty())
            || dir(&format!(
                "{}/.local/lib/python3.11/site-packages",
                home.display()
            ))
            .is_some();
        assert!(user_site_watched);
        assert_eq!(closure.homes, vec![home.to_string_lossy().into_owned()]);
        // Extension modules bring their libraries (borg's crypto needs libcrypto).
        assert!(closure
            .files
            .iter()
            .any(|f| f.role == Role::Library && f.path.contains("libcrypto")));
        // Comparing with the disk right away finds nothing.
        assert_eq!(verify(&closure, &View::own()), None);
    }
}
