//! Benchmark (root only): what the retention lock costs a backup. `restic backup` of a changed
//! source tree into a repository, side by side in one run:
//! - on a native (unguarded) loop volume;
//! - on a guarded volume, restic certified, no lock;
//! - on a guarded volume, restic certified, under a 14-day retention lock (every new pack
//!   dated, every rename into place and every delete of its own lock file asked about its age).
//!
//! Rounds are interleaved; the median and the best of each are printed with the ratios.
//! Run: `cargo bench -p imageguard --bench retention`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use imageguard::sandbox::Sandbox;

mod common;

use common::ig;

const FILES: usize = 2_000;
const FILE_BYTES: usize = 32 * 1024;
const ROUNDS: usize = 7;

fn restic(sb: &Sandbox, repo: &Path, args: &[&str]) -> Duration {
    let t = Instant::now();
    let o = Command::new("restic")
        .args(args)
        .env("RESTIC_PASSWORD", "bench")
        .env("RESTIC_REPOSITORY", repo)
        .env("RESTIC_CACHE_DIR", sb.path().join("restic-cache"))
        .env_remove("LD_LIBRARY_PATH")
        .output()
        .expect("restic (install the restic package)");
    let d = t.elapsed();
    assert!(
        o.status.success(),
        "restic {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    d
}

fn main() {
    common::start();
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_imageguard"));
    let base = common::image_base();
    let native = Sandbox::new_in(&base, &exe, 1024).expect("native volume");
    let mut guarded = Sandbox::new_in(&base, &exe, 1024).expect("guarded volume");
    let mut locked = Sandbox::new_in(&base, &exe, 1024).expect("locked volume");
    locked
        .add_retention_lock(&locked.mnt, 14)
        .expect("the lock");
    for sb in [&mut guarded, &mut locked] {
        sb.start_service().expect("service");
        ig(sb, &["protect", &sb.mnt.to_string_lossy()]);
        ig(sb, &["certify", "/usr/bin/restic"]);
    }
    std::thread::sleep(Duration::from_millis(800));

    let cases: [(&str, &Sandbox); 3] = [
        ("native volume", &native),
        ("guard, certified restic", &guarded),
        ("guard, certified restic, 14-day lock", &locked),
    ];
    let src = base.join(format!("imageguard-bench-src-{}", std::process::id()));
    let repos: Vec<PathBuf> = cases.iter().map(|(_, sb)| sb.mnt.join("repo")).collect();
    for ((_, sb), repo) in cases.iter().zip(&repos) {
        restic(sb, repo, &["init", "--quiet"]);
    }
    let mut times: Vec<Vec<Duration>> = vec![vec![]; cases.len()];
    for round in 0..ROUNDS {
        common::source_tree(&src, FILES, FILE_BYTES, round as u32);
        for (i, (_, sb)) in cases.iter().enumerate() {
            unsafe { libc::sync() };
            let t = restic(
                sb,
                &repos[i],
                &["backup", "--quiet", &src.to_string_lossy()],
            );
            times[i].push(t);
        }
    }
    let _ = std::fs::remove_dir_all(&src);
    println!(
        "restic backup of {FILES} changed files of {} KiB, {ROUNDS} rounds interleaved",
        FILE_BYTES / 1024
    );
    let median = |v: &Vec<Duration>| {
        let mut v = v.clone();
        v.sort();
        v[v.len() / 2]
    };
    let base_t = median(&times[1]);
    for ((label, _), t) in cases.iter().zip(&times) {
        let m = median(t);
        println!(
            "{label:<40} median {:>8.3} s  best {:>8.3} s  {:.2}x the guard without a lock",
            m.as_secs_f64(),
            t.iter().min().unwrap().as_secs_f64(),
            m.as_secs_f64() / base_t.as_secs_f64()
        );
    }
}
