//! The policy gate: where the guard asks the pure policy about one operation and, on a denial,
//! reports the event. Callers are identified lazily: only an operation on a backup entry costs a
//! look at `/proc`. A sync tool's operation is judged by the sync rules with the facts the
//! [`SyncPlaces`] port gives about its folders.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use imageguard_policy::holds::{Circumstances, LockedAge};
use imageguard_policy::sync_tools::rules::{self, Act, Place, Rule, Ruling};
use imageguard_policy::sync_tools::servers::file_server;
use imageguard_policy::sync_tools::situation::{self, Folders};
use imageguard_policy::{
    decide, BackupReason, CallerFacts, Class, Event, EventKind, Operation, SyncCaller, Verdict,
    VolumeRef,
};

/// Identifies the process behind a request (implemented over `/proc` by imageguard-identity).
pub trait CallerSource: Send + Sync {
    fn resolve(&self, pid: u32) -> CallerFacts;
    /// The process (thread group and start time) the thread `pid` belongs to.
    fn process(&self, _pid: u32) -> Option<crate::fresh::ProcessKey> {
        None
    }
}

/// Receives the events the guard raises (implemented by the event store).
pub trait EventSink: Send + Sync {
    fn emit(&self, event: Event);
}

/// What the service knows of the folders a sync tool's command line names (implemented by the
/// service over the mount table, its protected volumes and the saved definitions).
pub trait SyncPlaces: Send + Sync {
    /// The setting "allow sync tools".
    fn allowed(&self) -> bool;
    /// What the folder at `path` (absolute, this machine's) is, following symlinks as the
    /// tool would; an unknown or unreachable folder is an unprotected local one.
    fn place(&self, path: &Path) -> Place;
    /// Whether `folder` is at or under a backup destination of a saved definition (by its
    /// path's components).
    fn is_destination(&self, folder: &Path) -> bool;
    /// Whether a backup destination lies at or below `folder`.
    fn holds_destination(&self, folder: &Path) -> bool;
    /// Whether `folder` is at or under a backup destination of a definition an administrator
    /// vetted (approved, or imageguard's own).
    fn is_vetted(&self, folder: &Path) -> bool;
    /// The definitions nobody approved that name `folder` (or a folder holding it) as a
    /// destination, as an administrator would look them up (file and name).
    fn unapproved(&self, folder: &Path) -> Vec<String>;
    /// For an rsync sender: the folder its local receiver writes into (the working folder of
    /// its child rsync process) and what it is; `None` when it sends to another machine.
    fn receiving_folder(&self, pid: u32) -> Option<(PathBuf, Place)>;
}

/// The port's facts for one caller, as the policy's situation asks for them.
struct CallerFolders<'a> {
    places: &'a dyn SyncPlaces,
    pid: u32,
    /// The operation is a rename: whatever its target, it stays on this volume (a rename
    /// cannot leave its file system), and the kernel holds the folders' locks meanwhile, so
    /// a look-up there would wait for this very request.
    rename_on: Option<bool>,
}

impl Folders for CallerFolders<'_> {
    fn place(&self, path: &Path) -> Place {
        match self.rename_on {
            Some(network) => Place {
                protected: true,
                network,
                destination: self.places.is_destination(path),
                vetted: self.places.is_vetted(path),
            },
            None => self.places.place(path),
        }
    }
    fn is_destination(&self, folder: &Path) -> bool {
        self.places.is_destination(folder)
    }
    fn holds_destination(&self, folder: &Path) -> bool {
        self.places.holds_destination(folder)
    }
    fn is_vetted(&self, folder: &Path) -> bool {
        self.places.is_vetted(folder)
    }
    fn receiving_folder(&self) -> Option<(PathBuf, Place)> {
        self.places.receiving_folder(self.pid)
    }
}

/// The retention lock's facts for one volume (implemented by the service over its clock and
/// first-seen store).
pub trait Retention: Send + Sync {
    /// Whether any lock applies on this volume (nothing is looked up otherwise).
    fn any_lock(&self) -> bool;
    /// The lock, in days, on the entry at `path` (the longest of the volume's and its
    /// destination folders'); 0 for none.
    fn lock_days(&self, path: &Path) -> u32;
    /// Whether a lock's folder is `dir` or lies below it (renaming `dir` would move the lock
    /// off what it covers, the lock being by path).
    fn lock_folder_within(&self, dir: &Path) -> bool;
    /// How long ago the file with handle `key` was first seen; `None` when never (it is
    /// remembered as seen now).
    fn age(&self, key: &[u8]) -> Option<Duration>;
    /// A new file with handle `key` (its age starts now).
    fn seen(&self, key: &[u8]);
    /// The file with handle `key` is gone.
    fn gone(&self, key: &[u8]);
}

/// Counters shown by `imageguard status`.
#[derive(Debug, Default)]
pub struct GateCounters {
    pub denied: AtomicU64,
    pub allowed_certified: AtomicU64,
    /// Operations of sync tools the sync rules allowed.
    pub allowed_sync: AtomicU64,
    /// How long decisions on backup entries take.
    pub latency: crate::latency::Latency,
}

pub struct Gate {
    callers: Arc<dyn CallerSource>,
    sink: Arc<dyn EventSink>,
    volume: VolumeRef,
    /// The sync rules' facts, when the service offers them.
    places: Option<Arc<dyn SyncPlaces>>,
    /// This volume is reached over the network (a network file system mounted here).
    network: bool,
    /// Until when (CLOCK_BOOTTIME seconds) a maintenance window for key material is open;
    /// 0 when closed.
    key_window_until: AtomicU64,
    /// The retention lock's facts, when the service offers them.
    retention: Option<Arc<dyn Retention>>,
    /// The admin turned protection off on this locked volume: only what holds a backup (the
    /// retention lock, key material) still refuses, whoever asks.
    protection_off: AtomicBool,
    pub counters: GateCounters,
}

impl Gate {
    pub fn new(
        callers: Arc<dyn CallerSource>,
        sink: Arc<dyn EventSink>,
        volume: VolumeRef,
    ) -> Gate {
        Gate {
            callers,
            sink,
            volume,
            places: None,
            network: false,
            key_window_until: AtomicU64::new(0),
            retention: None,
            protection_off: AtomicBool::new(false),
            counters: GateCounters::default(),
        }
    }

    /// Hold young backups by the retention lock, with `retention` for their ages.
    pub fn with_retention(mut self, retention: Arc<dyn Retention>) -> Gate {
        self.retention = Some(retention);
        self
    }

    /// The retention port, when any lock applies on this volume.
    pub fn retention(&self) -> Option<&Arc<dyn Retention>> {
        self.retention.as_ref().filter(|r| r.any_lock())
    }

    /// Judge sync tools by the sync rules, with `places` for their folders; `network` says
    /// whether this volume is a network file system.
    pub fn with_sync_places(mut self, places: Arc<dyn SyncPlaces>, network: bool) -> Gate {
        self.places = Some(places);
        self.network = network;
        self
    }

    /// The sync rules' ruling on `op` by the sync tool `sync` on the entry at `path`, or why
    /// they do not apply.
    fn judge_sync(
        &self,
        places: &dyn SyncPlaces,
        pid: u32,
        sync: &SyncCaller,
        op: Operation,
        class: &Class,
        path: &Path,
    ) -> Ruling {
        let refuse = |rule| Ruling {
            allowed: false,
            rule,
        };
        if sync.elsewhere {
            return refuse(Rule::ElsewhereRooted);
        }
        let cmd = match &sync.command {
            Ok(c) => c,
            Err(u) => return refuse(Rule::Unreadable(u.clone())),
        };
        let folders = CallerFolders {
            places,
            pid,
            rename_on: matches!(op, Operation::Rename | Operation::RenameInFolder)
                .then_some(self.network),
        };
        let at = match situation::situation(&folders, sync.dialect, cmd, path, self.network) {
            Ok(at) => at,
            Err(rule) => return refuse(rule),
        };
        match Act::of(op, class, &at) {
            Some(act) => rules::judge(cmd, act, &at),
            None => refuse(Rule::NotASyncOperation),
        }
    }

    pub fn volume(&self) -> &VolumeRef {
        &self.volume
    }

    pub fn sink(&self) -> &Arc<dyn EventSink> {
        &self.sink
    }

    /// The process the thread `pid` belongs to.
    pub fn process(&self, pid: u32) -> Option<crate::fresh::ProcessKey> {
        self.callers.process(pid)
    }

    /// Whether the process behind `pid` may finish the entries it created in this session
    /// (see [`crate::fresh`]): a sync tool while sync tools are allowed. Other uncertified
    /// programs keep the stricter rule (what they made is a backup as soon as it is one).
    pub fn may_finish_its_own(&self, pid: u32) -> bool {
        let Some(places) = &self.places else {
            return false;
        };
        places.allowed() && self.callers.resolve(pid).sync.is_some()
    }

    /// Whether the thread `pid` belongs to this very process (the service, whose guard this is).
    fn is_service(&self, pid: u32) -> bool {
        self.process(pid)
            .is_some_and(|p| p.tgid == std::process::id())
    }

    /// Whether the process behind `pid` is treated as certified (for checks that only concern
    /// others): it is, or protection is off on this volume, so that everyone is.
    pub fn is_certified(&self, pid: u32) -> bool {
        self.is_off() || self.callers.resolve(pid).is_certified()
    }

    /// Turn protection off on this volume while its retention lock still holds young backups
    /// (`imageguard off`, `unprotect`): everyone is then treated as certified, and only the
    /// lock and key material refuse. `false` turns it back on.
    pub fn set_off(&self, off: bool) {
        self.protection_off.store(off, Ordering::SeqCst);
    }

    /// Whether protection is off here, the retention lock alone holding.
    pub fn is_off(&self) -> bool {
        self.protection_off.load(Ordering::SeqCst)
    }

    /// Open a maintenance window for key material on this volume for `length` (or close it
    /// with zero): certified programs may then remove and rewrite repository keys.
    pub fn set_key_window(&self, length: Duration) {
        let until = if length.is_zero() {
            0
        } else {
            boottime().saturating_add(length).as_secs().max(1)
        };
        self.key_window_until.store(until, Ordering::Relaxed);
    }

    /// How long the maintenance window for key material stays open, if it is open.
    pub fn key_window_left(&self) -> Option<Duration> {
        let until = Duration::from_secs(self.key_window_until.load(Ordering::Relaxed));
        until.checked_sub(boottime()).filter(|d| !d.is_zero())
    }

    /// Ok when `op` on an entry of class `class` by `pid` may proceed; otherwise logs event 320
    /// (naming the file by `path()`) and returns the errno to fail the request with.
    pub fn check(
        &self,
        pid: u32,
        op: Operation,
        class: &Class,
        path: impl FnOnce() -> String,
    ) -> Result<(), i32> {
        self.check_aged(pid, op, class, || None, path)
    }

    /// [`Gate::check`] for an operation the retention lock may hold: `key()` gives the file's
    /// handle, asked for only when a lock applies and the caller is certified (or protection
    /// is off here).
    pub fn check_aged(
        &self,
        pid: u32,
        op: Operation,
        class: &Class,
        key: impl FnOnce() -> Option<Vec<u8>>,
        path: impl FnOnce() -> String,
    ) -> Result<(), i32> {
        if !class.is_backup() {
            return Ok(());
        }
        let started = std::time::Instant::now();
        let verdict = self.decide_backup(pid, op, class, key, path);
        self.counters.latency.record(started.elapsed());
        verdict
    }

    /// [`Gate::check_aged`] on a backup entry.
    fn decide_backup(
        &self,
        pid: u32,
        op: Operation,
        class: &Class,
        key: impl FnOnce() -> Option<Vec<u8>>,
        path: impl FnOnce() -> String,
    ) -> Result<(), i32> {
        // The service's own verification file (`imageguard verify`), written by the service
        // through this guard.
        if *class == Class::Backup(BackupReason::Verification) && self.is_service(pid) {
            return Ok(());
        }
        let caller = self.callers.resolve(pid);
        let mut path = Some(path);
        let mut known_path: Option<String> = None;
        let mut path_now = || -> String {
            if let Some(p) = &known_path {
                return p.clone();
            }
            let p = path.take().map(|f| f()).unwrap_or_default();
            known_path = Some(p.clone());
            p
        };
        let off = self.is_off();
        let lock = match (caller.is_certified() || off, self.retention()) {
            (true, Some(r)) => {
                let days = r.lock_days(Path::new(&path_now()));
                (days > 0).then(|| LockedAge {
                    lock_days: days,
                    age: key().and_then(|k| r.age(&k)),
                })
            }
            _ => None,
        };
        let now = Circumstances {
            key_window_open: self.key_window_left().is_some(),
            lock,
            protection_off: off,
        };
        match decide(&caller, op, class, &now) {
            Verdict::Allow => {
                self.counters
                    .allowed_certified
                    .fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Verdict::Held(held) => {
                let why = if off {
                    format!("protection is off on this volume, but {held}")
                } else {
                    held.to_string()
                };
                self.refuse(&caller, op, class, path_now(), why)
            }
            Verdict::Deny => {
                let path = path_now();
                let mut why = match &caller.trust {
                    Ok(_) => String::new(),
                    Err(u) => u.to_string(),
                };
                if let (Some(sync), Some(places)) = (&caller.sync, &self.places) {
                    if !places.allowed() {
                        why = "a sync tool, and sync tools are not allowed (setting allow_sync_tools)".into();
                    } else {
                        let ruling = self.judge_sync(
                            places.as_ref(),
                            pid,
                            sync,
                            op,
                            class,
                            Path::new(&path),
                        );
                        if ruling.allowed {
                            self.counters.allowed_sync.fetch_add(1, Ordering::Relaxed);
                            log::debug!(
                                "sync tool {} ({}): {} {path}: {}",
                                caller.exe,
                                caller.pid,
                                op,
                                ruling.rule
                            );
                            return Ok(());
                        }
                        let what = sync
                            .command
                            .as_ref()
                            .map(|c| c.what())
                            .unwrap_or("unreadable command");
                        why = format!(
                            "sync tool ({} {what}), refused: {}",
                            sync.dialect, ruling.rule
                        );
                        if ruling.rule.reference() == rules::APPROVED {
                            why.push_str(&unapproved_named(
                                places.as_ref(),
                                sync,
                                Path::new(&path),
                            ));
                        }
                    }
                }
                if op == Operation::CreateInStructure {
                    why = format!(
                        "{why}; only certified backup programs add to a repository or backup \
                         destination (one junk file there can stop every restore; readers' lock \
                         files excepted)"
                    );
                }
                if let Some(server) = file_server(&caller.exe) {
                    why = format!(
                        "{why}; {server} serves this volume to another machine: what it does is \
                         that machine's request"
                    );
                }
                self.refuse(&caller, op, class, path, why)
            }
        }
    }

    /// Count and log (320) a refusal, and the errno to fail the request with.
    fn refuse(
        &self,
        caller: &CallerFacts,
        op: Operation,
        class: &Class,
        path: String,
        why: String,
    ) -> Result<(), i32> {
        self.counters.denied.fetch_add(1, Ordering::Relaxed);
        let reason = match class {
            Class::Backup(r) => r.to_string(),
            Class::Ordinary => String::new(),
        };
        let kind = if op == Operation::CreateVerification {
            EventKind::BlockVerificationFileAccess
        } else {
            EventKind::BlockedFileAccess
        };
        let event = Event::new(kind)
            .with_process(caller.exe.clone(), caller.pid)
            .with_volume(self.volume.clone())
            .with_file(path)
            .with_operation(op)
            .with_detail(format!("{why}; {reason}"));
        self.sink.emit(event);
        Err(libc::EPERM)
    }
}

/// The definitions nobody approved that name the folders of `sync`'s command line (and the
/// entry's), for a refusal that names them.
fn unapproved_named(places: &dyn SyncPlaces, sync: &SyncCaller, entry: &Path) -> String {
    let Ok(cmd) = &sync.command else {
        return String::new();
    };
    let folders = cmd
        .sources
        .iter()
        .chain(&cmd.target)
        .filter_map(|o| o.absolute())
        .chain(std::iter::once(entry.to_path_buf()));
    let mut named: Vec<String> = folders.flat_map(|f| places.unapproved(&f)).collect();
    named.sort();
    named.dedup();
    if named.is_empty() {
        return String::new();
    }
    format!(
        " (not approved: {}; `imageguard definitions approve FILE` after reading it)",
        named.join(", ")
    )
}

/// Time since boot, suspend included: setting the wall clock does not move it (the service's
/// clock's own reading, see `imageguard_retention::clock`).
fn boottime() -> Duration {
    imageguard_retention::clock::real_boottime()
}
