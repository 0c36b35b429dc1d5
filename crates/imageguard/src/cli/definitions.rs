//! `imageguard definitions [--json]`: every saved backup definition found, where it backs up
//! to, the volume each destination is on, local or network, present or not, protected or not,
//! the retention lock on it and how many files it holds, and the problems met reading them
//! (file and line).

use imageguard_volume::mountinfo::MountTable;

use super::{exit, fail};
use crate::backup_drives::resolve;
use crate::config::Config;
use crate::control::client::request;
use crate::control::protocol::{Request, Response};
use crate::paths::PathArgs;

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
    let mut report = resolve(
        config.saved_definitions(&paths.config),
        &table,
        protected.as_deref(),
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
            "{:<11} {:<34} {:<8} {:<22} {:<8} {:<21} LOCK",
            "PROGRAM", "DESTINATION", "WHERE", "VOLUME", "PRESENT", "PROTECTED"
        );
    }
    for d in &report.destinations {
        let program = serde_json::to_value(d.program)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        println!(
            "{:<11} {:<34} {:<8} {:<22} {:<8} {:<21} {}",
            program,
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
            match (d.lock_days, d.locked_files) {
                (Some(days), Some(n)) => format!("{days} days ({n} files held)"),
                (Some(days), None) => format!("{days} days"),
                _ => "-".into(),
            }
        );
        println!("            from {} ({})", d.file.display(), d.name);
    }
    for p in &report.problems {
        eprintln!("imageguard: {p}");
    }
    exit::OK
}
