//! The guard filesystem: a passthrough of the backing tree, served through `*at` calls relative
//! to the backing root descriptor, that asks the policy gate before every modification of an
//! existing entry. Data I/O of opened files goes through kernel passthrough when available, so it
//! never reaches this process.

use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::io;
use std::ops::ControlFlow;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{
    BackingId, CopyFileRangeFlags, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags,
    Generation, INodeNo, InitFlags, KernelConfig, LockOwner, OpenFlags, RenameFlags, ReplyAttr,
    ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyLseek, ReplyOpen,
    ReplyStatfs, ReplyWrite, ReplyXattr, Request, TimeOrNow, WriteFlags,
};
use imageguard_policy::classify::is_verification_file;
use imageguard_policy::{BackupReason, Class, EntryKind, Operation, Rules, Zone};
use parking_lot::{Mutex, RwLock};

use crate::credentials::ActAs;
use crate::file_handle::FileHandle as KernelHandle;
use crate::fresh::FreshEntries;
use crate::gate::Gate;
use crate::handles::{HandleTable, OpenDir, OpenFile};
use crate::inode_store::{Inode, InodeFd, InodeStore, ROOT_ID};
use crate::sys::{self, Stat};
use crate::walk::{self, entry_kind};

/// State shared between the mounted filesystem and the service that reports on it.
pub struct GuardShared {
    pub gate: Arc<Gate>,
    pub rules: RwLock<Arc<Rules>>,
    /// Backup files found by the protect-time scan, adjusted as backups are created and deleted.
    pub backup_files: AtomicU64,
    /// Backup inodes with more than one name.
    pub linked_backups: Mutex<HashSet<u64>>,
    /// Kernel passthrough negotiated and working.
    pub passthrough: AtomicBool,
    /// Bumped whenever a repository marker or a directory name changes; cached zones older than
    /// this are recomputed.
    pub layout_epoch: AtomicU64,
    /// Entries created in this session, and by whom.
    pub fresh: FreshEntries,
}

impl GuardShared {
    pub fn new(gate: Arc<Gate>, rules: Rules) -> GuardShared {
        GuardShared {
            gate,
            rules: RwLock::new(Arc::new(rules)),
            backup_files: AtomicU64::new(0),
            linked_backups: Mutex::new(HashSet::new()),
            passthrough: AtomicBool::new(false),
            layout_epoch: AtomicU64::new(1),
            fresh: FreshEntries::default(),
        }
    }

    pub fn rules(&self) -> Arc<Rules> {
        self.rules.read().clone()
    }

    /// Install new rules (destinations changed); every cached zone is recomputed.
    pub fn set_rules(&self, rules: Rules) {
        *self.rules.write() = Arc::new(rules);
        self.layout_epoch.fetch_add(1, Ordering::Relaxed);
    }
}

pub struct GuardFs {
    store: InodeStore,
    shared: Arc<GuardShared>,
    files: HandleTable<OpenFile>,
    dirs: HandleTable<OpenDir>,
    mount_point: PathBuf,
    want_passthrough: bool,
    /// Validity of names in the kernel's caches (attributes: see [`GuardFs::attr_ttl`]).
    ttl: Duration,
}

type Res<T> = Result<T, i32>;

/// The changes one `setattr` asks for.
struct AttrChange {
    mode: Option<u32>,
    uid: Option<u32>,
    gid: Option<u32>,
    size: Option<u64>,
    atime: Option<TimeOrNow>,
    mtime: Option<TimeOrNow>,
    fh: Option<FileHandle>,
}

fn err(e: io::Error) -> i32 {
    sys::errno_of(&e)
}

fn time(sec: i64, nsec: i64) -> SystemTime {
    if sec >= 0 {
        UNIX_EPOCH + Duration::new(sec as u64, nsec as u32)
    } else {
        UNIX_EPOCH - Duration::from_secs(sec.unsigned_abs()) + Duration::from_nanos(nsec as u64)
    }
}

fn file_type(mode: u32) -> FileType {
    match mode & libc::S_IFMT {
        libc::S_IFDIR => FileType::Directory,
        libc::S_IFLNK => FileType::Symlink,
        libc::S_IFIFO => FileType::NamedPipe,
        libc::S_IFSOCK => FileType::Socket,
        libc::S_IFCHR => FileType::CharDevice,
        libc::S_IFBLK => FileType::BlockDevice,
        _ => FileType::RegularFile,
    }
}

fn dirent_type(t: u8) -> FileType {
    match t {
        libc::DT_DIR => FileType::Directory,
        libc::DT_LNK => FileType::Symlink,
        libc::DT_FIFO => FileType::NamedPipe,
        libc::DT_SOCK => FileType::Socket,
        libc::DT_CHR => FileType::CharDevice,
        libc::DT_BLK => FileType::BlockDevice,
        _ => FileType::RegularFile,
    }
}

fn timespec(t: Option<TimeOrNow>) -> libc::timespec {
    match t {
        None => libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_OMIT,
        },
        Some(TimeOrNow::Now) => libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_NOW,
        },
        Some(TimeOrNow::SpecificTime(t)) => match t.duration_since(UNIX_EPOCH) {
            Ok(d) => libc::timespec {
                tv_sec: d.as_secs() as i64,
                tv_nsec: d.subsec_nanos() as i64,
            },
            Err(e) => {
                let d = e.duration();
                let mut sec = -(d.as_secs() as i64);
                let mut nsec = -(d.subsec_nanos() as i64);
                if nsec < 0 {
                    sec -= 1;
                    nsec += 1_000_000_000;
                }
                libc::timespec {
                    tv_sec: sec,
                    tv_nsec: nsec,
                }
            }
        },
    }
}

/// Whether opening with `flags` can modify the file.
fn open_modifies(flags: i32) -> Option<Operation> {
    let access = flags & libc::O_ACCMODE;
    if flags & libc::O_TRUNC != 0 {
        Some(Operation::Truncate)
    } else if access == libc::O_WRONLY && flags & libc::O_APPEND != 0 {
        Some(Operation::OpenAppend)
    } else if access != libc::O_RDONLY || flags & libc::O_APPEND != 0 {
        Some(Operation::OpenWrite)
    } else {
        None
    }
}

/// A caller without root opening a set-user-ID (or group-executable set-group-ID) file for
/// writing loses those bits, as the kernel would drop them on its first write. Under
/// HANDLE_KILLPRIV_V2 that is the guard's job, and passthrough writes run with the guard's
/// (root) credentials, under which the backing file system keeps them.
fn kill_suid_on_write_open(req: &Request, fd: BorrowedFd<'_>) -> Res<()> {
    if req.uid() == 0 {
        return Ok(());
    }
    let st = sys::fstat_fd(fd).map_err(err)?;
    let mode = st.st_mode & 0o7777;
    let mut kill = 0;
    if mode & libc::S_ISUID != 0 {
        kill |= libc::S_ISUID;
    }
    if mode & libc::S_ISGID != 0 && mode & libc::S_IXGRP != 0 {
        kill |= libc::S_ISGID;
    }
    if kill != 0 && st.st_mode & libc::S_IFMT == libc::S_IFREG {
        sys::fchmod_path(fd, mode & !kill).map_err(err)?;
    }
    Ok(())
}

/// Answer a request that returns nothing.
fn reply_empty(reply: ReplyEmpty, r: Res<()>) {
    match r {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(Errno::from_i32(e)),
    }
}

fn cname(name: &OsStr) -> Res<std::ffi::CString> {
    sys::cstr(name).map_err(err)
}

/// Longest validity of attributes in the kernel's caches: a certified writer can change a file's
/// times through a shared mapping of its backing file without the kernel's FUSE inode hearing of
/// it, so attributes are re-read after a second even where names are cached for long. (The
/// reply to a create carries one validity for both; a new file is empty, and the resize a
/// mapping needs goes through setattr, whose reply is short-lived again.)
const MAX_ATTR_TTL: Duration = Duration::from_secs(1);

impl GuardFs {
    fn attr_ttl(&self) -> Duration {
        self.ttl.min(MAX_ATTR_TTL)
    }

    pub fn new(
        root_fd: OwnedFd,
        mount_point: PathBuf,
        shared: Arc<GuardShared>,
        ttl: Duration,
        want_passthrough: bool,
    ) -> io::Result<GuardFs> {
        let st = sys::fstat_fd(root_fd.as_fd())?;
        Ok(GuardFs {
            store: InodeStore::new(root_fd, st.st_ino)?,
            shared,
            files: HandleTable::default(),
            dirs: HandleTable::default(),
            mount_point,
            want_passthrough,
            ttl,
        })
    }

    /// A descriptor of an inode's backing file (reopened from its handle when it holds none).
    fn fd<'a>(&self, inode: &'a Inode) -> Res<InodeFd<'a>> {
        self.store.open(inode).map_err(err)
    }

    fn inode(&self, ino: INodeNo) -> Res<Arc<Inode>> {
        self.store.get(ino.0).ok_or(libc::ESTALE)
    }

    fn attr(&self, st: &Stat) -> FileAttr {
        FileAttr {
            ino: INodeNo(self.store.nodeid_of(st.st_ino)),
            size: st.st_size as u64,
            blocks: st.st_blocks as u64,
            atime: time(st.st_atime, st.st_atime_nsec),
            mtime: time(st.st_mtime, st.st_mtime_nsec),
            ctime: time(st.st_ctime, st.st_ctime_nsec),
            crtime: UNIX_EPOCH,
            kind: file_type(st.st_mode),
            perm: (st.st_mode & 0o7777) as u16,
            nlink: st.st_nlink as u32,
            uid: st.st_uid,
            gid: st.st_gid,
            rdev: st.st_rdev as u32,
            blksize: st.st_blksize as u32,
            flags: 0,
        }
    }

    /// Resolve `name` in `parent` to an inode (taking one kernel reference on it).
    fn lookup_inode(&self, parent: &Arc<Inode>, name: &OsStr) -> Res<(Arc<Inode>, Stat)> {
        let c = cname(name)?;
        let fd = sys::openat(
            self.fd(parent)?.as_fd(),
            &c,
            libc::O_PATH | libc::O_NOFOLLOW,
            0,
        )
        .map_err(err)?;
        let st = sys::fstat_fd(fd.as_fd()).map_err(err)?;
        let inode = self.store.insert_or_ref(
            fd,
            st.st_ino,
            st.st_mode & libc::S_IFMT,
            parent.nodeid,
            name,
        );
        if st.st_mode & libc::S_IFMT == libc::S_IFREG && st.st_nlink > 1 {
            let rules = self.shared.rules();
            if rules
                .classify(&self.zone_of(parent), name, EntryKind::File)
                .is_backup()
            {
                self.shared.linked_backups.lock().insert(st.st_ino);
            }
        }
        Ok((inode, st))
    }

    /// The zone of directory `dir`, computed from its ancestors and cached per layout epoch.
    fn zone_of(&self, dir: &Arc<Inode>) -> Arc<Zone> {
        let epoch = self.shared.layout_epoch.load(Ordering::Relaxed);
        if let Some((e, z)) = dir.zone.lock().as_ref() {
            if *e == epoch {
                return z.clone();
            }
        }
        let rules = self.shared.rules();
        let zone = if dir.nodeid == ROOT_ID {
            match self.store.open(dir) {
                Ok(fd) => rules.root_zone(walk::detect_repo(&rules, fd.as_fd())),
                Err(_) => rules.root_zone(None),
            }
        } else {
            let (parent_id, name) = dir.link();
            match (self.store.get(parent_id), self.store.components(dir.nodeid)) {
                (Some(parent), Some(comps)) => {
                    let pz = self.zone_of(&parent);
                    let rel: Vec<&[u8]> = comps.iter().map(|c| c.as_bytes()).collect();
                    let here = match (&pz.repo, self.store.open(dir)) {
                        (None, Ok(fd)) => walk::detect_repo(&rules, fd.as_fd()),
                        _ => None,
                    };
                    rules.child_zone(&pz, &name, &rel, here)
                }
                _ => {
                    log::warn!(
                        "no ancestry for directory node {}; treating it as plain",
                        dir.nodeid
                    );
                    Zone::plain()
                }
            }
        };
        let zone = Arc::new(zone);
        *dir.zone.lock() = Some((epoch, zone.clone()));
        zone
    }

    fn bump_layout(&self) {
        self.shared.layout_epoch.fetch_add(1, Ordering::Relaxed);
    }

    fn bump_layout_if_marker(&self, name: &OsStr) {
        if Rules::is_repo_marker(name) {
            self.bump_layout();
        }
    }

    /// Class of entry `name` (with stat `st`) in `parent`, for operations on the name itself.
    fn classify_name(&self, parent: &Arc<Inode>, name: &OsStr, st: &Stat) -> Class {
        let rules = self.shared.rules();
        let zone = self.zone_of(parent);
        rules.classify(&zone, name, entry_kind(st.st_mode))
    }

    /// Class of a directory for rename: structural, or holding backups anywhere below.
    fn classify_dir_for_move(&self, parent: &Arc<Inode>, name: &OsStr) -> Class {
        let rules = self.shared.rules();
        let pz = self.zone_of(parent);
        let structural = rules.classify_directory(&pz, name);
        if structural.is_backup() {
            return structural;
        }
        // A directory that cannot be examined is treated as holding backups (fail closed).
        let unknown = Class::Backup(BackupReason::ContainsBackups);
        let Ok(c) = sys::cstr(name) else {
            return unknown;
        };
        let Ok(fd) = self.store.open(parent).and_then(|pfd| {
            sys::openat(
                pfd.as_fd(),
                &c,
                libc::O_PATH | libc::O_NOFOLLOW | libc::O_DIRECTORY,
                0,
            )
        }) else {
            return unknown;
        };
        let mut rel: Vec<Vec<u8>> = self
            .store
            .components(parent.nodeid)
            .unwrap_or_default()
            .into_iter()
            .map(|c| c.into_vec())
            .collect();
        rel.push(name.as_bytes().to_vec());
        let comps: Vec<&[u8]> = rel.iter().map(|c| c.as_slice()).collect();
        let here = if pz.repo.is_none() {
            walk::detect_repo(&rules, fd.as_fd())
        } else {
            None
        };
        let zone = rules.child_zone(&pz, name, &comps, here);
        // Under a destination every file is a backup. In a repository, a folder that is not
        // part of its structure (above) is a lock folder: the walk finds no backup in it.
        if zone.destination {
            return Class::Backup(BackupReason::ContainsBackups);
        }
        let mut budget = walk::WALK_LIMIT;
        let flow = walk::walk(&rules, fd.as_fd(), &zone, &mut rel, &mut budget, &mut |v| {
            if rules
                .classify(v.zone, v.name, entry_kind(v.stat.st_mode))
                .is_backup()
            {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        });
        if flow.is_break() {
            Class::Backup(BackupReason::ContainsBackups)
        } else {
            Class::Ordinary
        }
    }

    /// Whether the process behind `req` created the entry with backing inode `ino` through
    /// the guard in this session.
    fn same_creator(&self, req: &Request, ino: u64) -> bool {
        self.shared
            .fresh
            .creator(ino)
            .is_some_and(|creator| self.shared.gate.process(req.pid()) == Some(creator))
    }

    /// `class` of the entry with backing inode `ino`, as the caller of `req` sees it (see
    /// [`Gate::class_for_caller`]).
    fn for_caller(&self, req: &Request, class: Class, ino: u64) -> Class {
        if !class.is_backup() {
            return class;
        }
        self.shared
            .gate
            .class_for_caller(req.pid(), class, self.shared.fresh.creator(ino))
    }

    /// The class of borg's `config` (`new_name` in `new_parent`) about to be replaced by `name`
    /// in `parent` (see [`imageguard_gate::meaning::borg_config_rewrite`]).
    fn borg_config_rewrite(
        &self,
        class: Class,
        parent: &Arc<Inode>,
        name: &std::ffi::CStr,
        new_parent: &Arc<Inode>,
        new_name: &std::ffi::CStr,
    ) -> Class {
        let read = |dir: &Arc<Inode>, n: &std::ffi::CStr| -> Option<Vec<u8>> {
            let fd = sys::openat(
                self.fd(dir).ok()?.as_fd(),
                n,
                libc::O_RDONLY | libc::O_NOFOLLOW,
                0,
            )
            .ok()?;
            let mut buf = Vec::new();
            std::io::Read::read_to_end(
                &mut std::io::Read::take(std::fs::File::from(fd), 1 << 20),
                &mut buf,
            )
            .ok()?;
            Some(buf)
        };
        imageguard_gate::meaning::borg_config_rewrite(class, || {
            Some((read(new_parent, new_name)?, read(parent, name)?))
        })
    }

    /// `class` of `name` in `parent` about to be deleted on a locked volume (see
    /// [`Gate::uncommitted_segment`]).
    fn uncommitted_segment(&self, class: Class, parent: &Arc<Inode>, name: &OsStr) -> Class {
        self.shared.gate.uncommitted_segment(
            class,
            name,
            || self.store.components(parent.nodeid).unwrap_or_default(),
            || self.fd(parent).ok(),
        )
    }

    /// The process behind `req`, when what it creates in `parent` is remembered as its own
    /// (see [`Gate::creator_to_note`]).
    fn creator_to_note(
        &self,
        req: &Request,
        parent: &Arc<Inode>,
    ) -> Option<crate::fresh::ProcessKey> {
        let key_material = self.zone_of(parent).holds_key_material();
        self.shared.gate.creator_to_note(req.pid(), key_material)
    }

    /// Remember that the caller of `req` created `name` in `parent` (when it matters).
    fn note_created(&self, req: &Request, parent: &Arc<Inode>, name: &OsStr) {
        let Ok(c) = cname(name) else { return };
        let Ok(st) = self
            .fd(parent)
            .and_then(|fd| sys::lstatat(fd.as_fd(), &c).map_err(err))
        else {
            return;
        };
        if let Some(creator) = self.creator_to_note(req, parent) {
            self.shared.fresh.note(st.st_ino, creator);
        }
    }

    /// Class of an inode for the caller of `req` (see [`GuardFs::classify_content`]).
    fn classify_content_for(&self, req: &Request, inode: &Arc<Inode>) -> Class {
        let class = self.classify_content(inode);
        if !class.is_backup() || inode.nodeid == ROOT_ID {
            return class;
        }
        match self
            .store
            .open(inode)
            .and_then(|fd| sys::fstat_fd(fd.as_fd()))
        {
            Ok(st) => self.for_caller(req, class, st.st_ino),
            Err(_) => class,
        }
    }

    /// Class of an inode for operations on its content or attributes: by the name it was
    /// reached through, or as a hard link of a backup.
    fn classify_content(&self, inode: &Arc<Inode>) -> Class {
        if inode.nodeid == ROOT_ID {
            // The volume root is itself a repository or a destination, or ordinary.
            let zone = self.zone_of(inode);
            return match (&zone.repo, zone.destination) {
                (Some((kind, _)), _) => Class::Backup(BackupReason::Repository(*kind)),
                (None, true) => Class::Backup(BackupReason::Destination),
                (None, false) => Class::Ordinary,
            };
        }
        let (parent_id, name) = inode.link();
        let Ok(st) = self
            .store
            .open(inode)
            .and_then(|fd| sys::fstat_fd(fd.as_fd()))
        else {
            return Class::Ordinary;
        };
        let class = match self.store.get(parent_id) {
            Some(parent) => {
                if inode.is_dir() {
                    self.shared
                        .rules()
                        .classify_directory(&self.zone_of(&parent), &name)
                } else {
                    self.classify_name(&parent, &name, &st)
                }
            }
            None => self
                .shared
                .rules()
                .classify(&Zone::plain(), &name, entry_kind(st.st_mode)),
        };
        if !class.is_backup()
            && st.st_nlink > 1
            && self.shared.linked_backups.lock().contains(&st.st_ino)
        {
            return Class::Backup(BackupReason::SameInodeAsBackup);
        }
        class
    }

    /// Would creating pattern-named `name` in `parent` duplicate a backup there? (See
    /// [`Gate::duplicate_class`]; the folder is listed only for an uncertified caller.)
    fn duplicate_class(&self, req: &Request, parent: &Arc<Inode>, name: &OsStr) -> Class {
        let rules = self.shared.rules();
        self.shared
            .gate
            .duplicate_class(req.pid(), &rules, name, |is_backup| {
                self.any_regular_file(parent, is_backup)
            })
    }

    /// Whether a regular file in `parent` satisfies `wanted` (listed until the first; false
    /// when it cannot be listed).
    fn any_regular_file(&self, parent: &Arc<Inode>, wanted: &dyn Fn(&[u8]) -> bool) -> bool {
        let Ok(fd) = self
            .store
            .open(parent)
            .and_then(|pfd| sys::reopen(pfd.as_fd(), libc::O_RDONLY | libc::O_DIRECTORY))
        else {
            return false;
        };
        let mut buf = vec![0u8; 32 * 1024];
        while let Ok(n) = sys::getdents64(fd.as_fd(), &mut buf) {
            if n == 0 {
                break;
            }
            if sys::dirents(&buf[..n]).any(|e| e.kind == libc::DT_REG && wanted(e.name)) {
                return true;
            }
        }
        false
    }

    /// Before creating `name` (of `kind`) in `parent` (a file, folder, link, or a rename or
    /// hard link onto a free name): the verification file at the volume's root is certified
    /// programs' alone (anyone else is refused and logged as 310), and so is every new entry
    /// of a repository's or backup destination's structure (see [`Rules::classify_new`]).
    fn check_create(
        &self,
        req: &Request,
        parent: &Arc<Inode>,
        name: &OsStr,
        kind: EntryKind,
    ) -> Res<()> {
        let zone = self.zone_of(parent);
        let (op, class) = if is_verification_file(&zone, name) {
            (
                Operation::CreateVerification,
                Class::Backup(BackupReason::Verification),
            )
        } else {
            (
                Operation::CreateInStructure,
                self.shared.rules().classify_new(&zone, name, kind),
            )
        };
        self.check(req, op, &class, || self.path_of(parent.nodeid, Some(name)))
    }

    fn path_of(&self, parent: u64, name: Option<&OsStr>) -> String {
        let mut p = self.mount_point.clone();
        match self.store.components(parent) {
            Some(comps) => comps.iter().for_each(|c| p.push(c)),
            None => p.push("?"),
        }
        if let Some(n) = name {
            p.push(n);
        }
        p.to_string_lossy().into_owned()
    }

    fn inode_path(&self, inode: &Inode) -> String {
        self.path_of(inode.nodeid, None)
    }

    fn check(
        &self,
        req: &Request,
        op: Operation,
        class: &Class,
        path: impl FnOnce() -> String,
    ) -> Res<()> {
        self.shared.gate.check(req.pid(), op, class, path)
    }

    /// [`GuardFs::check`] for an operation the retention lock may hold; `key()` gives the
    /// entry's handle (asked for only when a lock applies).
    fn check_aged(
        &self,
        req: &Request,
        op: Operation,
        class: &Class,
        key: impl FnOnce() -> Option<Vec<u8>>,
        path: impl FnOnce() -> String,
    ) -> Res<()> {
        self.shared.gate.check_aged(req.pid(), op, class, key, path)
    }

    /// The handle key of an inode (see [`KernelHandle::key`]).
    fn key_of(&self, inode: &Arc<Inode>) -> Option<Vec<u8>> {
        let fd = self.store.open(inode).ok()?;
        KernelHandle::of(fd.as_fd()).ok().map(|h| h.key())
    }

    /// The handle key of `name` in `parent`.
    fn key_at(&self, parent: &Arc<Inode>, name: &std::ffi::CStr) -> Option<Vec<u8>> {
        let fd = sys::openat(
            self.fd(parent).ok()?.as_fd(),
            name,
            libc::O_PATH | libc::O_NOFOLLOW,
            0,
        )
        .ok()?;
        KernelHandle::of(fd.as_fd()).ok().map(|h| h.key())
    }

    /// Open our own descriptor for an inode: read-write when possible, so that one passthrough
    /// backing can serve every later open of the inode (the kernel checks each caller's access
    /// mode on its own file).
    fn open_backing_fd(&self, inode: &Inode, flags: i32) -> Res<OwnedFd> {
        let keep = flags & (libc::O_TRUNC | libc::O_NOATIME);
        let keep = if self.passthrough() {
            keep
        } else {
            keep | (flags & (libc::O_DIRECT | libc::O_SYNC | libc::O_DSYNC))
        };
        match sys::reopen(
            self.fd(inode)?.as_fd(),
            libc::O_RDWR | libc::O_LARGEFILE | keep,
        ) {
            Ok(fd) => Ok(fd),
            Err(e)
                if matches!(
                    sys::errno_of(&e),
                    libc::EACCES | libc::EPERM | libc::EROFS | libc::ETXTBSY | libc::EISDIR
                ) =>
            {
                sys::reopen(
                    self.fd(inode)?.as_fd(),
                    (flags & libc::O_ACCMODE) | libc::O_LARGEFILE | keep,
                )
                .map_err(err)
            }
            Err(e) => Err(err(e)),
        }
    }

    fn passthrough(&self) -> bool {
        self.shared.passthrough.load(Ordering::Relaxed)
    }

    /// The passthrough backing shared by all open handles of `inode`, created from `fd` if none.
    fn shared_backing(
        &self,
        inode: &Inode,
        fd: &OwnedFd,
        open: impl FnOnce(&OwnedFd) -> io::Result<BackingId>,
    ) -> Option<Arc<BackingId>> {
        if !self.passthrough() || inode.kind != libc::S_IFREG {
            return None;
        }
        let mut slot = inode.backing.lock();
        if let Some(b) = slot.upgrade() {
            return Some(b);
        }
        match open(fd) {
            Ok(b) => {
                let b = Arc::new(b);
                *slot = Arc::downgrade(&b);
                Some(b)
            }
            Err(e) => {
                log::warn!("kernel passthrough unavailable ({e}); serving data I/O in userspace");
                self.shared.passthrough.store(false, Ordering::Relaxed);
                None
            }
        }
    }

    fn reply_entry(&self, parent: &Arc<Inode>, name: &OsStr, reply: ReplyEntry) {
        match self.lookup_inode(parent, name) {
            Ok((inode, st)) => reply.entry_with_ttls(
                &self.attr_ttl(),
                &self.ttl,
                &self.attr(&st),
                Generation(inode.generation),
            ),
            Err(e) => reply.error(Errno::from_i32(e)),
        }
    }

    fn note_backup_created(&self, parent: &Arc<Inode>, name: &OsStr, kind: EntryKind) {
        if self
            .shared
            .rules()
            .classify(&self.zone_of(parent), name, kind)
            .is_backup()
        {
            self.shared.backup_files.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn do_setattr(&self, req: &Request, inode: &Arc<Inode>, change: AttrChange) -> Res<Stat> {
        let AttrChange {
            mode,
            uid,
            gid,
            size,
            atime,
            mtime,
            fh,
        } = change;
        let op = if size.is_some() {
            Operation::Truncate
        } else {
            Operation::SetAttributes
        };
        let class = self.classify_content_for(req, inode);
        self.check_aged(
            req,
            op,
            &class,
            || self.key_of(inode),
            || self.inode_path(inode),
        )?;
        if let Some(mode) = mode {
            if inode.kind != libc::S_IFLNK {
                sys::fchmod_path(self.fd(inode)?.as_fd(), mode & 0o7777).map_err(err)?;
            }
        }
        if uid.is_some() || gid.is_some() {
            sys::fchown_fd(self.fd(inode)?.as_fd(), uid, gid).map_err(err)?;
        }
        if let Some(size) = size {
            kill_suid_on_write_open(req, self.fd(inode)?.as_fd())?;
            match fh.and_then(|fh| self.files.get(fh.0)) {
                Some(f) => sys::ftruncate(f.fd.as_fd(), size).map_err(err)?,
                None => {
                    let fd =
                        sys::reopen(self.fd(inode)?.as_fd(), libc::O_WRONLY | libc::O_LARGEFILE)
                            .map_err(err)?;
                    sys::ftruncate(fd.as_fd(), size).map_err(err)?;
                }
            }
        }
        if atime.is_some() || mtime.is_some() {
            let times = [timespec(atime), timespec(mtime)];
            if inode.kind == libc::S_IFLNK {
                let (parent_id, name) = inode.link();
                let parent = self.store.get(parent_id).ok_or(libc::ESTALE)?;
                let c = cname(&name)?;
                let r = unsafe {
                    libc::utimensat(
                        self.fd(&parent)?.as_fd().as_raw_fd(),
                        c.as_ptr(),
                        times.as_ptr(),
                        libc::AT_SYMLINK_NOFOLLOW,
                    )
                };
                if r < 0 {
                    return Err(err(io::Error::last_os_error()));
                }
            } else {
                sys::utimens_fd(self.fd(inode)?.as_fd(), &times).map_err(err)?;
            }
        }
        sys::fstat_fd(self.fd(inode)?.as_fd()).map_err(err)
    }

    #[allow(clippy::too_many_arguments)]
    fn do_rename(
        &self,
        req: &Request,
        parent: &Arc<Inode>,
        name: &OsStr,
        newparent: &Arc<Inode>,
        newname: &OsStr,
        flags: u32,
    ) -> Res<()> {
        let exchange = flags & libc::RENAME_EXCHANGE != 0;
        let c_old = cname(name)?;
        let c_new = cname(newname)?;
        let src = sys::lstatat(self.fd(parent)?.as_fd(), &c_old).map_err(err)?;
        let src_is_dir = src.st_mode & libc::S_IFMT == libc::S_IFDIR;
        let src_class = if src_is_dir {
            self.classify_dir_for_move(parent, name)
        } else {
            self.for_caller(req, self.classify_name(parent, name, &src), src.st_ino)
        };
        let dst = sys::lstatat(self.fd(newparent)?.as_fd(), &c_new).ok();
        // A file given a free name in its own folder under which it is still a backup (a
        // temporary file moved into place), or a folder given a free name in its own folder
        // (rsnapshot's rotation, daily.0 to daily.1), is not renamed away; but a folder that is
        // or holds a retention lock's folder is (the lock is by path).
        let in_folder = !exchange
            && dst.is_none()
            && parent.nodeid == newparent.nodeid
            && if src_is_dir {
                // Only a lock tells the two apart for a folder.
                self.shared.gate.retention().is_some_and(|r| {
                    !r.lock_folder_within(Path::new(&self.path_of(parent.nodeid, Some(name))))
                })
            } else {
                self.classify_name(newparent, newname, &src).is_backup()
            };
        let op = if exchange {
            Operation::Exchange
        } else if in_folder {
            Operation::RenameInFolder
        } else {
            Operation::Rename
        };
        self.check_aged(
            req,
            op,
            &src_class,
            || self.key_at(parent, &c_old),
            || self.path_of(parent.nodeid, Some(name)),
        )?;
        let mut dst_is_dir = false;
        // Key material replaced by a copy that keeps the key: the old one is retired.
        let mut retires_key = false;
        match &dst {
            Some(d) => {
                dst_is_dir = d.st_mode & libc::S_IFMT == libc::S_IFDIR;
                let dst_class = if dst_is_dir {
                    self.classify_dir_for_move(newparent, newname)
                } else {
                    let class =
                        self.for_caller(req, self.classify_name(newparent, newname, d), d.st_ino);
                    let was_key = matches!(class, Class::Backup(BackupReason::KeyMaterial(_)));
                    let class = self.borg_config_rewrite(class, parent, &c_old, newparent, &c_new);
                    retires_key =
                        was_key && !matches!(class, Class::Backup(BackupReason::KeyMaterial(_)));
                    class
                };
                let op = if exchange {
                    Operation::Exchange
                } else {
                    Operation::Replace
                };
                self.check_aged(
                    req,
                    op,
                    &dst_class,
                    || self.key_at(newparent, &c_new),
                    || self.path_of(newparent.nodeid, Some(newname)),
                )?;
            }
            None => {
                // What arrives under a free name is checked as created there (the
                // verification file, a repository's or destination's structure).
                self.check_create(req, newparent, newname, entry_kind(src.st_mode))?;
                if !src_is_dir && !src_class.is_backup() {
                    let dup = self.duplicate_class(req, newparent, newname);
                    self.check(req, Operation::CreateDuplicate, &dup, || {
                        self.path_of(newparent.nodeid, Some(newname))
                    })?;
                }
            }
        }
        sys::renameat2(
            self.fd(parent)?.as_fd(),
            &c_old,
            self.fd(newparent)?.as_fd(),
            &c_new,
            flags,
        )
        .map_err(err)?;
        if let (Some(d), false) = (&dst, exchange) {
            if d.st_nlink <= 1 || dst_is_dir {
                self.shared.fresh.forget(d.st_ino);
            } else if retires_key {
                // Still reachable by another name (borg's `config.old`, which borg erases
                // next): the process that retired it may erase it; it holds no key the new
                // one does not.
                if let Some(creator) = self.shared.gate.process(req.pid()) {
                    self.shared.fresh.note(d.st_ino, creator);
                }
            }
        }
        if let Some(moved) = self.store.get(self.store.nodeid_of(src.st_ino)) {
            moved.set_link(newparent.nodeid, newname);
        }
        if exchange {
            if let Some(d) = &dst {
                if let Some(other) = self.store.get(self.store.nodeid_of(d.st_ino)) {
                    other.set_link(parent.nodeid, name);
                }
            }
        }
        if src_is_dir || dst_is_dir || Rules::is_repo_marker(name) || Rules::is_repo_marker(newname)
        {
            self.bump_layout();
        }
        // A file renamed onto a free name where key material lives is key material this
        // process added (borg's first `config`, before the folder even looked like a
        // repository): its own to rewrite in this run, as if it had created it there.
        // On a locked volume, where everything created is noted, only what it made stays its
        // own (a young file renamed there is not made its own by the rename).
        if dst.is_none()
            && !src_is_dir
            && self.zone_of(newparent).holds_key_material()
            && (self.shared.gate.retention().is_none() || self.same_creator(req, src.st_ino))
        {
            if let Some(creator) = self.shared.gate.process(req.pid()) {
                self.shared.fresh.note(src.st_ino, creator);
            }
        }
        Ok(())
    }
}

impl Filesystem for GuardFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> io::Result<()> {
        let caps = config.capabilities();
        // HANDLE_KILLPRIV_V2 lets the kernel mark inodes "no security attributes" (SB_NOSEC):
        // without it, every write() costs a GETXATTR(security.capability) round trip even under
        // passthrough. In exchange the guard drops set-user/group-ID bits itself (see
        // `kill_suid_on_write_open`); the backing file system drops file capabilities.
        for flag in [
            InitFlags::FUSE_ATOMIC_O_TRUNC,
            InitFlags::FUSE_PARALLEL_DIROPS,
            InitFlags::FUSE_HANDLE_KILLPRIV_V2,
        ] {
            if caps.contains(flag) {
                let _ = config.add_capabilities(flag);
            }
        }
        if self.want_passthrough
            && caps.contains(InitFlags::FUSE_PASSTHROUGH)
            && config.add_capabilities(InitFlags::FUSE_PASSTHROUGH).is_ok()
            && config.set_max_stack_depth(1).is_ok()
        {
            self.shared.passthrough.store(true, Ordering::Relaxed);
        }
        let _ = config.set_max_background(64);
        let _ = config.set_congestion_threshold(48);
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        match self.inode(parent) {
            Ok(p) => self.reply_entry(&p, name, reply),
            Err(e) => reply.error(Errno::from_i32(e)),
        }
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        self.store.forget(ino.0, nlookup);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let r = self
            .inode(ino)
            .and_then(|i| sys::fstat_fd(self.fd(&i)?.as_fd()).map_err(err));
        match r {
            Ok(st) => reply.attr(&self.attr_ttl(), &self.attr(&st)),
            Err(e) => reply.error(Errno::from_i32(e)),
        }
    }

    fn setattr(
        &self,
        req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let change = AttrChange {
            mode,
            uid,
            gid,
            size,
            atime,
            mtime,
            fh,
        };
        let r = self
            .inode(ino)
            .and_then(|i| self.do_setattr(req, &i, change));
        match r {
            Ok(st) => reply.attr(&self.attr_ttl(), &self.attr(&st)),
            Err(e) => reply.error(Errno::from_i32(e)),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        match self
            .inode(ino)
            .and_then(|i| sys::readlink_fd(self.fd(&i)?.as_fd()).map_err(err))
        {
            Ok(t) => reply.data(&t),
            Err(e) => reply.error(Errno::from_i32(e)),
        }
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        rdev: u32,
        reply: ReplyEntry,
    ) {
        let r = (|| {
            let p = self.inode(parent)?;
            let c = cname(name)?;
            self.check_create(req, &p, name, entry_kind(mode))?;
            if mode & libc::S_IFMT == libc::S_IFREG {
                let dup = self.duplicate_class(req, &p, name);
                self.check(req, Operation::CreateDuplicate, &dup, || {
                    self.path_of(p.nodeid, Some(name))
                })?;
            }
            {
                let _as = ActAs::caller(req.uid(), req.gid());
                sys::mknodat(self.fd(&p)?.as_fd(), &c, mode, rdev as u64).map_err(err)?;
            }
            self.note_created(req, &p, name);
            self.bump_layout_if_marker(name);
            Ok(p)
        })();
        match r {
            Ok(p) => self.reply_entry(&p, name, reply),
            Err(e) => reply.error(Errno::from_i32(e)),
        }
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        let r = (|| {
            let p = self.inode(parent)?;
            let c = cname(name)?;
            self.check_create(req, &p, name, EntryKind::Directory)?;
            {
                let _as = ActAs::caller(req.uid(), req.gid());
                sys::mkdirat(self.fd(&p)?.as_fd(), &c, mode).map_err(err)?;
            }
            self.note_created(req, &p, name);
            self.bump_layout_if_marker(name);
            Ok(p)
        })();
        match r {
            Ok(p) => self.reply_entry(&p, name, reply),
            Err(e) => reply.error(Errno::from_i32(e)),
        }
    }

    fn unlink(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let r = (|| {
            let p = self.inode(parent)?;
            let c = cname(name)?;
            let st = sys::lstatat(self.fd(&p)?.as_fd(), &c).map_err(err)?;
            let class = self.for_caller(req, self.classify_name(&p, name, &st), st.st_ino);
            let key = self
                .shared
                .gate
                .retention()
                .and_then(|_| self.key_at(&p, &c));
            let class = self.uncommitted_segment(class, &p, name);
            self.check_aged(
                req,
                Operation::Delete,
                &class,
                || key.clone(),
                || self.path_of(p.nodeid, Some(name)),
            )?;
            sys::unlinkat(self.fd(&p)?.as_fd(), &c, 0).map_err(err)?;
            if st.st_nlink <= 1 {
                self.shared.fresh.forget(st.st_ino);
                if let (Some(r), Some(k)) = (self.shared.gate.retention(), &key) {
                    r.gone(k);
                }
            }
            if class.is_backup() {
                let _ = self.shared.backup_files.fetch_update(
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                    |n| n.checked_sub(1),
                );
            }
            self.bump_layout_if_marker(name);
            Ok(())
        })();
        reply_empty(reply, r);
    }

    fn rmdir(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let r = (|| {
            let p = self.inode(parent)?;
            let c = cname(name)?;
            let class = self
                .shared
                .rules()
                .classify_directory(&self.zone_of(&p), name);
            self.check(req, Operation::RemoveDirectory, &class, || {
                self.path_of(p.nodeid, Some(name))
            })?;
            let st = sys::lstatat(self.fd(&p)?.as_fd(), &c).ok();
            sys::unlinkat(self.fd(&p)?.as_fd(), &c, libc::AT_REMOVEDIR).map_err(err)?;
            if let Some(st) = st {
                self.shared.fresh.forget(st.st_ino);
            }
            self.bump_layout();
            Ok(())
        })();
        reply_empty(reply, r);
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let r = (|| {
            let p = self.inode(parent)?;
            let c = cname(link_name)?;
            self.check_create(req, &p, link_name, EntryKind::Symlink)?;
            let t = cname(target.as_os_str())?;
            {
                let _as = ActAs::caller(req.uid(), req.gid());
                sys::symlinkat(&t, self.fd(&p)?.as_fd(), &c).map_err(err)?;
            }
            self.note_created(req, &p, link_name);
            Ok(p)
        })();
        match r {
            Ok(p) => self.reply_entry(&p, link_name, reply),
            Err(e) => reply.error(Errno::from_i32(e)),
        }
    }

    fn rename(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let r = (|| {
            let p = self.inode(parent)?;
            let np = self.inode(newparent)?;
            self.do_rename(req, &p, name, &np, newname, flags.bits())
        })();
        reply_empty(reply, r);
    }

    fn link(
        &self,
        req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        let r = (|| {
            let inode = self.inode(ino)?;
            let np = self.inode(newparent)?;
            self.check_create(req, &np, newname, entry_kind(inode.kind))?;
            let class = self.classify_content_for(req, &inode);
            self.check(req, Operation::HardLink, &class, || self.inode_path(&inode))?;
            let rules = self.shared.rules();
            let new_class = rules.classify(&self.zone_of(&np), newname, entry_kind(inode.kind));
            if new_class.is_backup() {
                // A backup-named alias would let writes through the old name reach a backup.
                self.check(req, Operation::HardLink, &new_class, || {
                    self.path_of(np.nodeid, Some(newname))
                })?;
            }
            let c = cname(newname)?;
            sys::link_fd(self.fd(&inode)?.as_fd(), self.fd(&np)?.as_fd(), &c).map_err(err)?;
            if class.is_backup() || new_class.is_backup() {
                let st = sys::fstat_fd(self.fd(&inode)?.as_fd()).map_err(err)?;
                self.shared.linked_backups.lock().insert(st.st_ino);
            }
            Ok(np)
        })();
        match r {
            Ok(np) => self.reply_entry(&np, newname, reply),
            Err(e) => reply.error(Errno::from_i32(e)),
        }
    }

    fn open(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let r = (|| {
            let inode = self.inode(ino)?;
            if let Some(op) = open_modifies(flags.0) {
                let class = self.classify_content_for(req, &inode);
                self.check_aged(
                    req,
                    op,
                    &class,
                    || self.key_of(&inode),
                    || self.inode_path(&inode),
                )?;
            }
            let fd = self.open_backing_fd(&inode, flags.0)?;
            if open_modifies(flags.0).is_some() {
                kill_suid_on_write_open(req, fd.as_fd())?;
            }
            Ok((inode, fd))
        })();
        match r {
            Ok((inode, fd)) => {
                let backing = self.shared_backing(&inode, &fd, |fd| reply.open_backing(fd));
                let fh = self.files.insert(OpenFile {
                    fd,
                    backing: backing.clone(),
                    created: false,
                });
                match backing {
                    Some(b) => reply.opened_passthrough(FileHandle(fh), FopenFlags::empty(), &b),
                    None => reply.opened(FileHandle(fh), FopenFlags::empty()),
                }
            }
            Err(e) => reply.error(Errno::from_i32(e)),
        }
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let r = (|| {
            let p = self.inode(parent)?;
            let c = cname(name)?;
            self.check_create(req, &p, name, EntryKind::File)?;
            let created = {
                let _as = ActAs::caller(req.uid(), req.gid());
                sys::openat(
                    self.fd(&p)?.as_fd(),
                    &c,
                    libc::O_CREAT | libc::O_EXCL | libc::O_RDWR | libc::O_LARGEFILE,
                    mode & 0o7777,
                )
            };
            let fd = match created {
                Ok(fd) => {
                    let dup = self.duplicate_class(req, &p, name);
                    if let Err(e) = self.check(req, Operation::CreateDuplicate, &dup, || {
                        self.path_of(p.nodeid, Some(name))
                    }) {
                        let _ = sys::unlinkat(self.fd(&p)?.as_fd(), &c, 0);
                        return Err(e);
                    }
                    self.note_backup_created(&p, name, EntryKind::File);
                    if let Some(r) = self.shared.gate.retention() {
                        if let Ok(h) = KernelHandle::of(fd.as_fd()) {
                            r.seen(&h.key());
                        }
                    }
                    if let Some(creator) = self.creator_to_note(req, &p) {
                        if let Ok(st) = sys::fstat_fd(fd.as_fd()) {
                            self.shared.fresh.note(st.st_ino, creator);
                        }
                    }
                    self.bump_layout_if_marker(name);
                    (fd, true)
                }
                Err(e) if sys::errno_of(&e) == libc::EEXIST && flags & libc::O_EXCL == 0 => {
                    // The kernel thought the name was free; it is not: this is an open of an
                    // existing file and is checked as one.
                    let st = sys::lstatat(self.fd(&p)?.as_fd(), &c).map_err(err)?;
                    if let Some(op) = open_modifies(flags) {
                        let class = self.classify_name(&p, name, &st);
                        self.check_aged(
                            req,
                            op,
                            &class,
                            || self.key_at(&p, &c),
                            || self.path_of(p.nodeid, Some(name)),
                        )?;
                    }
                    let (inode, _) = self.lookup_inode(&p, name)?;
                    let r = self.open_backing_fd(&inode, flags);
                    self.store.forget(inode.nodeid, 1);
                    (r?, false)
                }
                Err(e) => return Err(err(e)),
            };
            let (inode, st) = self.lookup_inode(&p, name)?;
            Ok((inode, st, fd))
        })();
        match r {
            Ok((inode, st, (fd, created))) => {
                let backing = self.shared_backing(&inode, &fd, |fd| reply.open_backing(fd));
                let fh = self.files.insert(OpenFile {
                    fd,
                    backing: backing.clone(),
                    created,
                });
                let attr = self.attr(&st);
                match backing {
                    Some(b) => reply.created_passthrough(
                        &self.ttl,
                        &attr,
                        Generation(inode.generation),
                        FileHandle(fh),
                        FopenFlags::empty(),
                        &b,
                    ),
                    None => reply.created(
                        &self.ttl,
                        &attr,
                        Generation(inode.generation),
                        FileHandle(fh),
                        FopenFlags::empty(),
                    ),
                }
            }
            Err(e) => reply.error(Errno::from_i32(e)),
        }
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let Some(f) = self.files.get(fh.0) else {
            return reply.error(Errno::EBADF);
        };
        let mut buf = vec![0u8; size as usize];
        match sys::pread(f.fd.as_fd(), &mut buf, offset) {
            Ok(n) => reply.data(&buf[..n]),
            Err(e) => reply.error(Errno::from_i32(err(e))),
        }
    }

    fn write(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let r = (|| {
            let inode = self.inode(ino)?;
            let f = self.files.get(fh.0).ok_or(libc::EBADF)?;
            // Decided when the handle was made: the file it created is its caller's to fill
            // (passthrough writes never come here at all).
            if !f.created {
                let class = self.classify_content_for(req, &inode);
                self.check_aged(
                    req,
                    Operation::Write,
                    &class,
                    || self.key_of(&inode),
                    || self.inode_path(&inode),
                )?;
            }
            sys::pwrite(f.fd.as_fd(), data, offset).map_err(err)
        })();
        match r {
            Ok(n) => reply.written(n as u32),
            Err(e) => reply.error(Errno::from_i32(e)),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        // Nothing to flush (our descriptors are not duplicated per caller); ENOSYS tells the
        // kernel to stop sending flushes, saving a round trip on every close.
        reply.error(Errno::ENOSYS);
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.files.remove(fh.0);
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        datasync: bool,
        reply: ReplyEmpty,
    ) {
        let r = self
            .files
            .get(fh.0)
            .ok_or(libc::EBADF)
            .and_then(|f| sys::fsync(f.fd.as_fd(), datasync).map_err(err));
        reply_empty(reply, r);
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let r = self.inode(ino).and_then(|i| {
            sys::reopen(self.fd(&i)?.as_fd(), libc::O_RDONLY | libc::O_DIRECTORY).map_err(err)
        });
        match r {
            Ok(fd) => {
                let fh = self.dirs.insert(OpenDir {
                    fd,
                    lock: Mutex::new(()),
                });
                reply.opened(FileHandle(fh), FopenFlags::empty());
            }
            Err(e) => reply.error(Errno::from_i32(e)),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let Some(d) = self.dirs.get(fh.0) else {
            return reply.error(Errno::EBADF);
        };
        let _guard = d.lock.lock();
        if let Err(e) = sys::lseek(d.fd.as_fd(), offset as i64, libc::SEEK_SET) {
            return reply.error(Errno::from_i32(err(e)));
        }
        let mut buf = vec![0u8; 32 * 1024];
        let n = match sys::getdents64(d.fd.as_fd(), &mut buf) {
            Ok(n) => n,
            Err(e) => return reply.error(Errno::from_i32(err(e))),
        };
        for e in sys::dirents(&buf[..n]) {
            let ino = INodeNo(self.store.nodeid_of(e.ino));
            if reply.add(
                ino,
                e.off as u64,
                dirent_type(e.kind),
                OsStr::from_bytes(e.name),
            ) {
                break;
            }
        }
        reply.ok();
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.dirs.remove(fh.0);
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        datasync: bool,
        reply: ReplyEmpty,
    ) {
        let r = self
            .dirs
            .get(fh.0)
            .ok_or(libc::EBADF)
            .and_then(|d| sys::fsync(d.fd.as_fd(), datasync).map_err(err));
        reply_empty(reply, r);
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let root = self.store.root();
        match self
            .store
            .open(&root)
            .and_then(|fd| sys::fstatvfs(fd.as_fd()))
        {
            Ok(s) => reply.statfs(
                s.f_blocks,
                s.f_bfree,
                s.f_bavail,
                s.f_files,
                s.f_ffree,
                s.f_bsize as u32,
                s.f_namemax as u32,
                s.f_frsize as u32,
            ),
            Err(e) => reply.error(Errno::from_i32(err(e))),
        }
    }

    fn setxattr(
        &self,
        req: &Request,
        ino: INodeNo,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        let r = (|| {
            let inode = self.inode(ino)?;
            let class = self.classify_content_for(req, &inode);
            self.check(req, Operation::SetXattr, &class, || self.inode_path(&inode))?;
            if inode.kind == libc::S_IFLNK {
                return Err(libc::EPERM);
            }
            sys::setxattr(self.fd(&inode)?.as_fd(), &cname(name)?, value, flags).map_err(err)
        })();
        reply_empty(reply, r);
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        let r = (|| {
            let inode = self.inode(ino)?;
            if inode.kind == libc::S_IFLNK {
                return Err(libc::ENODATA);
            }
            let c = cname(name)?;
            let mut buf = vec![0u8; size as usize];
            let n = sys::getxattr(self.fd(&inode)?.as_fd(), &c, &mut buf).map_err(err)?;
            buf.truncate(n);
            Ok((n, buf))
        })();
        match r {
            Ok((n, _)) if size == 0 => reply.size(n as u32),
            Ok((_, buf)) => reply.data(&buf),
            Err(e) => reply.error(Errno::from_i32(e)),
        }
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        let r = (|| {
            let inode = self.inode(ino)?;
            if inode.kind == libc::S_IFLNK {
                return Ok((0, Vec::new()));
            }
            let mut buf = vec![0u8; size as usize];
            let n = sys::listxattr(self.fd(&inode)?.as_fd(), &mut buf).map_err(err)?;
            buf.truncate(n);
            Ok((n, buf))
        })();
        match r {
            Ok((n, _)) if size == 0 => reply.size(n as u32),
            Ok((_, buf)) => reply.data(&buf),
            Err(e) => reply.error(Errno::from_i32(e)),
        }
    }

    fn removexattr(&self, req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let r = (|| {
            let inode = self.inode(ino)?;
            let class = self.classify_content_for(req, &inode);
            self.check(req, Operation::RemoveXattr, &class, || {
                self.inode_path(&inode)
            })?;
            if inode.kind == libc::S_IFLNK {
                return Err(libc::EPERM);
            }
            sys::removexattr(self.fd(&inode)?.as_fd(), &cname(name)?).map_err(err)
        })();
        reply_empty(reply, r);
    }

    fn fallocate(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        let r = (|| {
            let inode = self.inode(ino)?;
            let f = self.files.get(fh.0).ok_or(libc::EBADF)?;
            let class = self.classify_content_for(req, &inode);
            self.check_aged(
                req,
                Operation::Fallocate,
                &class,
                || self.key_of(&inode),
                || self.inode_path(&inode),
            )?;
            sys::fallocate(f.fd.as_fd(), mode, offset, length).map_err(err)
        })();
        reply_empty(reply, r);
    }

    fn lseek(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: i64,
        whence: i32,
        reply: ReplyLseek,
    ) {
        match self.files.get(fh.0) {
            Some(f) => match sys::lseek(f.fd.as_fd(), offset, whence) {
                Ok(o) => reply.offset(o),
                Err(e) => reply.error(Errno::from_i32(err(e))),
            },
            None => reply.error(Errno::EBADF),
        }
    }

    fn copy_file_range(
        &self,
        req: &Request,
        _ino_in: INodeNo,
        fh_in: FileHandle,
        offset_in: u64,
        ino_out: INodeNo,
        fh_out: FileHandle,
        offset_out: u64,
        len: u64,
        _flags: CopyFileRangeFlags,
        reply: ReplyWrite,
    ) {
        let r = (|| {
            let out = self.inode(ino_out)?;
            let fi = self.files.get(fh_in.0).ok_or(libc::EBADF)?;
            let fo = self.files.get(fh_out.0).ok_or(libc::EBADF)?;
            let class = self.classify_content_for(req, &out);
            self.check_aged(
                req,
                Operation::CopyInto,
                &class,
                || self.key_of(&out),
                || self.inode_path(&out),
            )?;
            sys::copy_file_range(fi.fd.as_fd(), offset_in, fo.fd.as_fd(), offset_out, len)
                .map_err(err)
        })();
        match r {
            Ok(n) => reply.written(n as u32),
            Err(e) => reply.error(Errno::from_i32(e)),
        }
    }
}

/// Names are byte strings; keep `OsString` conversions in one place.
trait IntoVec {
    fn into_vec(self) -> Vec<u8>;
}

impl IntoVec for OsString {
    fn into_vec(self) -> Vec<u8> {
        std::os::unix::ffi::OsStringExt::into_vec(self)
    }
}
