//! What every benchmark of the guard does first: run again without cargo's
//! `LD_LIBRARY_PATH` (a certified process started with it is not trusted: it could inject
//! code), and insist on root (the benchmarks mount file systems).

use std::process::Command;

use imageguard::sandbox::Sandbox;

/// Returns when this process may run the benchmark; otherwise runs it again as it should be
/// run and exits with that run's status. `--list` (cargo's probe) exits at once.
pub fn start() {
    if std::env::args().any(|a| a == "--list") {
        std::process::exit(0);
    }
    if std::env::var_os("LD_LIBRARY_PATH").is_some() {
        let st = Command::new(std::env::current_exe().unwrap())
            .args(std::env::args_os().skip(1))
            .env_remove("LD_LIBRARY_PATH")
            .status()
            .expect("re-running the benchmark");
        std::process::exit(st.code().unwrap_or(1));
    }
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "the benchmark mounts file systems: run it as root"
    );
}

/// Where the benchmarks' volume images go: RAM (/dev/shm) when there is one, so the host
/// disk's write-back noise does not swamp the ratios; else the temporary folder.
pub fn image_base() -> std::path::PathBuf {
    let shm = std::path::PathBuf::from("/dev/shm");
    if shm.is_dir() {
        shm
    } else {
        std::env::temp_dir()
    }
}

/// Run an imageguard command against `sb`; it must succeed.
pub fn ig(sb: &Sandbox, args: &[&str]) {
    let o = sb.imageguard(args).expect("imageguard");
    assert!(
        o.status.success(),
        "imageguard {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}
