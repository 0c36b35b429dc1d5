//! The keeper: a private mount namespace of the service, pinned by a bind mount of its nsfs file
//! under the runtime directory, in which the backing mounts of protected volumes live at
//! `RUNTIME/keep/<id>`. The host namespace never sees them again, so unmounting the guard (in
//! any namespace) reveals an empty directory; and because the pin outlives the service process,
//! a restarted service finds the backing where it left it.
//!
//! Work inside the keeper runs on a short-lived thread that has unshared its file-system context
//! and joined the namespace; the rest of the process stays in the host namespace.

use std::fs;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use crate::mountapi;
use crate::mountinfo::{MountEntry, MountTable};

#[derive(Debug, Clone)]
pub struct Keeper {
    runtime_dir: PathBuf,
}

fn last_error(what: &str) -> io::Error {
    let e = io::Error::last_os_error();
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

impl Keeper {
    pub fn new(runtime_dir: impl Into<PathBuf>) -> Keeper {
        Keeper {
            runtime_dir: runtime_dir.into(),
        }
    }

    pub fn ns_file(&self) -> PathBuf {
        self.runtime_dir.join("keeper.mntns")
    }

    pub fn keep_dir(&self, id: &str) -> PathBuf {
        self.runtime_dir.join("keep").join(id)
    }

    /// True when the pinned namespace exists.
    pub fn exists(&self) -> bool {
        MountTable::read()
            .map(|t| t.at(&self.ns_file()).is_some_and(|e| e.fstype == "nsfs"))
            .unwrap_or(false)
    }

    /// Create the pinned namespace if it does not exist.
    pub fn ensure(&self) -> io::Result<()> {
        fs::create_dir_all(&self.runtime_dir)?;
        let table = MountTable::read()?;
        let rd = self.runtime_dir.canonicalize()?;
        if table.at(&rd).is_none() {
            // The nsfs pin must sit on a private mount, or it would propagate into peers.
            mountapi::bind(&rd, &rd)?;
        }
        mountapi::make_private(&rd, false)?;
        if self.exists() {
            return Ok(());
        }
        let file = self.ns_file();
        fs::File::create(&file)?;
        // The kernel refuses to pin a namespace whose id is not above the caller's own (it
        // could close a loop of namespaces). Ids come from per-CPU batches (6.18), so a new
        // namespace created on another CPU than the caller's was may get a lower one, when the
        // service itself runs in a namespace other than the first (a systemd unit's, a test's):
        // create it again on each CPU in turn until one is above.
        // Every CPU online, not only those this process may run on now.
        let cpus = usize::try_from(unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) })
            .unwrap_or(1)
            .max(1);
        let mut last = None;
        for attempt in 0..2 * cpus {
            match self.create_on(&file, &rd, Some(attempt % cpus)) {
                Err(e) if e.kind() == io::ErrorKind::InvalidInput => last = Some(e),
                r => return r,
            }
        }
        Err(last.unwrap_or_else(|| io::Error::other("no keeper namespace")))
    }

    /// Create a new mount namespace on a thread (pinned to `cpu` when given), strip it down to
    /// what the keeper needs, and bind its nsfs file onto `file`.
    fn create_on(&self, file: &Path, runtime_dir: &Path, cpu: Option<usize>) -> io::Result<()> {
        let runtime_dir = runtime_dir.to_path_buf();
        let (tid_tx, tid_rx) = mpsc::channel::<io::Result<i32>>();
        let (done_tx, done_rx) = mpsc::channel::<()>();
        let t = std::thread::spawn(move || {
            let r = (|| {
                if let Some(cpu) = cpu {
                    // Best effort: a CPU outside the allowed set just leaves the thread free.
                    unsafe {
                        let mut set: libc::cpu_set_t = std::mem::zeroed();
                        libc::CPU_SET(cpu, &mut set);
                        libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set);
                    }
                }
                if unsafe { libc::unshare(libc::CLONE_FS | libc::CLONE_NEWNS) } < 0 {
                    return Err(last_error("unshare mount namespace"));
                }
                mountapi::make_private(Path::new("/"), true)?;
                strip_host_copies(&runtime_dir)?;
                Ok(unsafe { libc::gettid() })
            })();
            let ok = r.is_ok();
            let _ = tid_tx.send(r);
            if ok {
                let _ = done_rx.recv();
            }
        });
        let tid = tid_rx
            .recv()
            .map_err(|_| io::Error::other("keeper thread died"))??;
        let ns = PathBuf::from(format!("/proc/self/task/{tid}/ns/mnt"));
        let r = mountapi::bind(&ns, file);
        let _ = done_tx.send(());
        let _ = t.join();
        r
    }

    /// Run `f` on a thread inside the keeper namespace.
    pub fn run_inside<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> io::Result<T> + Send + 'static,
    ) -> io::Result<T> {
        let ns = fs::File::open(self.ns_file())?;
        std::thread::spawn(move || {
            if unsafe { libc::unshare(libc::CLONE_FS) } < 0 {
                return Err(last_error("unshare fs"));
            }
            if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNS) } < 0 {
                return Err(last_error("setns keeper"));
            }
            f()
        })
        .join()
        .map_err(|_| io::Error::other("keeper thread panicked"))?
    }

    /// The volume kept at `keep/<id>`: None when the keeper does not hold it (or cannot be
    /// entered); otherwise its root directory and mount entry, or why it could not be opened.
    pub fn open_kept(&self, id: &str) -> Option<io::Result<(OwnedFd, MountEntry)>> {
        if !self.exists() {
            return None;
        }
        let dir = self.keep_dir(id);
        self.run_inside(move || {
            let t = MountTable::read_from(Path::new("/proc/thread-self/mountinfo"))?;
            Ok(t.at(&dir)
                .cloned()
                .map(|entry| mountapi::open_dir(&dir).map(|root| (root, entry))))
        })
        .unwrap_or(None)
    }

    /// Remove the pin and the private runtime mount (when nothing is kept any more).
    pub fn dismantle(&self) -> io::Result<()> {
        if self.exists() {
            mountapi::detach(&self.ns_file())?;
        }
        let rd = self.runtime_dir.canonicalize()?;
        if MountTable::read()?.at(&rd).is_some() {
            mountapi::detach(&rd)?;
        }
        Ok(())
    }
}

/// In a keeper namespace just made (this thread's): detach every mount it copied from the host
/// but those it needs, the mounts the runtime directory sits on and /proc. A copy would hold its
/// file system for as long as the keeper lives: a drive unmounted in the host would stay busy
/// (no fsck, no eject, no `losetup -d`, no `cryptsetup close`), and a FUSE mount (another
/// service's guard) would not end when it is unmounted in the host.
///
/// Another service's kernel shield refuses unmounting its guards and what holds it up (EPERM),
/// in every namespace, this one included: those copies stay (a guard's copy keeps nothing busy
/// that its own service does not, and dies with that service's FUSE connection).
fn strip_host_copies(runtime_dir: &Path) -> io::Result<()> {
    let mut refused: Vec<PathBuf> = vec![];
    let needed = |e: &MountEntry, refused: &[PathBuf]| {
        runtime_dir.starts_with(&e.mount_point)
            || e.mount_point == Path::new("/proc")
            || refused.contains(&e.mount_point)
    };
    // Stacked mounts need one pass per layer; a subtree goes with its parent.
    for _ in 0..16 {
        let table = MountTable::read_from(Path::new("/proc/thread-self/mountinfo"))?;
        let extra: Vec<&MountEntry> = table
            .entries
            .iter()
            .filter(|e| !needed(e, &refused))
            .collect();
        if extra.is_empty() {
            return Ok(());
        }
        for e in extra.into_iter().rev() {
            match mountapi::detach(&e.mount_point) {
                // Gone with its parent, or hidden under another mount: the next pass sees.
                // (The error carries its path: its kind, not its raw number, says which.)
                Err(err)
                    if matches!(
                        err.kind(),
                        io::ErrorKind::InvalidInput | io::ErrorKind::NotFound
                    ) => {}
                // Another service's shield holds it.
                Err(err) if err.kind() == io::ErrorKind::PermissionDenied => {
                    refused.push(e.mount_point.clone())
                }
                other => other?,
            }
        }
    }
    let left: Vec<PathBuf> = MountTable::read_from(Path::new("/proc/thread-self/mountinfo"))?
        .entries
        .into_iter()
        .filter(|e| !needed(e, &refused))
        .map(|e| e.mount_point)
        .collect();
    Err(io::Error::other(format!(
        "keeper namespace: host mounts that would not go: {left:?}"
    )))
}

/// A stable directory name for a volume's mount point.
pub fn volume_id(mount_point: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let readable: String = mount_point
        .as_os_str()
        .as_bytes()
        .iter()
        .map(|&b| {
            if b.is_ascii_alphanumeric() {
                b as char
            } else {
                '_'
            }
        })
        .collect();
    // FNV-1a keeps ids of paths that read alike apart.
    let hash = mount_point
        .as_os_str()
        .as_bytes()
        .iter()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
            (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
        });
    let readable: String = readable.trim_matches('_').chars().take(64).collect();
    format!("{readable}-{hash:016x}")
}
