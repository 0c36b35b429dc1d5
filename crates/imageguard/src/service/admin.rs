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
        if let Err(e) = self.shield.set_admin_locked(
            locked,
            &held_by_lock(&self.paths, &self.config.definitions.systemd_units),
        ) {
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
/// configuration (or, missing, the folder it would be created in), its state folder (every
/// entry in it and in its folders), and in systemd's unit folders `unit_dirs` its unit and
/// drop-ins, and the names `imageguard.service` and `imageguard.service.d` there and in their
/// `.wants`/`.requires` folders: a unit or a symlink to /dev/null made there would shadow or
/// mask the packaged unit, and a link removed from a `.wants` folder would disable it, each at
/// the next boot.
pub fn held_by_lock(
    paths: &crate::paths::PathArgs,
    unit_dirs: &[std::path::PathBuf],
) -> super::kernel_shield::OwnFiles {
    let mut own = super::kernel_shield::OwnFiles::default();
    if let Ok(exe) = std::env::current_exe() {
        own.files.push(exe);
    }
    if paths.config.exists() {
        own.files.push(paths.config.clone());
    } else if let Some(dir) = paths.config.parent() {
        own.folders.push(dir.to_path_buf());
    }
    const UNIT: &str = "imageguard.service";
    const DROP_INS: &str = "imageguard.service.d";
    let mut dirs: Vec<std::path::PathBuf> = unit_dirs.to_vec();
    // Without the usr merge, packages still install units under /lib.
    if dirs
        .iter()
        .any(|d| d == Path::new("/usr/lib/systemd/system"))
    {
        dirs.push("/lib/systemd/system".into());
    }
    for dir in dirs.iter().filter(|d| d.is_dir()) {
        if dir.join(UNIT).exists() {
            own.files.push(dir.join(UNIT));
        }
        if dir.join(DROP_INS).is_dir() {
            own.folders.push(dir.join(DROP_INS));
        }
        own.names.push((dir.clone(), UNIT.into()));
        own.names.push((dir.clone(), DROP_INS.into()));
        let wants = std::fs::read_dir(dir).into_iter().flatten().flatten();
        for w in wants.map(|e| e.path()).filter(|p| {
            p.is_dir()
                && p.extension()
                    .is_some_and(|x| x == "wants" || x == "requires")
        }) {
            own.names.push((w, UNIT.into()));
        }
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
