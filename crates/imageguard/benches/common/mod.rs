//! What every benchmark of the guard does first: run again without cargo's
//! `LD_LIBRARY_PATH` (a certified process started with it is not trusted: it could inject
//! code), and insist on root (the benchmarks mount file systems); and what several share.
#![allow(dead_code)]

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

/// Fill (or change) the source tree `dir` with `files` files of `bytes` pseudo-random bytes:
/// `generation` changes every file's bytes, so that every backup of it writes new data.
pub fn source_tree(dir: &std::path::Path, files: usize, bytes: usize, generation: u32) {
    std::fs::create_dir_all(dir).unwrap();
    for i in 0..files {
        let mut data = vec![0u8; bytes];
        let mut x = (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ u64::from(generation);
        for b in data.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        std::fs::write(dir.join(format!("f{i}.dat")), data).unwrap();
    }
}
