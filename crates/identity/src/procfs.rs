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

use imageguard_policy::closure::ExecMapping;
use imageguard_policy::FileIdentity;

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

/// The parent's pid (field 4 of `/proc/PID/stat`).
pub fn parent(pid: u32) -> io::Result<u32> {
    stat_tail(pid)?
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no ppid in /proc stat"))
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

/// The process's start-up environment (`/proc/PID/environ`), as (name, value) pairs.
pub fn environ(pid: u32) -> io::Result<Vec<(String, String)>> {
    let env = fs::read(proc_path(pid, "environ"))?;
    Ok(env
        .split(|&b| b == 0)
        .filter_map(|var| {
            let eq = var.iter().position(|&b| b == b'=')?;
            Some((
                String::from_utf8_lossy(&var[..eq]).into_owned(),
                String::from_utf8_lossy(&var[eq + 1..]).into_owned(),
            ))
        })
        .collect())
}

/// What the guard reads from `/proc/PID/status` on every checked request, in one read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusFacts {
    /// The parent process (of the thread group).
    pub ppid: u32,
    /// The pid tracing this process, if any.
    pub tracer: Option<u32>,
    /// The real user id.
    pub uid: u32,
    /// Executable memory in KiB (`VmExe` + `VmLib`): it moves when code is mapped or unmapped.
    pub exec_kib: u64,
}

/// Read [`StatusFacts`], in one pass over `/proc/PID/status` (it is read on every checked
/// request).
pub fn status_facts(pid: u32) -> io::Result<StatusFacts> {
    let status = fs::read_to_string(proc_path(pid, "status"))?;
    let (mut ppid, mut tracer, mut uid, mut exe, mut lib) = (None, None, None, 0, 0);
    for line in status.lines() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let first = || value.split_whitespace().next()?.parse::<u64>().ok();
        match name {
            "PPid" => ppid = first(),
            "TracerPid" => tracer = first(),
            "Uid" => uid = first(),
            "VmExe" => exe = first().unwrap_or(0),
            "VmLib" => {
                lib = first().unwrap_or(0);
                // The last of the four.
                break;
            }
            _ => {}
        }
    }
    let bad = || io::Error::new(io::ErrorKind::InvalidData, "malformed /proc status");
    Ok(StatusFacts {
        ppid: ppid.ok_or_else(bad)? as u32,
        tracer: match tracer.ok_or_else(bad)? {
            0 => None,
            t => Some(t as u32),
        },
        uid: uid.ok_or_else(bad)? as u32,
        // Kernel threads have no memory lines.
        exec_kib: exe + lib,
    })
}

/// The process's executable mappings (`/proc/PID/maps`, permission `x`), the kernel's own
/// `[vdso]`, `[vsyscall]` and `[uprobes]` pages left out.
///
/// On btrfs a mapping's device in maps is the file system's (its superblock's), while `stat`
/// gives each subvolume a device of its own, and inode numbers repeat from one subvolume to the
/// next: there the mapping is named by what `stat` says of the mapped file itself (through
/// `/proc/PID/map_files`, root's), so a file of another subvolume with the same inode number
/// is not taken for a certified one.
pub fn exec_mappings(pid: u32) -> io::Result<Vec<ExecMapping>> {
    let maps = fs::read(proc_path(pid, "maps"))?;
    Ok(parse_maps_with_ranges(&String::from_utf8_lossy(&maps))
        .into_iter()
        .map(|(range, m)| match m {
            ExecMapping::File { path, dev, ino } => {
                let (dev, ino) = btrfs_identity(pid, range).unwrap_or((dev, ino));
                ExecMapping::File { path, dev, ino }
            }
            other => other,
        })
        .collect())
}

/// The `stat` identity of the file `pid` maps at `range` ("start-end"), when it is on btrfs.
fn btrfs_identity(pid: u32, range: &str) -> Option<(u64, u64)> {
    let file = proc_path(pid, &format!("map_files/{range}"));
    if !imageguard_volume::fs_kind::on_btrfs(&file) {
        return None;
    }
    let m = fs::metadata(&file).ok()?;
    Some((m.dev(), m.ino()))
}

#[cfg(test)]
fn parse_maps(text: &str) -> Vec<ExecMapping> {
    parse_maps_with_ranges(text)
        .into_iter()
        .map(|(_, m)| m)
        .collect()
}

/// The executable mappings of a maps text, each with its address range.
fn parse_maps_with_ranges(text: &str) -> Vec<(&str, ExecMapping)> {
    let mut out = vec![];
    for line in text.lines() {
        // address perms offset dev inode [path]; the path may contain spaces.
        let mut rest = line;
        let mut fields = [""; 5];
        for f in fields.iter_mut() {
            rest = rest.trim_start();
            let end = rest.find(' ').unwrap_or(rest.len());
            *f = &rest[..end];
            rest = &rest[end..];
        }
        let [range, perms, _, dev, inode] = fields;
        if perms.as_bytes().get(2) != Some(&b'x') {
            continue;
        }
        let path = rest.trim_start();
        let ino: u64 = inode.parse().unwrap_or(0);
        if matches!(path, "[vdso]" | "[vsyscall]" | "[uprobes]") {
            continue;
        }
        if ino == 0 || !path.starts_with('/') {
            out.push((range, ExecMapping::Anonymous));
        } else if let Some(p) = path.strip_suffix(" (deleted)") {
            out.push((
                range,
                ExecMapping::Deleted {
                    path: p.to_string(),
                },
            ));
        } else {
            let (major, minor) = dev.split_once(':').unwrap_or(("0", "0"));
            let major = u64::from_str_radix(major, 16).unwrap_or(0);
            let minor = u64::from_str_radix(minor, 16).unwrap_or(0);
            out.push((
                range,
                ExecMapping::File {
                    path: path.to_string(),
                    dev: libc::makedev(major as u32, minor as u32),
                    ino,
                },
            ));
        }
    }
    out
}

/// The mount namespace of a process (`mnt:[4026531841]`).
pub fn mount_namespace(pid: u32) -> io::Result<PathBuf> {
    fs::read_link(proc_path(pid, "ns/mnt"))
}

/// The process's root folder as this process sees it (`/` unless it is chrooted).
pub fn root(pid: u32) -> io::Result<PathBuf> {
    fs::read_link(proc_path(pid, "root"))
}

/// The thread group (process) of the thread `tid`, and that process's start time.
pub fn process_of(tid: u32) -> io::Result<(u32, u64)> {
    let status = fs::read_to_string(proc_path(tid, "status"))?;
    let tgid = status
        .lines()
        .find_map(|l| l.strip_prefix("Tgid:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no Tgid in /proc status"))?;
    Ok((tgid, start_time(tgid)?))
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
        assert_eq!(
            parent(me).unwrap(),
            status_field(me, "PPid").unwrap() as u32
        );
        assert!(!cmdline(me).unwrap().is_empty());
        assert_eq!(cwd(me).unwrap(), std::env::current_dir().unwrap());
    }

    #[test]
    fn reads_environment_and_status_of_a_child() {
        let child = std::process::Command::new("sleep")
            .arg("5")
            .env_clear()
            .env("LD_LIBRARY_PATH", "/tmp/evil")
            .env("EMPTY", "")
            .spawn()
            .unwrap();
        // Let the child exec before reading its environment.
        std::thread::sleep(std::time::Duration::from_millis(100));
        let env = environ(child.id());
        let status = status_facts(child.id());
        let maps = exec_mappings(child.id());
        let mut c = child;
        c.kill().ok();
        c.wait().ok();
        let mut env = env.unwrap();
        env.sort();
        assert_eq!(
            env,
            vec![
                ("EMPTY".to_string(), String::new()),
                ("LD_LIBRARY_PATH".to_string(), "/tmp/evil".to_string()),
            ]
        );
        let status = status.unwrap();
        assert_eq!(status.tracer, None);
        assert_eq!(status.uid, 0);
        assert!(status.exec_kib > 0);
        let maps = maps.unwrap();
        let sleep = fs::metadata("/bin/sleep").unwrap();
        assert!(maps
            .iter()
            .any(|m| matches!(m, ExecMapping::File { dev, ino, .. }
            if *dev == sleep.dev() && *ino == sleep.ino())));
    }

    #[test]
    fn maps_lines() {
        let text = "\
55b90bc82000-55b90bc87000 r-xp 00002000 fe:00 247030                     /usr/bin/cat
55b90bc87000-55b90bc88000 r--p 00007000 fe:00 247030                     /usr/bin/cat
7f83cd2be000-7f83cd414000 r-xp 00026000 fe:00 326279                     /usr/lib/my lib.so
7f83cd48b000-7f83cd48d000 r-xp 00000000 00:00 0                          [vdso]
7f0000000000-7f0000001000 rwxp 00000000 00:00 0 
7f0000001000-7f0000002000 r-xp 00000000 00:00 0                          [anon:jit]
7f0000002000-7f0000003000 r-xp 00000000 08:01 12                         /tmp/evil.so (deleted)
ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]
";
        assert_eq!(
            parse_maps(text),
            vec![
                ExecMapping::File {
                    path: "/usr/bin/cat".into(),
                    dev: libc::makedev(0xfe, 0),
                    ino: 247030
                },
                ExecMapping::File {
                    path: "/usr/lib/my lib.so".into(),
                    dev: libc::makedev(0xfe, 0),
                    ino: 326279
                },
                ExecMapping::Anonymous,
                ExecMapping::Anonymous,
                ExecMapping::Deleted {
                    path: "/tmp/evil.so".into()
                },
            ]
        );
    }
}
