//! 10 000 definition files (6 000 borgmatic files, 4 000 systemd units running restic) found
//! and parsed; target: under a second. Run: `cargo bench -p imageguard-definitions --bench
//! discover`.

use std::time::Instant;

use imageguard_definitions::discover::{discover, Locations};

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let r = d.path();
    let bm = r.join("borgmatic.d");
    let units = r.join("units");
    std::fs::create_dir_all(&bm).unwrap();
    std::fs::create_dir_all(&units).unwrap();
    for i in 0..6000 {
        std::fs::write(
            bm.join(format!("job{i}.yaml")),
            format!(
                "source_directories:\n  - /home\n  - /etc\nrepositories:\n  - path: /mnt/usb{}/borg{i}\n    label: usb\n  - path: ssh://backup@nas/./host{i}\n",
                i % 7
            ),
        )
        .unwrap();
    }
    for i in 0..4000 {
        std::fs::write(
            units.join(format!("restic{i}.service")),
            format!("[Unit]\nDescription=restic {i}\n\n[Service]\nType=oneshot\nEnvironment=RESTIC_PASSWORD_FILE=/etc/restic/pw\nExecStart=/usr/bin/restic -r /mnt/restic{} backup /home /etc\n", i % 5),
        )
        .unwrap();
    }
    let passwd = r.join("passwd");
    std::fs::write(&passwd, "").unwrap();
    let loc = Locations {
        borgmatic: vec![bm],
        rsnapshot: vec![],
        timeshift: vec![],
        systemd_units: vec![units],
        passwd,
    };
    // Caches warm (as on a running machine), then measured.
    let _ = discover(&loc);
    let t = Instant::now();
    let found = discover(&loc);
    let took = t.elapsed();
    assert_eq!(found.definitions.len(), 6000 * 2 + 4000);
    assert!(found.problems.is_empty());
    println!(
        "10 000 definition files: {} definitions found and parsed in {:.3} s (target < 1 s)",
        found.definitions.len(),
        took.as_secs_f64()
    );
}
