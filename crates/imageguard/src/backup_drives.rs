//! Where the saved backup definitions back up to, on this machine: each destination resolved to
//! the mount that holds it (a Timeshift UUID to wherever that file system is mounted), local or
//! network, present or not, approved or not, and whether a user's definition reaches it. What
//! `imageguard definitions` shows, and what auto-protection will act on.

use std::path::{Path, PathBuf};

use imageguard_definitions::writer::{inside_home, Writer};
use imageguard_definitions::{Destination, Parsed, Problem, Program};
use imageguard_volume::fsid::{fs_uuid, is_network_fstype};
use imageguard_volume::mountinfo::{is_system_mount_point, MountTable};
use serde::{Deserialize, Serialize};

use crate::approvals::{standing, Approval, Standing};

/// One destination of one definition, as found on this machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriveReport {
    pub program: Program,
    pub file: PathBuf,
    pub name: String,
    /// The destination as the definition gives it.
    pub destination: String,
    /// The folder it is on this machine, when it is here.
    pub folder: Option<PathBuf>,
    /// "local", "network" (a network file system mounted here) or "remote" (another machine).
    pub location: String,
    /// Mount point, device and type of the file system holding it, when mounted.
    pub mount_point: Option<PathBuf>,
    pub device: Option<String>,
    pub fstype: Option<String>,
    /// Whether the folder is there now (a drive not plugged in is not).
    pub present: bool,
    /// Whether it is there but empty (nothing backed up yet, or the mount point of a drive not
    /// plugged in).
    #[serde(default)]
    pub empty: bool,
    /// Whether imageguard protects it now (unknown without the service).
    pub protected: Option<bool>,
    /// The retention lock in force on it, in days, and how many files the lock holds now on
    /// its volume (from the service; absent without it or without a lock).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock_days: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locked_files: Option<usize>,
    /// Whether an administrator approved its definition (unknown where the state cannot be
    /// read: a non-root user).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<Standing>,
    /// Who besides root can change its definition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub writer: Option<Writer>,
    /// Why it is neither protected automatically nor a backup destination: a user's
    /// definition, not approved, naming a folder outside that user's home.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confined: Option<String>,
}

/// Everything `imageguard definitions` reports.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DefinitionsReport {
    pub destinations: Vec<DriveReport>,
    pub problems: Vec<Problem>,
}

/// Why a destination at `folder` of a definition `writer` can change, standing `approval`,
/// does not count (a user must not get the service to guard another user's folders or a
/// system folder); `None` when it counts.
fn confinement(
    d: &imageguard_definitions::Definition,
    approval: Option<Standing>,
    folder: &Path,
) -> Option<String> {
    let w = d.writer.as_ref()?;
    if approval.is_some_and(Standing::vetted) {
        return None;
    }
    if w.home.as_deref().is_some_and(|h| inside_home(folder, h)) {
        return None;
    }
    Some(format!(
        "{} can be changed by {w}: a user's definition protects only inside that user's home \
         until an administrator approves it (imageguard definitions approve {})",
        d.file.display(),
        d.file.display()
    ))
}

/// Resolve every destination of `found` against the mount table; `protected` are the folders
/// imageguard protects now (mount points or folders), if known; `approvals` those an
/// administrator approved, if known.
pub fn resolve(
    found: Parsed,
    table: &MountTable,
    protected: Option<&[PathBuf]>,
    approvals: Option<&[Approval]>,
) -> DefinitionsReport {
    let mut out = DefinitionsReport {
        problems: found.problems,
        ..DefinitionsReport::default()
    };
    let standings: Vec<Option<Standing>> = found
        .definitions
        .iter()
        .map(|d| match approvals {
            Some(a) => Some(standing(a, &found.definitions, d)),
            None if d.program == Program::Imageguard => Some(Standing::Own),
            None => None,
        })
        .collect();
    for (d, approval) in found.definitions.into_iter().zip(standings) {
        for dest in &d.destinations {
            let shown = dest.to_string();
            let folder = match dest {
                Destination::Local { path } => Some(path.clone()),
                Destination::Device { uuid, folder } => {
                    mounted_uuid(table, uuid).map(|mp| mp.join(folder))
                }
                Destination::Remote { .. } => None,
            };
            let mut r = DriveReport {
                program: d.program,
                file: d.file.clone(),
                name: d.name.clone(),
                destination: shown,
                folder: folder.clone(),
                location: "remote".into(),
                mount_point: None,
                device: None,
                fstype: None,
                present: false,
                empty: false,
                protected: None,
                lock_days: None,
                locked_files: None,
                approval,
                writer: d.writer.clone(),
                confined: None,
            };
            if let Some(folder) = &folder {
                r.confined = confinement(&d, approval, folder);
                r.present = folder.is_dir();
                r.empty = std::fs::read_dir(folder).is_ok_and(|mut l| l.next().is_none());
                let here = folder.canonicalize().unwrap_or_else(|_| folder.clone());
                if let Some(m) = table.containing(&here) {
                    r.location = if is_network_fstype(&m.fstype) {
                        "network"
                    } else {
                        "local"
                    }
                    .into();
                    r.mount_point = Some(m.mount_point.clone());
                    r.device = Some(m.source.clone());
                    r.fstype = Some(m.fstype.clone());
                }
                r.protected = protected.map(|p| p.iter().any(|v| here.starts_with(v)));
            }
            out.destinations.push(r);
        }
    }
    out
}

/// Where the file system with `uuid` is mounted, if it is.
pub fn mounted_uuid(table: &MountTable, uuid: &str) -> Option<PathBuf> {
    table
        .entries
        .iter()
        .filter(|e| e.source.starts_with("/dev/"))
        .find(|e| {
            fs_uuid(Path::new(&e.source), &e.fstype).is_some_and(|u| u.eq_ignore_ascii_case(uuid))
        })
        .map(|e| e.mount_point.clone())
}

/// Where a destination's drive is mounted now, when the destination is not there but lies on
/// a backup drive seen before (by its file-system UUID) that is now mounted somewhere else: the
/// USB drive that came back at another mount point.
pub fn remembered(
    d: &DriveReport,
    known: &[crate::state::KnownDrive],
    table: &MountTable,
) -> Option<PathBuf> {
    // Not there, or only the empty folder its drive is mounted on.
    let folder = d.folder.as_ref().filter(|_| !d.present || d.empty)?;
    let drive = known.iter().find(|k| folder.starts_with(&k.mount_point))?;
    mounted_uuid(table, &drive.uuid).filter(|now| *now != drive.mount_point)
}

/// What automatic protection does for one destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AutoProtect {
    /// Protect the whole volume mounted here.
    Volume(PathBuf),
    /// Protect this folder only: the destination is on a system volume.
    Folder(PathBuf),
    /// Nothing, for this reason.
    Skip(String),
}

/// What automatic protection does for `d` (the reference protects *local* backup drives).
pub fn plan(d: &DriveReport) -> AutoProtect {
    let (Some(folder), Some(mp)) = (&d.folder, &d.mount_point) else {
        return AutoProtect::Skip(match d.location.as_str() {
            "remote" => "another machine".into(),
            _ => "not mounted here".into(),
        });
    };
    if let Some(why) = &d.confined {
        return AutoProtect::Skip(why.clone());
    }
    if d.location != "local" {
        return AutoProtect::Skip("a network file system (never protected automatically)".into());
    }
    if d.fstype
        .as_deref()
        .is_some_and(|t| matches!(t, "tmpfs" | "ramfs"))
    {
        return AutoProtect::Skip(format!(
            "{} is in memory ({}): never a backup drive",
            folder.display(),
            d.fstype.as_deref().unwrap_or_default()
        ));
    }
    if is_system_mount_point(mp) {
        // `/`, `/var`, `/home`: guarding one whole would guard the system.
        if folder.components().count() <= 2 || is_system_mount_point(folder) {
            return AutoProtect::Skip(format!(
                "{} is too broad to guard on a system volume: back up to a folder below it",
                folder.display()
            ));
        }
        if d.present && d.empty {
            // Nothing to guard yet, and perhaps the mount point of a drive not plugged in:
            // guarding it would refuse the drive's own mount (a mount inside a protected
            // volume is detached).
            AutoProtect::Skip(format!(
                "{} is empty (a drive not mounted yet?), on a system volume",
                folder.display()
            ))
        } else if d.present {
            AutoProtect::Folder(folder.clone())
        } else {
            AutoProtect::Skip(format!(
                "{} does not exist yet, on a system volume ({})",
                folder.display(),
                mp.display()
            ))
        }
    } else {
        AutoProtect::Volume(mp.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(
        folder: Option<&str>,
        location: &str,
        mp: Option<&str>,
        present: bool,
    ) -> DriveReport {
        DriveReport {
            program: Program::Borgmatic,
            file: "/etc/borgmatic/config.yaml".into(),
            name: "config".into(),
            destination: folder.unwrap_or("ssh://nas/repo").into(),
            folder: folder.map(PathBuf::from),
            location: location.into(),
            mount_point: mp.map(PathBuf::from),
            device: None,
            fstype: None,
            present,
            empty: false,
            protected: None,
            lock_days: None,
            locked_files: None,
            approval: None,
            writer: None,
            confined: None,
        }
    }

    #[test]
    fn what_automatic_protection_does() {
        use AutoProtect::*;
        let table: Vec<(DriveReport, AutoProtect)> = vec![
            (
                report(Some("/mnt/usb/borg"), "local", Some("/mnt/usb"), true),
                Volume("/mnt/usb".into()),
            ),
            (
                report(Some("/mnt/usb/borg"), "local", Some("/mnt/usb"), false),
                Volume("/mnt/usb".into()),
            ),
            (
                report(Some("/var/backups/borg"), "local", Some("/"), true),
                Folder("/var/backups/borg".into()),
            ),
            (
                report(Some("/home/backups"), "local", Some("/home"), true),
                Folder("/home/backups".into()),
            ),
        ];
        for (d, want) in table {
            assert_eq!(plan(&d), want, "{d:?}");
        }
        let mut empty = report(Some("/mnt/usb"), "local", Some("/"), true);
        empty.empty = true;
        let mut in_memory = report(Some("/dev/shm/backups"), "local", Some("/dev/shm"), true);
        in_memory.fstype = Some("tmpfs".into());
        let mut ramfs = report(Some("/mnt/ram/b"), "local", Some("/mnt/ram"), true);
        ramfs.fstype = Some("ramfs".into());
        let mut confined = report(Some("/mnt/usb/borg"), "local", Some("/mnt/usb"), true);
        confined.confined = Some("a user's definition".into());
        for d in [
            empty,
            in_memory,
            ramfs,
            confined,
            report(Some("/"), "local", Some("/"), true),
            report(Some("/var"), "local", Some("/"), true),
            report(Some("/home/"), "local", Some("/home"), true),
            report(Some("/var/backups/new"), "local", Some("/"), false),
            report(Some("/mnt/nas/borg"), "network", Some("/mnt/nas"), true),
            report(None, "remote", None, false),
            report(Some("/media/unplugged"), "local", None, false),
        ] {
            assert!(matches!(plan(&d), Skip(_)), "{d:?}");
        }
    }
}
