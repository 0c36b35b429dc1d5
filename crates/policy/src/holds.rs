//! What holds a backup even against a certified program: the decision's second question, asked
//! only once a caller is certified.
//!
//! - **Key material** (restic's `config` and `keys/`, borg's `config`): a certified program may
//!   add to it (a new key) but not remove or rewrite it, whatever its age: `restic key passwd`
//!   or `borg key change-passphrase` run by whoever can read the job's password would otherwise
//!   lock the owner out of every backup at once. An admin opens a short maintenance window on a
//!   volume for a real key change.
//! - **The retention lock**: a backup younger than the lock on its volume or destination may
//!   not be deleted, truncated, overwritten, renamed away or replaced by anyone, certified
//!   programs included (a certified `restic forget --prune` run by ransomware with the job's
//!   password). New files, appends (write-only, `O_APPEND`), hard links and attribute changes
//!   stay allowed: restic and borg keep writing new packs and segments. A file's age is the
//!   time the guard first saw it, on the service's own clock (never the file's times, never
//!   the wall clock). A repository's bookkeeping that its program rewrites every run (borg's
//!   `hints.N`, `index.N`, `integrity.N`, `nonce`) is not held by age.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::classify::{BackupReason, Class, RepoKind};
use crate::operation::Operation;

/// What the adapter knows about the entry, beyond its class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Circumstances {
    /// A maintenance window for key material is open on this volume now.
    pub key_window_open: bool,
    /// The retention lock that applies to the entry, and its age, if a lock is set there.
    pub lock: Option<LockedAge>,
    /// The admin turned protection off on this volume (`imageguard off` or `unprotect`) while
    /// a retention lock covers it: every caller is then treated as a certified one, so only
    /// what holds a backup (the lock, key material) still refuses.
    pub protection_off: bool,
}

/// A retention lock and the age of the entry it covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockedAge {
    pub lock_days: u32,
    /// Since the guard first saw the entry, on the service's clock; `None` when not known
    /// (then it counts as young).
    pub age: Option<Duration>,
}

impl LockedAge {
    /// Whether the entry is younger than the lock.
    pub fn young(&self) -> bool {
        match self.age {
            Some(age) => age < Duration::from_secs(u64::from(self.lock_days) * 86_400),
            None => self.lock_days > 0,
        }
    }
}

/// Why a certified caller is held back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Held {
    /// Key material of a repository: only added to.
    KeyMaterial(RepoKind),
    /// Younger than the retention lock: its age in whole days (or unknown), the lock's days.
    Young {
        age_days: Option<u64>,
        lock_days: u32,
    },
}

impl std::fmt::Display for Held {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Held::KeyMaterial(k) => write!(
                f,
                "what holds the keys of a {} repository is only ever added to, by certified \
                 programs too (a key change needs a maintenance window: imageguard maintenance \
                 MOUNTPOINT)",
                k.name()
            ),
            Held::Young {
                age_days,
                lock_days,
            } => write!(
                f,
                "held by the {lock_days}-day retention lock: the file is {} old, and nobody, \
                 certified programs included, may delete or change it before it is {lock_days} days old",
                match age_days {
                    Some(0) => "less than a day".to_string(),
                    Some(1) => "1 day".to_string(),
                    Some(d) => format!("{d} days"),
                    None => "of unknown age (counted as new)".to_string(),
                }
            ),
        }
    }
}

/// Whether `op` removes or rewrites what an entry holds (a new name, an attribute change or a
/// hard link keeps it whole).
fn destroys(op: Operation) -> bool {
    use Operation as O;
    match op {
        O::Delete
        | O::RemoveDirectory
        | O::Rename
        | O::RenameInFolder
        | O::Replace
        | O::Exchange
        | O::Truncate
        | O::OpenWrite
        | O::OpenAppend
        | O::Write
        | O::Fallocate
        | O::CopyInto => true,
        O::SetAttributes
        | O::SetXattr
        | O::RemoveXattr
        | O::HardLink
        | O::CreateDuplicate
        | O::CreateVerification
        | O::CreateInStructure => false,
    }
}

/// The class of key material for the process that created it through the guard in this run:
/// part of its repository, not held (borg init writes its `config` and then rewrites it with
/// the key; restic writes a key file and renames it into place). Nothing another process made
/// is released this way.
pub fn key_material_for_its_creator(class: Class, created_by_caller: bool) -> Class {
    match class {
        Class::Backup(BackupReason::KeyMaterial(k)) if created_by_caller => {
            Class::Backup(BackupReason::Repository(k))
        }
        other => other,
    }
}

/// The `id` and `key` a borg repository's `config` holds (its `[repository]` section, values
/// with their continuation lines, whitespace removed); `None` for what is not such a file.
/// In keyfile mode there is no `key` (empty here).
pub fn borg_config_identity(text: &[u8]) -> Option<(String, String)> {
    let text = std::str::from_utf8(text).ok()?;
    let (mut in_repository, mut seen_section) = (false, false);
    let (mut id, mut key) = (None::<String>, String::new());
    let mut current: Option<&'static str> = None;
    for line in text.lines() {
        if line.starts_with([' ', '\t']) {
            if let (true, Some("key")) = (in_repository, current) {
                key.extend(line.chars().filter(|c| !c.is_whitespace()));
            }
            continue;
        }
        current = None;
        let line = line.trim();
        if let Some(section) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            in_repository = section.trim() == "repository";
            seen_section |= in_repository;
            continue;
        }
        if !in_repository {
            continue;
        }
        if let Some((name, value)) = line.split_once('=') {
            let value: String = value.chars().filter(|c| !c.is_whitespace()).collect();
            match name.trim().to_ascii_lowercase().as_str() {
                "id" => id = Some(value),
                "key" => {
                    key = value;
                    current = Some("key");
                }
                _ => {}
            }
        }
    }
    seen_section.then_some(())?;
    Some((id?, key))
}

/// A rewrite of borg's `config` (`new` replacing `old`) that keeps its id and key: borg check
/// records its progress there and `borg config` changes settings; that is the repository's
/// bookkeeping (not held by age either: borg check must run under a lock), not key material
/// released. Anything else stays key material.
pub fn borg_config_rewrite(class: Class, old: &[u8], new: &[u8]) -> Class {
    match class {
        Class::Backup(BackupReason::KeyMaterial(RepoKind::Borg))
            if borg_config_identity(old).is_some()
                && borg_config_identity(old) == borg_config_identity(new) =>
        {
            Class::Backup(BackupReason::Bookkeeping(RepoKind::Borg))
        }
        other => other,
    }
}

/// Whether a caller's `op` on an entry of class `class` is held back: a certified caller's,
/// or anyone's where protection is off but for the lock. An uncertified caller (protection
/// off) may not even append to a young backup: an append is a change, and only backup
/// programs write by appending (bytes appended after a restic pack's header make the pack
/// unreadable to restic).
pub fn hold_for(
    op: Operation,
    class: &Class,
    now: &Circumstances,
    certified: bool,
) -> Option<Held> {
    match hold(op, class, now) {
        Some(h) => Some(h),
        None if !certified && op == Operation::OpenAppend => match (class, now.lock) {
            (Class::Backup(r), Some(locked))
                if locked.young()
                    && !matches!(
                        r,
                        BackupReason::Bookkeeping(_) | BackupReason::Uncommitted(_)
                    ) =>
            {
                Some(Held::Young {
                    age_days: locked.age.map(|a| a.as_secs() / 86_400),
                    lock_days: locked.lock_days,
                })
            }
            _ => None,
        },
        None => None,
    }
}

/// Whether a certified caller's `op` on an entry of class `class` is held back.
pub fn hold(op: Operation, class: &Class, now: &Circumstances) -> Option<Held> {
    // Key material answers to the maintenance window alone, whatever its age.
    if let Class::Backup(BackupReason::KeyMaterial(k)) = class {
        return (destroys(op) && !now.key_window_open).then_some(Held::KeyMaterial(*k));
    }
    let Class::Backup(reason) = class else {
        return None;
    };
    if matches!(
        reason,
        BackupReason::Bookkeeping(_) | BackupReason::Uncommitted(_) | BackupReason::Verification
    ) {
        return None;
    }
    match now.lock {
        Some(locked) if locked.young() && ages_out(op, reason) => Some(Held::Young {
            age_days: locked.age.map(|a| a.as_secs() / 86_400),
            lock_days: locked.lock_days,
        }),
        _ => None,
    }
}

/// Whether `op` on an entry held for `reason` is one the retention lock refuses: what
/// removes, rewrites or shrinks a file (an append only adds to it). A file moved to another
/// backup name in its own folder is not renamed away, except in a repository: restic and borg
/// rename only what they made in the same run (not held anyway), while a young segment or
/// pack renamed under a name its program does not read is as good as deleted (and would take
/// a borg segment's commit out of the log, see [`crate::borg_log`]).
fn ages_out(op: Operation, reason: &BackupReason) -> bool {
    match op {
        Operation::OpenAppend | Operation::RemoveDirectory => false,
        Operation::RenameInFolder => matches!(reason, BackupReason::Repository(_)),
        op => destroys(op),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPOKEY: &str = "[repository]\nversion = 1\nappend_only = 0\nid = 8c72bb\nkey = hqlhbG\n\t56S1J6\n\tjqL4t8\n\n";

    #[test]
    fn borg_config_rewrites_that_keep_the_key() {
        assert_eq!(
            borg_config_identity(REPOKEY.as_bytes()),
            Some(("8c72bb".into(), "hqlhbG56S1J6jqL4t8".into()))
        );
        let keyfile = "[repository]\nversion = 1\nid = 8c72bb\n";
        assert_eq!(
            borg_config_identity(keyfile.as_bytes()),
            Some(("8c72bb".into(), String::new()))
        );
        assert_eq!(borg_config_identity(b"not a config"), None);
        assert_eq!(borg_config_identity(b"[repository]\nversion = 1\n"), None);

        let key = Class::Backup(BackupReason::KeyMaterial(RepoKind::Borg));
        let part = Class::Backup(BackupReason::Bookkeeping(RepoKind::Borg));
        // borg check's progress, borg config's settings: the key is kept.
        let settings = REPOKEY.replace(
            "append_only = 0",
            "append_only = 0\nlast_segment_checked = -1",
        );
        assert_eq!(
            borg_config_rewrite(key.clone(), REPOKEY.as_bytes(), settings.as_bytes()),
            part
        );
        // Rewrapped lines are the same key.
        let rewrapped = REPOKEY.replace("hqlhbG\n\t56S1J6", "hqlhbG56S1J6");
        assert_eq!(
            borg_config_rewrite(key.clone(), REPOKEY.as_bytes(), rewrapped.as_bytes()),
            part
        );
        // A new passphrase (another key), another id, the key removed, or junk: held.
        for new in [
            REPOKEY.replace("jqL4t8", "XXXXXX"),
            REPOKEY.replace("8c72bb", "000000"),
            REPOKEY.replace("key = hqlhbG\n\t56S1J6\n\tjqL4t8\n", ""),
            String::new(),
        ] {
            assert_eq!(
                borg_config_rewrite(key.clone(), REPOKEY.as_bytes(), new.as_bytes()),
                key,
                "{new:?}"
            );
        }
        // Only borg's key material is looked into.
        let restic = Class::Backup(BackupReason::KeyMaterial(RepoKind::Restic));
        assert_eq!(
            borg_config_rewrite(restic.clone(), REPOKEY.as_bytes(), REPOKEY.as_bytes()),
            restic
        );
    }

    #[test]
    fn key_material_its_caller_created_is_not_held_against_it() {
        let key = Class::Backup(BackupReason::KeyMaterial(RepoKind::Borg));
        let mine = key_material_for_its_creator(key.clone(), true);
        assert_eq!(
            mine,
            Class::Backup(BackupReason::Repository(RepoKind::Borg))
        );
        assert_eq!(
            hold(Operation::Replace, &mine, &Circumstances::default()),
            None
        );
        let theirs = key_material_for_its_creator(key.clone(), false);
        assert!(hold(Operation::Replace, &theirs, &Circumstances::default()).is_some());
        let pack = Class::Backup(BackupReason::Pattern("*.img".into()));
        assert_eq!(key_material_for_its_creator(pack.clone(), true), pack);
    }

    #[test]
    fn young_backups_are_held_old_ones_are_not() {
        let image = Class::Backup(BackupReason::Pattern("*.mrimg".into()));
        let hints = Class::Backup(BackupReason::Bookkeeping(RepoKind::Borg));
        let at = |days: u64, lock: u32| Circumstances {
            key_window_open: false,
            protection_off: false,
            lock: Some(LockedAge {
                lock_days: lock,
                age: Some(Duration::from_secs(days * 86_400)),
            }),
        };
        // (operation, held when young)
        let table = [
            (Operation::Delete, true),
            (Operation::Rename, true),
            (Operation::Replace, true),
            (Operation::Exchange, true),
            (Operation::Truncate, true),
            (Operation::OpenWrite, true),
            (Operation::Write, true),
            (Operation::Fallocate, true),
            (Operation::CopyInto, true),
            (Operation::OpenAppend, false),
            (Operation::RenameInFolder, false),
            (Operation::RemoveDirectory, false),
            (Operation::SetAttributes, false),
            (Operation::SetXattr, false),
            (Operation::RemoveXattr, false),
            (Operation::HardLink, false),
            (Operation::CreateDuplicate, false),
            (Operation::CreateVerification, false),
            (Operation::CreateInStructure, false),
        ];
        for (op, held) in table {
            assert_eq!(
                hold(op, &image, &at(13, 14)).is_some(),
                held,
                "{op:?} at 13 days"
            );
            assert_eq!(hold(op, &image, &at(14, 14)), None, "{op:?} at 14 days");
            assert_eq!(hold(op, &image, &at(0, 0)), None, "{op:?} without a lock");
            assert_eq!(hold(op, &hints, &at(0, 14)), None, "{op:?} on bookkeeping");
        }
        // In a repository, a rename in its folder is held too.
        let segment = Class::Backup(BackupReason::Repository(RepoKind::Borg));
        assert!(hold(Operation::RenameInFolder, &segment, &at(2, 14)).is_some());
        assert_eq!(hold(Operation::RenameInFolder, &segment, &at(20, 14)), None);
        // A borg segment after the last commit: its rollback deletes it, whatever its age.
        let uncommitted = Class::Backup(BackupReason::Uncommitted(RepoKind::Borg));
        assert_eq!(hold(Operation::Delete, &uncommitted, &at(0, 14)), None);
        // Appends: a certified program's new data; from anyone else (protection off), held.
        assert_eq!(
            hold_for(Operation::OpenAppend, &image, &at(2, 14), true),
            None
        );
        assert!(hold_for(Operation::OpenAppend, &image, &at(2, 14), false).is_some());
        assert_eq!(
            hold_for(Operation::OpenAppend, &image, &at(20, 14), false),
            None
        );
        assert_eq!(
            hold_for(Operation::OpenAppend, &hints, &at(2, 14), false),
            None
        );
        // Unknown age counts as young.
        let unknown = Circumstances {
            key_window_open: false,
            protection_off: false,
            lock: Some(LockedAge {
                lock_days: 14,
                age: None,
            }),
        };
        assert!(hold(Operation::Delete, &image, &unknown).is_some());
        assert_eq!(
            hold(Operation::Delete, &image, &at(3, 14)).map(|h| h.to_string()),
            Some("held by the 14-day retention lock: the file is 3 days old, and nobody, certified programs included, may delete or change it before it is 14 days old".into())
        );
        // Key material stays held whatever its age.
        let key = Class::Backup(BackupReason::KeyMaterial(RepoKind::Restic));
        assert!(matches!(
            hold(Operation::Delete, &key, &at(400, 14)),
            Some(Held::KeyMaterial(_))
        ));
    }

    #[test]
    fn key_material_is_only_added_to_outside_a_window() {
        let key = Class::Backup(BackupReason::KeyMaterial(RepoKind::Restic));
        let pack = Class::Backup(BackupReason::Repository(RepoKind::Restic));
        let closed = Circumstances::default();
        let open = Circumstances {
            key_window_open: true,
            ..Circumstances::default()
        };
        // (operation, held with the window closed)
        let table = [
            (Operation::Delete, true),
            (Operation::Rename, true),
            (Operation::RenameInFolder, true),
            (Operation::Replace, true),
            (Operation::Exchange, true),
            (Operation::Truncate, true),
            (Operation::OpenWrite, true),
            (Operation::Write, true),
            (Operation::Fallocate, true),
            (Operation::CopyInto, true),
            (Operation::RemoveDirectory, true),
            (Operation::SetAttributes, false),
            (Operation::SetXattr, false),
            (Operation::RemoveXattr, false),
            (Operation::HardLink, false),
            (Operation::CreateDuplicate, false),
            (Operation::CreateVerification, false),
            (Operation::CreateInStructure, false),
        ];
        for (op, held) in table {
            assert_eq!(hold(op, &key, &closed).is_some(), held, "{op:?}");
            assert_eq!(hold(op, &key, &open), None, "{op:?} in a window");
            assert_eq!(hold(op, &pack, &closed), None, "{op:?} on a pack");
        }
    }
}
