//! The service's clock: seconds of service life, counted on `CLOCK_BOOTTIME` (which goes on
//! through suspend and which no one can set), less any offset a time namespace put on it (a
//! service started in `unshare --time --boottime` must not see a year pass). It is saved in the
//! state folder: after a restart within the same boot the time the service was down is counted
//! (the boot clock measured it); across a reboot it is not (nothing trustworthy measured it), so
//! a lock only ever lasts longer than its days, never shorter.
//!
//! Tests move this clock by editing its saved state while the service is stopped: that is the
//! clock source's override, and the only one.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What is saved between runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Saved {
    /// Seconds of service life counted so far.
    pub elapsed_secs: u64,
    /// The boot this was saved in (`/proc/sys/kernel/random/boot_id`).
    pub boot_id: String,
    /// The boot clock (namespace offsets removed) when it was saved, in seconds.
    pub boottime_secs: u64,
}

/// The boot clock as the initial time namespace sees it: `CLOCK_BOOTTIME` less this process's
/// namespace offset (`/proc/self/timens_offsets`).
pub fn real_boottime() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Boottime);
    let seen = Duration::new(t.tv_sec as u64, t.tv_nsec as u32);
    let offset = std::fs::read_to_string("/proc/self/timens_offsets")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                let mut f = l.split_whitespace();
                (f.next()? == "boottime").then(|| {
                    let secs: i64 = f.next()?.parse().ok()?;
                    let nanos: i64 = f.next()?.parse().ok()?;
                    Some((secs, nanos))
                })?
            })
        })
        .unwrap_or((0, 0));
    let offset_ns = i128::from(offset.0) * 1_000_000_000 + i128::from(offset.1);
    let real_ns = (seen.as_nanos() as i128 - offset_ns).max(0);
    Duration::from_nanos(real_ns as u64)
}

/// This boot's id.
pub fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// The service's clock for one run.
#[derive(Debug)]
pub struct ServiceClock {
    file: PathBuf,
    /// Seconds counted before this run (and while the service was down in this boot).
    base: u64,
    /// The boot clock when this run started.
    started: Duration,
    boot_id: String,
}

/// Seconds of service life to count at start, from what was saved.
pub fn resume(saved: Option<&Saved>, boot_id: &str, boottime_secs: u64) -> u64 {
    match saved {
        Some(s) if s.boot_id == boot_id && boottime_secs >= s.boottime_secs => {
            s.elapsed_secs + (boottime_secs - s.boottime_secs)
        }
        Some(s) => s.elapsed_secs,
        None => 0,
    }
}

impl ServiceClock {
    /// Start the clock from `file` (created at the first save).
    pub fn start(file: &Path) -> io::Result<ServiceClock> {
        let saved: Option<Saved> = match std::fs::read(file) {
            Ok(b) => Some(serde_json::from_slice(&b).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{}: {e}", file.display()),
                )
            })?),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        let started = real_boottime();
        let boot_id = boot_id();
        let base = resume(saved.as_ref(), &boot_id, started.as_secs());
        let clock = ServiceClock {
            file: file.to_path_buf(),
            base,
            started,
            boot_id,
        };
        clock.save()?;
        Ok(clock)
    }

    /// The file it is saved to.
    pub fn file(&self) -> &std::path::Path {
        &self.file
    }

    /// Seconds of service life now.
    pub fn now(&self) -> u64 {
        self.base + real_boottime().saturating_sub(self.started).as_secs()
    }

    /// Save the clock (atomically: a crash leaves the old or the new state).
    pub fn save(&self) -> io::Result<()> {
        let saved = Saved {
            elapsed_secs: self.now(),
            boot_id: self.boot_id.clone(),
            boottime_secs: real_boottime().as_secs(),
        };
        let tmp = self.file.with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_vec(&saved).map_err(io::Error::other)?)?;
        std::fs::File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, &self.file)
    }
}

/// Wait for the wall clock to be set (a timer on `CLOCK_REALTIME` cancelled on set) and call
/// `on_jump` with how far it moved, in seconds (negative: back), for as long as it returns
/// true. Runs on its own thread.
pub fn watch_wall_clock(mut on_jump: impl FnMut(i64) -> bool + Send + 'static) -> io::Result<()> {
    use rustix::time::{
        timerfd_create, timerfd_settime, Itimerspec, TimerfdClockId, TimerfdFlags,
        TimerfdTimerFlags, Timespec,
    };
    let fd = timerfd_create(TimerfdClockId::Realtime, TimerfdFlags::CLOEXEC)?;
    let wall_minus_boot = || {
        let wall = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        wall - real_boottime().as_secs() as i64
    };
    std::thread::Builder::new()
        .name("wall clock".into())
        .spawn(move || loop {
            let far = Itimerspec {
                it_interval: Timespec {
                    tv_sec: 0,
                    tv_nsec: 0,
                },
                it_value: Timespec {
                    tv_sec: i64::MAX / 4,
                    tv_nsec: 0,
                },
            };
            let before = wall_minus_boot();
            if timerfd_settime(
                &fd,
                TimerfdTimerFlags::ABSTIME | TimerfdTimerFlags::CANCEL_ON_SET,
                &far,
            )
            .is_err()
            {
                return;
            }
            let mut buf = [0u8; 8];
            match rustix::io::read(&fd, &mut buf) {
                Err(rustix::io::Errno::CANCELED) => {
                    if !on_jump(wall_minus_boot() - before) {
                        return;
                    }
                }
                Err(rustix::io::Errno::INTR) => {}
                _ => return,
            }
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_counts_within_a_boot_and_not_across_one() {
        let saved = Saved {
            elapsed_secs: 1000,
            boot_id: "a".into(),
            boottime_secs: 500,
        };
        // Restarted in the same boot 60 s later: the 60 s count.
        assert_eq!(resume(Some(&saved), "a", 560), 1060);
        // Another boot: the time the machine was off does not count.
        assert_eq!(resume(Some(&saved), "b", 30), 1000);
        // A boot clock behind the saved one (not this boot after all): nothing counts.
        assert_eq!(resume(Some(&saved), "a", 100), 1000);
        assert_eq!(resume(None, "a", 100), 0);
    }

    #[test]
    fn saved_and_resumed() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("clock.json");
        let c = ServiceClock::start(&f).unwrap();
        let first = c.now();
        c.save().unwrap();
        let again = ServiceClock::start(&f).unwrap();
        assert!(again.now() >= first);
        let saved: Saved = serde_json::from_slice(&std::fs::read(&f).unwrap()).unwrap();
        assert_eq!(saved.boot_id, boot_id());
        // A saved state moved forward (the tests' override) is what the clock resumes from.
        let moved = Saved {
            elapsed_secs: saved.elapsed_secs + 15 * 86_400,
            ..saved
        };
        std::fs::write(&f, serde_json::to_vec(&moved).unwrap()).unwrap();
        assert!(ServiceClock::start(&f).unwrap().now() >= 15 * 86_400);
    }

    #[test]
    fn a_time_namespace_does_not_move_the_boot_clock() {
        // In the initial namespace the offset is zero: the real boot clock is the boot clock.
        let t = rustix::time::clock_gettime(rustix::time::ClockId::Boottime);
        let real = real_boottime();
        assert!((real.as_secs() as i64 - t.tv_sec).abs() <= 1);
    }
}
