//! 10 000 definition files (6 000 borgmatic files, 4 000 systemd units running restic) found
//! and parsed; target: under a second (`cargo bench -p imageguard --bench resolve` adds the
//! resolution against the mount table). Run: `cargo bench -p imageguard-definitions --bench
//! discover`.

use std::time::Instant;

use imageguard_definitions::{corpus, discover::discover};

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let loc = corpus::write(d.path()).unwrap();
    // Caches warm (as on a running machine), then measured.
    let _ = discover(&loc);
    let t = Instant::now();
    let found = discover(&loc);
    let took = t.elapsed();
    assert_eq!(found.definitions.len(), corpus::DEFINITIONS);
    assert!(found.problems.is_empty());
    println!(
        "{} definition files: {} definitions found and parsed in {:.3} s (target < 1 s)",
        corpus::FILES,
        found.definitions.len(),
        took.as_secs_f64()
    );
}
