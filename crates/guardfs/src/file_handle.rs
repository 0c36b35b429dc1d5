//! Kernel file handles (`name_to_handle_at` / `open_by_handle_at`), so the guard need not hold a
//! descriptor for every file the kernel knows: a file inode keeps its handle and is reopened
//! on demand (as virtiofsd does with `--inode-file-handles`). A handle names one inode
//! *generation*: once the file is deleted and its number reused, opening the old handle fails
//! with ESTALE instead of reaching the new file.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// MAX_HANDLE_SZ in the kernel.
const MAX_HANDLE_SZ: usize = 128;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FileHandle {
    handle_type: i32,
    bytes: Vec<u8>,
}

#[repr(C)]
struct RawHandle {
    handle_bytes: u32,
    handle_type: i32,
    f_handle: [u8; MAX_HANDLE_SZ],
}

impl FileHandle {
    /// The handle of the file `fd` refers to (an O_PATH descriptor is fine).
    pub fn of(fd: BorrowedFd<'_>) -> io::Result<FileHandle> {
        let mut raw = RawHandle {
            handle_bytes: MAX_HANDLE_SZ as u32,
            handle_type: 0,
            f_handle: [0; MAX_HANDLE_SZ],
        };
        let mut mount_id: libc::c_int = 0;
        let r = unsafe {
            libc::syscall(
                libc::SYS_name_to_handle_at,
                fd.as_raw_fd(),
                c"".as_ptr(),
                &mut raw as *mut RawHandle,
                &mut mount_id as *mut libc::c_int,
                libc::AT_EMPTY_PATH,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = (raw.handle_bytes as usize).min(MAX_HANDLE_SZ);
        Ok(FileHandle {
            handle_type: raw.handle_type,
            bytes: raw.f_handle[..n].to_vec(),
        })
    }

    /// Open the file by handle; `mount_fd` is any descriptor on the same file system.
    pub fn open(&self, mount_fd: BorrowedFd<'_>, flags: libc::c_int) -> io::Result<OwnedFd> {
        let mut raw = RawHandle {
            handle_bytes: self.bytes.len() as u32,
            handle_type: self.handle_type,
            f_handle: [0; MAX_HANDLE_SZ],
        };
        raw.f_handle[..self.bytes.len()].copy_from_slice(&self.bytes);
        let r = unsafe {
            libc::syscall(
                libc::SYS_open_by_handle_at,
                mount_fd.as_raw_fd(),
                &raw as *const RawHandle,
                flags | libc::O_CLOEXEC,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(unsafe { OwnedFd::from_raw_fd(r as i32) })
    }

    /// The key ([`FileHandle::key`]) of `name` in `dir`, not followed if it is a symbolic
    /// link.
    pub fn key_at(dir: BorrowedFd<'_>, name: &std::ffi::OsStr) -> Option<Vec<u8>> {
        let c = crate::sys::cstr(name).ok()?;
        let fd = crate::sys::openat(dir, &c, libc::O_PATH | libc::O_NOFOLLOW, 0).ok()?;
        FileHandle::of(std::os::fd::AsFd::as_fd(&fd))
            .ok()
            .map(|h| h.key())
    }

    /// The handle as bytes (its type, then the file system's bytes): a key that names one
    /// inode generation.
    pub fn key(&self) -> Vec<u8> {
        let mut k = self.handle_type.to_le_bytes().to_vec();
        k.extend_from_slice(&self.bytes);
        k
    }

    /// A 64-bit digest of the handle, used as the FUSE generation number of the inode (it
    /// changes when an inode number is reused for a new file).
    pub fn generation(&self) -> u64 {
        let mut h = 0xcbf2_9ce4_8422_2325u64 ^ self.handle_type as u64;
        for &b in &self.bytes {
            h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
        }
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn round_trip_and_stale_after_delete() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        std::fs::write(&p, b"x").unwrap();
        let root = std::fs::File::open(d.path()).unwrap();
        let f = std::fs::File::open(&p).unwrap();
        let h = FileHandle::of(f.as_fd()).expect("ext4/tmpfs support file handles");
        let again = FileHandle::of(std::fs::File::open(&p).unwrap().as_fd()).unwrap();
        assert_eq!(h, again);
        assert_eq!(h.generation(), again.generation());
        // open_by_handle_at needs CAP_DAC_READ_SEARCH: the tests run as root, like the guard.
        {
            let fd = h.open(root.as_fd(), libc::O_RDONLY).unwrap();
            assert_eq!(crate::sys::fstat_fd(fd.as_fd()).unwrap().st_size, 1);
        }
        drop(f);
        std::fs::remove_file(&p).unwrap();
        assert!(h.open(root.as_fd(), libc::O_RDONLY).is_err());
    }
}
