//! `imageguard definitions [--json]`: every saved backup definition found, where it backs up
//! to, the volume each destination is on, local or network, present or not, protected or not,
//! and the problems met reading them (file and line).

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
    // What is protected now, if the service answers.
    let protected = match request(&paths.socket(), &Request::Status) {
        Ok(Response::Status(s)) => Some(
            s.volumes
                .iter()
                .map(|v| v.mount_point.clone())
                .collect::<Vec<_>>(),
        ),
        _ => None,
    };
    let report = resolve(
        config.saved_definitions(&paths.config),
        &table,
        protected.as_deref(),
    );
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
            "{:<11} {:<34} {:<8} {:<22} {:<8} PROTECTED",
            "PROGRAM", "DESTINATION", "WHERE", "VOLUME", "PRESENT"
        );
    }
    for d in &report.destinations {
        let program = serde_json::to_value(d.program)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        println!(
            "{:<11} {:<34} {:<8} {:<22} {:<8} {}",
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
            }
        );
        println!("            from {} ({})", d.file.display(), d.name);
    }
    for p in &report.problems {
        eprintln!("imageguard: {p}");
    }
    exit::OK
}
