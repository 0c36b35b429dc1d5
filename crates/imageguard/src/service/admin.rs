//! The admin lock in the running service (see `crate::admin_lock`): which requests need its
//! passphrase, refusing (and logging) those that come without it, setting and clearing it, and
//! sealing the files the service writes (configuration, certified list, state) while it is set.

use std::path::Path;

use anyhow::Result;
use imageguard_policy::{Event, EventKind};

use super::volumes::path_ref;
use super::Service;
use crate::admin_lock::{AdminLock, Checked, NEEDS_PASSPHRASE};
use crate::control::protocol::{Request, Response};

impl Service {
    /// `req` as the admin lock lets it through: the request to carry out, or the answer that
    /// refuses it (logged as a blocked access to the control socket).
    pub(super) fn admit(&self, req: Request) -> std::result::Result<Request, Response> {
        let lock = self.admin_lock.lock().clone();
        let (req, authorized) = match req {
            Request::Authorized {
                passphrase,
                request,
            } => {
                let ok = lock.as_ref().is_none_or(|l| l.check(&passphrase));
                if !ok {
                    self.refused(&request, "the admin lock's passphrase given was wrong");
                    return Err(Response::error(
                        "the admin lock's passphrase is wrong",
                        libc::EACCES,
                    ));
                }
                (*request, true)
            }
            other => (other, false),
        };
        if lock.is_some() && req.needs_admin() && !authorized {
            self.refused(&req, "no passphrase was given");
            return Err(Response::error(
                format!(
                    "{NEEDS_PASSPHRASE} (on a terminal it is asked for; else --passphrase-file)"
                ),
                libc::EACCES,
            ));
        }
        Ok(req)
    }

    /// Log a request the admin lock refused.
    fn refused(&self, req: &Request, why: &str) {
        eprintln!(
            "imageguard: `{}` refused by the admin lock: {why}",
            req.name()
        );
        self.emit(
            Event::new(EventKind::BlockedFileAccess)
                .with_file(self.paths.socket().display().to_string())
                .with_detail(format!(
                    "`imageguard {}` refused by the admin lock: {why}",
                    req.name()
                )),
        );
    }

    /// `imageguard lock set`: a new passphrase (authorized by the old one, if any).
    pub(super) fn lock_set(&self, passphrase: &str) -> Result<Response> {
        let lock = AdminLock::new(passphrase)?;
        lock.save(&self.paths.state_dir)?;
        for f in self.sealed_files() {
            lock.seal(&f)?;
        }
        *self.admin_lock.lock() = Some(lock);
        self.shield_admin_lock(true);
        self.emit(
            Event::new(EventKind::UserProtectedVolume)
                .with_volume(path_ref(&self.paths.state_dir))
                .with_detail(
                    "admin lock set: off, unprotect, eject, maintenance, certify, \
                              uncertify, stop and settings changes need its passphrase",
                ),
        );
        Ok(Response::ok(
            "admin lock set: off, unprotect, eject, maintenance, certify, uncertify, stop and settings \
             changes now need the passphrase; the configuration, the certified list and the \
             state are sealed",
        ))
    }

    /// `imageguard lock clear` (authorized).
    pub(super) fn lock_clear(&self) -> Result<Response> {
        let was = self.admin_lock.lock().take();
        if was.is_none() {
            return Ok(Response::ok("no admin lock is set"));
        }
        std::fs::remove_file(AdminLock::file(&self.paths.state_dir))?;
        self.shield_admin_lock(false);
        self.emit(
            Event::new(EventKind::UserDisabledVolume)
                .with_volume(path_ref(&self.paths.state_dir))
                .with_detail("admin lock cleared"),
        );
        Ok(Response::ok("admin lock cleared"))
    }

    /// Tell the kernel shield whether the admin lock is set (then no other task may signal
    /// the service).
    pub(super) fn shield_admin_lock(&self, locked: bool) {
        if let Err(e) = self
            .shield
            .set_admin_locked(locked, &held_by_lock(&self.paths))
        {
            eprintln!("imageguard: the kernel shield: {e:#}");
        }
    }

    /// The files the admin lock seals.
    pub(super) fn sealed_files(&self) -> Vec<std::path::PathBuf> {
        sealed_files(&self.paths)
    }

    /// Seal `path` after the service wrote it, while the lock is set.
    pub(super) fn seal(&self, path: &Path) {
        if let Some(lock) = self.admin_lock.lock().as_ref() {
            if let Err(e) = lock.seal(path) {
                eprintln!("imageguard: sealing {}: {e:#}", path.display());
            }
        }
    }
}

/// What the kernel shield holds while the admin lock is set: imageguard's program, its
/// configuration (or, missing, the folder it would be created in), its systemd units and
/// drop-ins, and its state folder (every entry in it and in its folders).
pub fn held_by_lock(paths: &crate::paths::PathArgs) -> super::kernel_shield::OwnFiles {
    let mut own = super::kernel_shield::OwnFiles::default();
    if let Ok(exe) = std::env::current_exe() {
        own.files.push(exe);
    }
    if paths.config.exists() {
        own.files.push(paths.config.clone());
    } else if let Some(dir) = paths.config.parent() {
        own.folders.push(dir.to_path_buf());
    }
    for unit in [
        "/etc/systemd/system/imageguard.service",
        "/lib/systemd/system/imageguard.service",
        "/usr/lib/systemd/system/imageguard.service",
    ] {
        if Path::new(unit).exists() {
            own.files.push(unit.into());
        }
    }
    let drop_ins = Path::new("/etc/systemd/system/imageguard.service.d");
    if drop_ins.is_dir() {
        own.folders.push(drop_ins.into());
    }
    // The state folder itself (not renamed or removed), and everything in it.
    own.files.push(paths.state_dir.clone());
    own.folders.push(paths.state_dir.clone());
    own
}

/// The files the admin lock seals: the configuration, the certified list, the state (with
/// the approved definitions), and what the retention lock's ages are measured by (the
/// service's clock and every volume's first-seen dates: moved by hand, they would release
/// young backups).
pub fn sealed_files(paths: &crate::paths::PathArgs) -> Vec<std::path::PathBuf> {
    let mut files = vec![
        paths.config.clone(),
        paths.certified_list(),
        paths.service_state(),
        paths.state_dir.join("clock.json"),
    ];
    let ages = std::fs::read_dir(paths.state_dir.join("ages"))
        .into_iter()
        .flatten();
    let mut stores: Vec<std::path::PathBuf> = ages
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    stores.sort();
    files.extend(stores);
    files
}

/// At start, before anything is read: with the lock set, every sealed file changed by hand is
/// moved aside and its last good copy restored. Returns the events to log once the log runs.
pub fn check_sealed_files(lock: &AdminLock, files: &[std::path::PathBuf]) -> Vec<Event> {
    let mut out = vec![];
    for f in files {
        match lock.check_file(f) {
            Ok(Checked::Intact) => {}
            Ok(Checked::Refused { aside, restored }) => {
                let msg = format!(
                    "{} was changed outside imageguard while the admin lock is set: refused \
                     (kept as {}); {}",
                    f.display(),
                    aside.display(),
                    if restored {
                        "the last good copy is in use"
                    } else {
                        "no good copy: defaults are in use"
                    }
                );
                eprintln!("imageguard: {msg}");
                out.push(
                    Event::new(EventKind::BlockedFileAccess)
                        .with_file(f.display().to_string())
                        .with_detail(msg),
                );
            }
            Err(e) => {
                eprintln!("imageguard: checking {}: {e:#}", f.display());
                out.push(
                    Event::new(EventKind::ErrorBadEvent)
                        .with_file(f.display().to_string())
                        .with_detail(format!("checking its seal: {e:#}")),
                );
            }
        }
    }
    out
}
