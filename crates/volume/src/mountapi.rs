//! The mount system calls the guard needs, as safe functions with errors that name the path.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

const OPEN_TREE_CLONE: libc::c_uint = 1;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 4;
const MOUNT_ATTR_RDONLY: u64 = 0x1;

fn cpath(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

fn fail(what: &str, p: &Path) -> io::Error {
    let e = io::Error::last_os_error();
    io::Error::new(e.kind(), format!("{what} {}: {e}", p.display()))
}

/// A detached copy of the mount tree at `path` (with its submounts).
pub fn clone_tree(path: &Path) -> io::Result<OwnedFd> {
    let c = cpath(path)?;
    let flags =
        OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint | libc::AT_RECURSIVE as libc::c_uint;
    let r = unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, c.as_ptr(), flags) };
    if r < 0 {
        return Err(fail("open_tree", path));
    }
    Ok(unsafe { OwnedFd::from_raw_fd(r as i32) })
}

/// Attach a detached mount onto `target` (in the calling thread's mount namespace).
pub fn move_mount_to(mnt: &OwnedFd, target: &Path) -> io::Result<()> {
    let t = cpath(target)?;
    let r = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            mnt.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_FDCWD,
            t.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    if r < 0 {
        return Err(fail("move_mount onto", target));
    }
    Ok(())
}

/// Unmount what is mounted on top at `path`, now: the raw errno (`EBUSY` while it is in use),
/// for callers that retry.
pub fn unmount(path: &Path) -> io::Result<()> {
    let c = cpath(path)?;
    if unsafe { libc::umount2(c.as_ptr(), 0) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Lazily detach whatever is mounted on top at `path` (`umount -l`).
pub fn detach(path: &Path) -> io::Result<()> {
    rustix::mount::unmount(path, rustix::mount::UnmountFlags::DETACH).map_err(|e| {
        let e = io::Error::from(e);
        io::Error::new(e.kind(), format!("umount {}: {e}", path.display()))
    })
}

/// `umount -f`: for a FUSE mount, aborts its connection first (callers get ENOTCONN); the
/// unmount itself may then fail with EBUSY, which is not an error here.
pub fn force_unmount(path: &Path) -> io::Result<()> {
    let c = cpath(path)?;
    if unsafe { libc::umount2(c.as_ptr(), libc::MNT_FORCE) } < 0
        && io::Error::last_os_error().raw_os_error() != Some(libc::EBUSY)
    {
        return Err(fail("umount -f", path));
    }
    Ok(())
}

/// Mount the FUSE control file system (one instance system-wide: a mount anywhere shows every
/// connection's `abort` file) at `path`, creating the directory.
pub fn mount_fusectl(path: &Path) -> io::Result<()> {
    std::fs::create_dir_all(path)?;
    let c = cpath(path)?;
    let name = c"fusectl";
    if unsafe {
        libc::mount(
            name.as_ptr(),
            c.as_ptr(),
            name.as_ptr(),
            0,
            std::ptr::null(),
        )
    } < 0
    {
        return Err(fail("mount fusectl", path));
    }
    Ok(())
}

/// Make the mount at `path` read-only (this mount only, not the file system). Fails with EBUSY
/// while files are open for writing through it.
pub fn make_read_only(path: &Path) -> io::Result<()> {
    #[repr(C)]
    struct MountAttr {
        attr_set: u64,
        attr_clr: u64,
        propagation: u64,
        userns_fd: u64,
    }
    let c = cpath(path)?;
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_RDONLY,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            c.as_ptr(),
            0,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if r < 0 {
        return Err(fail("mount_setattr ro", path));
    }
    Ok(())
}

/// `mount --bind src dst`.
pub fn bind(src: &Path, dst: &Path) -> io::Result<()> {
    let s = cpath(src)?;
    let d = cpath(dst)?;
    if unsafe {
        libc::mount(
            s.as_ptr(),
            d.as_ptr(),
            std::ptr::null(),
            libc::MS_BIND,
            std::ptr::null(),
        )
    } < 0
    {
        return Err(fail("bind mount onto", dst));
    }
    Ok(())
}

/// `mount --make-private path` (recursive when asked).
pub fn make_private(path: &Path, recursive: bool) -> io::Result<()> {
    let p = cpath(path)?;
    let flags = libc::MS_PRIVATE | if recursive { libc::MS_REC } else { 0 };
    if unsafe {
        libc::mount(
            std::ptr::null(),
            p.as_ptr(),
            std::ptr::null(),
            flags,
            std::ptr::null(),
        )
    } < 0
    {
        return Err(fail("make private", path));
    }
    Ok(())
}

/// Open a directory for use as the root of a served tree.
pub fn open_dir(path: &Path) -> io::Result<OwnedFd> {
    let c = cpath(path)?;
    let fd = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(fail("open", path));
    }
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}
