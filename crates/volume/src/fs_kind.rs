//! Which kind of file system an open file or a path lies on (statfs' magic numbers), for the
//! file systems whose identities differ from what `stat` or `/proc/PID/maps` suggest: overlayfs
//! (maps names the layer's file) and btrfs (each subvolume its own `stat` device, the kernel
//! and maps the file system's one, inode numbers repeating across subvolumes), and those whose
//! times do not show a write through a shared mapping (tmpfs).

use std::os::fd::AsFd;
use std::path::Path;

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
    rustix::fs::statfs(path).is_ok_and(|s| UNTIMED_SHARED_WRITES.contains(&(s.f_type as u64)))
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
    fn procfs_is_neither() {
        assert!(!super::on_btrfs(std::path::Path::new("/proc")));
        let f = std::fs::File::open("/proc/self/stat").unwrap();
        assert!(!super::fd_on_overlay(&f));
    }
}
