//! The backup destinations of saved definitions, as the guard's rules: everything in a
//! destination folder (an rsnapshot `snapshot_root`, a borg repository path) is a backup,
//! whatever its name. They are remembered in the service's state as they are found, and kept
//! when a definition stops naming one (editing a configuration file must not be a way to
//! unprotect backups); the user unprotecting the volume forgets them. A remembered drive
//! mounted elsewhere keeps its destinations, moved with it.

use std::path::PathBuf;

use crate::backup_drives::DriveReport;

use super::Service;

impl Service {
    /// Remember the local destinations in `found` (one not created yet too: rsnapshot makes
    /// its `snapshot_root` at its first run; one on a drive not plugged in, for when it is).
    pub(super) fn remember_destinations(&self, found: &[DriveReport]) {
        let mut inner = self.inner.lock();
        let mut added = false;
        for d in found
            .iter()
            .filter(|d| d.location != "network" && d.location != "remote")
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
