//! What the tests that boot a virtual machine share (the machine itself is
//! `imageguard::vm`): running this very test binary's test inside it.

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
/// binary's test `name` inside it with `imageguard::vm::IN_VM` set.
pub fn run_this_test_inside(name: &str) -> GuestRun {
    let shared = tempfile::Builder::new()
        .prefix("imageguard-vm-")
        .tempdir()
        .unwrap();
    let me = std::env::current_exe().unwrap();
    let out = imageguard::vm::boot(
        shared.path(),
        &format!(
            "cat /sys/kernel/security/lsm > '{0}/lsm'\n\
             '{1}' --exact {name} --nocapture > '{0}/guest.log' 2>&1",
            shared.path().display(),
            me.display()
        ),
        "2G",
        &[],
        std::time::Duration::from_secs(3600),
    )
    .expect("vng (pip install virtme-ng; apt-get install qemu-system-x86 busybox-static)");
    let read = |f: &str| std::fs::read_to_string(shared.path().join(f)).unwrap_or_default();
    GuestRun {
        verdict: read(VERDICT).trim().to_string(),
        log: read("guest.log"),
        lsm: read("lsm"),
        vng: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}
