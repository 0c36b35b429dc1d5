//! Mounting the guard: the FUSE superblock is created detached with the new mount API
//! (`fsopen`/`fsconfig`/`fsmount`), the session is handshaken, a caller-supplied step runs (the
//! volume layer detaches the host's mount of the backing there), and only then is the guard
//! moved onto the mount point. Anything reaching the mount point after that meets the guard.

use std::ffi::CString;
use std::fs::OpenOptions;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use fuser::{Config, Session, SessionACL};

use imageguard_volume::mountapi::move_mount_to;

use crate::credentials;
use crate::filesystem::{GuardFs, GuardShared};

const FSOPEN_CLOEXEC: libc::c_uint = 1;
const FSCONFIG_SET_FLAG: libc::c_uint = 0;
const FSCONFIG_SET_STRING: libc::c_uint = 1;
const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
const FSMOUNT_CLOEXEC: libc::c_uint = 1;
pub const MOUNT_ATTR_RDONLY: libc::c_uint = 0x1;
pub const MOUNT_ATTR_NOSUID: libc::c_uint = 0x2;
pub const MOUNT_ATTR_NODEV: libc::c_uint = 0x4;
pub const MOUNT_ATTR_NOEXEC: libc::c_uint = 0x8;

/// How to mount a guard.
#[derive(Debug, Clone)]
pub struct GuardOptions {
    pub mount_point: PathBuf,
    /// Threads serving requests.
    pub threads: usize,
    /// Use kernel passthrough for data I/O when the kernel offers it.
    pub passthrough: bool,
    /// MOUNT_ATTR_* flags copied from the original mount (nosuid, nodev, noexec, ro).
    pub mount_attrs: libc::c_uint,
    /// How long the kernel may trust names and attributes the guard returned. Long when the
    /// guard is the only way to the backing (a hidden volume: nothing else can change it, and
    /// the kernel updates its caches itself for changes made through the guard); short for a
    /// folder, whose backing other mounts of the same file system can still change.
    pub cache_ttl: Duration,
}

/// A mounted guard. Dropping it does not unmount (a service that dies must leave the mount in
/// place so callers fail closed); call [`MountedGuard::unmount`].
pub struct MountedGuard {
    pub shared: Arc<GuardShared>,
    pub mount_point: PathBuf,
    thread: Option<JoinHandle<io::Result<()>>>,
}

fn cstring(s: &str) -> CString {
    CString::new(s).expect("no NUL in mount parameters")
}

fn fsconfig(
    fs: &OwnedFd,
    cmd: libc::c_uint,
    key: Option<&str>,
    value: Option<&str>,
) -> io::Result<()> {
    let key = key.map(cstring);
    let value = value.map(cstring);
    let r = unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            cmd,
            key.as_ref().map_or(std::ptr::null(), |k| k.as_ptr()),
            value.as_ref().map_or(std::ptr::null(), |v| v.as_ptr()),
            0,
        )
    };
    if r < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(e.kind(), format!("fsconfig {key:?}: {e}")));
    }
    Ok(())
}

fn syscall_fd(r: libc::c_long, what: &str) -> io::Result<OwnedFd> {
    if r < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(e.kind(), format!("{what}: {e}")));
    }
    Ok(unsafe { OwnedFd::from_raw_fd(r as i32) })
}

/// Mount a guard over `opts.mount_point`, serving the tree below `root_fd`.
pub fn mount_guard(
    root_fd: OwnedFd,
    opts: &GuardOptions,
    shared: Arc<GuardShared>,
    before_attach: impl FnOnce() -> io::Result<()>,
) -> io::Result<MountedGuard> {
    credentials::keep_capabilities_across_fsuid_changes()?;
    unsafe { libc::umask(0) };
    let root_mode = crate::sys::fstat_fd(std::os::fd::AsFd::as_fd(&root_fd))?.st_mode;
    let fs = GuardFs::new(
        root_fd,
        opts.mount_point.clone(),
        shared.clone(),
        opts.cache_ttl,
        opts.passthrough,
    )?;

    let dev = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open("/dev/fuse")
        .map_err(|e| io::Error::new(e.kind(), format!("/dev/fuse: {e}")))?;
    let dev: OwnedFd = dev.into();
    let fsfd = syscall_fd(
        unsafe { libc::syscall(libc::SYS_fsopen, c"fuse".as_ptr(), FSOPEN_CLOEXEC) },
        "fsopen(fuse)",
    )?;
    fsconfig(
        &fsfd,
        FSCONFIG_SET_STRING,
        Some("fd"),
        Some(&dev.as_raw_fd().to_string()),
    )?;
    fsconfig(
        &fsfd,
        FSCONFIG_SET_STRING,
        Some("rootmode"),
        Some(&format!("{:o}", root_mode & libc::S_IFMT)),
    )?;
    fsconfig(&fsfd, FSCONFIG_SET_STRING, Some("user_id"), Some("0"))?;
    fsconfig(&fsfd, FSCONFIG_SET_STRING, Some("group_id"), Some("0"))?;
    fsconfig(&fsfd, FSCONFIG_SET_FLAG, Some("allow_other"), None)?;
    fsconfig(&fsfd, FSCONFIG_SET_FLAG, Some("default_permissions"), None)?;
    fsconfig(
        &fsfd,
        FSCONFIG_SET_STRING,
        Some("source"),
        Some("imageguard"),
    )?;
    fsconfig(
        &fsfd,
        FSCONFIG_SET_STRING,
        Some("subtype"),
        Some("imageguard"),
    )?;
    fsconfig(&fsfd, FSCONFIG_CMD_CREATE, None, None)?;
    let mnt = syscall_fd(
        unsafe {
            libc::syscall(
                libc::SYS_fsmount,
                fsfd.as_raw_fd(),
                FSMOUNT_CLOEXEC,
                opts.mount_attrs,
            )
        },
        "fsmount",
    )?;

    let mut config = Config::default();
    config.n_threads = Some(opts.threads.max(1));
    config.clone_fd = true;
    let session = Session::from_fd(fs, dev, SessionACL::All, config)?;
    let thread = std::thread::Builder::new()
        .name(format!("guard {}", opts.mount_point.display()))
        .spawn(move || session.run())?;

    before_attach()?;
    move_mount_to(&mnt, &opts.mount_point)?;
    Ok(MountedGuard {
        shared,
        mount_point: opts.mount_point.clone(),
        thread: Some(thread),
    })
}

impl MountedGuard {
    /// Detach the guard from its mount point and wait (bounded) for its threads to finish.
    pub fn unmount(mut self) -> io::Result<()> {
        self.detach_mount()?;
        if let Some(t) = self.thread.take() {
            let deadline = Instant::now() + Duration::from_secs(5);
            while !t.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            if t.is_finished() {
                let _ = t.join();
            }
        }
        Ok(())
    }

    /// Detach the guard from its mount point without waiting for its threads: they end when
    /// the last process using the detached tree lets go (a drive pulled out under a busy
    /// process).
    pub fn detach(self) -> io::Result<()> {
        self.detach_mount()
    }

    /// `umount -l` of the guard's mount point.
    fn detach_mount(&self) -> io::Result<()> {
        imageguard_volume::mountapi::detach(&self.mount_point)
    }

    pub fn is_running(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }
}
