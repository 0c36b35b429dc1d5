//! `imageguard lock set|clear|status`: the admin lock's passphrase (see `crate::admin_lock`).
//! Setting a new one, or clearing it, needs the current one.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Subcommand;

use super::{client_error, exit, fail};
use crate::admin_lock::AdminLock;
use crate::control::client::{request_admin, ClientError};
use crate::control::protocol::{Request, Response};
use crate::paths::PathArgs;

#[derive(Debug, Subcommand)]
pub enum LockCommand {
    /// Set the passphrase (asked twice on a terminal, or read from --new-passphrase-file);
    /// with a lock set already, the current one is needed too.
    Set {
        #[arg(long)]
        new_passphrase_file: Option<PathBuf>,
    },
    /// Remove the lock (needs its passphrase).
    Clear,
    /// Whether a lock is set.
    Status,
}

fn new_passphrase(file: Option<&Path>) -> Result<String> {
    if let Some(f) = file {
        return Ok(std::fs::read_to_string(f)
            .with_context(|| format!("reading {}", f.display()))?
            .trim_end_matches(['\n', '\r'])
            .to_string());
    }
    if !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        bail!("no terminal to ask the new passphrase on: use --new-passphrase-file");
    }
    let a = rpassword::prompt_password("new admin passphrase: ")?;
    let b = rpassword::prompt_password("again: ")?;
    if a != b {
        bail!("the two passphrases differ");
    }
    Ok(a)
}

pub fn lock(paths: &PathArgs, cmd: &LockCommand) -> i32 {
    let req = match cmd {
        LockCommand::Status => {
            return match AdminLock::load(&paths.state_dir) {
                Ok(Some(_)) => {
                    println!("admin lock: set");
                    exit::OK
                }
                Ok(None) => {
                    println!("admin lock: not set");
                    exit::OK
                }
                Err(e) => fail(&format!("{e:#}"), 1),
            };
        }
        LockCommand::Set {
            new_passphrase_file,
        } => match new_passphrase(new_passphrase_file.as_deref()) {
            Ok(p) => Request::LockSet { passphrase: p },
            Err(e) => return fail(&format!("{e:#}"), libc::EINVAL),
        },
        LockCommand::Clear => Request::LockClear,
    };
    match request_admin(paths, req.clone()) {
        Ok(Response::Ok { message, .. }) => {
            println!("{message}");
            exit::OK
        }
        Ok(Response::Error { message, code }) => fail(&message, code),
        Ok(other) => fail(&format!("unexpected answer: {other:?}"), 1),
        Err(ClientError::NotRunning(_)) => match offline(paths, req) {
            Ok(m) => {
                println!("{m}");
                exit::OK
            }
            Err(e) => fail(&format!("{e:#}"), libc::EACCES),
        },
        Err(e) => client_error(e),
    }
}

/// Without a service: the lock file itself (the current passphrase checked first).
fn offline(paths: &PathArgs, req: Request) -> Result<String> {
    crate::admin_lock::offline(&paths.state_dir, paths.passphrase_file.as_deref())?;
    match req {
        Request::LockSet { passphrase } => {
            std::fs::create_dir_all(&paths.state_dir)?;
            let lock = AdminLock::new(&passphrase)?;
            lock.save(&paths.state_dir)?;
            for f in [
                paths.config.clone(),
                paths.certified_list(),
                paths.service_state(),
            ] {
                lock.seal(&f)?;
            }
            Ok("admin lock set (the service is not running)".into())
        }
        Request::LockClear => match std::fs::remove_file(AdminLock::file(&paths.state_dir)) {
            Ok(()) => Ok("admin lock cleared".into()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok("no admin lock is set".into()),
            Err(e) => Err(e.into()),
        },
        _ => unreachable!("only lock requests"),
    }
}
