//! `imageguard status`.

use imageguard_eventstore::sqlite::event_name;

use super::{client_error, exit, fail};
use crate::control::client::request;
use crate::control::protocol::{Request, Response};
use crate::paths::PathArgs;

pub fn status(paths: &PathArgs, json: bool) -> i32 {
    let report = match request(&paths.socket(), &Request::Status) {
        Ok(Response::Status(r)) => r,
        Ok(Response::Error { message, code }) => return fail(&message, code),
        Ok(other) => return fail(&format!("unexpected answer: {other:?}"), 1),
        Err(e) => {
            if json {
                println!("{}", serde_json::json!({"service": "not running"}));
            }
            return client_error(e);
        }
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
        return exit::OK;
    }
    println!("imageguard service: running (pid {})", report.pid);
    println!(
        "protection: {}{}",
        report.protection,
        if report.protection == "off" && report.restart_on_reboot {
            " (back on at next boot)"
        } else {
            ""
        }
    );
    println!(
        "certified programs: {}{}",
        report.certified_programs,
        if report.certified_broken > 0 {
            format!(
                " ({} no longer certified: their code changed; see `imageguard certified`)",
                report.certified_broken
            )
        } else {
            String::new()
        }
    );
    if report.sync_tools > 0 || report.sync_tools_allowed {
        println!(
            "sync tools: {} ({}; docs/sync-tools.md)",
            report.sync_tools,
            if report.sync_tools_allowed {
                "allowed by the sync rules"
            } else {
                "not allowed: [sync_tools] allow = false"
            }
        );
    }
    if !report.kernel_shield.is_empty() {
        println!("kernel shield: {}", report.kernel_shield);
    }
    if report.admin_lock {
        println!("admin lock: set (off, unprotect, certify, settings changes need its passphrase)");
    }
    for l in &report.retention_locks {
        println!(
            "retention lock: {} days on {}{}",
            l.days,
            l.folder.display(),
            match &l.until {
                Some(u) =>
                    format!(" (shortened or removed in the configuration; in force until {u})"),
                None => String::new(),
            }
        );
    }
    let lock_only = report.volumes.iter().filter(|v| v.lock_only).count();
    if lock_only > 0 {
        println!(
            "protection off on {lock_only} volume(s) where a retention lock is in force: their \
             guard stays and refuses changes to the files the lock holds"
        );
    }
    for w in &report.warnings {
        println!("warning: {w}");
    }
    if report.volumes.is_empty() {
        println!("protected volumes: none");
    }
    for v in &report.volumes {
        println!("\n{}", v.mount_point.display());
        println!(
            "  device:          {} ({}), {}",
            v.device, v.device_number, v.fstype
        );
        println!(
            "  uuid:            {}",
            v.uuid.as_deref().unwrap_or("unknown")
        );
        println!("  location:        {}", v.location);
        println!("  protection:      {}", v.protection);
        if let Some(k) = &v.kernel_shield {
            println!("  kernel shield:   {k}");
        }
        println!("  backup files:    {}", v.files_protected);
        println!(
            "  denied / certified writes: {} / {}",
            v.denied, v.allowed_certified
        );
        if v.lock_days > 0 {
            println!(
                "  retention lock:  {} days; {} files younger than that (nobody may delete or \
                 change them, certified programs included)",
                v.lock_days, v.locked_files
            );
        }
        if let Some(m) = v.key_window_minutes_left {
            println!(
                "  repository keys: maintenance window open, {m} min left (certified programs may \
                 remove and rewrite them)"
            );
        }
        if v.allowed_sync > 0 {
            println!(
                "  sync tools' changes allowed by the rules: {}",
                v.allowed_sync
            );
        }
        println!(
            "  data path:       {}",
            if v.passthrough {
                "kernel passthrough"
            } else {
                "userspace"
            }
        );
        if let Some(why) = &v.reason {
            println!("  protected as:    {why}");
        }
        if !v.guard_running {
            println!("  WARNING: the guard is not serving requests (callers fail closed)");
        }
        if v.writers_at_protect {
            println!("  WARNING: files were open for writing when protection started; those descriptors bypass the guard until closed");
        }
        if v.mode == imageguard_volume::BackingMode::Hidden && !v.also_mounted_at.is_empty() {
            let list: Vec<String> = v
                .also_mounted_at
                .iter()
                .map(|p| p.display().to_string())
                .collect();
            println!(
                "  WARNING: the same file system is also mounted at {} (not guarded)",
                list.join(", ")
            );
        }
    }
    for a in &report.absent {
        println!("\n{}", a.mount_point.display());
        println!(
            "  absent:          {} since {} (protected again when mounted)",
            a.why,
            crate::timefmt::format_ns(a.since.saturating_mul(1_000_000_000))
        );
        println!(
            "  uuid:            {}",
            a.uuid.as_deref().unwrap_or("unknown")
        );
        if let Some(why) = &a.reason {
            println!("  protected as:    {why}");
        }
    }
    if !report.event_counts.is_empty() {
        println!("\nevents:");
        for (id, n) in &report.event_counts {
            println!("  {id} {:<42} {n}", event_name(*id));
        }
    }
    exit::OK
}
