//! The README's first command: `imageguard demo` passes, under cargo's environment (which, as
//! with `cargo run`, carries LD_LIBRARY_PATH), and leaves nothing mounted or attached.

use std::process::Command;

#[test]
fn demo_passes_and_cleans_up() {
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "the demo mounts file systems and must run as root"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_imageguard"))
        .arg("demo")
        .env("LD_LIBRARY_PATH", "/nonexistent")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("demo passed"), "{stdout}");
    assert!(!stdout.contains("NOT BLOCKED"), "{stdout}");
    let dir = stdout.lines().find_map(|l| {
        l.split_whitespace()
            .find(|w| w.contains("/imageguard-"))
            .map(|w| w.to_string())
    });
    if let Some(d) = dir {
        let prefix = d.split("/mnt").next().unwrap_or(&d).to_string();
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert!(!mounts.contains(&prefix), "demo left mounts under {prefix}");
    }
}
