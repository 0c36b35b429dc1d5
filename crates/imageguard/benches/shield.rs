//! Benchmark (root only): what the kernel shield costs a backup. On one guarded volume, side by
//! side in one run, rounds interleaved (the order alternating each round):
//! - the service with `[guard] kernel_shield = "off"`: the FUSE guard alone;
//! - the service with `kernel_shield = "auto"`, the shield on (checked in `status`).
//!
//! Each round copies a fresh tree into the volume with `rsync -a` and backs a changed tree up
//! with a certified `restic backup`, then stops the service, which gives the volume back and
//! unpins the shield, so that the next case runs with nothing of it attached.
//!
//! Where this kernel cannot run the shield (no bpf LSM, or BPF trampolines refused), the
//! benchmark boots Debian's kernel with virtme-ng under QEMU (as the VM tests do) and runs itself
//! inside; the figures are then emulated time, and only their ratios mean anything.
//! Run: `cargo bench -p imageguard --bench shield`.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use imageguard::sandbox::Sandbox;
use imageguard::vm::IN_VM;

mod common;

use common::ig;

const FILES: usize = 300;
const FILE_BYTES: usize = 16 * 1024;
const ROUNDS: usize = 5;

fn timed(what: &str, cmd: &mut Command) -> Duration {
    let t = Instant::now();
    let o = cmd
        .env_remove("LD_LIBRARY_PATH")
        .output()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let d = t.elapsed();
    assert!(
        o.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    d
}

/// The service started with `kernel_shield = mode`, the volume protected and restic certified.
fn start(sb: &mut Sandbox, mode: &str) {
    sb.edit_config(|t| {
        t.lines()
            .map(|l| {
                if l.starts_with("kernel_shield =") {
                    format!("kernel_shield = \"{mode}\"")
                } else {
                    l.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
            + "\n"
    })
    .unwrap();
    sb.start_service().expect("service");
    ig(sb, &["protect", &sb.mnt.to_string_lossy()]);
    ig(sb, &["certify", "/usr/bin/restic"]);
    let status: serde_json::Value =
        serde_json::from_slice(&sb.imageguard(&["status", "--json"]).unwrap().stdout).unwrap();
    assert_eq!(
        status["kernel_shield_on"],
        mode == "auto",
        "kernel_shield = {mode}: {}",
        status["kernel_shield"]
    );
}

fn inside() {
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_imageguard"));
    let base = common::image_base();
    let mut sb = Sandbox::new_in(&base, &exe, 1024).expect("volume");
    let src = sb.path().join("src");
    let repo = sb.mnt.join("repo");
    let cache = sb.path().join("restic-cache");
    let restic = |args: &[&str]| {
        let mut c = Command::new("restic");
        c.args(args)
            .env("RESTIC_PASSWORD", "bench")
            .env("RESTIC_REPOSITORY", &repo)
            .env("RESTIC_CACHE_DIR", &cache);
        c
    };
    let modes = ["off", "auto"];
    let mut rsync_t: Vec<Vec<Duration>> = vec![vec![]; 2];
    let mut restic_t: Vec<Vec<Duration>> = vec![vec![]; 2];
    start(&mut sb, "off");
    timed("restic init", &mut restic(&["init", "--quiet"]));
    sb.stop_service().unwrap();
    for round in 0..ROUNDS {
        common::source_tree(&src, FILES, FILE_BYTES, round as u32);
        let order: [usize; 2] = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for i in order {
            start(&mut sb, modes[i]);
            unsafe { libc::sync() };
            let dest = sb.mnt.join(format!("tree-{}-{round}", modes[i]));
            rsync_t[i].push(timed(
                "rsync",
                Command::new("rsync")
                    .arg("-a")
                    .arg(format!("{}/", src.display()))
                    .arg(&dest),
            ));
            unsafe { libc::sync() };
            restic_t[i].push(timed(
                "restic backup",
                &mut restic(&["backup", "--quiet", &src.to_string_lossy()]),
            ));
            sb.stop_service().unwrap();
        }
    }
    let median = |v: &Vec<Duration>| {
        let mut v = v.clone();
        v.sort();
        v[v.len() / 2]
    };
    println!(
        "{FILES} files of {} KiB, {ROUNDS} rounds interleaved, on one guarded volume",
        FILE_BYTES / 1024
    );
    for (what, t) in [
        ("rsync -a of a tree", &rsync_t),
        ("restic backup", &restic_t),
    ] {
        let off = median(&t[0]);
        let on = median(&t[1]);
        println!(
            "{what:<20} guard alone: median {:>7.3} s  best {:>7.3} s | shield on: median {:>7.3} s  best {:>7.3} s | {:.3}x",
            off.as_secs_f64(),
            t[0].iter().min().unwrap().as_secs_f64(),
            on.as_secs_f64(),
            t[1].iter().min().unwrap().as_secs_f64(),
            on.as_secs_f64() / off.as_secs_f64()
        );
    }
}

/// Whether the shield can be loaded on this kernel: the bpf LSM is active and trampolines are
/// allowed (a probe load of the shield itself).
fn shield_here() -> bool {
    imageguard_shield::bpf_lsm_active()
        && imageguard_shield::Shield::load(imageguard_shield::Task::current().unwrap()).is_ok()
}

/// Boot Debian's newest kernel in /boot under QEMU (TCG) and run this benchmark inside it.
fn in_a_vm() {
    let shared = tempfile::Builder::new()
        .prefix("imageguard-bench-vm-")
        .tempdir()
        .unwrap();
    eprintln!(
        "the shield cannot load on this kernel: running in a VM ({})",
        imageguard::vm::kernel().display()
    );
    let o = imageguard::vm::boot(
        shared.path(),
        &format!(
            "'{1}' > '{0}/out' 2>&1",
            shared.path().display(),
            std::env::current_exe().unwrap().display()
        ),
        "3G",
        &[],
        Duration::from_secs(4 * 3600),
    )
    .expect("vng (pip install virtme-ng; apt-get install qemu-system-x86)");
    let out = std::fs::read_to_string(shared.path().join("out")).unwrap_or_default();
    print!("{out}");
    if !out.contains("restic backup ") {
        eprintln!("{}", String::from_utf8_lossy(&o.stderr));
        std::process::exit(1);
    }
}

fn main() {
    common::start();
    if std::env::var_os(IN_VM).is_some() || shield_here() {
        inside();
    } else {
        in_a_vm();
    }
}
