//! The sentinel: a small process the service starts beside itself, in its own session (so a
//! process-group stop does not reach it), that answers for a guard that is *stopped* (SIGSTOP, a
//! debugger). Callers of a stopped FUSE server wait in their system call indefinitely; after
//! `stopped_timeout` seconds of the service being stopped, the sentinel aborts the connections of
//! its guards (fusectl's `abort`, else a forced unmount). Waiting callers then get ENOTCONN,
//! nothing gets through, and the service's watchdog mounts fresh guards when it runs again.
//! A guard that is merely slow (a long fsync) is never aborted: only the stopped state counts.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use imageguard_identity::procfs;
use imageguard_volume::backing::GUARD_FSTYPE;
use imageguard_volume::MountTable;

use crate::state::ServiceState;

const POLL: Duration = Duration::from_millis(250);

/// Start the sentinel for the service `pid` (this process).
pub fn spawn(state_file: &Path, runtime_dir: &Path, after: Duration) -> std::io::Result<Child> {
    let exe = std::env::current_exe()?;
    let mut cmd = Command::new(exe);
    cmd.arg("sentinel")
        .arg("--pid")
        .arg(std::process::id().to_string())
        .arg("--state-file")
        .arg(state_file)
        .arg("--runtime-dir")
        .arg(runtime_dir)
        .arg("--after-ms")
        .arg(after.as_millis().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    unsafe {
        cmd.pre_exec(|| {
            // Its own session; dies with the service; none of the service's blocked signals.
            libc::setsid();
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            let mut none: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut none);
            libc::pthread_sigmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
            Ok(())
        });
    }
    cmd.spawn()
}

/// The sentinel's loop (the hidden `imageguard sentinel` command); returns when the service is
/// gone.
pub fn run(pid: u32, state_file: &Path, runtime_dir: &Path, after: Duration) -> i32 {
    let Ok(started) = procfs::start_time(pid) else {
        return 0;
    };
    let mut stopped_since: Option<Instant> = None;
    let mut aborted = false;
    loop {
        std::thread::sleep(POLL);
        // Gone, or its pid reused: the service is not there any more.
        let (Ok(state), Ok(start)) = (procfs::state(pid), procfs::start_time(pid)) else {
            return 0;
        };
        if start != started {
            return 0;
        }
        if state == 'T' || state == 't' {
            let since = *stopped_since.get_or_insert_with(Instant::now);
            if !aborted && since.elapsed() >= after {
                aborted = true;
                abort_guards(state_file, runtime_dir);
            }
        } else {
            stopped_since = None;
            aborted = false;
        }
    }
}

/// Abort the FUSE connection of every guard the service protects.
fn abort_guards(state_file: &Path, runtime_dir: &Path) {
    let volumes = ServiceState::load(state_file)
        .map(|s| s.volumes)
        .unwrap_or_default();
    let Ok(table) = MountTable::read() else {
        return;
    };
    let ctl = runtime_dir.join("fusectl");
    let mut ctl_mounted = false;
    for mp in volumes {
        let Some(entry) = table.at(&mp).filter(|e| e.fstype == GUARD_FSTYPE) else {
            continue;
        };
        eprintln!(
            "imageguard sentinel: the service is stopped; aborting the guard on {} (callers get ENOTCONN)",
            mp.display()
        );
        if !ctl_mounted {
            ctl_mounted = mount_fusectl(&ctl);
        }
        let abort = ctl.join(entry.minor.to_string()).join("abort");
        if !(ctl_mounted && std::fs::write(&abort, "1").is_ok()) {
            force_unmount(&mp);
        }
    }
    if ctl_mounted {
        if let Ok(c) = cstr(&ctl) {
            unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        }
    }
}

fn cstr(p: &Path) -> std::io::Result<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| std::io::ErrorKind::InvalidInput.into())
}

/// A private mount of the FUSE control file system (one instance system-wide, so mounting it
/// under the runtime directory shows every connection without touching /sys/fs/fuse).
fn mount_fusectl(at: &PathBuf) -> bool {
    let _ = std::fs::create_dir_all(at);
    let (Ok(target), Ok(fstype)) = (cstr(at), CString::new("fusectl")) else {
        return false;
    };
    let src = CString::new("fusectl").expect("literal");
    unsafe {
        libc::mount(
            src.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            0,
            std::ptr::null(),
        ) == 0
    }
}

/// `umount -f`: aborts a FUSE connection first (the unmount itself may then fail with EBUSY).
fn force_unmount(mp: &Path) {
    if let Ok(c) = cstr(mp) {
        unsafe { libc::umount2(c.as_ptr(), libc::MNT_FORCE) };
    }
}
