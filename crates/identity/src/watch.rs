//! Watching the closures of certified programs, so that a change anywhere in one (a library
//! rewritten, a `usercustomize.py` or `/etc/ld.so.preload` created, a mount over a module
//! folder) takes the program's certification away at once, and for good: code that ran while
//! a file was different may have hidden its traces since, so putting the file back does not
//! mend it. Only certifying the program again does.
//!
//! inotify watches every folder (entries created, removed, renamed) and every file (written,
//! attributes changed, deleted) of every closure; `/proc/self/mountinfo` signals mounts. The
//! kernel queues an inotify event before the system call that caused it returns, so draining
//! the queue before each decision ([`ClosureWatch::check`], one `poll` when nothing happened)
//! sees every change a caller could have made before asking: there is no window between a
//! change and the refusal it causes. A background thread drains the queue meanwhile.
//!
//! What inotify does not see, writes through a shared writable mapping, is caught by comparing
//! the closure with the disk again (identity, then SHA-256) for every process that starts after
//! the last comparison ([`ClosureWatch::verify_since`]).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::ffi::OsStr;
use std::fs::File;
use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::sync::{Arc, Weak};

use imageguard_policy::closure::{ClosureIndex, Judgement, Observed};
use imageguard_policy::{CertifiedList, ChangeKind, Closure, ClosureChange};
use parking_lot::Mutex;
use rustix::event::{poll, PollFd, PollFlags};
use rustix::fs::inotify::{self, ReadFlags, WatchFlags};
use rustix::time::{clock_gettime, ClockId, Timespec};

use imageguard_volume::mountinfo::MountTable;

use crate::closure::{scan, View};
use crate::procfs::identity_of;

/// Called when a program's closure breaks: (certified path, what changed).
pub type BrokenNotice = Box<dyn Fn(&str, &ClosureChange) + Send + Sync>;

/// The state of one certified program's closure.
struct Watched {
    /// Identity of the certification (a new certification of the same path is another one).
    certified_at: i64,
    closure: Arc<Closure>,
    index: ClosureIndex,
    /// (device, inode) of every file: what its processes may map executable.
    code: Arc<HashSet<(u64, u64)>>,
    broken: Option<ClosureChange>,
    /// When (CLOCK_BOOTTIME, ns) the closure was last compared with the disk.
    verified_at: i128,
    watches: Vec<i32>,
}

#[derive(Clone)]
struct Target {
    entry: String,
    path: String,
    dir: bool,
}

#[derive(Default)]
struct State {
    entries: HashMap<String, Watched>,
    targets: HashMap<i32, Vec<Target>>,
    mounts: BTreeSet<(u64, String)>,
}

/// The watch over every certified program's closure.
pub struct ClosureWatch {
    inotify: OwnedFd,
    /// `/proc/self/mountinfo`, polled by deciders (POLLPRI once per mount change).
    mounts: File,
    state: Mutex<State>,
    notice: Mutex<Option<BrokenNotice>>,
}

const DIR_EVENTS: WatchFlags = WatchFlags::CREATE
    .union(WatchFlags::DELETE)
    .union(WatchFlags::MOVED_FROM)
    .union(WatchFlags::MOVED_TO)
    .union(WatchFlags::DELETE_SELF)
    .union(WatchFlags::MOVE_SELF)
    .union(WatchFlags::ONLYDIR);
const FILE_EVENTS: WatchFlags = WatchFlags::MODIFY
    .union(WatchFlags::CLOSE_WRITE)
    .union(WatchFlags::ATTRIB)
    .union(WatchFlags::DELETE_SELF)
    .union(WatchFlags::MOVE_SELF);

/// Now, in CLOCK_BOOTTIME nanoseconds (the clock process start times count in).
pub fn boot_time_ns() -> i128 {
    let t: Timespec = clock_gettime(ClockId::Boottime);
    t.tv_sec as i128 * 1_000_000_000 + t.tv_nsec as i128
}

/// Every mount of this namespace, by id and mount point: a mount stacked on an existing mount
/// point is a new id at the same point.
fn mounts() -> BTreeSet<(u64, String)> {
    MountTable::read()
        .map(|t| {
            t.entries
                .into_iter()
                .map(|e| (e.id, e.mount_point.to_string_lossy().into_owned()))
                .collect()
        })
        .unwrap_or_default()
}

fn under(path: &str, mount_point: &str) -> bool {
    mount_point == "/"
        || path == mount_point
        || (path.starts_with(mount_point) && path.as_bytes().get(mount_point.len()) == Some(&b'/'))
}

impl ClosureWatch {
    /// Start watching (no program yet) and the thread that drains the queue meanwhile.
    pub fn start() -> std::io::Result<Arc<ClosureWatch>> {
        let inotify =
            inotify::init(inotify::CreateFlags::NONBLOCK | inotify::CreateFlags::CLOEXEC)?;
        let watch = Arc::new(ClosureWatch {
            inotify,
            mounts: File::open("/proc/self/mountinfo")?,
            state: Mutex::new(State {
                mounts: mounts(),
                ..State::default()
            }),
            notice: Mutex::new(None),
        });
        let own_mounts = File::open("/proc/self/mountinfo")?;
        let weak = Arc::downgrade(&watch);
        std::thread::Builder::new()
            .name("closure watch".into())
            .spawn(move || drain_in_background(weak, own_mounts))?;
        Ok(watch)
    }

    /// Where to report closures that break (the service logs them).
    pub fn on_broken(&self, notice: BrokenNotice) {
        *self.notice.lock() = Some(notice);
    }

    /// Follow the closures of `list`: programs no longer listed are dropped, programs certified
    /// anew (and `renewed`, certified again just now) are watched afresh and compared with the
    /// disk once. Every other program keeps its state (a broken closure stays broken).
    pub fn set(&self, list: &CertifiedList, renewed: Option<&str>) {
        let mut st = self.state.lock();
        self.sync(&mut st);
        if let Some(path) = renewed {
            if let Some(w) = st.entries.get_mut(path) {
                // Dropped below with its watches, then watched again.
                w.certified_at = i64::MIN;
            }
        }
        let keep: HashMap<&str, i64> = list
            .entries
            .iter()
            .filter(|e| e.closure.is_some())
            .map(|e| (e.path.as_str(), e.certified_at))
            .collect();
        let stale: Vec<String> = st
            .entries
            .iter()
            .filter(|(p, w)| keep.get(p.as_str()) != Some(&w.certified_at))
            .map(|(p, _)| p.clone())
            .collect();
        for path in stale {
            if let Some(w) = st.entries.remove(&path) {
                for wd in w.watches {
                    if let Some(t) = st.targets.get_mut(&wd) {
                        t.retain(|t| t.entry != path);
                        if t.is_empty() {
                            st.targets.remove(&wd);
                            let _ = inotify::remove_watch(&self.inotify, wd);
                        }
                    }
                }
            }
        }
        for e in &list.entries {
            let Some(closure) = &e.closure else { continue };
            if st.entries.contains_key(&e.path) {
                continue;
            }
            let mut watches = vec![];
            let mut unwatchable = None;
            // The file the process executes is checked by its running identity or hash, which
            // a change on disk cannot fool: a reinstall of the same bytes does not break it.
            let executed = match &e.interpreter {
                Some(i) => i.path.as_str(),
                None => e.path.as_str(),
            };
            let paths = closure.dirs.iter().map(|d| (&d.path, true)).chain(
                closure
                    .files
                    .iter()
                    .filter(|f| f.path != executed)
                    .map(|f| (&f.path, false)),
            );
            for (path, dir) in paths {
                let flags = if dir { DIR_EVENTS } else { FILE_EVENTS };
                match inotify::add_watch(&self.inotify, path.as_str(), flags) {
                    Ok(wd) => {
                        watches.push(wd);
                        st.targets.entry(wd).or_default().push(Target {
                            entry: e.path.clone(),
                            path: path.clone(),
                            dir,
                        });
                    }
                    Err(rustix::io::Errno::NOSPC) => {
                        unwatchable.get_or_insert_with(|| {
                            ClosureChange::new(path.clone(), ChangeKind::Unfollowed)
                        });
                    }
                    // Gone already: the comparison below finds it.
                    Err(_) => {}
                }
            }
            // Watches first, then the comparison: a change after this point is an event.
            let verified_at = boot_time_ns();
            let broken = unwatchable.or_else(|| scan::verify(closure, &View::own()));
            if let Some(c) = &broken {
                self.notify(&e.path, c);
            }
            st.entries.insert(
                e.path.clone(),
                Watched {
                    certified_at: e.certified_at,
                    closure: Arc::new(closure.clone()),
                    index: ClosureIndex::new(closure),
                    code: Arc::new(code_as_mapped(closure)),
                    broken,
                    verified_at,
                    watches,
                },
            );
        }
    }

    /// Whether the closure of the certified program at `entry` is intact now: the change that
    /// broke it, if one did. Sees every change made before the call.
    pub fn check(&self, entry: &str) -> Result<Arc<HashSet<(u64, u64)>>, Option<ClosureChange>> {
        let mut st = self.state.lock();
        self.sync(&mut st);
        match st.entries.get(entry) {
            None => Err(None),
            Some(w) => match &w.broken {
                Some(c) => Err(Some(c.clone())),
                None => Ok(w.code.clone()),
            },
        }
    }

    /// Make sure the closure of `entry` was compared with the disk after `since` (boot time,
    /// ns: a process's start), comparing it now if not. The change found, if any.
    pub fn verify_since(&self, entry: &str, since: i128) -> Option<ClosureChange> {
        let closure = {
            let st = self.state.lock();
            let w = st.entries.get(entry)?;
            if let Some(c) = &w.broken {
                return Some(c.clone());
            }
            if w.verified_at > since {
                return None;
            }
            w.closure.clone()
        };
        let at = boot_time_ns();
        let change = scan::verify(&closure, &View::own());
        let mut st = self.state.lock();
        let w = st.entries.get_mut(entry)?;
        if let Some(c) = change {
            self.break_entry(entry, w, c);
        } else if w.verified_at < at {
            w.verified_at = at;
        }
        w.broken.clone()
    }

    /// The recorded closure of `entry` and the change that broke it, if any (for listings).
    pub fn state_of(&self, entry: &str) -> Option<Option<ClosureChange>> {
        let mut st = self.state.lock();
        self.sync(&mut st);
        st.entries.get(entry).map(|w| w.broken.clone())
    }

    fn notify(&self, entry: &str, change: &ClosureChange) {
        if let Some(n) = &*self.notice.lock() {
            n(entry, change);
        }
    }

    fn break_entry(&self, entry: &str, w: &mut Watched, change: ClosureChange) {
        if w.broken.is_none() {
            self.notify(entry, &change);
            w.broken = Some(change);
        }
    }

    /// Apply everything that happened since the last call: one `poll` when nothing did.
    fn sync(&self, st: &mut State) {
        let mut fds = [
            PollFd::new(&self.inotify, PollFlags::IN),
            PollFd::new(&self.mounts, PollFlags::PRI),
        ];
        let zero = Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        if poll(&mut fds, Some(&zero)).unwrap_or(0) == 0 {
            return;
        }
        let events = fds[0].revents();
        let mounts = fds[1].revents();
        if mounts.intersects(PollFlags::PRI | PollFlags::ERR) {
            self.mounts_changed(st);
        }
        if events.contains(PollFlags::IN) {
            self.drain(st);
        }
    }

    fn drain(&self, st: &mut State) {
        let mut buf = [MaybeUninit::<u8>::uninit(); 16384];
        let mut reader = inotify::Reader::new(&self.inotify, &mut buf);
        while let Ok(ev) = reader.next() {
            let (wd, flags) = (ev.wd(), ev.events());
            let name = ev.file_name().map(|n| {
                OsStr::from_bytes(n.to_bytes())
                    .to_string_lossy()
                    .into_owned()
            });
            if flags.contains(ReadFlags::QUEUE_OVERFLOW) {
                let all: Vec<String> = st.entries.keys().cloned().collect();
                for entry in all {
                    let change = ClosureChange::new("/", ChangeKind::Unfollowed);
                    if let Some(w) = st.entries.get_mut(&entry) {
                        self.break_entry(&entry, w, change);
                    }
                }
                continue;
            }
            let Some(targets) = st.targets.get(&wd).cloned() else {
                continue;
            };
            for t in targets {
                self.apply(st, &t, flags, name.as_deref());
            }
        }
    }

    fn apply(&self, st: &mut State, t: &Target, flags: ReadFlags, name: Option<&str>) {
        let gone =
            ReadFlags::DELETE_SELF | ReadFlags::MOVE_SELF | ReadFlags::UNMOUNT | ReadFlags::IGNORED;
        let seen = match (t.dir, name) {
            (true, Some(name)) => {
                let kind = if flags.intersects(ReadFlags::CREATE | ReadFlags::MOVED_TO) {
                    ChangeKind::Created
                } else if flags.intersects(ReadFlags::DELETE | ReadFlags::MOVED_FROM) {
                    ChangeKind::Removed
                } else {
                    return;
                };
                Observed::Entry {
                    dir: &t.path,
                    name,
                    is_dir: flags.contains(ReadFlags::ISDIR),
                    kind,
                }
            }
            _ if flags.intersects(gone) => Observed::Gone { path: &t.path },
            (false, None) if flags.intersects(ReadFlags::MODIFY | ReadFlags::CLOSE_WRITE) => {
                Observed::Written { path: &t.path }
            }
            (false, None) if flags.contains(ReadFlags::ATTRIB) => {
                Observed::Attributes { path: &t.path }
            }
            _ => return,
        };
        let Some(w) = st.entries.get_mut(&t.entry) else {
            return;
        };
        if w.broken.is_some() {
            return;
        }
        match w.index.judge(seen) {
            Judgement::Unaffected => {}
            Judgement::Broken(change) => self.break_entry(&t.entry, w, change),
            Judgement::Recheck(path) => {
                // Attributes only: the file is the same if its content is.
                let Some(recorded) = w.closure.file(&path).cloned() else {
                    return;
                };
                match std::fs::metadata(&path) {
                    Ok(m) if identity_of(&m) == recorded.identity => {}
                    Ok(m) if scan::same_content(&View::own(), &recorded) => {
                        let closure = Arc::make_mut(&mut w.closure);
                        if let Some(f) = closure.files.iter_mut().find(|f| f.path == path) {
                            f.identity = identity_of(&m);
                        }
                    }
                    Ok(_) => self.break_entry(
                        &t.entry,
                        w,
                        ClosureChange::new(path, ChangeKind::Modified),
                    ),
                    Err(_) => {
                        self.break_entry(&t.entry, w, ClosureChange::new(path, ChangeKind::Removed))
                    }
                }
            }
        }
    }

    /// Mounts came or went: every closure with a path at or under a mount point that changed
    /// is compared with the disk again.
    fn mounts_changed(&self, st: &mut State) {
        let now = mounts();
        let changed: Vec<String> = now
            .symmetric_difference(&st.mounts)
            .map(|(_, point)| point.clone())
            .collect();
        st.mounts = now;
        if changed.is_empty() {
            return;
        }
        let affected: Vec<String> = st
            .entries
            .iter()
            .filter(|(_, w)| w.broken.is_none())
            .filter(|(_, w)| {
                let c = &w.closure;
                c.files
                    .iter()
                    .map(|f| &f.path)
                    .chain(c.dirs.iter().map(|d| &d.path))
                    .any(|p| changed.iter().any(|m| under(p, m)))
            })
            .map(|(p, _)| p.clone())
            .collect();
        for entry in affected {
            let Some(w) = st.entries.get_mut(&entry) else {
                continue;
            };
            let at = boot_time_ns();
            match scan::verify(&w.closure, &View::own()) {
                Some(change) => self.break_entry(&entry, w, change),
                None => w.verified_at = at,
            }
        }
    }
}

fn drain_in_background(watch: Weak<ClosureWatch>, own_mounts: File) {
    let second = Timespec {
        tv_sec: 1,
        tv_nsec: 0,
    };
    // A strong reference only for one wait at a time, so that a dropped watch ends the thread.
    while let Some(w) = watch.upgrade() {
        let ready = {
            let mut fds = [
                PollFd::new(&w.inotify, PollFlags::IN),
                PollFd::new(&own_mounts, PollFlags::PRI),
            ];
            poll(&mut fds, Some(&second)).unwrap_or(0)
        };
        if ready > 0 {
            let mut st = w.state.lock();
            w.sync(&mut st);
        }
    }
}

/// The closure's code as `/proc/PID/maps` names it: each file's `stat` identity, and on
/// overlayfs the identity of the layer file its mappings show (see [`crate::mapping_id`]).
fn code_as_mapped(closure: &Closure) -> HashSet<(u64, u64)> {
    let mut code = closure.code_set();
    code.extend(
        closure
            .files
            .iter()
            .filter_map(|f| crate::mapping_id::mapped_identity(std::path::Path::new(&f.path))),
    );
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mounts_and_paths_under_them() {
        assert!(under("/usr/lib/python3.11/os.py", "/usr"));
        assert!(under("/usr/lib", "/usr/lib"));
        assert!(!under("/usr/lib64/x", "/usr/lib"));
        assert!(mounts().iter().any(|(_, p)| p == "/"));
    }
}
