//! `imageguard definitions [--json]`: every saved backup definition found, where it backs up
//! to, the volume each destination is on, local or network, present or not, protected or not,
//! the retention lock on it and how many files it holds, whether an administrator approved it,
//! and the problems met reading them (file and line). `imageguard definitions approve|revoke
//! FILE [--name NAME]`: approve a definition (only approved ones, and imageguard's own, let a
//! sync tool delete or add), or withdraw the approval.

use imageguard_volume::mountinfo::MountTable;

use std::path::PathBuf;

use clap::Subcommand;

use super::{exit, fail, run_simple};
use crate::backup_drives::resolve;
use crate::config::Config;
use crate::control::client::request;
use crate::control::protocol::{Request, Response};
use crate::paths::PathArgs;

#[derive(Debug, Subcommand)]
pub enum Action {
    /// Approve the definitions read from FILE, as they are now, after reading them: their
    /// destinations then let a sync tool prune copies of them and move into them. Approved
    /// again whenever their destinations or sources change. Root only; the admin lock's
    /// passphrase when it is set.
    Approve {
        file: PathBuf,
        /// Only the definition with this name in FILE (a label, a profile).
        #[arg(long)]
        name: Option<String>,
    },
    /// Withdraw the approval of the definitions read from FILE.
    Revoke {
        file: PathBuf,
        #[arg(long)]
        name: Option<String>,
    },
}

/// `definitions approve|revoke`: through the service, or, while it is stopped, in its state
/// directly (with the admin lock's passphrase when it is set, and sealed).
pub fn approve(paths: &PathArgs, action: &Action) -> i32 {
    let (file, name, revoke) = match action {
        Action::Approve { file, name } => (file, name, false),
        Action::Revoke { file, name } => (file, name, true),
    };
    let file = std::path::absolute(file).unwrap_or_else(|_| file.clone());
    let running = !matches!(
        request(&paths.socket(), &Request::Status),
        Err(crate::control::client::ClientError::NotRunning(_))
    );
    if running {
        return run_simple(
            paths,
            Request::ApproveDefinitions {
                file,
                name: name.clone(),
                revoke,
            },
        );
    }
    let r = (|| -> anyhow::Result<String> {
        let lock = crate::admin_lock::offline(&paths.state_dir, paths.passphrase_file.as_deref())?;
        let config = Config::load(&paths.config)?;
        let found = config.saved_definitions(&paths.config);
        let state_file = paths.service_state();
        let mut state = crate::state::ServiceState::load(&state_file)?;
        let lines = crate::approvals::apply(
            &mut state.approved_definitions,
            &found.definitions,
            &file,
            name.as_deref(),
            revoke,
            crate::timefmt::now_ns() / 1_000_000_000,
        )
        .map_err(|e| anyhow::anyhow!(e))?;
        std::fs::create_dir_all(&paths.state_dir)?;
        state.save(&state_file)?;
        if let Some(l) = lock {
            l.seal(&state_file)?;
        }
        Ok(format!(
            "{}\nthe service is not running: it applies at its next start",
            lines.join("\n")
        ))
    })();
    match r {
        Ok(m) => {
            println!("{m}");
            exit::OK
        }
        Err(e) => fail(&format!("{e:#}"), 1),
    }
}

pub fn definitions(paths: &PathArgs, json: bool) -> i32 {
    let config = match Config::load(&paths.config) {
        Ok(c) => c,
        Err(e) => return fail(&format!("{e:#}"), 1),
    };
    let table = match MountTable::read() {
        Ok(t) => t,
        Err(e) => return fail(&format!("reading the mount table: {e}"), 1),
    };
    // What is protected now, and the locks in force, if the service answers.
    let status = match request(&paths.socket(), &Request::Status) {
        Ok(Response::Status(s)) => Some(s),
        _ => None,
    };
    let protected = status.as_ref().map(|s| {
        s.volumes
            .iter()
            .map(|v| v.mount_point.clone())
            .collect::<Vec<_>>()
    });
    // The approvals, where this user may read the service's state (root).
    let approvals = crate::state::ServiceState::load(&paths.service_state())
        .ok()
        .map(|s| s.approved_definitions);
    let mut report = resolve(
        config.saved_definitions(&paths.config),
        &table,
        protected.as_deref(),
        approvals.as_deref(),
    );
    if let Some(s) = &status {
        for d in &mut report.destinations {
            let Some(folder) = &d.folder else { continue };
            let here = folder.canonicalize().unwrap_or_else(|_| folder.clone());
            d.lock_days = s
                .retention_locks
                .iter()
                .filter(|l| here.starts_with(&l.folder))
                .map(|l| l.days)
                .max();
            d.locked_files = d.lock_days.and_then(|_| {
                s.volumes
                    .iter()
                    .filter(|v| here.starts_with(&v.mount_point))
                    .max_by_key(|v| v.mount_point.components().count())
                    .map(|v| v.locked_files)
            });
        }
    }
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
        return exit::OK;
    }
    if report.destinations.is_empty() {
        println!("no backup definitions found");
    } else {
        println!(
            "{:<11} {:<34} {:<8} {:<22} {:<8} {:<21} {:<9} LOCK",
            "PROGRAM", "DESTINATION", "WHERE", "VOLUME", "PRESENT", "PROTECTED", "APPROVED"
        );
    }
    for d in &report.destinations {
        println!(
            "{:<11} {:<34} {:<8} {:<22} {:<8} {:<21} {:<9} {}",
            d.program.name(),
            d.destination,
            d.location,
            d.mount_point
                .as_ref()
                .map(|m| m.display().to_string())
                .unwrap_or_else(|| "-".into()),
            if d.present { "yes" } else { "no" },
            match d.protected {
                Some(true) => "yes",
                Some(false) => "no",
                None => "(service not running)",
            },
            d.approval.map_or("?", |a| a.word()),
            match (d.lock_days, d.locked_files) {
                (Some(days), Some(n)) => format!("{days} days ({n} files held)"),
                (Some(days), None) => format!("{days} days"),
                _ => "-".into(),
            }
        );
        println!("            from {} ({})", d.file.display(), d.name);
        if let Some(why) = &d.confined {
            println!("            not protected from it: {why}");
        }
    }
    for p in &report.problems {
        eprintln!("imageguard: {p}");
    }
    exit::OK
}
