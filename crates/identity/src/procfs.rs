//! Facts about a process read from `/proc/PID`.
//!
//! The FUSE request's pid is the calling thread, blocked in its system call while the guard
//! decides, so these reads describe the caller as it is at the time of the request.

use std::ffi::OsString;
use std::fs::{self, File};
use std::io;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use imageguard_policy::FileIdentity;

/// Environment variables that inject code into a dynamically linked program or an interpreter.
pub const INJECTION_VARIABLES: &[&str] = &[
    "LD_PRELOAD",
    "LD_AUDIT",
    "LD_LIBRARY_PATH",
    "PYTHONPATH",
    "PYTHONSTARTUP",
    "PYTHONHOME",
    "PYTHONINSPECT",
    "PYTHONUSERBASE",
    "PERL5LIB",
    "PERL5OPT",
    "PERLLIB",
    "RUBYOPT",
    "RUBYLIB",
    "NODE_OPTIONS",
];

fn proc_path(pid: u32, leaf: &str) -> PathBuf {
    PathBuf::from(format!("/proc/{pid}/{leaf}"))
}

/// Identity of a file from its metadata.
pub fn identity_of(m: &fs::Metadata) -> FileIdentity {
    FileIdentity {
        dev: m.dev(),
        ino: m.ino(),
        size: m.size(),
        mtime_sec: m.mtime(),
        mtime_nsec: m.mtime_nsec(),
        ctime_sec: m.ctime(),
        ctime_nsec: m.ctime_nsec(),
    }
}

/// Identity of the executable the process runs (follows `/proc/PID/exe`, which reaches the
/// running file even when it was deleted or replaced on disk).
pub fn exe_identity(pid: u32) -> io::Result<FileIdentity> {
    fs::metadata(proc_path(pid, "exe")).map(|m| identity_of(&m))
}

/// Opens the running executable itself (for hashing).
pub fn open_exe(pid: u32) -> io::Result<File> {
    File::open(proc_path(pid, "exe"))
}

/// Path of the executable as the kernel reports it (may end in " (deleted)").
pub fn exe_path(pid: u32) -> io::Result<String> {
    fs::read_link(proc_path(pid, "exe")).map(|p| p.to_string_lossy().into_owned())
}

/// The process's argument vector.
pub fn cmdline(pid: u32) -> io::Result<Vec<OsString>> {
    let raw = fs::read(proc_path(pid, "cmdline"))?;
    Ok(raw
        .split(|&b| b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| OsString::from_vec(s.to_vec()))
        .collect())
}

/// The process's current directory.
pub fn cwd(pid: u32) -> io::Result<PathBuf> {
    fs::read_link(proc_path(pid, "cwd"))
}

/// `/proc/PID/stat` from field 3 (state) on. The command name (field 2) may hold spaces and
/// parentheses, so the fields resume after the last ')'.
fn stat_tail(pid: u32) -> io::Result<String> {
    let stat = fs::read(proc_path(pid, "stat"))?;
    let close = stat
        .iter()
        .rposition(|&b| b == b')')
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "malformed /proc stat"))?;
    Ok(String::from_utf8_lossy(&stat[close + 1..]).into_owned())
}

/// Start time in clock ticks since boot (field 22 of `/proc/PID/stat`); with the pid it names a
/// process uniquely.
pub fn start_time(pid: u32) -> io::Result<u64> {
    stat_tail(pid)?
        .split_whitespace()
        .nth(19)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no starttime in /proc stat"))
}

/// Scheduling state (field 3 of `/proc/PID/stat`): 'R', 'S', 'D', 'T' (stopped), 't' (stopped
/// by a tracer)... A thread id works as well as a process id.
pub fn state(pid: u32) -> io::Result<char> {
    stat_tail(pid)?
        .split_whitespace()
        .next()
        .and_then(|s| s.chars().next())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no state in /proc stat"))
}

/// A numeric field of `/proc/PID/status` (`TracerPid`, `Tgid`...).
pub fn status_field(pid: u32, field: &str) -> io::Result<u64> {
    let status = fs::read_to_string(proc_path(pid, "status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("no {field} in status")))
}

/// The pid tracing this process, if any.
pub fn tracer(pid: u32) -> io::Result<Option<u32>> {
    Ok(match status_field(pid, "TracerPid")? {
        0 => None,
        t => Some(t as u32),
    })
}

/// The first code-injecting variable set (non-empty) in the process's initial environment.
pub fn injected_variable(pid: u32) -> io::Result<Option<String>> {
    let env = fs::read(proc_path(pid, "environ"))?;
    for var in env.split(|&b| b == 0) {
        let Some(eq) = var.iter().position(|&b| b == b'=') else {
            continue;
        };
        let (name, value) = (&var[..eq], &var[eq + 1..]);
        if value.is_empty() {
            continue;
        }
        if let Some(v) = INJECTION_VARIABLES.iter().find(|v| v.as_bytes() == name) {
            return Ok(Some(v.to_string()));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_process() {
        let me = std::process::id();
        let exe = std::env::current_exe().unwrap();
        let m = fs::metadata(&exe).unwrap();
        assert_eq!(exe_identity(me).unwrap(), identity_of(&m));
        assert!(start_time(me).unwrap() > 0);
        assert_eq!(status_field(me, "Tgid").unwrap(), me as u64);
        assert!(!cmdline(me).unwrap().is_empty());
        assert_eq!(cwd(me).unwrap(), std::env::current_dir().unwrap());
    }

    #[test]
    fn detects_injection_in_child_environment() {
        let child = std::process::Command::new("sleep")
            .arg("5")
            .env("LD_LIBRARY_PATH", "/tmp/evil")
            .spawn()
            .unwrap();
        // Let the child exec before reading its environment.
        std::thread::sleep(std::time::Duration::from_millis(100));
        let got = injected_variable(child.id()).unwrap();
        let clean = std::process::Command::new("/bin/sleep")
            .arg("5")
            .env_clear()
            .env("LD_PRELOAD", "")
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(100));
        let got_clean = injected_variable(clean.id());
        for mut c in [child, clean] {
            c.kill().ok();
            c.wait().ok();
        }
        assert_eq!(got.as_deref(), Some("LD_LIBRARY_PATH"));
        assert_eq!(got_clean.unwrap(), None);
    }
}
