//! Which kind of file system an open file or a path lies on (statfs' magic numbers), for the
//! file systems whose identities differ from what `stat` or `/proc/PID/maps` suggest: overlayfs
//! (maps names the layer's file) and btrfs (each subvolume its own `stat` device, the kernel
//! and maps the file system's one, inode numbers repeating across subvolumes), and those whose
//! times do not show a write through a shared mapping (tmpfs).

use std::collections::HashMap;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

/// `OVERLAYFS_SUPER_MAGIC` (linux/magic.h).
const OVERLAYFS_SUPER_MAGIC: u64 = 0x794c_7630;
/// `BTRFS_SUPER_MAGIC` (linux/magic.h).
const BTRFS_SUPER_MAGIC: u64 = 0x9123_683e;

/// File systems that keep a file's times when it is written through a shared mapping (no
/// `page_mkwrite` updates them): tmpfs (`TMPFS_MAGIC`), ramfs, hugetlbfs.
const UNTIMED_SHARED_WRITES: [u64; 3] = [0x0102_1994, 0x8584_58f6, 0x9584_58f6];

/// Whether the open file `fd` lives on overlayfs.
pub fn fd_on_overlay(fd: impl AsFd) -> bool {
    rustix::fs::fstatfs(fd).is_ok_and(|s| s.f_type as u64 == OVERLAYFS_SUPER_MAGIC)
}

/// Whether `path` (followed, as statfs does) lies on btrfs.
pub fn on_btrfs(path: &Path) -> bool {
    rustix::fs::statfs(path).is_ok_and(|s| s.f_type as u64 == BTRFS_SUPER_MAGIC)
}

/// Whether `path` (followed) lies on a file system whose files keep their times when written
/// through a shared mapping, so that an unchanged `stat` does not show an unchanged file.
pub fn times_miss_shared_writes(path: &Path) -> bool {
    SharedWriteTimes::default().missed(path)
}

/// [`times_miss_shared_writes`] asked of many files at once: the mount table is read once at
/// most, each overlay's upper layer looked at once.
///
/// A file on overlayfs is written in its upper layer and `stat` shows that layer's times, so a
/// file already in an upper layer on tmpfs (a live system, a container, the VM's `/usr`)
/// misses shared writes. One only in a lower layer does not: writing it copies it up first,
/// a new inode whose change time moves. An overlay with no upper layer cannot be written; one
/// whose upper layer cannot be looked at from here counts as missing them (its files are then
/// compared by content, the safe side).
#[derive(Debug, Default)]
pub struct SharedWriteTimes {
    table: Option<Option<crate::MountTable>>,
    /// By overlay mount id: its upper layer, when that misses shared writes.
    overlays: HashMap<u64, Upper>,
}

#[derive(Debug, Clone)]
enum Upper {
    /// None, or on a file system that keeps times.
    Timed,
    /// On one that misses shared writes.
    Untimed(PathBuf),
    /// Not to be looked at from here.
    Unknown,
}

impl SharedWriteTimes {
    /// Whether the file at `path` misses shared writes. `path` is taken as canonical when it
    /// is absolute (a symbolic link in it would be looked up on the file system it names).
    pub fn missed(&mut self, path: &Path) -> bool {
        let Ok(s) = rustix::fs::statfs(path) else {
            return false;
        };
        match s.f_type as u64 {
            t if UNTIMED_SHARED_WRITES.contains(&t) => true,
            OVERLAYFS_SUPER_MAGIC => self.overlay_misses(path),
            _ => false,
        }
    }

    fn overlay_misses(&mut self, path: &Path) -> bool {
        // Paths come canonical (a closure's are); another is made so, at a cost per component.
        let canonical = if path.is_absolute()
            && !path
                .components()
                .any(|c| matches!(c, std::path::Component::ParentDir))
        {
            std::borrow::Cow::Borrowed(path)
        } else {
            match path.canonicalize() {
                Ok(p) => std::borrow::Cow::Owned(p),
                Err(_) => return true,
            }
        };
        let table = self
            .table
            .get_or_insert_with(|| crate::MountTable::read().ok());
        let Some(mount) = table.as_ref().and_then(|t| t.containing(&canonical)) else {
            return true;
        };
        if mount.fstype != "overlay" {
            return true;
        }
        let upper = self.overlays.entry(mount.id).or_insert_with(|| {
            match upper_layer(&mount.super_options) {
                None => Upper::Timed,
                Some(dir) => match rustix::fs::statfs(&dir) {
                    // An overlay over an overlay: not followed further.
                    Ok(u) => {
                        let t = u.f_type as u64;
                        if UNTIMED_SHARED_WRITES.contains(&t) || t == OVERLAYFS_SUPER_MAGIC {
                            Upper::Untimed(dir)
                        } else {
                            Upper::Timed
                        }
                    }
                    Err(_) => Upper::Unknown,
                },
            }
        });
        match upper {
            Upper::Timed => false,
            Upper::Unknown => true,
            Upper::Untimed(dir) => {
                let Ok(below) = canonical.strip_prefix(&mount.mount_point) else {
                    return true;
                };
                // The path inside the overlay (a mount of one of its folders starts there).
                let rel = mount
                    .root
                    .strip_prefix("/")
                    .unwrap_or(&mount.root)
                    .join(below);
                match std::fs::symlink_metadata(dir.join(rel)) {
                    Ok(_) => true,
                    Err(e) => e.kind() != std::io::ErrorKind::NotFound,
                }
            }
        }
    }
}

/// An overlay's upper layer from its super options (`upperdir=`). The kernel writes a
/// layer's commas, spaces and backslashes as octal escapes (`seq_show_option`), so a comma
/// there always separates options.
fn upper_layer(super_options: &str) -> Option<PathBuf> {
    super_options
        .split(',')
        .find_map(|o| o.strip_prefix("upperdir="))
        .map(|d| PathBuf::from(crate::mountinfo::unescape(d)))
}

#[cfg(test)]
mod tests {
    #[test]
    fn dev_shm_is_tmpfs_and_proc_is_not() {
        // /dev/shm is tmpfs wherever glibc's shm_open works.
        if std::path::Path::new("/dev/shm").is_dir() {
            assert!(super::times_miss_shared_writes(std::path::Path::new(
                "/dev/shm"
            )));
        }
        assert!(!super::times_miss_shared_writes(std::path::Path::new(
            "/proc"
        )));
    }

    #[test]
    fn an_overlays_upper_layer_is_read_from_its_options() {
        assert_eq!(
            super::upper_layer("rw,lowerdir=/l1:/l2,upperdir=/run/up\\054per\\040x,workdir=/w"),
            Some(std::path::PathBuf::from("/run/up,per x"))
        );
        assert_eq!(super::upper_layer("ro,lowerdir=/a:/b"), None);
    }

    #[test]
    fn procfs_is_neither() {
        assert!(!super::on_btrfs(std::path::Path::new("/proc")));
        let f = std::fs::File::open("/proc/self/stat").unwrap();
        assert!(!super::fd_on_overlay(&f));
    }
}
