//! Shared helpers for the integration tests: a protected loop-mounted ext4 volume with its own
//! service (see `imageguard::sandbox`), shell commands run as uncertified processes, and checks.
#![allow(dead_code)]

pub mod drive;
pub mod servers;
pub mod vm;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use imageguard::sandbox::Sandbox;
use imageguard_eventstore::{EventDb, EventFilter, StoredEvent};
use imageguard_identity::hashing::sha256_hex;

pub fn exe() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_imageguard"))
}

/// A started service protecting a fresh volume of `size_mib`.
pub fn protected(size_mib: u64) -> Sandbox {
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "the integration tests mount file systems and must run as root"
    );
    let mut sb = Sandbox::new(&exe(), size_mib).expect("sandbox");
    sb.start_service().expect("service");
    let mnt = sb.mnt.to_string_lossy().to_string();
    let out = sb.imageguard(&["protect", &mnt]).unwrap();
    assert!(
        out.status.success(),
        "protect failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        sb.service_log()
    );
    sb
}

/// `imageguard status --json` of `sb`'s service; panics, with what it said, when that is not
/// a report.
pub fn status(sb: &Sandbox) -> serde_json::Value {
    let o = sb
        .imageguard(&["status", "--json"])
        .expect("imageguard status");
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("status --json: {e}: {}", stderr(&o)))
}

/// A wrapper that starts the service in a time namespace whose boot clock is 30 days ahead.
pub const BOOT_CLOCK_30_DAYS_ON: &[&str] = &[
    "unshare",
    "--time",
    "--fork",
    "--boottime",
    "2592000",
    "--kill-child=SIGTERM",
];

/// Whether `sb`'s service runs the kernel shield (a kernel with the bpf LSM: the VM's).
pub fn kernel_shield_on(sb: &Sandbox) -> bool {
    status(sb)["kernel_shield_on"] == true
}

/// A command with the environment a backup job would have: no cargo-injected
/// LD_LIBRARY_PATH, and Python writing its byte code as it does for users (a developer's or
/// CI's shell may say not to, which would hide what a first run changes).
pub fn clean(cmd: &mut Command) -> &mut Command {
    cmd.env_remove("LD_LIBRARY_PATH")
        .env_remove("LD_PRELOAD")
        .env_remove("PYTHONDONTWRITEBYTECODE")
}

/// Run a shell command as an uncertified process.
pub fn sh(script: &str) -> Output {
    clean(Command::new("/bin/sh").arg("-c").arg(script))
        .output()
        .expect("sh")
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The command failed with EPERM.
pub fn assert_eperm(what: &str, o: &Output) {
    assert!(
        !o.status.success(),
        "{what}: succeeded but should have been refused"
    );
    assert!(
        stderr(o).contains("Operation not permitted"),
        "{what}: failed, but not with EPERM: {}",
        stderr(o)
    );
}

/// Set the admin lock of `sb`'s service with `passphrase`, kept in the file `name` of the
/// sandbox; returns that file's path, for `--passphrase-file`.
pub fn set_admin_lock(sb: &Sandbox, name: &str, passphrase: &str) -> String {
    let secret = sb.path().join(name);
    std::fs::write(&secret, format!("{passphrase}\n")).unwrap();
    // Also where the sandbox looks for it to stop a service the kernel shield keeps alive.
    std::fs::write(sb.admin_passphrase_file(), format!("{passphrase}\n")).unwrap();
    let s = secret.display().to_string();
    assert_ok(
        "lock set",
        &sb.imageguard(&["lock", "set", "--new-passphrase-file", &s])
            .unwrap(),
    );
    s
}

pub fn assert_ok(what: &str, o: &Output) {
    assert!(
        o.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&o.stdout),
        stderr(o)
    );
}

/// sha256 of every regular file below `root`.
pub fn hashes(root: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let t = e.file_type().unwrap();
            if t.is_dir() {
                stack.push(e.path());
            } else if t.is_file() {
                out.insert(
                    e.path(),
                    sha256_hex(std::fs::File::open(e.path()).unwrap()).unwrap(),
                );
            }
        }
    }
    out
}

/// A free loopback TCP port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// All events, after making the service flush.
pub fn events(sb: &Sandbox) -> Vec<StoredEvent> {
    let _ = sb.imageguard(&["status"]);
    // The service may hold the database's write lock at the moment it is read: read again.
    let mut last = None;
    for _ in 0..50 {
        match EventDb::open_read_only(&sb.path().join("state/events.db"))
            .and_then(|db| db.query(&EventFilter::default()))
        {
            Ok(events) => return events,
            Err(e) => last = Some(e),
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("reading the events: {last:?}");
}

/// A 320 event naming `file` and `operation` was logged.
pub fn assert_denial_logged(sb: &Sandbox, file: &Path, operation: &str) {
    let evs = events(sb);
    let f = file.to_string_lossy();
    assert!(
        evs.iter().any(|e| e.id == 320
            && e.file.as_deref() == Some(&*f)
            && e.operation.as_deref() == Some(operation)),
        "no 320 event for {operation} of {f}; events: {:#?}",
        evs.iter()
            .filter(|e| e.id == 320)
            .map(|e| &e.message)
            .collect::<Vec<_>>()
    );
}

/// Write `n` bytes of a fixed pattern.
pub fn write_pattern(path: &Path, n: usize, seed: u8) {
    let data: Vec<u8> = (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect();
    std::fs::write(path, data).unwrap();
}

/// Certify a program through the CLI.
pub fn certify(sb: &Sandbox, program: &Path, force: bool) {
    let p = program.to_string_lossy().to_string();
    let mut args = vec!["certify", p.as_str()];
    if force {
        args.push("--force");
    }
    let out = sb.imageguard(&args).unwrap();
    assert_ok("certify", &out);
}

/// A certified writer: a copy of this test suite's imageguard binary (its hidden `demo-writer`
/// command writes backups), certified under its own path.
pub fn certified_writer(sb: &Sandbox) -> PathBuf {
    let w = sb.path().join("bin/backup-writer");
    std::fs::create_dir_all(w.parent().unwrap()).unwrap();
    std::fs::copy(exe(), &w).unwrap();
    certify(sb, &w, false);
    w
}

/// Run a command whose binary was copied a moment ago: another test thread forking at the same
/// time can briefly hold it open for writing (ETXTBSY until its child execs), so retry.
pub fn output_fresh(cmd: &mut Command) -> Output {
    for _ in 0..100 {
        match cmd.output() {
            Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            r => return r.expect("running a freshly copied program"),
        }
    }
    panic!("program stayed busy (ETXTBSY)")
}

/// restic with a throw-away password and cache, and no injected environment.
pub fn restic(sb: &imageguard::sandbox::Sandbox, repo: &Path, args: &[&str]) -> Output {
    clean(Command::new("restic").args(args))
        .env("RESTIC_PASSWORD", "test")
        .env("RESTIC_REPOSITORY", repo)
        .env("RESTIC_CACHE_DIR", sb.path().join("restic-cache"))
        .output()
        .expect("restic (install the restic package)")
}

/// borg with its own base directory, unencrypted repositories allowed, no injected environment.
pub fn borg(sb: &imageguard::sandbox::Sandbox, args: &[&str]) -> Output {
    clean(Command::new("borg").args(args))
        .env("BORG_BASE_DIR", sb.path().join("borg-home"))
        .env("BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK", "yes")
        .env("BORG_RELOCATED_REPO_ACCESS_IS_OK", "yes")
        .output()
        .expect("borg (install the borgbackup package)")
}

/// A small source tree to back up; `generation` changes its contents.
pub fn source_tree(sb: &imageguard::sandbox::Sandbox, generation: u32) -> std::path::PathBuf {
    let src = sb.path().join("source");
    std::fs::create_dir_all(&src).unwrap();
    for i in 0..30 {
        write_pattern(
            &src.join(format!("file-{i}.dat")),
            20_000 + i * 997,
            (i as u32 + generation) as u8,
        );
    }
    src
}

/// The file-system type mounted at `p`, if `p` is a mount point.
pub fn fstype_at(p: &std::path::Path) -> Option<String> {
    imageguard_volume::MountTable::read()
        .unwrap()
        .at(p)
        .map(|e| e.fstype.clone())
}
