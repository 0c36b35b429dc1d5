//! The identity `/proc/PID/maps` gives a mapped file, which is what the closure's mappings
//! check compares. On most file systems it is the file's own `stat` device and inode. On
//! overlayfs (live systems, image-based distributions, containers, virtme-ng's `/usr`) it is
//! not: a mapping of an overlay file is a mapping of the layer's real file, so maps shows the
//! upper or lower file system's device (`00:17` for a file whose `stat` says `0:47`). There the
//! identity is found the way the kernel reports it: the file is mapped once (read-only, one
//! page, never executed) and this process's own maps entry for it is read.

use std::path::Path;

use rustix::fs::{Mode, OFlags};

/// The (device, inode) `/proc/PID/maps` shows for mappings of the file at `path`, when it
/// differs from what `stat` says (overlayfs); `None` where they agree, or when the file
/// cannot be mapped (an empty file maps nothing, so nothing can run from it).
pub fn mapped_identity(path: &Path) -> Option<(u64, u64)> {
    let fd = rustix::fs::open(path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty()).ok()?;
    if !imageguard_volume::fs_kind::fd_on_overlay(&fd) {
        return None;
    }
    let len = rustix::param::page_size();
    // SAFETY: a fresh private read-only mapping at an address the kernel chooses; nothing
    // reads or writes through it, and it is unmapped below before the pointer goes out of
    // scope.
    let addr = unsafe {
        rustix::mm::mmap(
            std::ptr::null_mut(),
            len,
            rustix::mm::ProtFlags::READ,
            rustix::mm::MapFlags::PRIVATE,
            &fd,
            0,
        )
    }
    .ok()?;
    let found = own_mapping(addr as usize);
    // SAFETY: `addr` and `len` are exactly the mapping made above, used by nothing else.
    let _ = unsafe { rustix::mm::munmap(addr, len) };
    found
}

/// The device and inode of this process's mapping starting at `addr`.
fn own_mapping(addr: usize) -> Option<(u64, u64)> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    maps.lines().find_map(|line| {
        let mut f = line.split_whitespace();
        let range = f.next()?;
        let start = usize::from_str_radix(range.split('-').next()?, 16).ok()?;
        if start != addr {
            return None;
        }
        let dev = f.nth(2)?;
        let ino: u64 = f.next()?.parse().ok()?;
        let (major, minor) = dev.split_once(':')?;
        let major = u32::from_str_radix(major, 16).ok()?;
        let minor = u32::from_str_radix(minor, 16).ok()?;
        Some((rustix::fs::makedev(major, minor), ino))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_off_overlay_needs_nothing_more() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("lib.so");
        std::fs::write(&f, vec![7u8; 8192]).unwrap();
        // /tmp may itself be an overlay (in a container): then an identity is found.
        let on = {
            let fd = std::fs::File::open(&f).unwrap();
            imageguard_volume::fs_kind::fd_on_overlay(&fd)
        };
        assert_eq!(mapped_identity(&f).is_some(), on);
        assert_eq!(mapped_identity(&d.path().join("missing")), None);
    }
}
