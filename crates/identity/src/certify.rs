//! Turning a path into a certified-list entry.
//!
//! Shells and interpreters are refused (certifying `bash` would certify every script), unless
//! forced. A script (`#!` line) is certified together with its interpreter, so `borg` (a Python
//! script on Debian) is certified as "python3 running /usr/bin/borg", not as python3.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use imageguard_policy::certification::is_interpreter_name;
use imageguard_policy::{CertifiedEntry, Interpreter};

use crate::closure::{self, ClosureError, ClosureOptions, ScriptInterpreter};
use crate::hashing::sha256_hex;
use crate::procfs::identity_of;

#[derive(Debug, thiserror::Error)]
pub enum CertifyError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{0}: not a regular file")]
    NotRegular(PathBuf),
    #[error(
        "{path}: refusing to certify {name}: it is a shell or interpreter, and certifying it would \
         let every script it runs modify backups (use --force to certify it anyway)"
    )]
    Interpreter { path: PathBuf, name: String },
    #[error("{path}: unsupported #! line: {detail}")]
    Shebang { path: PathBuf, detail: String },
    #[error("{path} is {reason}")]
    NotASyncTool { path: PathBuf, reason: String },
    #[error("{path}: recording what it loads: {source}")]
    Closure {
        path: PathBuf,
        #[source]
        source: ClosureError,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> CertifyError + '_ {
    move |source| CertifyError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Whether the program at `path` may be added as a sync tool of `dialect` (none: it is not
/// being added as one): the policy core's rule, on its resolved path.
pub fn check_sync_tool(
    path: &Path,
    dialect: Option<imageguard_policy::sync_tools::Dialect>,
) -> Result<(), CertifyError> {
    let Some(dialect) = dialect else {
        return Ok(());
    };
    let resolved = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    imageguard_policy::sync_tools::servers::may_be_sync_tool(&resolved.to_string_lossy(), dialect)
        .map_err(|reason| CertifyError::NotASyncTool {
            path: path.to_path_buf(),
            reason,
        })
}

/// A new entry and the warnings worth showing the user.
#[derive(Debug)]
pub struct Certification {
    pub entry: CertifiedEntry,
    pub warnings: Vec<String>,
}

/// Build the certified-list entry for `path`, with its closure: everything its process can load
/// code from. `options.force` also certifies shells and interpreters themselves.
pub fn certify_path(
    path: &Path,
    options: &ClosureOptions,
    now: i64,
) -> Result<Certification, CertifyError> {
    let force = options.force;
    let canonical = path.canonicalize().map_err(io_err(path))?;
    let mut warnings = Vec::new();
    let (file, meta) = open_regular(&canonical)?;
    let mut head = [0u8; 512];
    let n = (&file).read(&mut head).map_err(io_err(&canonical))?;
    let head = &head[..n];

    for name in [basename(path), basename(&canonical)] {
        if options.as_helper && imageguard_policy::helpers::FILE_TOOLS.contains(&name.as_str()) {
            break;
        }
        if is_interpreter_name(&name) {
            if !force && !options.as_helper {
                return Err(CertifyError::Interpreter {
                    path: canonical,
                    name,
                });
            }
            warnings.push(format!(
                "warning: {} is a shell or interpreter; every script it runs may now modify backups",
                canonical.display()
            ));
            break;
        }
    }
    if meta.permissions_mode() & 0o111 == 0 {
        warnings.push(format!(
            "warning: {} is not executable",
            canonical.display()
        ));
    }

    let interpreter = if head.starts_with(b"#!") {
        Some(script_interpreter(&canonical, head)?)
    } else {
        None
    };
    let sha256 = sha256_hex(File::open(&canonical).map_err(io_err(&canonical))?)
        .map_err(io_err(&canonical))?;
    let script = interpreter.as_ref().map(|i| ScriptInterpreter {
        path: Path::new(&i.path),
        invoked_as: Path::new(if i.invoked_as.is_empty() {
            &i.path
        } else {
            &i.invoked_as
        }),
        args: &i.args,
    });
    let recorded = closure::record(&canonical, script.as_ref(), options).map_err(|source| {
        CertifyError::Closure {
            path: canonical.clone(),
            source,
        }
    })?;
    if let Some(first) = recorded.bytecode_compiled.first() {
        warnings.push(format!(
            "note: compiled the missing or stale Python byte code of {} module(s) before \
             recording (first: {}), so that the program's first run does not change its own \
             code",
            recorded.bytecode_compiled.len(),
            first.display()
        ));
    }
    let closure = recorded.closure;
    Ok(Certification {
        entry: CertifiedEntry {
            path: canonical.to_string_lossy().into_owned(),
            sha256,
            identity: identity_of(&meta),
            interpreter,
            forced: force,
            certified_at: now,
            closure: Some(closure),
            helper_of: vec![],
            sync_tool: None,
        },
        warnings,
    })
}

trait ModeExt {
    fn permissions_mode(&self) -> u32;
}

impl ModeExt for std::fs::Metadata {
    fn permissions_mode(&self) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        self.permissions().mode()
    }
}

fn basename(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn open_regular(path: &Path) -> Result<(File, std::fs::Metadata), CertifyError> {
    let file = File::open(path).map_err(io_err(path))?;
    let meta = file.metadata().map_err(io_err(path))?;
    if !meta.is_file() {
        return Err(CertifyError::NotRegular(path.to_path_buf()));
    }
    Ok((file, meta))
}

/// Resolve the interpreter a `#!` line names, the way the kernel (and `env`) will run it.
fn script_interpreter(script: &Path, head: &[u8]) -> Result<Interpreter, CertifyError> {
    let bad = |detail: &str| CertifyError::Shebang {
        path: script.to_path_buf(),
        detail: detail.to_string(),
    };
    let line_end = head
        .iter()
        .position(|&b| b == b'\n')
        .ok_or_else(|| bad("no end of line"))?;
    let line = std::str::from_utf8(&head[2..line_end]).map_err(|_| bad("not UTF-8"))?;
    let line = line.trim();
    let (program, rest) = match line.split_once(char::is_whitespace) {
        Some((p, r)) => (p, r.trim()),
        None => (line, ""),
    };
    if program.is_empty() {
        return Err(bad("empty"));
    }
    let (interp_path, args) = if basename(Path::new(program)) == "env" {
        if rest.starts_with('-') || rest.contains(char::is_whitespace) || rest.is_empty() {
            return Err(bad("env with options or several arguments"));
        }
        (
            search_path(rest).ok_or_else(|| bad(&format!("{rest} not found in PATH")))?,
            vec![],
        )
    } else {
        let args = if rest.is_empty() {
            vec![]
        } else {
            vec![rest.to_string()]
        };
        (PathBuf::from(program), args)
    };
    let canonical = interp_path.canonicalize().map_err(io_err(&interp_path))?;
    let invoked_as = interp_path.to_string_lossy().into_owned();
    let (file, meta) = open_regular(&canonical)?;
    let mut magic = [0u8; 2];
    if (&file).read(&mut magic).map_err(io_err(&canonical))? == 2 && &magic == b"#!" {
        return Err(bad("the interpreter is itself a script"));
    }
    let sha256 = sha256_hex(file).map_err(io_err(&canonical))?;
    Ok(Interpreter {
        path: canonical.to_string_lossy().into_owned(),
        sha256,
        identity: identity_of(&meta),
        invoked_as: if invoked_as == canonical.to_string_lossy() {
            String::new()
        } else {
            invoked_as
        },
        args,
    })
}

fn search_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH")
        .unwrap_or_else(|_| "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
    path.split(':')
        .map(|d| Path::new(d).join(program))
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;
    use imageguard_policy::{Role, Runtime};
    use std::os::unix::fs::PermissionsExt;

    fn write_exec(dir: &Path, name: &str, body: &[u8]) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, body).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    fn opts(force: bool) -> ClosureOptions {
        ClosureOptions {
            force,
            ..ClosureOptions::default()
        }
    }

    #[test]
    fn binary_is_certified_with_hash_identity_and_closure() {
        let d = tempfile::tempdir().unwrap();
        let bytes = std::fs::read("/bin/true").unwrap();
        let p = write_exec(d.path(), "mybackup", &bytes);
        let c = certify_path(&p, &opts(false), 7).unwrap();
        assert_eq!(c.entry.sha256, sha256_hex(&bytes[..]).unwrap());
        assert!(c.entry.interpreter.is_none());
        assert_eq!(c.entry.certified_at, 7);
        assert!(c.warnings.is_empty());
        let closure = c.entry.closure.unwrap();
        let has = |role: Role, name: &str| {
            closure
                .files
                .iter()
                .any(|f| f.role == role && f.path.contains(name))
        };
        assert!(has(Role::Program, "mybackup"));
        assert!(has(Role::Loader, "ld-linux"));
        assert!(has(Role::Library, "libc.so.6"));
        assert_eq!(closure.runtimes, vec![Runtime::GlibcLoader]);
        // What the loader reads first is watched, present or not.
        let etc = closure.dirs.iter().find(|d| d.path == "/etc").unwrap();
        assert!(etc.entries.covers("ld.so.preload", false));
        assert!(!etc.entries.covers("hostname", false));
        // Garbage is not a program the loader can run.
        let fake = write_exec(d.path(), "fake", b"\x7fELF not really");
        assert!(matches!(
            certify_path(&fake, &opts(false), 0),
            Err(CertifyError::Closure { .. })
        ));
    }

    #[test]
    fn shells_are_refused_unless_forced() {
        let err = certify_path(Path::new("/bin/sh"), &opts(false), 0).unwrap_err();
        assert!(matches!(err, CertifyError::Interpreter { .. }), "{err}");
        assert!(err.to_string().contains("--force"));
        let forced = certify_path(Path::new("/bin/sh"), &opts(true), 0).unwrap();
        assert!(forced.entry.forced);
        assert!(!forced.warnings.is_empty());
    }

    #[test]
    fn scripts_carry_their_interpreter() {
        let d = tempfile::tempdir().unwrap();
        let p = write_exec(d.path(), "job", b"#!/bin/sh -e\necho hi\n");
        let c = certify_path(&p, &opts(false), 0).unwrap();
        let i = c.entry.interpreter.unwrap();
        assert_eq!(
            Path::new(&i.path),
            Path::new("/bin/sh").canonicalize().unwrap()
        );
        assert_eq!(i.args, vec!["-e".to_string()]);
        let e = write_exec(d.path(), "job2", b"#!/usr/bin/env sh\necho hi\n");
        let c = certify_path(&e, &opts(false), 0).unwrap();
        assert!(c.entry.interpreter.unwrap().args.is_empty());
        let bad = write_exec(d.path(), "job3", b"#!/usr/bin/env -S sh -e\n");
        assert!(matches!(
            certify_path(&bad, &opts(false), 0),
            Err(CertifyError::Shebang { .. })
        ));
    }

    #[test]
    fn directories_and_missing_files_are_errors() {
        assert!(matches!(
            certify_path(Path::new("/"), &opts(false), 0),
            Err(CertifyError::NotRegular(_))
        ));
        assert!(matches!(
            certify_path(Path::new("/nonexistent/x"), &opts(false), 0),
            Err(CertifyError::Io { .. })
        ));
    }
}
