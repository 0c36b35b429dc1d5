//! The certified-program list and how an executable is matched against it.
//!
//! An entry records a program's path, SHA-256 and stat identity (device, inode, size, mtime,
//! ctime). A running process matches an entry when its executable has the recorded identity, or
//! (after a re-install that kept the bytes) when its executable at the same path hashes the same.
//! Scripts (borg, rsnapshot) are certified together with their interpreter: a process matches
//! when its executable is that interpreter *and* the script it runs is the certified one.

use serde::{Deserialize, Serialize};

use crate::closure::Closure;

/// The stat identity of a file. Any change to the file changes at least one field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FileIdentity {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime_sec: i64,
    pub mtime_nsec: i64,
    pub ctime_sec: i64,
    pub ctime_nsec: i64,
}

/// The interpreter a certified script runs under.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interpreter {
    pub path: String,
    pub sha256: String,
    pub identity: FileIdentity,
    /// Arguments the `#!` line puts between the interpreter and the script path; a process
    /// whose command line has anything else there (`python3 -i script`) does not match.
    #[serde(default)]
    pub args: Vec<String>,
    /// The interpreter's path as the `#!` line spells it (the kernel passes it as `argv[0]`);
    /// empty when it is `path` itself.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub invoked_as: String,
}

impl Interpreter {
    /// Whether a process's `argv[0]` is how the kernel starts this interpreter for the script
    /// (Python derives its library and virtual environment from that name). A bare name
    /// (`#!/usr/bin/env python3`) counts by where the process's `PATH` leads: `found_on_path`.
    pub fn accepts_argv0(&self, argv0: &str, found_on_path: Option<&str>) -> bool {
        let known =
            |p: &str| p == self.path || (!self.invoked_as.is_empty() && p == self.invoked_as);
        if argv0.contains('/') {
            known(argv0)
        } else {
            found_on_path.is_some_and(known)
        }
    }
}

/// One certified program.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertifiedEntry {
    pub path: String,
    pub sha256: String,
    pub identity: FileIdentity,
    /// Set for scripts: the interpreter named by their `#!` line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interpreter: Option<Interpreter>,
    /// Certified with `--force` despite being a shell or interpreter.
    #[serde(default)]
    pub forced: bool,
    /// Unix time of certification.
    pub certified_at: i64,
    /// Everything the program's process can load code from; `None` for an entry certified by
    /// a version that did not record it (such an entry certifies nothing until certified again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closure: Option<Closure>,
    /// Set for a helper (`cp`, `rm`, `rsync` run by rsnapshot): the programs whose live
    /// processes it counts as certified under, and nowhere else (see [`crate::helpers`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub helper_of: Vec<String>,
    /// Set for a sync tool: not certified; while the setting "allow sync tools" is on, its
    /// processes may delete and overwrite backup files only as the sync rules allow, reading
    /// its command line in this dialect (see [`crate::sync_tools`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_tool: Option<crate::sync_tools::Dialect>,
}

/// What the list says about an executable, before any hashing.
#[derive(Debug, PartialEq, Eq)]
pub enum ExeLookup<'a> {
    /// A binary entry with exactly this identity: certified, no hash needed.
    Certified(&'a CertifiedEntry),
    /// A binary entry with this path but another identity: certified only if the hash matches.
    VerifyHash(&'a CertifiedEntry),
    /// The executable is (or may be) the interpreter of these certified scripts; the script the
    /// process runs decides.
    Scripts(Vec<&'a CertifiedEntry>),
    NotListed,
}

/// The certified-program list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertifiedList {
    pub entries: Vec<CertifiedEntry>,
}

impl CertifiedList {
    pub fn get(&self, path: &str) -> Option<&CertifiedEntry> {
        self.entries.iter().find(|e| e.path == path)
    }

    /// Add or replace the entry for `entry.path`. Returns true when an entry was replaced.
    pub fn upsert(&mut self, entry: CertifiedEntry) -> bool {
        if let Some(e) = self.entries.iter_mut().find(|e| e.path == entry.path) {
            *e = entry;
            true
        } else {
            self.entries.push(entry);
            self.entries.sort_by(|a, b| a.path.cmp(&b.path));
            false
        }
    }

    pub fn remove(&mut self, path: &str) -> Option<CertifiedEntry> {
        let i = self.entries.iter().position(|e| e.path == path)?;
        Some(self.entries.remove(i))
    }

    /// Look up a running executable by the path the kernel reports and its stat identity.
    pub fn lookup(&self, exe_path: &str, identity: &FileIdentity) -> ExeLookup<'_> {
        let binaries = self.entries.iter().filter(|e| e.interpreter.is_none());
        if let Some(e) = binaries.clone().find(|e| e.identity == *identity) {
            return ExeLookup::Certified(e);
        }
        if let Some(e) = binaries.clone().find(|e| e.path == exe_path) {
            return ExeLookup::VerifyHash(e);
        }
        let scripts: Vec<_> = self
            .entries
            .iter()
            .filter(|e| {
                e.interpreter
                    .as_ref()
                    .is_some_and(|i| i.identity == *identity || i.path == exe_path)
            })
            .collect();
        if scripts.is_empty() {
            ExeLookup::NotListed
        } else {
            ExeLookup::Scripts(scripts)
        }
    }
}

/// Shells and interpreters: certifying one would certify every script it can run, so
/// `imageguard certify` refuses them unless forced.
pub fn is_interpreter_name(basename: &str) -> bool {
    const EXACT: &[&str] = &[
        "sh",
        "bash",
        "dash",
        "zsh",
        "ksh",
        "mksh",
        "fish",
        "csh",
        "tcsh",
        "ash",
        "busybox",
        "toybox",
        "env",
        "awk",
        "gawk",
        "mawk",
        "nawk",
        "sed",
        "perl",
        "ruby",
        "irb",
        "node",
        "nodejs",
        "deno",
        "bun",
        "php",
        "lua",
        "luajit",
        "tclsh",
        "wish",
        "expect",
        "java",
        "pypy",
        "pypy3",
        "osascript",
        "gdb",
        "rr",
        "strace",
        "ltrace",
        "xargs",
        "find",
        "nice",
        "nohup",
        "timeout",
        "sudo",
        "su",
        "doas",
        "runuser",
        "setpriv",
        "unshare",
        "nsenter",
        "chroot",
        "ionice",
        "stdbuf",
        "taskset",
        "watch",
        "script",
        "ssh",
        "dd",
        "cp",
        "mv",
        "rm",
        "install",
        "tee",
        "truncate",
        "shred",
    ];
    const PREFIXES: &[&str] = &["python", "perl5", "ruby", "php", "lua", "tclsh", "node"];
    EXACT.contains(&basename) || PREFIXES.iter().any(|p| basename.starts_with(p))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn id(ino: u64) -> FileIdentity {
        FileIdentity {
            dev: 1,
            ino,
            size: 10,
            mtime_sec: 5,
            mtime_nsec: 0,
            ctime_sec: 5,
            ctime_nsec: 0,
        }
    }

    /// A binary entry, for tests here and in [`crate::helpers`].
    pub(crate) fn entry(path: &str, ino: u64) -> CertifiedEntry {
        CertifiedEntry {
            path: path.into(),
            sha256: "aa".into(),
            identity: id(ino),
            interpreter: None,
            forced: false,
            certified_at: 0,
            closure: None,
            helper_of: vec![],
            sync_tool: None,
        }
    }

    #[test]
    fn identity_match_needs_no_hash() {
        let mut l = CertifiedList::default();
        l.upsert(entry("/usr/bin/restic", 3));
        assert_eq!(
            l.lookup("/usr/bin/restic", &id(3)),
            ExeLookup::Certified(&l.entries[0])
        );
        // A copy elsewhere has another identity and another path.
        assert_eq!(l.lookup("/tmp/restic", &id(4)), ExeLookup::NotListed);
        // Same path, new inode (replaced on disk): only a hash can tell.
        assert_eq!(
            l.lookup("/usr/bin/restic", &id(9)),
            ExeLookup::VerifyHash(&l.entries[0])
        );
    }

    #[test]
    fn scripts_match_through_their_interpreter() {
        let mut l = CertifiedList::default();
        let mut borg = entry("/usr/bin/borg", 20);
        borg.interpreter = Some(Interpreter {
            path: "/usr/bin/python3.11".into(),
            sha256: "bb".into(),
            identity: id(21),
            args: vec![],
            invoked_as: "/usr/bin/python3".into(),
        });
        l.upsert(borg);
        match l.lookup("/usr/bin/python3.11", &id(21)) {
            ExeLookup::Scripts(v) => assert_eq!(v[0].path, "/usr/bin/borg"),
            other => panic!("{other:?}"),
        }
        // The script's own identity is never an executable identity.
        assert_eq!(l.lookup("/usr/bin/borg", &id(20)), ExeLookup::NotListed);
        // The kernel starts the interpreter under the #! line's name; a venv-style name is not it.
        let i = l.entries[0].interpreter.as_ref().unwrap();
        assert!(i.accepts_argv0("/usr/bin/python3", None));
        assert!(i.accepts_argv0("/usr/bin/python3.11", None));
        assert!(!i.accepts_argv0("/tmp/venv/bin/python3", None));
        assert!(!i.accepts_argv0("../venv/bin/python3", None));
        // A bare name counts by where PATH leads.
        assert!(i.accepts_argv0("python3", Some("/usr/bin/python3")));
        assert!(!i.accepts_argv0("python3", Some("/tmp/venv/bin/python3")));
        assert!(!i.accepts_argv0("python3", None));
    }

    #[test]
    fn upsert_replaces_and_remove_removes() {
        let mut l = CertifiedList::default();
        assert!(!l.upsert(entry("/b", 1)));
        assert!(!l.upsert(entry("/a", 2)));
        assert!(l.upsert(entry("/b", 3)));
        assert_eq!(l.entries.len(), 2);
        assert_eq!(l.entries[0].path, "/a");
        assert_eq!(l.remove("/b").map(|e| e.identity.ino), Some(3));
        assert!(l.remove("/b").is_none());
    }

    #[test]
    fn interpreters_are_recognised() {
        for n in [
            "bash",
            "sh",
            "dash",
            "python3",
            "python3.11",
            "perl",
            "ruby3.1",
            "node",
            "busybox",
        ] {
            assert!(is_interpreter_name(n), "{n}");
        }
        for n in [
            "restic",
            "borg",
            "rsync",
            "rclone",
            "rsnapshot",
            "timeshift",
        ] {
            assert!(!is_interpreter_name(n), "{n}");
        }
    }
}
