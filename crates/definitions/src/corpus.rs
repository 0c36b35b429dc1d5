//! A synthetic set of definition files for the benchmarks (not used by the product): 6 000
//! borgmatic files, each with a local and a remote repository, and 4 000 systemd units running
//! restic, under one folder, with the [`Locations`] that find them.

use std::io;
use std::path::Path;

use crate::discover::Locations;

/// Definition files written.
pub const FILES: usize = 10_000;
/// Definitions they hold.
pub const DEFINITIONS: usize = 6000 * 2 + 4000;

/// Write the corpus under `root`; where to look for it.
pub fn write(root: &Path) -> io::Result<Locations> {
    let bm = root.join("borgmatic.d");
    let units = root.join("units");
    std::fs::create_dir_all(&bm)?;
    std::fs::create_dir_all(&units)?;
    for i in 0..6000 {
        std::fs::write(
            bm.join(format!("job{i}.yaml")),
            format!(
                "source_directories:\n  - /home\n  - /etc\nrepositories:\n  - path: /mnt/usb{}/borg{i}\n    label: usb\n  - path: ssh://backup@nas/./host{i}\n",
                i % 7
            ),
        )?;
    }
    for i in 0..4000 {
        std::fs::write(
            units.join(format!("restic{i}.service")),
            format!("[Unit]\nDescription=restic {i}\n\n[Service]\nType=oneshot\nEnvironment=RESTIC_PASSWORD_FILE=/etc/restic/pw\nExecStart=/usr/bin/restic -r /mnt/restic{} backup /home /etc\n", i % 5),
        )?;
    }
    let passwd = root.join("passwd");
    std::fs::write(&passwd, "")?;
    Ok(Locations {
        borgmatic: vec![bm],
        rsnapshot: vec![],
        timeshift: vec![],
        systemd_units: vec![units],
        passwd,
    })
}
