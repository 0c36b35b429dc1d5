//! Recording the files and folders of a closure (with their identity and SHA-256), and
//! scanning a recorded closure again to compare it with the record.

use std::collections::{BTreeMap, HashSet};
use std::fs::{self, File};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use imageguard_policy::{Closure, ClosureChange, ClosureDir, ClosureFile, Entries, Role};

use super::ClosureError;
use crate::hashing::sha256_hex;
use crate::procfs::identity_of;

fn text(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// Collects a closure while it is being recorded. Paths are kept as given: callers pass
/// canonical paths (what `/proc/PID/maps` and the kernel's path walk see).
#[derive(Debug, Default)]
pub(crate) struct Builder {
    files: BTreeMap<String, ClosureFile>,
    dirs: BTreeMap<String, Entries>,
    /// Folders already walked whole (device, inode), so symbolic-link loops end.
    walked: HashSet<(u64, u64)>,
    /// Folders already walked for what Python can import from them.
    walked_importable: HashSet<(u64, u64)>,
    /// Python sources whose byte code was compiled before they were recorded.
    pub(crate) bytecode_compiled: Vec<PathBuf>,
    /// Which file systems keep a file's times through shared-mapping writes.
    shared_write_times: imageguard_volume::fs_kind::SharedWriteTimes,
}

impl Builder {
    /// Record a file (its identity and SHA-256). The first role given to a path stays.
    pub fn file(&mut self, path: &Path, role: Role) -> Result<(), ClosureError> {
        let key = text(path);
        if self.files.contains_key(&key) {
            return Ok(());
        }
        let io = |source| ClosureError::Io {
            path: path.to_path_buf(),
            source,
        };
        let (meta, sha256) = match File::open(path) {
            Ok(f) => {
                let meta = f.metadata().map_err(io)?;
                if !meta.is_file() {
                    return Err(ClosureError::NotAFile(path.to_path_buf()));
                }
                (meta, sha256_hex(&f).map_err(io)?)
            }
            // What cannot be opened cannot be loaded either (an nsfs pin, a file of no one's):
            // it counts by its identity alone.
            Err(e) if role == Role::Module => {
                let meta = fs::metadata(path).map_err(io)?;
                (meta, format!("unreadable: {e}"))
            }
            Err(e) => return Err(io(e)),
        };
        self.files.insert(
            key.clone(),
            ClosureFile {
                path: key,
                role,
                identity: identity_of(&meta),
                sha256,
                untimed: self.shared_write_times.missed(path),
            },
        );
        Ok(())
    }

    /// Note sources whose byte code was brought up to date before recording.
    pub fn bytecode_compiled(&mut self, sources: Vec<PathBuf>) {
        self.bytecode_compiled.extend(sources);
    }

    fn dir_entries(&mut self, dir: &Path, entries: &Entries) {
        self.dirs
            .entry(text(dir))
            .and_modify(|e| e.merge(entries))
            .or_insert_with(|| entries.clone());
    }

    /// Watch `names` in `dir`: each that exists now is recorded (files with `role`, folders
    /// as watched folders without entries of their own); each must stay as it is or absent.
    pub fn names(&mut self, dir: &Path, names: &[String], role: Role) -> Result<(), ClosureError> {
        self.dir_entries(dir, &Entries::names(names.iter().cloned()));
        for n in names {
            let p = dir.join(n);
            match fs::metadata(&p) {
                Ok(m) if m.is_file() => self.file(&p, role)?,
                Ok(m) if m.is_dir() => self.dir_entries(&p, &Entries::default()),
                _ => {}
            }
        }
        Ok(())
    }

    /// Record a whole folder tree (a module tree): every file, every sub-folder.
    pub fn tree(&mut self, dir: &Path, role: Role) -> Result<(), ClosureError> {
        let meta = fs::metadata(dir).map_err(|source| ClosureError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        if !self.walked.insert((meta.dev(), meta.ino())) {
            // Reached again through a symbolic link: its entries are already recorded.
            self.dir_entries(dir, &Entries::all());
            return Ok(());
        }
        self.dir_entries(dir, &Entries::all());
        self.entries_of(dir, role, |_, _| true)
    }

    /// Record what Python can import from `dir` (the script's own folder, which need not be a
    /// module tree): importable files; packages (folders with `__init__.py`) whole; other
    /// folders (namespace packages, or nothing Python will ever import) by the same rule, on
    /// the same file system only; a folder on another one by its name alone.
    pub fn python_importable(&mut self, dir: &Path, role: Role) -> Result<(), ClosureError> {
        let io = |source| ClosureError::Io {
            path: dir.to_path_buf(),
            source,
        };
        let meta = fs::metadata(dir).map_err(io)?;
        if !self.walked_importable.insert((meta.dev(), meta.ino())) {
            return Ok(());
        }
        self.dir_entries(dir, &Entries::python_importable());
        let mut names: Vec<_> = fs::read_dir(dir)
            .map_err(io)?
            .flatten()
            .map(|e| e.file_name())
            .collect();
        names.sort();
        for name in names {
            let p = dir.join(&name);
            let Ok(m) = fs::metadata(&p) else { continue };
            if m.is_dir() {
                if loops_back(&p, dir) || m.dev() != meta.dev() {
                    self.dir_entries(&p, &Entries::default());
                } else if p.join("__init__.py").is_file() {
                    self.tree(&p, role)?;
                } else {
                    self.python_importable(&p, role)?;
                }
            } else if m.is_file()
                && imageguard_policy::closure::python_importable(&name.to_string_lossy())
            {
                self.file(&p, role)?;
            }
        }
        Ok(())
    }

    fn entries_of(
        &mut self,
        dir: &Path,
        role: Role,
        wanted: impl Fn(&str, bool) -> bool,
    ) -> Result<(), ClosureError> {
        let io = |source| ClosureError::Io {
            path: dir.to_path_buf(),
            source,
        };
        let mut names: Vec<_> = fs::read_dir(dir)
            .map_err(io)?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()
            .map_err(io)?;
        names.sort();
        for name in names {
            let p = dir.join(&name);
            let name = name.to_string_lossy();
            match fs::metadata(&p) {
                Ok(m) if m.is_dir() && wanted(&name, true) && loops_back(&p, dir) => {
                    // A symbolic link to this folder or an ancestor (`/usr/bin/X11` -> `.`):
                    // what it reaches is recorded already.
                    self.dir_entries(&p, &Entries::default());
                }
                Ok(m) if m.is_dir() && wanted(&name, true) => self.tree(&p, role)?,
                Ok(m) if m.is_file() && wanted(&name, false) => self.file(&p, role)?,
                Ok(_) => {}
                // A dangling symbolic link: whatever appears at its target later is loaded.
                Err(_) if wanted(&name, false) => {
                    if let Ok(target) = fs::read_link(&p) {
                        self.path(&dir.join(target), role)?;
                    }
                }
                Err(_) => {}
            }
        }
        Ok(())
    }

    /// Record whatever is at `path` (a file, a whole tree), or, when nothing is there, watch
    /// its deepest existing ancestor for the first missing component to appear.
    pub fn path(&mut self, path: &Path, role: Role) -> Result<(), ClosureError> {
        match fs::metadata(path) {
            Ok(m) if m.is_dir() => return self.tree(path, role),
            Ok(m) if m.is_file() => return self.file(path, role),
            Ok(_) => return Ok(()),
            Err(_) => {}
        }
        let mut missing = path;
        while let Some(parent) = missing.parent() {
            if parent.is_dir() {
                let name = missing
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let parent = parent
                    .canonicalize()
                    .unwrap_or_else(|_| parent.to_path_buf());
                return self.names(&parent, &[name], role);
            }
            missing = parent;
        }
        Ok(())
    }

    /// The recorded files (path, role).
    pub fn files(&self) -> impl Iterator<Item = (&str, Role)> {
        self.files.values().map(|f| (f.path.as_str(), f.role))
    }

    pub fn finish(self, runtimes: Vec<imageguard_policy::Runtime>, homes: Vec<String>) -> Closure {
        Closure {
            runtimes,
            files: self.files.into_values().collect(),
            dirs: self
                .dirs
                .into_iter()
                .map(|(path, entries)| ClosureDir { path, entries })
                .collect(),
            homes,
        }
    }
}

/// Whether `link`, in `dir`, leads to `dir` itself or one of its ancestors.
fn loops_back(link: &Path, dir: &Path) -> bool {
    // Only a symbolic link can; resolving every sub-folder's path would cost a lookup per
    // component of it.
    if !fs::symlink_metadata(link).is_ok_and(|m| m.file_type().is_symlink()) {
        return false;
    }
    let (Ok(target), Ok(dir)) = (link.canonicalize(), dir.canonicalize()) else {
        return false;
    };
    dir.starts_with(target)
}

/// Where the closure's paths are found: this process's view (`/`), or another process's
/// (`/proc/PID/root`, for a process in another mount namespace or chroot).
#[derive(Debug, Clone)]
pub struct View(PathBuf);

impl View {
    pub fn own() -> View {
        View(PathBuf::from("/"))
    }

    pub fn of_process(pid: u32) -> View {
        View(PathBuf::from(format!("/proc/{pid}/root")))
    }

    fn at(&self, path: &str) -> PathBuf {
        self.0.join(path.trim_start_matches('/'))
    }
}

/// Scan the files and folders of a recorded closure again (identities only, no hashing).
pub fn rescan(record: &Closure, view: &View) -> Closure {
    let recorded: BTreeMap<&str, &Entries> = record
        .dirs
        .iter()
        .map(|d| (d.path.as_str(), &d.entries))
        .collect();
    let roles: BTreeMap<&str, Role> = record
        .files
        .iter()
        .map(|f| (f.path.as_str(), f.role))
        .collect();
    let mut dirs: BTreeMap<String, Entries> = BTreeMap::new();
    let mut files: BTreeMap<String, ClosureFile> = BTreeMap::new();
    let add_file = |path: String, meta: &fs::Metadata, files: &mut BTreeMap<_, _>| {
        let role = roles.get(path.as_str()).copied().unwrap_or(Role::Module);
        files.insert(
            path.clone(),
            ClosureFile {
                path,
                role,
                identity: identity_of(meta),
                sha256: String::new(),
                untimed: false,
            },
        );
    };
    for d in &record.dirs {
        let Ok(list) = fs::read_dir(view.at(&d.path)) else {
            continue;
        };
        dirs.insert(d.path.clone(), d.entries.clone());
        for e in list.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let path = if d.path.ends_with('/') {
                format!("{}{name}", d.path)
            } else {
                format!("{}/{name}", d.path)
            };
            let meta = fs::metadata(view.at(&path));
            let is_dir = meta.as_ref().is_ok_and(|m| m.is_dir());
            if !d.entries.covers(&name, is_dir) {
                continue;
            }
            match meta {
                Ok(m) if m.is_dir() => {
                    let entries = recorded.get(path.as_str()).map(|e| (*e).clone());
                    dirs.entry(path).or_insert(entries.unwrap_or_default());
                }
                Ok(m) if m.is_file() => add_file(path, &m, &mut files),
                _ => {}
            }
        }
    }
    for f in &record.files {
        if files.contains_key(&f.path) {
            continue;
        }
        if let Ok(m) = fs::metadata(view.at(&f.path)) {
            if m.is_file() {
                add_file(f.path.clone(), &m, &mut files);
            }
        }
    }
    Closure {
        runtimes: record.runtimes.clone(),
        files: files.into_values().collect(),
        dirs: dirs
            .into_iter()
            .map(|(path, entries)| ClosureDir { path, entries })
            .collect(),
        homes: record.homes.clone(),
    }
}

/// Whether the file at `path` (in `view`) still has the recorded content.
pub fn same_content(view: &View, recorded: &ClosureFile) -> bool {
    File::open(view.at(&recorded.path))
        .and_then(sha256_hex)
        .is_ok_and(|h| h == recorded.sha256)
}

/// Compare a recorded closure with what is on disk now; the first difference, if any. A file
/// whose identity moved is hashed: the same bytes (a reinstall) are no change.
pub fn verify(record: &Closure, view: &View) -> Option<ClosureChange> {
    let now = rescan(record, view);
    record.compare(&now, |old, _| same_content(view, old))
}
