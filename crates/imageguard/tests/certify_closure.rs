//! Certifying what a program loads, as an administrator would use it: rsync (dynamically
//! linked, name-service modules on demand) keeps working certified; a plugin the program loads
//! only sometimes is refused until it is added with `certify --learn` or `--also`; a Python
//! program run by another user works once certified with that user's `--home`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

fn gcc(args: &[&str]) {
    let o = Command::new("gcc").args(args).output().expect("gcc");
    assert!(o.status.success(), "gcc {args:?}: {}", stderr(&o));
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// A new backup, alone in a new folder (an uncertified process may create one there).
fn fresh_backup(sb: &imageguard::sandbox::Sandbox, name: &str) -> PathBuf {
    let dir = sb.mnt.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("b.mrimg");
    write_pattern(&p, 4096, 7);
    p
}

#[test]
fn rsync_certified_overwrites_and_deletes_backups_uncertified_cannot() {
    let sb = protected(64);
    let src = sb.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    for i in 0..5 {
        write_pattern(&src.join(format!("disk-{i}.mrimg")), 64 * 1024, i as u8);
    }
    let dst = format!("{}/mirror/", sb.mnt.display());
    let rsync = |args: &[&str]| {
        clean(Command::new("/usr/bin/rsync").args(args))
            .env("HOME", "/root")
            .output()
            .unwrap()
    };
    certify(&sb, Path::new("/usr/bin/rsync"), false);
    // -a maps owners by name: the name-service modules of nsswitch.conf are in the closure.
    let from = format!("{}/", src.display());
    assert_ok("certified rsync -a", &rsync(&["-a", &from, &dst]));
    for i in 0..5 {
        // Another size: rsync's quick check compares size and the seconds of mtime.
        write_pattern(
            &src.join(format!("disk-{i}.mrimg")),
            65 * 1024,
            100 + i as u8,
        );
    }
    std::fs::remove_file(src.join("disk-4.mrimg")).unwrap();
    assert_ok(
        "certified rsync --delete (overwrites and deletes)",
        &rsync(&["-a", "--delete", &from, &dst]),
    );
    assert!(!sb.mnt.join("mirror/disk-4.mrimg").exists());
    assert_eq!(
        hashes(&sb.mnt.join("mirror")).values().collect::<Vec<_>>(),
        hashes(&src).values().collect::<Vec<_>>()
    );
    assert_ok(
        "uncertify",
        &sb.imageguard(&["uncertify", "/usr/bin/rsync"]).unwrap(),
    );
    std::fs::remove_file(src.join("disk-3.mrimg")).unwrap();
    let before = hashes(&sb.mnt.join("mirror"));
    let o = rsync(&["-a", "--delete", &from, &dst]);
    assert!(!o.status.success(), "uncertified rsync --delete succeeded");
    assert_eq!(hashes(&sb.mnt.join("mirror")), before);
}

/// A program that, given a plugin, loads it before it truncates its target.
const PLUGIN_HOST_C: &str = r#"
#include <dlfcn.h>
#include <stdio.h>
#include <unistd.h>
int main(int argc, char **argv) {
    if (argc > 2 && !dlopen(argv[2], RTLD_NOW)) { fprintf(stderr, "%s\n", dlerror()); return 2; }
    if (truncate(argv[1], 0) != 0) { perror("truncate"); return 1; }
    return 0;
}
"#;

#[test]
fn plugins_join_the_closure_by_learning_or_by_hand() {
    let sb = protected(64);
    let dir = sb.path().join("plugin");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("host.c"), PLUGIN_HOST_C).unwrap();
    std::fs::write(
        dir.join("plugin.c"),
        "int plugin_version(void) { return 1; }\n",
    )
    .unwrap();
    let host = dir.join("backup-host");
    let plugin = dir.join("plugin.so");
    gcc(&["-o", &s(&host), &s(&dir.join("host.c")), "-ldl"]);
    gcc(&[
        "-shared",
        "-fPIC",
        "-o",
        &s(&plugin),
        &s(&dir.join("plugin.c")),
    ]);
    let run = |target: &Path| output_fresh(clean(Command::new(&host).arg(target).arg(&plugin)));
    certify(&sb, &host, false);
    let o = run(&fresh_backup(&sb, "a"));
    assert_eperm("a plugin outside the closure", &o);
    assert!(events(&sb).iter().any(|e| e.id == 320
        && e.message
            .contains(&format!("outside what was certified: {}", plugin.display()))));

    // Learn it: run the usual job once (the service follows the job's processes and records
    // what they map when they touch a backup).
    let target = fresh_backup(&sb, "learning");
    // (The job runs with this command's environment: a clean one, as a backup job's.)
    let learn = clean(
        Command::new(exe())
            .args(sb.global_args())
            .args(["certify", &s(&host), "--learn", "--"])
            .arg(&host)
            .arg(&target)
            .arg(&plugin),
    )
    .output()
    .unwrap();
    assert_ok("certify --learn", &learn);
    assert!(
        String::from_utf8_lossy(&learn.stdout).contains("1 learned"),
        "{}{}",
        String::from_utf8_lossy(&learn.stdout),
        stderr(&learn)
    );
    assert_ok("after --learn", &run(&fresh_backup(&sb, "b")));

    // By hand, from a fresh certification.
    assert_ok(
        "uncertify",
        &sb.imageguard(&["uncertify", &s(&host)]).unwrap(),
    );
    certify(&sb, &host, false);
    assert_eperm("not listed again yet", &run(&fresh_backup(&sb, "c")));
    assert_ok(
        "certify --also",
        &sb.imageguard(&["certify", &s(&host), "--also", &s(&plugin)])
            .unwrap(),
    );
    assert_ok("after --also", &run(&fresh_backup(&sb, "d")));
}

#[test]
fn a_python_program_run_by_another_user_needs_that_users_home() {
    let sb = protected(64);
    let script = sb.path().join("pyjob");
    std::fs::write(
        &script,
        "#!/usr/bin/python3\nimport os, sys\nos.truncate(sys.argv[1], 0)\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let home = sb.path().join("home-of-alice");
    std::fs::create_dir_all(&home).unwrap();
    let run =
        |target: &Path| output_fresh(clean(Command::new(&script).arg(target)).env("HOME", &home));
    certify(&sb, &script, false);
    let o = run(&fresh_backup(&sb, "p1"));
    assert_eperm("HOME outside the certified homes", &o);
    assert_ok(
        "certify --home",
        &sb.imageguard(&["certify", &s(&script), "--home", &s(&home)])
            .unwrap(),
    );
    assert_ok("with its home certified", &run(&fresh_backup(&sb, "p2")));
    // The user site folder under that home is watched: a hook there breaks it.
    let site = home.join(".local/lib/python3.11/site-packages");
    std::fs::create_dir_all(&site).unwrap();
    std::fs::write(site.join("usercustomize.py"), "pass\n").unwrap();
    assert_eperm("a hook in that home", &run(&fresh_backup(&sb, "p3")));
    let listing = sb.imageguard(&["certified"]).unwrap();
    let text = String::from_utf8_lossy(&listing.stdout);
    assert!(
        text.contains("CHANGED") && text.contains(".local"),
        "{text}"
    );
}

/// A certified program on overlayfs (live systems, image-based distributions, containers,
/// virtme-ng's `/usr`): `/proc/PID/maps` names the layer's file, not the overlay's, and the
/// certified program must still be recognised as running its own code (a certified write that
/// goes through); a copy of it on the same overlay is not certified.
#[test]
fn a_certified_program_on_overlayfs_is_recognised() {
    let sb = protected(64);
    let ovl = sb.path().join("ovl");
    let (lower, upper, work, merged) = (
        ovl.join("lower"),
        ovl.join("upper"),
        ovl.join("work"),
        ovl.join("merged"),
    );
    for d in [&lower, &upper, &work, &merged] {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::copy("/usr/bin/truncate", lower.join("truncate")).unwrap();
    // Unmounted with the sandbox (everything mounted under it), even when this test fails.
    assert_ok(
        "mount overlay",
        &sh(&format!(
            "mount -t overlay overlay -o lowerdir={},upperdir={},workdir={} {}",
            s(&lower),
            s(&upper),
            s(&work),
            s(&merged)
        )),
    );
    let program = merged.join("truncate");
    let dev = std::os::unix::fs::MetadataExt::dev(&std::fs::metadata(&program).unwrap());
    let lower_dev = std::os::unix::fs::MetadataExt::dev(&std::fs::metadata(&lower).unwrap());
    assert_ne!(dev, lower_dev, "the overlay has a device of its own");
    // truncate counts as a general tool (certified on purpose here, as the attack suite does).
    certify(&sb, &program, true);
    let backup = fresh_backup(&sb, "overlay");
    let o = clean(Command::new(&program).args(["-s", "100", &s(&backup)]))
        .output()
        .unwrap();
    assert_ok("the certified program on overlayfs truncates a backup", &o);
    assert_eq!(std::fs::metadata(&backup).unwrap().len(), 100);
    // A copy on the same overlay (copied up): not certified.
    let copy = merged.join("truncate-copy");
    std::fs::copy(&program, &copy).unwrap();
    let o = clean(Command::new(&copy).args(["-s", "0", &s(&backup)]))
        .output()
        .unwrap();
    assert_eperm("an uncertified copy on the overlay", &o);
    assert_eq!(std::fs::metadata(&backup).unwrap().len(), 100);
}

#[test]
fn a_certified_program_on_a_btrfs_subvolume_is_recognised() {
    let sb = protected(64);
    // A btrfs volume of its own (mounted under the sandbox: unmounted with it, its loop
    // device let go with the mount), two subvolumes on it.
    let image = sb.path().join("btrfs.img");
    let m = sb.path().join("btrfs");
    std::fs::create_dir_all(&m).unwrap();
    assert_ok(
        "truncate -s 128M",
        &sh(&format!("truncate -s 128M '{}'", s(&image))),
    );
    assert_ok("mkfs.btrfs", &sh(&format!("mkfs.btrfs -q '{}'", s(&image))));
    assert_ok(
        "mount the btrfs volume",
        &sh(&format!("mount -o loop '{}' '{}'", s(&image), s(&m))),
    );
    for sub in ["jobs", "other"] {
        assert_ok(
            "btrfs subvolume create",
            &sh(&format!("btrfs -q subvolume create '{}'", s(&m.join(sub)))),
        );
    }
    let program = m.join("jobs/truncate");
    let twin = m.join("other/truncate");
    std::fs::copy("/usr/bin/truncate", &program).unwrap();
    std::fs::copy("/usr/bin/truncate", &twin).unwrap();
    use std::os::unix::fs::MetadataExt;
    let (a, b) = (
        std::fs::metadata(&program).unwrap(),
        std::fs::metadata(&twin).unwrap(),
    );
    // What makes btrfs hard: the first file of each subvolume has the same inode number, and
    // maps names both by the file system's one device.
    assert_eq!(a.ino(), b.ino(), "inode numbers repeat across subvolumes");
    assert_ne!(a.dev(), b.dev(), "each subvolume has a device of its own");
    certify(&sb, &program, true);
    let backup = fresh_backup(&sb, "btrfs");
    let o = clean(Command::new(&program).args(["-s", "100", &s(&backup)]))
        .output()
        .unwrap();
    assert_ok(
        "the certified program on a btrfs subvolume truncates a backup",
        &o,
    );
    assert_eq!(std::fs::metadata(&backup).unwrap().len(), 100);
    // The same program with the same inode number in another subvolume: not certified.
    let o = clean(Command::new(&twin).args(["-s", "0", &s(&backup)]))
        .output()
        .unwrap();
    assert_eperm("the twin in another subvolume, same inode number", &o);
    assert_eq!(std::fs::metadata(&backup).unwrap().len(), 100);
}

/// A certified Python program whose byte code is missing or stale (a module restored from a
/// backup, a package installed with `--no-compile`): Python writes `__pycache__` on its first
/// run, and that write must not break the program's own certification. Certification compiles
/// the stale byte code first, so both runs write, and the listing shows nothing changed.
#[test]
fn a_python_program_with_stale_byte_code_keeps_its_certification() {
    let sb = protected(64);
    let dir = sb.path().join("pyprog");
    std::fs::create_dir_all(dir.join("pkg")).unwrap();
    let script = dir.join("job");
    std::fs::write(
        &script,
        "#!/usr/bin/python3\nimport sys, helper, pkg\nhelper.cut(sys.argv[1], pkg.SIZE)\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    // A sibling module never compiled...
    std::fs::write(
        dir.join("helper.py"),
        "import os\ndef cut(p, n):\n    os.truncate(p, n)\n",
    )
    .unwrap();
    // ...and a package whose byte code is older than its source.
    let init = dir.join("pkg/__init__.py");
    std::fs::write(&init, "SIZE = 1\n").unwrap();
    let o = Command::new("python3")
        .args(["-m", "py_compile", &s(&init)])
        .output()
        .unwrap();
    assert_ok("py_compile", &o);
    std::fs::write(&init, "SIZE = 0\n").unwrap();
    let later = std::time::SystemTime::now() + std::time::Duration::from_secs(5);
    std::fs::File::options()
        .write(true)
        .open(&init)
        .unwrap()
        .set_modified(later)
        .unwrap();

    let certified = sb.imageguard(&["certify", &s(&script)]).expect("certify");
    assert_ok("certify", &certified);
    // Python as users run it, writing byte code (`clean`).
    let run =
        |target: &Path| output_fresh(clean(Command::new(&script).arg(target)).env("HOME", "/root"));
    for (i, name) in ["s1", "s2"].iter().enumerate() {
        let target = fresh_backup(&sb, name);
        assert_ok(&format!("certified run {}", i + 1), &run(&target));
        assert_eq!(
            std::fs::metadata(&target).unwrap().len(),
            0,
            "run {}",
            i + 1
        );
    }
    let listing = sb.imageguard(&["certified"]).unwrap();
    let text = String::from_utf8_lossy(&listing.stdout);
    assert!(!text.contains("CHANGED"), "{text}");
    assert!(
        stderr(&certified).contains("byte code"),
        "certify says it compiled: {}",
        stderr(&certified)
    );
}

/// Unmounts a mount of the test's own when dropped (also when the test fails).
struct OwnMount(PathBuf);

impl Drop for OwnMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// A certified program on tmpfs patched through a shared mapping: tmpfs keeps a file's times
/// then, so its unchanged `stat` proves nothing; the closure's content is compared instead,
/// and the patched program is refused (the control: the same program, unpatched, writes).
#[test]
fn a_certified_program_on_tmpfs_patched_through_a_shared_mapping_is_refused() {
    let sb = protected(64);
    let shm = sb.path().join("shm");
    let _mounted = mount_tmpfs(&shm);
    let prog = shm.join("truncate");
    std::fs::copy("/usr/bin/truncate", &prog).unwrap();
    certified_then_patched_through_a_shared_mapping(&sb, &prog, true);
}

/// The same on an overlay whose upper layer is tmpfs (a live system's root, a container's, the
/// VM's `/usr`): the overlay's file is written in its upper layer and shows that layer's times.
/// One program is copied up before it is certified (as any file of such a system that was
/// ever written), one is certified in the lower layer and copied up by the patch itself.
#[test]
fn a_certified_program_on_an_overlay_over_tmpfs_patched_through_a_shared_mapping_is_refused() {
    let sb = protected(64);
    let shm = sb.path().join("shm");
    let _tmpfs = mount_tmpfs(&shm);
    let lower = sb.path().join("lower");
    let merged = sb.path().join("merged");
    for d in [&lower, &merged, &shm.join("upper"), &shm.join("work")] {
        std::fs::create_dir_all(d).unwrap();
    }
    for name in ["upper-truncate", "lower-truncate"] {
        std::fs::copy("/usr/bin/truncate", lower.join(name)).unwrap();
    }
    let o = Command::new("mount")
        .args(["-t", "overlay", "overlay", "-o"])
        .arg(format!(
            "lowerdir={},upperdir={},workdir={}",
            lower.display(),
            shm.join("upper").display(),
            shm.join("work").display()
        ))
        .arg(&merged)
        .output()
        .unwrap();
    assert_ok("mount overlay", &o);
    let _overlay = OwnMount(merged.clone());
    let upper = merged.join("upper-truncate");
    drop(
        std::fs::OpenOptions::new()
            .write(true)
            .open(&upper)
            .unwrap(),
    );
    assert!(shm.join("upper/upper-truncate").exists(), "copied up");
    certified_then_patched_through_a_shared_mapping(&sb, &upper, true);
    certified_then_patched_through_a_shared_mapping(&sb, &merged.join("lower-truncate"), false);
}

fn mount_tmpfs(at: &Path) -> OwnMount {
    std::fs::create_dir_all(at).unwrap();
    let o = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=16m", "tmpfs"])
        .arg(at)
        .output()
        .unwrap();
    assert_ok("mount tmpfs", &o);
    OwnMount(at.to_path_buf())
}

/// `prog` (a copy of truncate) certified writes; patched through a shared mapping, it is
/// refused. `times_kept`: the patch leaves its times as they were (what the case is about:
/// where it does not, the copy-up moved them).
fn certified_then_patched_through_a_shared_mapping(
    sb: &imageguard::sandbox::Sandbox,
    prog: &Path,
    times_kept: bool,
) {
    // (a tool that changes any file it is given: certified only by force)
    certify(sb, prog, true);
    let name = prog.file_name().unwrap().to_string_lossy().to_string();
    let run = |target: &Path| output_fresh(clean(Command::new(prog).args(["-s", "0"]).arg(target)));
    assert_ok(
        "certified, unpatched (the control)",
        &run(&fresh_backup(sb, &format!("{name}-1"))),
    );
    let patch = format!(
        "import mmap, os\n\
         fd = os.open('{}', os.O_RDWR); m = mmap.mmap(fd, 0); os.close(fd)\n\
         m[len(m) - 1] ^= 0xff; m.flush(); m.close()\n",
        prog.display()
    );
    let before = std::fs::metadata(prog).unwrap();
    assert_ok(
        "patch through a shared mapping",
        &Command::new("python3")
            .args(["-c", &patch])
            .output()
            .unwrap(),
    );
    let after = std::fs::metadata(prog).unwrap();
    use std::os::unix::fs::MetadataExt;
    let kept =
        (before.mtime_nsec(), before.ctime_nsec()) == (after.mtime_nsec(), after.ctime_nsec());
    assert_eq!(kept, times_kept, "{name}: whether the patch kept its times");
    assert_eperm(
        &format!("{name} certified, patched"),
        &run(&fresh_backup(sb, &format!("{name}-2"))),
    );
}
