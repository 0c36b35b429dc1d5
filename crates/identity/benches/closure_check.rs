//! What the closure costs a certified caller, per request and per process, side by side with
//! the `/proc` read every checked request already made (run: `cargo bench -p
//! imageguard-identity --bench closure_check`):
//! - `watch.check`: the poll of the closure watch (nothing changed), per request;
//! - `procfs::status_facts`: one read of `/proc/PID/status` (tracer, executable memory);
//! - `resolve`: a whole certified-caller check once the process is known;
//! - recording borg's closure, and comparing it with the disk (per new process, at most once
//!   per process start).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use imageguard_identity::closure::{verify, View};
use imageguard_identity::{certify_path, procfs, CallerResolver, ClosureOptions};
use imageguard_policy::CertifiedList;

fn per_call(n: u32, mut f: impl FnMut()) -> Duration {
    let t = Instant::now();
    for _ in 0..n {
        f();
    }
    t.elapsed() / n
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let prog = dir.path().join("certsleep");
    std::fs::copy("/bin/sleep", &prog).unwrap();
    let mut list = CertifiedList::default();
    list.upsert(
        certify_path(&prog, &ClosureOptions::default(), 0)
            .unwrap()
            .entry,
    );
    let t = Instant::now();
    let borg = certify_path(Path::new("/usr/bin/borg"), &ClosureOptions::default(), 0).unwrap();
    let record = t.elapsed();
    let closure = borg.entry.closure.clone().unwrap();
    list.upsert(borg.entry);
    let resolver = CallerResolver::new(list).unwrap();
    let mut child = Command::new(&prog).arg("30").env_clear().spawn().unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let pid = child.id();
    assert!(resolver.resolve(pid).is_certified(), "the certified child");
    let n = 200_000;
    let watch = resolver.watch().clone();
    let entry = prog.to_string_lossy().into_owned();
    let poll = per_call(n, || assert!(watch.check(&entry).is_ok()));
    let status = per_call(n, || {
        procfs::status_facts(pid).unwrap();
    });
    let resolve = per_call(n / 4, || assert!(resolver.resolve(pid).is_certified()));
    let t = Instant::now();
    assert_eq!(verify(&closure, &View::own()), None);
    let compare = t.elapsed();
    let _ = child.kill();
    let _ = child.wait();
    println!("\nper checked request (a certified caller, nothing changed):");
    println!(
        "  closure watch poll        {:>8.2} us",
        poll.as_secs_f64() * 1e6
    );
    println!(
        "  /proc/PID/status read     {:>8.2} us",
        status.as_secs_f64() * 1e6
    );
    println!(
        "  whole resolve             {:>8.2} us  (poll / status read = {:.2}x)",
        resolve.as_secs_f64() * 1e6,
        poll.as_secs_f64() / status.as_secs_f64()
    );
    println!(
        "borg ({} files, {} folders): recorded in {:.0} ms, compared with the disk in {:.1} ms",
        closure.files.len(),
        closure.dirs.len(),
        record.as_secs_f64() * 1e3,
        compare.as_secs_f64() * 1e3
    );
}
