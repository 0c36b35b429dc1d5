//! Benchmark (root only): what the sync rules cost a mirror. `rsync -a --delete` from a
//! backup destination prunes 3 000 backup files from an offsite copy, side by side in one run:
//! - on a native (unguarded) loop volume;
//! - on a guarded volume, by a certified copy of rsync (every delete: one identity check);
//! - on the same guarded volume, by rsync added as a sync tool (every delete: the identity
//!   check, then the rules: its command line read once per process, the folders placed).
//!
//! Rounds are interleaved; the median and the best of each are printed with the ratios.
//! Run: `cargo bench -p imageguard --bench sync`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use imageguard::sandbox::Sandbox;

mod common;

use common::ig;

const FILES: usize = 3_000;
const ROUNDS: usize = 5;

/// Fill `offsite` with [`FILES`] small backup files the destination does not have.
fn stale_copies(offsite: &Path) {
    std::fs::create_dir_all(offsite).unwrap();
    for i in 0..FILES {
        std::fs::write(offsite.join(format!("old-{i}.mrimg")), i.to_le_bytes()).unwrap();
    }
}

fn mirror(rsync: &Path, dest: &Path, offsite: &Path) -> Duration {
    let t = Instant::now();
    let o = Command::new(rsync)
        .args(["-a", "--delete"])
        .arg(format!("{}/", dest.display()))
        .arg(format!("{}/", offsite.display()))
        .env_remove("LD_LIBRARY_PATH")
        .output()
        .expect("rsync");
    let d = t.elapsed();
    assert!(
        o.status.success(),
        "{}: {}",
        rsync.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    let left = std::fs::read_dir(offsite).unwrap().count();
    assert_eq!(left, 1, "the mirror left {left} files");
    d
}

fn main() {
    common::start();
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_imageguard"));
    let base = common::image_base();
    let native = Sandbox::new_in(&base, &exe, 512).expect("native volume");
    let mut guarded = Sandbox::new_in(&base, &exe, 512).expect("guarded volume");
    let dests: Vec<PathBuf> = [&native, &guarded]
        .iter()
        .map(|sb| sb.mnt.join("dest"))
        .collect();
    for d in &dests {
        std::fs::create_dir_all(d).unwrap();
        std::fs::write(d.join("keep.mrimg"), b"the destination's backup").unwrap();
    }
    guarded
        .edit_config(|t| t.replace("allow = false", "allow = true"))
        .unwrap();
    guarded.add_definition("bench", &dests[1]).unwrap();
    guarded.start_service().expect("service");
    ig(&guarded, &["protect", &guarded.mnt.to_string_lossy()]);
    ig(
        &guarded,
        &["certify", "--sync-tool", "rsync", "/usr/bin/rsync"],
    );
    let certified = guarded.path().join("rsync-certified");
    std::fs::copy("/usr/bin/rsync", &certified).unwrap();
    ig(&guarded, &["certify", &certified.to_string_lossy()]);
    // This process fills the offsite copies: certified, so it may.
    ig(
        &guarded,
        &[
            "certify",
            &std::env::current_exe().unwrap().to_string_lossy(),
        ],
    );
    std::thread::sleep(Duration::from_millis(800));

    let rsync = PathBuf::from("/usr/bin/rsync");
    let cases: [(&str, &Sandbox, &Path); 3] = [
        ("native volume, rsync", &native, &rsync),
        ("guard, certified rsync", &guarded, &certified),
        ("guard, rsync as a sync tool", &guarded, &rsync),
    ];
    let mut times: Vec<Vec<Duration>> = vec![vec![]; cases.len()];
    for round in 0..ROUNDS {
        for (i, (_, sb, program)) in cases.iter().enumerate() {
            let offsite = sb.mnt.join(format!("offsite-{round}-{i}"));
            stale_copies(&offsite);
            unsafe { libc::sync() };
            times[i].push(mirror(program, &sb.mnt.join("dest"), &offsite));
        }
    }
    let median = |v: &Vec<Duration>| {
        let mut v = v.clone();
        v.sort();
        v[v.len() / 2]
    };
    let best = |v: &Vec<Duration>| v.iter().copied().min().unwrap_or_default();
    println!(
        "\nrsync -a --delete pruning {FILES} backup files ({ROUNDS} interleaved rounds)\n{:<32} {:>10} {:>10} {:>14} {:>14}",
        "", "median", "best", "vs native", "vs certified"
    );
    for (i, (name, _, _)) in cases.iter().enumerate() {
        let m = median(&times[i]).as_secs_f64();
        println!(
            "{name:<32} {:>9.3}s {:>9.3}s {:>13.2}x {:>13.2}x",
            m,
            best(&times[i]).as_secs_f64(),
            m / median(&times[0]).as_secs_f64(),
            m / median(&times[1]).as_secs_f64(),
        );
    }
    drop(guarded);
    drop(native);
}
