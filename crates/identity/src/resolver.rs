//! pid → [`CallerFacts`]: is the process behind a request certified?
//!
//! Cost on the hot path: an uncertified caller costs one `stat` and one `readlink` of
//! `/proc/PID/exe`. A candidate (its executable is on the list) additionally has its environment,
//! script and hash checked once per process (cached by pid and start time) and its tracer checked
//! on every request, because a debugger can attach at any time.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use imageguard_policy::certification::ExeLookup;
use imageguard_policy::{CallerFacts, CertifiedEntry, CertifiedList, FileIdentity, Untrusted};
use parking_lot::{Mutex, RwLock};

use crate::hashing::sha256_hex;
use crate::procfs;

/// Entries kept in each cache before it is cleared (bounds memory under pid churn).
const CACHE_LIMIT: usize = 8192;

type Trust = Result<String, Untrusted>;

/// Resolves callers against the current certified list.
#[derive(Debug)]
pub struct CallerResolver {
    list: RwLock<Arc<CertifiedList>>,
    hashes: Mutex<HashMap<FileIdentity, Option<String>>>,
    processes: Mutex<HashMap<(u32, u64, FileIdentity), Trust>>,
    self_pid: u32,
}

impl CallerResolver {
    pub fn new(list: CertifiedList) -> CallerResolver {
        CallerResolver {
            list: RwLock::new(Arc::new(list)),
            hashes: Mutex::new(HashMap::new()),
            processes: Mutex::new(HashMap::new()),
            self_pid: std::process::id(),
        }
    }

    /// Install a new list (after certify/uncertify); cached process verdicts are dropped.
    pub fn set_list(&self, list: CertifiedList) {
        *self.list.write() = Arc::new(list);
        self.processes.lock().clear();
    }

    pub fn list(&self) -> Arc<CertifiedList> {
        self.list.read().clone()
    }

    /// Identify the process `pid` (a thread id, as FUSE reports it).
    pub fn resolve(&self, pid: u32) -> CallerFacts {
        if pid == 0 {
            return CallerFacts::untrusted(0, "(kernel)", Untrusted::Unidentified);
        }
        let exe = procfs::exe_path(pid).unwrap_or_else(|_| "(unknown)".to_string());
        if pid == self.self_pid {
            return CallerFacts::certified(pid, exe, "(imageguard itself)");
        }
        let Ok(identity) = procfs::exe_identity(pid) else {
            return CallerFacts::untrusted(pid, exe, Untrusted::Unidentified);
        };
        let list = self.list();
        let path = exe.strip_suffix(" (deleted)").unwrap_or(&exe);
        let lookup = list.lookup(path, &identity);
        if lookup == ExeLookup::NotListed {
            return CallerFacts::untrusted(pid, exe, Untrusted::NotCertified);
        }
        let Ok(start) = procfs::start_time(pid) else {
            return CallerFacts::untrusted(pid, exe, Untrusted::Unidentified);
        };
        let key = (pid, start, identity);
        let cached = self.processes.lock().get(&key).cloned();
        let trust = match cached {
            Some(t) => t,
            None => {
                let t = self.check_process(pid, &identity, lookup);
                let mut cache = self.processes.lock();
                if cache.len() >= CACHE_LIMIT {
                    cache.clear();
                }
                cache.insert(key, t.clone());
                t
            }
        };
        let trust = trust.and_then(|entry| match procfs::tracer(pid) {
            Ok(None) => Ok(entry),
            Ok(Some(t)) => Err(Untrusted::Traced(t)),
            Err(_) => Err(Untrusted::Unidentified),
        });
        CallerFacts { pid, exe, trust }
    }

    /// The once-per-process checks: environment, hash when the identity moved, script.
    fn check_process(&self, pid: u32, identity: &FileIdentity, lookup: ExeLookup<'_>) -> Trust {
        match procfs::injected_variable(pid) {
            Ok(Some(var)) => return Err(Untrusted::Injected(var)),
            Ok(None) => {}
            Err(_) => return Err(Untrusted::Unidentified),
        }
        match lookup {
            ExeLookup::NotListed => Err(Untrusted::NotCertified),
            ExeLookup::Certified(e) => Ok(e.path.clone()),
            ExeLookup::VerifyHash(e) => {
                if self.exe_hash(pid, identity).as_deref() == Some(e.sha256.as_str()) {
                    Ok(e.path.clone())
                } else {
                    Err(Untrusted::BinaryChanged)
                }
            }
            ExeLookup::Scripts(entries) => self.check_script(pid, identity, &entries),
        }
    }

    fn check_script(
        &self,
        pid: u32,
        identity: &FileIdentity,
        entries: &[&CertifiedEntry],
    ) -> Trust {
        let argv = procfs::cmdline(pid).map_err(|_| Untrusted::Unidentified)?;
        let cwd = procfs::cwd(pid).ok();
        let mut changed = false;
        for e in entries {
            let Some(interp) = &e.interpreter else {
                continue;
            };
            let interp_ok = interp.identity == *identity
                || self.exe_hash(pid, identity).as_deref() == Some(interp.sha256.as_str());
            if !interp_ok {
                changed = true;
                continue;
            }
            let n = interp.args.len();
            if argv.len() < n + 2
                || argv[1..=n]
                    .iter()
                    .zip(&interp.args)
                    .any(|(a, b)| a.as_os_str() != std::ffi::OsStr::new(b))
            {
                continue;
            }
            let script = resolve_arg(&argv[n + 1], cwd.as_deref());
            match self.script_matches(&script, e) {
                Some(true) => return Ok(e.path.clone()),
                Some(false) => changed = true,
                None => {}
            }
        }
        Err(if changed {
            Untrusted::BinaryChanged
        } else {
            Untrusted::NotCertified
        })
    }

    /// Some(true) when the script is the certified one, Some(false) when it is at the certified
    /// path but its content changed, None when it is another file.
    fn script_matches(&self, script: &Path, e: &CertifiedEntry) -> Option<bool> {
        let meta = std::fs::metadata(script).ok()?;
        let id = procfs::identity_of(&meta);
        if id == e.identity {
            return Some(true);
        }
        let canonical = script.canonicalize().ok()?;
        if canonical.as_os_str() != std::ffi::OsStr::new(&e.path) {
            return None;
        }
        let hash = self.cached_hash(&id, || std::fs::File::open(&canonical).ok());
        Some(hash.as_deref() == Some(e.sha256.as_str()))
    }

    fn exe_hash(&self, pid: u32, identity: &FileIdentity) -> Option<String> {
        self.cached_hash(identity, || procfs::open_exe(pid).ok())
    }

    fn cached_hash(
        &self,
        identity: &FileIdentity,
        open: impl FnOnce() -> Option<std::fs::File>,
    ) -> Option<String> {
        if let Some(h) = self.hashes.lock().get(identity) {
            return h.clone();
        }
        let h = open().and_then(|f| sha256_hex(f).ok());
        let mut cache = self.hashes.lock();
        if cache.len() >= CACHE_LIMIT {
            cache.clear();
        }
        cache.insert(*identity, h.clone());
        h
    }
}

fn resolve_arg(arg: &OsString, cwd: Option<&Path>) -> PathBuf {
    let p = PathBuf::from(arg);
    match cwd {
        Some(c) if p.is_relative() => c.join(p),
        _ => p,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certify::certify_path;
    use std::process::{Child, Command};

    struct Kill(Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            self.0.kill().ok();
            self.0.wait().ok();
        }
    }

    fn spawn(cmd: &mut Command) -> Kill {
        // A binary copied a moment ago may still be open for writing in a child another test
        // thread is forking (ETXTBSY until that child execs): retry.
        let mut tries = 0;
        let child = loop {
            match cmd.spawn() {
                Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy && tries < 100 => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                r => break r.unwrap(),
            }
        };
        let k = Kill(child);
        std::thread::sleep(std::time::Duration::from_millis(100));
        k
    }

    #[test]
    fn certified_binary_copy_and_injection() {
        let d = tempfile::tempdir().unwrap();
        let sleep = d.path().join("certsleep");
        std::fs::copy("/bin/sleep", &sleep).unwrap();
        let mut list = CertifiedList::default();
        list.upsert(certify_path(&sleep, false, 0).unwrap().entry);
        let r = CallerResolver::new(list);

        let ok = spawn(Command::new(&sleep).arg("5").env_clear());
        assert_eq!(
            r.resolve(ok.0.id()).trust,
            Ok(sleep.to_string_lossy().into_owned())
        );

        let plain = spawn(Command::new("/bin/sleep").arg("5").env_clear());
        assert_eq!(r.resolve(plain.0.id()).trust, Err(Untrusted::NotCertified));

        let copy = d.path().join("copysleep");
        std::fs::copy(&sleep, &copy).unwrap();
        let c = spawn(Command::new(&copy).arg("5").env_clear());
        assert_eq!(r.resolve(c.0.id()).trust, Err(Untrusted::NotCertified));

        let inj = spawn(
            Command::new(&sleep)
                .arg("5")
                .env_clear()
                .env("LD_PRELOAD", "/nonexistent.so"),
        );
        assert_eq!(
            r.resolve(inj.0.id()).trust,
            Err(Untrusted::Injected("LD_PRELOAD".into()))
        );
        assert_eq!(r.resolve(0).trust, Err(Untrusted::Unidentified));
        assert!(r.resolve(std::process::id()).is_certified());
    }

    #[test]
    fn replaced_binary_is_no_longer_certified() {
        let d = tempfile::tempdir().unwrap();
        let prog = d.path().join("prog");
        std::fs::copy("/bin/sleep", &prog).unwrap();
        let mut list = CertifiedList::default();
        list.upsert(certify_path(&prog, false, 0).unwrap().entry);
        let r = CallerResolver::new(list);
        // Same bytes, new inode (a reinstall): still certified through the hash.
        std::fs::remove_file(&prog).unwrap();
        std::fs::copy("/bin/sleep", &prog).unwrap();
        let same = spawn(Command::new(&prog).arg("5").env_clear());
        assert!(r.resolve(same.0.id()).is_certified());
        // Other bytes at the same path: refused.
        std::fs::remove_file(&prog).unwrap();
        std::fs::copy("/bin/cat", &prog).unwrap();
        let other = spawn(
            Command::new(&prog)
                .arg("/dev/zero")
                .env_clear()
                .stdout(std::process::Stdio::null()),
        );
        assert_eq!(r.resolve(other.0.id()).trust, Err(Untrusted::BinaryChanged));
    }

    #[test]
    fn scripts_are_matched_with_their_exact_interpreter_arguments() {
        let d = tempfile::tempdir().unwrap();
        let script = d.path().join("job");
        std::fs::write(&script, b"#!/bin/sh\nsleep 5\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut list = CertifiedList::default();
        list.upsert(certify_path(&script, false, 0).unwrap().entry);
        let r = CallerResolver::new(list);
        let run = spawn(Command::new(&script).env_clear());
        assert!(r.resolve(run.0.id()).is_certified());
        let other = spawn(Command::new("/bin/sh").arg("-c").arg("sleep 5").env_clear());
        assert_eq!(r.resolve(other.0.id()).trust, Err(Untrusted::NotCertified));
        let flagged = spawn(Command::new("/bin/sh").arg("-x").arg(&script).env_clear());
        assert_eq!(
            r.resolve(flagged.0.id()).trust,
            Err(Untrusted::NotCertified)
        );
    }
}
