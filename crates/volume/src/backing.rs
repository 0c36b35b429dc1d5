//! One protected volume's backing: the tree the guard serves, reached through a descriptor, and
//! (for a whole mounted volume) taken out of the host's reach.
//!
//! - *Hidden* (the path is a mount point): the mount is cloned into the keeper namespace, the
//!   host's own mount is made read-only (so descriptors opened before protection can no longer
//!   modify anything) and detached; the guard is then mounted in its place.
//! - *Folder* (the path is a folder inside a larger file system): served from a descriptor of the
//!   folder; the folder stays reachable through other paths of its file system, which is weaker,
//!   and `status` says so.

use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::fsid;
use crate::keeper::{volume_id, Keeper};
use crate::mountapi;
use crate::mountinfo::{MountEntry, MountTable};

/// File-system type of a guard mount.
pub const GUARD_FSTYPE: &str = "fuse.imageguard";

#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{0}: no mount contains this path")]
    NoMount(PathBuf),
    #[error("{0}: a guard is mounted here but its backing is gone; unmount it (umount -l) and protect again")]
    OrphanGuard(PathBuf),
}

impl VolumeError {
    /// errno-like code for events.
    pub fn code(&self) -> i32 {
        match self {
            VolumeError::Io { source, .. } => source.raw_os_error().unwrap_or(libc::EIO),
            VolumeError::NoMount(_) => libc::ENOENT,
            VolumeError::OrphanGuard(_) => libc::EBUSY,
        }
    }
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> VolumeError + '_ {
    move |source| VolumeError::Io {
        path: path.to_path_buf(),
        source,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackingMode {
    /// A whole mounted volume, hidden in the keeper namespace.
    Hidden,
    /// A folder of a larger file system (weaker: reachable through other paths).
    Folder,
}

/// What a protected volume is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeInfo {
    pub mount_point: PathBuf,
    pub device: String,
    pub device_number: String,
    pub fstype: String,
    pub uuid: Option<String>,
    pub network: bool,
    pub mode: BackingMode,
    /// Other host mounts of the same file system (they still expose it).
    pub also_mounted_at: Vec<PathBuf>,
    /// The host mount could not be made read-only: files were open for writing at protect time.
    pub writers_at_protect: bool,
    /// MOUNT_ATTR_* flags of the original mount to reproduce on the guard.
    pub mount_attrs: u32,
}

/// The backing of one volume.
#[derive(Debug)]
pub struct Backing {
    pub root: OwnedFd,
    pub info: VolumeInfo,
    /// Id of the volume's directory in the keeper.
    pub id: String,
}

/// Take the host's mount at `mount_point` away once the guard stands ready: made read-only
/// first (so no writer slips in between), then detached. Whether files were open for writing
/// (the read-only remount was refused as busy; they keep writing to the old mount).
fn hide_host(mount_point: &Path) -> std::io::Result<bool> {
    let writers = match mountapi::make_read_only(mount_point) {
        Ok(()) => false,
        // (Its error names the path: the kind says EBUSY.)
        Err(e) if e.kind() == std::io::ErrorKind::ResourceBusy => true,
        Err(e) => return Err(e),
    };
    mountapi::detach(mount_point)?;
    Ok(writers)
}

fn mount_attrs(e: &MountEntry) -> u32 {
    let mut a = 0;
    for (opt, bit) in [
        ("ro", 0x1),
        ("nosuid", 0x2),
        ("nodev", 0x4),
        ("noexec", 0x8),
    ] {
        if e.has_option(opt) {
            a |= bit;
        }
    }
    a
}

/// Mounts of the device `device_number` (major:minor) in `table` that are neither a guard nor
/// one of `known` (the other mounts it already had when it was protected): someone mounted the
/// protected volume again behind the guard.
pub fn foreign_mounts(table: &MountTable, device_number: &str, known: &[PathBuf]) -> Vec<PathBuf> {
    table
        .entries
        .iter()
        .filter(|e| {
            e.device_number() == device_number
                && e.fstype != GUARD_FSTYPE
                && !known.contains(&e.mount_point)
        })
        .map(|e| e.mount_point.clone())
        .collect()
}

/// Mounts on top of the guard at `mount_point`, or inside it, in `table`: whoever made them
/// hides the backups behind them, and backup programs would write into them.
pub fn covering_mounts(table: &MountTable, mount_point: &Path) -> Vec<PathBuf> {
    let mut guard_seen = false;
    let mut out = vec![];
    // In mount order: what comes after the guard at its own mount point is on top of it.
    for e in &table.entries {
        if e.mount_point == mount_point && e.fstype == GUARD_FSTYPE && !guard_seen {
            guard_seen = true;
            continue;
        }
        if guard_seen && e.mount_point.starts_with(mount_point) {
            out.push(e.mount_point.clone());
        }
    }
    out
}

fn info_from(
    e: &MountEntry,
    mount_point: &Path,
    mode: BackingMode,
    table: &MountTable,
) -> VolumeInfo {
    let also = table
        .entries
        .iter()
        .filter(|o| {
            o.major == e.major
                && o.minor == e.minor
                && o.mount_point != mount_point
                && o.fstype != GUARD_FSTYPE
        })
        .map(|o| o.mount_point.clone())
        .collect();
    VolumeInfo {
        mount_point: mount_point.to_path_buf(),
        device: e.source.clone(),
        device_number: e.device_number(),
        fstype: e.fstype.clone(),
        uuid: fsid::fs_uuid(Path::new(&e.source), &e.fstype),
        network: fsid::is_network_fstype(&e.fstype),
        mode,
        also_mounted_at: also,
        writers_at_protect: false,
        mount_attrs: mount_attrs(e),
    }
}

/// A backing ready to be served, and the step that takes the host's view away; run the step just
/// before the guard is attached.
pub struct Prepared {
    pub backing: Backing,
    pub detach_host: Box<dyn FnOnce() -> io::Result<bool> + Send>,
}

/// Prepare the backing of `path` for protection (or recover it from the keeper after a restart).
pub fn prepare(path: &Path, keeper: &Keeper) -> Result<Prepared, VolumeError> {
    let mp = path.canonicalize().map_err(io_at(path))?;
    let table = MountTable::read().map_err(io_at(Path::new("/proc/self/mountinfo")))?;
    let id = volume_id(&mp);
    let top = table.at(&mp).cloned();

    let guard_on_top = top.as_ref().is_some_and(|t| t.fstype == GUARD_FSTYPE);
    let kept = keeper
        .open_kept(&id)
        .transpose()
        .map_err(io_at(&keeper.keep_dir(&id)))?;
    // What the keeper holds is stale when its device is gone and another file system is
    // mounted at the mount point now (the drive was pulled out while the service was down, and
    // another took its place): that one is protected. While the device is there, the keeper's
    // backing is served whatever was mounted over the mount point meanwhile.
    let kept = match (kept, &top) {
        (Some((_, entry)), Some(t))
            if t.fstype != GUARD_FSTYPE
                && (t.major, t.minor) != (entry.major, entry.minor)
                && crate::presence::device_gone(entry.major, entry.minor) =>
        {
            log::warn!(
                "{}: the keeper held {} ({}:{}), now {} ({}:{}) is mounted there: letting the old one go",
                mp.display(),
                entry.source,
                entry.major,
                entry.minor,
                t.source,
                t.major,
                t.minor
            );
            abandon(&id, keeper).map_err(io_at(&keeper.keep_dir(&id)))?;
            None
        }
        (kept, _) => kept,
    };
    if let Some((root, entry)) = kept {
        // The keeper still holds this volume from an earlier run (the service was killed or
        // restarted): serve it again from there. A dead guard left on the mount point is replaced.
        let info = info_from(&entry, &mp, BackingMode::Hidden, &table);
        let stale = mp.clone();
        // The same file system mounted at the mount point again (an earlier protect that
        // failed half-way, a drive plugged in again): hidden like a fresh one.
        let host_copy = top.is_some_and(|t| {
            t.fstype != GUARD_FSTYPE && t.major == entry.major && t.minor == entry.minor
        });
        return Ok(Prepared {
            backing: Backing { root, info, id },
            detach_host: Box::new(move || {
                if guard_on_top {
                    mountapi::detach(&stale)?;
                }
                if host_copy {
                    return hide_host(&stale);
                }
                Ok(false)
            }),
        });
    }
    if guard_on_top {
        return Err(VolumeError::OrphanGuard(mp));
    }

    match top {
        Some(entry) => {
            keeper.ensure().map_err(io_at(&keeper.ns_file()))?;
            let tree = mountapi::clone_tree(&mp).map_err(io_at(&mp))?;
            let dir = keeper.keep_dir(&id);
            let root = keeper
                .run_inside({
                    let dir = dir.clone();
                    move || {
                        std::fs::create_dir_all(&dir)?;
                        mountapi::move_mount_to(&tree, &dir)?;
                        mountapi::open_dir(&dir)
                    }
                })
                .map_err(io_at(&dir))?;
            let info = info_from(&entry, &mp, BackingMode::Hidden, &table);
            let host = mp.clone();
            Ok(Prepared {
                backing: Backing { root, info, id },
                detach_host: Box::new(move || hide_host(&host)),
            })
        }
        None => {
            let entry = table
                .containing(&mp)
                .cloned()
                .ok_or_else(|| VolumeError::NoMount(mp.clone()))?;
            let root = mountapi::open_dir(&mp).map_err(io_at(&mp))?;
            let mut info = info_from(&entry, &mp, BackingMode::Folder, &table);
            info.also_mounted_at = vec![entry.mount_point.clone()];
            Ok(Prepared {
                backing: Backing { root, info, id },
                detach_host: Box::new(|| Ok(false)),
            })
        }
    }
}

/// Give a hidden volume back to the host at its mount point (after the guard was unmounted).
pub fn restore(id: &str, mount_point: &Path, keeper: &Keeper) -> io::Result<()> {
    let dir = keeper.keep_dir(id);
    let tree = keeper.run_inside({
        let dir = dir.clone();
        move || mountapi::clone_tree(&dir)
    })?;
    mountapi::move_mount_to(&tree, mount_point)?;
    keeper.run_inside(move || {
        mountapi::detach(&dir)?;
        let _ = std::fs::remove_dir(&dir);
        Ok(())
    })
}

/// Let a hidden volume go altogether (`eject`): unmount its backing in the keeper, so that the
/// device is no longer mounted anywhere and can be unplugged. The guard must be gone and its
/// descriptors closed first; a backing still busy after two seconds is an error (it stays
/// hidden meanwhile: no gap).
pub fn release(id: &str, keeper: &Keeper) -> io::Result<()> {
    let dir = keeper.keep_dir(id);
    keeper.run_inside(move || {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        loop {
            match mountapi::unmount(&dir) {
                Ok(()) => break,
                Err(e)
                    if e.raw_os_error() == Some(libc::EBUSY)
                        && std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                Err(e) => {
                    return Err(io::Error::new(
                        e.kind(),
                        format!("umount {}: {e}", dir.display()),
                    ))
                }
            }
        }
        let _ = std::fs::remove_dir(&dir);
        Ok(())
    })
}

/// Let go of a hidden volume whose device is gone (a drive pulled out without eject): its
/// backing is detached lazily in the keeper, since a dead file system may still be held by a
/// process that had a file open; it ends when that process lets go. Nothing waits on the device.
pub fn abandon(id: &str, keeper: &Keeper) -> io::Result<()> {
    let dir = keeper.keep_dir(id);
    keeper.run_inside(move || {
        mountapi::detach(&dir)
            .map_err(|e| io::Error::new(e.kind(), format!("detaching {}: {e}", dir.display())))?;
        let _ = std::fs::remove_dir(&dir);
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mountinfo::parse;

    #[test]
    fn mounts_on_top_of_or_inside_a_guard() {
        let table = MountTable {
            entries: parse(
                "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n\
                 60 22 7:2 / /mnt/backupX rw - ext4 /dev/loop2 rw\n\
                 61 22 0:50 / /mnt/backup rw - fuse.imageguard imageguard rw\n\
                 62 61 0:51 / /mnt/backup/restic/data rw - tmpfs tmpfs rw\n\
                 63 61 0:52 / /mnt/backup rw - tmpfs tmpfs rw\n\
                 64 22 0:53 / /mnt/other rw - tmpfs tmpfs rw\n",
            ),
        };
        assert_eq!(
            covering_mounts(&table, Path::new("/mnt/backup")),
            vec![
                PathBuf::from("/mnt/backup/restic/data"),
                PathBuf::from("/mnt/backup")
            ]
        );
        assert!(covering_mounts(&table, Path::new("/mnt/other")).is_empty());
    }

    #[test]
    fn foreign_mounts_are_other_mounts_of_the_device_that_are_not_guards_or_known() {
        let table = MountTable {
            entries: parse(
                "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n\
                 61 22 0:50 / /mnt/backup rw - fuse.imageguard imageguard rw\n\
                 62 22 7:3 / /srv/old rw - ext4 /dev/loop3 rw\n\
                 63 22 7:3 /sub /tmp/evil rw - ext4 /dev/loop3 rw\n\
                 64 22 7:4 / /mnt/other rw - ext4 /dev/loop4 rw\n",
            ),
        };
        let known = vec![PathBuf::from("/srv/old")];
        assert_eq!(
            foreign_mounts(&table, "7:3", &known),
            vec![PathBuf::from("/tmp/evil")]
        );
        assert!(foreign_mounts(&table, "7:9", &known).is_empty());
    }
}
