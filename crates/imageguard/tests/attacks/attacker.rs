//! The attacking side: one system-call technique per invocation, run in a child process of the
//! suite (`attacks --attack TECHNIQUE ARGS...`), so that the guard sees an ordinary uncertified
//! process. Prints `ok` or `errno N` for the step that decided the outcome.
//!
//! Everything is raw libc (and io_uring) so that what is tested is the system call itself, not
//! what a tool chooses to do around it.

use std::ffi::CString;
use std::io::{BufRead, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

type Step = Result<(), i32>;

fn c(p: &str) -> CString {
    CString::new(Path::new(p).as_os_str().as_bytes()).expect("path without NUL")
}

fn errno() -> i32 {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

fn check(rc: libc::c_long) -> Step {
    if rc < 0 {
        Err(errno())
    } else {
        Ok(())
    }
}

fn open(p: &str, flags: i32) -> Result<i32, i32> {
    let fd = unsafe { libc::open(c(p).as_ptr(), flags | libc::O_CLOEXEC, 0o644) };
    if fd < 0 {
        Err(errno())
    } else {
        Ok(fd)
    }
}

fn pwrite(fd: i32, data: &[u8], off: i64) -> Step {
    check(unsafe { libc::pwrite(fd, data.as_ptr().cast(), data.len(), off) } as libc::c_long)
}

const PAYLOAD: &[u8] = b"ENCRYPTED-BY-RANSOMWARE";

/// Run one technique; the outcome of its deciding step.
pub fn run(args: &[String]) -> Step {
    let a = |i: usize| args.get(i).map(String::as_str).unwrap_or("");
    match a(0) {
        "open-write" => {
            let fd = open(a(1), libc::O_WRONLY)?;
            pwrite(fd, PAYLOAD, 0)
        }
        "open-trunc" => open(a(1), libc::O_WRONLY | libc::O_TRUNC).map(drop),
        // Linux truncates even on a read-only open when the caller may write the file.
        "open-rdonly-trunc" => open(a(1), libc::O_RDONLY | libc::O_TRUNC).map(drop),
        "reopen-proc-fd" => {
            let ro = open(a(1), libc::O_RDONLY)?;
            let fd = open(&format!("/proc/self/fd/{ro}"), libc::O_WRONLY)?;
            pwrite(fd, PAYLOAD, 0)
        }
        "sendfile-into" => {
            let src = open(a(1), libc::O_RDONLY)?;
            let dst = open(a(2), libc::O_WRONLY)?;
            check(unsafe { libc::sendfile(dst, src, std::ptr::null_mut(), 4096) } as _)
        }
        "open-creat-trunc" => open(a(1), libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC).map(drop),
        "append" => {
            let fd = open(a(1), libc::O_WRONLY | libc::O_APPEND)?;
            check(unsafe { libc::write(fd, PAYLOAD.as_ptr().cast(), PAYLOAD.len()) } as _)
        }
        "odirect" => {
            let fd = open(a(1), libc::O_WRONLY | libc::O_DIRECT)?;
            let layout = std::alloc::Layout::from_size_align(4096, 4096).expect("layout");
            let buf = unsafe { std::alloc::alloc_zeroed(layout) };
            let r = check(unsafe { libc::pwrite(fd, buf.cast(), 4096, 0) } as _);
            unsafe { std::alloc::dealloc(buf, layout) };
            r
        }
        "writev" => {
            let fd = open(a(1), libc::O_WRONLY)?;
            let iov = [
                libc::iovec {
                    iov_base: PAYLOAD.as_ptr() as *mut _,
                    iov_len: PAYLOAD.len(),
                },
                libc::iovec {
                    iov_base: PAYLOAD.as_ptr() as *mut _,
                    iov_len: PAYLOAD.len(),
                },
            ];
            check(unsafe { libc::pwritev(fd, iov.as_ptr(), 2, 0) } as _)
        }
        "mmap-rdwr" => mmap_write(a(1), libc::O_RDWR),
        "mmap-rdonly-shared" => mmap_write(a(1), libc::O_RDONLY),
        "truncate" => check(unsafe { libc::truncate(c(a(1)).as_ptr(), 0) } as _),
        "ftruncate-rdonly" => {
            let fd = open(a(1), libc::O_RDONLY)?;
            check(unsafe { libc::ftruncate(fd, 0) } as _)
        }
        "fallocate" => {
            let mode = match a(1) {
                "punch" => libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                "collapse" => libc::FALLOC_FL_COLLAPSE_RANGE,
                "zero" => libc::FALLOC_FL_ZERO_RANGE,
                _ => 0,
            };
            let flags = if a(3) == "rdonly" {
                libc::O_RDONLY
            } else {
                libc::O_RDWR
            };
            let fd = open(a(2), flags)?;
            check(unsafe { libc::fallocate(fd, mode, 0, 4096) } as _)
        }
        "unlink" => check(unsafe { libc::unlink(c(a(1)).as_ptr()) } as _),
        "rmdir" => check(unsafe { libc::rmdir(c(a(1)).as_ptr()) } as _),
        "unlinkat-dirfd" => {
            let dfd = open(a(1), libc::O_RDONLY | libc::O_DIRECTORY)?;
            check(unsafe { libc::unlinkat(dfd, c(a(2)).as_ptr(), 0) } as _)
        }
        "renameat2" => {
            let flags = match a(3) {
                "exchange" => libc::RENAME_EXCHANGE,
                "whiteout" => libc::RENAME_WHITEOUT,
                "noreplace" => libc::RENAME_NOREPLACE,
                _ => 0,
            };
            check(unsafe {
                libc::syscall(
                    libc::SYS_renameat2,
                    libc::AT_FDCWD,
                    c(a(1)).as_ptr(),
                    libc::AT_FDCWD,
                    c(a(2)).as_ptr(),
                    flags,
                )
            })
        }
        "link-then-write" => {
            check(unsafe { libc::link(c(a(1)).as_ptr(), c(a(2)).as_ptr()) } as _)?;
            let fd = open(a(2), libc::O_WRONLY)?;
            pwrite(fd, PAYLOAD, 0)
        }
        "symlink-then-write" => {
            check(unsafe { libc::symlink(c(a(1)).as_ptr(), c(a(2)).as_ptr()) } as _)?;
            let fd = open(a(2), libc::O_WRONLY)?;
            pwrite(fd, PAYLOAD, 0)
        }
        "chmod-then-write" => {
            check(unsafe { libc::chmod(c(a(1)).as_ptr(), 0o666) } as _)?;
            let fd = open(a(1), libc::O_WRONLY)?;
            pwrite(fd, PAYLOAD, 0)
        }
        "chown-then-write" => {
            check(unsafe { libc::chown(c(a(1)).as_ptr(), 65534, 65534) } as _)?;
            let fd = open(a(1), libc::O_WRONLY)?;
            pwrite(fd, PAYLOAD, 0)
        }
        "utimes" => check(unsafe { libc::utimes(c(a(1)).as_ptr(), std::ptr::null()) } as _),
        "setxattr" => check(unsafe {
            libc::setxattr(
                c(a(1)).as_ptr(),
                c("user.ransom").as_ptr(),
                PAYLOAD.as_ptr().cast(),
                PAYLOAD.len(),
                0,
            )
        } as _),
        "removexattr" => {
            check(unsafe { libc::removexattr(c(a(1)).as_ptr(), c(a(2)).as_ptr()) } as _)
        }
        "copy-file-range" => {
            let src = open(a(1), libc::O_RDONLY)?;
            let dst = open(a(2), libc::O_WRONLY)?;
            let mut off = 0i64;
            check(unsafe {
                libc::copy_file_range(src, std::ptr::null_mut(), dst, &mut off, 4096, 0)
            } as _)
        }
        "ficlone" => {
            let src = open(a(1), libc::O_RDONLY)?;
            let flags = if a(3) == "rdonly" {
                libc::O_RDONLY
            } else {
                libc::O_WRONLY
            };
            let dst = open(a(2), flags)?;
            const FICLONE: libc::c_ulong = 0x4004_9409;
            check(unsafe { libc::ioctl(dst, FICLONE, src) } as _)
        }
        "uring-openat-write" => uring::openat_write(a(1)),
        "uring-write-rdonly-fd" => uring::write_rdonly_fd(a(1)),
        "uring-unlinkat" => uring::unlinkat(a(1)),
        "uring-renameat" => uring::renameat(a(1), a(2)),
        "handle-via-guard" => handle_via_guard(a(1), a(2)),
        "hold" => hold(a(1), a(2)),
        other => {
            eprintln!("unknown technique {other}");
            Err(libc::ENOSYS)
        }
    }
}

fn mmap_write(p: &str, flags: i32) -> Step {
    let fd = open(p, flags)?;
    let m = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            fd,
            0,
        )
    };
    if m == libc::MAP_FAILED {
        return Err(errno());
    }
    unsafe {
        std::ptr::copy_nonoverlapping(PAYLOAD.as_ptr(), m.cast(), PAYLOAD.len());
    }
    check(unsafe { libc::msync(m, 4096, libc::MS_SYNC) } as _)
}

/// A file handle taken on the guard itself, opened for writing by handle.
fn handle_via_guard(mount_root: &str, file: &str) -> Step {
    let (handle, _) = name_to_handle(file)?;
    let mfd = open(mount_root, libc::O_RDONLY | libc::O_DIRECTORY)?;
    open_by_handle(mfd, &handle, libc::O_RDWR).map(drop)
}

fn name_to_handle(p: &str) -> Result<(Vec<u8>, i32), i32> {
    // struct file_handle { u32 handle_bytes; i32 handle_type; u8 f_handle[]; }
    let mut buf = vec![0u8; 8 + 128];
    buf[0..4].copy_from_slice(&128u32.to_ne_bytes());
    let mut mount_id: i32 = 0;
    check(unsafe {
        libc::syscall(
            libc::SYS_name_to_handle_at,
            libc::AT_FDCWD,
            c(p).as_ptr(),
            buf.as_mut_ptr(),
            &mut mount_id,
            0,
        )
    })?;
    Ok((buf, mount_id))
}

fn open_by_handle(mount_fd: i32, handle: &[u8], flags: i32) -> Result<i32, i32> {
    let fd = unsafe {
        libc::syscall(
            libc::SYS_open_by_handle_at,
            mount_fd,
            handle.as_ptr(),
            flags | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        Err(errno())
    } else {
        Ok(fd as i32)
    }
}

/// Started before protection: holds a directory descriptor, a read-only descriptor and a file
/// handle of a backup file on the volume's original mount, prints `ready`, and on `go` uses
/// them after protection, one result line per step.
fn hold(dir: &str, name: &str) -> Step {
    let dfd = open(dir, libc::O_RDONLY | libc::O_DIRECTORY)?;
    let file = format!("{dir}/{name}");
    let ro = open(&file, libc::O_RDONLY)?;
    let (handle, _) = name_to_handle(&file)?;
    println!("ready");
    std::io::stdout().flush().ok();
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).ok();
    let cname = c(name);
    let steps: Vec<(&str, Step)> = vec![
        ("openat-write", {
            let fd = unsafe { libc::openat(dfd, cname.as_ptr(), libc::O_WRONLY) };
            if fd < 0 {
                Err(errno())
            } else {
                pwrite(fd, PAYLOAD, 0)
            }
        }),
        (
            "unlinkat",
            check(unsafe { libc::unlinkat(dfd, cname.as_ptr(), 0) } as _),
        ),
        (
            "renameat",
            check(
                unsafe { libc::renameat(dfd, cname.as_ptr(), dfd, c("renamed.locked").as_ptr()) }
                    as _,
            ),
        ),
        ("write-readonly-fd", pwrite(ro, PAYLOAD, 0)),
        ("fchmod", check(unsafe { libc::fchmod(ro, 0o666) } as _)),
        (
            "fsetxattr",
            check(unsafe {
                libc::fsetxattr(
                    ro,
                    c("user.ransom").as_ptr(),
                    PAYLOAD.as_ptr().cast(),
                    PAYLOAD.len(),
                    0,
                )
            } as _),
        ),
        (
            "open-by-handle-rdwr",
            open_by_handle(dfd, &handle, libc::O_RDWR).and_then(|fd| pwrite(fd, PAYLOAD, 0)),
        ),
        ("reopen-via-proc-fd", {
            // /proc/self/fd/N of a read-only descriptor, reopened for writing.
            let p = format!("/proc/self/fd/{ro}");
            open(&p, libc::O_WRONLY).and_then(|fd| pwrite(fd, PAYLOAD, 0))
        }),
    ];
    for (name, r) in steps {
        match r {
            Ok(()) => println!("{name} ok"),
            Err(e) => println!("{name} errno {e}"),
        }
    }
    Ok(())
}

mod uring {
    use super::{c, Step};
    use io_uring::{opcode, types, IoUring};

    fn submit(entry: io_uring::squeue::Entry) -> Result<i32, i32> {
        let mut ring = IoUring::new(4).map_err(|e| e.raw_os_error().unwrap_or(libc::EIO))?;
        unsafe { ring.submission().push(&entry).map_err(|_| libc::EIO)? };
        ring.submit_and_wait(1)
            .map_err(|e| e.raw_os_error().unwrap_or(libc::EIO))?;
        let cqe = ring.completion().next().ok_or(libc::EIO)?;
        if cqe.result() < 0 {
            Err(-cqe.result())
        } else {
            Ok(cqe.result())
        }
    }

    pub fn openat_write(p: &str) -> Step {
        let path = c(p);
        let fd = submit(
            opcode::OpenAt::new(types::Fd(libc::AT_FDCWD), path.as_ptr())
                .flags(libc::O_WRONLY)
                .build(),
        )?;
        let data = super::PAYLOAD;
        submit(opcode::Write::new(types::Fd(fd), data.as_ptr(), data.len() as u32).build())
            .map(drop)
    }

    pub fn write_rdonly_fd(p: &str) -> Step {
        let fd = super::open(p, libc::O_RDONLY)?;
        let data = super::PAYLOAD;
        submit(opcode::Write::new(types::Fd(fd), data.as_ptr(), data.len() as u32).build())
            .map(drop)
    }

    pub fn unlinkat(p: &str) -> Step {
        let path = c(p);
        submit(opcode::UnlinkAt::new(types::Fd(libc::AT_FDCWD), path.as_ptr()).build()).map(drop)
    }

    pub fn renameat(from: &str, to: &str) -> Step {
        let (f, t) = (c(from), c(to));
        submit(
            opcode::RenameAt::new(
                types::Fd(libc::AT_FDCWD),
                f.as_ptr(),
                types::Fd(libc::AT_FDCWD),
                t.as_ptr(),
            )
            .build(),
        )
        .map(drop)
    }
}
