//! Keeping backup drives protected while the service runs: when a definition file appears or
//! changes (inotify on the folders definitions live in) or a file system is mounted (a USB
//! drive plugged in: `/proc/self/mountinfo`), the drives the definitions back up to are
//! protected again after a short quiet time, and so is any absent drive (see [`super::absent`])
//! that is mounted again. A volume the user unprotected by hand stays unprotected until the
//! service starts again, as the reference product does. Without automatic protection, the
//! definitions are still followed (their destinations are what the sync rules and the guards'
//! rules know as backup destinations), and mounts (for absent drives).

use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use imageguard_definitions::discover::watched_folders;
use rustix::event::{poll, PollFd, PollFlags};
use rustix::fs::inotify::{self, WatchFlags};
use rustix::time::Timespec;

use super::Service;

/// Changes come in bursts (an editor's save, a package's files, a drive's partitions): act
/// once they have been quiet this long.
const QUIET: Duration = Duration::from_millis(300);

const FOLDER_EVENTS: WatchFlags = WatchFlags::CREATE
    .union(WatchFlags::DELETE)
    .union(WatchFlags::MOVED_FROM)
    .union(WatchFlags::MOVED_TO)
    .union(WatchFlags::CLOSE_WRITE)
    .union(WatchFlags::MODIFY);

/// A fresh inotify instance watching where definitions live now.
fn watch_definitions(service: &Service) -> Result<OwnedFd> {
    let fd = inotify::init(inotify::CreateFlags::NONBLOCK | inotify::CreateFlags::CLOEXEC)?;
    for folder in watched_folders(&service.config.definitions) {
        // A folder that vanished meanwhile is found again at the next round.
        let _ = inotify::add_watch(&fd, folder.as_path(), FOLDER_EVENTS);
    }
    Ok(fd)
}

/// Whether anything is readable on `fds` within `wait`.
fn wait_for(fds: &mut [PollFd<'_>], wait: Duration) -> bool {
    let t = Timespec {
        tv_sec: wait.as_secs() as i64,
        tv_nsec: wait.subsec_nanos() as i64,
    };
    poll(fds, Some(&t)).unwrap_or(0) > 0
}

/// Start following definitions and mounts.
pub fn follow(service: Arc<Service>) -> Result<()> {
    let mounts = std::fs::File::open("/proc/self/mountinfo").context("opening mountinfo")?;
    std::thread::Builder::new()
        .name("backup drives".into())
        .spawn(move || {
            let mut watch = None;
            loop {
                let Some(w) = watch.take().or_else(|| watch_definitions(&service).ok()) else {
                    std::thread::sleep(Duration::from_secs(5));
                    continue;
                };
                let mut fds = [
                    PollFd::new(&w, PollFlags::IN),
                    PollFd::new(&mounts, PollFlags::PRI),
                ];
                if !wait_for(&mut fds, Duration::from_secs(60)) {
                    watch = Some(w);
                    continue;
                }
                // Let the burst end: wait until nothing more arrives for QUIET.
                loop {
                    let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 4096];
                    let mut reader = inotify::Reader::new(&w, &mut buf);
                    while reader.next().is_ok() {}
                    let mut fds = [PollFd::new(&w, PollFlags::IN)];
                    if !wait_for(&mut fds, QUIET) {
                        break;
                    }
                }
                // Watch where definitions live now before looking at them, so that nothing
                // changed meanwhile goes unseen (folders may have come or gone).
                watch = watch_definitions(&service).ok();
                if service.is_stopping() {
                    return;
                }
                service.return_absent_drives();
                service.protect_backup_drives(false);
            }
        })
        .context("starting the backup-drive follower")?;
    Ok(())
}
