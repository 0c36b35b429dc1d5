//! `imageguard verify [MOUNTPOINT...] [--json]`: proves that each protected volume is guarded
//! right now, as the caller sees it (run it from a backup job before the job: the probes run
//! in the job's own mount namespace). Per volume:
//!
//! 1. an uncertified child (this binary, `imageguard probe`) tries to create the verification
//!    file at the volume's root: it must be refused;
//! 2. the service writes the verification file through its guard, and what the caller reads
//!    there must be what the service wrote (the path is the guarded volume);
//! 3. the child tries to overwrite it and to delete it: both refused;
//! 4. the service removes it, and confirms the child's 310 is recorded (it logs 500 when not).
//!
//! A PASS/FAIL table per volume; exit 1 on any FAIL.

use std::path::{Path, PathBuf};
use std::process::Command;

use imageguard_policy::classify::VERIFICATION_FILE;
use serde::Serialize;

use super::{client_error, exit, fail};
use crate::control::client::request;
use crate::control::protocol::{Request, Response, VerifyStep};
use crate::paths::PathArgs;

#[derive(Debug, Serialize)]
struct Check {
    check: &'static str,
    pass: bool,
    detail: String,
}

#[derive(Debug, Serialize)]
struct VolumeVerdict {
    mount_point: PathBuf,
    pass: bool,
    checks: Vec<Check>,
}

pub fn verify(paths: &PathArgs, asked: &[PathBuf], json: bool) -> i32 {
    let status = match request(&paths.socket(), &Request::Status) {
        Ok(Response::Status(s)) => s,
        Ok(Response::Error { message, code }) => return fail(&message, code),
        Ok(other) => return fail(&format!("unexpected answer: {other:?}"), 1),
        Err(e) => return client_error(e),
    };
    let mut targets: Vec<(PathBuf, bool)> = vec![];
    for a in asked {
        let here = a.canonicalize().unwrap_or_else(|_| a.clone());
        match status
            .volumes
            .iter()
            .filter(|v| here.starts_with(&v.mount_point))
            .max_by_key(|v| v.mount_point.components().count())
        {
            Some(v) => targets.push((v.mount_point.clone(), v.guard_running)),
            None => targets.push((here, false)),
        }
    }
    if asked.is_empty() {
        targets = status
            .volumes
            .iter()
            .map(|v| (v.mount_point.clone(), v.guard_running))
            .collect();
    }
    if targets.is_empty() {
        eprintln!("imageguard: no volume is protected: nothing to verify");
        if json {
            println!("[]");
        }
        return exit::FAILURE;
    }
    let verdicts: Vec<VolumeVerdict> = targets
        .iter()
        .map(|(mp, running)| {
            let known = status.volumes.iter().any(|v| &v.mount_point == mp);
            let checks = if known {
                verify_volume(paths, mp, *running)
            } else {
                vec![Check {
                    check: "protected",
                    pass: false,
                    detail: "not a protected volume".into(),
                }]
            };
            VolumeVerdict {
                mount_point: mp.clone(),
                pass: checks.iter().all(|c| c.pass),
                checks,
            }
        })
        .collect();
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&verdicts).unwrap_or_default()
        );
    } else {
        println!("{:<28} {:<50} RESULT", "VOLUME", "CHECK");
        for v in &verdicts {
            let mut first = true;
            for c in &v.checks {
                println!(
                    "{:<28} {:<50} {}{}",
                    if first {
                        v.mount_point.display().to_string()
                    } else {
                        String::new()
                    },
                    c.check,
                    if c.pass { "PASS" } else { "FAIL" },
                    if c.detail.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", c.detail)
                    }
                );
                first = false;
            }
        }
    }
    if verdicts.iter().all(|v| v.pass) {
        exit::OK
    } else {
        exit::FAILURE
    }
}

/// What the probe child saw: `Ok` or the errno.
fn probe(op: &str, file: &Path) -> (u32, Result<(), i32>) {
    let me = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("imageguard"));
    match Command::new(me).arg("probe").arg(op).arg(file).output() {
        Ok(o) => {
            let text = String::from_utf8_lossy(&o.stdout);
            let pid = text
                .lines()
                .find_map(|l| l.strip_prefix("pid "))
                .and_then(|p| p.trim().parse().ok())
                .unwrap_or(0);
            let answer = text
                .lines()
                .find_map(|l| l.strip_prefix("errno "))
                .and_then(|e| e.trim().parse().ok())
                .map_or(Ok(()), Err);
            (pid, answer)
        }
        Err(e) => (0, Err(e.raw_os_error().unwrap_or(libc::EIO))),
    }
}

fn refused(what: &'static str, outcome: Result<(), i32>) -> Check {
    match outcome {
        Err(libc::EPERM) => Check {
            check: what,
            pass: true,
            detail: "refused".into(),
        },
        Err(e) => Check {
            check: what,
            pass: false,
            detail: format!(
                "failed with {} instead of being refused",
                std::io::Error::from_raw_os_error(e)
            ),
        },
        Ok(()) => Check {
            check: what,
            pass: false,
            detail: "went through: nothing guards this path".into(),
        },
    }
}

fn service_step(paths: &PathArgs, mp: &Path, step: VerifyStep) -> Result<String, String> {
    match request(
        &paths.socket(),
        &Request::VerifyFile {
            mount_point: mp.to_path_buf(),
            step,
        },
    ) {
        Ok(Response::Ok { message, .. }) => Ok(message),
        Ok(Response::Error { message, .. }) => Err(message),
        Ok(other) => Err(format!("unexpected answer: {other:?}")),
        Err(e) => Err(e.to_string()),
    }
}

fn verify_volume(paths: &PathArgs, mp: &Path, running: bool) -> Vec<Check> {
    let mut checks = vec![Check {
        check: "guard running",
        pass: running,
        detail: String::new(),
    }];
    let file = mp.join(VERIFICATION_FILE);
    // 1. An uncertified child creates the verification file.
    let (child, created) = probe("create", &file);
    checks.push(refused(
        "uncertified child creates the verification file",
        created,
    ));
    if created.is_ok() {
        // Not guarded here: take the child's file away again.
        let _ = std::fs::remove_file(&file);
    }
    // 2. The service writes it through its guard; the caller must see that very file.
    let written = service_step(paths, mp, VerifyStep::Write);
    checks.push(match &written {
        Ok(_) => Check {
            check: "service writes its verification file",
            pass: true,
            detail: String::new(),
        },
        Err(e) => Check {
            check: "service writes its verification file",
            pass: false,
            detail: e.clone(),
        },
    });
    if let Ok(content) = &written {
        let seen = std::fs::read_to_string(&file).ok();
        checks.push(Check {
            check: "the caller sees the service's file there",
            pass: seen.as_deref() == Some(content.as_str()),
            detail: if seen.as_deref() == Some(content.as_str()) {
                String::new()
            } else {
                "this path is not the volume the service guards".into()
            },
        });
        // 3. The child overwrites and deletes it.
        checks.push(refused(
            "uncertified child overwrites it",
            probe("overwrite", &file).1,
        ));
        checks.push(refused(
            "uncertified child deletes it",
            probe("delete", &file).1,
        ));
        // 4. The service removes it.
        let removed = service_step(paths, mp, VerifyStep::Remove);
        checks.push(Check {
            check: "service removes its verification file",
            pass: removed.is_ok(),
            detail: removed.err().unwrap_or_default(),
        });
    }
    if created.is_err() {
        let recorded = service_step(paths, mp, VerifyStep::Recorded { pid: child });
        checks.push(Check {
            check: "the refusal is logged (310)",
            pass: recorded.is_ok(),
            detail: recorded.err().unwrap_or_default(),
        });
    }
    checks
}

/// `imageguard probe OP FILE` (hidden): what `verify` runs as its uncertified child. Prints
/// its pid, then `ok` or `errno N`.
pub fn probe_child(op: &str, file: &Path) -> i32 {
    use std::io::Write;
    println!("pid {}", std::process::id());
    let r = match op {
        "create" => std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(file)
            .map(drop),
        "overwrite" => std::fs::OpenOptions::new()
            .write(true)
            .open(file)
            .and_then(|mut f| f.write_all(b"overwritten by a probe")),
        "delete" => std::fs::remove_file(file),
        other => {
            eprintln!("imageguard probe: unknown operation {other}");
            return exit::USAGE;
        }
    };
    match r {
        Ok(()) => println!("ok"),
        Err(e) => println!("errno {}", e.raw_os_error().unwrap_or(libc::EIO)),
    }
    exit::OK
}
