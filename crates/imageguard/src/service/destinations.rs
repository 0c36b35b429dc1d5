//! The backup destinations of saved definitions, as the guard's rules: everything in a
//! destination folder (an rsnapshot `snapshot_root`, a borg repository path) is a backup,
//! whatever its name. They are remembered in the service's state as they are found, and kept
//! when a definition stops naming one (editing a configuration file must not be a way to
//! unprotect backups); the user unprotecting the volume forgets them. A remembered drive
//! mounted elsewhere keeps its destinations, moved with it. A user's definition that nobody
//! approved counts only inside that user's home.
//!
//! What lets a sync tool delete or add is narrower: the destinations of definitions an
//! administrator vetted, as they are now ([`Vetting`]); the others are named in refusals.

use std::path::{Path, PathBuf};

use anyhow::Result;
use imageguard_policy::{Event, EventKind};

use crate::backup_drives::DriveReport;
use crate::control::protocol::Response;

use super::volumes::path_ref;
use super::Service;

/// The destinations of vetted definitions (approved, or imageguard's own) as they are now,
/// and those of the others, named, for refusals.
#[derive(Debug, Clone, Default)]
pub struct Vetting {
    pub vetted: Vec<PathBuf>,
    /// (destination folder, the definition that names it, as an administrator finds it)
    pub unapproved: Vec<(PathBuf, String)>,
}

impl Vetting {
    /// From the resolved destinations of every definition.
    pub fn of(found: &[DriveReport]) -> Vetting {
        let mut v = Vetting::default();
        for d in found {
            let Some(folder) = &d.folder else { continue };
            let folder = folder.canonicalize().unwrap_or_else(|_| folder.clone());
            if d.approval.is_some_and(|a| a.vetted()) {
                v.vetted.push(folder);
            } else {
                let label = crate::approvals::label(d.program, &d.file, &d.name);
                v.unapproved.push((folder, label));
            }
        }
        v
    }
}

impl Service {
    /// Remember the local destinations in `found` (one not created yet too: rsnapshot makes
    /// its `snapshot_root` at its first run; one on a drive not plugged in, for when it is).
    pub(super) fn remember_destinations(&self, found: &[DriveReport]) {
        let mut inner = self.inner.lock();
        let mut added = false;
        for d in found
            .iter()
            .filter(|d| d.location != "network" && d.location != "remote")
            .filter(|d| d.confined.is_none())
        {
            let Some(folder) = &d.folder else { continue };
            let folder: PathBuf = folder.canonicalize().unwrap_or_else(|_| folder.clone());
            if !inner.state.backup_destinations.contains(&folder) {
                inner.state.backup_destinations.push(folder);
                added = true;
            }
        }
        if added {
            if let Err(e) = self.save_state(&inner) {
                eprintln!("imageguard: {e:#}");
            }
        }
    }

    /// Give every protected volume the rules for the destinations on it now.
    pub(super) fn refresh_rules(&self) {
        let mut inner = self.inner.lock();
        let state = inner.state.clone();
        for (mp, v) in inner.volumes.iter_mut() {
            let now = state.destinations_on(mp, v.info.uuid.as_deref());
            if now == v.destinations {
                continue;
            }
            match self.config.rules_for(mp, &now) {
                Ok(rules) => {
                    v.shared.set_rules(rules);
                    log::info!("{}: backup destinations now {:?}", mp.display(), now);
                    v.destinations = now;
                }
                Err(e) => eprintln!("imageguard: rules for {}: {e:#}", mp.display()),
            }
        }
    }
}

impl Service {
    /// `imageguard definitions approve|revoke`: recorded in the state (sealed), logged (an
    /// approval lets sync tools delete: 340; a withdrawal: 330), and applied at once.
    pub(super) fn approve_definitions(
        &self,
        file: &Path,
        name: Option<&str>,
        revoke: bool,
    ) -> Result<Response> {
        let found = self.config.saved_definitions(&self.paths.config);
        let lines = {
            let mut inner = self.inner.lock();
            let lines = crate::approvals::apply(
                &mut inner.state.approved_definitions,
                &found.definitions,
                file,
                name,
                revoke,
                super::now(),
            )
            .map_err(|e| anyhow::anyhow!(e))?;
            self.save_state(&inner)?;
            lines
        };
        let kind = if revoke {
            EventKind::UserProtectedVolume
        } else {
            EventKind::UserDisabledVolume
        };
        for l in &lines {
            eprintln!("imageguard: {l}");
            self.emit(
                Event::new(kind)
                    .with_volume(path_ref(file))
                    .with_file(file.display().to_string())
                    .with_detail(l.clone()),
            );
        }
        // What the definitions allow and where they reach, as they stand now.
        self.protect_backup_drives(false);
        Ok(Response::ok(lines.join("\n")))
    }
}
