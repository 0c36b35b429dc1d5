//! Uncertified processes, root included, cannot modify backup files on a protected volume; they
//! can still read them and do anything with ordinary files.

mod common;

use std::process::Command;

use common::*;

#[test]
fn every_modification_of_a_backup_file_is_refused_and_logged() {
    let sb = protected(128);
    let dir = sb.mnt.join("images");
    let writer = certified_writer(&sb);
    assert_ok(
        "certified writer",
        &output_fresh(clean(Command::new(&writer).arg("demo-writer").arg(&dir))),
    );
    let f = dir.join("disk-1.mrimg");
    let other = sb.mnt.join("other.bin");
    write_pattern(&other, 8192, 3);
    let before = hashes(&sb.mnt);
    let t = f.display().to_string();
    let d = dir.display().to_string();
    let o = other.display().to_string();
    let cases: Vec<(&str, String, &str)> = vec![
        ("redirect", format!("echo x > {t}"), "truncate"),
        ("append", format!("echo x >> {t}"), "open-append"),
        ("truncate", format!("truncate -s0 {t}"), "open-write"),
        ("rm", format!("rm -f {t}"), "delete"),
        ("mv", format!("mv {t} {t}.locked"), "rename"),
        ("ln", format!("ln {t} {d}/alias"), "hard-link"),
        ("dd conv=notrunc", format!("dd if=/dev/zero of={t} bs=512 count=1 conv=notrunc status=none"), "open-write"),
        (
            "python os.replace onto a backup",
            format!("python3 -c \"open('{d}/new.tmp','w').write('x'); import os; os.replace('{d}/new.tmp', '{t}')\""),
            "replace",
        ),
        ("fallocate -p", format!("fallocate -p -o 0 -l 4096 {t}"), "open-write"),
        ("setfattr", format!("setfattr -n user.evil -v 1 {t}"), "set-xattr"),
        ("cp --reflink onto", format!("cp --reflink=auto {o} {t}"), "truncate"),
        ("copy_file_range into", format!("python3 -c \"import os; s=os.open('{o}',os.O_RDONLY); d=os.open('{t}',os.O_WRONLY); os.copy_file_range(s,d,4096)\""), "open-write"),
        ("chmod", format!("chmod 0 {t}"), "set-attributes"),
        ("touch", format!("touch -d 2000-01-01 {t}"), "set-attributes"),
        ("rm -rf folder", format!("rm -rf {d}"), "delete"),
        ("mv folder", format!("mv {d} {}/moved", sb.mnt.display()), "rename"),
    ];
    for (name, cmd, op) in &cases {
        let out = sh(cmd);
        assert_eperm(name, &out);
        let target = if *op == "rename" && name.contains("folder") {
            dir.clone()
        } else {
            f.clone()
        };
        if !name.contains("rm -rf") {
            assert_denial_logged(&sb, &target, op);
        }
    }
    // removexattr needs an attribute to exist: a certified copy of setfattr sets one first.
    let cert_setfattr = sb.path().join("bin/cert-setfattr");
    std::fs::copy("/usr/bin/setfattr", &cert_setfattr).unwrap();
    certify(&sb, &cert_setfattr, false);
    assert_ok(
        "certified setfattr",
        &output_fresh(clean(
            Command::new(&cert_setfattr)
                .args(["-n", "user.tag", "-v", "1"])
                .arg(&f),
        )),
    );
    assert_eperm("setfattr -x", &sh(&format!("setfattr -x user.tag {t}")));
    assert_denial_logged(&sb, &f, "remove-xattr");
    assert_ok(
        "xattr still there",
        &sh(&format!("getfattr -n user.tag {t}")),
    );
    let after = hashes(&sb.mnt);
    let changed: Vec<_> = before
        .iter()
        .filter(|(p, h)| after.get(*p) != Some(h))
        .map(|(p, _)| p)
        .collect();
    assert!(changed.is_empty(), "backup files changed: {changed:?}");
    assert!(f.exists() && !dir.join("disk-1.mrimg.locked").exists() && !dir.join("alias").exists());
    // Reads stay open to everyone.
    assert_ok(
        "read",
        &sh(&format!("cat {t} > /dev/null && sha256sum {t}")),
    );
}

#[test]
fn ordinary_files_stay_fully_writable_by_anyone() {
    let sb = protected(64);
    let m = sb.mnt.display().to_string();
    let script = format!(
        "set -e; cd {m}; echo a > notes.txt; echo b >> notes.txt; truncate -s 1 notes.txt; mv notes.txt n2.txt; \
         ln n2.txt n3.txt; setfattr -n user.k -v v n2.txt; setfattr -x user.k n2.txt; chmod 600 n2.txt; \
         fallocate -l 1M n2.txt; rm n2.txt n3.txt; mkdir -p d/e; echo x > d/e/f; mv d d2; rm -rf d2"
    );
    assert_ok("ordinary operations", &sh(&script));
    assert_ok(
        "as an unprivileged user",
        &sh(&format!("chmod 1777 {m} && setpriv --reuid=65534 --regid=65534 --clear-groups sh -c 'echo hi > {m}/nobody.txt && rm {m}/nobody.txt'")),
    );
    assert!(
        events(&sb).iter().all(|e| e.id != 320),
        "ordinary files must not raise 320"
    );
}

#[test]
fn new_backup_files_may_be_created_but_not_as_duplicates_next_to_backups() {
    let sb = protected(64);
    let m = sb.mnt.display().to_string();
    assert_ok(
        "a new backup in an empty folder",
        &sh(&format!(
            "mkdir {m}/fresh && echo data > {m}/fresh/first.mrimg"
        )),
    );
    // The reference product refuses a copy of a backup next to the original.
    let out = sh(&format!(
        "cp {m}/fresh/first.mrimg '{m}/fresh/first - Copy.mrimg'"
    ));
    assert_eperm("duplicate next to a backup", &out);
    assert!(!sb.mnt.join("fresh/first - Copy.mrimg").exists());
    // Once created, an uncertified writer cannot touch it again.
    assert_eperm(
        "rewrite",
        &sh(&format!("echo more >> {m}/fresh/first.mrimg")),
    );
}

/// Without kernel passthrough (`[guard] passthrough = false`, or a kernel before 6.9, where
/// every write comes to the guard), a process decides what it may write when it opens, as with
/// passthrough: an uncertified one fills the backup it just created in a folder of its own, and
/// is refused opening an existing backup for writing, as before.
#[test]
fn without_passthrough_writes_are_decided_when_the_file_is_opened() {
    let mut sb = imageguard::sandbox::Sandbox::new(&exe(), 64).expect("sandbox");
    let existing = sb.mnt.join("images/disk-1.mrimg");
    std::fs::create_dir_all(existing.parent().unwrap()).unwrap();
    write_pattern(&existing, 8192, 1);
    sb.edit_config(|t| t.replace("passthrough = true", "passthrough = false"))
        .unwrap();
    sb.start_service().expect("service");
    assert_ok(
        "protect",
        &sb.imageguard(&["protect", &sb.mnt.to_string_lossy()])
            .unwrap(),
    );
    let status: serde_json::Value = status(&sb);
    assert_eq!(status["volumes"][0]["passthrough"], false, "{status:#}");
    let fresh = sb.mnt.join("new-folder/fresh.mrimg");
    let f = fresh.display().to_string();
    assert_ok(
        "uncertified: a new backup in a folder of its own, written in several writes",
        &sh(&format!(
            "mkdir '{}' && dd if=/dev/zero of='{f}' bs=4096 count=16 status=none",
            fresh.parent().unwrap().display()
        )),
    );
    assert_eq!(std::fs::metadata(&fresh).unwrap().len(), 16 * 4096);
    assert_eperm(
        "uncertified: append to it once closed (an existing backup now)",
        &sh(&format!("echo x >> '{f}'")),
    );
    assert_eperm(
        "uncertified: write an existing backup",
        &sh(&format!("echo x >> '{}'", existing.display())),
    );
}
