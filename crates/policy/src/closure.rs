//! A certified program's closure: every file whose content becomes code in its process (the
//! executable or script, the dynamic loader, the shared libraries it maps, the modules its
//! interpreter can import, the interpreter's start-up hooks) and the folders whose listing
//! decides what gets loaded.
//!
//! The closure is recorded when the program is certified. A process counts as certified only
//! while its program's closure is as recorded and its executable mappings stay inside it. This
//! module holds the record and the pure judgements over it:
//! - [`ClosureIndex::judge`]: does a change seen in the file system break the closure?
//! - [`Closure::compare`]: does a fresh scan differ from the record?
//! - [`foreign_mapping`]: does a process run code from a file outside its closure?
//!
//! Gathering the facts (scanning, hashing, watching, reading `/proc/PID/maps`) is the identity
//! adapter's job.

use std::collections::{BTreeSet, HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::certification::FileIdentity;

/// Why a file belongs to a closure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// The certified executable or script.
    Program,
    /// The interpreter a certified script names on its `#!` line.
    Interpreter,
    /// The dynamic loader (`PT_INTERP`).
    Loader,
    /// A shared library the loader maps at start-up.
    Library,
    /// A name-service module glibc loads on demand, named in `/etc/nsswitch.conf`.
    NssModule,
    /// A file that decides what the loader maps (`/etc/ld.so.preload`, `/etc/nsswitch.conf`).
    LoaderInput,
    /// A file the interpreter can load code from (module trees, start-up hooks).
    Module,
    /// A file seen mapped executable while `certify --learn` ran the program's job.
    Learned,
    /// A file the administrator added by hand (`certify --also`).
    Listed,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Program => "program",
            Role::Interpreter => "interpreter",
            Role::Loader => "loader",
            Role::Library => "library",
            Role::NssModule => "nss module",
            Role::LoaderInput => "loader input",
            Role::Module => "module",
            Role::Learned => "learned",
            Role::Listed => "listed",
        }
    }
}

/// One file of a closure, as it was at certification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClosureFile {
    pub path: String,
    pub role: Role,
    pub identity: FileIdentity,
    pub sha256: String,
    /// Its file system keeps a file's times when it is written through a shared mapping
    /// (tmpfs, ramfs): an unchanged identity proves nothing, so its content is compared every
    /// time.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub untimed: bool,
}

/// Which entries of a folder belong to a closure.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entries {
    /// Every entry: a folder of an interpreter's module tree. Its files are in
    /// [`Closure::files`], its sub-folders in [`Closure::dirs`].
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub all: bool,
    /// What a Python interpreter would import from this folder (the script's own folder, which
    /// Python puts first on `sys.path`): sources, byte code, extension modules, `.pth` files,
    /// archives and sub-folders (packages).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub python_importable: bool,
    /// These names: each must stay as it is, or stay absent (`/etc/ld.so.preload`, a library
    /// name in a folder the loader searches, the first missing component of a user site
    /// folder). Other names may come and go.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<String>,
}

impl Entries {
    pub fn all() -> Entries {
        Entries {
            all: true,
            ..Entries::default()
        }
    }

    pub fn python_importable() -> Entries {
        Entries {
            python_importable: true,
            ..Entries::default()
        }
    }

    pub fn names<S: Into<String>>(names: impl IntoIterator<Item = S>) -> Entries {
        let mut names: Vec<String> = names.into_iter().map(Into::into).collect();
        names.sort();
        names.dedup();
        Entries {
            names,
            ..Entries::default()
        }
    }

    /// Both sets of entries.
    pub fn merge(&mut self, other: &Entries) {
        self.all |= other.all;
        self.python_importable |= other.python_importable;
        for n in &other.names {
            if !self.names.contains(n) {
                self.names.push(n.clone());
            }
        }
        self.names.sort();
    }

    /// Whether a name in a folder with these entries is part of the closure.
    pub fn covers(&self, name: &str, is_dir: bool) -> bool {
        self.all
            || (self.python_importable && (is_dir || python_importable(name)))
            || self.names.iter().any(|n| n == name)
    }
}

/// The endings of file names Python can import code from (`importlib.machinery` suffixes,
/// `.pth` start-up files and archives on `sys.path`).
pub const PYTHON_IMPORTABLE_SUFFIXES: &[&str] = &[
    ".py", ".pyc", ".pyo", ".pyw", ".so", ".pth", ".zip", ".egg", ".whl", ".pyz",
];

/// Whether Python can import code from a file of this name.
pub fn python_importable(name: &str) -> bool {
    PYTHON_IMPORTABLE_SUFFIXES.iter().any(|s| name.ends_with(s))
}

/// A folder of a closure and which of its entries count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClosureDir {
    pub path: String,
    pub entries: Entries,
}

/// What reads the environment of the program's process and can change its code from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Runtime {
    /// glibc's dynamic loader and the library itself (the program is dynamically linked).
    GlibcLoader,
    Python,
    Perl,
    Shell,
}

/// Everything a certified program's process can load code from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Closure {
    pub runtimes: Vec<Runtime>,
    pub files: Vec<ClosureFile>,
    pub dirs: Vec<ClosureDir>,
    /// Home folders whose Python user site folder is part of the closure (Python imports from
    /// `$HOME/.local/lib/pythonX.Y/site-packages`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub homes: Vec<String>,
}

/// What happened to a file or folder of a closure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChangeKind {
    Created,
    Removed,
    Modified,
    /// Another file now stands at the path (new inode, other content).
    Replaced,
    /// Changes could not be followed (the watch queue overflowed), so any may have happened.
    Unfollowed,
}

/// The change that broke a closure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClosureChange {
    pub path: String,
    pub kind: ChangeKind,
}

impl ClosureChange {
    pub fn new(path: impl Into<String>, kind: ChangeKind) -> ClosureChange {
        ClosureChange {
            path: path.into(),
            kind,
        }
    }
}

impl std::fmt::Display for ClosureChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let p = &self.path;
        match self.kind {
            ChangeKind::Created => write!(f, "{p} was created"),
            ChangeKind::Removed => write!(f, "{p} was removed or moved away"),
            ChangeKind::Modified => write!(f, "{p} was modified"),
            ChangeKind::Replaced => write!(f, "{p} was replaced by another file"),
            ChangeKind::Unfollowed => write!(f, "changes under {p} could not be followed"),
        }
    }
}

fn join(dir: &str, name: &str) -> String {
    if dir.ends_with('/') {
        format!("{dir}{name}")
    } else {
        format!("{dir}/{name}")
    }
}

impl Closure {
    /// The (device, inode) of every file: what a process of the program may map executable.
    pub fn code_set(&self) -> HashSet<(u64, u64)> {
        self.files
            .iter()
            .map(|f| (f.identity.dev, f.identity.ino))
            .collect()
    }

    pub fn file(&self, path: &str) -> Option<&ClosureFile> {
        self.files.iter().find(|f| f.path == path)
    }

    /// Compare the record with a fresh scan made from it (the same folders, the same rules).
    /// A file whose identity moved but whose content `same_content` confirms (a reinstall of
    /// the same bytes) is unchanged. Returns the first difference, in path order.
    pub fn compare(
        &self,
        scan: &Closure,
        mut same_content: impl FnMut(&ClosureFile, &ClosureFile) -> bool,
    ) -> Option<ClosureChange> {
        let now: HashMap<&str, &ClosureFile> =
            scan.files.iter().map(|f| (f.path.as_str(), f)).collect();
        let mut changes: Vec<ClosureChange> = vec![];
        for old in &self.files {
            match now.get(old.path.as_str()) {
                None => changes.push(ClosureChange::new(&old.path, ChangeKind::Removed)),
                Some(new) if new.identity == old.identity && !old.untimed => {}
                Some(new) if same_content(old, new) => {}
                Some(new) => {
                    let kind = if new.identity.ino != old.identity.ino
                        || new.identity.dev != old.identity.dev
                    {
                        ChangeKind::Replaced
                    } else {
                        ChangeKind::Modified
                    };
                    changes.push(ClosureChange::new(&old.path, kind));
                }
            }
        }
        let recorded: HashSet<&str> = self.files.iter().map(|f| f.path.as_str()).collect();
        for new in &scan.files {
            if !recorded.contains(new.path.as_str()) {
                changes.push(ClosureChange::new(&new.path, ChangeKind::Created));
            }
        }
        let old_dirs: BTreeSet<&str> = self.dirs.iter().map(|d| d.path.as_str()).collect();
        let new_dirs: BTreeSet<&str> = scan.dirs.iter().map(|d| d.path.as_str()).collect();
        for d in old_dirs.difference(&new_dirs) {
            changes.push(ClosureChange::new(*d, ChangeKind::Removed));
        }
        for d in new_dirs.difference(&old_dirs) {
            changes.push(ClosureChange::new(*d, ChangeKind::Created));
        }
        changes.into_iter().min_by(|a, b| a.path.cmp(&b.path))
    }
}

/// A change the file-system watch saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observed<'a> {
    /// An entry of a watched folder was created or removed (renames are both).
    Entry {
        dir: &'a str,
        name: &'a str,
        is_dir: bool,
        kind: ChangeKind,
    },
    /// A watched file was written to.
    Written { path: &'a str },
    /// A watched file's attributes changed (mode, owner, times, link count): only its content
    /// decides.
    Attributes { path: &'a str },
    /// A watched file or folder itself was deleted or moved away.
    Gone { path: &'a str },
}

/// What an observed change means for a closure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Judgement {
    Unaffected,
    /// Compare this file's identity, then its content, with the record.
    Recheck(String),
    Broken(ClosureChange),
}

/// A closure indexed for judging changes quickly.
#[derive(Debug, Clone, Default)]
pub struct ClosureIndex {
    files: HashSet<String>,
    dirs: HashMap<String, Entries>,
}

impl ClosureIndex {
    pub fn new(closure: &Closure) -> ClosureIndex {
        ClosureIndex {
            files: closure.files.iter().map(|f| f.path.clone()).collect(),
            dirs: closure
                .dirs
                .iter()
                .map(|d| (d.path.clone(), d.entries.clone()))
                .collect(),
        }
    }

    /// Judge one observed change. A change is final: code that ran while a file was different
    /// may have hidden its traces since, so putting a file back does not mend the closure.
    pub fn judge(&self, seen: Observed<'_>) -> Judgement {
        match seen {
            Observed::Entry {
                dir,
                name,
                is_dir,
                kind,
            } => match self.dirs.get(dir) {
                Some(entries) if entries.covers(name, is_dir) => {
                    Judgement::Broken(ClosureChange::new(join(dir, name), kind))
                }
                _ => Judgement::Unaffected,
            },
            Observed::Written { path } if self.files.contains(path) => {
                Judgement::Broken(ClosureChange::new(path, ChangeKind::Modified))
            }
            Observed::Attributes { path } if self.files.contains(path) => {
                Judgement::Recheck(path.to_string())
            }
            Observed::Gone { path }
                if self.files.contains(path) || self.dirs.contains_key(path) =>
            {
                Judgement::Broken(ClosureChange::new(path, ChangeKind::Removed))
            }
            _ => Judgement::Unaffected,
        }
    }
}

/// One executable mapping of a process (`/proc/PID/maps`, permission `x`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecMapping {
    /// A mapping of a file, by the file's device and inode.
    File { path: String, dev: u64, ino: u64 },
    /// A mapping of a file that has since been deleted or replaced on disk.
    Deleted { path: String },
    /// Executable memory backed by no file (code written at run time).
    Anonymous,
}

/// The first executable mapping that is not a file of the closure, described for the event.
pub fn foreign_mapping(code: &HashSet<(u64, u64)>, maps: &[ExecMapping]) -> Option<String> {
    maps.iter().find_map(|m| match m {
        ExecMapping::File { path, dev, ino } => {
            (!code.contains(&(*dev, *ino))).then(|| path.clone())
        }
        ExecMapping::Deleted { path } => Some(format!("{path} (deleted or replaced on disk)")),
        ExecMapping::Anonymous => Some("anonymous executable memory".to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(ino: u64, mtime: i64) -> FileIdentity {
        FileIdentity {
            dev: 1,
            ino,
            size: 10,
            mtime_sec: mtime,
            mtime_nsec: 0,
            ctime_sec: mtime,
            ctime_nsec: 0,
        }
    }

    fn file(path: &str, ino: u64, mtime: i64, sha: &str) -> ClosureFile {
        ClosureFile {
            path: path.into(),
            role: Role::Module,
            identity: id(ino, mtime),
            sha256: sha.into(),
            untimed: false,
        }
    }

    #[test]
    fn a_file_whose_times_miss_shared_writes_is_compared_by_content() {
        let record = |untimed| Closure {
            files: vec![ClosureFile {
                untimed,
                ..file("/run/lib/libfoo.so", 7, 100, "aa")
            }],
            ..Closure::default()
        };
        let same_identity = Closure {
            files: vec![file("/run/lib/libfoo.so", 7, 100, "")],
            ..Closure::default()
        };
        // (recorded on such a file system, content still the same, what compare says)
        let table = [
            (false, false, None),
            (true, true, None),
            (
                true,
                false,
                Some(ClosureChange::new(
                    "/run/lib/libfoo.so",
                    ChangeKind::Modified,
                )),
            ),
        ];
        for (untimed, same, want) in table {
            assert_eq!(
                record(untimed).compare(&same_identity, |_, _| same),
                want,
                "untimed {untimed}, same content {same}"
            );
        }
    }

    fn dir(path: &str, entries: Entries) -> ClosureDir {
        ClosureDir {
            path: path.into(),
            entries,
        }
    }

    fn borg_like() -> Closure {
        Closure {
            runtimes: vec![Runtime::GlibcLoader, Runtime::Python],
            files: vec![
                file("/usr/bin/borg", 1, 5, "a"),
                file("/usr/lib/python3.11/os.py", 2, 5, "b"),
                file("/usr/lib/python3/dist-packages/borg/archiver.py", 3, 5, "c"),
                file("/usr/lib/x86_64-linux-gnu/libc.so.6", 4, 5, "d"),
            ],
            dirs: vec![
                dir("/usr/lib/python3.11", Entries::all()),
                dir("/usr/lib/python3/dist-packages/borg", Entries::all()),
                dir("/usr/bin", Entries::python_importable()),
                dir("/etc", Entries::names(["ld.so.preload", "nsswitch.conf"])),
                dir("/root", Entries::names([".local"])),
            ],
            homes: vec!["/root".into()],
        }
    }

    fn entry(
        dir: &'static str,
        name: &'static str,
        is_dir: bool,
        kind: ChangeKind,
    ) -> Observed<'static> {
        Observed::Entry {
            dir,
            name,
            is_dir,
            kind,
        }
    }

    #[test]
    fn judging_watch_events() {
        use ChangeKind::*;
        let ix = ClosureIndex::new(&borg_like());
        let broken = |p: &str, k| Judgement::Broken(ClosureChange::new(p, k));
        // (what was seen, what it means, the attack or the harmless change it stands for)
        let table: Vec<(Observed, Judgement, &str)> = vec![
            (
                entry("/etc", "ld.so.preload", false, Created),
                broken("/etc/ld.so.preload", Created),
                "a preload file appears",
            ),
            (
                entry("/etc", "hostname", false, Created),
                Judgement::Unaffected,
                "an unrelated file in /etc",
            ),
            (
                entry("/etc", "ld.so.preload", false, Removed),
                broken("/etc/ld.so.preload", Removed),
                "a preload removed after use",
            ),
            (
                entry("/root", ".local", true, Created),
                broken("/root/.local", Created),
                "first step towards a user site folder",
            ),
            (
                entry("/root", ".bash_history", false, Created),
                Judgement::Unaffected,
                "root's shell history",
            ),
            (
                entry("/usr/lib/python3.11", "sitecustomize.py", false, Created),
                broken("/usr/lib/python3.11/sitecustomize.py", Created),
                "a start-up hook in the standard library",
            ),
            (
                entry("/usr/lib/python3.11", "README.txt", false, Created),
                broken("/usr/lib/python3.11/README.txt", Created),
                "module trees are whole",
            ),
            (
                entry("/usr/bin", "argparse.py", false, Created),
                broken("/usr/bin/argparse.py", Created),
                "a module shadowing the standard library from the script's folder",
            ),
            (
                entry("/usr/bin", "argparse", true, Created),
                broken("/usr/bin/argparse", Created),
                "a package shadowing the standard library",
            ),
            (
                entry("/usr/bin", "vim", false, Created),
                Judgement::Unaffected,
                "a new program next to the script",
            ),
            (
                entry("/srv", "x.py", false, Created),
                Judgement::Unaffected,
                "an unwatched folder",
            ),
            (
                Observed::Written {
                    path: "/usr/lib/python3.11/os.py",
                },
                broken("/usr/lib/python3.11/os.py", Modified),
                "an edited module",
            ),
            (
                Observed::Written {
                    path: "/usr/lib/x86_64-linux-gnu/libc.so.6",
                },
                broken("/usr/lib/x86_64-linux-gnu/libc.so.6", Modified),
                "a patched library",
            ),
            (
                Observed::Written { path: "/tmp/notes" },
                Judgement::Unaffected,
                "an unrelated file",
            ),
            (
                Observed::Attributes {
                    path: "/usr/lib/python3.11/os.py",
                },
                Judgement::Recheck("/usr/lib/python3.11/os.py".into()),
                "touch or chmod: content decides",
            ),
            (
                Observed::Gone {
                    path: "/usr/lib/python3/dist-packages/borg",
                },
                broken("/usr/lib/python3/dist-packages/borg", Removed),
                "the package folder moved away",
            ),
            (
                Observed::Gone {
                    path: "/usr/bin/borg",
                },
                broken("/usr/bin/borg", Removed),
                "the script replaced by rename",
            ),
        ];
        for (seen, want, why) in table {
            assert_eq!(ix.judge(seen), want, "{why}");
        }
    }

    #[test]
    fn comparing_a_fresh_scan() {
        let rec = borg_like();
        let same_bytes = |a: &ClosureFile, b: &ClosureFile| a.sha256 == b.sha256;
        assert_eq!(rec.compare(&rec.clone(), same_bytes), None);

        let mut reinstalled = rec.clone();
        reinstalled.files[1] = file("/usr/lib/python3.11/os.py", 20, 9, "b");
        assert_eq!(
            rec.compare(&reinstalled, same_bytes),
            None,
            "same bytes, new inode"
        );

        let mut edited = rec.clone();
        edited.files[1] = file("/usr/lib/python3.11/os.py", 2, 9, "evil");
        assert_eq!(
            rec.compare(&edited, same_bytes),
            Some(ClosureChange::new(
                "/usr/lib/python3.11/os.py",
                ChangeKind::Modified
            ))
        );

        let mut replaced = rec.clone();
        replaced.files[3] = file("/usr/lib/x86_64-linux-gnu/libc.so.6", 40, 9, "evil");
        assert_eq!(
            rec.compare(&replaced, same_bytes),
            Some(ClosureChange::new(
                "/usr/lib/x86_64-linux-gnu/libc.so.6",
                ChangeKind::Replaced
            ))
        );

        let mut hooked = rec.clone();
        hooked.files.push(file("/etc/ld.so.preload", 50, 9, "e"));
        assert_eq!(
            rec.compare(&hooked, same_bytes),
            Some(ClosureChange::new(
                "/etc/ld.so.preload",
                ChangeKind::Created
            ))
        );

        let mut gone = rec.clone();
        gone.files.remove(2);
        gone.dirs.remove(1);
        assert_eq!(
            rec.compare(&gone, same_bytes),
            Some(ClosureChange::new(
                "/usr/lib/python3/dist-packages/borg",
                ChangeKind::Removed
            )),
            "the first difference in path order"
        );

        let mut new_dir = rec.clone();
        new_dir.dirs.push(dir("/root/.local", Entries::default()));
        assert_eq!(
            rec.compare(&new_dir, same_bytes),
            Some(ClosureChange::new("/root/.local", ChangeKind::Created))
        );
    }

    #[test]
    fn executable_mappings_must_stay_in_the_closure() {
        let c = borg_like();
        let code = c.code_set();
        let libc = ExecMapping::File {
            path: "/usr/lib/x86_64-linux-gnu/libc.so.6".into(),
            dev: 1,
            ino: 4,
        };
        assert_eq!(foreign_mapping(&code, std::slice::from_ref(&libc)), None);
        let evil = ExecMapping::File {
            path: "/tmp/evil.so".into(),
            dev: 1,
            ino: 99,
        };
        assert_eq!(
            foreign_mapping(&code, &[libc.clone(), evil]),
            Some("/tmp/evil.so".into())
        );
        // Same path, other inode: a library replaced on disk after certification.
        let swapped = ExecMapping::File {
            path: "/usr/lib/x86_64-linux-gnu/libc.so.6".into(),
            dev: 1,
            ino: 77,
        };
        assert!(foreign_mapping(&code, &[swapped]).is_some());
        assert_eq!(
            foreign_mapping(
                &code,
                &[ExecMapping::Deleted {
                    path: "/usr/lib/x86_64-linux-gnu/libc.so.6".into()
                }]
            ),
            Some("/usr/lib/x86_64-linux-gnu/libc.so.6 (deleted or replaced on disk)".into())
        );
        assert_eq!(
            foreign_mapping(&code, &[ExecMapping::Anonymous]),
            Some("anonymous executable memory".into())
        );
    }

    #[test]
    fn merged_entries_cover_both() {
        let mut e = Entries::python_importable();
        e.merge(&Entries::names(["pyvenv.cfg"]));
        assert!(e.covers("pyvenv.cfg", false) && e.covers("x.py", false) && e.covers("pkg", true));
        assert!(!e.covers("vim", false));
        assert!(Entries::all().covers("anything", false));
    }

    #[test]
    fn python_importable_names() {
        for n in [
            "os.py",
            "x.cpython-311.pyc",
            "_ssl.cpython-311-x86_64-linux-gnu.so",
            "distutils-precedence.pth",
            "python311.zip",
        ] {
            assert!(python_importable(n), "{n}");
        }
        for n in ["borg", "README", "py.typed.txt"] {
            assert!(!python_importable(n), "{n}");
        }
    }
}
