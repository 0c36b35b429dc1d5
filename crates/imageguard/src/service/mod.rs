//! `imageguard service`: the long-running guard. It loads configuration, state and the certified
//! list, starts the event log, re-protects the volumes the user protected (unless protection is
//! off), serves the control socket, and on SIGTERM/SIGINT gives every volume back to the host.
//! A service killed outright leaves its guards mounted and dead, so callers fail closed; a new
//! service recovers the backings from the keeper namespace.

pub mod absent;
pub mod adapters;
mod admin;
pub mod auto_protect;
pub mod destinations;
pub mod kernel_certified;
pub mod kernel_shield;
pub mod metrics;
mod notify;
pub mod report;
pub mod retention;
pub mod sentinel;
mod settings;
pub mod sync_places;
mod verify;
pub mod volumes;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use imageguard_eventstore::{EventDb, EventLog};
use imageguard_gate::{CallerSource, EventSink};
use imageguard_identity::{certify_path, CallerResolver, CertifiedStore, ClosureOptions};
use imageguard_policy::{Event, EventKind};
use imageguard_volume::keeper::Keeper;
use parking_lot::Mutex;

use crate::backup_drives::AutoProtect;
use crate::config::Config;
use crate::control::protocol::{Request, Response};
use crate::control::server::{self, Handler};
use crate::paths::PathArgs;
use crate::state::{boot_id, ServiceState};
use adapters::{LogSink, ProcCallers};
use report::{CertifiedProgram, StatusReport};
use volumes::{path_ref, volume_ref, ProtectedVolume};

/// Who protects a volume.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Origin {
    /// The user (`protect`, `on`): logged as 330 and remembered.
    User,
    /// The service restoring or healing a protection it has.
    Service,
    /// Automatic protection of a backup drive; the text names the definition (in the 300).
    Definition(String),
}

struct Inner {
    state: ServiceState,
    volumes: BTreeMap<PathBuf, ProtectedVolume>,
    /// Volumes the user unprotected since the service started: automatic protection leaves
    /// them alone until the next start.
    unprotected_by_user: std::collections::BTreeSet<PathBuf>,
    /// Protected drives that are not here now (pulled out, not plugged in), by mount point.
    absent: BTreeMap<PathBuf, absent::AbsentDrive>,
    /// Which definitions' destinations let a sync tool delete or add, as found last.
    vetting: destinations::Vetting,
}

impl Inner {
    /// The user unprotected `mp` while a retention lock is in force on it: no longer the
    /// user's protected volume, but guarded by the lock alone until none is in force on it.
    fn unprotected_under_lock(&mut self, mp: &Path) {
        self.state.volumes.retain(|v| v != mp);
        if !self.state.lock_held.iter().any(|v| v == mp) {
            self.state.lock_held.push(mp.to_path_buf());
        }
        self.unprotected_by_user.insert(mp.to_path_buf());
    }
}

pub struct Service {
    paths: PathArgs,
    config: Config,
    keeper: Keeper,
    resolver: Arc<CallerResolver>,
    store: CertifiedStore,
    log: EventLog,
    callers: Arc<dyn CallerSource>,
    sink: Arc<dyn EventSink>,
    inner: Mutex<Inner>,
    /// Serialises the changes to protection (protect, unprotect, off, on, shutdown, healing),
    /// which can take long (a protect scans the volume), so that `inner` is held only briefly
    /// and `status` answers meanwhile. Always taken before `inner`, never while holding it.
    changes: Mutex<()>,
    /// Set when the service starts giving its volumes back: nothing is protected after that.
    stopping: std::sync::atomic::AtomicBool,
    /// Set by `imageguard stop` (authorized by the admin lock's passphrase when one is set):
    /// with the admin lock set, only such a stop gives volumes back; a plain SIGTERM leaves
    /// them closed.
    release_at_stop: std::sync::atomic::AtomicBool,
    /// The setting "automatically protect local backup drives", as it is now (`settings`
    /// changes it live).
    auto_protect: std::sync::atomic::AtomicBool,
    /// The admin lock, when one is set.
    admin_lock: Mutex<Option<crate::admin_lock::AdminLock>>,
    /// Email alerts, when `[email]` turns them on.
    alerts: Option<imageguard_alerts::Alerts>,
    /// What the sync rules know of this machine's folders.
    sync_places: Arc<sync_places::ServicePlaces>,
    /// The service's own clock (the retention locks' time).
    clock: Arc<imageguard_retention::ServiceClock>,
    /// The kernel shield (`[guard] kernel_shield`), running or why not.
    shield: kernel_shield::KernelShield,
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Block the shutdown signals in this thread (and every thread it starts) so one `sigwait`
/// receives them.
fn block_signals() -> libc::sigset_t {
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
            libc::sigaddset(&mut set, s);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

/// The guard holds one descriptor per inode the kernel knows: raise the limit as far as the
/// kernel allows (root may raise the hard limit up to fs.nr_open).
fn raise_fd_limit() {
    let nr_open: libc::rlim_t = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(1 << 20);
    unsafe {
        let mut l: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) == 0 {
            let want = libc::rlimit {
                rlim_cur: nr_open.max(l.rlim_max),
                rlim_max: nr_open.max(l.rlim_max),
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &want) != 0 {
                l.rlim_cur = l.rlim_max;
                libc::setrlimit(libc::RLIMIT_NOFILE, &l);
            }
        }
    }
}

/// How the service ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// SIGTERM, SIGINT or SIGHUP (`systemctl stop`, or anyone who may signal it).
    BySignal,
    /// `imageguard stop` (with the admin lock's passphrase when one is set).
    OnRequest,
}

/// Run the service in the foreground until SIGTERM/SIGINT or `imageguard stop`.
pub fn run(paths: PathArgs) -> Result<Stopped> {
    let signals = block_signals();
    if unsafe { libc::geteuid() } != 0 {
        anyhow::bail!("the imageguard service must run as root (it mounts file systems)");
    }
    raise_fd_limit();
    // Keep other users from reading the guard's memory and descriptors.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0) };
    for dir in [&paths.state_dir, &paths.runtime_dir] {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    use std::os::unix::fs::PermissionsExt;
    // Only when it is not so already: under the admin lock, a kernel shield still pinned from
    // the last stop refuses every change to the state folder until this service takes it
    // over, a chmod to the same mode included.
    let secured =
        std::fs::metadata(&paths.state_dir).is_ok_and(|m| m.permissions().mode() & 0o7777 == 0o700);
    if !secured {
        std::fs::set_permissions(&paths.state_dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("securing {}", paths.state_dir.display()))?;
    }
    // With the admin lock set, files changed by hand are refused before anything reads them.
    let admin_lock = crate::admin_lock::AdminLock::load(&paths.state_dir)?;
    let refused_files = admin_lock.as_ref().map_or_else(Vec::new, |l| {
        admin::check_sealed_files(l, &admin::sealed_files(&paths))
    });
    let config = Config::load(&paths.config)?;
    // Before any volume is protected, so that each is shielded as it is.
    let shield =
        kernel_shield::KernelShield::start(config.guard.kernel_shield, &paths.runtime_dir)?;
    let store = CertifiedStore::new(paths.certified_list());
    let list = store.load()?;
    let resolver =
        Arc::new(CallerResolver::new(list).context("starting the watch over certified programs")?);
    resolver.watch().on_broken(Box::new(|program, change| {
        eprintln!(
            "imageguard: {program} is no longer certified: {change} (certify it again if that \
             was intended)"
        )
    }));
    let log = EventLog::start(&paths.events_db(), &paths.journal_socket)?;
    log.emit(Event::new(EventKind::ServiceStarted));
    for e in refused_files {
        log.emit(e);
    }
    let clock_file = paths.state_dir.join("clock.json");
    let clock = Arc::new(
        imageguard_retention::ServiceClock::start(&clock_file)
            .with_context(|| format!("starting the service's clock ({})", clock_file.display()))?,
    );
    imageguard_retention::clock::watch_wall_clock(|moved| {
        eprintln!(
            "imageguard: the system clock was set {} by {} s; the service's clock (retention \
             locks) did not move",
            if moved >= 0 { "forward" } else { "back" },
            moved.unsigned_abs()
        );
        true
    })
    .context("watching the system clock")?;
    let mut state = ServiceState::load(&paths.service_state())?;
    let on = state.on_at_start(&boot_id());
    let auto_protect_at_start = config.protection.auto_protect_backup_drives;
    let alerts = match imageguard_alerts::Alerts::start(&config.email) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("imageguard: email alerts are off: {e}");
            log.emit(
                Event::new(EventKind::ErrorBadEvent)
                    .with_detail(format!("email alerts are off: {e}")),
            );
            None
        }
    };
    let service = Arc::new(Service {
        keeper: Keeper::new(&paths.runtime_dir),
        callers: Arc::new(ProcCallers(resolver.clone())),
        sink: Arc::new(LogSink {
            log: log.clone(),
            alerts: alerts.clone(),
        }),
        alerts,
        resolver,
        store,
        log,
        sync_places: Arc::new(sync_places::ServicePlaces::new(config.sync_tools.allow)),
        clock,
        shield,
        config,
        paths: paths.clone(),
        changes: Mutex::new(()),
        inner: Mutex::new(Inner {
            state: state.clone(),
            volumes: BTreeMap::new(),
            unprotected_by_user: Default::default(),
            absent: BTreeMap::new(),
            vetting: Default::default(),
        }),
        stopping: std::sync::atomic::AtomicBool::new(false),
        release_at_stop: std::sync::atomic::AtomicBool::new(false),
        auto_protect: std::sync::atomic::AtomicBool::new(auto_protect_at_start),
        admin_lock: Mutex::new(admin_lock),
    });
    // The clock saved itself as it started.
    service.seal(&clock_file);
    let locked = service.admin_lock.lock().is_some();
    service.shield_admin_lock(locked);
    service.carry_locks_over();
    let mut state = service.inner.lock().state.clone();
    service.shield_certified();
    let table = imageguard_volume::MountTable::read().ok();
    if !on {
        eprintln!("imageguard: protection is off (turn it on with `imageguard on`)");
    }
    for v in state.volumes.iter().chain(&state.lock_held) {
        // With protection off (or the volume unprotected), only where a retention lock is in
        // force, the lock alone holding; and what the keeper held from before, to give back.
        if on && state.volumes.contains(v) || service.locked(v) || service.kept(v) {
            service.protect_user_volume_at_start(v, table.as_ref());
        }
    }
    service.protect_backup_drives(true);
    service.release_unlocked();
    report_shield_refusals(service.clone())?;
    state = service.inner.lock().state.clone();
    state.save(&paths.service_state())?;
    service.seal(&paths.service_state());
    server::serve(&paths.socket(), service.clone())?;
    if !service.config.metrics.listen.is_empty() {
        metrics::serve(service.clone(), &service.config.metrics.listen)?;
    }
    watch_guards(service.clone())?;
    auto_protect::follow(service.clone())?;
    let timeout = service.config.guard.stopped_timeout;
    let sentinel = if timeout > 0 {
        match sentinel::spawn(
            &paths.service_state(),
            &paths.runtime_dir,
            std::time::Duration::from_secs(timeout),
        ) {
            Ok(child) => Some(child),
            Err(e) => {
                eprintln!("imageguard: no sentinel ({e}): callers of a stopped service will wait");
                None
            }
        }
    } else {
        None
    };
    let protected = service.inner.lock().volumes.len();
    eprintln!(
        "imageguard: service running (pid {}), {protected} volume(s) protected, control socket {}",
        std::process::id(),
        paths.socket().display()
    );
    // Every volume is guarded (or its failure logged): systemd may start what comes after.
    notify::notify(&format!("READY=1\nSTATUS={protected} volume(s) protected"));
    let mut sig: libc::c_int = 0;
    unsafe { libc::sigwait(&signals, &mut sig) };
    notify::notify("STOPPING=1");
    eprintln!("imageguard: signal {sig}: giving protected volumes back and stopping");
    service.shutdown();
    if let Some(mut s) = sentinel {
        let _ = s.kill();
        let _ = s.wait();
    }
    let _ = std::fs::remove_file(paths.socket());
    Ok(
        if service
            .release_at_stop
            .load(std::sync::atomic::Ordering::SeqCst)
        {
            Stopped::OnRequest
        } else {
            Stopped::BySignal
        },
    )
}

/// Log what the kernel shield refuses (320), as it comes.
fn report_shield_refusals(service: Arc<Service>) -> Result<()> {
    eprintln!("imageguard: kernel shield {}", service.shield.describe());
    let Some(mut refusals) = service.shield.refusals() else {
        return Ok(());
    };
    std::thread::Builder::new()
        .name("shield-events".into())
        .spawn(move || {
            while !service.is_stopping() {
                match refusals.wait(std::time::Duration::from_millis(500)) {
                    Ok(rs) => {
                        for r in rs {
                            match r.what {
                                imageguard_shield::Refused::Uncertified => {
                                    eprintln!("imageguard: {}", kernel_shield::uncertified(&r))
                                }
                                _ => service.emit(service.shield.event_of(&r)),
                            }
                        }
                    }
                    Err(e) => {
                        log::warn!("kernel shield events: {e}");
                        std::thread::sleep(std::time::Duration::from_secs(1));
                    }
                }
            }
        })
        .context("starting the kernel shield's event thread")?;
    Ok(())
}

/// How often the service looks for guards that stopped without being told to.
const GUARD_WATCH_INTERVAL: std::time::Duration = std::time::Duration::from_millis(250);

/// After a mount change woke the watchdog, how long it waits before it may be woken again (a
/// burst of mounts, on a host that starts containers, costs one look per this much).
const MOUNT_CHANGE_GAP: std::time::Duration = std::time::Duration::from_millis(10);

/// Start the watchdog: a guard whose session ended while the service did not end it (someone
/// unmounted it in the host namespace, moved it away, or its FUSE connection was aborted, by an
/// administrator or by the kernel's request timeout) is reported (510) and mounted again from
/// the keeper; a second mount of a protected device is detached. It looks every quarter of a
/// second and at once when the mount table changes (POLLPRI on /proc/self/mountinfo), so a
/// guard moved away (without the kernel shield, which refuses the move) is replaced within
/// milliseconds.
fn watch_guards(service: Arc<Service>) -> Result<()> {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    let mounts = std::fs::File::open("/proc/self/mountinfo").context("opening mountinfo")?;
    std::thread::Builder::new()
        .name("guard watchdog".into())
        .spawn(move || {
            let mut round = 0u64;
            let mut next_round = std::time::Instant::now() + GUARD_WATCH_INTERVAL;
            loop {
                let wait = next_round.saturating_duration_since(std::time::Instant::now());
                let t = Timespec {
                    tv_sec: wait.as_secs() as i64,
                    tv_nsec: wait.subsec_nanos() as i64,
                };
                let mut fds = [PollFd::new(&mounts, PollFlags::PRI)];
                let mount_changed = poll(&mut fds, Some(&t)).unwrap_or(0) > 0;
                service.heal_stopped_guards();
                service.detach_foreign_mounts();
                if mount_changed && std::time::Instant::now() < next_round {
                    service.refresh_sync_places(&service.inner.lock());
                    std::thread::sleep(MOUNT_CHANGE_GAP);
                    continue;
                }
                next_round = std::time::Instant::now() + GUARD_WATCH_INTERVAL;
                service.release_absent_drives();
                // Volumes also go without a protect or unprotect (healed, pulled out, stopped):
                // the sync rules must never count a device number that is no longer a guard.
                service.refresh_sync_places(&service.inner.lock());
                round += 1;
                if round.is_multiple_of(8) {
                    service.shield_certified();
                }
                if round.is_multiple_of(RETENTION_SAVE_ROUNDS) {
                    service.save_retention();
                    service.expire_locks();
                }
            }
        })
        .context("starting the guard watchdog")?;
    Ok(())
}

/// Every this many watchdog rounds (10 s) the clock and the first-seen dates are saved.
const RETENTION_SAVE_ROUNDS: u64 = 40;

impl Service {
    /// Give the sync rules the volumes and destinations of now.
    fn refresh_sync_places(&self, inner: &Inner) {
        let guards: Vec<(PathBuf, bool)> = inner
            .volumes
            .iter()
            .map(|(mp, v)| (mp.clone(), v.info.network))
            .collect();
        let configured = &self.config.protection.destinations;
        let destinations = configured
            .iter()
            .chain(&inner.state.backup_destinations)
            .cloned()
            .collect();
        let vetted = configured
            .iter()
            .chain(&inner.vetting.vetted)
            .cloned()
            .collect();
        self.sync_places.refresh(
            &guards,
            destinations,
            vetted,
            inner.vetting.unapproved.clone(),
        );
    }

    fn emit(&self, e: Event) {
        if let Some(a) = &self.alerts {
            a.notify(&e);
        }
        self.log.emit(e);
    }

    /// Remember the whole volume protected at `mp` as a backup drive, by its file-system UUID.
    fn remember_drive(&self, mp: &Path) {
        let mut inner = self.inner.lock();
        let Some(uuid) = inner
            .volumes
            .get(mp)
            .filter(|v| v.info.mode == imageguard_volume::BackingMode::Hidden)
            .and_then(|v| v.info.uuid.clone())
        else {
            return;
        };
        let drives = &mut inner.state.backup_drives;
        drives.retain(|k| k.uuid != uuid);
        drives.push(crate::state::KnownDrive {
            uuid,
            mount_point: mp.to_path_buf(),
        });
        if let Err(e) = self.save_state(&inner) {
            eprintln!("imageguard: {e:#}");
        }
    }

    /// Whether the service is giving its volumes back and stopping.
    fn is_stopping(&self) -> bool {
        self.stopping.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Protect the local drives (on a system volume, the folders) the saved backup
    /// definitions back up to: "Automatically protect local backup drives". At start every
    /// one (`at_start`); later, not those the user unprotected by hand meanwhile, nor any
    /// while protection is off.
    ///
    /// The definitions are read, and their destinations remembered, whether or not drives are
    /// protected automatically: the sync rules ask "is this a backup destination of a saved
    /// definition?" either way.
    fn protect_backup_drives(&self, at_start: bool) {
        let table = match imageguard_volume::mountinfo::MountTable::read() {
            Ok(t) => t,
            Err(e) => {
                eprintln!("imageguard: backup definitions: reading the mount table: {e}");
                return;
            }
        };
        let found = self.config.saved_definitions(&self.paths.config);
        let approvals = self.inner.lock().state.approved_definitions.clone();
        let report = crate::backup_drives::resolve(found, &table, None, Some(&approvals));
        for p in &report.problems {
            eprintln!("imageguard: backup definitions: {p}");
        }
        self.remember_destinations(&report.destinations);
        {
            let mut inner = self.inner.lock();
            inner.vetting = destinations::Vetting::of(&report.destinations);
            self.refresh_sync_places(&inner);
        }
        if !self.auto_protect.load(std::sync::atomic::Ordering::Relaxed) {
            self.refresh_rules();
            return;
        }
        // With protection off, only drives a retention lock covers are guarded (by the lock).
        let only_locked = !self.inner.lock().state.protection_on;
        let mut done = std::collections::BTreeSet::new();
        let known = self.inner.lock().state.backup_drives.clone();
        for d in &report.destinations {
            let remembered = crate::backup_drives::remembered(d, &known, &table);
            let target = match (&remembered, crate::backup_drives::plan(d)) {
                (Some(now), _) => now.clone(),
                // The place of a backup drive that is not mounted now (ejected, unplugged):
                // guarding the empty folder would refuse the drive's own mount when it comes
                // back (a mount inside a protected volume is detached).
                (None, AutoProtect::Folder(p))
                    if known.iter().any(|k| p.starts_with(&k.mount_point)) =>
                {
                    if let Some(k) = known.iter().find(|k| p.starts_with(&k.mount_point)) {
                        self.note_absent_drive(
                            k,
                            format!(
                                "backup destination {} of {} ({})",
                                d.destination,
                                d.file.display(),
                                d.name
                            ),
                        );
                    }
                    continue;
                }
                (None, AutoProtect::Volume(p) | AutoProtect::Folder(p)) => p,
                (None, AutoProtect::Skip(why)) => {
                    eprintln!(
                        "imageguard: not protecting {} automatically: {why}",
                        d.destination
                    );
                    continue;
                }
            };
            if !done.insert(target.clone()) {
                continue;
            }
            let canonical = target.canonicalize().unwrap_or_else(|_| target.clone());
            if only_locked && !self.locked(&canonical) && !self.kept(&canonical) {
                continue;
            }
            {
                let inner = self.inner.lock();
                if inner.volumes.contains_key(&canonical)
                    || (!at_start && inner.unprotected_by_user.contains(&canonical))
                {
                    continue;
                }
            }
            if self.is_stopping() {
                return;
            }
            let why = format!(
                "backup destination {} of {} ({}){}",
                d.destination,
                d.file.display(),
                d.name,
                if remembered.is_some() {
                    ", on its drive mounted elsewhere now"
                } else {
                    ""
                }
            );
            match self.protect_now(&target, Origin::Definition(why)) {
                Ok(m) => {
                    eprintln!(
                        "imageguard: {m} (backup destination of {})",
                        d.file.display()
                    );
                    self.remember_drive(&canonical);
                }
                Err(e) => eprintln!("imageguard: {e:#}"),
            }
        }
        // Destinations found now on volumes protected before.
        self.refresh_rules();
    }

    /// Open (or, with 0 minutes, close) the maintenance window for key material on the
    /// protected volume holding `path`; logged as the user's partial disabling (340) or
    /// protection (330).
    fn maintenance(&self, path: &Path, minutes: u32) -> Result<Response> {
        let at = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
        let inner = self.inner.lock();
        let (mp, v) = inner
            .volumes
            .iter()
            .filter(|(mp, _)| at.starts_with(mp))
            .max_by_key(|(mp, _)| mp.components().count())
            .ok_or_else(|| anyhow::anyhow!("{} is not on a protected volume", path.display()))?;
        let length = std::time::Duration::from_secs(u64::from(minutes.min(60)) * 60);
        v.shared.gate.set_key_window(length);
        let (kind, msg) = if minutes == 0 {
            (
                EventKind::UserProtectedVolume,
                format!(
                    "{}: maintenance window closed; repository keys are only added to",
                    mp.display()
                ),
            )
        } else {
            (
                EventKind::UserDisabledVolume,
                format!(
                    "{}: maintenance window open for {minutes} minutes: certified programs may \
                     remove and rewrite repository keys until then",
                    mp.display()
                ),
            )
        };
        self.emit(
            Event::new(kind)
                .with_volume(volume_ref(&v.info))
                .with_detail(msg.clone()),
        );
        Ok(Response::ok(msg))
    }

    /// Protect `path` now, for `origin`.
    fn protect_now(&self, path: &Path, origin: Origin) -> Result<String> {
        let _changing = self.changes.lock();
        self.protect_while_changing(path, origin)
    }

    /// [`Service::protect_now`] for a caller that holds `changes`.
    fn protect_while_changing(&self, path: &Path, origin: Origin) -> Result<String> {
        let mp = volumes::canonical(path)?;
        if self.inner.lock().volumes.contains_key(&mp) {
            return Ok(format!("{} is already protected", mp.display()));
        }
        // The scan and the mount run without `inner`: status and the watchdog carry on.
        let state = self.inner.lock().state.clone();
        let protected = volumes::protect(
            &mp,
            &self.config,
            &self.keeper,
            volumes::Ports {
                callers: self.callers.clone(),
                sink: self.sink.clone(),
                sync_places: self.sync_places.clone(),
                destinations_on: &|info| {
                    state.destinations_on(&info.mount_point, info.uuid.as_deref())
                },
                retention_for: &|info| self.retention_for(info),
                written: &|f| self.seal(f),
            },
        );
        let mut inner = self.inner.lock();
        match protected {
            Ok(mut v) => {
                if let Origin::Definition(why) = &origin {
                    v.reason = Some(match v.info.mode {
                        imageguard_volume::BackingMode::Folder => {
                            format!("{why} (on a system volume: this folder only)")
                        }
                        imageguard_volume::BackingMode::Hidden => why.clone(),
                    });
                }
                // Protection off (or this volume unprotected) while a lock is in force on
                // it: the lock alone holds.
                if !inner.state.protection_on || inner.state.lock_held.contains(&mp) {
                    v.shared.gate.set_off(true);
                }
                let vref = volume_ref(&v.info);
                if self.keeper.exists() {
                    if let Err(e) = self.shield.hold(&self.keeper.ns_file()) {
                        log::warn!("kernel shield: the keeper's pin: {e:#}");
                    }
                }
                let linked: Vec<u64> = v.shared.linked_backups.lock().iter().copied().collect();
                if let Err(e) = self
                    .shield
                    .cover(&v.info, vref.clone(), v.backing_root, linked)
                {
                    eprintln!(
                        "imageguard: the kernel shield does not cover {}: {e:#}",
                        mp.display()
                    );
                    self.emit(
                        Event::new(EventKind::ErrorProtectingVolume)
                            .with_volume(vref.clone())
                            .with_error(libc::EIO)
                            .with_detail(format!(
                                "the kernel shield does not cover it (the guard protects it \
                                 alone): {e:#}"
                            )),
                    );
                }
                if origin == Origin::User {
                    self.emit(Event::new(EventKind::UserProtectedVolume).with_volume(vref.clone()));
                }
                self.emit(Event::new(EventKind::GuardStartedByService).with_volume(vref.clone()));
                let protected = Event::new(EventKind::VolumeProtected).with_volume(vref);
                self.emit(match &origin {
                    Origin::Definition(why) => protected.with_detail(why.clone()),
                    _ => protected,
                });
                let msg = format!(
                    "{} is protected ({} backup files, {})",
                    mp.display(),
                    v.shared
                        .backup_files
                        .load(std::sync::atomic::Ordering::Relaxed),
                    match v.info.mode {
                        imageguard_volume::BackingMode::Hidden => "backing hidden",
                        imageguard_volume::BackingMode::Folder => "folder only: weaker, see status",
                    }
                );
                // Only the user's own protection is remembered; the service's is derived again
                // (from the state, from the definitions) at every start.
                if origin == Origin::User && !inner.state.volumes.contains(&mp) {
                    inner.state.volumes.push(mp.clone());
                }
                // A drive that came back is no longer absent.
                let uuid = v.info.uuid.clone();
                inner
                    .absent
                    .retain(|at, a| *at != mp && (a.uuid.is_none() || a.uuid != uuid));
                inner.volumes.insert(mp, v);
                self.refresh_sync_places(&inner);
                Ok(msg)
            }
            Err((e, code)) => {
                self.emit(
                    Event::new(EventKind::ErrorProtectingVolume)
                        .with_volume(path_ref(&mp))
                        .with_error(code)
                        .with_detail(format!("{e:#}")),
                );
                Err(e.context(format!("cannot protect {}", mp.display())))
            }
        }
    }

    fn unprotect_now(&self, mp: &Path, by_user: bool, inner: &mut Inner) -> Result<()> {
        if let Some(r) = inner.volumes.get(mp).and_then(|v| v.retention.clone()) {
            self.save_ages(&r.store);
        }
        let refreshed = self.unprotect_volume(mp, by_user, inner);
        self.refresh_sync_places(inner);
        refreshed
    }

    fn unprotect_volume(&self, mp: &Path, by_user: bool, inner: &mut Inner) -> Result<()> {
        let v = inner
            .volumes
            .remove(mp)
            .ok_or_else(|| anyhow::anyhow!("{} is not protected", mp.display()))?;
        let vref = volume_ref(&v.info);
        match volumes::unprotect(v, &self.keeper) {
            Ok(()) => {
                self.uncover(mp);
                if by_user {
                    self.emit(Event::new(EventKind::UserDisabledVolume).with_volume(vref));
                }
                Ok(())
            }
            Err(e) => {
                self.emit(
                    Event::new(EventKind::ErrorUnprotectingVolume)
                        .with_volume(vref)
                        .with_error(libc::EIO)
                        .with_detail(format!("{e:#}")),
                );
                Err(e)
            }
        }
    }

    /// Re-mount every guard whose session ended behind the service's back.
    fn heal_stopped_guards(&self) {
        // Under `changes` from the start, so that a shutdown cannot slip in between taking a
        // dead guard off the list and mounting it again; while another change runs (a long
        // protect), wait for a later round rather than stall the watchdog.
        let Some(_changing) = self.changes.try_lock() else {
            return;
        };
        let stopped: Vec<ProtectedVolume> = {
            let mut inner = self.inner.lock();
            let table = imageguard_volume::MountTable::read().ok();
            let gone: Vec<PathBuf> = inner
                .volumes
                .iter()
                .filter(|(_, v)| {
                    !v.guard.is_running() || table.as_ref().is_some_and(|t| v.guard_moved(t))
                })
                .map(|(mp, _)| mp.clone())
                .collect();
            gone.iter()
                .filter_map(|mp| inner.volumes.remove(mp))
                .collect()
        };
        for old in stopped {
            let mp = old.info.mount_point.clone();
            self.emit(
                Event::new(EventKind::ErrorProtectingVolume)
                    .with_volume(volume_ref(&old.info))
                    .with_error(libc::ENOTCONN)
                    .with_detail(
                        "the guard was unmounted, moved away or its connection aborted; \
                         mounting it again",
                    ),
            );
            log::warn!("guard on {} stopped; mounting it again", mp.display());
            let reason = old.reason.clone();
            // A guard moved away still runs: its connection is aborted (its mount, wherever it
            // went, answers ENOTCONN). Dropping the old guard leaves its (dead) mount alone;
            // protecting again replaces it.
            if old.guard.is_running() {
                old.abort_guard();
            }
            drop(old);
            match self.protect_while_changing(&mp, Origin::Service) {
                // Protected again for the same reason.
                Ok(_) => {
                    if let Some(v) = self.inner.lock().volumes.get_mut(&mp) {
                        v.reason = reason;
                    }
                }
                Err(e) => eprintln!("imageguard: {e:#}"),
            }
        }
    }

    /// A hidden volume mounted again in the host namespace (root can mount the device a second
    /// time and get the same, writable, file system), and any file system mounted on top of or
    /// inside a protected volume (it would hide the backups, and backup programs would write
    /// into it), are detached at once and reported (510).
    fn detach_foreign_mounts(&self) {
        // Under the lock, so that a volume being given back (its mount restored to the host) is
        // never mistaken for a foreign mount.
        let inner = self.inner.lock();
        let watched: Vec<&imageguard_volume::backing::VolumeInfo> =
            inner.volumes.values().map(|v| &v.info).collect();
        if watched.is_empty() {
            return;
        }
        let Ok(table) = imageguard_volume::MountTable::read() else {
            return;
        };
        for info in watched {
            // A protected folder's device is mounted where the folder lives: only a whole
            // volume's device has no business being mounted elsewhere.
            let again = match info.mode {
                imageguard_volume::BackingMode::Hidden => {
                    imageguard_volume::backing::foreign_mounts(
                        &table,
                        &info.device_number,
                        &info.also_mounted_at,
                    )
                }
                imageguard_volume::BackingMode::Folder => vec![],
            }
            .into_iter()
            .map(|mp| {
                (
                    mp,
                    "the protected device was mounted again at {} behind the guard",
                )
            });
            let covering = imageguard_volume::backing::covering_mounts(&table, &info.mount_point)
                .into_iter()
                .map(|mp| (mp, "a file system was mounted at {}, on top of or inside the protected volume (it would hide the backups, and backup programs would write into it)"));
            for (mp, what) in again.chain(covering) {
                let result = imageguard_volume::mountapi::detach(&mp);
                let what = what.replace("{}", &mp.display().to_string());
                let detail = match &result {
                    Ok(()) => format!("{what}: detached"),
                    Err(e) => format!("{what}; detaching it failed: {e}"),
                };
                log::warn!("{detail}");
                self.emit(
                    Event::new(EventKind::ErrorProtectingVolume)
                        .with_volume(volume_ref(info))
                        .with_error(libc::EBUSY)
                        .with_detail(detail),
                );
            }
        }
    }

    /// The kernel shield follows the certified programs (their processes are reached into by
    /// nobody but the service).
    fn shield_certified(&self) {
        if let Err(e) = self.shield.set_certified(&self.resolver.list()) {
            log::warn!("kernel shield: certified programs: {e:#}");
        }
    }

    /// The volume at `mp` is no longer protected: the kernel shield lets it go.
    fn uncover(&self, mp: &Path) {
        if let Err(e) = self.shield.uncover(mp) {
            eprintln!(
                "imageguard: the kernel shield keeps {}: {e:#}",
                mp.display()
            );
        }
    }

    fn save_state(&self, inner: &Inner) -> Result<()> {
        inner.state.save(&self.paths.service_state())?;
        self.seal(&self.paths.service_state());
        Ok(())
    }

    fn shutdown(&self) {
        self.stopping
            .store(true, std::sync::atomic::Ordering::SeqCst);
        // Waits for a protect in progress, so that the keeper is not dismantled under it.
        let _changing = self.changes.lock();
        self.save_retention();
        let mut inner = self.inner.lock();
        let mps: Vec<PathBuf> = inner.volumes.keys().cloned().collect();
        // With the admin lock set, a stop that did not come with its passphrase (`systemctl
        // stop`, a plain SIGTERM) gives nothing back: ransomware that can send a signal must
        // not get the volumes by it.
        let unauthorized = self.admin_lock.lock().is_some()
            && !self
                .release_at_stop
                .load(std::sync::atomic::Ordering::SeqCst);
        let mut closed = vec![];
        let mut kept_by_admin_lock = vec![];
        for mp in mps {
            // A locked volume is not given back: its guard dies with the service and leaves it
            // closed (as a killed service does) until the service starts again.
            if inner
                .volumes
                .get(&mp)
                .and_then(|v| v.retention.as_ref())
                .is_some_and(|r| r.longest() > 0)
            {
                closed.push(mp.display().to_string());
                continue;
            }
            if unauthorized {
                kept_by_admin_lock.push(mp.display().to_string());
                continue;
            }
            if let Err(e) = self.unprotect_now(&mp, false, &mut inner) {
                eprintln!("imageguard: {e:#}");
            }
        }
        let stopped = Event::new(EventKind::ServiceStopped);
        let mut why = vec![];
        if !closed.is_empty() {
            why.push(format!(
                "a retention lock is in force on {}: not given back",
                closed.join(", ")
            ));
        }
        if !kept_by_admin_lock.is_empty() {
            why.push(format!(
                "the admin lock is set and the stop did not come with its passphrase: {} not \
                 given back (`imageguard stop` with the passphrase gives volumes back)",
                kept_by_admin_lock.join(", ")
            ));
        }
        // Volumes left closed stay shielded until the next service takes the shield over.
        self.shield.stop(!why.is_empty());
        if why.is_empty() {
            if let Err(e) = self.keeper.dismantle() {
                log::warn!("keeper: {e}");
            }
            self.emit(stopped);
        } else {
            let msg = format!(
                "{}; unreachable (reads too) until the service starts again",
                why.join("; ")
            );
            eprintln!("imageguard: {msg}");
            self.emit(stopped.with_detail(msg));
        }
        self.log.close();
    }

    fn status(&self) -> StatusReport {
        // Recent events are counted too, but status never waits long on the disk.
        self.log.flush_within(std::time::Duration::from_millis(500));
        let inner = self.inner.lock();
        let counts = EventDb::open_read_only(self.log.db_path())
            .and_then(|db| db.counts())
            .unwrap_or_default();
        StatusReport {
            protection: if inner.state.protection_on {
                "on"
            } else {
                "off"
            }
            .into(),
            restart_on_reboot: inner.state.protection_on || inner.state.off_until_boot.is_some(),
            pid: std::process::id(),
            volumes: inner
                .volumes
                .values()
                .map(|v| {
                    let mut r = volumes::report(v);
                    r.kernel_shield = self.shield.describe_volume(&v.info.mount_point);
                    r
                })
                .collect(),
            kernel_shield: self.shield.describe(),
            kernel_shield_on: self.shield.is_on(),
            absent: inner.absent.iter().map(|(mp, a)| a.report(mp)).collect(),
            certified_programs: self
                .resolver
                .list()
                .entries
                .iter()
                .filter(|e| e.sync_tool.is_none())
                .count(),
            sync_tools: self
                .resolver
                .list()
                .entries
                .iter()
                .filter(|e| e.sync_tool.is_some())
                .count(),
            sync_tools_allowed: imageguard_gate::SyncPlaces::allowed(self.sync_places.as_ref()),
            admin_lock: self.admin_lock.lock().is_some(),
            auto_protect_backup_drives: self
                .auto_protect
                .load(std::sync::atomic::Ordering::Relaxed),
            certified_broken: self
                .certified_programs()
                .iter()
                .filter(|p| !p.intact)
                .count(),
            warnings: imageguard_identity::tamper::memory_writes()
                .warning()
                .into_iter()
                .collect(),
            retention_locks: inner
                .state
                .retention_locks
                .iter()
                .filter(|r| r.until.is_none_or(|u| u > self.clock.now()))
                .map(|r| report::LockReport {
                    folder: r.folder.clone(),
                    days: r.days,
                    until: r.until.map(|u| self.wall_time_of(u)),
                })
                .collect(),
            event_counts: counts,
        }
    }

    /// Every certified program, and whether its closure is intact now.
    fn certified_programs(&self) -> Vec<CertifiedProgram> {
        let watch = self.resolver.watch();
        self.resolver
            .list()
            .entries
            .iter()
            .map(|e| {
                let state = watch.state_of(&e.path);
                CertifiedProgram {
                    entry: e.clone(),
                    intact: matches!(state, Some(None)),
                    change: state.flatten(),
                }
            })
            .collect()
    }

    fn certify(
        &self,
        path: &Path,
        options: &ClosureOptions,
        helper_of: Option<&Path>,
        sync_tool: Option<imageguard_policy::sync_tools::Dialect>,
    ) -> Result<Response> {
        imageguard_identity::check_sync_tool(path, sync_tool)?;
        let c = certify_path(path, options, now())?;
        let mut list = (*self.resolver.list()).clone();
        let renewed = c.entry.path.clone();
        let mut entry = c.entry;
        entry.sync_tool = sync_tool;
        let helper_of = helper_of.map(|p| p.to_string_lossy());
        let (msg, recorded) =
            imageguard_policy::helpers::record(&mut list, entry, helper_of.as_deref());
        if !recorded {
            return Ok(Response::ok(msg));
        }
        self.store.save(&list)?;
        self.seal(&self.paths.certified_list());
        self.resolver.set_list(list, Some(&renewed));
        self.shield_certified();
        Ok(Response::Ok {
            message: msg,
            warnings: c.warnings,
        })
    }

    fn uncertify(&self, path: &Path) -> Result<Response> {
        let mut list = (*self.resolver.list()).clone();
        let key = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
        let removed = list
            .remove(&key.to_string_lossy())
            .or_else(|| list.remove(&path.to_string_lossy()))
            .ok_or_else(|| anyhow::anyhow!("{} is not certified", path.display()))?;
        self.store.save(&list)?;
        self.seal(&self.paths.certified_list());
        self.resolver.set_list(list, None);
        self.shield_certified();
        Ok(Response::ok(format!("uncertified {}", removed.path)))
    }

    fn dispatch(&self, req: Request) -> Result<Response> {
        Ok(match req {
            Request::Status => Response::Status(Box::new(self.status())),
            Request::Certified => Response::Certified {
                programs: self.certified_programs(),
            },
            Request::Certify {
                path,
                force,
                also,
                mut learned,
                homes,
                learn_job,
                helper_of,
                sync_tool,
            } => {
                if learn_job.is_some() {
                    let key = path.canonicalize().unwrap_or_else(|_| path.clone());
                    learned.extend(self.resolver.finish_learning(&key.to_string_lossy()));
                }
                self.certify(
                    &path,
                    &ClosureOptions {
                        listed: also,
                        learned,
                        homes,
                        force,
                        as_helper: helper_of.is_some(),
                    },
                    helper_of.as_deref(),
                    sync_tool,
                )?
            }
            Request::Learn {
                path,
                job,
                force,
                homes,
            } => {
                let key = path.canonicalize()?;
                if self.resolver.list().get(&key.to_string_lossy()).is_none() {
                    self.certify(
                        &path,
                        &ClosureOptions {
                            homes,
                            force,
                            ..ClosureOptions::default()
                        },
                        None,
                        None,
                    )?;
                }
                self.resolver
                    .start_learning(&key.to_string_lossy(), job)
                    .with_context(|| format!("the job (pid {job})"))?;
                Response::ok(format!("learning what {} maps", key.display()))
            }
            Request::Uncertify { path } => self.uncertify(&path)?,
            Request::Protect { path } => {
                if !self.inner.lock().state.protection_on {
                    anyhow::bail!("protection is off; turn it on with `imageguard on` first");
                }
                volumes::check_protectable(&path)?;
                if let Some(msg) = self.protect_lock_held(&path)? {
                    return Ok(Response::ok(msg));
                }
                let msg = self.protect_now(&path, Origin::User)?;
                self.save_state(&self.inner.lock())?;
                // A whole drive is remembered by UUID: found again wherever it is mounted.
                self.remember_drive(&volumes::canonical(&path)?);
                Response::ok(msg)
            }
            Request::Maintenance { path, minutes } => self.maintenance(&path, minutes)?,
            Request::VerifyFile { mount_point, step } => self.verify_file(&mount_point, step)?,
            Request::SetSetting { key, value } => self.set_setting(&key, &value)?,
            Request::LockSet { passphrase } => self.lock_set(&passphrase)?,
            Request::LockClear => self.lock_clear()?,
            Request::EmailTest => match imageguard_alerts::mailer::send_test(&self.config.email) {
                Ok(()) => Response::ok(format!(
                    "test mail sent to {} through {}:{}",
                    self.config.email.to.join(", "),
                    self.config.email.server,
                    self.config.email.port
                )),
                Err(e) => anyhow::bail!("test mail not sent: {e}"),
            },
            // Unwrapped by `admit`; one nested in another is refused.
            Request::Authorized { .. } => anyhow::bail!("a nested authorized request"),
            Request::Events { limit } => {
                self.log.flush_within(std::time::Duration::from_millis(500));
                let events = EventDb::open_read_only(self.log.db_path())?.query(
                    &imageguard_eventstore::EventFilter {
                        limit: Some(limit.min(10_000)),
                        ..Default::default()
                    },
                )?;
                Response::Events { events }
            }
            Request::Metrics => Response::Metrics {
                text: self.metrics(),
            },
            Request::Eject { path } => {
                let _changing = self.changes.lock();
                let mp = volumes::canonical(&path)?;
                let v = {
                    let mut inner = self.inner.lock();
                    match inner.volumes.get(&mp) {
                        None => anyhow::bail!("{} is not protected", mp.display()),
                        Some(v) if v.info.mode != imageguard_volume::BackingMode::Hidden => {
                            anyhow::bail!(
                                "{} is a protected folder, not a drive: unprotect it instead",
                                mp.display()
                            )
                        }
                        Some(_) => {}
                    }
                    inner.state.volumes.retain(|v| v != &mp);
                    self.save_state(&inner)?;
                    inner.volumes.remove(&mp).expect("checked above")
                };
                let vref = volume_ref(&v.info);
                match volumes::eject(v, &self.keeper) {
                    Ok(()) => {
                        self.uncover(&mp);
                        self.emit(
                            Event::new(EventKind::UserDisabledVolume)
                                .with_volume(vref)
                                .with_detail("ejected: the drive can be unplugged"),
                        );
                        Response::ok(format!(
                            "{} ejected: nothing of it is mounted, the drive can be unplugged",
                            mp.display()
                        ))
                    }
                    Err(e) => {
                        self.emit(
                            Event::new(EventKind::ErrorUnprotectingVolume)
                                .with_volume(vref)
                                .with_error(libc::EBUSY)
                                .with_detail(format!("{e:#}")),
                        );
                        return Err(e);
                    }
                }
            }
            Request::Unprotect { path } => {
                let _changing = self.changes.lock();
                let mut inner = self.inner.lock();
                let mp = path.canonicalize().unwrap_or_else(|_| path.clone());
                if inner.absent.contains_key(&mp) && self.lock_covers(&inner.state, &mp) {
                    // Guarded by its lock alone when it comes back.
                    inner.unprotected_under_lock(&mp);
                    self.save_state(&inner)?;
                    return Ok(Response::ok(format!(
                        "{} is absent; a retention lock is in force on it, so when it comes back \
                         it is guarded by the lock alone (protection off)",
                        mp.display()
                    )));
                }
                if inner.absent.remove(&mp).is_some() {
                    inner.state.volumes.retain(|v| v != &mp);
                    inner.state.backup_drives.retain(|k| k.mount_point != mp);
                    inner.unprotected_by_user.insert(mp.clone());
                    self.save_state(&inner)?;
                    return Ok(Response::ok(format!(
                        "{} was absent; it is forgotten and not protected when it comes back",
                        mp.display()
                    )));
                }
                let mp = volumes::canonical(&path)?;
                if let Some((days, files)) =
                    inner.volumes.get(&mp).and_then(|v| self.hold_by_lock(v))
                {
                    inner.unprotected_under_lock(&mp);
                    self.save_state(&inner)?;
                    return Ok(Response::ok(format!(
                        "{}: protection is off, but a {days}-day retention lock is in force on it: \
                         its guard stays and refuses changes to the {files} file(s) the lock \
                         holds (and to repository keys) until they are old enough",
                        mp.display()
                    )));
                }
                self.unprotect_now(&mp, true, &mut inner)?;
                inner
                    .state
                    .backup_destinations
                    .retain(|d| !d.starts_with(&mp));
                inner.state.volumes.retain(|v| v != &mp);
                inner.unprotected_by_user.insert(mp.clone());
                self.save_state(&inner)?;
                Response::ok(format!("{} is no longer protected", mp.display()))
            }
            Request::Off { restart_on_reboot } => {
                let _changing = self.changes.lock();
                let mut inner = self.inner.lock();
                let mps: Vec<PathBuf> = inner.volumes.keys().cloned().collect();
                let mut errors = vec![];
                let mut held = vec![];
                for mp in &mps {
                    if let Some((days, files)) =
                        inner.volumes.get(mp).and_then(|v| self.hold_by_lock(v))
                    {
                        held.push(format!(
                            "{} ({days}-day lock, {files} file(s) held)",
                            mp.display()
                        ));
                        continue;
                    }
                    if let Err(e) = self.unprotect_now(mp, true, &mut inner) {
                        errors.push(format!("{e:#}"));
                    }
                }
                inner.state.protection_on = false;
                inner.state.off_until_boot = restart_on_reboot.then(boot_id);
                self.save_state(&inner)?;
                if !errors.is_empty() {
                    anyhow::bail!("{}", errors.join("; "));
                }
                let mut msg = format!(
                    "protection is off on {} volume(s){}",
                    mps.len(),
                    if restart_on_reboot {
                        "; it comes back at the next boot"
                    } else {
                        " until `imageguard on`"
                    }
                );
                if !held.is_empty() {
                    msg.push_str(&format!(
                        ". A retention lock is in force on {}: their guard stays and refuses \
                         changes to the files it holds (and to repository keys) until they are \
                         old enough",
                        held.join(", ")
                    ));
                }
                Response::ok(msg)
            }
            Request::ApproveDefinitions { file, name, revoke } => {
                self.approve_definitions(&file, name.as_deref(), revoke)?
            }
            Request::Stop => {
                self.release_at_stop
                    .store(true, std::sync::atomic::Ordering::SeqCst);
                // The main thread waits for this signal and then gives the volumes back.
                rustix::process::kill_process(
                    rustix::process::getpid(),
                    rustix::process::Signal::TERM,
                )
                .context("signalling the service to stop")?;
                Response::ok(
                    "stopping: every protected volume is given back (but those a retention \
                     lock is in force on)",
                )
            }
            Request::On => {
                let vols = {
                    let mut inner = self.inner.lock();
                    inner.state.protection_on = true;
                    inner.state.off_until_boot = None;
                    self.save_state(&inner)?;
                    // Guards the lock kept: whole again, but for the volumes the user
                    // unprotected.
                    for (mp, v) in &inner.volumes {
                        if v.shared.gate.is_off() && !inner.state.lock_held.contains(mp) {
                            v.shared.gate.set_off(false);
                        }
                    }
                    inner.state.volumes.clone()
                };
                let mut msgs = vec![];
                for v in vols {
                    match self.protect_now(&v, Origin::User) {
                        Ok(m) => msgs.push(m),
                        Err(e) => msgs.push(format!("{e:#}")),
                    }
                }
                Response::ok(format!("protection is on. {}", msgs.join("; ")))
            }
        })
    }
}

impl Handler for Service {
    fn handle(&self, req: Request) -> Response {
        let req = match self.admit(req) {
            Ok(r) => r,
            Err(refusal) => return refusal,
        };
        match self.dispatch(req) {
            Ok(r) => r,
            Err(e) => {
                let code = e
                    .chain()
                    .find_map(|c| {
                        c.downcast_ref::<std::io::Error>()
                            .and_then(|io| io.raw_os_error())
                    })
                    .unwrap_or(1);
                Response::error(format!("{e:#}"), code)
            }
        }
    }
}
