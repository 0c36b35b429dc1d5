//! The guard fails closed and hides the backing: killing the service leaves nothing writable,
//! unmounting the guard (in any namespace) shows an empty directory, and a restarted service
//! recovers the volume from its keeper namespace.

mod common;

use std::process::Command;

use common::*;

#[test]
fn unmounting_the_guard_in_another_namespace_reveals_nothing() {
    let sb = protected(64);
    write_pattern(&sb.mnt.join("a.mrimg"), 4096, 1);
    let m = sb.mnt.display().to_string();
    let out = sh(&format!(
        "unshare -m sh -c 'umount -l {m} && ls -A {m} | wc -l && touch {m}/a.mrimg.x && ls -A {m}'"
    ));
    assert_ok("unshare + umount", &out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout.lines().next(),
        Some("0"),
        "backing visible after unmounting the guard: {stdout}"
    );
    assert!(!stdout.contains("a.mrimg\n"));
    // The host still sees the guard and the file.
    assert_eq!(fstype_at(&sb.mnt).as_deref(), Some("fuse.imageguard"));
    assert!(sb.mnt.join("a.mrimg").exists());
}

#[test]
fn sigkill_fails_closed_and_a_restarted_service_recovers() {
    let mut sb = protected(64);
    let f = sb.mnt.join("nightly.mrimg");
    write_pattern(&f, 1 << 20, 9);
    let before = hashes(&sb.mnt);
    let t = f.display().to_string();

    sb.kill_service();
    // Dead guard: every access fails (ENOTCONN); nothing is modified.
    for cmd in [
        format!("echo x > {t}"),
        format!("rm -f {t}"),
        format!("truncate -s0 {t}"),
        format!("mv {t} {t}.x"),
    ] {
        let out = sh(&cmd);
        assert!(!out.status.success(), "{cmd} succeeded on a dead guard");
    }
    // A root user unmounting the dead guard finds an empty directory.
    assert_ok("umount -l", &sh(&format!("umount -l {}", sb.mnt.display())));
    assert_eq!(
        std::fs::read_dir(&sb.mnt).unwrap().count(),
        0,
        "backing visible after unmounting a dead guard"
    );
    assert_ok(
        "writing into the empty directory",
        &sh(&format!("echo decoy > {}/decoy", sb.mnt.display())),
    );
    std::fs::remove_file(sb.mnt.join("decoy")).unwrap();

    // Restart: the service re-protects the volume from its keeper.
    sb.start_service().unwrap();
    let st = sb.imageguard(&["status", "--json"]).unwrap();
    assert_ok("status", &st);
    let report: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
    assert_eq!(report["volumes"][0]["mode"], "hidden", "{report}");
    assert_eq!(fstype_at(&sb.mnt).as_deref(), Some("fuse.imageguard"));
    assert_eq!(hashes(&sb.mnt), before, "files differ after recovery");
    assert_eperm("write after recovery", &sh(&format!("echo x > {t}")));

    // Kill again without unmounting: the restarted service replaces the dead guard in place.
    sb.kill_service();
    assert!(!sh(&format!("cat {t}")).status.success());
    sb.start_service().unwrap();
    assert_eq!(hashes(&sb.mnt), before);
    assert_eperm("write after second recovery", &sh(&format!("rm {t}")));

    // A clean stop gives the ext4 volume back to the host, files intact.
    sb.stop_service().unwrap();
    assert_eq!(fstype_at(&sb.mnt).as_deref(), Some("ext4"));
    assert_eq!(hashes(&sb.mnt), before);
    assert_ok("writable once unprotected", &sh(&format!("echo ok >> {t}")));
}

#[test]
fn descriptors_opened_before_protection_cannot_modify() {
    let sb = imageguard::sandbox::Sandbox::new(&exe(), 64).unwrap();
    let mut sb = sb;
    write_pattern(&sb.mnt.join("old.mrimg"), 4096, 2);
    // A process holds the volume's directory open (its cwd) from before protection.
    let holder = clean(&mut Command::new("/bin/sh"))
        .arg("-c")
        .arg("sleep 3; rm -f old.mrimg; echo rc=$? > /dev/stderr; echo x >> old.mrimg")
        .current_dir(&sb.mnt)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    sb.start_service().unwrap();
    let mnt = sb.mnt.to_string_lossy().to_string();
    assert_ok("protect", &sb.imageguard(&["protect", &mnt]).unwrap());
    let out = holder.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Read-only file system"),
        "old descriptors still write: {err}"
    );
    assert!(sb.mnt.join("old.mrimg").exists());
    assert_eq!(
        std::fs::metadata(sb.mnt.join("old.mrimg")).unwrap().len(),
        4096
    );
}
