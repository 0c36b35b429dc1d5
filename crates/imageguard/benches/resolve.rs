//! 10 000 definition files found, parsed and resolved against this machine's mount table (each
//! destination to the mount holding it, local or network, present or not): what the service
//! does at start and after every change; target: under a second. Run: `cargo bench -p
//! imageguard --bench resolve`.

use std::time::Instant;

use imageguard::backup_drives::resolve;
use imageguard_definitions::{corpus, discover::discover};
use imageguard_volume::MountTable;

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let loc = corpus::write(d.path()).unwrap();
    let _ = resolve(discover(&loc), &MountTable::read().unwrap(), None, None);
    let t = Instant::now();
    let table = MountTable::read().unwrap();
    let found = discover(&loc);
    let parsed = t.elapsed();
    let report = resolve(found, &table, None, None);
    let took = t.elapsed();
    assert_eq!(report.destinations.len(), corpus::DEFINITIONS);
    println!(
        "{} definition files: {} destinations found and parsed in {:.3} s, resolved in {:.3} s \
         more: {:.3} s in all (target < 1 s)",
        corpus::FILES,
        report.destinations.len(),
        parsed.as_secs_f64(),
        (took - parsed).as_secs_f64(),
        took.as_secs_f64()
    );
}
