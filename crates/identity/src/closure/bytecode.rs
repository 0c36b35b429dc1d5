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
//! So certification first finds what is stale, as the interpreter's import would (a missing
//! `.pyc`, another magic number, or a timestamp header whose source time or size differs), and
//! has the interpreter compile just that (`compileall` given the files, with the interpreter's
//! own options, isolated from the environment and from `site`; none started when nothing is
//! stale: a whole `sys.path` checked costs only reads), and then records the result. Each
//! folder is compiled by its owner: a user's site folder by that user, so the service never
//! writes as root where a user could have put a symbolic link. Hash-based byte code (PEP 552)
//! is taken as current: Python rewrites a checked one only when its source's hash changed.

use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::ClosureError;

/// How an interpreter names and marks its byte code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Cache {
    /// `sys.implementation.cache_tag` (`cpython-311`).
    tag: String,
    /// `importlib.util.MAGIC_NUMBER`.
    magic: Vec<u8>,
    /// `sys.flags.optimize` (`-O`: `.opt-1.pyc`).
    optimize: u32,
}

impl Cache {
    /// From what the interpreter said (`None`: it writes no byte code, or said nonsense).
    pub(crate) fn of(tag: Option<String>, magic_hex: &str, optimize: u32) -> Option<Cache> {
        let magic = hex::decode(magic_hex).ok().filter(|m| m.len() == 4)?;
        Some(Cache {
            tag: tag.filter(|t| !t.is_empty() && !t.contains('/'))?,
            magic,
            optimize,
        })
    }

    /// Where the interpreter keeps the byte code of `source`.
    fn pyc_of(&self, source: &Path) -> Option<PathBuf> {
        let stem = source.file_stem()?.to_str()?;
        let opt = match self.optimize {
            0 => String::new(),
            n => format!(".opt-{n}"),
        };
        Some(
            source
                .parent()?
                .join("__pycache__")
                .join(format!("{stem}.{}{opt}.pyc", self.tag)),
        )
    }

    /// Whether importing `source` would write its byte code.
    fn stale(&self, source: &Path) -> bool {
        let Ok(src) = std::fs::metadata(source) else {
            return false;
        };
        let Some(pyc) = self.pyc_of(source) else {
            return false;
        };
        let mut header = [0u8; 16];
        let read = std::fs::File::open(&pyc).and_then(|mut f| f.read_exact(&mut header));
        if read.is_err() || header[..4] != self.magic[..] {
            return true;
        }
        let flags = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        if flags & 1 != 0 {
            return false;
        }
        let mtime = u32::from_le_bytes([header[8], header[9], header[10], header[11]]);
        let size = u32::from_le_bytes([header[12], header[13], header[14], header[15]]);
        mtime != src.mtime() as u32 || size != src.size() as u32
    }
}

/// The stale sources of `folder`, as `compileall` walks it: its `.py` files, and with
/// `recursive` those of its sub-folders that are no symbolic links.
fn stale_sources(cache: &Cache, dir: &Path, recursive: bool, depth: usize, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.flatten().map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        let Ok(meta) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if meta.is_dir() {
            if recursive && depth < 64 && p.file_name().is_some_and(|n| n != "__pycache__") {
                stale_sources(cache, &p, true, depth + 1, out);
            }
        } else if p.extension().is_some_and(|e| e == "py") && cache.stale(&p) {
            out.push(p);
        }
    }
}

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
    cache: &Cache,
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
        let mut stale = vec![];
        stale_sources(cache, &folder.path, folder.recursive, 0, &mut stale);
        if stale.is_empty() {
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
            "-i",
            "-",
        ]);
        c.env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .current_dir("/")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if meta.uid() != 0 {
            c.uid(meta.uid()).gid(meta.gid());
        }
        let io_error = |source| ClosureError::Io {
            path: interpreter.to_path_buf(),
            source,
        };
        let mut child = c.spawn().map_err(io_error)?;
        let list: String = stale
            .iter()
            .filter_map(|p| p.to_str())
            .filter(|p| !p.contains('\n'))
            .map(|p| format!("{p}\n"))
            .collect();
        if let Some(mut stdin) = child.stdin.take() {
            // A compileall that ended early reads no more: its output says what it did.
            let _ = stdin.write_all(list.as_bytes());
        }
        let out = child.wait_with_output().map_err(io_error)?;
        // compileall exits 1 when a source does not compile; only what it says it compiled
        // counts. An interpreter that could not start says nothing of the kind.
        let stdout = String::from_utf8_lossy(&out.stdout);
        let compiled = compiled_sources(&stdout);
        if !out.status.success() && compiled.is_empty() && !stdout.contains("Error compiling") {
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

    fn cache() -> Cache {
        Cache::of(Some("cpython-311".into()), "a70d0d0a", 0).unwrap()
    }

    fn header(magic: [u8; 4], flags: u32, mtime: u32, size: u32) -> Vec<u8> {
        let mut h = magic.to_vec();
        for v in [flags, mtime, size] {
            h.extend_from_slice(&v.to_le_bytes());
        }
        h.extend_from_slice(b"code");
        h
    }

    #[test]
    fn byte_code_is_stale_as_the_import_system_judges_it() {
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("m.py");
        std::fs::write(&src, "x = 1\n").unwrap();
        let meta = std::fs::metadata(&src).unwrap();
        let (mtime, size) = (meta.mtime() as u32, meta.size() as u32);
        let c = cache();
        assert!(c.stale(&src), "no byte code at all");
        let pyc = d.path().join("__pycache__/m.cpython-311.pyc");
        std::fs::create_dir_all(pyc.parent().unwrap()).unwrap();
        let magic = [0xa7, 0x0d, 0x0d, 0x0a];
        std::fs::write(&pyc, header(magic, 0, mtime, size)).unwrap();
        assert!(!c.stale(&src), "current");
        std::fs::write(&pyc, header(magic, 0, mtime - 1, size)).unwrap();
        assert!(c.stale(&src), "older source time");
        std::fs::write(&pyc, header(magic, 0, mtime, size + 1)).unwrap();
        assert!(c.stale(&src), "another size");
        std::fs::write(&pyc, header([1, 2, 3, 4], 0, mtime, size)).unwrap();
        assert!(c.stale(&src), "another interpreter's magic");
        std::fs::write(&pyc, header(magic, 3, 0, 0)).unwrap();
        assert!(!c.stale(&src), "hash-based: taken as current");
        let opt = Cache::of(Some("cpython-311".into()), "a70d0d0a", 1).unwrap();
        assert_eq!(
            opt.pyc_of(&src).unwrap(),
            d.path().join("__pycache__/m.cpython-311.opt-1.pyc")
        );
        assert!(
            Cache::of(None, "a70d0d0a", 0).is_none(),
            "no cache tag: no byte code"
        );
    }

    #[test]
    fn stale_sources_are_found_as_compileall_walks() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        std::fs::create_dir_all(root.join("pkg/sub")).unwrap();
        std::fs::create_dir_all(root.join("elsewhere")).unwrap();
        for f in [
            "a.py",
            "notes.txt",
            "pkg/b.py",
            "pkg/sub/c.py",
            "elsewhere/d.py",
        ] {
            std::fs::write(root.join(f), "pass\n").unwrap();
        }
        std::os::unix::fs::symlink(root.join("elsewhere"), root.join("pkg/link")).unwrap();
        let mut flat = vec![];
        stale_sources(&cache(), root, false, 0, &mut flat);
        assert_eq!(flat, vec![root.join("a.py")]);
        let mut deep = vec![];
        stale_sources(&cache(), &root.join("pkg"), true, 0, &mut deep);
        assert_eq!(deep, vec![root.join("pkg/b.py"), root.join("pkg/sub/c.py")]);
    }

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
