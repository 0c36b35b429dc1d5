//! Thin, safe wrappers over the `*at` system calls the guard serves requests with. Every path
//! argument is a single name relative to a directory descriptor, never a full path.

use std::ffi::{CStr, CString, OsStr};
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;

pub type Stat = libc::stat64;

pub fn cstr(name: &OsStr) -> io::Result<CString> {
    CString::new(name.as_bytes()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn check_size(ret: isize) -> io::Result<usize> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret as usize)
    }
}

pub fn openat(
    dir: BorrowedFd<'_>,
    name: &CStr,
    flags: libc::c_int,
    mode: u32,
) -> io::Result<OwnedFd> {
    let fd = check(unsafe {
        libc::openat(
            dir.as_raw_fd(),
            name.as_ptr(),
            flags | libc::O_CLOEXEC,
            mode,
        )
    })?;
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `/proc/self/fd/N` of a descriptor: reopening it or passing it to path-based calls acts on the
/// very file the descriptor refers to (the way virtiofsd reopens O_PATH descriptors).
pub fn proc_fd_path(fd: RawFd) -> CString {
    CString::new(format!("/proc/self/fd/{fd}")).expect("no NUL in a number")
}

/// Reopen an O_PATH descriptor with real access flags.
pub fn reopen(fd: BorrowedFd<'_>, flags: libc::c_int) -> io::Result<OwnedFd> {
    let path = proc_fd_path(fd.as_raw_fd());
    let fd = check(unsafe { libc::open(path.as_ptr(), flags | libc::O_CLOEXEC) })?;
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

pub fn fstatat(dir: BorrowedFd<'_>, name: &CStr, flags: libc::c_int) -> io::Result<Stat> {
    let mut st = MaybeUninit::<Stat>::zeroed();
    check(unsafe { libc::fstatat64(dir.as_raw_fd(), name.as_ptr(), st.as_mut_ptr(), flags) })?;
    Ok(unsafe { st.assume_init() })
}

/// stat of the descriptor itself (works on O_PATH descriptors, never follows a symlink).
pub fn fstat_fd(fd: BorrowedFd<'_>) -> io::Result<Stat> {
    fstatat(fd, c"", libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW)
}

/// lstat of `name` inside `dir`.
pub fn lstatat(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<Stat> {
    fstatat(dir, name, libc::AT_SYMLINK_NOFOLLOW)
}

pub fn mkdirat(dir: BorrowedFd<'_>, name: &CStr, mode: u32) -> io::Result<()> {
    check(unsafe { libc::mkdirat(dir.as_raw_fd(), name.as_ptr(), mode) }).map(drop)
}

pub fn mknodat(dir: BorrowedFd<'_>, name: &CStr, mode: u32, rdev: u64) -> io::Result<()> {
    check(unsafe { libc::mknodat(dir.as_raw_fd(), name.as_ptr(), mode, rdev) }).map(drop)
}

pub fn symlinkat(target: &CStr, dir: BorrowedFd<'_>, name: &CStr) -> io::Result<()> {
    check(unsafe { libc::symlinkat(target.as_ptr(), dir.as_raw_fd(), name.as_ptr()) }).map(drop)
}

pub fn unlinkat(dir: BorrowedFd<'_>, name: &CStr, flags: libc::c_int) -> io::Result<()> {
    check(unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), flags) }).map(drop)
}

pub fn renameat2(
    old_dir: BorrowedFd<'_>,
    old: &CStr,
    new_dir: BorrowedFd<'_>,
    new: &CStr,
    flags: u32,
) -> io::Result<()> {
    check(unsafe {
        libc::renameat2(
            old_dir.as_raw_fd(),
            old.as_ptr(),
            new_dir.as_raw_fd(),
            new.as_ptr(),
            flags,
        )
    })
    .map(drop)
}

/// Hard-link the file an O_PATH descriptor refers to as `name` in `dir`.
pub fn link_fd(fd: BorrowedFd<'_>, dir: BorrowedFd<'_>, name: &CStr) -> io::Result<()> {
    let src = proc_fd_path(fd.as_raw_fd());
    check(unsafe {
        libc::linkat(
            libc::AT_FDCWD,
            src.as_ptr(),
            dir.as_raw_fd(),
            name.as_ptr(),
            libc::AT_SYMLINK_FOLLOW,
        )
    })
    .map(drop)
}

pub fn readlink_fd(fd: BorrowedFd<'_>) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; libc::PATH_MAX as usize + 1];
    let n = check_size(unsafe {
        libc::readlinkat(
            fd.as_raw_fd(),
            c"".as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    })?;
    buf.truncate(n);
    Ok(buf)
}

pub fn fchmod_path(fd: BorrowedFd<'_>, mode: u32) -> io::Result<()> {
    let p = proc_fd_path(fd.as_raw_fd());
    check(unsafe { libc::chmod(p.as_ptr(), mode) }).map(drop)
}

pub fn fchown_fd(fd: BorrowedFd<'_>, uid: Option<u32>, gid: Option<u32>) -> io::Result<()> {
    let uid = uid.unwrap_or(u32::MAX);
    let gid = gid.unwrap_or(u32::MAX);
    check(unsafe {
        libc::fchownat(
            fd.as_raw_fd(),
            c"".as_ptr(),
            uid,
            gid,
            libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW,
        )
    })
    .map(drop)
}

pub fn utimens_fd(fd: BorrowedFd<'_>, times: &[libc::timespec; 2]) -> io::Result<()> {
    let p = proc_fd_path(fd.as_raw_fd());
    check(unsafe { libc::utimensat(libc::AT_FDCWD, p.as_ptr(), times.as_ptr(), 0) }).map(drop)
}

pub fn ftruncate(fd: BorrowedFd<'_>, size: u64) -> io::Result<()> {
    check(unsafe { libc::ftruncate64(fd.as_raw_fd(), size as i64) }).map(drop)
}

pub fn fallocate(fd: BorrowedFd<'_>, mode: i32, offset: u64, len: u64) -> io::Result<()> {
    check(unsafe { libc::fallocate64(fd.as_raw_fd(), mode, offset as i64, len as i64) }).map(drop)
}

pub fn fsync(fd: BorrowedFd<'_>, datasync: bool) -> io::Result<()> {
    check(unsafe {
        if datasync {
            libc::fdatasync(fd.as_raw_fd())
        } else {
            libc::fsync(fd.as_raw_fd())
        }
    })
    .map(drop)
}

pub fn pread(fd: BorrowedFd<'_>, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    check_size(unsafe {
        libc::pread64(
            fd.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            offset as i64,
        )
    })
}

pub fn pwrite(fd: BorrowedFd<'_>, buf: &[u8], offset: u64) -> io::Result<usize> {
    check_size(unsafe {
        libc::pwrite64(
            fd.as_raw_fd(),
            buf.as_ptr().cast(),
            buf.len(),
            offset as i64,
        )
    })
}

pub fn lseek(fd: BorrowedFd<'_>, offset: i64, whence: i32) -> io::Result<i64> {
    let r = unsafe { libc::lseek64(fd.as_raw_fd(), offset, whence) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

pub fn copy_file_range(
    fd_in: BorrowedFd<'_>,
    off_in: u64,
    fd_out: BorrowedFd<'_>,
    off_out: u64,
    len: u64,
) -> io::Result<usize> {
    let mut oi = off_in as i64;
    let mut oo = off_out as i64;
    check_size(unsafe {
        libc::copy_file_range(
            fd_in.as_raw_fd(),
            &mut oi,
            fd_out.as_raw_fd(),
            &mut oo,
            len as usize,
            0,
        )
    })
}

pub fn getdents64(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    let r = unsafe {
        libc::syscall(
            libc::SYS_getdents64,
            fd.as_raw_fd(),
            buf.as_mut_ptr(),
            buf.len(),
        )
    };
    check_size(r as isize)
}

/// One parsed `linux_dirent64`.
pub struct DirEntry<'a> {
    pub ino: u64,
    pub off: i64,
    pub kind: u8,
    pub name: &'a [u8],
}

/// Iterate the entries `getdents64` put in `buf[..len]`.
pub fn dirents(buf: &[u8]) -> impl Iterator<Item = DirEntry<'_>> {
    let mut pos = 0usize;
    std::iter::from_fn(move || {
        if pos + 19 > buf.len() {
            return None;
        }
        let ino = u64::from_ne_bytes(buf[pos..pos + 8].try_into().ok()?);
        let off = i64::from_ne_bytes(buf[pos + 8..pos + 16].try_into().ok()?);
        let reclen = u16::from_ne_bytes(buf[pos + 16..pos + 18].try_into().ok()?) as usize;
        let kind = buf[pos + 18];
        let name_area = &buf[pos + 19..pos + reclen];
        let nul = name_area
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(name_area.len());
        let e = DirEntry {
            ino,
            off,
            kind,
            name: &name_area[..nul],
        };
        pos += reclen;
        Some(e)
    })
}

fn xattr_result(r: isize) -> io::Result<usize> {
    check_size(r)
}

pub fn getxattr(fd: BorrowedFd<'_>, name: &CStr, buf: &mut [u8]) -> io::Result<usize> {
    let p = proc_fd_path(fd.as_raw_fd());
    xattr_result(unsafe {
        libc::getxattr(
            p.as_ptr(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    })
}

pub fn listxattr(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    let p = proc_fd_path(fd.as_raw_fd());
    xattr_result(unsafe { libc::listxattr(p.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) })
}

pub fn setxattr(fd: BorrowedFd<'_>, name: &CStr, value: &[u8], flags: i32) -> io::Result<()> {
    let p = proc_fd_path(fd.as_raw_fd());
    check(unsafe {
        libc::setxattr(
            p.as_ptr(),
            name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            flags,
        )
    })
    .map(drop)
}

pub fn removexattr(fd: BorrowedFd<'_>, name: &CStr) -> io::Result<()> {
    let p = proc_fd_path(fd.as_raw_fd());
    check(unsafe { libc::removexattr(p.as_ptr(), name.as_ptr()) }).map(drop)
}

pub fn fstatvfs(fd: BorrowedFd<'_>) -> io::Result<libc::statvfs64> {
    let mut st = MaybeUninit::<libc::statvfs64>::zeroed();
    check(unsafe { libc::fstatvfs64(fd.as_raw_fd(), st.as_mut_ptr()) })?;
    Ok(unsafe { st.assume_init() })
}

pub fn errno_of(e: &io::Error) -> i32 {
    e.raw_os_error().unwrap_or(libc::EIO)
}
