//! `date -s` forward never unlocks anything (issue 10): the wall clock set 400 days ahead, a
//! certified `rm` of a fresh backup under a 14-day lock is still refused, before and after a
//! service restart, and the jump is logged. A certified `touch` of it goes through first (the
//! control: certified programs are recognised in the VM, whose /tmp and /usr are overlayfs).
//!
//! Setting the clock changes the whole machine's time, so this runs in a virtual machine:
//! virtme-ng (`vng`, PyPI) boots Debian's kernel under QEMU (TCG: KVM guests hang on the CI
//! hosts) with this machine's files visible, and runs this very test binary inside it with
//! `IMAGEGUARD_IN_VM` set; the guest writes its verdict into a folder shared with the host.
//! `.ci/run` installs what it needs (qemu-system-x86, linux-image-amd64, busybox-static,
//! virtme-ng).

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;
use imageguard::sandbox::Sandbox;

use common::vm::VERDICT;
use imageguard::vm::IN_VM;

#[test]
fn wall_clock_set_forward_releases_nothing() {
    match std::env::var_os(IN_VM) {
        Some(shared) => in_the_vm(Path::new(&shared)),
        None => on_the_host(),
    }
}

fn on_the_host() {
    let guest = common::vm::run_this_test_inside("wall_clock_set_forward_releases_nothing");
    assert_eq!(
        guest.verdict, "released nothing",
        "in the virtual machine:\n{}\nvng: {}",
        guest.log, guest.vng
    );
    println!("{}", guest.log);
}

fn in_the_vm(shared: &Path) {
    let mut sb = Sandbox::new(&exe(), 64).expect("sandbox");
    std::fs::create_dir_all(sb.mnt.join("images")).unwrap();
    let image = sb.mnt.join("images/fresh.mrimg");
    write_pattern(&image, 100_000, 3);
    sb.add_retention_lock(&sb.mnt, 14).unwrap();
    sb.start_service().expect("service");
    assert_ok(
        "protect",
        &sb.imageguard(&["protect", &sb.mnt.to_string_lossy()])
            .unwrap(),
    );
    let rm = sb.path().join("bin/rm");
    std::fs::create_dir_all(rm.parent().unwrap()).unwrap();
    std::fs::copy("/bin/rm", &rm).unwrap();
    certify(&sb, &rm, true);
    let before = std::fs::read(&image).unwrap();
    let i = image.to_string_lossy().to_string();
    // The control that must succeed, so that a VM where nothing is certified cannot pass: a
    // certified touch changes the young backup's times (the lock holds its bytes, not its
    // attributes), an uncertified one is refused. Here /tmp and /usr are overlayfs: the
    // certified programs' mappings name the layers' files.
    let touch = sb.path().join("bin/touch");
    std::fs::copy("/usr/bin/touch", &touch).unwrap();
    certify(&sb, &touch, true);
    assert_ok(
        "certified touch (the control)",
        &output_fresh(clean(Command::new(&touch).args(["-m", &i]))),
    );
    assert_eperm(
        "uncertified touch",
        &output_fresh(clean(Command::new("/usr/bin/touch").args(["-m", &i]))),
    );
    let certified_rm = || output_fresh(clean(Command::new(&rm).args(["-f", &i])));
    assert_eperm("certified rm before the jump", &certified_rm());

    // The wall clock 400 days ahead.
    let ahead = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 400 * 86_400;
    assert_ok("date -s", &sh(&format!("date -s @{ahead}")));
    std::thread::sleep(Duration::from_secs(1));
    assert_eperm("certified rm after date -s +400 days", &certified_rm());
    assert!(
        sb.service_log()
            .contains("the system clock was set forward"),
        "the jump was not logged: {}",
        sb.service_log()
    );
    let status = String::from_utf8_lossy(&sb.imageguard(&["status"]).unwrap().stdout).to_string();
    assert!(
        status.contains("retention lock:  14 days; 1 files younger than that"),
        "{status}"
    );
    // A restart reads the clock again: the wall clock still counts for nothing.
    sb.stop_service().unwrap();
    sb.start_service().unwrap();
    assert_eperm("certified rm after a restart", &certified_rm());
    assert_eq!(std::fs::read(&image).unwrap(), before, "every byte intact");
    std::fs::write(shared.join(VERDICT), "released nothing").unwrap();
}
