//! The sentinel: a small process the service starts beside itself, in its own session (so a
//! process-group stop does not reach it), that answers for a guard that is *stopped* (SIGSTOP, a
//! debugger). Callers of a stopped FUSE server wait in their system call indefinitely; after
//! `stopped_timeout` seconds of the service being stopped, the sentinel aborts the connections of
//! its guards (fusectl's `abort`, mounted privately under the runtime directory, else a forced
//! unmount). Waiting callers then get an error, nothing gets through, and the service's watchdog
//! mounts fresh guards when it runs again.
//! A guard that is merely slow (a long fsync) is never aborted: only the stopped state counts.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use imageguard_identity::procfs;
use imageguard_volume::backing::GUARD_FSTYPE;
use imageguard_volume::{mountapi, MountTable};

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
            ctl_mounted = mountapi::mount_fusectl(&ctl).is_ok();
        }
        let abort = ctl.join(entry.minor.to_string()).join("abort");
        if !(ctl_mounted && std::fs::write(&abort, "1").is_ok()) {
            if let Err(e) = mountapi::force_unmount(&mp) {
                eprintln!("imageguard sentinel: {e}");
            }
        }
    }
    if ctl_mounted {
        let _ = mountapi::detach(&ctl);
    }
}
