//! Backup drives that are not here: pulled out without `eject` (the watchdog notices the device
//! gone and lets the guard and the hidden mount go, so nothing hangs on a dead device), or not
//! plugged in when the service started. `status` shows them absent, not failed; the moment a
//! file system with the same UUID is mounted again (anywhere), it is protected again.

use std::path::{Path, PathBuf};

use imageguard_policy::{Event, EventKind};
use imageguard_volume::mountinfo::MountTable;

use super::report::AbsentReport;
use super::volumes::{self, volume_ref};
use super::{now, Origin, Service};
use crate::backup_drives::mounted_uuid;

/// A protected drive that is not here now.
#[derive(Debug, Clone)]
pub struct AbsentDrive {
    pub uuid: Option<String>,
    pub device: String,
    /// When it was found missing (seconds since the epoch).
    pub since: i64,
    /// How it went (or that it was not here at start).
    pub why: String,
    /// Why it was protected, when the service protected it on its own (a definition).
    pub reason: Option<String>,
}

impl AbsentDrive {
    pub fn report(&self, mount_point: &Path) -> AbsentReport {
        AbsentReport {
            mount_point: mount_point.to_path_buf(),
            uuid: self.uuid.clone(),
            device: self.device.clone(),
            since: self.since,
            why: self.why.clone(),
            reason: self.reason.clone(),
        }
    }
}

impl Service {
    /// Let go of every whole volume whose device is gone (a drive pulled out without eject): its
    /// guard and hidden mount are detached, it is logged (510, ENODEV) and kept as absent.
    pub(super) fn release_absent_drives(&self) {
        let Some(_changing) = self.changes.try_lock() else {
            return;
        };
        let gone: Vec<(PathBuf, String)> = self
            .inner
            .lock()
            .volumes
            .iter()
            .filter_map(|(mp, v)| Some((mp.clone(), v.presence.as_ref()?.gone()?)))
            .collect();
        for (mp, why) in gone {
            let Some(v) = self.inner.lock().volumes.remove(&mp) else {
                continue;
            };
            // Its device is gone: the numbers may soon name another.
            self.uncover(&mp);
            let vref = volume_ref(&v.info);
            let absent = AbsentDrive {
                uuid: v.info.uuid.clone(),
                device: v.info.device.clone(),
                since: now(),
                why: why.clone(),
                reason: v.reason.clone(),
            };
            // Logged before it shows as absent (whoever sees it absent finds why in the
            // events), then absent from now on (status never shows it neither protected nor
            // absent).
            let detail = format!(
                "{why}: its guard is let go; it is protected again when it is mounted again"
            );
            log::warn!("{}: {detail}", mp.display());
            eprintln!("imageguard: {}: {detail}", mp.display());
            self.emit(
                Event::new(EventKind::ErrorProtectingVolume)
                    .with_volume(vref.clone())
                    .with_error(libc::ENODEV)
                    .with_detail(detail),
            );
            self.inner.lock().absent.insert(mp.clone(), absent);
            if let Err(e) = volumes::abandon(v, &self.keeper) {
                eprintln!(
                    "imageguard: {}: letting its guard go failed: {e:#}",
                    mp.display()
                );
                self.emit(
                    Event::new(EventKind::ErrorUnprotectingVolume)
                        .with_volume(vref)
                        .with_error(libc::EIO)
                        .with_detail(format!("{why}: letting its guard go failed: {e:#}")),
                );
            }
        }
    }

    /// Protect again every absent drive whose file system is mounted again (found by UUID,
    /// wherever it is mounted now).
    pub(super) fn return_absent_drives(&self) {
        let waiting: Vec<(PathBuf, AbsentDrive)> = {
            let inner = self.inner.lock();
            if !inner.state.protection_on || inner.absent.is_empty() {
                return;
            }
            inner
                .absent
                .iter()
                .map(|(mp, a)| (mp.clone(), a.clone()))
                .collect()
        };
        let Ok(table) = MountTable::read() else {
            return;
        };
        for (old, a) in waiting {
            let Some(uuid) = &a.uuid else { continue };
            let Some(now_at) = mounted_uuid(&table, uuid) else {
                continue;
            };
            if self.is_stopping() {
                return;
            }
            self.protect_returned(&old, &now_at, a.reason.clone());
        }
    }

    /// Protect a drive that came back at `now_at` (it was at `old`), for the same reason as
    /// before; a drive the user protected stays the user's at its new place.
    fn protect_returned(&self, old: &Path, now_at: &Path, reason: Option<String>) {
        match self.protect_now(now_at, Origin::Service) {
            Ok(m) => {
                eprintln!("imageguard: {m} (a backup drive that came back)");
                let mut inner = self.inner.lock();
                let canonical = now_at.canonicalize().unwrap_or_else(|_| now_at.into());
                if let Some(v) = inner.volumes.get_mut(&canonical) {
                    v.reason = reason;
                }
                if old != canonical && inner.state.volumes.iter().any(|v| v == old) {
                    inner.state.volumes.retain(|v| v != old);
                    inner.state.volumes.push(canonical.clone());
                    if let Err(e) = self.save_state(&inner) {
                        eprintln!("imageguard: {e:#}");
                    }
                }
                drop(inner);
                self.remember_drive(&canonical);
            }
            Err(e) => eprintln!("imageguard: {e:#}"),
        }
    }

    /// At start, a volume the user protected: a backup drive seen before is protected wherever
    /// its file system is mounted now, or shown absent when it is not plugged in (guarding the
    /// empty mount point would detach the drive's own mount when it comes); anything else is
    /// protected where it is.
    pub(super) fn protect_user_volume_at_start(&self, mp: &Path, table: Option<&MountTable>) {
        let known = self
            .inner
            .lock()
            .state
            .backup_drives
            .iter()
            .find(|k| k.mount_point == mp)
            .cloned();
        // Held by the keeper from before (the service was killed), or something mounted there:
        // protected where it is, as the user asked.
        let here = table.is_some_and(|t| t.at(mp).is_some())
            || self
                .keeper
                .open_kept(&imageguard_volume::keeper::volume_id(mp))
                .is_some();
        let (Some(k), Some(table), false) = (known, table, here) else {
            if let Err(e) = self.protect_now(mp, Origin::Service) {
                eprintln!("imageguard: {e:#}");
            }
            return;
        };
        match mounted_uuid(table, &k.uuid) {
            Some(now_at) => self.protect_returned(mp, &now_at, None),
            None => {
                eprintln!(
                    "imageguard: {}: backup drive UUID={} is not plugged in; it is protected \
                     when it is mounted",
                    mp.display(),
                    k.uuid
                );
                self.inner.lock().absent.insert(
                    mp.to_path_buf(),
                    AbsentDrive {
                        uuid: Some(k.uuid),
                        device: "unknown".into(),
                        since: now(),
                        why: "not plugged in when the service started".into(),
                        reason: None,
                    },
                );
            }
        }
    }

    /// A backup drive of a definition, seen before and not mounted now: shown absent.
    pub(super) fn note_absent_drive(&self, drive: &crate::state::KnownDrive, reason: String) {
        self.inner
            .lock()
            .absent
            .entry(drive.mount_point.clone())
            .or_insert_with(|| AbsentDrive {
                uuid: Some(drive.uuid.clone()),
                device: "unknown".into(),
                since: now(),
                why: "not plugged in".into(),
                reason: Some(reason),
            });
    }
}
