//! The kernel shield (issue 18): with its BPF LSM programs attached, on a shielded volume only
//! the service's own tasks may change files, root or not, through whatever mount leads there.
//! Shown in a virtual machine (this machine's kernel refuses LSM programs; Debian's 6.1 under
//! virtme-ng has the bpf LSM), one boot for every case:
//! - the shield alone: a root child (another thread group) is refused 15 kinds of change (file
//!   times included),
//!   through the volume's mount and a second mount of its device made before (a third is
//!   refused, and so is unmounting it), and opening the volume's
//!   block device (dd, debugfs -w) or a device beneath it for writing, each reported with its
//!   path; this process (the "service") writes and deletes there (the control); released, the
//!   child may again; a folder of that file system marked, everything in it is refused
//!   through a bind mount of its parent (15 ways, open by handle included) while the rest
//!   stays writable; pinned, the shield outlives its loader, is taken over, replaced when
//!   another version pinned it, and lets go only when unpinned;
//! - the service (`kernel_shield = "auto"`): a protected volume is shielded with its device and
//!   loop image file; through the guard a file that is no backup is written (the control); a
//!   second mount in the attacker's own namespace, dd onto the device and into the image file,
//!   truncating, deleting or renaming over the image, a second loop device on it, nsenter into
//!   the keeper namespace and /proc/<service>/fd/N are refused and logged as 320; so are its
//!   cwd, root, maps, namespaces and ptrace (the same on another process: the control); so are
//!   mounts (over and inside the guard, a bind into it, umount -l and remount of it, umount of
//!   the backing in the keeper, open_tree + move_mount of the guard or a clone of it; the same
//!   where nothing is protected go through); a certified process is reached into by nobody, and
//!   a traced process may not execute a certified program (an uncertified one: the control); an
//!   fmod_ret program may not load, nor a kprobe program once the admin lock is set (before:
//!   the control); killed, the service leaves it shielded; restarted, it takes the same shield
//!   over, in a time namespace of its own too, and gives it back from there; a folder of another volume protected through it is refused through a bind mount
//!   and logged with its path; with the admin lock set, kill -TERM/-KILL/-STOP/-INT/-HUP are
//!   refused, and so are changes to its configuration, state and unit names (masking,
//!   shadowing, a drop-in, disabling); stopped with the passphrase, it lets go.
//!
//! On this machine: the shield says it is unavailable and why, the service runs without it and
//! says so, and the FUSE guard refuses as before.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

use common::*;
use imageguard::sandbox::Sandbox;
use imageguard_shield::{kernel_dev, Refusals, Refused, Shield, ShieldError, Task};

use common::vm::VERDICT;
use imageguard::vm::IN_VM;

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
    // The service runs without it, says why, and the FUSE guard protects as before.
    let mut sb = Sandbox::new(&exe(), 64).expect("sandbox");
    let f = sb.mnt.join("b.mrimg");
    write_pattern(&f, 1000, 1);
    sb.start_service().expect("service");
    assert_ok(
        "protect",
        &sb.imageguard(&["protect", &sb.mnt.to_string_lossy()])
            .unwrap(),
    );
    let status = status(&sb);
    if !imageguard_shield::bpf_lsm_active() {
        assert_eq!(status["kernel_shield_on"], false, "{status:#}");
        let said = status["kernel_shield"].as_str().unwrap_or("");
        assert!(
            said.starts_with("unavailable: the bpf LSM is not active") && said.contains("doctor"),
            "{said}"
        );
        assert!(
            !sb.path().join("run/shield").exists(),
            "nothing mounted for a shield that cannot run"
        );
    }
    assert_doctor_says(&sb);
    assert_eperm(
        "rm through the guard, shield unavailable",
        &child(&format!("rm -f '{}'", f.display())),
    );
    drop(sb);
    let guest =
        common::vm::run_this_test_inside("only_the_service_changes_files_on_a_shielded_volume");
    assert_eq!(
        guest.verdict, "shielded",
        "in the virtual machine (active LSMs: {}):\n{}\nvng: {}",
        guest.lsm, guest.log, guest.vng
    );
    println!("{}", guest.log);
}

/// The kernel ends a certified process's certification where code from outside its closure
/// arrives (certify.bpf.h): once ended, reaching into it (`reach`, a script given its pid) goes
/// through. Each case starts the same certified program, which is reached into by nobody
/// before (the control): started with LD_PRELOAD; mapping a library outside its closure
/// (dlopen); asking to be traced (PTRACE_TRACEME); mapping anonymous executable memory. `holder`: a certified copy of sleep.
fn certification_ends_where_foreign_code_arrives(
    sb: &Sandbox,
    holder: &Path,
    reach: &dyn Fn(u32) -> String,
) {
    let wait_until = |what: &str, pid: u32, reachable: bool| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let o = child(&reach(pid));
            if o.status.success() == reachable {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{what}: reachable {}, not {reachable}: {o:?}; /proc/{pid}/stat: {:?}; \
                 late.err: {:?}\n{}",
                o.status.success(),
                std::fs::read_to_string(format!("/proc/{pid}/stat")),
                std::fs::read_to_string(sb.path().join("late.err")),
                sb.service_log()
            );
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    };
    let logged = |what: &str, words: &str| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !sb.service_log().contains(words) {
            assert!(
                std::time::Instant::now() < deadline,
                "{what}: the service did not log {words:?}:\n{}",
                sb.service_log()
            );
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    };
    // A library of nobody's closure (libm would not do: the name-service modules every
    // closure holds bring it).
    let foreign = sb.path().join("foreign.c");
    std::fs::write(&foreign, "int foreign(void) { return 1; }\n").unwrap();
    let foreign_so = sb.path().join("libforeign.so");
    assert_ok(
        "gcc -shared foreign.c",
        &Command::new("gcc")
            .arg("-shared")
            .arg("-fPIC")
            .arg("-o")
            .arg(&foreign_so)
            .arg(&foreign)
            .output()
            .unwrap(),
    );
    let foreign_so = foreign_so.to_str().unwrap();
    // Started with LD_PRELOAD: not certified, and logged; without it, certified (the
    // control, again, in this same function).
    let mut plain = clean(&mut Command::new(holder)).arg("60").spawn().unwrap();
    wait_until("the certified holder (the control)", plain.id(), false);
    let _ = plain.kill();
    let _ = plain.wait();
    let mut preloaded = clean(&mut Command::new(holder))
        .arg("60")
        .env("LD_PRELOAD", foreign_so)
        .spawn()
        .unwrap();
    wait_until("the holder started with LD_PRELOAD", preloaded.id(), true);
    logged(
        "LD_PRELOAD",
        &format!(
            "process {} (holder, uid 0) is no longer certified: its start-up environment sets LD_PRELOAD",
            preloaded.id()
        ),
    );
    let _ = preloaded.kill();
    let _ = preloaded.wait();
    // A certified program that, after three seconds, loads a library (dlopen), asks to be
    // traced, or maps anonymous executable memory (as a JIT would).
    let source = sb.path().join("late.c");
    std::fs::write(
        &source,
        "#include <dlfcn.h>\n#include <stdio.h>\n#include <string.h>\n#include <unistd.h>\n\
         #include <sys/mman.h>\n#include <sys/ptrace.h>\n\
         int main(int argc, char **argv) {\n\
         \x20   sleep(3);\n\
         \x20   if (argc > 1 && strcmp(argv[1], \"traceme\") == 0) ptrace(PTRACE_TRACEME, 0, 0, 0);\n\
         \x20   else if (argc > 1 && strcmp(argv[1], \"jit\") == 0) {\n\
         \x20       if (mmap(0, 4096, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) == MAP_FAILED) return 1;\n\
         \x20   }\n\
         \x20   else if (argc > 1 && !dlopen(argv[1], RTLD_NOW)) { fprintf(stderr, \"%s\\n\", dlerror()); return 1; }\n\
         \x20   sleep(60);\n\
         \x20   return 0;\n\
         }\n",
    )
    .unwrap();
    let late = sb.path().join("late");
    assert_ok(
        "gcc late.c",
        &Command::new("gcc")
            .arg("-o")
            .arg(&late)
            .arg(&source)
            .arg("-ldl")
            .output()
            .unwrap(),
    );
    assert_ok(
        "certify late",
        &sb.imageguard(&["certify", &late.display().to_string()])
            .unwrap(),
    );
    for (arg, words) in [
        (
            foreign_so,
            "it mapped code of …/libforeign.so, outside its closure",
        ),
        ("traceme", "it asked to be traced"),
        ("jit", "it mapped anonymous executable memory"),
    ] {
        let mut p = clean(&mut Command::new(&late))
            .arg(arg)
            .stderr(std::fs::File::create(sb.path().join("late.err")).unwrap())
            .spawn()
            .unwrap();
        let pid = p.id();
        // Certified until then (the control): reached into by nobody.
        let o = child(&reach(pid));
        assert!(!o.status.success(), "late {arg}: reached before: {o:?}");
        wait_until(&format!("late {arg}"), pid, true);
        logged(
            &format!("late {arg}"),
            &format!("process {pid} (late, uid 0) is no longer certified: {words}"),
        );
        let _ = p.kill();
        let _ = p.wait();
    }
}

/// A SCSI WRITE(10) of one zeroed block at `lba`, sent with SG_IO on `node` opened read-only
/// (root's CAP_SYS_RAWIO lets write commands through a read-only descriptor): exits 0 when the
/// device took it.
fn sg_write(node: &str, lba: u32) -> std::process::Output {
    let script = format!(
        r#"
import ctypes, fcntl, os, sys
class H(ctypes.Structure):
    _fields_ = [("interface_id", ctypes.c_int), ("dxfer_direction", ctypes.c_int),
        ("cmd_len", ctypes.c_ubyte), ("mx_sb_len", ctypes.c_ubyte), ("iovec_count", ctypes.c_ushort),
        ("dxfer_len", ctypes.c_uint), ("dxferp", ctypes.c_void_p), ("cmdp", ctypes.c_void_p),
        ("sbp", ctypes.c_void_p), ("timeout", ctypes.c_uint), ("flags", ctypes.c_uint),
        ("pack_id", ctypes.c_int), ("usr_ptr", ctypes.c_void_p), ("status", ctypes.c_ubyte),
        ("masked_status", ctypes.c_ubyte), ("msg_status", ctypes.c_ubyte), ("sb_len_wr", ctypes.c_ubyte),
        ("host_status", ctypes.c_ushort), ("driver_status", ctypes.c_ushort), ("resid", ctypes.c_int),
        ("duration", ctypes.c_uint), ("info", ctypes.c_uint)]
lba = {lba}
cdb = (ctypes.c_ubyte * 10)(0x2A, 0, (lba >> 24) & 255, (lba >> 16) & 255, (lba >> 8) & 255, lba & 255, 0, 0, 1, 0)
data = (ctypes.c_ubyte * 512)()
sense = (ctypes.c_ubyte * 32)()
h = H(interface_id=ord("S"), dxfer_direction=-2, cmd_len=10, mx_sb_len=32, dxfer_len=512,
      dxferp=ctypes.addressof(data), cmdp=ctypes.addressof(cdb), sbp=ctypes.addressof(sense), timeout=5000)
fd = os.open("{node}", os.O_RDONLY)
try:
    fcntl.ioctl(fd, 0x2285, h)
except OSError as e:
    sys.stderr.write("SG_IO: " + os.strerror(e.errno)); sys.exit(1)
sys.exit(0 if h.status == 0 and h.host_status == 0 and h.driver_status == 0 else 2)
"#
    );
    child(&format!("python3 -c '{}'", script.replace('\'', "'\"'\"'")))
}

/// A SCSI disk (scsi_debug) protected by the service: before, SG_IO writes it through its
/// block device and its /dev/sg node opened read-only (the control); protected, both refused,
/// and so is opening the sg node for writing.
fn scsi_commands_beneath_the_file_system(sb: &mut Sandbox) {
    assert_ok(
        "modprobe scsi_debug",
        &sh("modprobe scsi_debug dev_size_mb=32 num_tgts=1 max_luns=1"),
    );
    // The disk appears once the host is scanned (seconds under emulation).
    let mut disk = String::new();
    for _ in 0..120 {
        disk = String::from_utf8_lossy(
            &sh("for d in /sys/block/sd*; do grep -qs scsi_debug $d/device/model && basename $d; done")
                .stdout,
        )
        .trim()
        .to_string();
        if !disk.is_empty() && Path::new(&format!("/dev/{disk}")).exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    assert!(disk.starts_with("sd"), "the scsi_debug disk: {disk:?}");
    let sg = String::from_utf8_lossy(
        &sh(&format!("basename /sys/block/{disk}/device/scsi_generic/*")).stdout,
    )
    .trim()
    .to_string();
    let (dev, sgdev) = (format!("/dev/{disk}"), format!("/dev/{sg}"));
    assert_ok(
        "mkfs on the SCSI disk",
        &sh(&format!("mkfs.ext4 -q -F {dev}")),
    );
    let mnt = sb.path().join("scsi");
    std::fs::create_dir_all(&mnt).unwrap();
    assert_ok("mount", &sh(&format!("mount {dev} '{}'", mnt.display())));
    write_pattern(&mnt.join("disk.mrimg"), 50_000, 9);
    // The control: SG_IO writes go through while the disk is not protected.
    assert_ok(
        "SG_IO WRITE on the block device (control)",
        &sg_write(&dev, 60_000),
    );
    assert_ok(
        "SG_IO WRITE on the sg node (control)",
        &sg_write(&sgdev, 60_001),
    );
    assert_ok(
        "protect the SCSI disk",
        &sb.imageguard(&["protect", &mnt.to_string_lossy()]).unwrap(),
    );
    assert_eperm(
        "child: SG_IO WRITE on the protected block device",
        &sg_write(&dev, 60_000),
    );
    assert_eperm(
        "child: SG_IO WRITE on its sg node",
        &sg_write(&sgdev, 60_001),
    );
    assert_eperm(
        "child: the sg node opened for writing",
        &child(&format!("exec 3>{sgdev}")),
    );
    assert_ok(
        "unprotect the SCSI disk",
        &sb.imageguard(&["unprotect", &mnt.to_string_lossy()])
            .unwrap(),
    );
    assert_ok("SG_IO WRITE once unprotected", &sg_write(&sgdev, 60_002));
    let _ = sh(&format!("umount '{}'", mnt.display()));
}

/// `imageguard doctor --json` says what this kernel has: the bpf LSM as it is here, and what
/// the running service says of its shield.
fn assert_doctor_says(sb: &Sandbox) {
    let out = sb.imageguard(&["doctor", "--json"]).unwrap();
    assert_ok("doctor", &out);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let features = v["features"].as_array().expect("features");
    let lsm = features
        .iter()
        .find(|f| f["feature"] == "bpf LSM")
        .expect("the bpf LSM's finding");
    let active = imageguard_shield::bpf_lsm_active();
    assert_eq!(
        lsm["standing"],
        if active { "ok" } else { "missing" },
        "{v:#}"
    );
    if !active {
        assert!(lsm["advice"].as_str().unwrap().contains("bpf"), "{v:#}");
    }
    let service = v["kernel_shield"]["service"].as_str().unwrap_or("");
    assert_eq!(service.starts_with("on"), active, "{v:#}");
    assert_eq!(v["kernel_shield"]["configured"], "auto", "{v:#}");
}

fn child(script: &str) -> std::process::Output {
    sh(script)
}

/// Whether a failed command said it was refused (EPERM: "Operation not permitted", or as
/// mount(8) words it, "permission denied", and umount(8), "must be superuser").
fn refused_words(o: &std::process::Output) -> bool {
    let e = String::from_utf8_lossy(&o.stderr).to_lowercase();
    e.contains("operation not permitted")
        || e.contains("permission denied")
        || e.contains("must be superuser")
}

/// `o` failed, saying it was refused.
fn assert_refused(what: &str, o: &std::process::Output) {
    assert!(
        !o.status.success() && refused_words(o),
        "{what}: went through, or failed otherwise: {o:?}"
    );
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
    // The device mounted a second time before it is shielded (the control: mounting it works).
    let again = sb.path().join("again");
    std::fs::create_dir_all(&again).unwrap();
    let device = imageguard_volume::MountTable::read()
        .unwrap()
        .at(&sb.mnt)
        .map(|e| e.source.clone())
        .expect("the volume's device");
    assert_ok(
        "mount the device again (before the shield)",
        &sh(&format!("mount '{device}' '{}'", again.display())),
    );
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
        (
            "file times (touch -d)",
            format!("touch -d 2001-01-01 '{f}'"),
        ),
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
        (Refused::SetAttr, "backup.mrimg", "touch"),
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
    // A second mount of the same device made before: the same superblock, refused as well.
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
    // Mounting it once more, or unmounting a mount of it, is refused; this process (the
    // "service") unmounts it.
    let third = sb.path().join("third");
    std::fs::create_dir_all(&third).unwrap();
    assert_refused(
        "child: mount the shielded device again",
        &child(&format!("mount '{device}' '{}'", third.display())),
    );
    assert_refused(
        "child: umount a mount of the shielded device",
        &child(&format!("umount '{}'", again.display())),
    );
    imageguard_volume::mountapi::detach(&again).expect("the service unmounts it");
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
    folder_of_a_larger_file_system(&sb, &mut shield, &mut refusals);
    the_kernel_decides_as_the_policy_core(&sb, &mut shield, &mut refusals, dev);
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
    // Pinned by another version of the service (here one of its maps' pins is missing, as
    // when an upgrade adds a map): not taken over but replaced, what it shielded carried over.
    drop(again);
    std::fs::remove_file(pins.join("dir_sb")).unwrap();
    let replaced = Shield::load_pinned(Task::current().unwrap(), &pins).expect("replacing");
    assert_eperm(
        "child: append, replaced",
        &child(&format!("echo x >> '{sp}'")),
    );
    // Unpinned, the append goes through: the replaced shield's links are gone too.
    replaced.unpin().expect("unpin");
    assert_ok(
        "child: append once unpinned",
        &child(&format!("echo x >> '{sp}'")),
    );
    let _ = sh(&format!("umount '{}'", pins.display()));
    drop(sb);
    the_service_shields_what_it_protects();
    std::fs::write(shared.join(VERDICT), "shielded").unwrap();
}

/// The policy refusals `refusals` holds, after waiting up to `ms` milliseconds for some.
fn policy_refusals(refusals: &mut Refusals, ms: u64) -> Vec<imageguard_shield::Refusal> {
    refusals
        .wait(std::time::Duration::from_millis(ms))
        .unwrap()
        .into_iter()
        .filter(|r| r.what == Refused::Policy)
        .collect()
}

/// The kernel backend (decide.bpf.h) on the volume `dev`, as a differential test against the
/// policy core's compiled table: every operation the file hooks map (but the extended
/// attributes, which busybox has no applet for) on an entry of every class, by a caller
/// certified or not, with protection on and off (and a key window open, for key material),
/// is done for real, and each outcome is the table's verdict for that case; each refusal is
/// reported with its case. Both callers run the same code, busybox's shell and applets: the
/// certified one a copy of the static busybox (its own file its whole closure), the other
/// /bin/busybox, so only the certification differs. Controls: the rows hold both outcomes;
/// released, a marked file changes again.
fn the_kernel_decides_as_the_policy_core(
    sb: &Sandbox,
    shield: &mut Shield,
    refusals: &mut Refusals,
    dev: u32,
) {
    use imageguard_policy::compiled::{Case, ClassCode, LockCode, VerdictTable};
    use imageguard_policy::Operation;
    use imageguard_shield::{Program, VolumeCircumstances};
    let table = VerdictTable::compile();
    let dir = sb.mnt.join("kernel-decided");
    let elsewhere = dir.join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    // The certified program.
    let bin = sb.path().join("certified-bin");
    std::fs::create_dir_all(&bin).unwrap();
    let busybox = bin.join("busybox");
    std::fs::copy("/bin/busybox", &busybox).expect("a static busybox (busybox-static)");
    let mounts = imageguard_volume::MountTable::read().unwrap();
    let program = Program {
        id: 4242,
        runtimes: 0,
    };
    let identities = imageguard_volume::layers::file_identities_in(&mounts, &busybox).unwrap();
    for &(major, minor, ino) in &identities {
        let d = kernel_dev(major, minor);
        shield.protect_program(d, ino, &program).unwrap();
        shield.allow_code(program.id, d, ino).unwrap();
    }
    // What each operation runs on the file `{f}` (busybox's shell and applets).
    let ops: &[(Operation, &str)] = &[
        (Operation::Delete, "rm -f {f}"),
        (Operation::OpenAppend, "echo x >> {f}"),
        (Operation::Truncate, ": > {f}"),
        (
            Operation::OpenWrite,
            "dd if=/dev/zero of={f} bs=1 count=1 conv=notrunc",
        ),
        (Operation::RenameInFolder, "mv {f} {f}.moved"),
        (Operation::Rename, "mv {f} {elsewhere}/"),
        (Operation::Replace, "echo new > {f}.src && mv {f}.src {f}"),
        (Operation::HardLink, "ln {f} {f}.link"),
        (Operation::SetAttributes, "chmod 600 {f}"),
    ];
    let key_material = [ClassCode::ResticKeyMaterial, ClassCode::BorgKeyMaterial];
    let mut outcomes = std::collections::BTreeSet::new();
    let mut expected = vec![];
    let mut seen = vec![];
    let mut rows = 0;
    for &(op, script) in ops {
        for class in ClassCode::ALL {
            for certified in [false, true] {
                for off in [false, true] {
                    let windows: &[bool] = if key_material.contains(&class) {
                        &[false, true]
                    } else {
                        &[false]
                    };
                    for &window in windows {
                        rows += 1;
                        let name = format!("row{rows}");
                        let file = dir.join(&name);
                        std::fs::write(&file, b"backup bytes").unwrap();
                        let ino = std::fs::metadata(&file).unwrap().ino();
                        shield.policy().mark(dev, ino, class).unwrap();
                        let now = VolumeCircumstances {
                            protection_off: off,
                            key_window_open: window,
                        };
                        shield.policy().decide_volume(dev, now).unwrap();
                        let script = script
                            .replace("{f}", &file.display().to_string())
                            .replace("{elsewhere}", &elsewhere.display().to_string());
                        let shell = if certified {
                            busybox.as_path()
                        } else {
                            Path::new("/bin/busybox")
                        };
                        let o = clean(&mut Command::new(shell))
                            .args(["sh", "-c", &script])
                            .output()
                            .unwrap();
                        let case = Case {
                            certified,
                            op,
                            class,
                            key_window_open: window,
                            lock: LockCode::None,
                            protection_off: off,
                        };
                        let verdict = table.lookup(&case);
                        outcomes.insert(verdict.is_allowed());
                        let row = format!("row {rows}: {case:?} ({script})");
                        if verdict.is_allowed() {
                            assert_ok(&format!("{row}: the table allows it"), &o);
                        } else {
                            assert_eperm(&format!("{row}: the table says {verdict:?}"), &o);
                            expected.push((case, verdict, name));
                        }
                        shield.policy().unmark(dev, ino).unwrap();
                        seen.extend(policy_refusals(refusals, 0));
                    }
                }
            }
        }
    }
    assert!(
        outcomes.len() == 2,
        "the {rows} rows hold both verdicts (else they prove little)"
    );
    let until = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while seen.len() < expected.len() && std::time::Instant::now() < until {
        seen.extend(policy_refusals(refusals, 500));
    }
    // Each refusal reported with its case (the name is the row's own: unique).
    for (case, verdict, name) in &expected {
        assert!(
            seen.iter().any(|r| r.case.is_some_and(|c| c.op == case.op
                && c.class == case.class
                && c.certified == case.certified
                && c.verdict == *verdict)
                && r.path.rsplit('/').next() == Some(name.as_str())
                && r.dev == dev),
            "{case:?} on {name} reported: {:#?}",
            seen.iter().rev().take(5).collect::<Vec<_>>()
        );
    }
    println!(
        "kernel backend: {rows} rows, {} refused, each as the compiled table says",
        expected.len()
    );
    // Released: a marked file changes again (the volume's policy is FUSE's then).
    let kept = dir.join("kept.mrimg");
    std::fs::write(&kept, b"x").unwrap();
    let ino = std::fs::metadata(&kept).unwrap().ino();
    shield.policy().mark(dev, ino, ClassCode::Pattern).unwrap();
    shield
        .policy()
        .decide_volume(dev, VolumeCircumstances::default())
        .unwrap();
    let append = format!("echo x >> '{}'", kept.display());
    assert_eperm("child: append to a marked file", &child(&append));
    shield.policy().release_volume(dev).unwrap();
    assert_ok("child: append once the volume is released", &child(&append));
    shield.policy().unmark(dev, ino).unwrap();
    for &(major, minor, ino) in &identities {
        shield
            .release_program(kernel_dev(major, minor), ino)
            .unwrap();
    }
}

/// The service with `kernel_shield = "auto"` (the default): a protected volume is shielded
/// with the devices and the image file beneath it, so the guard is the only door; refusals are
/// logged as 320; killed, the service leaves it shielded; restarted, it takes the shield over;
/// A protected folder of a larger file system (protect_dir): everything in it, at any depth and
/// the folder itself, whatever mount leads there (a bind mount of its parent here, as root
/// would make one), and a backup of it hard-linked from outside before protection (by every
/// name); the rest of that file system stays writable (the controls).
fn folder_of_a_larger_file_system(sb: &Sandbox, shield: &mut Shield, refusals: &mut Refusals) {
    let srv = sb.mnt.join("srv");
    let folder = srv.join("backups");
    let deep = folder.join("a/b/c");
    std::fs::create_dir_all(&deep).unwrap();
    write_pattern(&deep.join("deep.mrimg"), 10_000, 6);
    write_pattern(&folder.join("top.mrimg"), 10_000, 7);
    std::fs::write(srv.join("other.txt"), b"not in the folder\n").unwrap();
    std::fs::hard_link(folder.join("top.mrimg"), srv.join("top-link.mrimg")).unwrap();
    let bind = sb.path().join("bind");
    std::fs::create_dir_all(&bind).unwrap();
    assert_ok(
        "bind mount of the folder's parent",
        &sh(&format!(
            "mount --bind '{}' '{}'",
            srv.display(),
            bind.display()
        )),
    );
    let d = std::fs::metadata(&folder).unwrap();
    let dev = kernel_dev(libc::major(d.dev()), libc::minor(d.dev()));
    let top = std::fs::metadata(folder.join("top.mrimg")).unwrap();
    shield
        .protect_dir(dev, d.ino())
        .expect("marking the folder");
    shield
        .protect_inode(dev, top.ino())
        .expect("the hard-linked backup");
    let b = bind.display().to_string();
    let before_deep = std::fs::read(deep.join("deep.mrimg")).unwrap();
    let before_top = std::fs::read(folder.join("top.mrimg")).unwrap();
    // Open by handle: the entry may come back disconnected from its folder (caches dropped),
    // which counts as inside.
    let by_handle = format!(
        "python3 -c 'import ctypes,os,sys; l=ctypes.CDLL(None, use_errno=True); \
         h=ctypes.create_string_buffer(8+128); ctypes.memmove(h, (128).to_bytes(4,\"little\"), 4); \
         m=ctypes.c_int(); \
         l.name_to_handle_at(-100, b\"{b}/backups/a/b/c/deep.mrimg\", h, ctypes.byref(m), 0) == 0 \
           or sys.exit(\"name_to_handle_at: \" + os.strerror(ctypes.get_errno())); \
         open(\"/proc/sys/vm/drop_caches\", \"w\").write(\"2\"); \
         mfd=os.open(\"{b}\", os.O_RDONLY); \
         fd=l.open_by_handle_at(mfd, h, os.O_WRONLY|os.O_APPEND); \
         fd >= 0 or sys.exit(\"open_by_handle_at: \" + os.strerror(ctypes.get_errno())); \
         os.write(fd, b\"x\")'"
    );
    for (what, script) in [
        (
            "append, deep in the folder",
            format!("echo x >> '{b}/backups/a/b/c/deep.mrimg'"),
        ),
        ("rm", format!("rm -f '{b}/backups/top.mrimg'")),
        (
            "truncate",
            format!("truncate -s 0 '{b}/backups/a/b/c/deep.mrimg'"),
        ),
        (
            "rename out of the folder",
            format!("mv '{b}/backups/top.mrimg' '{b}/out.mrimg'"),
        ),
        (
            "rename into the folder",
            format!("mv '{b}/other.txt' '{b}/backups/other.txt'"),
        ),
        (
            "create in the folder",
            format!("touch '{b}/backups/a/new.mrimg'"),
        ),
        (
            "mkdir in the folder",
            format!("mkdir '{b}/backups/a/b/new'"),
        ),
        ("rename the folder", format!("mv '{b}/backups' '{b}/moved'")),
        ("chmod of the folder", format!("chmod 777 '{b}/backups'")),
        (
            "hard link out of the folder",
            format!("ln '{b}/backups/a/b/c/deep.mrimg' '{b}/deep-link'"),
        ),
        (
            "hard link into the folder",
            format!("ln '{b}/other.txt' '{b}/backups/other-link'"),
        ),
        (
            "append through the outside link",
            format!("echo x >> '{b}/top-link.mrimg'"),
        ),
        (
            "rm of the outside link",
            format!("rm -f '{b}/top-link.mrimg'"),
        ),
        (
            "a tmpfs mounted inside the folder",
            format!("mount -t tmpfs none '{b}/backups/a'"),
        ),
        ("open by handle for writing", by_handle.clone()),
    ] {
        assert_refused(
            &format!("child: {what} (folder, through a bind mount)"),
            &child(&script),
        );
    }
    assert_eq!(std::fs::read(deep.join("deep.mrimg")).unwrap(), before_deep);
    assert_eq!(std::fs::read(folder.join("top.mrimg")).unwrap(), before_top);
    // Reported with the path from the file system's root.
    let mut seen = vec![];
    let until = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !seen
        .iter()
        .any(|r: &imageguard_shield::Refusal| r.path == "srv/backups/a/b/c/deep.mrimg")
        && std::time::Instant::now() < until
    {
        seen.extend(
            refusals
                .wait(std::time::Duration::from_millis(500))
                .unwrap(),
        );
    }
    assert!(
        seen.iter()
            .any(|r| r.path == "srv/backups/a/b/c/deep.mrimg" && r.dev == dev),
        "the deep append reported: {seen:#?}"
    );
    // The rest of the file system stays writable: the controls.
    for (what, script) in [
        (
            "append outside the folder",
            format!("echo x >> '{b}/other.txt'"),
        ),
        ("create outside the folder", format!("touch '{b}/new.txt'")),
        (
            "rename outside the folder",
            format!("mv '{b}/new.txt' '{b}/new2.txt'"),
        ),
        (
            "read in the folder",
            format!("cat '{b}/backups/a/b/c/deep.mrimg' > /dev/null"),
        ),
    ] {
        assert_ok(&format!("child: {what} (the control)"), &child(&script));
    }
    // This process (the service) changes files there.
    std::fs::write(deep.join("service.tmp"), b"the service").expect("the service writes");
    std::fs::remove_file(deep.join("service.tmp")).expect("the service deletes");
    // Let go: the same go through.
    shield.release_dir(dev, d.ino()).unwrap();
    shield.release_inode(dev, top.ino()).unwrap();
    assert_ok(
        "child: append deep in the folder once released",
        &child(&format!("echo x >> '{b}/backups/a/b/c/deep.mrimg'")),
    );
    assert_ok(
        "child: open by handle for writing once released",
        &child(&by_handle),
    );
    let _ = sh(&format!("umount '{b}'"));
}

/// What `status` says the shield covers of the protected volume at `mount_point`, and the
/// whole status (for a failing assertion's message).
fn volume_shield(sb: &Sandbox, mount_point: &str) -> (String, serde_json::Value) {
    let status = status(sb);
    let covered = status["volumes"]
        .as_array()
        .and_then(|v| v.iter().find(|v| v["mount_point"] == mount_point))
        .and_then(|v| v["kernel_shield"].as_str())
        .unwrap_or("")
        .to_string();
    (covered, status)
}

/// A folder of a larger file system (a second ext4 volume here) protected through the service:
/// the shield marks it, a backup in it is refused through a bind mount of its parent and logged
/// with its path under the folder, the rest of that file system and the guard's own way in
/// keep working (the controls), and unprotected it lets go.
fn a_folder_through_the_service(sb: &Sandbox) {
    let img = sb.path().join("larger.img");
    std::fs::File::create(&img)
        .unwrap()
        .set_len(32 << 20)
        .unwrap();
    assert_ok("mkfs", &sh(&format!("mkfs.ext4 -q -F '{}'", img.display())));
    let larger = sb.path().join("larger");
    std::fs::create_dir_all(&larger).unwrap();
    assert_ok(
        "mount the larger volume",
        &sh(&format!(
            "mount -o loop '{}' '{}'",
            img.display(),
            larger.display()
        )),
    );
    let folder = larger.join("srv/backups");
    std::fs::create_dir_all(&folder).unwrap();
    let backup = folder.join("night.mrimg");
    write_pattern(&backup, 20_000, 8);
    let before = std::fs::read(&backup).unwrap();
    std::fs::write(larger.join("srv/other.txt"), b"beside the folder\n").unwrap();
    let f = folder.display().to_string();
    assert_ok(
        "protect a folder",
        &sb.imageguard(&["protect", &f]).unwrap(),
    );
    let (covered, status) = volume_shield(sb, &f);
    assert!(
        covered.contains("everything in the folder"),
        "the folder covered: {status:#}"
    );
    let bind = sb.path().join("larger-bind");
    std::fs::create_dir_all(&bind).unwrap();
    assert_ok(
        "bind mount of the folder's parent",
        &sh(&format!(
            "mount --bind '{}/srv' '{}'",
            larger.display(),
            bind.display()
        )),
    );
    let b = bind.display().to_string();
    assert_eperm(
        "child: rm of a backup in a protected folder through a bind mount of its parent",
        &child(&format!("rm -f '{b}/backups/night.mrimg'")),
    );
    assert_eperm(
        "child: append to it there",
        &child(&format!("echo x >> '{b}/backups/night.mrimg'")),
    );
    assert_ok(
        "child: append beside the folder there (the control)",
        &child(&format!("echo x >> '{b}/other.txt'")),
    );
    assert_ok(
        "child: a file that is no backup written in the folder through its guard (the control)",
        &child(&format!("echo hello > '{f}/notes.txt'")),
    );
    // The folder's guard sits on the larger volume's mount: in the namespace the guards are
    // mounted in, nobody but the service takes it along (umount -l of that mount, a move of
    // it) or pivots the root; in another namespace, its copies are that namespace's own (the
    // controls).
    let l = larger.display().to_string();
    let elsewhere = sb.path().join("moved-larger");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let e = elsewhere.display().to_string();
    let new_root = sb.path().join("new-root");
    std::fs::create_dir_all(&new_root).unwrap();
    let n = new_root.display().to_string();
    assert_ok(
        "child: umount -l of the guard's parent mount in another namespace (the control)",
        &child(&format!("unshare -m sh -c \"umount -l '{l}'\"")),
    );
    assert_ok(
        "child: mount --move of it in another namespace (the control)",
        &child(&format!("unshare -m sh -c \"mount --move '{l}' '{e}'\"")),
    );
    assert_ok(
        "child: pivot_root in another namespace (the control)",
        &child(&format!(
            "unshare -m sh -c \"mount -t tmpfs none '{n}' && mkdir '{n}/old' && \
             pivot_root '{n}' '{n}/old'\""
        )),
    );
    assert_refused(
        "child: umount -l of the mount the folder's guard sits on",
        &child(&format!("umount -l '{l}'")),
    );
    assert_refused(
        "child: mount --move of it",
        &child(&format!("mount --move '{l}' '{e}'")),
    );
    assert_refused(
        "child: mount --move of the volume's guard",
        &child(&format!("mount --move '{}' '{e}'", sb.mnt.display())),
    );
    let beside = larger.join("beside");
    std::fs::create_dir_all(&beside).unwrap();
    assert_ok(
        "child: a tmpfs on a folder with no mount beneath it (the control)",
        &child(&format!(
            "mount -t tmpfs none '{d}' && umount '{d}'",
            d = beside.display()
        )),
    );
    assert_ok(
        "child: a tmpfs over the guard's parent folder in another namespace (the control)",
        &child(&format!(
            "unshare -m sh -c \"mount -t tmpfs none '{l}/srv'\""
        )),
    );
    assert_refused(
        "child: a tmpfs over the folder the guard's mount point is in (it would hide the guard)",
        &child(&format!("mount -t tmpfs none '{l}/srv'")),
    );
    assert_refused(
        "child: a bind mount over the mount the guard sits on",
        &child(&format!("mount --bind '{}' '{l}'", beside.display())),
    );
    assert_refused(
        "child: pivot_root where the guards are mounted",
        &child(&format!("mkdir -p '{b}/old' && pivot_root '{b}' '{b}/old'")),
    );
    assert_ok(
        "child: write through the folder's guard after them (the control)",
        &child(&format!("echo again >> '{f}/notes.txt'")),
    );
    assert_eq!(std::fs::read(&backup).unwrap(), before, "every byte intact");
    let evs = events(sb);
    assert!(
        evs.iter()
            .any(|e| e.id == 320 && e.message.contains("moving a mount (mount --move)")),
        "the moves logged: {:#?}",
        evs.iter().filter(|e| e.id == 320).collect::<Vec<_>>()
    );
    assert!(
        evs.iter().any(|e| e.id == 320
            && e.message.contains("kernel shield")
            && e.file.as_deref() == Some(&*backup.to_string_lossy())
            && e.operation.as_deref() == Some("delete")),
        "the rm logged with its path in the folder: {:#?}",
        evs.iter().filter(|e| e.id == 320).collect::<Vec<_>>()
    );
    assert_ok(
        "unprotect the folder",
        &sb.imageguard(&["unprotect", &f]).unwrap(),
    );
    assert_ok(
        "child: append through the bind mount once unprotected",
        &child(&format!("echo x >> '{b}/backups/night.mrimg'")),
    );
    let _ = sh(&format!("umount '{b}'"));
    let _ = sh(&format!("umount '{}'", larger.display()));
}

/// btrfs through the service. A folder that is a subvolume: the kernel names btrfs files by
/// the file system's one device and an inode number that repeats in every subvolume (each
/// subvolume's root is 256), so the programs name them by their subvolume's device (as `stat`
/// does, found through the layout this kernel's BTF gives): a backup there is refused through
/// a bind mount of the file system, other subvolumes stay writable (the control: a mark by
/// inode number alone would cover their roots too), chattr and the deletion of a subvolume
/// (which takes every file in it, with no file hook on the way) are refused, and once
/// unprotected both go through (the controls). A whole btrfs volume: its loop device, found
/// through /sys/fs/btrfs (the superblock's device is an anonymous one), is shielded too; so is
/// a volume's loop image file in a btrfs subvolume (refusals name it).
fn btrfs_through_the_service(sb: &Sandbox) {
    assert_ok("modprobe btrfs", &sh("modprobe btrfs"));
    let new_btrfs = |name: &str| {
        let img = sb.path().join(format!("{name}.img"));
        std::fs::File::create(&img)
            .unwrap()
            .set_len(128 << 20)
            .unwrap();
        assert_ok(
            "mkfs.btrfs",
            &sh(&format!("mkfs.btrfs -q '{}'", img.display())),
        );
        let m = sb.path().join(name);
        std::fs::create_dir_all(&m).unwrap();
        assert_ok(
            "mount the btrfs volume",
            &sh(&format!(
                "mount -o loop '{}' '{}'",
                img.display(),
                m.display()
            )),
        );
        m
    };
    let m = new_btrfs("btrfs");
    for sub in ["backups", "home", "scratch", "images"] {
        assert_ok(
            "btrfs subvolume create",
            &sh(&format!(
                "btrfs -q subvolume create '{}'",
                m.join(sub).display()
            )),
        );
    }
    std::fs::write(m.join("home/notes.txt"), b"notes\n").unwrap();
    let folder = m.join("backups");
    let backup = folder.join("night.mrimg");
    write_pattern(&backup, 20_000, 9);
    let before = std::fs::read(&backup).unwrap();
    let f = folder.display().to_string();
    assert_ok(
        "protect a btrfs subvolume's folder",
        &sb.imageguard(&["protect", &f]).unwrap(),
    );
    let (covered, status) = volume_shield(sb, &f);
    assert!(
        covered.contains("everything in the folder") && !covered.contains("FUSE guard alone"),
        "the btrfs folder shielded: {status:#}"
    );
    assert_eperm(
        "child: rm of a backup in the btrfs folder through its guard",
        &child(&format!("rm -f '{f}/night.mrimg'")),
    );
    let bind = sb.path().join("btrfs-bind");
    std::fs::create_dir_all(&bind).unwrap();
    assert_ok(
        "bind mount of the btrfs file system",
        &sh(&format!(
            "mount --bind '{}' '{}'",
            m.display(),
            bind.display()
        )),
    );
    let b = bind.display().to_string();
    assert_eperm(
        "child: rm of the backup through a bind mount of its file system",
        &child(&format!("rm -f '{b}/backups/night.mrimg'")),
    );
    assert_eperm(
        "child: append to it there",
        &child(&format!("echo x >> '{b}/backups/night.mrimg'")),
    );
    assert_eperm(
        "child: chattr +i on it there (an ioctl, no setattr hook)",
        &child(&format!("chattr +i '{b}/backups/night.mrimg'")),
    );
    assert_eperm(
        "child: btrfs subvolume delete of the protected folder there",
        &child(&format!("btrfs subvolume delete '{b}/backups'")),
    );
    assert_eperm(
        "child: btrfs subvolume delete --subvolid of another subvolume (which one, the shield cannot tell)",
        &child(&format!(
            "btrfs subvolume delete --subvolid $(btrfs inspect-internal rootid '{b}/scratch') '{b}'"
        )),
    );
    assert_ok(
        "child: a write in another subvolume, whose root has the folder's inode number (the control)",
        &child(&format!("echo x >> '{b}/home/notes.txt'")),
    );
    assert_ok(
        "child: chattr in another subvolume (the control)",
        &child(&format!("chattr +A '{b}/home/notes.txt'")),
    );
    // A second btrfs holding nothing protected: its subvolumes come and go (the control).
    let other = new_btrfs("btrfs-other");
    assert_ok(
        "btrfs subvolume create on another btrfs",
        &sh(&format!(
            "btrfs -q subvolume create '{}/s'",
            other.display()
        )),
    );
    assert_ok(
        "child: btrfs subvolume delete on a btrfs holding nothing protected (the control)",
        &child(&format!("btrfs subvolume delete '{}/s'", other.display())),
    );
    assert_eq!(std::fs::read(&backup).unwrap(), before, "every byte intact");
    let evs = events(sb);
    assert!(
        evs.iter().any(|e| e.id == 320
            && e.message.contains("deleting a btrfs subvolume")
            && e.mount_point.as_deref() == Some(f.as_str())),
        "the subvolume deletion logged with its volume: {evs:#?}"
    );
    assert!(
        evs.iter().any(|e| e.id == 320
            && e.message.contains("kernel shield")
            && e.file.as_deref() == Some(&*backup.to_string_lossy())),
        "the rm through the bind mount logged by the backup's path: {evs:#?}"
    );
    assert_ok(
        "unprotect the btrfs folder",
        &sb.imageguard(&["unprotect", &f]).unwrap(),
    );
    assert_ok(
        "child: btrfs subvolume delete once unprotected",
        &child(&format!("btrfs subvolume delete '{b}/scratch'")),
    );

    // A volume whose loop image file lies in a btrfs subvolume: the image file is shielded by
    // its subvolume's identity, refusals name it.
    let image = m.join("images/ext4.img");
    std::fs::File::create(&image)
        .unwrap()
        .set_len(32 << 20)
        .unwrap();
    assert_ok(
        "mkfs.ext4 in the subvolume",
        &sh(&format!("mkfs.ext4 -q -F '{}'", image.display())),
    );
    let on_btrfs = sb.path().join("on-btrfs");
    std::fs::create_dir_all(&on_btrfs).unwrap();
    assert_ok(
        "mount the image from btrfs",
        &sh(&format!(
            "mount -o loop '{}' '{}'",
            image.display(),
            on_btrfs.display()
        )),
    );
    let v = on_btrfs.display().to_string();
    write_pattern(&on_btrfs.join("a.mrimg"), 20_000, 4);
    assert_ok(
        "protect the volume imaged on btrfs",
        &sb.imageguard(&["protect", &v]).unwrap(),
    );
    let (covered, status) = volume_shield(sb, &v);
    assert!(
        covered.contains(&*image.to_string_lossy()) && !covered.contains("FUSE guard alone"),
        "its image file on btrfs shielded: {status:#}"
    );
    let img = format!("{b}/images/ext4.img");
    assert_eperm(
        "child: dd into the volume's image file on btrfs (through the bind mount)",
        &child(&format!(
            "dd if=/dev/zero of='{img}' bs=4096 seek=4000 count=1 conv=notrunc status=none"
        )),
    );
    assert_eperm(
        "child: truncate it",
        &child(&format!("truncate -s 0 '{img}'")),
    );
    assert_ok(
        "child: another file in its subvolume (the control)",
        &child(&format!("echo x > '{b}/images/other.txt'")),
    );
    assert!(
        events(sb).iter().any(|e| e.id == 320
            && e.message.contains("kernel shield")
            && e.file.as_deref() == Some(&*image.to_string_lossy())),
        "the refusal names the image file: {:#?}",
        events(sb)
    );
    assert_ok(
        "unprotect the volume imaged on btrfs",
        &sb.imageguard(&["unprotect", &v]).unwrap(),
    );
    let _ = sh(&format!("umount '{v}'"));
    assert_ok(
        "child: dd into that image file once unprotected (the control)",
        &child(&format!(
            "dd if=/dev/zero of='{img}' bs=4096 seek=4000 count=1 conv=notrunc status=none"
        )),
    );
    let _ = sh(&format!("umount '{b}'"));

    // The whole of the second btrfs: its loop device is beneath it.
    let o = other.display().to_string();
    let device = String::from_utf8_lossy(&sh(&format!("findmnt -no SOURCE '{o}'")).stdout)
        .trim()
        .to_string();
    write_pattern(&other.join("whole.mrimg"), 20_000, 3);
    assert_ok(
        "protect a whole btrfs volume",
        &sb.imageguard(&["protect", &o]).unwrap(),
    );
    let (covered, status) = volume_shield(sb, &o);
    assert!(
        !covered.contains("FUSE guard alone"),
        "the whole btrfs shielded: {status:#}"
    );
    assert_eperm(
        "child: dd onto the whole btrfs volume's loop device",
        &child(&format!(
            "dd if=/dev/zero of='{device}' bs=4096 seek=30000 count=1 conv=notrunc status=none"
        )),
    );
    assert_ok(
        "unprotect the whole btrfs volume",
        &sb.imageguard(&["unprotect", &o]).unwrap(),
    );
    assert_ok(
        "child: dd onto that loop device once unprotected (the control)",
        &child(&format!(
            "dd if=/dev/zero of='{device}' bs=4096 seek=30000 count=1 conv=notrunc status=none"
        )),
    );
    let _ = sh(&format!("umount '{o}'"));
    let _ = sh(&format!("umount '{}'", m.display()));
}

/// stopped, it lets go.
fn the_service_shields_what_it_protects() {
    let mut sb = Sandbox::new(&exe(), 64).expect("sandbox");
    let file = sb.mnt.join("backup.mrimg");
    write_pattern(&file, 200_000, 5);
    let before = std::fs::read(&file).unwrap();
    let entry = imageguard_volume::MountTable::read()
        .unwrap()
        .at(&sb.mnt)
        .cloned()
        .expect("the volume's mount");
    let device = entry.source.clone();
    let image = std::fs::read_to_string(format!(
        "/sys/dev/block/{}:{}/loop/backing_file",
        entry.major, entry.minor
    ))
    .expect("the loop device's image file")
    .trim()
    .to_string();
    let again = sb.path().join("again");
    std::fs::create_dir_all(&again).unwrap();
    let second_mount = || {
        child(&format!(
            "unshare -m sh -c \"mount '{device}' '{a}' && ls '{a}/backup.mrimg' >/dev/null\"",
            a = again.display()
        ))
    };
    assert_ok(
        "child: a second mount of the device before protection (the control)",
        &second_mount(),
    );
    sb.start_service().expect("service");
    let mnt = sb.mnt.display().to_string();
    assert_ok("protect", &sb.imageguard(&["protect", &mnt]).unwrap());
    let status = status(&sb);
    assert_eq!(status["kernel_shield_on"], true, "{status:#}");
    assert_doctor_says(&sb);
    let covered = status["volumes"][0]["kernel_shield"].as_str().unwrap_or("");
    assert!(
        covered.contains(&image),
        "the image file covered: {status:#}"
    );

    // The control that must succeed: through the guard (the service writes the backing), a
    // file that is no backup is written and the backup read.
    let notes = sb.mnt.join("notes.txt");
    assert_ok(
        "child: write a file that is no backup, through the guard (the control)",
        &child(&format!("echo hello > '{}'", notes.display())),
    );
    assert_eq!(std::fs::read_to_string(&notes).unwrap(), "hello\n");
    assert_eq!(std::fs::read(&file).unwrap(), before);
    assert_eperm(
        "child: rm of the backup through the guard",
        &child(&format!("rm -f '{}'", file.display())),
    );

    // Around the guard, every way refused. A second mount of the device, in a mount namespace
    // of the attacker's own (where the service's watch for foreign mounts cannot see it):
    // refused (before protection the same mount worked: the control, above).
    assert_refused(
        "child: a second mount of the protected device",
        &second_mount(),
    );
    assert_eperm(
        "child: dd onto the volume's device",
        &child(&format!(
            "dd if=/dev/zero of='{device}' bs=4096 seek=100 count=1 conv=notrunc status=none"
        )),
    );
    for (what, script) in [
        (
            "dd into the loop device's image file",
            format!(
                "dd if=/dev/zero of='{image}' bs=4096 seek=100 count=1 conv=notrunc status=none"
            ),
        ),
        (
            "truncate the image file",
            format!("truncate -s 0 '{image}'"),
        ),
        ("rm the image file", format!("rm -f '{image}'")),
        (
            "rename over the image file",
            format!("touch '{image}.new' && mv '{image}.new' '{image}'"),
        ),
        (
            "a second loop device on the image file",
            format!("losetup -f '{image}'"),
        ),
    ] {
        assert_eperm(&format!("child: {what}"), &child(&script));
    }
    // Through the service itself: the keeper namespace and the service's descriptors.
    let keeper = imageguard_volume::keeper::Keeper::new(sb.path().join("run"));
    let kept = keeper
        .keep_dir(&imageguard_volume::keeper::volume_id(&sb.mnt))
        .join("backup.mrimg");
    let keeper_rm = || {
        child(&format!(
            "nsenter --mount='{}' rm -f '{}'",
            keeper.ns_file().display(),
            kept.display()
        ))
    };
    assert_eperm(
        "child: rm inside the keeper namespace (nsenter)",
        &keeper_rm(),
    );
    // Mounts: nothing on or inside the guard, no unmount or move of the guard or of the
    // backing in the keeper; the same on a folder that is not protected go through (the
    // control).
    let free = sb.path().join("free");
    let free2 = sb.path().join("free2");
    std::fs::create_dir_all(&free).unwrap();
    std::fs::create_dir_all(&free2).unwrap();
    let inside = sb.mnt.join("inside");
    assert_ok(
        "child: mkdir of a folder that is no backup, through the guard (the control)",
        &child(&format!("mkdir '{}'", inside.display())),
    );
    // A mount's tree opened (or cloned, `clone`) with open_tree and attached at `to` with
    // move_mount: the new mount API.
    let move_mount = |from: &Path, to: &Path, clone: bool| {
        child(&format!(
            "python3 -c 'import ctypes,os,sys; l=ctypes.CDLL(None, use_errno=True); \
             fd=l.syscall(428, -100, b\"{}\", {}); \
             fd >= 0 or sys.exit(\"open_tree: \" + os.strerror(ctypes.get_errno())); \
             r=l.syscall(429, fd, b\"\", -100, b\"{}\", 4); \
             r == 0 or sys.exit(\"move_mount: \" + os.strerror(ctypes.get_errno()))'",
            from.display(),
            if clone { "0x8001" } else { "0" },
            to.display()
        ))
    };
    assert_ok(
        "child: mount, bind, move and unmount where nothing is protected (the control)",
        &child(&format!(
            "mount -t tmpfs none '{f}' && mount --bind '{f}' '{f2}' && umount '{f2}' && umount '{f}'",
            f = free.display(),
            f2 = free2.display()
        )),
    );
    assert_ok(
        "child: tmpfs for the new mount API's control",
        &child(&format!("mount -t tmpfs none '{}'", free.display())),
    );
    assert_ok(
        "child: open_tree + move_mount where nothing is protected (the control)",
        &move_mount(&free, &free2, false),
    );
    assert_ok(
        "child: clean up the control's mount",
        &child(&format!("umount '{}'", free2.display())),
    );
    let kept_dir = kept.parent().unwrap().to_path_buf();
    for (what, o) in [
        (
            "a tmpfs mounted over the guard",
            child(&format!("mount -t tmpfs none '{mnt}'")),
        ),
        (
            "a tmpfs mounted inside the guard",
            child(&format!("mount -t tmpfs none '{}'", inside.display())),
        ),
        (
            "a bind mount onto a folder inside the guard",
            child(&format!(
                "mount --bind '{}' '{}'",
                free.display(),
                inside.display()
            )),
        ),
        (
            "umount -l of the guard",
            child(&format!("umount -l '{mnt}'")),
        ),
        (
            "remount of the guard read-only",
            child(&format!("mount -i -o remount,ro '{mnt}'")),
        ),
        (
            "umount -l of the backing in the keeper namespace",
            child(&format!(
                "nsenter --mount='{}' umount -l '{}'",
                keeper.ns_file().display(),
                kept_dir.display()
            )),
        ),
        (
            "the guard moved away (open_tree + move_mount)",
            move_mount(&sb.mnt, &free2, false),
        ),
        (
            "a clone of the guard attached elsewhere (open_tree clone + move_mount)",
            move_mount(&sb.mnt, &free2, true),
        ),
    ] {
        assert_refused(&format!("child: {what}"), &o);
    }
    let _ = child(&format!("umount '{}'", free.display()));
    assert_ok(
        "child: write through the guard after the mount attempts (the control)",
        &child(&format!("echo more >> '{}'", notes.display())),
    );
    let evs = events(&sb);
    assert!(
        evs.iter().any(|e| e.id == 320
            && e.message.contains("mounting the protected volume again")
            && e.file.as_deref() == Some(&*inside.to_string_lossy())),
        "the mount inside the guard logged: {evs:#?}"
    );
    assert!(
        evs.iter()
            .any(|e| e.id == 320 && e.message.contains("unmounting or moving the guard")),
        "the unmount of the guard logged: {evs:#?}"
    );
    // Into the service: its descriptors, root, working folder, memory and namespaces, and
    // ptrace, refused; the same on another root process go through (the control).
    let pid = sb.service_pid().expect("the service's pid");
    let mut other = Command::new("sleep").arg("60").spawn().unwrap();
    let into = |pid: u32| {
        vec![
            (
                "readlink /proc/PID/cwd",
                format!("readlink -e /proc/{pid}/cwd"),
            ),
            ("ls /proc/PID/root/", format!("ls /proc/{pid}/root/")),
            (
                "cat /proc/PID/maps",
                format!("cat /proc/{pid}/maps > /dev/null"),
            ),
            (
                "readlink /proc/PID/ns/mnt",
                format!("readlink /proc/{pid}/ns/mnt | grep -q mnt"),
            ),
            (
                "readlink /proc/PID/fd/0",
                format!("readlink /proc/{pid}/fd/0 | grep -q ."),
            ),
            (
                "ptrace attach",
                format!(
                    "python3 -c 'import ctypes,sys; l=ctypes.CDLL(None, use_errno=True); \
                     r=l.ptrace(16,{pid},0,0); sys.exit(0 if r==0 else 1)'"
                ),
            ),
        ]
    };
    for (what, script) in into(other.id()) {
        assert_ok(
            &format!("child: {what} of another process (control)"),
            &child(&script),
        );
    }
    let _ = other.kill();
    let _ = other.wait();
    for (what, script) in into(pid) {
        let o = child(&script);
        assert!(
            !o.status.success(),
            "child: {what} of the service went through"
        );
    }
    // What ps and top read (/proc/PID/stat: the kernel only probes, without auditing, whether to
    // show the stack's addresses) works and is not logged as an attack: every `ps` would be.
    let reached = |sb: &Sandbox| {
        events(sb)
            .iter()
            .filter(|e| e.id == 320 && e.message.contains("reaching into the service"))
            .count()
    };
    // The refusals above reach the log a moment later: counted once they stop arriving.
    let mut reached_before = reached(&sb);
    loop {
        std::thread::sleep(std::time::Duration::from_secs(1));
        let now = reached(&sb);
        if now == reached_before {
            break;
        }
        reached_before = now;
    }
    assert_ok(
        "child: ps of the service",
        &child(&format!(
            "cat /proc/{pid}/stat > /dev/null && ps -p {pid} -o pid,stat,comm"
        )),
    );
    std::thread::sleep(std::time::Duration::from_secs(1));
    let evs = events(&sb);
    let reaching: Vec<_> = evs
        .iter()
        .filter(|e| e.id == 320 && e.message.contains("reaching into the service"))
        .collect();
    assert_eq!(
        reaching.len(),
        reached_before,
        "ps of the service logged as an attack: {:#?}",
        reaching.last()
    );
    // Into a certified process: the same refused (a copy of sleep, certified, started after);
    // a traced process may not execute it, where it executes an uncertified one (the control).
    let holder = sb.path().join("holder");
    std::fs::copy("/usr/bin/sleep", &holder).unwrap();
    assert_ok(
        "certify the holder",
        &sb.imageguard(&["certify", &holder.display().to_string()])
            .unwrap(),
    );
    let mut certified = clean(&mut Command::new(&holder)).arg("60").spawn().unwrap();
    let certified_pid = certified.id();
    for (what, script) in into(certified_pid) {
        let o = child(&script);
        assert!(
            !o.status.success(),
            "child: {what} of a certified process went through\n{}",
            sb.service_log()
        );
    }
    let _ = certified.kill();
    let _ = certified.wait();
    certification_ends_where_foreign_code_arrives(&sb, &holder, &|pid| {
        format!("readlink /proc/{pid}/fd/0 | grep -q .")
    });
    // A child that asks to be traced (PTRACE_TRACEME), then executes `program`: exits 0 when
    // the exec went through (the child then stops, and is killed), 1 saying why it did not.
    let traced_exec = sb.path().join("traced_exec.py");
    std::fs::write(
        &traced_exec,
        "import ctypes, os, sys\n\
         l = ctypes.CDLL(None, use_errno=True)\n\
         pid = os.fork()\n\
         if pid == 0:\n\
         \x20   l.ptrace(0, 0, 0, 0)\n\
         \x20   try:\n\
         \x20       os.execv(sys.argv[1], [sys.argv[1], '0'])\n\
         \x20   except OSError as e:\n\
         \x20       print('exec:', e.strerror, file=sys.stderr)\n\
         \x20       os._exit(1)\n\
         _, st = os.waitpid(pid, 0)\n\
         if os.WIFSTOPPED(st):\n\
         \x20   os.kill(pid, 9)\n\
         \x20   os.waitpid(pid, 0)\n\
         \x20   sys.exit(0)\n\
         sys.exit(os.WEXITSTATUS(st) if os.WIFEXITED(st) else 3)\n",
    )
    .unwrap();
    let exec_traced = |program: &Path| {
        child(&format!(
            "python3 '{}' '{}'",
            traced_exec.display(),
            program.display()
        ))
    };
    assert_ok(
        "child: a traced process executes an uncertified program (the control)",
        &exec_traced(Path::new("/usr/bin/sleep")),
    );
    assert_refused(
        "child: a traced process executes a certified program",
        &exec_traced(&holder),
    );
    let evs = events(&sb);
    assert!(
        evs.iter().any(|e| e.id == 320
            && e.message.contains("reaching into a certified process")
            && e.file.as_deref() == Some(&*format!("/proc/{certified_pid}"))),
        "reaching into the certified process logged: {evs:#?}"
    );
    assert!(
        evs.iter()
            .any(|e| e.id == 320 && e.message.contains("a traced process may not execute")),
        "the traced exec logged: {evs:#?}"
    );
    let fds = String::from_utf8_lossy(&child(&format!("ls /proc/{pid}/fd")).stdout).to_string();
    for n in fds.split_whitespace() {
        let o = child(&format!("rm /proc/{pid}/fd/{n}/backup.mrimg"));
        assert!(
            !o.status.success(),
            "rm through /proc/{pid}/fd/{n} went through"
        );
    }
    assert_eq!(std::fs::read(&file).unwrap(), before, "every byte intact");
    // Logged: 320, by the kernel shield, naming the path tried from the volume's mount point.
    let evs = events(&sb);
    let by_shield: Vec<_> = evs
        .iter()
        .filter(|e| e.id == 320 && e.message.contains("kernel shield"))
        .collect();
    assert!(
        by_shield
            .iter()
            .any(|e| e.file.as_deref() == Some(&*file.to_string_lossy())
                && e.operation.as_deref() == Some("delete")),
        "the rm through a second mount logged: {by_shield:#?}"
    );
    assert!(
        by_shield
            .iter()
            .any(|e| e.file.as_deref() == Some(image.as_str())),
        "the image file's refusal logged: {by_shield:#?}"
    );

    scsi_commands_beneath_the_file_system(&mut sb);
    a_folder_through_the_service(&sb);
    btrfs_through_the_service(&sb);

    // The shield's own undoing: its pins (unlink, BPF_OBJ_GET, even a listing) and its
    // programs, maps and links by id, refused; still refusing afterwards.
    let pins = sb.path().join("run/shield");
    for (what, script) in [
        (
            "rm a pinned link",
            format!("rm '{}/link_shield_file_open'", pins.display()),
        ),
        ("ls the pins", format!("ls '{}'", pins.display())),
        (
            "bpftool link detach of a pinned link",
            format!(
                "bpftool link detach pinned '{}/link_shield_file_open'",
                pins.display()
            ),
        ),
        (
            "bpftool map update of the pinned service map",
            format!(
                "bpftool map update pinned '{}/service' key hex 00 00 00 00 value hex {} ",
                pins.display(),
                "00 ".repeat(24)
            ),
        ),
        (
            "bpftool prog show name shield_file_open (by id)",
            "bpftool prog show name shield_file_open | grep -q shield_file_open".to_string(),
        ),
        (
            "bpftool link show, ours among them",
            "bpftool link show | grep -q lsm".to_string(),
        ),
    ] {
        let o = child(&script);
        assert!(
            !o.status.success(),
            "child: {what} went through: {}",
            String::from_utf8_lossy(&o.stdout)
        );
    }
    assert_eperm(
        "child: rm in the keeper namespace after the attempts on the shield",
        &keeper_rm(),
    );
    assert!(
        events(&sb)
            .iter()
            .any(|e| e.id == 320 && e.message.contains("undoing the shield")),
        "the attempts on the shield logged"
    );

    // Killed, the service leaves the shield pinned (fail closed); its successor takes it over.
    sb.kill_service();
    assert_eperm(
        "child: rm in the keeper namespace, the service dead",
        &keeper_rm(),
    );
    // What holds the shield up stays mounted while no service lives: its pins' file system,
    // the runtime directory's mount it sits on, the keeper's pin.
    let run = sb.path().join("run");
    for (what, target) in [
        ("the pins' file system", run.join("shield")),
        ("the runtime directory's mount", run.clone()),
        ("the keeper's pin", keeper.ns_file()),
    ] {
        assert_refused(
            &format!("child: umount -l of {what}, the service dead"),
            &child(&format!("umount -l '{}'", target.display())),
        );
    }
    sb.start_service().expect("service again");
    let status = common::status(&sb);
    assert_eq!(status["kernel_shield_on"], true, "taken over: {status:#}");
    assert_ok(
        "child: write through the guard of the new service (the control)",
        &child(&format!("echo again >> '{}'", notes.display())),
    );
    assert_eperm(
        "child: dd into the image file, taken over",
        &child(&format!(
            "dd if=/dev/zero of='{image}' bs=4096 seek=100 count=1 conv=notrunc status=none"
        )),
    );
    // A service in a time namespace of its own (its boot clock 30 days on, as the retention
    // attacks start it): /proc shows it a start shifted by the offset; the shield must still
    // know it for the service, and when it ends, free its pins for the next one (before the
    // fix it was refused its own guard's mount, and the pins stayed shut until reboot).
    sb.stop_service().expect("stopping the service");
    sb.start_service_under(BOOT_CLOCK_30_DAYS_ON)
        .expect("the service in a time namespace");
    let status = common::status(&sb);
    assert_eq!(
        status["kernel_shield_on"], true,
        "time namespace: {status:#}"
    );
    assert_ok(
        "child: write through the guard of a service in a time namespace (the control)",
        &child(&format!("echo timens >> '{}'", notes.display())),
    );
    assert_eperm(
        "child: dd into the image file, the service in a time namespace",
        &child(&format!(
            "dd if=/dev/zero of='{image}' bs=4096 seek=100 count=1 conv=notrunc status=none"
        )),
    );
    sb.stop_service()
        .expect("stopping the service in a time namespace");
    sb.start_service()
        .expect("the service again, after the time namespace");
    assert_eq!(
        common::status(&sb)["kernel_shield_on"],
        true,
        "taken over again"
    );
    assert_ok(
        "child: write through the guard, taken over from the time namespace",
        &child(&format!("echo after >> '{}'", notes.display())),
    );
    // BPF programs that could overrule the shield: an fmod_ret program (on a security_*
    // function it replaces the LSM's answer) is refused always; a kprobe program (it may write
    // the memory of the process it fires in) loads until the admin lock is set (the control).
    let bpf_load = sb.path().join("bpf_load.py");
    std::fs::write(
        &bpf_load,
        "import ctypes, os, sys\n\
         l = ctypes.CDLL(None, use_errno=True)\n\
         insns = bytes([0xb7, 0, 0, 0, 0, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0])\n\
         lic = ctypes.create_string_buffer(b'GPL')\n\
         code = ctypes.create_string_buffer(insns, len(insns))\n\
         attr = ctypes.create_string_buffer(128)\n\
         ctypes.memmove(ctypes.addressof(attr), int(sys.argv[1]).to_bytes(4, 'little') + (2).to_bytes(4, 'little') \
         + ctypes.addressof(code).to_bytes(8, 'little') + ctypes.addressof(lic).to_bytes(8, 'little'), 24)\n\
         ctypes.memmove(ctypes.addressof(attr) + 68, int(sys.argv[2]).to_bytes(4, 'little'), 4)\n\
         fd = l.syscall(321, 5, attr, 128)\n\
         if fd < 0:\n\
         \x20   print('bpf:', os.strerror(ctypes.get_errno()), file=sys.stderr)\n\
         \x20   sys.exit(1)\n\
         os.close(fd)\n",
    )
    .unwrap();
    let load = |prog_type: u32, attach: u32| {
        child(&format!(
            "python3 '{}' {prog_type} {attach}",
            bpf_load.display()
        ))
    };
    // BPF_PROG_TYPE_TRACING = 26 with BPF_MODIFY_RETURN = 26; BPF_PROG_TYPE_KPROBE = 2.
    assert_eperm("child: load an fmod_ret program", &load(26, 26));
    assert_ok(
        "child: load a kprobe program, no admin lock (the control)",
        &load(2, 0),
    );
    // imageguard's own configuration and state: changed by anyone before the lock (the
    // control), the service's alone under it.
    let config = sb.config_file().display().to_string();
    let state = sb.path().join("state").display().to_string();
    // systemd's unit folder as the sandbox configures it ([definitions] systemd_units), with
    // the unit enabled (its link in a .wants folder) and packaged elsewhere.
    let units = sb.path().join("etc/systemd");
    let wants = units.join("multi-user.target.wants");
    std::fs::create_dir_all(&wants).unwrap();
    std::os::unix::fs::symlink(
        "/lib/systemd/system/imageguard.service",
        wants.join("imageguard.service"),
    )
    .unwrap();
    let (units, wants) = (units.display().to_string(), wants.display().to_string());
    let own_changes = [
        (
            "mask the unit (a symlink to /dev/null in a unit folder)",
            format!(
                "ln -s /dev/null '{units}/imageguard.service' && rm '{units}/imageguard.service'"
            ),
        ),
        (
            "a drop-in folder for the unit",
            format!("mkdir '{units}/imageguard.service.d' && rmdir '{units}/imageguard.service.d'"),
        ),
        (
            "disable the unit (its link removed from a .wants folder)",
            format!(
                "rm '{wants}/imageguard.service' && \
                 ln -s /lib/systemd/system/imageguard.service '{wants}/imageguard.service'"
            ),
        ),
        (
            "append to the configuration",
            format!("echo '# x' >> '{config}'"),
        ),
        (
            "a new file in the state folder",
            format!("touch '{state}/probe' && rm '{state}/probe'"),
        ),
        (
            "a new file in a folder of the state folder",
            format!("mkdir -p '{state}/sub' && touch '{state}/sub/probe' && rm -r '{state}/sub'"),
        ),
    ];
    for (what, script) in &own_changes {
        assert_ok(
            &format!("child: {what}, no admin lock (the control)"),
            &child(script),
        );
    }
    // With the admin lock set, no signal stops the service: it stops only with the passphrase.
    let s = set_admin_lock(&sb, "secret", "correct horse battery staple");
    assert_eperm("child: load a kprobe program, admin lock set", &load(2, 0));
    for (what, script) in [
        (
            "append to the configuration",
            format!("echo '# x' >> '{config}'"),
        ),
        ("rm the configuration", format!("rm -f '{config}'")),
        (
            "rename over the configuration",
            format!("cp '{config}' '{config}.new' && mv '{config}.new' '{config}'"),
        ),
        (
            "a new file in the state folder",
            format!("touch '{state}/probe'"),
        ),
        ("rm the state", format!("rm -f '{state}/state.json'")),
        (
            "append to the state",
            format!("echo x >> '{state}/state.json'"),
        ),
        (
            "rename the state folder",
            format!("mv '{state}' '{state}.moved'"),
        ),
        (
            "mask the unit (a symlink to /dev/null in a unit folder)",
            format!("ln -s /dev/null '{units}/imageguard.service'"),
        ),
        (
            "a unit file that shadows the packaged one",
            format!("touch '{units}/imageguard.service'"),
        ),
        (
            "a unit renamed onto its name",
            format!(
                "touch '{units}/x.service' && mv '{units}/x.service' '{units}/imageguard.service'"
            ),
        ),
        (
            "a drop-in folder for the unit",
            format!("mkdir '{units}/imageguard.service.d'"),
        ),
        (
            "disable the unit (its link removed from a .wants folder)",
            format!("rm -f '{wants}/imageguard.service'"),
        ),
    ] {
        assert_eperm(&format!("child: {what}, admin lock set"), &child(&script));
    }
    assert_ok(
        "child: another unit in the same folder, admin lock set (the control)",
        &child(&format!(
            "touch '{units}/other.service' && rm '{units}/other.service'"
        )),
    );
    assert_ok(
        "the service saves its state under the lock (the control)",
        &sb.imageguard(&[
            "--passphrase-file",
            &s,
            "settings",
            "sync_tools.allow",
            "off",
        ])
        .unwrap(),
    );
    let pid = sb.service_pid().expect("the service's pid");
    for sig in ["TERM", "KILL", "STOP", "INT", "HUP"] {
        assert_eperm(
            &format!("child: kill -{sig} of the service, admin lock set"),
            &child(&format!("/bin/kill -s {sig} {pid}")),
        );
    }
    assert_ok(
        "the service answers after the signals",
        &sb.imageguard(&["status"]).unwrap(),
    );
    let evs = events(&sb);
    assert!(
        evs.iter()
            .any(|e| e.id == 320 && e.message.contains("signal 9 to the service")),
        "the refused SIGKILL logged"
    );
    assert!(
        evs.iter()
            .any(|e| e.id == 320 && e.message.contains("reaching into the service")),
        "reaching into the service logged"
    );
    assert!(
        evs.iter()
            .any(|e| e.id == 320 && e.message.contains("BPF program of type 2")),
        "the kprobe load logged"
    );
    // Stopped with the passphrase: the volume is given back and the shield lets go.
    assert_ok(
        "stop with the passphrase",
        &sb.imageguard(&["--passphrase-file", &s, "stop"]).unwrap(),
    );
    let exit = sb.wait_service(std::time::Duration::from_secs(30)).unwrap();
    assert_eq!(exit.code(), Some(10), "{}", sb.service_log());
    assert_eq!(std::fs::read(&file).unwrap(), before, "every byte intact");
    assert_ok(
        "child: append to the backup once the service stopped",
        &child(&format!("echo x >> '{}'", file.display())),
    );
    for (what, script) in &own_changes {
        assert_ok(
            &format!("child: {what}, the service stopped"),
            &child(script),
        );
    }
    assert!(
        !sb.path().join("run/shield/service").exists(),
        "the shield is unpinned at a stop that gives the volumes back"
    );
}
