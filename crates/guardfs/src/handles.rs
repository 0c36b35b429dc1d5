//! Open file and directory handles: the descriptors the guard holds for each FUSE `fh`.

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use fuser::BackingId;
use parking_lot::{Mutex, RwLock};

/// An open regular file.
pub struct OpenFile {
    pub fd: OwnedFd,
    /// Held while the handle is open so the kernel's passthrough backing stays valid.
    pub backing: Option<Arc<BackingId>>,
    /// The handle made its file (a create that found the name free): what its caller writes
    /// through it needs no further look, as with passthrough, where writes never come here.
    pub created: bool,
}

/// An open directory; the lock serialises seek + getdents on its descriptor.
pub struct OpenDir {
    pub fd: OwnedFd,
    pub lock: Mutex<()>,
}

pub struct HandleTable<T> {
    next: AtomicU64,
    map: RwLock<HashMap<u64, Arc<T>>>,
}

impl<T> Default for HandleTable<T> {
    fn default() -> Self {
        HandleTable {
            next: AtomicU64::new(1),
            map: RwLock::new(HashMap::new()),
        }
    }
}

impl<T> HandleTable<T> {
    pub fn insert(&self, v: T) -> u64 {
        let fh = self.next.fetch_add(1, Ordering::Relaxed);
        self.map.write().insert(fh, Arc::new(v));
        fh
    }

    pub fn get(&self, fh: u64) -> Option<Arc<T>> {
        self.map.read().get(&fh).cloned()
    }

    pub fn remove(&self, fh: u64) -> Option<Arc<T>> {
        self.map.write().remove(&fh)
    }

    pub fn len(&self) -> usize {
        self.map.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
