//! The kernel shield (issue 18), first step: with its BPF LSM programs attached, on a shielded
//! volume only the service's own tasks may change files, root or not, through whatever mount
//! leads there. Shown in a virtual machine (this machine's kernel refuses LSM programs; Debian's
//! 6.1 under virtme-ng has the bpf LSM): a child of the test (root, another thread group) is
//! refused writing and deleting a file, through the volume's mount and through a second mount
//! of its device, and opening the volume's block device (dd, debugfs -w) or a device beneath it
//! for writing; this process (the "service") writes and deletes there (the control that must
//! succeed); with the shield dropped, the child may again. Pinned, the shield outlives the
//! process that loaded it, is taken over by the next, and lets go only when unpinned. On this machine: the shield says it
//! is unavailable and why.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

use common::*;
use imageguard::sandbox::Sandbox;
use imageguard_shield::{kernel_dev, Refused, Shield, ShieldError, Task};

use common::vm::{IN_VM, VERDICT};

#[test]
fn only_the_service_changes_files_on_a_shielded_volume() {
    match std::env::var_os(IN_VM) {
        Some(shared) => in_the_vm(Path::new(&shared)),
        None => on_the_host(),
    }
}

fn on_the_host() {
    // Here: no bpf LSM (or the hypervisor refuses BPF trampolines): unavailable, said why.
    if !imageguard_shield::bpf_lsm_active() {
        match Shield::load(Task::current().unwrap()) {
            Err(ShieldError::LsmInactive(_)) => {}
            Err(e) => panic!("unavailable, but for another reason: {e}"),
            Ok(_) => panic!("the shield loaded where the bpf LSM is not active"),
        }
    }
    let guest =
        common::vm::run_this_test_inside("only_the_service_changes_files_on_a_shielded_volume");
    assert_eq!(
        guest.verdict, "shielded",
        "in the virtual machine (active LSMs: {}):\n{}\nvng: {}",
        guest.lsm, guest.log, guest.vng
    );
    println!("{}", guest.log);
}

fn child(script: &str) -> std::process::Output {
    sh(script)
}

fn in_the_vm(shared: &Path) {
    let sb = Sandbox::new(&exe(), 64).expect("sandbox");
    let file = sb.mnt.join("backup.mrimg");
    write_pattern(&file, 100_000, 4);
    std::fs::create_dir_all(sb.mnt.join("kept")).unwrap();
    assert_ok(
        "tag",
        &sh(&format!("setfattr -n user.tag -v 1 '{}'", file.display())),
    );
    let before = std::fs::read(&file).unwrap();
    let st = std::fs::metadata(&sb.mnt).unwrap();
    let dev = kernel_dev(libc::major(st.dev()), libc::minor(st.dev()));
    let mut shield = Shield::load(Task::current().unwrap()).expect("loading the shield");
    shield.protect(dev).expect("shielding the volume");
    let f = file.display().to_string();

    // Another thread group, root: refused, whatever it does to the file or the names.
    let m = sb.mnt.display().to_string();
    for (what, script) in [
        ("append", format!("echo x >> '{f}'")),
        ("rm", format!("rm -f '{f}'")),
        ("truncate", format!("truncate -s 0 '{f}'")),
        ("chmod", format!("chmod 600 '{f}'")),
        ("chown", format!("chown 1:1 '{f}'")),
        ("rename", format!("mv '{f}' '{m}/renamed.mrimg'")),
        ("hard link", format!("ln '{f}' '{m}/link.mrimg'")),
        ("create", format!("touch '{m}/new.txt'")),
        ("mkdir", format!("mkdir '{m}/newdir'")),
        ("rmdir", format!("rmdir '{m}/kept'")),
        ("mknod (fifo)", format!("mkfifo '{m}/fifo'")),
        ("symlink", format!("ln -s /etc/passwd '{m}/sym'")),
        ("setxattr", format!("setfattr -n user.x -v 1 '{f}'")),
        ("removexattr", format!("setfattr -x user.tag '{f}'")),
    ] {
        assert_eperm(&format!("child: {what}"), &child(&script));
    }
    // Each refusal reported (event 320's facts): who, what, and the path from the volume's root.
    let mut refusals = shield.refusals().expect("the shield's refusals");
    let mut seen = vec![];
    let until = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while seen.len() < 14 && std::time::Instant::now() < until {
        seen.extend(
            refusals
                .wait(std::time::Duration::from_millis(500))
                .unwrap(),
        );
    }
    assert!(seen.len() >= 14, "14 refusals reported: {seen:#?}");
    for (what, path, comm) in [
        (Refused::Unlink, "backup.mrimg", "rm"),
        (Refused::OpenWrite, "backup.mrimg", "sh"),
        (Refused::Create, "new.txt", "touch"),
        (Refused::Rmdir, "kept", "rmdir"),
        (Refused::Rename, "backup.mrimg", "mv"),
        (Refused::RemoveXattr, "backup.mrimg", "setfattr"),
    ] {
        assert!(
            seen.iter().any(|r| r.what == what
                && r.path == path
                && r.comm == comm
                && r.dev == dev
                && r.uid == 0),
            "{what:?} of {path} by {comm} reported: {seen:#?}"
        );
    }
    // A second mount of the same device: the same superblock, refused as well.
    let again = sb.path().join("again");
    std::fs::create_dir_all(&again).unwrap();
    let device = imageguard_volume::MountTable::read()
        .unwrap()
        .at(&sb.mnt)
        .map(|e| e.source.clone())
        .expect("the volume's device");
    assert_ok(
        "mount the device again",
        &sh(&format!("mount '{device}' '{}'", again.display())),
    );
    let other = again.join("backup.mrimg").display().to_string();
    assert_eperm(
        "child: rm through a second mount",
        &child(&format!("rm -f '{other}'")),
    );
    assert_eperm(
        "child: dd through a second mount",
        &child(&format!(
            "dd if=/dev/zero of='{other}' bs=1 count=1 conv=notrunc status=none"
        )),
    );
    let _ = sh(&format!("umount '{}'", again.display()));
    // Under the file system: the volume's block device opened for writing.
    assert_eperm(
        "child: dd onto the volume's device",
        &child(&format!(
            "dd if=/dev/zero of='{device}' bs=4096 seek=1000 count=1 conv=notrunc status=none"
        )),
    );
    let o = child(&format!("debugfs -w -R 'rm /backup.mrimg' '{device}'"));
    assert!(
        stderr(&o).contains("Operation not permitted")
            || String::from_utf8_lossy(&o.stdout).contains("Operation not permitted"),
        "debugfs -w: {} {}",
        String::from_utf8_lossy(&o.stdout),
        stderr(&o)
    );
    // A device beneath the volume (here a second loop device stands for the whole disk or a
    // device-mapper layer): writable until shielded, then refused.
    let lower_img = sb.path().join("lower.img");
    std::fs::File::create(&lower_img)
        .unwrap()
        .set_len(1 << 20)
        .unwrap();
    let lower = String::from_utf8_lossy(
        &Command::new("losetup")
            .args(["-f", "--show"])
            .arg(&lower_img)
            .output()
            .unwrap()
            .stdout,
    )
    .trim()
    .to_string();
    let dd_lower = || {
        child(&format!(
            "dd if=/dev/zero of='{lower}' bs=4096 count=1 conv=notrunc status=none"
        ))
    };
    assert_ok(
        "child: dd onto a device not shielded (control)",
        &dd_lower(),
    );
    let rdev = std::fs::metadata(&lower).unwrap().rdev();
    shield
        .protect_device(kernel_dev(libc::major(rdev), libc::minor(rdev)))
        .unwrap();
    let refused = dd_lower();
    let _ = Command::new("losetup").args(["-d", &lower]).status();
    assert_eperm(
        "child: dd onto a shielded device beneath the volume",
        &refused,
    );
    // Reads stay open.
    assert_ok("child: read", &child(&format!("cat '{f}' > /dev/null")));
    assert_eq!(std::fs::read(&file).unwrap(), before, "every byte intact");

    // The control that must succeed: this process (the service) changes files there.
    let mine = sb.mnt.join("service.tmp");
    std::fs::write(&mine, b"written by the service").expect("the service writes");
    std::fs::remove_file(&mine).expect("the service deletes");

    // Released: the child may again.
    shield.release(dev).unwrap();
    let spare = sb.mnt.join("spare.mrimg");
    std::fs::write(&spare, b"spare").unwrap();
    let sp = spare.display().to_string();
    assert_ok(
        "child: append once released",
        &child(&format!("echo x >> '{sp}'")),
    );
    drop(shield);

    // Pinned (on a bpf file system of the test's own): the shield outlives the process that
    // loaded it (a service that dies leaves it refusing: fail closed), the next one takes it
    // over, and only removing the pins lets go.
    let pins = sb.path().join("bpf");
    std::fs::create_dir_all(&pins).unwrap();
    assert_ok(
        "mount bpffs",
        &sh(&format!("mount -t bpf bpf '{}'", pins.display())),
    );
    let mut pinned = Shield::load_pinned(Task::current().unwrap(), &pins).expect("pinned shield");
    pinned.protect(dev).unwrap();
    drop(pinned);
    assert_eperm(
        "child: append, the loading process's shield dropped (pinned)",
        &child(&format!("echo x >> '{sp}'")),
    );
    let again = Shield::load_pinned(Task::current().unwrap(), &pins).expect("taking over");
    assert_eperm(
        "child: append, taken over",
        &child(&format!("echo x >> '{sp}'")),
    );
    again.unpin().expect("unpin");
    assert_ok(
        "child: append once unpinned",
        &child(&format!("echo x >> '{sp}'")),
    );
    let _ = sh(&format!("umount '{}'", pins.display()));
    std::fs::write(shared.join(VERDICT), "shielded").unwrap();
}
