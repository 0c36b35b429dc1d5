//! A virtual machine for the tests and benchmarks that need what this machine's kernel refuses
//! (the bpf LSM): Debian's kernel from /boot booted under QEMU by virtme-ng, emulated (TCG: KVM
//! guests hang on this machine kind), seeing this machine's files, running one shell script and
//! writing what it has to say into a shared folder. Like [`crate::sandbox`], for tests only.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

/// The environment variable that tells a program it runs inside the virtual machine; its
/// value is the folder shared with the host.
pub const IN_VM: &str = "IMAGEGUARD_IN_VM";

/// The newest kernel image in /boot.
pub fn kernel() -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/boot")
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-"))
                })
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found
        .pop()
        .expect("no kernel in /boot for the virtual machine (apt-get install linux-image-amd64)")
}

/// Boot the machine with `memory` (e.g. "2G"), the folder `shared` writable from inside and
/// each of `overlays` (e.g. "/etc") writable through an overlay that vanishes with it, run
/// `script` there as root (after loading the fuse and loop modules; `IN_VM` names the shared
/// folder), and power off; given up after `limit`. What vng said is in the output (the script's
/// own output belongs in the shared folder).
pub fn boot(
    shared: &Path,
    script: &str,
    memory: &str,
    overlays: &[&str],
    limit: Duration,
) -> std::io::Result<Output> {
    use std::os::unix::fs::PermissionsExt;
    let file = shared.join("run.sh");
    std::fs::write(
        &file,
        format!(
            "#!/bin/sh\nmodprobe fuse; modprobe loop\nexport {IN_VM}='{}'\n{script}\n",
            shared.display()
        ),
    )?;
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755))?;
    Command::new("timeout")
        .arg(limit.as_secs().to_string())
        .arg("vng")
        .arg("--disable-kvm")
        .arg("--run")
        .arg(kernel())
        .arg("--memory")
        .arg(memory)
        .arg(format!("--rwdir={}", shared.display()))
        .args(overlays.iter().map(|o| format!("--overlay-rwdir={o}")))
        .arg("--exec")
        .arg(&file)
        .output()
}
