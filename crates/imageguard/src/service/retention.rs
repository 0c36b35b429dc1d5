//! The retention lock on each protected volume ([`Retention`] for its guard): which locks are
//! in force on it (`[retention]`: days by protected volume or destination folder, and those
//! shortened or removed that stay until their period has passed), when the guard first saw
//! each of its backup files (its first-seen store in the state folder, filled at protect time
//! and as files are created), and their age on the service's own clock. Files never seen are
//! young.
//!
//! And what a lock means for the admin's own commands: `off` and `unprotect` leave a locked
//! volume's guard in place with only the lock (and key material) refusing, until no lock is in
//! force on it; a service stop leaves it closed (see `Service::shutdown`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use imageguard_gate::Retention;
use imageguard_policy::lock_changes::{carry_over, in_force, LockChange};
use imageguard_policy::{Event, EventKind};
use imageguard_retention::{AgeStore, ServiceClock};
use parking_lot::RwLock;

use super::volumes::{path_ref, volume_ref, ProtectedVolume};
use super::Service;
use crate::state::ServiceState;

/// The locks (absolute folder, days) of the configuration that cover the volume mounted at
/// `mount_point`: a lock on the volume or an ancestor covers all of it, one on a folder inside
/// it covers that folder.
pub fn locks_on(configured: &[(PathBuf, u32)], mount_point: &Path) -> Vec<(PathBuf, u32)> {
    configured
        .iter()
        .filter(|(_, days)| *days > 0)
        .filter_map(|(folder, days)| {
            if mount_point.starts_with(folder) {
                Some((mount_point.to_path_buf(), *days))
            } else if folder.starts_with(mount_point) {
                Some((folder.clone(), *days))
            } else {
                None
            }
        })
        .collect()
}

/// The file a volume's first-seen store is kept in: by file-system UUID when it has one (it
/// follows the drive to another mount point), else by mount point.
pub fn store_file(state_dir: &Path, uuid: Option<&str>, mount_point: &Path) -> PathBuf {
    let name = match uuid {
        Some(u) => format!("uuid-{u}"),
        None => format!(
            "at-{}",
            mount_point
                .to_string_lossy()
                .trim_matches('/')
                .replace('/', "_")
        ),
    };
    state_dir.join("ages").join(format!("{name}.jsonl"))
}

/// One volume's lock.
#[derive(Debug)]
pub struct VolumeRetention {
    clock: Arc<ServiceClock>,
    pub store: AgeStore,
    /// The locks in force on it (folder, days); fewer once a shortened lock's period passes.
    locks: RwLock<Vec<(PathBuf, u32)>>,
}

impl VolumeRetention {
    pub fn new(clock: Arc<ServiceClock>, store: AgeStore, locks: Vec<(PathBuf, u32)>) -> Self {
        VolumeRetention {
            clock,
            store,
            locks: RwLock::new(locks),
        }
    }

    /// The longest lock on the volume, in days (0: none).
    pub fn longest(&self) -> u32 {
        self.locks.read().iter().map(|(_, d)| *d).max().unwrap_or(0)
    }

    /// The locks in force on it now.
    pub fn set_locks(&self, locks: Vec<(PathBuf, u32)>) {
        *self.locks.write() = locks;
    }

    /// How many files the longest lock holds now.
    pub fn held_now(&self) -> usize {
        self.store
            .younger_than(u64::from(self.longest()) * 86_400, self.clock.now())
    }

    /// A backup file found at protect time: dated now unless seen before.
    pub fn found(&self, key: &[u8]) {
        self.store.seen(key, self.clock.now());
    }
}

impl Retention for VolumeRetention {
    fn any_lock(&self) -> bool {
        !self.locks.read().is_empty()
    }

    fn lock_days(&self, path: &Path) -> u32 {
        self.locks
            .read()
            .iter()
            .filter(|(folder, _)| path.starts_with(folder))
            .map(|(_, d)| *d)
            .max()
            .unwrap_or(0)
    }

    fn lock_folder_within(&self, dir: &Path) -> bool {
        self.locks
            .read()
            .iter()
            .any(|(folder, _)| folder.starts_with(dir))
    }

    fn age(&self, key: &[u8]) -> Option<Duration> {
        let now = self.clock.now();
        match self.store.first_seen(key) {
            Some(t) => Some(Duration::from_secs(now.saturating_sub(t))),
            None => {
                self.store.seen(key, now);
                None
            }
        }
    }

    fn seen(&self, key: &[u8]) {
        self.store.seen(key, self.clock.now());
    }

    fn gone(&self, key: &[u8]) {
        self.store.forget(key);
    }
}

/// "14-day lock on /mnt/usb", for the log.
fn describe(folder: &Path, days: u32) -> String {
    format!("{days}-day retention lock on {}", folder.display())
}

impl Service {
    /// The configuration's locks, folders made absolute and canonical.
    fn configured_locks(&self) -> Vec<(PathBuf, u32)> {
        self.config
            .retention
            .iter()
            .map(|(p, d)| (p.canonicalize().unwrap_or_else(|_| p.clone()), *d))
            .collect()
    }

    /// The locks in force now (folder, days).
    pub(super) fn locks_in_force(&self) -> Vec<(PathBuf, u32)> {
        in_force(&self.inner.lock().state.retention_locks, self.clock.now())
    }

    /// Whether a lock in force covers (some of) the volume or folder at `mp` (not while
    /// holding `inner`: see [`Service::lock_covers`]).
    pub(super) fn locked(&self, mp: &Path) -> bool {
        !locks_on(&self.locks_in_force(), mp).is_empty()
    }

    /// [`Service::locked`] with the service's state at hand.
    pub(super) fn lock_covers(&self, state: &ServiceState, mp: &Path) -> bool {
        !locks_on(&in_force(&state.retention_locks, self.clock.now()), mp).is_empty()
    }

    /// `protect` of a volume the user unprotected while a lock kept its guard: protection on
    /// there again. `None` when it is not such a volume.
    pub(super) fn protect_lock_held(&self, path: &Path) -> anyhow::Result<Option<String>> {
        let _changing = self.changes.lock();
        let mp = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
        let mut inner = self.inner.lock();
        if !inner.state.lock_held.contains(&mp) {
            return Ok(None);
        }
        inner.state.lock_held.retain(|m| m != &mp);
        inner.unprotected_by_user.remove(&mp);
        if !inner.state.volumes.contains(&mp) {
            inner.state.volumes.push(mp.clone());
        }
        self.save_state(&inner)?;
        let Some(v) = inner.volumes.get(&mp) else {
            // Absent: protected when it comes back.
            return Ok(Some(format!(
                "{} is protected again when it comes back",
                mp.display()
            )));
        };
        v.shared.gate.set_off(false);
        self.emit(Event::new(EventKind::UserProtectedVolume).with_volume(volume_ref(&v.info)));
        Ok(Some(format!("{} is protected", mp.display())))
    }

    /// Carry the recorded locks over to the configuration's (a lock shortened or removed stays
    /// until its period has passed; a lengthened one is in force at once), record and log
    /// what changed. At start, and then every save round (a kept lock's period ends).
    /// Returns whether any lock ended.
    pub(super) fn carry_locks_over(&self) -> bool {
        let now = self.clock.now();
        let configured = self.configured_locks();
        let changes = {
            let mut inner = self.inner.lock();
            let (records, changes) = carry_over(&inner.state.retention_locks, &configured, now);
            if records == inner.state.retention_locks {
                return false;
            }
            inner.state.retention_locks = records;
            if let Err(e) = self.save_state(&inner) {
                eprintln!("imageguard: {e:#}");
            }
            changes
        };
        let mut ended = false;
        for change in changes {
            let (kind, folder, msg) = match &change {
                LockChange::Set { folder, days } => (
                    EventKind::UserProtectedVolume,
                    folder,
                    format!("{} in force", describe(folder, *days)),
                ),
                LockChange::Kept {
                    folder,
                    days,
                    to,
                    until,
                } => (
                    EventKind::UserDisabledVolume,
                    folder,
                    format!(
                        "{} {} in the configuration: the {days} days stay in force until {} \
                         (a lock's changes wait for its period)",
                        describe(folder, *days),
                        if *to == 0 {
                            "removed".to_string()
                        } else {
                            format!("shortened to {to} days")
                        },
                        self.wall_time_of(*until)
                    ),
                ),
                LockChange::Expired { folder, days } => {
                    ended = true;
                    (
                        EventKind::UserDisabledVolume,
                        folder,
                        format!(
                            "{} ended: its period after it was shortened has passed",
                            describe(folder, *days)
                        ),
                    )
                }
            };
            eprintln!("imageguard: {msg}");
            self.emit(
                Event::new(kind)
                    .with_volume(path_ref(folder))
                    .with_detail(msg),
            );
        }
        ended
    }

    /// The wall-clock time (as the log writes it) of service-clock second `at`, as things
    /// stand now (the wall clock may be set meanwhile; the service's clock decides).
    pub(super) fn wall_time_of(&self, at: u64) -> String {
        let ahead = at.saturating_sub(self.clock.now());
        let ns = crate::timefmt::now_ns().saturating_add(
            i64::try_from(ahead)
                .unwrap_or(i64::MAX / 2)
                .saturating_mul(1_000_000_000),
        );
        crate::timefmt::format_ns(ns)
    }

    /// Every save round: locks whose period passed are no longer in force; volumes whose guard
    /// stayed only for a lock are given back once none is in force on them.
    pub(super) fn expire_locks(&self) {
        if self.carry_locks_over() {
            self.release_unlocked();
        }
    }

    /// Whether the service's keeper still holds the volume at `mp` from before (the service
    /// stopped while a lock was in force on it, or was killed): it must be taken over, to be
    /// given back if nothing is to guard it.
    pub(super) fn kept(&self, mp: &Path) -> bool {
        self.keeper
            .open_kept(&imageguard_volume::keeper::volume_id(mp))
            .is_some()
    }

    /// Give back the volumes whose guard is off and on which no lock is in force any more
    /// (and forget those the user unprotected).
    pub(super) fn release_unlocked(&self) {
        let Some(_changing) = self.changes.try_lock() else {
            // A long protect runs: the next round does it.
            return;
        };
        let force = self.locks_in_force();
        let mut inner = self.inner.lock();
        let mut release = vec![];
        for (mp, v) in &inner.volumes {
            let on = locks_on(&force, mp);
            if let Some(r) = &v.retention {
                r.set_locks(on.clone());
            }
            if v.shared.gate.is_off() && on.is_empty() {
                release.push(mp.clone());
            }
        }
        for mp in release {
            let msg = format!(
                "{}: no retention lock is in force on it any more; protection was off, so it \
                 is given back",
                mp.display()
            );
            eprintln!("imageguard: {msg}");
            if let Err(e) = self.unprotect_now(&mp, false, &mut inner) {
                eprintln!("imageguard: {e:#}");
            }
        }
        // The volumes the user unprotected are forgotten once no lock holds them (absent ones
        // too: as an unprotect forgets them).
        let forgotten: Vec<PathBuf> = inner
            .state
            .lock_held
            .iter()
            .filter(|mp| !inner.volumes.contains_key(*mp) && locks_on(&force, mp).is_empty())
            .cloned()
            .collect();
        for mp in &forgotten {
            inner.state.lock_held.retain(|m| m != mp);
            inner
                .state
                .backup_destinations
                .retain(|d| !d.starts_with(mp));
            inner.unprotected_by_user.insert(mp.clone());
        }
        if !forgotten.is_empty() {
            if let Err(e) = self.save_state(&inner) {
                eprintln!("imageguard: {e:#}");
            }
        }
    }

    /// Turn protection off on `v` if a lock is in force on it: its guard stays, only the lock
    /// and key material refusing. Returns the lock's days and the files it holds now, or
    /// `None` (the caller gives the volume back).
    pub(super) fn hold_by_lock(&self, v: &ProtectedVolume) -> Option<(u32, usize)> {
        let r = v.retention.as_ref().filter(|r| r.any_lock())?;
        v.shared.gate.set_off(true);
        let held = (r.longest(), r.held_now());
        self.emit(
            Event::new(EventKind::UserDisabledVolume)
                .with_volume(volume_ref(&v.info))
                .with_detail(format!(
                    "protection off, but the {}-day retention lock still holds {} file(s): \
                     nobody may delete or change them until they are old enough",
                    held.0, held.1
                )),
        );
        Some(held)
    }
    /// Save the service's clock and every volume's first-seen dates.
    pub(super) fn save_retention(&self) {
        match self.clock.save() {
            Ok(()) => self.seal(self.clock.file()),
            Err(e) => eprintln!("imageguard: saving the service's clock: {e}"),
        }
        let stores: Vec<_> = self
            .inner
            .lock()
            .volumes
            .values()
            .filter_map(|v| v.retention.clone())
            .collect();
        for r in stores {
            self.save_ages(&r.store);
        }
    }

    /// Save a volume's first-seen dates (sealed while the admin lock is set: dates made older
    /// by hand would release young backups).
    pub(super) fn save_ages(&self, store: &imageguard_retention::AgeStore) {
        match store.save() {
            Ok(()) => self.seal(store.file()),
            Err(e) => eprintln!("imageguard: saving first-seen dates: {e}"),
        }
    }

    /// The retention lock for a volume about to be protected, when one is in force on it.
    pub(super) fn retention_for(
        &self,
        info: &imageguard_volume::backing::VolumeInfo,
    ) -> Option<Arc<VolumeRetention>> {
        let locks = locks_on(&self.locks_in_force(), &info.mount_point);
        if locks.is_empty() {
            return None;
        }
        let file = store_file(
            &self.paths.state_dir,
            info.uuid.as_deref(),
            &info.mount_point,
        );
        match imageguard_retention::AgeStore::open(&file) {
            Ok(store) => Some(Arc::new(VolumeRetention::new(
                self.clock.clone(),
                store,
                locks,
            ))),
            Err(e) => {
                // Without its dates every file counts as new: stricter, never weaker.
                eprintln!(
                    "imageguard: {}: {e}; every file counts as new",
                    file.display()
                );
                // Saved beside it: the unreadable file is kept for the admin to look at.
                let empty = imageguard_retention::AgeStore::empty(&file.with_extension("new"));
                Some(Arc::new(VolumeRetention::new(
                    self.clock.clone(),
                    empty,
                    locks,
                )))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_locks_cover_a_volume() {
        let configured = vec![
            (PathBuf::from("/mnt/usb"), 14),
            (PathBuf::from("/mnt/usb/borg"), 30),
            (PathBuf::from("/mnt/other"), 7),
            (PathBuf::from("/mnt/usb/off"), 0),
            (PathBuf::from("/"), 2),
        ];
        let on = locks_on(&configured, Path::new("/mnt/usb"));
        assert_eq!(
            on,
            vec![
                (PathBuf::from("/mnt/usb"), 14),
                (PathBuf::from("/mnt/usb/borg"), 30),
                (PathBuf::from("/mnt/usb"), 2),
            ]
        );
        assert_eq!(
            store_file(Path::new("/s"), None, Path::new("/mnt/usb")),
            PathBuf::from("/s/ages/at-mnt_usb.jsonl")
        );
    }
}
