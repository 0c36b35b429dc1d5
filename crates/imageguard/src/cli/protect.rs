//! `imageguard protect | unprotect | eject | maintenance | off | on | stop`.

use std::path::Path;

use super::{exit, fail, run_simple};
use crate::control::protocol::Request;
use crate::paths::PathArgs;

fn absolute(path: &Path) -> std::path::PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

pub fn protect(paths: &PathArgs, path: &Path) -> i32 {
    run_simple(
        paths,
        Request::Protect {
            path: absolute(path),
        },
    )
}

pub fn unprotect(paths: &PathArgs, path: &Path) -> i32 {
    run_simple(
        paths,
        Request::Unprotect {
            path: absolute(path),
        },
    )
}

pub fn eject(paths: &PathArgs, path: &Path) -> i32 {
    run_simple(
        paths,
        Request::Eject {
            path: absolute(path),
        },
    )
}

pub fn maintenance(paths: &PathArgs, path: &Path, minutes: u32) -> i32 {
    run_simple(
        paths,
        Request::Maintenance {
            path: absolute(path),
            minutes,
        },
    )
}

pub fn off(paths: &PathArgs, restart_on_reboot: bool) -> i32 {
    run_simple(paths, Request::Off { restart_on_reboot })
}

pub fn on(paths: &PathArgs) -> i32 {
    run_simple(paths, Request::On)
}

/// How long `stop` waits for the service to have given its volumes back and ended.
const STOP_WAIT: std::time::Duration = std::time::Duration::from_secs(120);

pub fn stop(paths: &PathArgs) -> i32 {
    let code = run_simple(paths, Request::Stop);
    if code != exit::OK {
        return code;
    }
    // The service removes its socket last, once every volume is given back.
    let started = std::time::Instant::now();
    while crate::control::client::request(&paths.socket(), &Request::Status).is_ok() {
        if started.elapsed() > STOP_WAIT {
            return fail(
                &format!("the service still answers after {} s", STOP_WAIT.as_secs()),
                libc::ETIMEDOUT,
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    println!("the service has stopped");
    exit::OK
}
