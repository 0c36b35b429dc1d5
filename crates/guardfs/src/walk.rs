//! Walking a backing directory tree with zones, for the protect-time scan (how many backup files,
//! which backup inodes have other names) and for "does this directory hold backups" before a
//! directory rename.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::ops::ControlFlow;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;

use imageguard_policy::{EntryKind, Rules, Zone};

use crate::sys;

/// Entries visited before a walk gives up (and answers conservatively).
pub const WALK_LIMIT: u64 = 5_000_000;

pub fn entry_kind(mode: u32) -> EntryKind {
    match mode & libc::S_IFMT {
        libc::S_IFREG => EntryKind::File,
        libc::S_IFDIR => EntryKind::Directory,
        libc::S_IFLNK => EntryKind::Symlink,
        _ => EntryKind::Special,
    }
}

/// Which repository layout the directory `dir` has.
pub fn detect_repo(rules: &Rules, dir: BorrowedFd<'_>) -> Option<imageguard_policy::RepoKind> {
    rules.detect_repo(|name| {
        let c = sys::cstr(OsStr::new(name)).ok()?;
        sys::lstatat(dir, &c).ok().map(|st| entry_kind(st.st_mode))
    })
}

/// One visited non-directory entry.
pub struct Visit<'a> {
    pub zone: &'a Zone,
    pub name: &'a OsStr,
    pub stat: &'a sys::Stat,
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
    let Ok(fd) = sys::openat(dir, c".", libc::O_RDONLY | libc::O_DIRECTORY, 0) else {
        return ControlFlow::Continue(());
    };
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match sys::getdents64(fd.as_fd(), &mut buf) {
            Ok(0) | Err(_) => return ControlFlow::Continue(()),
            Ok(n) => n,
        };
        let names: Vec<(Vec<u8>, u8)> = sys::dirents(&buf[..n])
            .filter(|e| e.name != b"." && e.name != b"..")
            .map(|e| (e.name.to_vec(), e.kind))
            .collect();
        for (name, _) in names {
            if *budget == 0 {
                return ControlFlow::Break(());
            }
            *budget -= 1;
            let os = OsStr::from_bytes(&name);
            let Ok(c) = sys::cstr(os) else { continue };
            let Ok(st) = sys::lstatat(fd.as_fd(), &c) else {
                continue;
            };
            if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
                let Ok(child) = sys::openat(
                    fd.as_fd(),
                    &c,
                    libc::O_PATH | libc::O_NOFOLLOW | libc::O_DIRECTORY,
                    0,
                ) else {
                    continue;
                };
                rel.push(name.clone());
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
    }
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

/// [`scan`], handing `each_backup` (when given) the handle key of every backup file, to date
/// them for the retention lock.
pub fn scan_with(
    rules: &Rules,
    root: BorrowedFd<'_>,
    mut each_backup: Option<&mut dyn FnMut(Vec<u8>)>,
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
                if let Some(key) = sys::cstr(v.name)
                    .ok()
                    .and_then(|c| sys::openat(v.dir, &c, libc::O_PATH | libc::O_NOFOLLOW, 0).ok())
                    .and_then(|fd| crate::file_handle::FileHandle::of(fd.as_fd()).ok())
                {
                    each(key.key());
                }
            }
            if v.stat.st_nlink > 1 && v.stat.st_mode & libc::S_IFMT == libc::S_IFREG {
                res.linked_backups.insert(v.stat.st_ino);
            }
        }
        ControlFlow::Continue(())
    });
    res.complete = flow.is_continue();
    res
}
