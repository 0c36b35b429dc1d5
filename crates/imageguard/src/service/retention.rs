//! The retention lock on each protected volume ([`Retention`] for its guard): which locks of
//! the configuration cover it (`[retention]`: days by protected volume or destination folder),
//! when the guard first saw each of its backup files (its first-seen store in the state
//! folder, filled at protect time and as files are created), and their age on the service's
//! own clock. Files never seen are young.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use imageguard_guardfs::Retention;
use imageguard_retention::{AgeStore, ServiceClock};

/// The locks (absolute folder, days) of the configuration that cover the volume mounted at
/// `mount_point`: a lock on the volume or an ancestor covers all of it, one on a folder inside
/// it covers that folder.
pub fn locks_on(configured: &[(PathBuf, u32)], mount_point: &Path) -> Vec<(PathBuf, u32)> {
    configured
        .iter()
        .filter(|(_, days)| *days > 0)
        .filter_map(|(folder, days)| {
            if mount_point.starts_with(folder) {
                Some((mount_point.to_path_buf(), *days))
            } else if folder.starts_with(mount_point) {
                Some((folder.clone(), *days))
            } else {
                None
            }
        })
        .collect()
}

/// The file a volume's first-seen store is kept in: by file-system UUID when it has one (it
/// follows the drive to another mount point), else by mount point.
pub fn store_file(state_dir: &Path, uuid: Option<&str>, mount_point: &Path) -> PathBuf {
    let name = match uuid {
        Some(u) => format!("uuid-{u}"),
        None => format!(
            "at-{}",
            mount_point
                .to_string_lossy()
                .trim_matches('/')
                .replace('/', "_")
        ),
    };
    state_dir.join("ages").join(format!("{name}.jsonl"))
}

/// One volume's lock.
#[derive(Debug)]
pub struct VolumeRetention {
    clock: Arc<ServiceClock>,
    pub store: AgeStore,
    locks: Vec<(PathBuf, u32)>,
}

impl VolumeRetention {
    pub fn new(clock: Arc<ServiceClock>, store: AgeStore, locks: Vec<(PathBuf, u32)>) -> Self {
        VolumeRetention {
            clock,
            store,
            locks,
        }
    }

    /// The longest lock on the volume, in days (0: none).
    pub fn longest(&self) -> u32 {
        self.locks.iter().map(|(_, d)| *d).max().unwrap_or(0)
    }

    /// How many files the longest lock holds now.
    pub fn held_now(&self) -> usize {
        self.store
            .younger_than(u64::from(self.longest()) * 86_400, self.clock.now())
    }

    /// A backup file found at protect time: dated now unless seen before.
    pub fn found(&self, key: &[u8]) {
        self.store.seen(key, self.clock.now());
    }
}

impl Retention for VolumeRetention {
    fn any_lock(&self) -> bool {
        !self.locks.is_empty()
    }

    fn lock_days(&self, path: &Path) -> u32 {
        self.locks
            .iter()
            .filter(|(folder, _)| path.starts_with(folder))
            .map(|(_, d)| *d)
            .max()
            .unwrap_or(0)
    }

    fn age(&self, key: &[u8]) -> Option<Duration> {
        let now = self.clock.now();
        match self.store.first_seen(key) {
            Some(t) => Some(Duration::from_secs(now.saturating_sub(t))),
            None => {
                self.store.seen(key, now);
                None
            }
        }
    }

    fn seen(&self, key: &[u8]) {
        self.store.seen(key, self.clock.now());
    }

    fn gone(&self, key: &[u8]) {
        self.store.forget(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_locks_cover_a_volume() {
        let configured = vec![
            (PathBuf::from("/mnt/usb"), 14),
            (PathBuf::from("/mnt/usb/borg"), 30),
            (PathBuf::from("/mnt/other"), 7),
            (PathBuf::from("/mnt/usb/off"), 0),
            (PathBuf::from("/"), 2),
        ];
        let on = locks_on(&configured, Path::new("/mnt/usb"));
        assert_eq!(
            on,
            vec![
                (PathBuf::from("/mnt/usb"), 14),
                (PathBuf::from("/mnt/usb/borg"), 30),
                (PathBuf::from("/mnt/usb"), 2),
            ]
        );
        assert_eq!(
            store_file(Path::new("/s"), None, Path::new("/mnt/usb")),
            PathBuf::from("/s/ages/at-mnt_usb.jsonl")
        );
    }
}
