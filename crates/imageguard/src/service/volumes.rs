//! Protecting and unprotecting one volume: prepare the backing, scan it, mount the guard over it,
//! and the reverse.

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use imageguard_gate::walk::scan_with;
use imageguard_gate::{CallerSource, EventSink, Gate, SyncPlaces};
use imageguard_guardfs::file_handle::FileHandle;
use imageguard_guardfs::{mount_guard, scan, GuardOptions, GuardShared, MountedGuard};
use imageguard_policy::VolumeRef;

use super::retention::VolumeRetention;
use imageguard_volume::backing::{self, VolumeInfo};
use imageguard_volume::keeper::Keeper;
use imageguard_volume::presence::Presence;
use imageguard_volume::{BackingMode, VolumeError};

use super::report::VolumeReport;
use crate::config::Config;

/// Kernel cache validity when the guard is the only way to the backing file system.
const HIDDEN_CACHE_TTL: Duration = Duration::from_secs(3600);
/// ... and for a protected folder, whose file system stays reachable by other paths.
const FOLDER_CACHE_TTL: Duration = Duration::from_secs(1);

pub struct ProtectedVolume {
    pub info: VolumeInfo,
    pub id: String,
    pub guard: MountedGuard,
    pub shared: Arc<GuardShared>,
    /// Why the service protects it, when not the user's own protection (a definition's
    /// backup destination).
    pub reason: Option<String>,
    /// The device under a whole volume, to notice it pulled out without eject.
    pub presence: Option<Presence>,
    /// The saved definitions' backup destinations on it that its rules hold.
    pub destinations: Vec<PathBuf>,
    /// The retention lock on it, when the configuration sets one.
    pub retention: Option<Arc<VolumeRetention>>,
    /// The backing's root folder as `stat` knows it (device, inode): for a folder of a larger
    /// file system, what the kernel shield marks.
    pub backing_root: (u64, u64),
    /// The guard's own mount's device number (major, minor), when the mount table showed it:
    /// a guard no longer at its mount point (moved away) is known by it.
    pub guard_device: Option<(u32, u32)>,
}

impl ProtectedVolume {
    /// Whether its guard is gone from its mount point although its session runs (moved away
    /// with `mount --move`, which the kernel shield cannot refuse), as `table` shows it.
    pub fn guard_moved(&self, table: &imageguard_volume::MountTable) -> bool {
        let Some(dev) = self.guard_device else {
            return false;
        };
        !table
            .entries
            .iter()
            .any(|e| e.mount_point == self.info.mount_point && (e.major, e.minor) == dev)
    }

    /// Abort the guard's FUSE connection (through fusectl, when it is mounted): a moved guard's
    /// mount answers ENOTCONN from then on and its threads end.
    pub fn abort_guard(&self) {
        if let Some((_, minor)) = self.guard_device {
            let abort = format!("/sys/fs/fuse/connections/{minor}/abort");
            if let Err(e) = std::fs::write(&abort, "1") {
                log::warn!("aborting the moved guard's connection ({abort}): {e}");
            }
        }
    }
}

pub fn volume_ref(info: &VolumeInfo) -> VolumeRef {
    VolumeRef {
        device: info.device.clone(),
        uuid: info.uuid.clone(),
        mount_point: info.mount_point.display().to_string(),
    }
}

/// A volume reference for events about a path that could not be protected.
pub fn path_ref(path: &Path) -> VolumeRef {
    VolumeRef {
        device: "unknown".into(),
        uuid: None,
        mount_point: path.display().to_string(),
    }
}

/// What a new guard is wired to: the service's adapters, and what the service knows of the
/// volume once it is identified.
pub struct Ports<'a> {
    pub callers: Arc<dyn CallerSource>,
    pub sink: Arc<dyn EventSink>,
    pub sync_places: Arc<dyn SyncPlaces>,
    /// The saved definitions' backup destinations on it.
    pub destinations_on: &'a dyn Fn(&VolumeInfo) -> Vec<PathBuf>,
    /// Its retention lock, when one is set.
    pub retention_for: &'a dyn Fn(&VolumeInfo) -> Option<Arc<VolumeRetention>>,
    /// A state file just written (sealed while the admin lock is set).
    pub written: &'a dyn Fn(&Path),
}

/// Protect `path`: the error carries an errno-like code for event 510.
pub fn protect(
    path: &Path,
    config: &Config,
    keeper: &Keeper,
    ports: Ports<'_>,
) -> Result<ProtectedVolume, (anyhow::Error, i32)> {
    let prepared = backing::prepare(path, keeper).map_err(|e: VolumeError| {
        let code = e.code();
        (anyhow::Error::new(e), code)
    })?;
    let mut b = prepared.backing;
    let destinations = (ports.destinations_on)(&b.info);
    let rules = config
        .rules_for(&b.info.mount_point, &destinations)
        .map_err(|e| (e, libc::EINVAL))?;
    let retention = (ports.retention_for)(&b.info);
    // Under a lock, every backup file found is dated (now, unless seen before).
    let found = match &retention {
        Some(r) => {
            let found = scan_with(
                &rules,
                b.root.as_fd(),
                Some(&mut |dir, name| {
                    if let Some(key) = FileHandle::key_at(dir, name) {
                        r.found(&key)
                    }
                }),
            );
            match r.store.save() {
                Ok(()) => (ports.written)(r.store.file()),
                Err(e) => log::warn!("saving first-seen dates: {e}"),
            }
            found
        }
        None => scan(&rules, b.root.as_fd()),
    };
    let mut gate = Gate::new(ports.callers, ports.sink, volume_ref(&b.info))
        .with_sync_places(ports.sync_places, b.info.network);
    if let Some(r) = &retention {
        gate = gate.with_retention(r.clone());
    }
    let gate = Arc::new(gate);
    let shared = Arc::new(GuardShared::new(gate, rules));
    shared
        .backup_files
        .store(found.backup_files, Ordering::Relaxed);
    *shared.linked_backups.lock() = found.linked_backups;
    let opts = GuardOptions {
        mount_point: b.info.mount_point.clone(),
        threads: config.guard.serving_threads(),
        passthrough: config.guard.passthrough,
        mount_attrs: b.info.mount_attrs,
        cache_ttl: if b.info.mode == BackingMode::Hidden {
            HIDDEN_CACHE_TTL
        } else {
            FOLDER_CACHE_TTL
        },
    };
    let root_stat = rustix::fs::fstat(&b.root).map_err(|e| {
        (
            anyhow::Error::new(std::io::Error::from(e)).context("the backing's root"),
            e.raw_os_error(),
        )
    })?;
    let backing_root = (root_stat.st_dev, root_stat.st_ino);
    let mut writers = false;
    let mut detached = false;
    let detach = prepared.detach_host;
    let hidden = b.info.mode == BackingMode::Hidden;
    let mounted = mount_guard(b.root, &opts, shared.clone(), || {
        writers = detach()?;
        detached = true;
        Ok(())
    });
    let guard = match mounted {
        Ok(g) => g,
        Err(e) => {
            let code = e.raw_os_error().unwrap_or(libc::EIO);
            if detached && hidden {
                if let Err(r) = backing::restore(&b.id, &b.info.mount_point, keeper) {
                    log::error!(
                        "could not give {} back after a failed protect: {r}",
                        b.info.mount_point.display()
                    );
                }
            }
            return Err((
                anyhow::Error::new(e).context(format!("mounting the guard on {}", path.display())),
                code,
            ));
        }
    };
    b.info.writers_at_protect = writers;
    let guard_device = imageguard_volume::MountTable::read().ok().and_then(|t| {
        t.at(&b.info.mount_point)
            .filter(|e| e.fstype == imageguard_volume::backing::GUARD_FSTYPE)
            .map(|e| (e.major, e.minor))
    });
    let presence = hidden
        .then(|| Presence::record(&b.info.device_number))
        .flatten();
    Ok(ProtectedVolume {
        destinations,
        retention,
        presence,
        backing_root,
        guard_device,
        info: b.info,
        id: b.id,
        guard,
        shared,
        reason: None,
    })
}

/// Unmount the guard and give a hidden volume back to the host.
pub fn unprotect(v: ProtectedVolume, keeper: &Keeper) -> Result<()> {
    let mp = v.info.mount_point.clone();
    v.guard
        .unmount()
        .with_context(|| format!("unmounting the guard on {}", mp.display()))?;
    if v.info.mode == BackingMode::Hidden {
        backing::restore(&v.id, &mp, keeper)
            .with_context(|| format!("giving {} back to the host", mp.display()))?;
    }
    Ok(())
}

/// Let a whole volume go so that its drive can be unplugged: the guard is unmounted and the
/// hidden backing unmounted in the keeper, without giving it back to the host first (so there
/// is no moment when it is writable by anyone).
pub fn eject(v: ProtectedVolume, keeper: &Keeper) -> Result<()> {
    let mp = v.info.mount_point.clone();
    if v.info.mode != BackingMode::Hidden {
        anyhow::bail!(
            "{} is a protected folder, not a whole volume: unprotect it instead",
            mp.display()
        );
    }
    let id = v.id.clone();
    v.guard
        .unmount()
        .with_context(|| format!("unmounting the guard on {}", mp.display()))?;
    // The guard's descriptors on the backing close with it.
    drop(v.shared);
    backing::release(&id, keeper).with_context(|| {
        format!(
            "unmounting {} (close what still uses it, then eject again)",
            mp.display()
        )
    })
}

/// Let go of a whole volume whose device is gone: the guard and the hidden backing are
/// detached lazily (a process may still hold a file of the dead file system; nothing waits on
/// the device).
pub fn abandon(v: ProtectedVolume, keeper: &Keeper) -> Result<()> {
    let mp = v.info.mount_point.clone();
    let id = v.id.clone();
    let guard = v
        .guard
        .detach()
        .with_context(|| format!("detaching the guard on {}", mp.display()));
    drop(v.shared);
    backing::abandon(&id, keeper).with_context(|| format!("letting {} go", mp.display()))?;
    guard
}

pub fn report(v: &ProtectedVolume) -> VolumeReport {
    let i = &v.info;
    let protection = match i.mode {
        BackingMode::Hidden => {
            "volume: backing hidden from every process but the guard".to_string()
        }
        BackingMode::Folder => format!(
            "folder only (weaker): the files stay reachable through {} by unmounting the guard",
            i.also_mounted_at
                .first()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "their file system".into())
        ),
    };
    let protection = if v.shared.gate.is_off() {
        format!(
            "OFF but for the retention lock: only the files it holds and repository keys are \
             refused ({protection})"
        )
    } else {
        protection
    };
    VolumeReport {
        mount_point: i.mount_point.clone(),
        device: i.device.clone(),
        device_number: i.device_number.clone(),
        fstype: i.fstype.clone(),
        uuid: i.uuid.clone(),
        location: if i.network { "network" } else { "local" }.into(),
        mode: i.mode,
        protection,
        files_protected: v.shared.backup_files.load(Ordering::Relaxed),
        denied: v.shared.gate.counters.denied.load(Ordering::Relaxed),
        allowed_certified: v
            .shared
            .gate
            .counters
            .allowed_certified
            .load(Ordering::Relaxed),
        allowed_sync: v.shared.gate.counters.allowed_sync.load(Ordering::Relaxed),
        lock_only: v.shared.gate.is_off(),
        lock_days: v.retention.as_ref().map_or(0, |r| r.longest()),
        locked_files: v.retention.as_ref().map_or(0, |r| r.held_now()),
        key_window_minutes_left: v
            .shared
            .gate
            .key_window_left()
            .map(|d| d.as_secs().div_ceil(60)),
        passthrough: v.shared.passthrough.load(Ordering::Relaxed),
        guard_running: v.guard.is_running(),
        also_mounted_at: i.also_mounted_at.clone(),
        writers_at_protect: i.writers_at_protect,
        reason: v.reason.clone(),
        kernel_shield: None,
    }
}

pub fn canonical(path: &Path) -> Result<PathBuf> {
    path.canonicalize()
        .with_context(|| format!("{}", path.display()))
}

/// What `protect` must refuse before trying, in one line that says what to do instead: a file
/// (protect its folder), a system volume (protect the folder the backups are in).
pub fn check_protectable(path: &Path) -> Result<()> {
    let meta = std::fs::metadata(path).with_context(|| format!("{}", path.display()))?;
    if !meta.is_dir() {
        anyhow::bail!(
            "{} is a file: protect the folder that holds it (or the drive it is on)",
            path.display()
        );
    }
    if imageguard_volume::mountinfo::is_system_mount_point(path) {
        anyhow::bail!(
            "{} is a system volume: protect the folder your backups are in (for example {}) \
             rather than the whole file system",
            path.display(),
            path.join("backups").display()
        );
    }
    Ok(())
}
