//! Which kind of file system an open file or a path lies on (statfs' magic numbers), for the
//! file systems whose identities differ from what `stat` or `/proc/PID/maps` suggest: overlayfs
//! (maps names the layer's file) and btrfs (each subvolume its own `stat` device, the kernel
//! and maps the file system's one, inode numbers repeating across subvolumes).

use std::os::fd::AsFd;
use std::path::Path;

/// `OVERLAYFS_SUPER_MAGIC` (linux/magic.h).
const OVERLAYFS_SUPER_MAGIC: u64 = 0x794c_7630;
/// `BTRFS_SUPER_MAGIC` (linux/magic.h).
const BTRFS_SUPER_MAGIC: u64 = 0x9123_683e;

/// Whether the open file `fd` lives on overlayfs.
pub fn fd_on_overlay(fd: impl AsFd) -> bool {
    rustix::fs::fstatfs(fd).is_ok_and(|s| s.f_type as u64 == OVERLAYFS_SUPER_MAGIC)
}

/// Whether `path` (followed, as statfs does) lies on btrfs.
pub fn on_btrfs(path: &Path) -> bool {
    rustix::fs::statfs(path).is_ok_and(|s| s.f_type as u64 == BTRFS_SUPER_MAGIC)
}

#[cfg(test)]
mod tests {
    #[test]
    fn procfs_is_neither() {
        assert!(!super::on_btrfs(std::path::Path::new("/proc")));
        let f = std::fs::File::open("/proc/self/stat").unwrap();
        assert!(!super::fd_on_overlay(&f));
    }
}
