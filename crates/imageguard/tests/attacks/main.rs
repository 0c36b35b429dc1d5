//! The attack suite: one guarded loop-mounted ext4 volume holding a real restic repository, a
//! real borg repository, `*.mrimg` images and 10 000 small backups, attacked by uncertified
//! processes (root included) with every technique below. Prints a table (technique, expected,
//! observed, backups) and fails when a technique is not stopped as expected or any backup byte
//! changed; then `restic check --read-data` and `borg check` must pass.
//!
//! The suite runs in a mount namespace of its own, with overlays over `/etc`, `/root` and
//! `/usr/lib/python3/dist-packages` (see `closure.rs`), so nothing it does reaches the host.
//!
//! Run (as root): `cargo test --release --test attacks`. What a FUSE guard cannot stop is in
//! SECURITY.md, with the mitigation the product applies; those techniques are tested there too.

#[path = "../common/mod.rs"]
mod common;

mod attacker;
mod closure;
mod definition_trust;
mod helpers;
mod repositories;
mod retention;
mod suite;
mod sync_tools;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--attack") {
        match attacker::run(&args[2..]) {
            Ok(()) => println!("ok"),
            Err(e) => println!("errno {e}"),
        }
        return;
    }
    // `cargo test -- --list`, or a filter that does not name this suite.
    if args.iter().any(|a| a == "--list")
        || args
            .iter()
            .skip(1)
            .any(|a| !a.starts_with('-') && !"attacks".contains(a.as_str()))
    {
        return;
    }
    // The closure attacks write into /etc, /root and a system site folder: only in a mount
    // namespace of the suite's own, over overlays, before any thread starts.
    let scratch = tempfile::Builder::new()
        .prefix("imageguard-overlays-")
        .tempdir()
        .expect("temporary folder");
    closure::isolate(scratch.path());
    let failures = suite::run();
    closure::release();
    drop(scratch);
    if failures > 0 {
        eprintln!("attack suite: {failures} failure(s)");
        std::process::exit(1);
    }
}
