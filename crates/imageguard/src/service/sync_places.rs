//! The sync rules' facts about this machine's folders ([`SyncPlaces`]): the setting "allow
//! sync tools", which mounts are this service's guards (by device number, so a look-alike FUSE
//! mount or a path bent by a symlink or bind mount counts for what it is), which are network
//! file systems, and the saved definitions' backup destinations (every one, and those of
//! definitions an administrator vetted). The service refreshes the
//! snapshot whenever its volumes or destinations change; the guards' threads only read it.
//!
//! Looking a path up can pass through a guard of this service (a FUSE request to itself), so
//! every look-up runs on its own thread and is abandoned after [`LOOKUP_TIMEOUT`]: an answer
//! that does not come is an unprotected, local folder (the rules then refuse).

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use imageguard_gate::SyncPlaces;
use imageguard_policy::definitions::SavedDefinitions;
use imageguard_policy::sync_tools::rules::Place;
use imageguard_volume::fsid::is_network_fstype;
use imageguard_volume::mountinfo::MountTable;
use parking_lot::RwLock;

/// How long one look-up of a folder may take.
pub const LOOKUP_TIMEOUT: Duration = Duration::from_secs(2);

/// The service's protected volumes and destinations, as the sync rules see them.
#[derive(Default)]
pub struct ServicePlaces {
    allowed: AtomicBool,
    snapshot: RwLock<Snapshot>,
}

#[derive(Default)]
struct Snapshot {
    /// Device number (major, minor) of each guard mount → whether its volume is a network
    /// file system.
    guards: HashMap<(u32, u32), bool>,
    destinations: SavedDefinitions,
    /// Destinations of definitions nobody approved, and the definition naming each.
    unapproved: Vec<(PathBuf, String)>,
}

fn dev_pair(dev: u64) -> (u32, u32) {
    (rustix::fs::major(dev), rustix::fs::minor(dev))
}

/// Run `f` on its own thread; `None` if it does not finish within [`LOOKUP_TIMEOUT`].
fn bounded<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("sync-lookup".into())
        .spawn(move || {
            let _ = tx.send(f());
        })
        .ok()?;
    rx.recv_timeout(LOOKUP_TIMEOUT).ok()
}

impl ServicePlaces {
    pub fn new(allowed: bool) -> ServicePlaces {
        ServicePlaces {
            allowed: AtomicBool::new(allowed),
            snapshot: RwLock::default(),
        }
    }

    pub fn set_allowed(&self, on: bool) {
        self.allowed.store(on, Ordering::Relaxed);
    }

    /// Install the current guards (mount point → network), destinations (every definition's:
    /// what refuses), the vetted ones (what allows) and the unapproved ones with the
    /// definitions naming them. The guards' device numbers are read from the mount table.
    pub fn refresh(
        &self,
        guards: &[(PathBuf, bool)],
        destinations: Vec<PathBuf>,
        vetted: Vec<PathBuf>,
        unapproved: Vec<(PathBuf, String)>,
    ) {
        let table = MountTable::read().ok();
        let mut devs = HashMap::new();
        for (mp, network) in guards {
            let Some(e) = table.as_ref().and_then(|t| t.at(mp)) else {
                continue;
            };
            if e.fstype == "fuse.imageguard" {
                devs.insert((e.major, e.minor), *network);
            }
        }
        *self.snapshot.write() = Snapshot {
            guards: devs,
            destinations: SavedDefinitions::new(destinations, []).with_vetted(vetted),
            unapproved,
        };
    }

    /// What the folder with device `dev` at canonical path `path` is.
    fn place_of(&self, dev: u64, path: &Path) -> Place {
        let snap = self.snapshot.read();
        let destination = snap.destinations.is_destination(path);
        let vetted = snap.destinations.is_vetted_destination(path);
        let (major, minor) = dev_pair(dev);
        let table = MountTable::read().ok();
        let mounts = || {
            table
                .iter()
                .flat_map(|t| &t.entries)
                .filter(move |e| e.major == major && e.minor == minor)
        };
        // A guard's device number counts only while a guard is mounted with it.
        if let Some(&network) = snap.guards.get(&(major, minor)) {
            if mounts().any(|e| e.fstype == "fuse.imageguard") {
                return Place {
                    protected: true,
                    network,
                    destination,
                    vetted,
                };
            }
        }
        Place {
            protected: false,
            network: mounts().any(|e| is_network_fstype(&e.fstype)),
            destination,
            vetted,
        }
    }
}

impl SyncPlaces for ServicePlaces {
    fn allowed(&self) -> bool {
        self.allowed.load(Ordering::Relaxed)
    }

    fn place(&self, path: &Path) -> Place {
        let path = path.to_path_buf();
        // A target not made yet (a tool creates it) is where its nearest existing folder is.
        let found = bounded(move || {
            let mut rest = Vec::new();
            let mut at = path.as_path();
            loop {
                if let Ok(canonical) = std::fs::canonicalize(at) {
                    let dev = std::fs::metadata(&canonical).ok()?.dev();
                    let full = rest.iter().rev().fold(canonical, |p, c| p.join(c));
                    return Some((dev, full));
                }
                rest.push(at.file_name()?.to_os_string());
                at = at.parent()?;
            }
        })
        .flatten();
        match found {
            Some((dev, canonical)) => self.place_of(dev, &canonical),
            None => Place::default(),
        }
    }

    fn is_destination(&self, folder: &Path) -> bool {
        self.snapshot.read().destinations.is_destination(folder)
    }

    fn holds_destination(&self, folder: &Path) -> bool {
        self.snapshot.read().destinations.holds_destination(folder)
    }

    fn is_vetted(&self, folder: &Path) -> bool {
        self.snapshot
            .read()
            .destinations
            .is_vetted_destination(folder)
    }

    fn unapproved(&self, folder: &Path) -> Vec<String> {
        self.snapshot
            .read()
            .unapproved
            .iter()
            .filter(|(d, _)| folder.starts_with(d))
            .map(|(_, label)| label.clone())
            .collect()
    }

    fn receiving_folder(&self, pid: u32) -> Option<(PathBuf, Place)> {
        let found = bounded(move || receiver_cwd(pid)).flatten()?;
        let (path, dev) = found;
        let place = self.place_of(dev, &path);
        Some((path, place))
    }
}

/// The working folder (its path, and the device of the folder itself) of a child of `pid`
/// running the same executable: rsync's local receiver, which changed into the target folder.
fn receiver_cwd(pid: u32) -> Option<(PathBuf, u64)> {
    let exe = std::fs::metadata(format!("/proc/{pid}/exe")).ok()?;
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    for task in tasks.flatten() {
        let children = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
        for child in children.split_whitespace() {
            let Ok(c) = std::fs::metadata(format!("/proc/{child}/exe")) else {
                continue;
            };
            if (c.dev(), c.ino()) != (exe.dev(), exe.ino()) {
                continue;
            }
            let cwd = format!("/proc/{child}/cwd");
            let (Ok(path), Ok(meta)) = (std::fs::read_link(&cwd), std::fs::metadata(&cwd)) else {
                continue;
            };
            return Some((path, meta.dev()));
        }
    }
    None
}
