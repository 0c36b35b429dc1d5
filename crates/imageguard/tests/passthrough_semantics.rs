//! The guard behaves like the backing file system for everything policy allows: permissions,
//! ownership, set-group-ID directories, symlinks, hard links, rename semantics, large sparse
//! files, O_DIRECT, xattrs, timestamps, special files, and mmap writes by a certified process.

mod common;

use std::os::unix::fs::MetadataExt;
use std::process::Command;

use common::*;

const NOBODY: &str = "setpriv --reuid=65534 --regid=65534 --clear-groups";

#[test]
fn permissions_and_ownership() {
    let sb = protected(64);
    let m = sb.mnt.display().to_string();
    assert_ok("setup", &sh(&format!("echo secret > {m}/private && chmod 600 {m}/private && mkdir -m 700 {m}/closed && chmod 1777 {m}")));
    let out = sh(&format!("{NOBODY} cat {m}/private"));
    assert!(
        !out.status.success() && stderr(&out).contains("Permission denied"),
        "{}",
        stderr(&out)
    );
    let out = sh(&format!("{NOBODY} ls {m}/closed"));
    assert!(
        !out.status.success() && stderr(&out).contains("Permission denied"),
        "{}",
        stderr(&out)
    );
    assert_ok("nobody creates", &sh(&format!("{NOBODY} sh -c 'echo mine > {m}/theirs && mkdir {m}/theirdir && ln -s theirs {m}/theirlink'")));
    for name in ["theirs", "theirdir"] {
        let md = std::fs::symlink_metadata(sb.mnt.join(name)).unwrap();
        assert_eq!((md.uid(), md.gid()), (65534, 65534), "{name}");
    }
    assert_eq!(
        std::fs::symlink_metadata(sb.mnt.join("theirlink"))
            .unwrap()
            .uid(),
        65534
    );
    // Sticky directory: nobody cannot delete root's file.
    assert_ok("root file", &sh(&format!("echo r > {m}/rootfile")));
    let out = sh(&format!("{NOBODY} rm -f {m}/rootfile"));
    assert!(!out.status.success(), "sticky bit ignored");
    // chown/chmod by root.
    assert_ok(
        "chown",
        &sh(&format!(
            "chown 1234:4321 {m}/rootfile && chmod 640 {m}/rootfile"
        )),
    );
    let md = std::fs::metadata(sb.mnt.join("rootfile")).unwrap();
    assert_eq!(
        (md.uid(), md.gid(), md.mode() & 0o7777),
        (1234, 4321, 0o640)
    );
    // A write by someone other than root drops set-user-ID / set-group-ID, as natively.
    assert_ok(
        "suid file",
        &sh(&format!("echo a > {m}/suid && chmod 6777 {m}/suid")),
    );
    assert_ok(
        "nobody writes",
        &sh(&format!("{NOBODY} sh -c 'echo b >> {m}/suid'")),
    );
    assert_eq!(
        std::fs::metadata(sb.mnt.join("suid")).unwrap().mode() & 0o7777,
        0o777
    );
    assert_ok(
        "root writes",
        &sh(&format!("chmod 6777 {m}/suid && echo c >> {m}/suid")),
    );
    assert_eq!(
        std::fs::metadata(sb.mnt.join("suid")).unwrap().mode() & 0o7777,
        0o6777,
        "root keeps the bits"
    );
    // Set-group-ID directory: group and bit are inherited.
    assert_ok("setgid dir", &sh(&format!("mkdir {m}/g && chown root:2222 {m}/g && chmod 2775 {m}/g && touch {m}/g/f && mkdir {m}/g/sub")));
    assert_eq!(std::fs::metadata(sb.mnt.join("g/f")).unwrap().gid(), 2222);
    let sub = std::fs::metadata(sb.mnt.join("g/sub")).unwrap();
    assert_eq!(sub.gid(), 2222);
    assert_ne!(sub.mode() & 0o2000, 0, "setgid bit not inherited");
}

#[test]
fn links_renames_and_special_files() {
    let sb = protected(64);
    let m = sb.mnt.display().to_string();
    assert_ok("symlinks", &sh(&format!(
        "set -e; cd {m}; echo t > target; ln -s target link; ln -s nowhere dangling; mkdir d; ln -s d dlink; \
         test \"$(readlink link)\" = target; test \"$(cat link)\" = t; test -L dangling; ! test -e dangling; \
         touch dlink/inside; test -e d/inside; chown -h 77:77 link; test \"$(stat -c %u link)\" = 77"
    )));
    assert_ok("hard links", &sh(&format!(
        "set -e; cd {m}; echo one > a; ln a b; test \"$(stat -c %i a)\" = \"$(stat -c %i b)\"; \
         test \"$(stat -c %h a)\" = 2; echo two >> b; grep -q two a; rm a; test \"$(cat b)\" = \"$(printf 'one\\ntwo')\"; \
         test \"$(stat -c %h b)\" = 1"
    )));
    let py = format!(
        r#"
import ctypes, os, errno
libc = ctypes.CDLL(None, use_errno=True)
def renameat2(a, b, flags):
    r = libc.renameat2(-100, a.encode(), -100, b.encode(), flags)
    return 0 if r == 0 else ctypes.get_errno()
os.chdir("{m}")
open("x", "w").write("X"); open("y", "w").write("Y")
assert renameat2("x", "y", 1) == errno.EEXIST          # RENAME_NOREPLACE
assert renameat2("x", "y", 2) == 0                     # RENAME_EXCHANGE
assert open("x").read() == "Y" and open("y").read() == "X"
os.rename("x", "y"); assert not os.path.exists("x") and open("y").read() == "Y"
os.mkdir("e1"); os.mkdir("e2"); os.rename("e1", "e2"); assert not os.path.exists("e1")
os.mkdir("full"); open("full/f", "w").close(); os.mkdir("empty")
try:
    os.rename("empty", "full"); raise SystemExit("renamed over a non-empty directory")
except OSError as e:
    assert e.errno in (errno.ENOTEMPTY, errno.EEXIST), e
os.mkfifo("fifo"); assert os.path.exists("fifo")
print("ok")
"#
    );
    let out = clean(Command::new("python3").arg("-c").arg(&py))
        .output()
        .unwrap();
    assert_ok("rename semantics", &out);
}

#[test]
fn large_sparse_files_direct_io_xattrs_and_times() {
    let sb = protected(128);
    let m = sb.mnt.display().to_string();
    assert_ok("sparse", &sh(&format!(
        "set -e; cd {m}; truncate -s 5G big; dd if=/dev/urandom of=chunk bs=1M count=1 status=none; \
         dd if=chunk of=big bs=1M seek=4608 conv=notrunc status=none; \
         test \"$(stat -c %s big)\" = 5368709120; test \"$(stat -c %b big)\" -lt 20000; \
         python3 -c \"import sys; f=open('big','rb'); f.seek(4608<<20); sys.exit(f.read(1<<20)!=open('chunk','rb').read())\""
    )));
    let out = clean(Command::new("python3").arg("-c").arg(format!(
        "import os; fd=os.open('{m}/big', os.O_RDONLY); d=os.lseek(fd, 0, os.SEEK_DATA); h=os.lseek(fd, d, os.SEEK_HOLE); print(d, h); assert d == 4608<<20, d"
    )))
    .output()
    .unwrap();
    assert_ok("SEEK_DATA/SEEK_HOLE", &out);
    assert_ok("O_DIRECT", &sh(&format!(
        "set -e; cd {m}; dd if=/dev/urandom of=src bs=1M count=4 status=none; dd if=src of=direct bs=1M oflag=direct status=none; \
         dd if=direct of=back bs=1M iflag=direct status=none; cmp src back"
    )));
    assert_ok("xattrs", &sh(&format!(
        "set -e; cd {m}; echo x > attrs; setfattr -n user.color -v blue attrs; test \"$(getfattr --only-values -n user.color attrs)\" = blue; \
         getfattr -d attrs | grep -q user.color; setfattr -x user.color attrs; ! getfattr -n user.color attrs 2>/dev/null"
    )));
    assert_ok("timestamps", &sh(&format!(
        "set -e; cd {m}; touch -d '2001-02-03 04:05:06.123456789' t; test \"$(stat -c %y t | cut -c1-29)\" = '2001-02-03 04:05:06.123456789'"
    )));
    let df = sh(&format!("df --output=size {m} | tail -1"));
    assert_ok("statfs", &df);
    let blocks: u64 = String::from_utf8_lossy(&df.stdout).trim().parse().unwrap();
    assert!(blocks > 100_000, "statfs looks wrong: {blocks}");
}

#[test]
fn certified_process_may_mmap_write_a_backup() {
    let sb = protected(64);
    let f = sb.mnt.join("mapped.mrimg");
    write_pattern(&f, 8192, 5);
    // A certified interpreter (forced), under its own path.
    let py = sb.path().join("bin/certified-python");
    std::fs::create_dir_all(py.parent().unwrap()).unwrap();
    std::fs::copy("/usr/bin/python3", &py).unwrap();
    certify(&sb, &py, true);
    let script = format!(
        "import mmap, os, time; fd=os.open('{0}', os.O_RDWR); m=mmap.mmap(fd, 8192); os.stat('{0}'); time.sleep(0.05); m[0:5]=b'HELLO'; m.flush(); m.close(); os.close(fd)",
        f.display()
    );
    // A write through a mapping reaches the backing file without the kernel's FUSE inode
    // hearing of it: the new modification time shows once cached attributes expire (1 s), even
    // on a hidden volume whose names are cached for long.
    // stat(2), as most programs call it (std's metadata asks statx for the birth time too, which
    // always goes to the file system and so cannot show a stale cache).
    let mtime = |p: &std::path::Path| -> (i64, i64) {
        let c = std::ffi::CString::new(p.to_string_lossy().as_bytes()).unwrap();
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        assert_eq!(unsafe { libc::stat(c.as_ptr(), &mut st) }, 0);
        (st.st_mtime, st.st_mtime_nsec)
    };
    let mtime_before = mtime(&f);
    std::thread::sleep(std::time::Duration::from_millis(50));
    let o = output_fresh(clean(Command::new(&py).arg("-c").arg(&script)));
    if !o.status.success() {
        for e in events(&sb) {
            eprintln!("EVENT {e:?}");
        }
    }
    assert_ok("certified mmap write", &o);
    // (No read in between: reading invalidates the cached access time, and with it the rest.)
    let t0 = std::time::Instant::now();
    let mut mtime_after = mtime_before;
    while mtime_after <= mtime_before && t0.elapsed() < std::time::Duration::from_secs(3) {
        std::thread::sleep(std::time::Duration::from_millis(100));
        mtime_after = mtime(&f);
    }
    assert!(
        mtime_after > mtime_before && t0.elapsed() < std::time::Duration::from_millis(1500),
        "mtime after a mapped write: {mtime_after:?} (after {:?}), before: {mtime_before:?}",
        t0.elapsed()
    );
    assert_eq!(&std::fs::read(&f).unwrap()[..5], b"HELLO");
    let out = clean(Command::new("python3").arg("-c").arg(&script))
        .output()
        .unwrap();
    assert_eperm("uncertified mmap write", &out);
    assert_eq!(&std::fs::read(&f).unwrap()[..5], b"HELLO");
}
