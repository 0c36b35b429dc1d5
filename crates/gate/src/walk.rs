//! Walking a volume's tree with zones (the policy's classification applied top-down), for the
//! protect-time scan (how many backup files, which backup inodes have other names, every
//! backup for the retention lock to date) and for "does this directory hold backups" before a
//! directory rename, through descriptors whichever enforcement point holds them.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::ops::ControlFlow;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use imageguard_policy::{EntryKind, Rules, Zone};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, Stat};

/// Entries visited before a walk gives up (and answers conservatively).
pub const WALK_LIMIT: u64 = 5_000_000;

pub fn entry_kind(mode: u32) -> EntryKind {
    match FileType::from_raw_mode(mode) {
        FileType::RegularFile => EntryKind::File,
        FileType::Directory => EntryKind::Directory,
        FileType::Symlink => EntryKind::Symlink,
        _ => EntryKind::Special,
    }
}

/// `name` in `dir`, not followed if it is a symbolic link.
fn lstat_at(dir: BorrowedFd<'_>, name: &OsStr) -> Option<Stat> {
    rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW).ok()
}

/// Which repository layout the directory `dir` has.
pub fn detect_repo(rules: &Rules, dir: BorrowedFd<'_>) -> Option<imageguard_policy::RepoKind> {
    rules.detect_repo(|name| lstat_at(dir, OsStr::new(name)).map(|st| entry_kind(st.st_mode)))
}

/// One visited non-directory entry.
pub struct Visit<'a> {
    pub zone: &'a Zone,
    pub name: &'a OsStr,
    pub stat: &'a Stat,
    /// The folder the entry is in.
    pub dir: BorrowedFd<'a>,
}

/// Depth-first walk below `dir` (whose zone is `zone` and volume-relative path `rel`), calling
/// `visit` for every non-directory entry. Returns Break when `visit` asked to stop or the walk
/// limit was reached; `Continue` after a complete walk.
pub fn walk(
    rules: &Rules,
    dir: BorrowedFd<'_>,
    zone: &Zone,
    rel: &mut Vec<Vec<u8>>,
    budget: &mut u64,
    visit: &mut dyn FnMut(Visit<'_>) -> ControlFlow<()>,
) -> ControlFlow<()> {
    let Ok(fd) = rustix::fs::openat(
        dir,
        c".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    ) else {
        return ControlFlow::Continue(());
    };
    let Ok(entries) = rustix::fs::Dir::read_from(&fd) else {
        return ControlFlow::Continue(());
    };
    for entry in entries {
        let Ok(entry) = entry else {
            return ControlFlow::Continue(());
        };
        let name = entry.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        if *budget == 0 {
            return ControlFlow::Break(());
        }
        *budget -= 1;
        let os = OsStr::from_bytes(name);
        let Some(st) = lstat_at(fd.as_fd(), os) else {
            continue;
        };
        if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
            let Ok(child): Result<OwnedFd, _> = rustix::fs::openat(
                &fd,
                os,
                OFlags::PATH | OFlags::NOFOLLOW | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            ) else {
                continue;
            };
            rel.push(name.to_vec());
            let comps: Vec<&[u8]> = rel.iter().map(|c| c.as_slice()).collect();
            let repo_here = if zone.repo.is_none() {
                detect_repo(rules, child.as_fd())
            } else {
                None
            };
            let child_zone = rules.child_zone(zone, os, &comps, repo_here);
            let flow = walk(rules, child.as_fd(), &child_zone, rel, budget, visit);
            rel.pop();
            flow?;
        } else {
            visit(Visit {
                zone,
                name: os,
                stat: &st,
                dir: fd.as_fd(),
            })?;
        }
    }
    ControlFlow::Continue(())
}

/// Result of the protect-time scan.
#[derive(Debug, Default)]
pub struct ScanResult {
    pub backup_files: u64,
    pub backup_bytes: u64,
    /// Backup inodes that have more than one name.
    pub linked_backups: HashSet<u64>,
    pub complete: bool,
}

/// Scan a whole volume from its root.
pub fn scan(rules: &Rules, root: BorrowedFd<'_>) -> ScanResult {
    scan_with(rules, root, None)
}

/// What [`scan_with`] hands every backup file it finds: its folder and name.
pub type EachBackup<'a> = &'a mut dyn FnMut(BorrowedFd<'_>, &OsStr);

/// [`scan`], handing `each_backup` (when given) every backup file (its folder and name), to
/// date them for the retention lock.
pub fn scan_with(
    rules: &Rules,
    root: BorrowedFd<'_>,
    mut each_backup: Option<EachBackup<'_>>,
) -> ScanResult {
    let mut res = ScanResult::default();
    let zone = rules.root_zone(detect_repo(rules, root));
    let mut budget = WALK_LIMIT;
    let flow = walk(rules, root, &zone, &mut Vec::new(), &mut budget, &mut |v| {
        if rules
            .classify(v.zone, v.name, entry_kind(v.stat.st_mode))
            .is_backup()
        {
            res.backup_files += 1;
            res.backup_bytes += v.stat.st_size as u64;
            if let Some(each) = each_backup.as_mut() {
                each(v.dir, v.name);
            }
            if v.stat.st_nlink > 1
                && FileType::from_raw_mode(v.stat.st_mode) == FileType::RegularFile
            {
                res.linked_backups.insert(v.stat.st_ino);
            }
        }
        ControlFlow::Continue(())
    });
    res.complete = flow.is_continue();
    res
}
