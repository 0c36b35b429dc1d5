//! `imageguard certify --learn`: run a program's usual job once and watch which files its
//! processes map executable, so that libraries it loads only sometimes (plugins, modules of
//! its interpreter's C extensions, name-service modules) join its closure.
//!
//! The job runs as given, with this command's environment. Its processes are sampled every
//! few milliseconds: a library mapped and unmapped between two samples is missed, and the
//! guard later refuses the program when it maps it, naming the file (add it with `--also`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use imageguard_identity::procfs;
use imageguard_policy::closure::ExecMapping;

const SAMPLE_EVERY: Duration = Duration::from_millis(2);

/// Run `command` and return every file a process of `program` mapped executable meanwhile.
pub fn learn(program: &Path, command: &[String]) -> Result<Vec<PathBuf>> {
    let Some((first, rest)) = command.split_first() else {
        bail!("give the job to run after `--`");
    };
    let program = program
        .canonicalize()
        .with_context(|| format!("{}", program.display()))?;
    let mut child = Command::new(first)
        .args(rest)
        .spawn()
        .with_context(|| format!("starting {first}"))?;
    let root = child.id();
    let mut seen = BTreeSet::new();
    let status = loop {
        for pid in tree(root) {
            if runs(pid, &program) {
                if let Ok(maps) = procfs::exec_mappings(pid) {
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
        eprintln!("imageguard: --learn: the job exited with {status}; what it mapped until then is learned");
    }
    if seen.is_empty() {
        bail!(
            "no process of {} was seen running: the job must run the program itself",
            program.display()
        );
    }
    Ok(seen.into_iter().collect())
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
