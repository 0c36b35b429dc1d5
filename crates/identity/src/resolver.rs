//! pid → [`CallerFacts`]: is the process behind a request certified?
//!
//! A process is certified when its executable (or, for a script, its interpreter and script)
//! is on the certified list, and its program's closure (everything it can load code from) is
//! intact: nothing in it changed since certification ([`ClosureWatch`]), its start-up
//! environment cannot change its code ([`imageguard_policy::environment`]), it maps no code
//! from outside the closure, and no debugger is attached.
//!
//! Cost on the hot path: an uncertified caller costs one `stat` and one `readlink` of
//! `/proc/PID/exe`. A candidate is checked once per process (environment, script, closure
//! compared with the disk if it changed since the process started, executable mappings),
//! cached by pid and start time; then every request costs one read of `/proc/PID/status`
//! (tracer, and the size of its executable memory, which moves when code is mapped: then the
//! mappings are checked again) and one `poll` of the closure watch.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use imageguard_policy::certification::ExeLookup;
use imageguard_policy::closure::{foreign_mapping, ExecMapping};
use imageguard_policy::environment::code_changing_variable;
use imageguard_policy::sync_tools::{self, Dialect, Unreadable};
use imageguard_policy::{
    CallerFacts, CertifiedEntry, CertifiedList, FileIdentity, SyncCaller, Untrusted,
};
use parking_lot::{Mutex, RwLock};

use crate::closure::{self, View};
use crate::hashing::sha256_hex;
use crate::procfs;
use crate::watch::ClosureWatch;

/// Entries kept in each cache before it is cleared (bounds memory under pid churn).
const CACHE_LIMIT: usize = 8192;

type Trust = Result<String, Untrusted>;

/// A process's verdict, once checked.
#[derive(Debug, Clone)]
struct Checked {
    trust: Trust,
    /// Its executable memory (KiB) when its mappings were last checked.
    exec_kib: u64,
    /// For a helper: its parent (pid, start time) when it was first seen.
    parent: Option<(u32, u64)>,
    /// For a sync tool: its command line, read once (its forks share it).
    sync: Option<SyncCaller>,
}

/// How deep a chain of helper processes may go (rsync under rsync under rsnapshot is three).
const HELPER_DEPTH: u32 = 16;

/// A certified caller: its entry, the certified program it runs as part of (itself, or the
/// program it is a helper of), and its start time.
struct Rooted {
    root: String,
    start: u64,
}

/// Resolves callers against the current certified list.
pub struct CallerResolver {
    list: RwLock<Arc<CertifiedList>>,
    watch: Arc<ClosureWatch>,
    hashes: Mutex<HashMap<FileIdentity, Option<String>>>,
    processes: Mutex<HashMap<(u32, u64, FileIdentity), Checked>>,
    self_pid: u32,
    /// This process's mount namespace and root: a process elsewhere sees other files at the
    /// closure's paths, so its closure is compared through `/proc/PID/root`.
    own_namespace: Option<PathBuf>,
    ticks_per_second: u64,
    /// `certify --learn` in progress, by certified path.
    learning: Mutex<HashMap<String, Learning>>,
}

/// A `certify --learn` job: the processes descending from it map what they map, and it is
/// recorded rather than refused.
#[derive(Debug)]
struct Learning {
    root: u32,
    root_start: u64,
    seen: BTreeSet<PathBuf>,
}

impl std::fmt::Debug for CallerResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallerResolver")
            .field("certified", &self.list.read().entries.len())
            .finish()
    }
}

impl CallerResolver {
    pub fn new(list: CertifiedList) -> std::io::Result<CallerResolver> {
        let watch = ClosureWatch::start()?;
        watch.set(&list, None);
        let me = std::process::id();
        Ok(CallerResolver {
            list: RwLock::new(Arc::new(list)),
            watch,
            hashes: Mutex::new(HashMap::new()),
            processes: Mutex::new(HashMap::new()),
            self_pid: me,
            own_namespace: procfs::mount_namespace(me).ok(),
            ticks_per_second: rustix::param::clock_ticks_per_second(),
            learning: Mutex::new(HashMap::new()),
        })
    }

    /// Start learning what the processes of the certified program `entry` descending from the
    /// (stopped, not yet running) process `job` map executable.
    pub fn start_learning(&self, entry: &str, job: u32) -> std::io::Result<()> {
        let root_start = procfs::start_time(job)?;
        self.learning.lock().insert(
            entry.to_string(),
            Learning {
                root: job,
                root_start,
                seen: Default::default(),
            },
        );
        self.processes.lock().clear();
        Ok(())
    }

    /// Stop learning for `entry`: the files its job's processes mapped outside the closure.
    pub fn finish_learning(&self, entry: &str) -> Vec<PathBuf> {
        self.processes.lock().clear();
        self.learning
            .lock()
            .remove(entry)
            .map(|l| l.seen.into_iter().collect())
            .unwrap_or_default()
    }

    /// The (device, inode) of every file of `entry`'s closure, if it is intact now.
    fn closure_code(&self, entry: &str) -> Result<Arc<HashSet<(u64, u64)>>, Untrusted> {
        self.watch.check(entry).map_err(|change| match change {
            Some(c) => Untrusted::ClosureChanged(c),
            None => Untrusted::NoClosure,
        })
    }

    /// Whether `pid` maps executable code only from `entry`'s closure (its executable aside,
    /// which was matched by its running identity or hash).
    fn check_mappings(
        &self,
        entry: &str,
        pid: u32,
        exe: &FileIdentity,
        code: &HashSet<(u64, u64)>,
    ) -> Result<(), Untrusted> {
        // On overlayfs, the executable's mappings name the layer's file.
        let exe_mapped =
            crate::mapping_id::mapped_identity(std::path::Path::new(&format!("/proc/{pid}/exe")));
        let maps = executed_elsewhere(procfs::exec_mappings(pid), exe, exe_mapped)?;
        match self.foreign(entry, pid, code, &maps) {
            Some(foreign) => Err(Untrusted::ForeignCode(foreign)),
            None => Ok(()),
        }
    }

    /// The first mapping of `pid` outside the closure of `entry`, unless a `--learn` job of
    /// that entry is its ancestor: then the files are learned instead (anonymous or deleted
    /// code is never learned).
    fn foreign(
        &self,
        entry: &str,
        pid: u32,
        code: &HashSet<(u64, u64)>,
        maps: &[ExecMapping],
    ) -> Option<String> {
        let foreign = foreign_mapping(code, maps)?;
        let mut learning = self.learning.lock();
        let Some(l) = learning.get_mut(entry) else {
            return Some(foreign);
        };
        if !descends_from(pid, l.root, l.root_start) {
            return Some(foreign);
        }
        let mut refused = None;
        for m in maps {
            match m {
                ExecMapping::File { path, dev, ino } if !code.contains(&(*dev, *ino)) => {
                    l.seen.insert(PathBuf::from(path));
                }
                ExecMapping::File { .. } => {}
                _ => refused = refused.or_else(|| foreign_mapping(code, std::slice::from_ref(m))),
            }
        }
        refused
    }

    /// The watch over the certified programs' closures.
    pub fn watch(&self) -> &Arc<ClosureWatch> {
        &self.watch
    }

    /// Install a new list (after certify/uncertify); cached process verdicts are dropped.
    /// `renewed` names a program certified again just now: its closure is recorded anew, so a
    /// change that broke the old one no longer counts.
    pub fn set_list(&self, list: CertifiedList, renewed: Option<&str>) {
        self.watch.set(&list, renewed);
        *self.list.write() = Arc::new(list);
        self.processes.lock().clear();
    }

    pub fn list(&self) -> Arc<CertifiedList> {
        self.list.read().clone()
    }

    /// Identify the process `pid` (a thread id, as FUSE reports it).
    pub fn resolve(&self, pid: u32) -> CallerFacts {
        self.resolve_rooted(pid, 0).0
    }

    /// [`CallerResolver::resolve`], and for a certified caller the program it runs as part of;
    /// `depth` counts the helper processes below this one.
    fn resolve_rooted(&self, pid: u32, depth: u32) -> (CallerFacts, Option<Rooted>) {
        if pid == 0 {
            return (
                CallerFacts::untrusted(0, "(kernel)", Untrusted::Unidentified),
                None,
            );
        }
        let exe = procfs::exe_path(pid).unwrap_or_else(|_| "(unknown)".to_string());
        if pid == self.self_pid {
            return (
                CallerFacts::certified(pid, exe, "(imageguard itself)"),
                None,
            );
        }
        let untrusted = |exe: String, why| (CallerFacts::untrusted(pid, exe, why), None);
        let Ok(identity) = procfs::exe_identity(pid) else {
            return untrusted(exe, Untrusted::Unidentified);
        };
        let list = self.list();
        let path = exe.strip_suffix(" (deleted)").unwrap_or(&exe);
        let lookup = list.lookup(path, &identity);
        if lookup == ExeLookup::NotListed {
            return untrusted(exe, Untrusted::NotCertified);
        }
        let Ok(start) = procfs::start_time(pid) else {
            return untrusted(exe, Untrusted::Unidentified);
        };
        let Ok(status) = procfs::status_facts(pid) else {
            return untrusted(exe, Untrusted::Unidentified);
        };
        let key = (pid, start, identity);
        let cached = self.processes.lock().get(&key).cloned();
        let checked = match cached {
            Some(c) => c,
            None => {
                let c = Checked {
                    trust: self.check_process(pid, start, status.uid, &list, &identity, lookup),
                    exec_kib: status.exec_kib,
                    parent: None,
                    sync: None,
                };
                let mut cache = self.processes.lock();
                if cache.len() >= CACHE_LIMIT {
                    cache.clear();
                }
                cache.insert(key, c.clone());
                c
            }
        };
        let trust = checked.trust.and_then(|entry| {
            if let Some(t) = status.tracer {
                return Err(Untrusted::Traced(t));
            }
            let code = self.closure_code(&entry)?;
            if status.exec_kib != checked.exec_kib {
                // Code was mapped or unmapped since its mappings were checked.
                let mapped = self.check_mappings(&entry, pid, &identity, &code);
                if let Some(c) = self.processes.lock().get_mut(&key) {
                    match &mapped {
                        Ok(()) => c.exec_kib = status.exec_kib,
                        Err(why) => c.trust = Err(why.clone()),
                    }
                }
                mapped?;
            }
            Ok(entry)
        });
        let sync_dialect = trust
            .as_ref()
            .ok()
            .and_then(|entry| list.get(entry))
            .and_then(|e| e.sync_tool);
        if let (Ok(entry), Some(dialect)) = (&trust, sync_dialect) {
            let sync = self.sync_caller(&key, pid, entry, dialect, checked.sync);
            let facts = CallerFacts {
                pid,
                exe,
                trust: Err(Untrusted::SyncTool),
                sync: Some(sync),
            };
            return (facts, None);
        }
        let (trust, root) = match trust {
            Ok(entry) => match list.get(&entry).map(|e| e.helper_of.as_slice()) {
                Some(helper_of) if !helper_of.is_empty() => {
                    match self.judge_helper(&key, &status, helper_of, depth) {
                        Ok(root) => (Ok(entry), Some(root)),
                        Err(why) => (Err(why), None),
                    }
                }
                _ => (Ok(entry.clone()), Some(entry)),
            },
            Err(why) => (Err(why), None),
        };
        let rooted = root.map(|root| Rooted { root, start });
        let facts = CallerFacts {
            pid,
            exe,
            trust,
            sync: None,
        };
        (facts, rooted)
    }

    /// A sync tool's command line, read in its dialect once per process and kept with its
    /// verdict. A command line that cannot be read is unreadable, never a permitted sync.
    fn sync_caller(
        &self,
        key: &(u32, u64, FileIdentity),
        pid: u32,
        entry: &str,
        dialect: Dialect,
        cached: Option<SyncCaller>,
    ) -> SyncCaller {
        if let Some(c) = cached {
            return c;
        }
        let command = match procfs::cmdline(pid) {
            Ok(argv) => {
                let argv: Vec<&[u8]> = argv.iter().map(|a| a.as_bytes()).collect();
                sync_tools::read(dialect, &argv)
            }
            Err(_) => Err(Unreadable::NotText),
        };
        let elsewhere = procfs::mount_namespace(pid).ok() != self.own_namespace
            || procfs::root(pid).ok().as_deref() != Some(Path::new("/"));
        let sync = SyncCaller {
            entry: entry.to_string(),
            dialect,
            command,
            elsewhere,
        };
        if let Some(c) = self.processes.lock().get_mut(key) {
            c.sync = Some(sync.clone());
        }
        sync
    }

    /// A helper counts only while its parent is the process it was started by, alive and
    /// certified now as one of the programs it helps (or as a helper under one): the parent's
    /// pid comes from this request's status read and its start time is compared with the one
    /// seen first, so an orphan re-parented elsewhere, or a recycled pid, does not pass.
    fn judge_helper(
        &self,
        key: &(u32, u64, FileIdentity),
        status: &procfs::StatusFacts,
        helper_of: &[String],
        depth: u32,
    ) -> Result<String, Untrusted> {
        use imageguard_policy::helpers::{judge_helper, Parent};
        if depth >= HELPER_DEPTH {
            return Err(Untrusted::HelperOutside(format!(
                "a chain of more than {HELPER_DEPTH} helper processes"
            )));
        }
        if status.ppid <= 1 {
            return judge_helper(helper_of, &Parent::Gone).map(|()| String::new());
        }
        let (facts, rooted) = self.resolve_rooted(status.ppid, depth + 1);
        let first_parent = self.processes.lock().get(key).and_then(|c| c.parent);
        let parent = match (&facts.trust, &rooted, first_parent) {
            (_, Some(r), Some((ppid, start))) if ppid != status.ppid || start != r.start => {
                Parent::Gone
            }
            (Ok(_), Some(r), _) => Parent::Certified { root: &r.root },
            (Ok(_), None, _) => Parent::Uncertified {
                exe: &facts.exe,
                why: &Untrusted::NotCertified,
            },
            (Err(why), _, _) => Parent::Uncertified {
                exe: &facts.exe,
                why,
            },
        };
        judge_helper(helper_of, &parent)?;
        let Parent::Certified { root } = parent else {
            return Err(Untrusted::HelperOutside(
                "its parent is not certified".into(),
            ));
        };
        let root = root.to_string();
        if first_parent.is_none() {
            if let (Some(c), Some(r)) = (self.processes.lock().get_mut(key), &rooted) {
                c.parent = Some((status.ppid, r.start));
            }
        }
        Ok(root)
    }

    /// The once-per-process checks: which entry (hash when the identity moved, script and
    /// interpreter start), environment, closure, executable mappings.
    fn check_process(
        &self,
        pid: u32,
        start: u64,
        uid: u32,
        list: &CertifiedList,
        identity: &FileIdentity,
        lookup: ExeLookup<'_>,
    ) -> Trust {
        let env = procfs::environ(pid).map_err(|_| Untrusted::Unidentified)?;
        let path = match lookup {
            ExeLookup::NotListed => return Err(Untrusted::NotCertified),
            ExeLookup::Certified(e) => e.path.clone(),
            ExeLookup::VerifyHash(e) => {
                if self.exe_hash(pid, identity).as_deref() == Some(e.sha256.as_str()) {
                    e.path.clone()
                } else {
                    return Err(Untrusted::BinaryChanged);
                }
            }
            ExeLookup::Scripts(entries) => self.check_script(pid, identity, &entries, &env)?,
        };
        let entry = list.get(&path).ok_or(Untrusted::NotCertified)?;
        let closure = entry.closure.as_ref().ok_or(Untrusted::NoClosure)?;
        let passwd_home = closure::home_of(uid).map(|h| h.to_string_lossy().into_owned());
        if let Some(var) = code_changing_variable(closure, &env, passwd_home.as_deref()) {
            return Err(Untrusted::Injected(var));
        }
        let code = self.closure_code(&path)?;
        let elsewhere = procfs::mount_namespace(pid).ok() != self.own_namespace
            || procfs::root(pid).ok().as_deref() != Some(Path::new("/"));
        let change = if elsewhere {
            closure::verify(closure, &View::of_process(pid))
        } else {
            let started_ns = (start as i128 * 1_000_000_000) / self.ticks_per_second.max(1) as i128;
            // The start time counts whole ticks: a comparison must be at least a tick later.
            let tick = 1_000_000_000 / self.ticks_per_second.max(1) as i128;
            self.watch.verify_since(&path, started_ns + tick)
        };
        if let Some(c) = change {
            return Err(Untrusted::ClosureChanged(c));
        }
        self.check_mappings(&path, pid, identity, &code)?;
        Ok(path)
    }

    fn check_script(
        &self,
        pid: u32,
        identity: &FileIdentity,
        entries: &[&CertifiedEntry],
        env: &[(String, String)],
    ) -> Trust {
        let argv = procfs::cmdline(pid).map_err(|_| Untrusted::Unidentified)?;
        let cwd = procfs::cwd(pid).ok();
        let mut changed = false;
        let mut started_as = None;
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
                Some(true) => {}
                Some(false) => {
                    changed = true;
                    continue;
                }
                None => continue,
            }
            let argv0 = argv[0].to_string_lossy();
            let found = (!argv0.contains('/'))
                .then(|| search_path(&argv0, env))
                .flatten();
            if interp.accepts_argv0(&argv0, found.as_deref()) {
                return Ok(e.path.clone());
            }
            started_as = Some(argv0.into_owned());
        }
        Err(if let Some(a) = started_as {
            Untrusted::StartedAs(a)
        } else if changed {
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

/// The executable mappings but those of the executable itself, which was matched by its running
/// identity or hash (a reinstall of the same bytes has a new inode, and is fine).
fn executed_elsewhere(
    maps: std::io::Result<Vec<ExecMapping>>,
    exe: &FileIdentity,
    exe_mapped: Option<(u64, u64)>,
) -> Result<Vec<ExecMapping>, Untrusted> {
    let mut maps = maps.map_err(|_| Untrusted::Unidentified)?;
    maps.retain(|m| {
        !matches!(m, ExecMapping::File { dev, ino, .. }
            if (*dev, *ino) == (exe.dev, exe.ino) || Some((*dev, *ino)) == exe_mapped)
    });
    Ok(maps)
}

/// Whether `root` (started at `root_start`) is `pid` or one of its ancestors.
fn descends_from(pid: u32, root: u32, root_start: u64) -> bool {
    if procfs::start_time(root).ok() != Some(root_start) {
        return false;
    }
    // A thread's parent is its process's parent: start from the process.
    let Ok(tgid) = procfs::status_field(pid, "Tgid") else {
        return false;
    };
    let mut p = tgid as u32;
    for _ in 0..64 {
        if p == root {
            return true;
        }
        match procfs::parent(p) {
            Ok(pp) if pp > 1 => p = pp,
            _ => return false,
        }
    }
    false
}

/// Where a bare program name leads through the process's own `PATH` (as `execvp` and Python's
/// start-up look it up).
fn search_path(name: &str, env: &[(String, String)]) -> Option<String> {
    let path = env
        .iter()
        .find(|(n, _)| n == "PATH")
        .map(|(_, v)| v.as_str())?;
    path.split(':')
        .map(|d| Path::new(if d.is_empty() { "." } else { d }).join(name))
        .find(|p| p.is_file())
        .map(|p| p.to_string_lossy().into_owned())
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
    use crate::closure::ClosureOptions;
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
        list.upsert(
            certify_path(&sleep, &ClosureOptions::default(), 0)
                .unwrap()
                .entry,
        );
        let r = CallerResolver::new(list).unwrap();

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
            Err(Untrusted::Injected(
                "LD_PRELOAD (read by the dynamic loader)".into()
            ))
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
        list.upsert(
            certify_path(&prog, &ClosureOptions::default(), 0)
                .unwrap()
                .entry,
        );
        let r = CallerResolver::new(list).unwrap();
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
        list.upsert(
            certify_path(&script, &ClosureOptions::default(), 0)
                .unwrap()
                .entry,
        );
        let r = CallerResolver::new(list).unwrap();
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

    /// The first child of `pid`, waiting for it to appear.
    fn child_of(pid: u32) -> u32 {
        for _ in 0..200 {
            let c = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
                .unwrap_or_default();
            if let Some(c) = c.split_whitespace().next() {
                // Let it exec.
                std::thread::sleep(std::time::Duration::from_millis(100));
                return c.parse().unwrap();
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("{pid} started no child");
    }

    #[test]
    fn a_helper_is_certified_only_under_its_live_program() {
        let d = tempfile::tempdir().unwrap();
        let runner = d.path().join("runner");
        let helper = d.path().join("helper");
        std::fs::copy("/usr/bin/timeout", &runner).unwrap();
        std::fs::copy("/bin/sleep", &helper).unwrap();
        let runner_s = runner.to_string_lossy().into_owned();
        let mut list = CertifiedList::default();
        list.upsert(
            certify_path(&runner, &ClosureOptions::default(), 0)
                .unwrap()
                .entry,
        );
        let mut h = certify_path(&helper, &ClosureOptions::default(), 0)
            .unwrap()
            .entry;
        h.helper_of = vec![runner_s.clone()];
        list.upsert(h);
        let r = CallerResolver::new(list).unwrap();

        // Started by its program: certified, as part of it.
        let run = spawn(
            Command::new(&runner)
                .arg("10")
                .arg(&helper)
                .arg("10")
                .env_clear(),
        );
        let child = child_of(run.0.id());
        let (facts, root) = r.resolve_rooted(child, 0);
        assert!(facts.is_certified(), "{facts:?}");
        assert_eq!(root.map(|r| r.root), Some(runner_s.clone()));

        // Started by anything else.
        let alone = spawn(Command::new(&helper).arg("10").env_clear());
        let t = r.resolve(alone.0.id()).trust;
        assert!(
            matches!(&t, Err(Untrusted::HelperOutside(w)) if w.contains("not certified")),
            "{t:?}"
        );

        // With an uncertified shell in between.
        let via_sh = spawn(
            Command::new(&runner)
                .arg("10")
                .arg("/bin/sh")
                .arg("-c")
                .arg(format!("{} 10; true", helper.display()))
                .env_clear(),
        );
        let grandchild = child_of(child_of(via_sh.0.id()));
        let t = r.resolve(grandchild).trust;
        assert!(
            matches!(&t, Err(Untrusted::HelperOutside(w)) if w.contains("sh, which is not certified")),
            "{t:?}"
        );

        // Its program killed: the orphan, re-parented, is no longer certified.
        assert!(r.resolve(child).is_certified());
        let mut run = run;
        run.0.kill().unwrap();
        run.0.wait().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(100));
        let t = r.resolve(child).trust;
        assert!(
            matches!(&t, Err(Untrusted::HelperOutside(w)) if !w.contains(&runner_s[..]) || w.contains("re-parented") || w.contains("not certified")),
            "{t:?}"
        );
        let _ = rustix::process::kill_process(
            rustix::process::Pid::from_raw(child as i32).unwrap(),
            rustix::process::Signal::KILL,
        );
    }
}
