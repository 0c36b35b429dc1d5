//! Which files and directories of a protected volume are backups.
//!
//! A file is a *backup file* when its name matches one of the configured patterns, when it lies
//! inside a restic or borg repository (except the repositories' lock files, which readers must be
//! able to create and remove), or when it lies at or under a configured backup destination folder.
//!
//! Classification of an entry needs the [`Zone`] of its parent directory. Zones are derived
//! top-down from the volume root with [`Rules::child_zone`]; the adapter caches them per
//! directory and recomputes them when a repository marker or a directory name changes.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use serde::{Deserialize, Serialize};

/// The default backup-file patterns: the product's own formats (see the reference spec) and
/// common Linux image and archive formats.
pub const DEFAULT_PATTERNS: &[&str] = &[
    "*.mrimg", "*.mrbak", "*.mrex", "*.mrsql", "*.mrimgx", "*.mrbakx", "*.tar*", "*.img", "*.qcow2",
];

/// Kind of a directory entry, as far as the policy cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EntryKind {
    File,
    Directory,
    Symlink,
    /// FIFOs, sockets, device nodes.
    Special,
}

/// A backup repository layout the guard recognises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RepoKind {
    Restic,
    Borg,
}

impl RepoKind {
    pub fn name(self) -> &'static str {
        match self {
            RepoKind::Restic => "restic",
            RepoKind::Borg => "borg",
        }
    }
}

/// Where a directory sits with respect to backup structures.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Zone {
    /// At or under a configured backup destination folder.
    pub destination: bool,
    /// Inside a repository: its kind, and this directory's path relative to the repository root
    /// (empty for the root itself).
    pub repo: Option<(RepoKind, Vec<Box<[u8]>>)>,
    /// The protected volume's (or folder's) root, where the verification file lives.
    pub volume_root: bool,
}

/// The name of imageguard's verification file, at the root of every protected volume.
pub const VERIFICATION_FILE: &str = ".imageguard-verify";

/// Whether `name` in a folder of zone `parent` is the verification file.
pub fn is_verification_file(parent: &Zone, name: &OsStr) -> bool {
    parent.volume_root && name.as_bytes() == VERIFICATION_FILE.as_bytes()
}

impl Zone {
    /// The zone of a directory that holds no backup structure.
    pub fn plain() -> Zone {
        Zone::default()
    }

    /// True when the directory itself is part of a backup structure (a destination folder or
    /// anything inside a repository, the root included): it may not be removed or renamed by an
    /// uncertified caller.
    pub fn is_backup_structure(&self) -> bool {
        self.destination || self.repo.is_some()
    }

    /// Whether key material can live in this folder (a repository's root, restic's `keys/`):
    /// what is created here may become key material by a rename (borg and restic write a
    /// temporary file and rename it into place).
    pub fn holds_key_material(&self) -> bool {
        match &self.repo {
            Some((_, path)) if path.is_empty() => true,
            Some((RepoKind::Restic, path)) => path.first().is_some_and(|t| t.as_ref() == b"keys"),
            _ => false,
        }
    }
}

/// Why an entry is a backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "reason", content = "detail")]
pub enum BackupReason {
    /// The name matches a configured pattern.
    Pattern(String),
    /// Inside a repository of this kind.
    Repository(RepoKind),
    /// A repository's bookkeeping its program rewrites every run (borg's `hints.N`, `index.N`,
    /// `integrity.N`, `nonce`): a backup to everyone uncertified, not held by age.
    Bookkeeping(RepoKind),
    /// What holds a repository's keys (restic's `config` and `keys/`, borg's `config`): only
    /// ever added to, whatever its age (see [`crate::holds`]).
    KeyMaterial(RepoKind),
    /// imageguard's verification file at a protected volume's root (`imageguard verify`): only a
    /// certified program may create it (others are refused and logged as 310), and once there
    /// it is a backup to everyone else.
    Verification,
    /// A repository's write that was never committed (a borg segment after the last COMMIT,
    /// see [`crate::borg_log`]): its program's rollback deletes it; not held by age.
    Uncommitted(RepoKind),
    /// At or under a configured backup destination folder.
    Destination,
    /// Another name of the same inode is a backup (hard link).
    SameInodeAsBackup,
    /// A directory holding backup files somewhere below it.
    ContainsBackups,
}

impl std::fmt::Display for BackupReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BackupReason::Pattern(p) => write!(f, "name matches {p}"),
            BackupReason::Repository(k) => write!(f, "inside a {} repository", k.name()),
            BackupReason::Bookkeeping(k) => {
                write!(f, "bookkeeping of a {} repository", k.name())
            }
            BackupReason::KeyMaterial(k) => {
                write!(f, "what holds the keys of a {} repository", k.name())
            }
            BackupReason::Verification => f.write_str("imageguard's verification file"),
            BackupReason::Uncommitted(k) => {
                write!(f, "an uncommitted write of a {} repository", k.name())
            }
            BackupReason::Destination => f.write_str("under a backup destination"),
            BackupReason::SameInodeAsBackup => f.write_str("hard link of a backup file"),
            BackupReason::ContainsBackups => f.write_str("directory containing backups"),
        }
    }
}

/// Result of classifying one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Class {
    Ordinary,
    Backup(BackupReason),
}

impl Class {
    pub fn is_backup(&self) -> bool {
        matches!(self, Class::Backup(_))
    }
}

/// The class of an entry for the process that created it through the guard in this session:
/// ordinary. Nothing of it existed before its creator made it, so finishing it (writing it,
/// setting its times and modes, moving a temp file into place, removing it again) destroys no
/// backup; a backup it would replace or link to is checked on its own. Everyone else sees it
/// as what it is.
pub fn for_its_creator(class: Class, created_by_caller: bool) -> Class {
    if created_by_caller {
        Class::Ordinary
    } else {
        class
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    #[error("invalid backup pattern {pattern:?}: {source}")]
    Pattern {
        pattern: String,
        #[source]
        source: globset::Error,
    },
}

/// Classification rules for one protected volume.
#[derive(Debug, Clone)]
pub struct Rules {
    patterns: Vec<String>,
    set: GlobSet,
    /// Backup destinations as paths relative to the volume root, split into components.
    destinations: Vec<Vec<Box<[u8]>>>,
    restic: bool,
    borg: bool,
}

impl Rules {
    /// Build rules from name patterns (matched case-insensitively against the file name, or
    /// against the volume-relative path when the pattern holds a `/`), destination folders
    /// relative to the volume root, and which repository layouts to recognise.
    pub fn new<P: AsRef<str>, D: AsRef<[u8]>>(
        patterns: &[P],
        destinations: &[D],
        restic: bool,
        borg: bool,
    ) -> Result<Rules, RulesError> {
        let mut builder = GlobSetBuilder::new();
        let mut kept = Vec::new();
        for p in patterns {
            let p = p.as_ref();
            let glob = GlobBuilder::new(p)
                .case_insensitive(true)
                .literal_separator(true)
                .build()
                .map_err(|source| RulesError::Pattern {
                    pattern: p.to_string(),
                    source,
                })?;
            builder.add(glob);
            kept.push(p.to_string());
        }
        let set = builder.build().map_err(|source| RulesError::Pattern {
            pattern: kept.join(" "),
            source,
        })?;
        let destinations = destinations
            .iter()
            .map(|d| split_components(d.as_ref()))
            .collect();
        Ok(Rules {
            patterns: kept,
            set,
            destinations,
            restic,
            borg,
        })
    }

    /// Rules with the default patterns, both repository layouts and no destination.
    pub fn with_defaults() -> Rules {
        Rules::new::<_, &[u8]>(DEFAULT_PATTERNS, &[], true, true)
            .expect("default patterns are valid globs")
    }

    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }

    /// The first pattern the name matches, if any.
    pub fn matching_pattern(&self, name: &OsStr) -> Option<&str> {
        let m = self.set.matches(std::path::Path::new(name));
        m.first().map(|&i| self.patterns[i].as_str())
    }

    /// True when `rel` (components relative to the volume root) is a destination or lies under one.
    pub fn is_destination_path(&self, rel: &[&[u8]]) -> bool {
        self.destinations.iter().any(|d| {
            d.len() <= rel.len() && d.iter().zip(rel.iter()).all(|(a, b)| a.as_ref() == *b)
        })
    }

    /// Which repository layout a directory has, given a probe telling what kind of entry each
    /// name is in it (the adapter answers with one `fstatat` per asked name).
    pub fn detect_repo(&self, probe: impl Fn(&str) -> Option<EntryKind>) -> Option<RepoKind> {
        let is = |name: &str, kind: EntryKind| probe(name) == Some(kind);
        if !is("config", EntryKind::File) || !is("data", EntryKind::Directory) {
            return None;
        }
        if self.restic
            && is("keys", EntryKind::Directory)
            && is("index", EntryKind::Directory)
            && is("snapshots", EntryKind::Directory)
        {
            return Some(RepoKind::Restic);
        }
        if self.borg && is("README", EntryKind::File) {
            return Some(RepoKind::Borg);
        }
        None
    }

    /// Names whose creation or removal in a directory can change that directory's repository
    /// layout (the adapter drops cached zones when one of these changes).
    pub fn is_repo_marker(name: &OsStr) -> bool {
        matches!(
            name.as_bytes(),
            b"config" | b"data" | b"keys" | b"index" | b"snapshots" | b"README"
        )
    }

    /// Zone of directory `name` inside `parent`. `rel` is the child's full path relative to the
    /// volume root; `repo_here` is what [`Rules::detect_repo`] says about the child itself.
    pub fn child_zone(
        &self,
        parent: &Zone,
        name: &OsStr,
        rel: &[&[u8]],
        repo_here: Option<RepoKind>,
    ) -> Zone {
        let destination = parent.destination || self.is_destination_path(rel);
        let repo = match (&parent.repo, repo_here) {
            (Some((kind, path)), _) => {
                let mut p = path.clone();
                p.push(name.as_bytes().into());
                Some((*kind, p))
            }
            (None, Some(kind)) => Some((kind, Vec::new())),
            (None, None) => None,
        };
        Zone {
            destination,
            repo,
            volume_root: false,
        }
    }

    /// Zone of the volume root itself.
    pub fn root_zone(&self, repo_here: Option<RepoKind>) -> Zone {
        Zone {
            destination: self.is_destination_path(&[]),
            repo: repo_here.map(|k| (k, Vec::new())),
            volume_root: true,
        }
    }

    /// Classify a non-directory entry `name` whose parent directory has zone `parent`.
    pub fn classify(&self, parent: &Zone, name: &OsStr, kind: EntryKind) -> Class {
        if is_verification_file(parent, name) {
            return Class::Backup(BackupReason::Verification);
        }
        if kind == EntryKind::Directory {
            return self.classify_directory(parent, name);
        }
        if let Some((repo, path)) = &parent.repo {
            if key_material(*repo, path, name.as_bytes()) {
                return Class::Backup(BackupReason::KeyMaterial(*repo));
            }
            if bookkeeping(*repo, path, name.as_bytes()) {
                return Class::Backup(BackupReason::Bookkeeping(*repo));
            }
            if repo_protects(*repo, path, name.as_bytes()) {
                return Class::Backup(BackupReason::Repository(*repo));
            }
        }
        if parent.destination {
            return Class::Backup(BackupReason::Destination);
        }
        if kind == EntryKind::File {
            if let Some(p) = self.matching_pattern(name) {
                return Class::Backup(BackupReason::Pattern(p.to_string()));
            }
        }
        Class::Ordinary
    }

    /// What creating `name` (of `kind`) in a folder of zone `parent` would add to: a
    /// repository's structure (its index, snapshots, packs, segments, keys, config, hints) or
    /// a backup destination's, whose files are their backup program's alone (one junk index
    /// file stops every `restic restore`; a forged pack could lead `prune` astray); `Ordinary`
    /// anywhere else, and for the lock files readers create. A new backup outside those
    /// structures (a pattern-named file) is anyone's to create, as before.
    pub fn classify_new(&self, parent: &Zone, name: &OsStr, kind: EntryKind) -> Class {
        if !parent.is_backup_structure() || is_verification_file(parent, name) {
            return Class::Ordinary;
        }
        match self.classify(parent, name, kind) {
            Class::Backup(
                r @ (BackupReason::Repository(_)
                | BackupReason::KeyMaterial(_)
                | BackupReason::Bookkeeping(_)
                | BackupReason::Destination),
            ) => Class::Backup(r),
            _ => Class::Ordinary,
        }
    }

    /// Classify directory `name` in a parent of zone `parent` by structure alone (a directory that
    /// merely *contains* backups is found by the adapter's walk, see [`BackupReason::ContainsBackups`]).
    pub fn classify_directory(&self, parent: &Zone, name: &OsStr) -> Class {
        if is_verification_file(parent, name) {
            return Class::Backup(BackupReason::Verification);
        }
        if let Some((repo, path)) = &parent.repo {
            if repo_protects_dir(*repo, path, name.as_bytes()) {
                return Class::Backup(BackupReason::Repository(*repo));
            }
        }
        if parent.destination {
            return Class::Backup(BackupReason::Destination);
        }
        Class::Ordinary
    }
}

/// The files that hold a repository's keys: restic's `config` (the repository id and chunker
/// polynomial, which every key unlocks) and everything in `keys/`; borg's `config` (in repokey
/// mode, the key itself).
fn key_material(kind: RepoKind, dir: &[Box<[u8]>], name: &[u8]) -> bool {
    match (kind, dir.first().map(|t| t.as_ref())) {
        (_, None) => name == b"config",
        (RepoKind::Restic, Some(top)) => top == b"keys",
        (RepoKind::Borg, Some(_)) => false,
    }
}

/// borg's bookkeeping in its repository's root: `hints.N`, `index.N`, `integrity.N` (written
/// anew and the old ones deleted at every transaction) and `nonce`.
fn bookkeeping(kind: RepoKind, dir: &[Box<[u8]>], name: &[u8]) -> bool {
    let numbered = |prefix: &[u8]| {
        name.strip_prefix(prefix)
            .is_some_and(|n| !n.is_empty() && n.iter().all(u8::is_ascii_digit))
    };
    kind == RepoKind::Borg
        && dir.is_empty()
        && (name == b"nonce"
            || numbered(b"hints.")
            || numbered(b"index.")
            || numbered(b"integrity."))
}

/// Files of a repository that are backups: everything except lock files, which readers of the
/// repository (`restic snapshots`, `borg list`) create and remove.
fn repo_protects(kind: RepoKind, dir: &[Box<[u8]>], name: &[u8]) -> bool {
    match kind {
        RepoKind::Restic => match dir.first() {
            None => name != b"lock" && !name.starts_with(b"."),
            Some(top) => top.as_ref() != b"locks",
        },
        RepoKind::Borg => match dir.first() {
            None => name != b"lock.roster",
            Some(top) => !borg_lock_dir(top),
        },
    }
}

/// borg's exclusive lock, and the temporary folder it is made in and renamed from
/// (`lock.exclusive.XXXXXXXX.tmp`, borg 1.2).
fn borg_lock_dir(name: &[u8]) -> bool {
    name == b"lock.exclusive" || (name.starts_with(b"lock.exclusive.") && name.ends_with(b".tmp"))
}

/// Directories of a repository that are part of its structure.
fn repo_protects_dir(kind: RepoKind, dir: &[Box<[u8]>], name: &[u8]) -> bool {
    match kind {
        RepoKind::Restic => {
            !(dir.is_empty() && name == b"locks")
                && dir.first().map(|t| t.as_ref()) != Some(b"locks")
        }
        RepoKind::Borg => {
            let in_lock = dir.first().is_some_and(|t| borg_lock_dir(t));
            !(in_lock || (dir.is_empty() && borg_lock_dir(name)))
        }
    }
}

fn split_components(path: &[u8]) -> Vec<Box<[u8]>> {
    path.split(|&b| b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .map(Box::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(s: &str) -> &OsStr {
        OsStr::new(s)
    }

    fn restic_root(rules: &Rules) -> Zone {
        rules.root_zone(Some(RepoKind::Restic))
    }

    fn sub(rules: &Rules, parent: &Zone, name: &str) -> Zone {
        rules.child_zone(parent, os(name), &[name.as_bytes()], None)
    }

    #[test]
    fn the_verification_file_is_at_the_volume_root_only() {
        let r = Rules::with_defaults();
        let root = r.root_zone(None);
        let verification = Class::Backup(BackupReason::Verification);
        assert_eq!(
            r.classify(&root, os(VERIFICATION_FILE), EntryKind::File),
            verification
        );
        assert_eq!(
            r.classify_directory(&root, os(VERIFICATION_FILE)),
            verification
        );
        let below = sub(&r, &root, "images");
        assert_eq!(
            r.classify(&below, os(VERIFICATION_FILE), EntryKind::File),
            Class::Ordinary
        );
        assert_eq!(
            r.classify(&root, os(".imageguard-verify2"), EntryKind::File),
            Class::Ordinary
        );
    }

    #[test]
    fn default_patterns_match_product_formats_case_insensitively() {
        let r = Rules::with_defaults();
        for name in [
            "a.mrimg",
            "B.MRIMG",
            "c.mrbak",
            "d.mrex",
            "e.mrsql",
            "f.mrimgx",
            "g.mrbakx",
            "h.tar",
            "h.tar.gz",
            "h.tar.zst",
            "disk.img",
            "vm.qcow2",
        ] {
            assert!(r.matching_pattern(os(name)).is_some(), "{name}");
            assert!(r
                .classify(&Zone::plain(), os(name), EntryKind::File)
                .is_backup());
        }
        for name in [
            "notes.txt",
            "mrimg",
            "a.mrimg.txt.bak",
            "tarball",
            "image.png",
        ] {
            assert_eq!(
                r.classify(&Zone::plain(), os(name), EntryKind::File),
                Class::Ordinary,
                "{name}"
            );
        }
    }

    #[test]
    fn symlinks_and_specials_are_not_backups_by_name() {
        let r = Rules::with_defaults();
        assert_eq!(
            r.classify(&Zone::plain(), os("x.mrimg"), EntryKind::Symlink),
            Class::Ordinary
        );
        assert_eq!(
            r.classify(&Zone::plain(), os("x.mrimg"), EntryKind::Special),
            Class::Ordinary
        );
    }

    #[test]
    fn restic_layout_protects_everything_but_locks() {
        let r = Rules::with_defaults();
        let root = restic_root(&r);
        assert!(r.classify(&root, os("config"), EntryKind::File).is_backup());
        let data = sub(&r, &root, "data");
        let data00 = r.child_zone(&data, os("00"), &[b"data", b"00"], None);
        assert!(r
            .classify(&data00, os("00ab12"), EntryKind::File)
            .is_backup());
        for d in ["index", "keys", "snapshots"] {
            assert!(
                r.classify(&sub(&r, &root, d), os("abc"), EntryKind::File)
                    .is_backup(),
                "{d}"
            );
        }
        let locks = sub(&r, &root, "locks");
        assert_eq!(
            r.classify(&locks, os("abc"), EntryKind::File),
            Class::Ordinary
        );
        assert_eq!(r.classify_directory(&root, os("locks")), Class::Ordinary);
        assert!(r.classify_directory(&root, os("data")).is_backup());
        assert!(r.classify_directory(&data, os("00")).is_backup());
    }

    #[test]
    fn key_material_of_both_layouts() {
        let r = Rules::with_defaults();
        assert!(restic_root(&r).holds_key_material());
        assert!(sub(&r, &restic_root(&r), "keys").holds_key_material());
        assert!(!sub(&r, &restic_root(&r), "data").holds_key_material());
        assert!(r.root_zone(Some(RepoKind::Borg)).holds_key_material());
        assert!(!Zone::plain().holds_key_material());
        let key = |k| Class::Backup(BackupReason::KeyMaterial(k));
        let restic = restic_root(&r);
        assert_eq!(
            r.classify(&restic, os("config"), EntryKind::File),
            key(RepoKind::Restic)
        );
        let keys = sub(&r, &restic, "keys");
        assert_eq!(
            r.classify(&keys, os("4f2a"), EntryKind::File),
            key(RepoKind::Restic)
        );
        let index = sub(&r, &restic, "index");
        assert_eq!(
            r.classify(&index, os("config"), EntryKind::File),
            Class::Backup(BackupReason::Repository(RepoKind::Restic))
        );
        let borg = r.root_zone(Some(RepoKind::Borg));
        assert_eq!(
            r.classify(&borg, os("config"), EntryKind::File),
            key(RepoKind::Borg)
        );
        assert_eq!(
            r.classify(&borg, os("hints.5"), EntryKind::File),
            Class::Backup(BackupReason::Bookkeeping(RepoKind::Borg))
        );
        for f in ["index.12", "integrity.3", "nonce"] {
            assert_eq!(
                r.classify(&borg, os(f), EntryKind::File),
                Class::Backup(BackupReason::Bookkeeping(RepoKind::Borg)),
                "{f}"
            );
        }
        for f in ["hints.", "index.x", "README"] {
            assert_eq!(
                r.classify(&borg, os(f), EntryKind::File),
                Class::Backup(BackupReason::Repository(RepoKind::Borg)),
                "{f}"
            );
        }
        // Outside a repository, a file named config is nothing special.
        assert_eq!(
            r.classify(&Zone::plain(), os("config"), EntryKind::File),
            Class::Ordinary
        );
    }

    #[test]
    fn borg_layout_protects_everything_but_its_lock() {
        let r = Rules::with_defaults();
        let root = r.root_zone(Some(RepoKind::Borg));
        for f in [
            "config",
            "README",
            "hints.5",
            "index.5",
            "integrity.5",
            "nonce",
        ] {
            assert!(r.classify(&root, os(f), EntryKind::File).is_backup(), "{f}");
        }
        assert_eq!(
            r.classify(&root, os("lock.roster"), EntryKind::File),
            Class::Ordinary
        );
        // The lock, and the temporary folder borg 1.2 makes it in: readers take the lock too.
        for dir in ["lock.exclusive", "lock.exclusive.k3mh_2kd.tmp"] {
            assert_eq!(
                r.classify_directory(&root, os(dir)),
                Class::Ordinary,
                "{dir}"
            );
            let lock = sub(&r, &root, dir);
            assert_eq!(
                r.classify(&lock, os("host@1234"), EntryKind::File),
                Class::Ordinary
            );
        }
        // Not any name that starts alike.
        assert!(r
            .classify_directory(&root, os("lock.exclusive.data"))
            .is_backup());
        let data = sub(&r, &root, "data");
        let seg = r.child_zone(&data, os("0"), &[b"data", b"0"], None);
        assert!(r.classify(&seg, os("1"), EntryKind::File).is_backup());
    }

    #[test]
    fn repo_detection_needs_the_full_layout() {
        let r = Rules::with_defaults();
        let restic = |n: &str| match n {
            "config" => Some(EntryKind::File),
            "data" | "keys" | "index" | "snapshots" | "locks" => Some(EntryKind::Directory),
            _ => None,
        };
        assert_eq!(r.detect_repo(restic), Some(RepoKind::Restic));
        let borg = |n: &str| match n {
            "config" | "README" => Some(EntryKind::File),
            "data" => Some(EntryKind::Directory),
            _ => None,
        };
        assert_eq!(r.detect_repo(borg), Some(RepoKind::Borg));
        let half = |n: &str| match n {
            "config" => Some(EntryKind::File),
            _ => None,
        };
        assert_eq!(r.detect_repo(half), None);
        let config_is_dir = |n: &str| match n {
            "config" | "data" | "keys" | "index" | "snapshots" => Some(EntryKind::Directory),
            _ => None,
        };
        assert_eq!(r.detect_repo(config_is_dir), None);
        let off = Rules::new(&["*.x"], &[] as &[&[u8]], false, false).unwrap();
        assert_eq!(off.detect_repo(restic), None);
        assert_eq!(off.detect_repo(borg), None);
    }

    #[test]
    fn destinations_protect_their_whole_subtree() {
        let r = Rules::new(DEFAULT_PATTERNS, &["nightly/images"], true, true).unwrap();
        let nightly = r.child_zone(&Zone::plain(), os("nightly"), &[b"nightly"], None);
        assert!(!nightly.destination);
        assert_eq!(
            r.classify(&nightly, os("notes.txt"), EntryKind::File),
            Class::Ordinary
        );
        let images = r.child_zone(&nightly, os("images"), &[b"nightly", b"images"], None);
        assert!(images.destination);
        assert!(images.is_backup_structure());
        assert_eq!(
            r.classify(&images, os("notes.txt"), EntryKind::File),
            Class::Backup(BackupReason::Destination)
        );
        let deeper = r.child_zone(&images, os("2026"), &[b"nightly", b"images", b"2026"], None);
        assert!(r
            .classify(&deeper, os("anything"), EntryKind::Symlink)
            .is_backup());
        assert!(!r.classify_directory(&nightly, os("images")).is_backup());
        assert!(r.classify_directory(&images, os("2026")).is_backup());
        let whole = Rules::new(DEFAULT_PATTERNS, &["/"], true, true).unwrap();
        assert!(whole.root_zone(None).destination);
    }

    #[test]
    fn what_a_new_entry_adds_to() {
        let r = Rules::new(DEFAULT_PATTERNS, &["snapshots"], true, true).unwrap();
        let restic = restic_root(&r);
        let borg = r.root_zone(Some(RepoKind::Borg));
        let plain = Zone::plain();
        let dest = r.child_zone(&plain, os("snapshots"), &[b"snapshots"], None);
        let added = |zone: &Zone, name: &str, kind: EntryKind| {
            r.classify_new(zone, os(name), kind).is_backup()
        };
        // (zone, name, kind, part of the structure)
        let table: Vec<(&Zone, &str, EntryKind, bool)> = vec![
            (&restic, "config", EntryKind::File, true),
            (&restic, "junk", EntryKind::File, true),
            (&restic, "lock", EntryKind::File, false),
            (&restic, "locks", EntryKind::Directory, false),
            (&restic, "extra", EntryKind::Directory, true),
            (&restic, "data", EntryKind::Symlink, true),
            (&borg, "index.9", EntryKind::File, true),
            (&borg, "hints.9", EntryKind::File, true),
            (&borg, "lock.roster", EntryKind::File, false),
            (&borg, "lock.exclusive", EntryKind::Directory, false),
            (
                &borg,
                "lock.exclusive.ab_cd.tmp",
                EntryKind::Directory,
                false,
            ),
            (&dest, "daily.0", EntryKind::Directory, true),
            (&dest, "note.txt", EntryKind::File, true),
            (&plain, "new.mrimg", EntryKind::File, false),
            (&plain, "data", EntryKind::Directory, false),
        ];
        for (zone, name, kind, want) in table {
            assert_eq!(added(zone, name, kind), want, "{name} {kind:?}");
        }
        for dir in ["index", "snapshots", "keys", "data"] {
            let z = sub(&r, &restic, dir);
            assert!(added(&z, "0000000000aa", EntryKind::File), "{dir}");
        }
        let (locks, lock_dir) = (sub(&r, &restic, "locks"), sub(&r, &borg, "lock.exclusive"));
        let data = sub(&r, &restic, "data");
        let data00 = r.child_zone(&data, os("00"), &[b"data", b"00"], None);
        assert!(added(&data00, "00ff", EntryKind::File));
        assert!(!added(&locks, "4a1b", EntryKind::File));
        let bdata = sub(&r, &borg, "data");
        let seg = r.child_zone(&bdata, os("0"), &[b"data", b"0"], None);
        assert!(added(&seg, "17", EntryKind::File));
        assert!(!added(&lock_dir, "host@1", EntryKind::File));
        // The verification file is asked about on its own (310), not as structure.
        let root = Rules::new(DEFAULT_PATTERNS, &["/"], true, true)
            .unwrap()
            .root_zone(None);
        assert!(root.volume_root && root.destination);
        assert_eq!(
            r.classify_new(&root, os(VERIFICATION_FILE), EntryKind::File),
            Class::Ordinary
        );
    }

    #[test]
    fn invalid_pattern_is_an_error_naming_it() {
        let e = Rules::new(&["[abc"], &[] as &[&[u8]], true, true).unwrap_err();
        assert!(e.to_string().contains("[abc"));
    }

    #[test]
    fn repo_markers() {
        for m in ["config", "data", "keys", "index", "snapshots", "README"] {
            assert!(Rules::is_repo_marker(os(m)));
        }
        assert!(!Rules::is_repo_marker(os("00ab")));
    }
}
