//! What a request means for the policy, from the facts an enforcement point has about the
//! entry (its class by name, who created it in this session, its folder): the adjustments the
//! policy core's holds make for an entry's maker, and which makers are remembered. Every
//! enforcement point asks these of the [`Gate`] instead of deciding them itself.

use std::ffi::OsStr;
use std::os::fd::BorrowedFd;
use std::os::unix::ffi::OsStrExt;

use imageguard_policy::classify::for_its_creator;
use imageguard_policy::holds::key_material_for_its_creator;
use imageguard_policy::{BackupReason, Class, RepoKind};

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

    /// `class` of `name` about to be deleted from the folder `parent` (reached by the path
    /// components `parent_path` from the volume's root) on a locked volume: a borg segment
    /// written after the repository's last commit is its rollback's to delete (see
    /// [`crate::borg_log`]); anything else keeps its class. Looked into only where a lock
    /// applies.
    pub fn uncommitted_segment(
        &self,
        class: Class,
        parent: BorrowedFd<'_>,
        parent_path: &[&OsStr],
        name: &OsStr,
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
        let n = parent_path.len();
        let in_data = n >= 2
            && parent_path[n - 2] == "data"
            && segment_number(parent_path[n - 1].as_bytes()).is_some();
        if in_data && crate::borg_log::is_uncommitted(parent, number) {
            Class::Backup(BackupReason::Uncommitted(RepoKind::Borg))
        } else {
            class
        }
    }
}
