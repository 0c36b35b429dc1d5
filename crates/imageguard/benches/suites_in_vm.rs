//! The attack suite and the fault suite with the kernel shield on, run by hand (an hour or more
//! under emulation: too long for `cargo test`, which runs both without the shield on this
//! machine kind and the shield's own attacks in a VM in tests/kernel_shield.rs):
//!
//! `cargo bench -p imageguard --bench suites_in_vm`
//! (`IMAGEGUARD_SUITES=attacks` or `=faults` runs one; `-- NAME` filters the fault suite's tests;
//! `IMAGEGUARD_ATTACK_GROUPS=retention` runs that group of the attack suite alone)
//!
//! Builds both suites' test binaries, boots Debian's kernel under QEMU (TCG) where this kernel
//! cannot load the shield (`imageguard::vm`), and runs them inside, one after the other, on a
//! tmpfs (the attack suite's overlays cannot sit on the VM's overlaid /tmp), the fault suite one
//! test at a time. Fails when either suite fails, or when the attack suite did not meet the
//! shield. Prints both suites' output and how long each took.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// The test binaries of `names` (imageguard's tests), built in release mode.
fn test_binaries(names: &[&str]) -> Vec<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["test", "--release", "-p", "imageguard", "--no-run"])
        .arg("--message-format=json");
    for n in names {
        cmd.args(["--test", n]);
    }
    let out = cmd.output().expect("cargo");
    assert!(
        out.status.success(),
        "building the suites: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    names
        .iter()
        .map(|n| {
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .find(|v| {
                    v["reason"] == "compiler-artifact"
                        && v["target"]["name"] == *n
                        && v["executable"].is_string()
                })
                .and_then(|v| v["executable"].as_str().map(PathBuf::from))
                .unwrap_or_else(|| panic!("no test binary for {n}"))
        })
        .collect()
}

fn main() {
    let started = Instant::now();
    // IMAGEGUARD_SUITES=attacks (or faults) runs that one alone; its arguments after `--`
    // (`cargo bench ... -- a_test_name`) go to the fault suite's test harness.
    let only = std::env::var("IMAGEGUARD_SUITES").unwrap_or_default();
    let wanted = |s: &str| only.is_empty() || only.split(',').any(|o| o == s);
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let [attacks, faults] =
        <[PathBuf; 2]>::try_from(test_binaries(&["attacks", "faults"])).expect("two binaries");
    let shared = tempfile::Builder::new()
        .prefix("imageguard-suites-vm-")
        .tempdir()
        .unwrap();
    let d = shared.path().display();
    eprintln!(
        "running the attack and fault suites with the kernel shield in a VM ({}); this takes long",
        imageguard::vm::kernel().display()
    );
    let mut script = format!(
        "cat /sys/kernel/security/lsm > '{d}/lsm'\n\
         mountpoint -q /sys/fs/fuse/connections || mount -t fusectl fusectl /sys/fs/fuse/connections\n\
         mkdir -p /run/suites && mount -t tmpfs -o size=4g suites /run/suites\n\
         export TMPDIR=/run/suites\n\
         cd /run/suites\n"
    );
    // IMAGEGUARD_ATTACK_GROUPS (see the attack suite) goes on into the VM.
    if let Ok(groups) = std::env::var("IMAGEGUARD_ATTACK_GROUPS") {
        script.push_str(&format!("export IMAGEGUARD_ATTACK_GROUPS='{groups}'\n"));
    }
    let suites: Vec<&str> = ["attacks", "faults"]
        .into_iter()
        .filter(|s| wanted(s))
        .collect();
    for suite in &suites {
        let command = if *suite == "attacks" {
            format!("'{}'", attacks.display())
        } else {
            format!(
                "'{}' --test-threads=1 {}",
                faults.display(),
                filter.join(" ")
            )
        };
        // A suite that hangs ends after 90 minutes (a whole run takes about 45 under TCG), its
        // log saying after which row or test (rc 124).
        script.push_str(&format!(
            "s=$(date +%s); timeout -k 30 5400 {command} > '{d}/{suite}.log' 2>&1; echo $? > '{d}/{suite}.rc'\n\
             echo $(( $(date +%s) - s )) > '{d}/{suite}.time'\n"
        ));
    }
    let vm = imageguard::vm::boot(
        shared.path(),
        &script,
        "6G",
        &[],
        Duration::from_secs(6 * 3600),
    )
    .expect("vng (pip install virtme-ng; apt-get install qemu-system-x86)");
    let read = |f: &str| {
        std::fs::read_to_string(shared.path().join(f))
            .unwrap_or_default()
            .trim()
            .to_string()
    };
    let mut failed = false;
    for suite in &suites {
        println!(
            "===== {suite} (in the VM: {} s) =====",
            read(&format!("{suite}.time"))
        );
        println!("{}", read(&format!("{suite}.log")));
        let rc = read(&format!("{suite}.rc"));
        println!("{suite}: exit {rc}");
        failed |= rc != "0";
    }
    let attacks_log = read("attacks.log");
    if wanted("attacks") && !attacks_log.contains("kernel shield: on") {
        println!(
            "the attack suite did not meet the kernel shield (active LSMs: {})",
            read("lsm")
        );
        failed = true;
    }
    println!(
        "suites in the VM: {} ({:.0} s in all)",
        if failed { "FAILED" } else { "passed" },
        started.elapsed().as_secs_f64()
    );
    if failed {
        eprintln!("{}", String::from_utf8_lossy(&vm.stderr));
        // What a failing sandbox left (its service log, events, configuration) stays to be read.
        eprintln!("the suites' folder is kept: {}", shared.keep().display());
        std::process::exit(1);
    }
}
