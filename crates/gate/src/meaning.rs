//! What a request means for the policy, from the facts an enforcement point has about the
//! entry (its class by name, who created it in this session, its folder): the adjustments the
//! policy core's holds make for an entry's maker, and which makers are remembered. Every
//! enforcement point asks these of the [`Gate`] instead of deciding them itself.

use std::ffi::{OsStr, OsString};
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;

use imageguard_policy::classify::for_its_creator;
use imageguard_policy::holds::key_material_for_its_creator;
use imageguard_policy::{BackupReason, Class, RepoKind, Rules};

use crate::fresh::ProcessKey;
use crate::Gate;

impl Gate {
    /// `class` of an entry as the caller `pid` sees it, `creator` being the process that
    /// created it in this session (through this enforcement point), if one did: key material
    /// it created in this run is not held against it (borg init writes its config twice), a
    /// certified program on a locked volume finishes what it made in this run, and a sync tool
    /// may finish what it created (see [`for_its_creator`]).
    pub fn class_for_caller(&self, pid: u32, class: Class, creator: Option<ProcessKey>) -> Class {
        match &class {
            c if !c.is_backup() => class,
            _ if creator.is_none() || self.process(pid) != creator => class,
            // None of what a certified program made in this run (its temporary files, the copy
            // of borg's config a rewrite retired) is a kept backup yet, so the lock does not
            // hold it against its maker.
            _ if self.retention().is_some() && self.is_certified(pid) => Class::Ordinary,
            Class::Backup(BackupReason::KeyMaterial(_)) => {
                key_material_for_its_creator(class, true)
            }
            _ => for_its_creator(class, self.may_finish_its_own(pid)),
        }
    }

    /// The process behind `pid`, when what it creates in a folder is remembered as its own:
    /// anything a sync tool creates while sync tools are allowed, anything anyone creates on a
    /// volume with a retention lock (its maker finishes it in the same run), and by anyone,
    /// what it creates where key material lives (`key_material_here`: a repository's root,
    /// restic's `keys/`, where a temporary file becomes key material by a rename). Nothing is
    /// looked up otherwise, so creating costs others nothing.
    pub fn creator_to_note(&self, pid: u32, key_material_here: bool) -> Option<ProcessKey> {
        let locked = self.retention().is_some();
        if !key_material_here && !locked && !self.may_finish_its_own(pid) {
            return None;
        }
        self.process(pid)
    }

    /// `class` of `name` about to be deleted from a folder on a locked volume: a borg segment
    /// written after the repository's last commit is its rollback's to delete (see
    /// [`crate::borg_log`]); anything else keeps its class. The folder's facts are asked only
    /// where a lock applies to a borg segment's name: `parent_path()`, the path components that
    /// reach it from the volume's root, and `parent()`, a descriptor of it.
    pub fn uncommitted_segment<F: AsFd>(
        &self,
        class: Class,
        name: &OsStr,
        parent_path: impl FnOnce() -> Vec<OsString>,
        parent: impl FnOnce() -> Option<F>,
    ) -> Class {
        use imageguard_policy::borg_log::segment_number;
        if class != Class::Backup(BackupReason::Repository(RepoKind::Borg))
            || self.retention().is_none()
        {
            return class;
        }
        let Some(number) = segment_number(name.as_bytes()) else {
            return class;
        };
        let path = parent_path();
        let n = path.len();
        let in_data =
            n >= 2 && path[n - 2] == "data" && segment_number(path[n - 1].as_bytes()).is_some();
        match parent() {
            Some(fd) if in_data && crate::borg_log::is_uncommitted(fd.as_fd(), number) => {
                Class::Backup(BackupReason::Uncommitted(RepoKind::Borg))
            }
            _ => class,
        }
    }

    /// Whether creating the pattern-named `name` would duplicate a backup in its folder, for
    /// the caller `pid` (a copy of a backup next to the original confuses the backup program;
    /// the reference product refuses it): the class to check creating it against.
    /// `any_regular_file(is_backup)` says whether a regular file of the folder is one; it is
    /// asked only of an uncertified caller creating a pattern-named file, and may stop at the
    /// first.
    pub fn duplicate_class(
        &self,
        pid: u32,
        rules: &Rules,
        name: &OsStr,
        any_regular_file: impl FnOnce(&dyn Fn(&[u8]) -> bool) -> bool,
    ) -> Class {
        let Some(pattern) = rules.matching_pattern(name) else {
            return Class::Ordinary;
        };
        if self.is_certified(pid) {
            return Class::Ordinary;
        }
        let is_backup = |other: &[u8]| {
            other != name.as_bytes() && rules.matching_pattern(OsStr::from_bytes(other)).is_some()
        };
        if any_regular_file(&is_backup) {
            Class::Backup(BackupReason::Pattern(pattern.to_string()))
        } else {
            Class::Ordinary
        }
    }
}

/// The class of borg's `config` about to be replaced by a new one (`old` and `new`, their
/// contents when both could be read): part of the repository when the new one keeps its id
/// and key (borg check and borg config rewrite it), key material otherwise (see
/// [`imageguard_policy::holds::borg_config_rewrite`]).
pub fn borg_config_rewrite(
    class: Class,
    contents: impl FnOnce() -> Option<(Vec<u8>, Vec<u8>)>,
) -> Class {
    if class != Class::Backup(BackupReason::KeyMaterial(RepoKind::Borg)) {
        return class;
    }
    match contents() {
        Some((old, new)) => imageguard_policy::holds::borg_config_rewrite(class, &old, &new),
        None => class,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use imageguard_policy::{CallerFacts, Event, Untrusted, VolumeRef};

    use super::*;
    use crate::{CallerSource, EventSink};

    /// pid 1 is certified, pid 2 is not; each is its own process.
    struct Callers;
    impl CallerSource for Callers {
        fn resolve(&self, pid: u32) -> CallerFacts {
            match pid {
                1 => CallerFacts::certified(1, "/usr/bin/restic", "/usr/bin/restic"),
                _ => CallerFacts::untrusted(pid, "/usr/bin/rm", Untrusted::NotCertified),
            }
        }
        fn process(&self, pid: u32) -> Option<ProcessKey> {
            Some(ProcessKey {
                tgid: pid,
                start: 7,
            })
        }
    }
    struct Nowhere;
    impl EventSink for Nowhere {
        fn emit(&self, _: Event) {}
    }

    fn gate() -> Gate {
        let volume = VolumeRef {
            device: "/dev/loop9".into(),
            uuid: None,
            mount_point: "/backups".into(),
        };
        Gate::new(Arc::new(Callers), Arc::new(Nowhere), volume)
    }

    fn key(pid: u32) -> Option<ProcessKey> {
        Some(ProcessKey {
            tgid: pid,
            start: 7,
        })
    }

    #[test]
    fn an_entrys_class_for_its_maker() {
        let g = gate();
        let key_material = Class::Backup(BackupReason::KeyMaterial(RepoKind::Borg));
        let pattern = Class::Backup(BackupReason::Pattern("*.mrimg".into()));
        // (caller, class, who made it, the class it is judged by)
        let table = [
            // Key material its maker wrote in this run (borg init writes its config twice).
            (
                2,
                key_material.clone(),
                key(2),
                key_material_for_its_creator(key_material.clone(), true),
            ),
            (2, key_material.clone(), key(3), key_material.clone()),
            (2, key_material.clone(), None, key_material.clone()),
            // No sync tool, no lock: what an uncertified program made is a backup at once.
            (
                2,
                pattern.clone(),
                key(2),
                for_its_creator(pattern.clone(), false),
            ),
            (1, pattern.clone(), None, pattern.clone()),
            (2, Class::Ordinary, key(2), Class::Ordinary),
        ];
        for (pid, class, maker, want) in table {
            assert_eq!(
                g.class_for_caller(pid, class.clone(), maker),
                want,
                "pid {pid}, {class:?}, made by {maker:?}"
            );
        }
    }

    #[test]
    fn makers_are_remembered_only_where_it_matters() {
        let g = gate();
        assert_eq!(
            g.creator_to_note(2, true),
            key(2),
            "where key material lives"
        );
        assert_eq!(
            g.creator_to_note(2, false),
            None,
            "elsewhere, no lock, no sync tool"
        );
    }

    #[test]
    fn a_copy_next_to_a_backup_is_a_duplicate_for_the_uncertified_only() {
        let g = gate();
        let rules = Rules::with_defaults();
        let listed = |names: &'static [&'static str]| {
            move |is_backup: &dyn Fn(&[u8]) -> bool| names.iter().any(|n| is_backup(n.as_bytes()))
        };
        let dup = |pid, name: &str, names| {
            g.duplicate_class(pid, &rules, OsStr::new(name), listed(names))
        };
        assert!(dup(2, "copy.mrimg", &["a.mrimg"]).is_backup());
        assert!(!dup(2, "copy.mrimg", &["copy.mrimg", "notes.txt"]).is_backup());
        assert!(!dup(2, "notes.txt", &["a.mrimg"]).is_backup());
        assert!(!dup(1, "copy.mrimg", &["a.mrimg"]).is_backup());
    }

    #[test]
    fn borgs_config_rewritten_with_its_key_is_no_key_change() {
        let key_material = Class::Backup(BackupReason::KeyMaterial(RepoKind::Borg));
        let config = b"[repository]\nid = 0123\nkey = abc\n".to_vec();
        assert_eq!(
            borg_config_rewrite(key_material.clone(), || None),
            key_material,
            "unreadable: held as key material"
        );
        assert_eq!(
            borg_config_rewrite(Class::Ordinary, || unreachable!("not read")),
            Class::Ordinary
        );
        let same = borg_config_rewrite(key_material.clone(), || {
            Some((config.clone(), config.clone()))
        });
        assert_eq!(
            same,
            imageguard_policy::holds::borg_config_rewrite(key_material, &config, &config)
        );
    }
}
