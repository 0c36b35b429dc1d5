//! The Debian package (issue 11, item 8): built with cargo-deb from the release binary, lintian
//! finds no error, and installed with dpkg in a virtual machine (Debian's kernel under QEMU, this
//! machine's files with /usr, /etc and /var overlaid, so nothing here changes) it puts the
//! binary, the unit (which `systemd-analyze verify` accepts), the default configuration, the
//! manual page (`man imageguard` shows it) and the completions in place.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .unwrap()
        .to_path_buf()
}

#[test]
fn the_package_is_lintian_clean_and_installs() {
    let root = repo_root();
    let unit = Path::new("/usr/lib/systemd/system/imageguard.service");
    let here_before = unit.exists();
    let out = tempfile::Builder::new()
        .prefix("imageguard-deb-")
        .tempdir()
        .unwrap();
    assert_ok(
        "deb-assets.sh",
        &Command::new(root.join("dist/deb-assets.sh"))
            .arg(exe())
            .output()
            .unwrap(),
    );
    let started = std::time::Instant::now();
    let built = Command::new("cargo")
        .args([
            "deb",
            "-p",
            "imageguard",
            "--no-build",
            "--strip",
            "--fast",
            "--output",
        ])
        .arg(out.path())
        .current_dir(&root)
        .output()
        .expect("cargo deb (cargo install cargo-deb)");
    assert_ok("cargo deb", &built);
    let deb = std::fs::read_dir(out.path())
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .expect("a .deb");

    eprintln!("cargo deb: {:.1} s", started.elapsed().as_secs_f64());
    let started = std::time::Instant::now();
    let lint = Command::new("lintian")
        .args(["--fail-on", "error"])
        .arg(&deb)
        .output()
        .expect("lintian (apt-get install lintian)");
    assert!(
        lint.status.success() && !String::from_utf8_lossy(&lint.stdout).contains("\nE: "),
        "lintian: {}{}",
        String::from_utf8_lossy(&lint.stdout),
        stderr(&lint)
    );

    eprintln!("lintian: {:.1} s", started.elapsed().as_secs_f64());
    let started = std::time::Instant::now();
    // Installed in a virtual machine.
    let d = out.path().display();
    let vm = imageguard::vm::boot(
        out.path(),
        &format!(
            "exec > '{d}/guest.log' 2>&1\n\
             echo 'man-db man-db/auto-update boolean false' | debconf-set-selections\n\
             rm -f /var/lib/man-db/auto-update\n\
             dpkg -i '{deb}' && echo INSTALLED\n\
             test -x /usr/bin/imageguard && imageguard --version\n\
             test -f /etc/imageguard/imageguard.toml && echo CONFIG\n\
             test -f /usr/share/bash-completion/completions/imageguard && echo COMPLETIONS\n\
             MANPAGER=cat man imageguard | head -5\n\
             systemd-analyze verify /usr/lib/systemd/system/imageguard.service && echo UNIT-VERIFIED\n\
             grep -q 'imageguard stop' /var/lib/dpkg/info/imageguard.prerm && echo PRERM-STOPS\n\
             dpkg -r imageguard && echo REMOVED",
            deb = deb.display()
        ),
        "2G",
        &["/usr", "/etc", "/var"],
        std::time::Duration::from_secs(1800),
    )
    .expect("vng (pip install virtme-ng)");
    eprintln!("install in a VM: {:.1} s", started.elapsed().as_secs_f64());
    let log = std::fs::read_to_string(out.path().join("guest.log")).unwrap_or_default();
    for expected in [
        "INSTALLED",
        "imageguard 0.1.0",
        "CONFIG",
        "COMPLETIONS",
        "imageguard(8)",
        "Ransomware",
        "UNIT-VERIFIED",
        "PRERM-STOPS",
        "REMOVED",
    ] {
        assert!(
            log.contains(expected),
            "{expected} missing in the guest:\n{log}\nvng: {}",
            stderr(&vm)
        );
    }
    // Nothing of it reached this machine.
    assert_eq!(unit.exists(), here_before);
}
