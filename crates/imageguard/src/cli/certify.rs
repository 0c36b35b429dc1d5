//! `imageguard certify | uncertify | certified`. With the service running the change goes through
//! it (and takes effect at once); without it, the certified list file is edited directly.

use imageguard_policy::sync_tools::Dialect;
use std::path::{Path, PathBuf};

use imageguard_identity::closure::{self, View};
use imageguard_identity::{certify_path, CertifiedStore, ClosureOptions};

use super::{client_error, exit, fail, run_simple};
use crate::control::client::{request, ClientError};
use crate::control::protocol::{Request, Response};
use crate::paths::PathArgs;
use crate::service::report::CertifiedProgram;

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn offline(paths: &PathArgs) -> bool {
    matches!(
        request(&paths.socket(), &Request::Certified),
        Err(ClientError::NotRunning(_))
    )
}

/// What `imageguard certify` was asked to record.
pub struct CertifyArgs<'a> {
    pub path: &'a Path,
    pub force: bool,
    pub also: &'a [PathBuf],
    pub homes: &'a [PathBuf],
    /// `--learn`: the program's usual job, run once to see what it loads.
    pub learn: Option<&'a [String]>,
    /// `--helpers`: certify the program's known helpers too.
    pub helpers: bool,
    /// `--helper`: more helpers (names or paths).
    pub helper: &'a [String],
    /// `--helper-of`: certify `path` only as a helper of this program.
    pub helper_of: Option<&'a Path>,
    /// `--sync-tool`: add `path` as a sync tool with this command-line dialect.
    pub sync_tool: Option<Dialect>,
}

pub fn certify(paths: &PathArgs, args: &CertifyArgs<'_>) -> i32 {
    let helper_of = match args.helper_of.map(super::helpers::program_key).transpose() {
        Ok(h) => h,
        Err(e) => return fail(&format!("--helper-of: {e:#}"), 1),
    };
    let code = certify_program(paths, args, helper_of.as_deref());
    if code != exit::OK || helper_of.is_some() {
        return code;
    }
    super::helpers::certify_helpers(paths, args)
}

/// Certify `helper` as a helper of `program` (the homes of `args` apply to it too).
pub fn certify_program_as_helper(
    paths: &PathArgs,
    args: &CertifyArgs<'_>,
    helper: &Path,
    program: &Path,
) -> i32 {
    let one = CertifyArgs {
        path: helper,
        force: false,
        also: &[],
        homes: args.homes,
        learn: None,
        helpers: false,
        helper: &[],
        helper_of: None,
        sync_tool: None,
    };
    certify_program(paths, &one, Some(program))
}

/// Certify `args.path` (as a helper of `helper_of`, when given).
fn certify_program(paths: &PathArgs, args: &CertifyArgs<'_>, helper_of: Option<&Path>) -> i32 {
    let abs = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let path = abs(args.path);
    if let Err(e) = imageguard_identity::check_sync_tool(&path, args.sync_tool) {
        return fail(&format!("{e:#}"), 1);
    }
    let homes: Vec<PathBuf> = args.homes.iter().map(|p| abs(p)).collect();
    let running = !offline(paths);
    // With the service, the job's processes are followed by the service itself (what they
    // map when they touch backups); without it, only sampled here.
    let (learn_job, learned) = match args.learn {
        None => (None, vec![]),
        Some(command) => {
            let register = |job: u32| -> anyhow::Result<()> {
                if !running {
                    return Ok(());
                }
                let req = Request::Learn {
                    path: path.clone(),
                    job,
                    force: args.force,
                    homes: homes.clone(),
                };
                match crate::control::client::request_admin(paths, req) {
                    Ok(Response::Ok { message, .. }) => {
                        eprintln!("imageguard: {message}");
                        Ok(())
                    }
                    Ok(Response::Error { message, .. }) => anyhow::bail!("{message}"),
                    Ok(other) => anyhow::bail!("unexpected answer: {other:?}"),
                    Err(e) => anyhow::bail!("{e}"),
                }
            };
            match super::learn::learn(&path, command, register) {
                Ok((job, l)) => (running.then_some(job), l),
                Err(e) => return fail(&format!("--learn: {e:#}"), 1),
            }
        }
    };
    let options = ClosureOptions {
        listed: args.also.iter().map(|p| abs(p)).collect(),
        learned,
        homes,
        force: args.force,
        as_helper: helper_of.is_some(),
    };
    if running {
        return run_simple(
            paths,
            Request::Certify {
                path,
                force: options.force,
                also: options.listed,
                learned: options.learned,
                homes: options.homes,
                learn_job,
                helper_of: helper_of.map(Path::to_path_buf),
                sync_tool: args.sync_tool,
            },
        );
    }
    let store = CertifiedStore::new(paths.certified_list());
    let r = (|| -> anyhow::Result<String> {
        let lock = crate::admin_lock::offline(&paths.state_dir, paths.passphrase_file.as_deref())?;
        let c = certify_path(&path, &options, now())?;
        for w in &c.warnings {
            eprintln!("imageguard: {w}");
        }
        let mut list = store.load()?;
        let mut entry = c.entry;
        entry.sync_tool = args.sync_tool;
        let (recorded, _) = imageguard_policy::helpers::record(
            &mut list,
            entry,
            helper_of.map(|p| p.to_string_lossy()).as_deref(),
        );
        let msg = format!("{recorded}; the service is not running, it applies at its next start");
        std::fs::create_dir_all(&paths.state_dir)?;
        store.save(&list)?;
        if let Some(l) = lock {
            l.seal(&paths.certified_list())?;
        }
        Ok(msg)
    })();
    match r {
        Ok(m) => {
            println!("{m}");
            exit::OK
        }
        Err(e) => fail(&format!("{e:#}"), 1),
    }
}

pub fn uncertify(paths: &PathArgs, path: &Path) -> i32 {
    let path = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    if !offline(paths) {
        return run_simple(paths, Request::Uncertify { path });
    }
    let store = CertifiedStore::new(paths.certified_list());
    let r = (|| -> anyhow::Result<String> {
        let lock = crate::admin_lock::offline(&paths.state_dir, paths.passphrase_file.as_deref())?;
        let mut list = store.load()?;
        let key = path.canonicalize().unwrap_or(path.clone());
        let e = list
            .remove(&key.to_string_lossy())
            .ok_or_else(|| anyhow::anyhow!("{} is not certified", path.display()))?;
        store.save(&list)?;
        if let Some(l) = lock {
            l.seal(&paths.certified_list())?;
        }
        Ok(format!("uncertified {}", e.path))
    })();
    match r {
        Ok(m) => {
            println!("{m}");
            exit::OK
        }
        Err(e) => fail(&format!("{e:#}"), 1),
    }
}

/// Without the service: compare each closure with the disk here.
fn programs_offline(paths: &PathArgs) -> anyhow::Result<Vec<CertifiedProgram>> {
    let list = CertifiedStore::new(paths.certified_list()).load()?;
    Ok(list
        .entries
        .into_iter()
        .map(|entry| {
            let change = entry
                .closure
                .as_ref()
                .and_then(|c| closure::verify(c, &View::own()));
            CertifiedProgram {
                intact: entry.closure.is_some() && change.is_none(),
                change,
                entry,
            }
        })
        .collect())
}

pub fn certified(paths: &PathArgs, json: bool) -> i32 {
    let programs = match request(&paths.socket(), &Request::Certified) {
        Ok(Response::Certified { programs }) => programs,
        Ok(Response::Error { message, code }) => return fail(&message, code),
        Ok(other) => return fail(&format!("unexpected answer: {other:?}"), 1),
        Err(ClientError::NotRunning(_)) => match programs_offline(paths) {
            Ok(p) => p,
            Err(e) => return fail(&format!("{e:#}"), 1),
        },
        Err(e) => return client_error(e),
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&programs).unwrap_or_default()
        );
        return exit::OK;
    }
    if programs.is_empty() {
        println!("no certified programs (certify one with `imageguard certify /usr/bin/restic`)");
        return exit::OK;
    }
    println!(
        "{:<34} {:<16} {:>7} {:<12} NOTE",
        "PROGRAM", "SHA256", "CLOSURE", "STATE"
    );
    for p in programs {
        let e = &p.entry;
        let mut note = match (&e.interpreter, e.forced) {
            (Some(i), _) => format!("script, run by {}", i.path),
            (None, true) => "forced (shell or interpreter)".into(),
            (None, false) => String::new(),
        };
        if !e.helper_of.is_empty() {
            note = format!("helper of {}", e.helper_of.join(", "));
        }
        if let Some(d) = e.sync_tool {
            note = format!("sync tool ({d})");
        }
        let (state, why) = match (&p.change, p.intact, &e.closure) {
            (_, true, _) => ("intact", String::new()),
            (Some(c), _, _) => ("CHANGED", format!(": {c}; certify it again if intended")),
            (None, _, None) => ("NOT RECORDED", ": certify it again".to_string()),
            (None, _, Some(_)) => ("CHANGED", String::new()),
        };
        println!(
            "{:<34} {:<16} {:>7} {:<12} {note}{why}",
            e.path,
            &e.sha256[..16.min(e.sha256.len())],
            e.closure.as_ref().map(|c| c.files.len()).unwrap_or(0),
            state,
        );
    }
    exit::OK
}
