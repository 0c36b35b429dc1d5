//! What the tests that boot a virtual machine share: Debian's kernel to boot (virtme-ng runs it
//! under QEMU with this machine's files).

use std::path::PathBuf;

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

/// The environment variable that tells a test it runs inside the virtual machine; its value
/// is the folder shared with the host.
pub const IN_VM: &str = "IMAGEGUARD_IN_VM";

/// The file in the shared folder a test inside writes its verdict to.
pub const VERDICT: &str = "verdict";

/// What a test run inside the virtual machine left in the shared folder.
pub struct GuestRun {
    /// What the test wrote as its verdict (`verdict` in the shared folder).
    pub verdict: String,
    /// Everything the test printed inside.
    pub log: String,
    /// The guest's active LSMs.
    pub lsm: String,
    /// What vng said (on failure, why the guest did not run).
    pub vng: String,
}

/// Boot Debian's kernel under QEMU (TCG) with this machine's files, and run this very test
/// binary's test `name` inside it with [`IN_VM`] set (loop and fuse modules loaded first).
pub fn run_this_test_inside(name: &str) -> GuestRun {
    use std::os::unix::fs::PermissionsExt;
    let shared = tempfile::Builder::new()
        .prefix("imageguard-vm-")
        .tempdir()
        .unwrap();
    let me = std::env::current_exe().unwrap();
    let script = shared.path().join("run.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nmodprobe fuse; modprobe loop\ncat /sys/kernel/security/lsm > '{0}/lsm'\n\
             {IN_VM}='{0}' '{1}' --exact {name} --nocapture > '{0}/guest.log' 2>&1\n",
            shared.path().display(),
            me.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = std::process::Command::new("vng")
        .arg("--disable-kvm")
        .arg("--run")
        .arg(kernel())
        .arg("--memory")
        .arg("2G")
        .arg(format!("--rwdir={}", shared.path().display()))
        .arg("--exec")
        .arg(&script)
        .output()
        .expect("vng (pip install virtme-ng; apt-get install qemu-system-x86 busybox-static)");
    let read = |f: &str| std::fs::read_to_string(shared.path().join(f)).unwrap_or_default();
    GuestRun {
        verdict: read(VERDICT).trim().to_string(),
        log: read("guest.log"),
        lsm: read("lsm"),
        vng: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}
