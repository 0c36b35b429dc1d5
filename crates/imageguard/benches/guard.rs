//! Benchmark harness (root only): the same workloads side by side in one run on
//! - native: a loop-mounted ext4 volume,
//! - guard: an identical volume protected by imageguard,
//! - bindfs: a bindfs mount over a folder of the native volume (a FUSE baseline);
//!
//! and prints the ratios to native. Run: `cargo bench -p imageguard --bench guard`.
//!
//! Workloads, by this process, certified on the guarded volume:
//! - sequential write of 1 GiB (1 MiB writes, then fdatasync), as throughput;
//! - create + write 4 KiB + close, stat, unlink of 20 000 files, ordinary and backup-named.
//!
//! Both volumes are loop devices over images in /dev/shm, caches are dropped before every
//! measurement, and each workload reports the median and the best of seven interleaved rounds.
//!
//! `-- --haltpoll NS` sets the guest's `guest_halt_poll_ns` (cpuidle-haltpoll, virtual machines)
//! for the run and restores it afterwards: on a VM, waking an idle vCPU costs more than the FUSE
//! request itself, and this shows how much of the guard's metadata cost is that.

use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use imageguard::sandbox::Sandbox;

mod common;

use common::ig;

const SEQ_BYTES: u64 = 1 << 30;
const FILES: usize = 20_000;
const ROUNDS: usize = 7;

/// Start each measurement from the same state: nothing dirty, nothing cached.
fn quiesce() {
    unsafe { libc::sync() };
    let _ = fs::write("/proc/sys/vm/drop_caches", "3");
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn seq_write(dir: &Path) -> Duration {
    let p = dir.join("seq.mrimg");
    let buf = vec![0x5au8; 1 << 20];
    let t = Instant::now();
    let f = File::create(&p).expect("create");
    let mut off = 0;
    while off < SEQ_BYTES {
        f.write_all_at(&buf, off).expect("write");
        off += buf.len() as u64;
    }
    f.sync_data().expect("fdatasync");
    let d = t.elapsed();
    drop(f);
    fs::remove_file(&p).expect("remove");
    d
}

fn metadata(dir: &Path, ext: &str) -> Duration {
    let d = dir.join(format!("meta-{ext}"));
    fs::create_dir_all(&d).unwrap();
    let block = vec![7u8; 4096];
    let names: Vec<PathBuf> = (0..FILES).map(|i| d.join(format!("f{i}.{ext}"))).collect();
    let t = Instant::now();
    for n in &names {
        let mut f = File::create(n).expect("create");
        f.write_all(&block).expect("write");
    }
    for n in &names {
        fs::metadata(n).expect("stat");
    }
    for n in &names {
        fs::remove_file(n).expect("unlink");
    }
    let e = t.elapsed();
    fs::remove_dir(&d).unwrap();
    e
}

const HALTPOLL: &str = "/sys/module/haltpoll/parameters/guest_halt_poll_ns";

/// Restores `guest_halt_poll_ns` when the run ends.
struct HaltPoll(String);

impl Drop for HaltPoll {
    fn drop(&mut self) {
        let _ = fs::write(HALTPOLL, &self.0);
    }
}

fn haltpoll_from_args() -> Option<HaltPoll> {
    let args: Vec<String> = std::env::args().collect();
    let ns = args
        .iter()
        .position(|a| a == "--haltpoll")
        .and_then(|i| args.get(i + 1))?;
    let old = fs::read_to_string(HALTPOLL).unwrap_or_else(|e| {
        panic!("--haltpoll needs the cpuidle-haltpoll driver ({HALTPOLL}: {e})")
    });
    fs::write(HALTPOLL, ns).expect("setting guest_halt_poll_ns");
    eprintln!(
        "guest_halt_poll_ns = {ns} for this run (was {})",
        old.trim()
    );
    Some(HaltPoll(old.trim().to_string()))
}

/// One line of the table: times per target and their ratios to native (throughput for
/// sequential writes, higher is better; time otherwise, lower is better).
fn print_row(label: &str, throughput: bool, t: &[Duration]) {
    let secs = |i: usize| {
        t.get(i)
            .map(|d| format!("{:.3}s", d.as_secs_f64()))
            .unwrap_or_else(|| "-".into())
    };
    let ratio = |i: usize| {
        t.get(i)
            .map(|d| {
                if throughput {
                    format!("{:.2}x thr", t[0].as_secs_f64() / d.as_secs_f64())
                } else {
                    format!("{:.2}x time", d.as_secs_f64() / t[0].as_secs_f64())
                }
            })
            .unwrap_or_else(|| "-".into())
    };
    println!(
        "{:<34} {:>10} {:>10} {:>10} {:>14} {:>14}",
        label,
        secs(0),
        secs(1),
        secs(2),
        ratio(1),
        ratio(2)
    );
}

fn main() {
    common::start();
    let _haltpoll = haltpoll_from_args();
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_imageguard"));
    let base = common::image_base();
    eprintln!(
        "setting up in {}: two 3 GiB ext4 loop volumes, one guarded, and a bindfs mount",
        base.display()
    );
    let native = Sandbox::new_in(&base, &exe, 3072).expect("native volume");
    let mut guarded = Sandbox::new_in(&base, &exe, 3072).expect("guarded volume");
    guarded.start_service().expect("service");
    ig(&guarded, &["protect", &guarded.mnt.to_string_lossy()]);
    ig(
        &guarded,
        &[
            "certify",
            &std::env::current_exe().unwrap().to_string_lossy(),
        ],
    );
    let native_dir = native.mnt.join("native");
    let bind_src = native.mnt.join("bindsrc");
    let bind_mnt = native.path().join("bindfs");
    for d in [&native_dir, &bind_src, &bind_mnt] {
        fs::create_dir_all(d).unwrap();
    }
    let bindfs = Command::new("bindfs")
        .arg(&bind_src)
        .arg(&bind_mnt)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !bindfs {
        eprintln!("bindfs unavailable (apt-get install bindfs): its column stays empty");
    }
    let guard_dir = guarded.mnt.join("bench");
    fs::create_dir_all(&guard_dir).unwrap();

    let mut targets: Vec<(&str, PathBuf)> =
        vec![("native", native_dir.clone()), ("guard", guard_dir.clone())];
    if bindfs {
        targets.push(("bindfs", bind_mnt.clone()));
    }
    type Workload = (&'static str, fn(&Path) -> Duration);
    let workloads: [Workload; 3] = [
        ("seq write 1 GiB", seq_write),
        ("20k files (ordinary)", |d| metadata(d, "dat")),
        ("20k files (backup-named)", |d| metadata(d, "mrimg")),
    ];
    println!(
        "\n{:<34} {:>10} {:>10} {:>10} {:>14} {:>14}",
        format!("workload ({ROUNDS} rounds)"),
        "native",
        "guard",
        "bindfs",
        "guard/native",
        "bindfs/native"
    );
    for (name, work) in workloads {
        let mut times: Vec<Vec<Duration>> = vec![vec![]; targets.len()];
        for _ in 0..ROUNDS {
            // Interleave the targets so drift affects them alike.
            for (i, (_, dir)) in targets.iter().enumerate() {
                quiesce();
                times[i].push(work(dir));
            }
        }
        // The median, and the best round: this VM's host adds bimodal noise (a round can take
        // 4x longer for reasons outside the guest), which the best round filters out.
        let best = |v: &Vec<Duration>| v.iter().copied().min().unwrap_or_default();
        let medians: Vec<Duration> = times.iter().cloned().map(median).collect();
        let bests: Vec<Duration> = times.iter().map(best).collect();
        print_row(
            &format!("{name}, median"),
            name.starts_with("seq"),
            &medians,
        );
        print_row(&format!("{name}, best"), name.starts_with("seq"), &bests);
    }
    let st = guarded.imageguard(&["status"]).unwrap();
    let status = String::from_utf8_lossy(&st.stdout);
    if let Some(l) = status.lines().find(|l| l.contains("data path")) {
        println!("\nguard {}", l.trim());
    }
    if bindfs {
        let _ = Command::new("umount").arg(&bind_mnt).status();
    }
    drop(guarded);
    drop(native);
}
