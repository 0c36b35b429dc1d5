//! The service's persistent state (`STATE_DIR/state.json`): whether protection is on, whether it
//! comes back at the next boot, which volumes the user protected, the backup drives seen
//! (by file-system UUID, so that one mounted elsewhere later is still known), the retention
//! locks in force, and the definitions an administrator approved.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use imageguard_policy::lock_changes::LockRecord;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceState {
    /// Protection on (the spec's "Turn on Image Guardian").
    pub protection_on: bool,
    /// When turned off with "restart on reboot": the boot it was turned off in.
    #[serde(default)]
    pub off_until_boot: Option<String>,
    /// Volumes (mount points or folders) the user protected.
    #[serde(default)]
    pub volumes: Vec<PathBuf>,
    /// Backup drives protected automatically: their file system's UUID and where they were
    /// mounted then.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backup_drives: Vec<KnownDrive>,
    /// Backup destinations of saved definitions seen since they were protected: everything
    /// in them is a backup. Kept when a definition stops naming one (an edited configuration
    /// must not be a way to unprotect backups); forgotten when the user unprotects the volume.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backup_destinations: Vec<PathBuf>,
    /// The retention locks in force: the configuration's, and those shortened or removed
    /// that stay until their period has passed (see `imageguard_policy::lock_changes`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retention_locks: Vec<LockRecord>,
    /// Volumes the user unprotected while a retention lock held backups on them: their guard
    /// stays, only the lock refusing, until no lock is in force on them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lock_held: Vec<PathBuf>,
    /// Definitions an administrator approved, as they were then (see [`crate::approvals`]):
    /// only these (and imageguard's own) let a sync tool delete or add.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approved_definitions: Vec<crate::approvals::Approval>,
}

/// A backup drive seen before.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KnownDrive {
    pub uuid: String,
    /// Where it was mounted when it was last protected: the definitions' paths are under it.
    pub mount_point: PathBuf,
}

impl Default for ServiceState {
    fn default() -> Self {
        ServiceState {
            protection_on: true,
            off_until_boot: None,
            volumes: vec![],
            backup_drives: vec![],
            backup_destinations: vec![],
            retention_locks: vec![],
            lock_held: vec![],
            approved_definitions: vec![],
        }
    }
}

/// This boot's id.
pub fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

impl ServiceState {
    /// The remembered backup destinations on the volume mounted at `mp` (file system `uuid`):
    /// those under `mp`, and those recorded on the same drive while it was mounted elsewhere,
    /// moved to where it is now.
    pub fn destinations_on(&self, mp: &Path, uuid: Option<&str>) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = self
            .backup_destinations
            .iter()
            .filter(|d| d.starts_with(mp))
            .cloned()
            .collect();
        let moved = self
            .backup_drives
            .iter()
            .filter(|k| Some(k.uuid.as_str()) == uuid && k.mount_point != mp)
            .flat_map(|k| {
                self.backup_destinations
                    .iter()
                    .filter_map(|d| d.strip_prefix(&k.mount_point).ok())
                    .map(|rel| mp.join(rel))
            });
        for d in moved {
            if !out.contains(&d) {
                out.push(d);
            }
        }
        out
    }

    pub fn load(path: &Path) -> Result<ServiceState> {
        match std::fs::read(path) {
            Ok(b) => serde_json::from_slice(&b)
                .with_context(|| format!("{}: invalid state file", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ServiceState::default()),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(self)?)
            .with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
    }

    /// At service start: protection turned off "until reboot" comes back on in a new boot.
    pub fn on_at_start(&mut self, boot: &str) -> bool {
        if !self.protection_on {
            if let Some(b) = &self.off_until_boot {
                if b != boot {
                    self.protection_on = true;
                    self.off_until_boot = None;
                }
            }
        }
        self.protection_on
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_until_reboot_comes_back_in_a_new_boot_only() {
        let mut s = ServiceState {
            protection_on: false,
            off_until_boot: Some("boot-a".into()),
            ..ServiceState::default()
        };
        assert!(!s.on_at_start("boot-a"));
        assert!(s.on_at_start("boot-b"));
        let mut stays_off = ServiceState {
            protection_on: false,
            off_until_boot: None,
            ..ServiceState::default()
        };
        assert!(!stays_off.on_at_start("boot-b"));
    }

    #[test]
    fn round_trip() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("state.json");
        assert_eq!(ServiceState::load(&p).unwrap(), ServiceState::default());
        let s = ServiceState {
            protection_on: false,
            off_until_boot: Some("x".into()),
            volumes: vec!["/mnt/b".into()],
            backup_drives: vec![KnownDrive {
                uuid: "abcd".into(),
                mount_point: "/media/usb".into(),
            }],
            backup_destinations: vec!["/media/usb/borg".into()],
            retention_locks: vec![LockRecord {
                folder: "/media/usb".into(),
                days: 14,
                until: Some(86_400),
            }],
            lock_held: vec!["/media/usb".into()],
            approved_definitions: vec![crate::approvals::Approval {
                program: imageguard_definitions::Program::Borgmatic,
                file: "/etc/borgmatic.d/usb.yaml".into(),
                name: "usb".into(),
                destinations: vec![imageguard_definitions::Destination::Local {
                    path: "/media/usb/borg".into(),
                }],
                sources: vec!["/home".into()],
                approved_at: 1_700_000_000,
            }],
        };
        s.save(&p).unwrap();
        assert_eq!(ServiceState::load(&p).unwrap(), s);
    }

    #[test]
    fn destinations_follow_their_drive_to_another_mount_point() {
        let s = ServiceState {
            backup_drives: vec![KnownDrive {
                uuid: "abcd".into(),
                mount_point: "/media/usb".into(),
            }],
            backup_destinations: vec![
                "/media/usb/borg".into(),
                "/media/usb/snapshots".into(),
                "/srv/backups".into(),
            ],
            ..ServiceState::default()
        };
        let p = |v: &[&str]| v.iter().map(PathBuf::from).collect::<Vec<_>>();
        let at = |mp: &str, uuid: Option<&str>| s.destinations_on(Path::new(mp), uuid);
        assert_eq!(
            at("/media/usb", Some("abcd")),
            p(&["/media/usb/borg", "/media/usb/snapshots"])
        );
        assert_eq!(
            at("/mnt/elsewhere", Some("abcd")),
            p(&["/mnt/elsewhere/borg", "/mnt/elsewhere/snapshots"])
        );
        assert!(at("/mnt/elsewhere", Some("other")).is_empty());
        assert!(at("/mnt/elsewhere", None).is_empty());
        assert_eq!(at("/srv", None), p(&["/srv/backups"]));
    }
}
