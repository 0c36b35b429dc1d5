//! The guard's inodes: each FUSE node id maps to the backing file, the name it was last reached
//! by (for paths in events and for zones), its cached zone when it is a directory, and the
//! passthrough backing shared by its open handles.
//!
//! Node ids are the backing inode numbers (the root is node 1), so `stat` shows the backing
//! inode numbers and hard links stay one inode. Directories keep an `O_PATH` descriptor (they
//! are the `*at` anchors of almost every request); other files keep a kernel file handle and are
//! reopened on demand, so a volume with millions of files does not need millions of descriptors.
//! The handle doubles as the FUSE generation: when a deleted file's inode number is reused, the
//! new file gets a new generation and the kernel drops the stale inode.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use fuser::BackingId;
use imageguard_policy::Zone;
use parking_lot::{Mutex, RwLock};

use crate::file_handle::FileHandle;

/// FUSE's root node id.
pub const ROOT_ID: u64 = 1;

/// Deepest directory chain walked when rebuilding a path.
const MAX_DEPTH: usize = 4096;

/// How an inode reaches its backing file.
pub enum Backing {
    Fd(OwnedFd),
    Handle(FileHandle),
}

/// A descriptor of an inode's backing file: borrowed when the inode holds one, otherwise opened
/// from its handle for the duration of one request.
pub enum InodeFd<'a> {
    Borrowed(BorrowedFd<'a>),
    Owned(OwnedFd),
}

impl AsFd for InodeFd<'_> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            InodeFd::Borrowed(b) => *b,
            InodeFd::Owned(o) => o.as_fd(),
        }
    }
}

pub struct Inode {
    pub nodeid: u64,
    /// FUSE generation (0 when the inode holds a descriptor, which pins its number).
    pub generation: u64,
    file: Backing,
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
    fn new(
        nodeid: u64,
        file: Backing,
        generation: u64,
        kind: u32,
        parent: u64,
        name: &OsStr,
    ) -> Inode {
        Inode {
            nodeid,
            generation,
            file,
            kind,
            lookups: AtomicU64::new(1),
            link: Mutex::new((parent, name.to_os_string())),
            zone: Mutex::new(None),
            backing: Mutex::new(Weak::new()),
        }
    }

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
    /// Any descriptor on the backing file system, for `open_by_handle_at`.
    mount_fd: OwnedFd,
    /// Kernel references still held on earlier generations of reused node ids; forgets are
    /// charged to them first, so a live inode is never dropped while the kernel references it.
    graveyard: Mutex<HashMap<u64, u64>>,
}

impl InodeStore {
    pub fn new(root_fd: OwnedFd, root_ino: u64) -> io::Result<InodeStore> {
        let mount_fd = root_fd.try_clone()?;
        let root = Arc::new(Inode::new(
            ROOT_ID,
            Backing::Fd(root_fd),
            0,
            libc::S_IFDIR,
            ROOT_ID,
            OsStr::new(""),
        ));
        let mut map = HashMap::new();
        map.insert(ROOT_ID, root);
        Ok(InodeStore {
            map: RwLock::new(map),
            root_ino,
            mount_fd,
            graveyard: Mutex::new(HashMap::new()),
        })
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

    /// A descriptor (O_PATH) of the inode's backing file.
    pub fn open<'a>(&self, inode: &'a Inode) -> io::Result<InodeFd<'a>> {
        match &inode.file {
            Backing::Fd(fd) => Ok(InodeFd::Borrowed(fd.as_fd())),
            Backing::Handle(h) => h
                .open(self.mount_fd.as_fd(), libc::O_PATH | libc::O_NOFOLLOW)
                .map(InodeFd::Owned),
        }
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
        // Directories keep their descriptor; other files trade it for a handle when they can.
        let (file, generation) = if kind == libc::S_IFDIR {
            (Backing::Fd(fd), 0)
        } else {
            match FileHandle::of(fd.as_fd()) {
                Ok(h) => {
                    let g = h.generation();
                    (Backing::Handle(h), g)
                }
                Err(_) => (Backing::Fd(fd), 0),
            }
        };
        let mut map = self.map.write();
        if let Some(existing) = map.get(&nodeid) {
            if existing.generation == generation || nodeid == ROOT_ID {
                existing.lookups.fetch_add(1, Ordering::Relaxed);
                if nodeid != ROOT_ID {
                    existing.set_link(parent, name);
                }
                return existing.clone();
            }
            // The inode number was reused by a new file: the new generation tells the kernel.
            *self.graveyard.lock().entry(nodeid).or_insert(0) +=
                existing.lookups.load(Ordering::Relaxed);
        }
        let inode = Arc::new(Inode::new(nodeid, file, generation, kind, parent, name));
        map.insert(nodeid, inode.clone());
        inode
    }

    /// The kernel dropped `n` references.
    pub fn forget(&self, nodeid: u64, n: u64) {
        if nodeid == ROOT_ID {
            return;
        }
        let mut map = self.map.write();
        let mut n = n;
        {
            let mut graves = self.graveyard.lock();
            if let Some(g) = graves.get_mut(&nodeid) {
                let taken = (*g).min(n);
                *g -= taken;
                n -= taken;
                if *g == 0 {
                    graves.remove(&nodeid);
                }
            }
        }
        if n == 0 {
            return;
        }
        if let Some(inode) = map.get(&nodeid) {
            let current = inode.lookups.load(Ordering::Relaxed);
            if current <= n {
                map.remove(&nodeid);
            } else {
                inode.lookups.store(current - n, Ordering::Relaxed);
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
}
