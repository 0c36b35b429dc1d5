//! The guard's inodes: each FUSE node id maps to an `O_PATH` descriptor of the backing file,
//! the name it was last reached by (for paths in events and for zones), its cached zone when it
//! is a directory, and the passthrough backing shared by its open handles.
//!
//! Node ids are the backing inode numbers (the root is node 1), so `stat` shows the backing
//! inode numbers and hard links stay one inode. Holding the `O_PATH` descriptor keeps the backing
//! inode allocated, so its number cannot be reused while the kernel may still name it.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use fuser::BackingId;
use imageguard_policy::Zone;
use parking_lot::{Mutex, RwLock};

/// FUSE's root node id.
pub const ROOT_ID: u64 = 1;

/// Deepest directory chain walked when rebuilding a path.
const MAX_DEPTH: usize = 4096;

pub struct Inode {
    pub nodeid: u64,
    pub fd: OwnedFd,
    /// `st_mode & S_IFMT`.
    pub kind: u32,
    lookups: AtomicU64,
    link: Mutex<(u64, OsString)>,
    /// Cached zone of a directory, with the layout epoch it was computed at.
    pub zone: Mutex<Option<(u64, Arc<Zone>)>>,
    /// The passthrough backing shared by all open handles of this inode.
    pub backing: Mutex<Weak<BackingId>>,
}

impl Inode {
    pub fn is_dir(&self) -> bool {
        self.kind == libc::S_IFDIR
    }

    /// Parent node id and name this inode was last reached by.
    pub fn link(&self) -> (u64, OsString) {
        self.link.lock().clone()
    }

    pub fn set_link(&self, parent: u64, name: &OsStr) {
        *self.link.lock() = (parent, name.to_os_string());
    }
}

pub struct InodeStore {
    map: RwLock<HashMap<u64, Arc<Inode>>>,
    /// Backing inode number of the root directory.
    root_ino: u64,
}

impl InodeStore {
    pub fn new(root_fd: OwnedFd, root_ino: u64) -> InodeStore {
        let root = Arc::new(Inode {
            nodeid: ROOT_ID,
            fd: root_fd,
            kind: libc::S_IFDIR,
            lookups: AtomicU64::new(1),
            link: Mutex::new((ROOT_ID, OsString::new())),
            zone: Mutex::new(None),
            backing: Mutex::new(Weak::new()),
        });
        let mut map = HashMap::new();
        map.insert(ROOT_ID, root);
        InodeStore {
            map: RwLock::new(map),
            root_ino,
        }
    }

    /// Node id for a backing inode number.
    pub fn nodeid_of(&self, ino: u64) -> u64 {
        if ino == self.root_ino {
            ROOT_ID
        } else if ino == ROOT_ID {
            // Never seen on ext4/xfs/btrfs (inode 1 is internal); keep it distinct from the root.
            1 << 63
        } else {
            ino
        }
    }

    pub fn get(&self, nodeid: u64) -> Option<Arc<Inode>> {
        self.map.read().get(&nodeid).cloned()
    }

    pub fn root(&self) -> Arc<Inode> {
        self.get(ROOT_ID).expect("root inode is never forgotten")
    }

    /// Record a lookup of `name` in `parent` that resolved to `fd` (an O_PATH descriptor).
    pub fn insert_or_ref(
        &self,
        fd: OwnedFd,
        st_ino: u64,
        kind: u32,
        parent: u64,
        name: &OsStr,
    ) -> Arc<Inode> {
        let nodeid = self.nodeid_of(st_ino);
        let mut map = self.map.write();
        if let Some(existing) = map.get(&nodeid) {
            existing.lookups.fetch_add(1, Ordering::Relaxed);
            if nodeid != ROOT_ID {
                existing.set_link(parent, name);
            }
            return existing.clone();
        }
        let inode = Arc::new(Inode {
            nodeid,
            fd,
            kind,
            lookups: AtomicU64::new(1),
            link: Mutex::new((parent, name.to_os_string())),
            zone: Mutex::new(None),
            backing: Mutex::new(Weak::new()),
        });
        map.insert(nodeid, inode.clone());
        inode
    }

    /// The kernel dropped `n` references.
    pub fn forget(&self, nodeid: u64, n: u64) {
        if nodeid == ROOT_ID {
            return;
        }
        let mut map = self.map.write();
        if let Some(inode) = map.get(&nodeid) {
            let before = inode.lookups.fetch_sub(
                n.min(inode.lookups.load(Ordering::Relaxed)),
                Ordering::Relaxed,
            );
            if before <= n {
                map.remove(&nodeid);
            }
        }
    }

    /// Path components from the root to `nodeid` (empty for the root), by last-known names.
    pub fn components(&self, nodeid: u64) -> Option<Vec<OsString>> {
        let mut out = Vec::new();
        let mut cur = nodeid;
        for _ in 0..MAX_DEPTH {
            if cur == ROOT_ID {
                out.reverse();
                return Some(out);
            }
            let inode = self.get(cur)?;
            let (parent, name) = inode.link();
            out.push(name);
            cur = parent;
        }
        None
    }

    pub fn len(&self) -> usize {
        self.map.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Descriptor of the root, for whole-volume work (scans, statfs).
    pub fn root_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        // SAFETY of lifetime: the root inode lives as long as the store.
        let root = self.root();
        let raw = std::os::fd::AsRawFd::as_raw_fd(&root.fd.as_fd());
        unsafe { std::os::fd::BorrowedFd::borrow_raw(raw) }
    }
}
