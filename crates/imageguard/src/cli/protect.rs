//! `imageguard protect | unprotect | eject | maintenance | off | on`.

use std::path::Path;

use super::run_simple;
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
