//! Where the saved backup definitions back up to, on this machine: each destination resolved to
//! the mount that holds it (a Timeshift UUID to wherever that file system is mounted), local or
//! network, present or not. What `imageguard definitions` shows, and what auto-protection will
//! act on.

use std::path::{Path, PathBuf};

use imageguard_definitions::{Destination, Parsed, Problem, Program};
use imageguard_volume::fsid::{fs_uuid, is_network_fstype};
use imageguard_volume::mountinfo::MountTable;
use serde::{Deserialize, Serialize};

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
    /// Whether imageguard protects it now (unknown without the service).
    pub protected: Option<bool>,
}

/// Everything `imageguard definitions` reports.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DefinitionsReport {
    pub destinations: Vec<DriveReport>,
    pub problems: Vec<Problem>,
}

/// Resolve every destination of `found` against the mount table; `protected` are the folders
/// imageguard protects now (mount points or folders), if known.
pub fn resolve(
    found: Parsed,
    table: &MountTable,
    protected: Option<&[PathBuf]>,
) -> DefinitionsReport {
    let mut out = DefinitionsReport {
        problems: found.problems,
        ..DefinitionsReport::default()
    };
    for d in found.definitions {
        for dest in &d.destinations {
            let (shown, folder) = match dest {
                Destination::Local { path } => (path.display().to_string(), Some(path.clone())),
                Destination::Device { uuid, folder } => (
                    format!("UUID={uuid}/{}", folder.display()),
                    mounted_uuid(table, uuid).map(|mp| mp.join(folder)),
                ),
                Destination::Remote { location } => (location.clone(), None),
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
                protected: None,
            };
            if let Some(folder) = &folder {
                r.present = folder.is_dir();
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
fn mounted_uuid(table: &MountTable, uuid: &str) -> Option<PathBuf> {
    table
        .entries
        .iter()
        .filter(|e| e.source.starts_with("/dev/"))
        .find(|e| {
            fs_uuid(Path::new(&e.source), &e.fstype).is_some_and(|u| u.eq_ignore_ascii_case(uuid))
        })
        .map(|e| e.mount_point.clone())
}
