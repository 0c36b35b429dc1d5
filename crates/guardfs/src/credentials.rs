//! Acting as the caller when creating files, so new files get the caller's owner and group
//! (and set-group-ID directories work as natively).
//!
//! The guard runs as root. Before `openat(O_CREAT)`, `mkdirat`, `mknodat` and `symlinkat` it
//! switches the serving thread's file-system uid/gid to the caller's; with
//! `SECBIT_NO_SETUID_FIXUP` set the thread keeps its capabilities while doing so, so the backing
//! file system does not re-check permissions the kernel already checked on the guard mount
//! (`default_permissions`) without the caller's supplementary groups.

use std::io;

/// Keep capabilities across fsuid changes for this thread and the threads it creates later.
pub fn keep_capabilities_across_fsuid_changes() -> io::Result<()> {
    const SECBIT_NO_SETUID_FIXUP: libc::c_ulong = 1 << 2;
    let current = unsafe { libc::prctl(libc::PR_GET_SECUREBITS) };
    if current < 0 {
        return Err(io::Error::last_os_error());
    }
    let bits = current as libc::c_ulong | SECBIT_NO_SETUID_FIXUP;
    if unsafe { libc::prctl(libc::PR_SET_SECUREBITS, bits) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// While alive, the current thread creates files as `uid:gid`.
pub struct ActAs {
    switched: bool,
}

impl ActAs {
    pub fn caller(uid: u32, gid: u32) -> ActAs {
        if uid == 0 && gid == 0 {
            return ActAs { switched: false };
        }
        unsafe {
            libc::setfsgid(gid);
            libc::setfsuid(uid);
        }
        ActAs { switched: true }
    }
}

impl Drop for ActAs {
    fn drop(&mut self) {
        if self.switched {
            unsafe {
                libc::setfsuid(0);
                libc::setfsgid(0);
            }
        }
    }
}
