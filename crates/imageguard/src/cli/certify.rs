//! `imageguard certify | uncertify | certified`. With the service running the change goes through
//! it (and takes effect at once); without it, the certified list file is edited directly.

use std::path::Path;

use imageguard_identity::{certify_path, CertifiedStore};

use super::{client_error, exit, fail, run_simple};
use crate::control::client::{request, ClientError};
use crate::control::protocol::{Request, Response};
use crate::paths::PathArgs;

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

pub fn certify(paths: &PathArgs, path: &Path, force: bool) -> i32 {
    let path = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    if !offline(paths) {
        return run_simple(paths, Request::Certify { path, force });
    }
    let store = CertifiedStore::new(paths.certified_list());
    let r = (|| -> anyhow::Result<String> {
        let c = certify_path(&path, force, now())?;
        for w in &c.warnings {
            eprintln!("imageguard: {w}");
        }
        let mut list = store.load()?;
        let msg = format!(
            "certified {} (sha256 {}); the service is not running, it applies at its next start",
            c.entry.path, c.entry.sha256
        );
        std::fs::create_dir_all(&paths.state_dir)?;
        list.upsert(c.entry);
        store.save(&list)?;
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
        let mut list = store.load()?;
        let key = path.canonicalize().unwrap_or(path.clone());
        let e = list
            .remove(&key.to_string_lossy())
            .ok_or_else(|| anyhow::anyhow!("{} is not certified", path.display()))?;
        store.save(&list)?;
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

pub fn certified(paths: &PathArgs, json: bool) -> i32 {
    let entries = match request(&paths.socket(), &Request::Certified) {
        Ok(Response::Certified { entries }) => entries,
        Ok(Response::Error { message, code }) => return fail(&message, code),
        Ok(other) => return fail(&format!("unexpected answer: {other:?}"), 1),
        Err(ClientError::NotRunning(_)) => match CertifiedStore::new(paths.certified_list()).load()
        {
            Ok(l) => l.entries,
            Err(e) => return fail(&e.to_string(), 1),
        },
        Err(e) => return client_error(e),
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&entries).unwrap_or_default()
        );
        return exit::OK;
    }
    if entries.is_empty() {
        println!("no certified programs (certify one with `imageguard certify /usr/bin/restic`)");
        return exit::OK;
    }
    println!("{:<40} {:<16} NOTE", "PROGRAM", "SHA256");
    for e in entries {
        let note = match (&e.interpreter, e.forced) {
            (Some(i), _) => format!("script, run by {}", i.path),
            (None, true) => "forced (shell or interpreter)".into(),
            (None, false) => String::new(),
        };
        println!(
            "{:<40} {:<16} {}",
            e.path,
            &e.sha256[..16.min(e.sha256.len())],
            note
        );
    }
    exit::OK
}
