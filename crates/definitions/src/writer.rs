//! Who besides root can change what a definition says: the user whose home it was read from,
//! or whoever owns or may write the file (or a file it includes, or the folder that holds
//! either, which lets one replace it). A definition root alone can write is the
//! administrator's; any other is a user's, and what it may do is limited (its destinations
//! are protected only inside that user's home unless an administrator approves it, and it
//! never lets a sync tool delete anything unless approved).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// A user who can change a definition.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Writer {
    /// The user's id; `None` when anyone may write it (a world-writable file or folder).
    pub uid: Option<u32>,
    /// That user's home (from the password database), where the definition's destinations
    /// may be protected; `None` when unknown (nowhere).
    pub home: Option<PathBuf>,
}

impl std::fmt::Display for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.uid, &self.home) {
            (None, _) => f.write_str("anyone (world-writable)"),
            (Some(uid), Some(h)) => write!(f, "uid {uid} (home {})", h.display()),
            (Some(uid), None) => write!(f, "uid {uid}"),
        }
    }
}

/// Whether the entry with metadata `m` lets someone other than root change it (or, for a
/// folder, replace what is in it): owned by another user, or writable by a group other than
/// root's, or by everyone (a folder with the sticky bit keeps others from replacing a file
/// they do not own).
fn others_may_write(m: &std::fs::Metadata, folder: bool) -> Option<Option<u32>> {
    if m.uid() != 0 {
        return Some(Some(m.uid()));
    }
    let sticky = folder && m.mode() & 0o1000 != 0;
    if m.mode() & 0o002 != 0 && !sticky {
        return Some(None);
    }
    if m.mode() & 0o020 != 0 && m.gid() != 0 && !sticky {
        return Some(None);
    }
    None
}

/// Who besides root can change what `files` say (a definition's file and what it includes);
/// `homes` are the users' homes by uid. `None`: root alone.
pub fn writer_of(files: &[PathBuf], homes: &[(u32, PathBuf)]) -> Option<Writer> {
    for file in files {
        let mut entries = vec![(file.as_path(), false)];
        if let Some(parent) = file.parent() {
            entries.push((parent, true));
        }
        for (path, folder) in entries {
            // A file that cannot be examined is not trusted.
            let who = match std::fs::metadata(path) {
                Ok(m) => others_may_write(&m, folder),
                Err(_) => Some(None),
            };
            if let Some(uid) = who {
                return Some(Writer {
                    uid,
                    home: uid.and_then(|u| home_of(u, homes)),
                });
            }
        }
    }
    None
}

/// The home of `uid`, if listed.
pub fn home_of(uid: u32, homes: &[(u32, PathBuf)]) -> Option<PathBuf> {
    homes
        .iter()
        .find(|(u, _)| *u == uid)
        .map(|(_, h)| h.clone())
}

/// Whether `folder` lies inside `home`, by whole components, after resolving symlinks as far
/// as it exists (a link in the home pointing elsewhere does not count as inside). A path with
/// `..` left in it after that is not inside.
pub fn inside_home(folder: &Path, home: &Path) -> bool {
    let resolve = |p: &Path| -> Option<PathBuf> {
        // The deepest existing ancestor, resolved, and the rest appended.
        let mut rest = Vec::new();
        let mut at = p;
        loop {
            if let Ok(c) = at.canonicalize() {
                let full = rest.iter().rev().fold(c, |acc: PathBuf, n| acc.join(n));
                return Some(full);
            }
            rest.push(at.file_name()?.to_os_string());
            at = at.parent()?;
        }
    };
    let (Some(f), Some(h)) = (resolve(folder), resolve(home)) else {
        return false;
    };
    !f.components()
        .any(|c| matches!(c, std::path::Component::ParentDir))
        && f.starts_with(&h)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn root_alone_or_a_user() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("etc");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let f = dir.join("a.yaml");
        std::fs::write(&f, "x").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        let homes = vec![(1000, PathBuf::from("/home/bob"))];
        // As root, ownership can be handed to a user (the test runs as root in CI).
        if std::fs::metadata(&f).unwrap().uid() == 0 {
            assert_eq!(writer_of(std::slice::from_ref(&f), &homes), None);
            std::os::unix::fs::chown(&f, Some(1000), None).unwrap();
            assert_eq!(
                writer_of(std::slice::from_ref(&f), &homes),
                Some(Writer {
                    uid: Some(1000),
                    home: Some("/home/bob".into())
                })
            );
            std::os::unix::fs::chown(&f, Some(0), None).unwrap();
        }
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o666)).unwrap();
        assert!(writer_of(std::slice::from_ref(&f), &homes).is_some());
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        // A world-writable folder without the sticky bit: the file can be replaced.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(writer_of(std::slice::from_ref(&f), &homes).is_some());
        let missing = dir.join("missing.conf");
        assert!(writer_of(&[missing], &homes).is_some());
    }

    #[test]
    fn inside_a_home() {
        let d = tempfile::tempdir().unwrap();
        let home = d.path().join("home/bob");
        std::fs::create_dir_all(home.join("backups")).unwrap();
        let elsewhere = d.path().join("etc");
        std::fs::create_dir_all(&elsewhere).unwrap();
        std::os::unix::fs::symlink(&elsewhere, home.join("link")).unwrap();
        assert!(inside_home(&home.join("backups"), &home));
        assert!(inside_home(&home.join("not-yet/there"), &home));
        assert!(!inside_home(&home.join("link"), &home));
        assert!(!inside_home(&home.join("link/sub"), &home));
        assert!(!inside_home(&home.join("../alice"), &home));
        assert!(!inside_home(&home.join("missing/../../alice"), &home));
        assert!(!inside_home(&elsewhere, &home));
        assert!(!inside_home(&d.path().join("home/bobby"), &home));
    }
}
