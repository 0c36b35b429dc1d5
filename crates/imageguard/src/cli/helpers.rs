//! `imageguard certify --helpers | --helper NAME`: the helper programs a certified program runs
//! as separate processes (rsnapshot's `cp -al`, `rm -rf`, rsync), certified as its helpers, so
//! that they count only while it runs them. Certifying a program known to run helpers, without
//! saying which, offers them: a question on a terminal, a note otherwise.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use imageguard_identity::CertifiedStore;
use imageguard_policy::helpers::known_helpers;
use imageguard_policy::CertifiedEntry;

use super::certify::{certify_program_as_helper, CertifyArgs};
use super::exit;
use crate::config::Config;
use crate::control::client::request;
use crate::control::protocol::{Request, Response};
use crate::paths::PathArgs;

/// Folders searched for a helper named without a path, after `PATH`.
const SYSTEM_BIN: &[&str] = &[
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
];

/// The path a program is certified under (its entry's path): the file itself, links resolved.
pub fn program_key(program: &Path) -> anyhow::Result<PathBuf> {
    program
        .canonicalize()
        .with_context(|| program.display().to_string())
}

/// Where a helper named `name` (or given by path) is.
fn find_program(name: &str) -> anyhow::Result<PathBuf> {
    if name.contains('/') {
        return program_key(Path::new(name));
    }
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':')
        .filter(|d| !d.is_empty())
        .chain(SYSTEM_BIN.iter().copied())
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| anyhow::anyhow!("{name}: not found in PATH or {}", SYSTEM_BIN.join(":")))
        .and_then(|p| program_key(&p))
}

/// The certified list as it is now (from the service, or the file without it).
fn current_list(paths: &PathArgs) -> Vec<CertifiedEntry> {
    match request(&paths.socket(), &Request::Certified) {
        Ok(Response::Certified { programs }) => programs.into_iter().map(|p| p.entry).collect(),
        _ => CertifiedStore::new(paths.certified_list())
            .load()
            .map(|l| l.entries)
            .unwrap_or_default(),
    }
}

/// Ask on the terminal; `None` without one.
fn ask(question: &str) -> Option<bool> {
    if !std::io::stdin().is_terminal() || !std::io::stderr().is_terminal() {
        return None;
    }
    eprint!("{question} [Y/n] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer).ok()?;
    Some(!answer.trim().to_ascii_lowercase().starts_with('n'))
}

/// After `args.path` was certified: certify the helpers asked for, or offer the known ones.
pub fn certify_helpers(paths: &PathArgs, args: &CertifyArgs<'_>) -> i32 {
    let program = match program_key(args.path) {
        Ok(p) => p,
        Err(e) => return super::fail(&format!("{e:#}"), 1),
    };
    let extra = Config::load(&paths.config)
        .map(|c| c.extra_helpers())
        .unwrap_or_default();
    let known = known_helpers(&program.to_string_lossy(), &extra);
    let mut wanted: Vec<String> = args.helper.to_vec();
    if args.helpers {
        wanted.extend(known.iter().cloned());
        if known.is_empty() && args.helper.is_empty() {
            eprintln!(
                "imageguard: {} runs no helpers imageguard knows of (name them with --helper, \
                 or list them under [helpers] in the configuration)",
                program.display()
            );
        }
    } else if !known.is_empty() {
        let list = current_list(paths);
        let program_s = program.to_string_lossy();
        let missing: Vec<String> = known
            .iter()
            .filter(|name| {
                let Ok(p) = find_program(name) else {
                    return false;
                };
                !list.iter().any(|e| {
                    Path::new(&e.path) == p
                        && (e.helper_of.is_empty() || e.helper_of.iter().any(|h| *h == program_s))
                })
            })
            .cloned()
            .collect();
        if !missing.is_empty() {
            let what = format!(
                "{} runs {} as separate processes; without them certified as its helpers its \
                 backups fail (rsnapshot: \"Error! cp_al\", \"rm_rf\")",
                program.display(),
                missing.join(", ")
            );
            match ask(&format!(
                "{what}. Certify them as its helpers (they count only while it runs them)?"
            )) {
                Some(true) => wanted.extend(missing),
                Some(false) => {}
                None => eprintln!(
                    "imageguard: note: {what}: certify them with `imageguard certify --helpers {}`",
                    program.display()
                ),
            }
        }
    }
    let mut code = exit::OK;
    let mut seen = std::collections::BTreeSet::new();
    for name in wanted {
        let helper = match find_program(&name) {
            Ok(h) => h,
            Err(e) => {
                code = super::fail(&format!("helper {e:#}"), 1);
                continue;
            }
        };
        if !seen.insert(helper.clone()) {
            continue;
        }
        let c = certify_program_as_helper(paths, args, &helper, &program);
        if c != exit::OK {
            code = c;
        }
    }
    code
}
