//! `imageguard certify --learn`: run a program's usual job once and record which files its
//! processes map executable, so that libraries it loads only sometimes (plugins, modules of
//! its interpreter's C extensions, name-service modules) join its closure.
//!
//! The job is started stopped; the service is told its pid before it runs, and from then on
//! records, instead of refusing, what the program's processes descending from the job map
//! outside the closure when they touch backups. Meanwhile its processes are also sampled here
//! every few milliseconds (what they map without touching a backup). The job runs as given,
//! with this command's environment.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use imageguard_identity::procfs;
use imageguard_policy::closure::ExecMapping;
use rustix::process::{kill_process, waitpid, Pid, Signal, WaitOptions};

const SAMPLE_EVERY: Duration = Duration::from_millis(2);

/// Run `command` as `program`'s learning job; `before_run(pid)` is called while the job is
/// stopped before its first instruction. Returns the job's pid and every file a process of
/// `program` was seen mapping executable.
pub fn learn(
    program: &Path,
    command: &[String],
    before_run: impl FnOnce(u32) -> Result<()>,
) -> Result<(u32, Vec<PathBuf>)> {
    let Some((first, rest)) = command.split_first() else {
        bail!("give the job to run after `--`");
    };
    let program = program
        .canonicalize()
        .with_context(|| format!("{}", program.display()))?;
    // A shell that stops itself, then becomes the job (same pid): the job is registered with
    // the service before its first instruction.
    let mut child = Command::new("/bin/sh")
        .args([
            "-c",
            "kill -STOP $$ && exec \"$@\"",
            "imageguard-learn",
            first,
        ])
        .args(rest)
        .spawn()
        .with_context(|| format!("starting {first}"))?;
    let root = child.id();
    let pid = Pid::from_raw(root as i32).context("job pid")?;
    waitpid(Some(pid), WaitOptions::UNTRACED).context("waiting for the job to stop")?;
    if let Err(e) = before_run(root) {
        let _ = child.kill();
        let _ = child.wait();
        return Err(e);
    }
    kill_process(pid, Signal::CONT).context("letting the job run")?;
    let mut seen = BTreeSet::new();
    let status = loop {
        for p in tree(root) {
            if runs(p, &program) {
                if let Ok(maps) = procfs::exec_mappings(p) {
                    seen.extend(maps.into_iter().filter_map(|m| match m {
                        ExecMapping::File { path, .. } => Some(PathBuf::from(path)),
                        _ => None,
                    }));
                }
            }
        }
        if let Some(status) = child.try_wait()? {
            break status;
        }
        std::thread::sleep(SAMPLE_EVERY);
    };
    if !status.success() {
        eprintln!(
            "imageguard: --learn: the job exited with {status}; what it mapped until then is learned"
        );
    }
    Ok((root, seen.into_iter().collect()))
}

/// `root` and its descendants now.
fn tree(root: u32) -> Vec<u32> {
    let all: Vec<(u32, u32)> = std::fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
                .filter_map(|pid| Some((pid, procfs::parent(pid).ok()?)))
                .collect()
        })
        .unwrap_or_default();
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let p = found[i];
        found.extend(all.iter().filter(|(_, pp)| *pp == p).map(|(c, _)| *c));
        i += 1;
    }
    found
}

/// Whether process `pid` runs `program`: as its executable, or as the script its
/// interpreter runs.
fn runs(pid: u32, program: &Path) -> bool {
    let exe = procfs::exe_path(pid).unwrap_or_default();
    if Path::new(&exe) == program {
        return true;
    }
    procfs::cmdline(pid).is_ok_and(|argv| {
        argv.iter()
            .skip(1)
            .take(3)
            .any(|a| Path::new(a).canonicalize().ok().as_deref() == Some(program))
    })
}
