//! Attacks through what a certified program loads: `/etc/ld.so.preload`, a library replaced or
//! patched (through another hard link, or through a shared mapping that inotify cannot see, on
//! a disk and on an overlay over tmpfs), a
//! library loaded late, Python start-up hooks (`usercustomize.py` in root's user site, a `.pth`
//! in a system site folder, an edited module of borg), environment variables of the loader,
//! Python and Perl, a virtual-environment `argv[0]`, another `HOME`, a mount over borg's
//! package. Each must be refused, with a 320 naming what broke; certifying the program again
//! must make it work again.
//!
//! `/etc`, `/root` and `/usr/lib/python3/dist-packages` are changed for real, but only in the
//! suite's own mount namespace, where [`isolate`] put overlays over them (their writes land in
//! a temporary folder and vanish with the namespace).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::common::*;
use crate::suite::{outcome_of_tool, parse_answer, scratch_backup, Ctx, Outcome};

/// The folders the closure attacks write into, overlaid in the suite's mount namespace.
const OVERLAID: &[&str] = &["/etc", "/root", "/usr/lib/python3/dist-packages"];

/// Enter a mount namespace of our own with an overlay over each of [`OVERLAID`]. Must run
/// before any thread starts. The upper folders live in `scratch`, which outlives the suite.
pub fn isolate(scratch: &Path) {
    unsafe {
        assert_eq!(libc::unshare(libc::CLONE_NEWNS), 0, "unshare(CLONE_NEWNS)");
        let root = std::ffi::CString::new("/").unwrap();
        assert_eq!(
            libc::mount(
                std::ptr::null(),
                root.as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null()
            ),
            0,
            "making mounts private"
        );
    }
    for (i, lower) in OVERLAID.iter().enumerate() {
        let upper = scratch.join(format!("upper{i}"));
        let work = scratch.join(format!("work{i}"));
        std::fs::create_dir_all(&upper).unwrap();
        std::fs::create_dir_all(&work).unwrap();
        let st = Command::new("mount")
            .args(["-t", "overlay", "overlay", "-o"])
            .arg(format!(
                "lowerdir={lower},upperdir={},workdir={}",
                upper.display(),
                work.display()
            ))
            .arg(lower)
            .status()
            .expect("mount");
        assert!(st.success(), "overlay over {lower}");
    }
}

/// Take the overlays down again (the namespace ends with the process anyway).
pub fn release() {
    for lower in OVERLAID.iter().rev() {
        let _ = Command::new("umount").arg(lower).status();
    }
}

/// A hook's instructions: what to delete and where to say how it went. Read by the C
/// constructor and the Python and Perl hooks below.
struct Hook {
    conf: PathBuf,
    result: PathBuf,
}

impl Hook {
    fn new(dir: &Path) -> Hook {
        Hook {
            conf: dir.join("hook.conf"),
            result: dir.join("hook.result"),
        }
    }

    /// Arm the hook against `target`.
    fn aim(&self, target: &Path) {
        let _ = std::fs::remove_file(&self.result);
        std::fs::write(
            &self.conf,
            format!("{} {}\n", target.display(), self.result.display()),
        )
        .unwrap();
    }

    fn disarm(&self) {
        let _ = std::fs::remove_file(&self.conf);
    }

    /// What the hook reported: `ok`, `errno N`, or that it never ran.
    fn outcome(&self) -> Outcome {
        match std::fs::read_to_string(&self.result) {
            Ok(s) => parse_answer(s.trim()).unwrap_or(Outcome::Failed(s)),
            Err(_) => Outcome::Failed("the hook did not run".into()),
        }
    }

    fn python(&self) -> String {
        format!(
            "import os, sys\n\
             if os.path.basename(sys.argv[0] or '').startswith(('borg', 'cert-')) and os.path.exists('{0}'):\n    \
             t, r = open('{0}').read().split()\n    \
             try:\n        os.unlink(t); s = 'ok'\n    \
             except OSError as e:\n        s = 'errno %d' % e.errno\n    \
             open(r, 'w').write(s + '\\n')\n",
            self.conf.display()
        )
    }
}

const EVIL_C: &str = r#"
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
/* Runs inside every process that loads it; acts only in the suite's certified programs. */
__attribute__((constructor)) static void evil(void) {
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) return;
    exe[n] = 0;
    const char *base = strrchr(exe, '/');
    base = base ? base + 1 : exe;
    if (strncmp(base, "cert-", 5) != 0) return;
    FILE *f = fopen(HOOK_CONF, "r");
    if (!f) return;
    char target[4096], result[4096];
    int got = fscanf(f, "%4095s %4095s", target, result);
    fclose(f);
    if (got != 2) return;
    int r = unlink(target);
    int e = errno;
    FILE *o = fopen(result, "w");
    if (!o) return;
    if (r == 0) fprintf(o, "ok\n"); else fprintf(o, "errno %d\n", e);
    fclose(o);
}
int foo(void) { return 1; }
"#;

const GOOD_LIB_C: &str = "int foo(void) { return 1; }\n";

/// Calls the library, then truncates argv[1]; with argv[2], loads that library late first.
const PROG_C: &str = r#"
#include <dlfcn.h>
#include <stdio.h>
#include <unistd.h>
int foo(void);
int main(int argc, char **argv) {
    foo();
    if (argc > 3) {
        /* A first request, checked while only the closure is mapped. */
        if (truncate(argv[3], 0) != 0) { perror("truncate"); return 1; }
    }
    if (argc > 2 && !dlopen(argv[2], RTLD_NOW)) { fprintf(stderr, "%s\n", dlerror()); return 2; }
    if (truncate(argv[1], 0) != 0) { perror("truncate"); return 1; }
    return 0;
}
"#;

fn gcc(args: &[&str]) {
    let o = Command::new("gcc").args(args).output().expect("gcc");
    assert!(o.status.success(), "gcc {args:?}: {}", stderr(&o));
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// The newest 320 whose text contains `needle`.
fn denial_names(cx: &Ctx, needle: &str) -> Outcome {
    let named = events(&cx.sb)
        .iter()
        .rev()
        .any(|e| e.id == 320 && e.message.contains(needle));
    Outcome::Note(if named { "logged" } else { "not logged" }.into())
}

/// A process that flips the last byte of `file` through a shared mapping and keeps the
/// mapping open (started once the byte is flipped).
fn patch_through_a_shared_mapping(file: &Path) -> std::process::Child {
    let patch = format!(
        "import mmap, os, sys, time\n\
         fd = os.open('{0}', os.O_RDWR); m = mmap.mmap(fd, 0); os.close(fd)\n\
         m[len(m) - 1] ^= 0xff; print('patched', flush=True); time.sleep(10)\n",
        file.display()
    );
    let mut writer = Command::new("python3")
        .args(["-c", &patch])
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(writer.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    writer
}

fn recertify(cx: &Ctx, program: &Path, extra: &[&str]) {
    let mut args = vec!["certify", program.to_str().unwrap()];
    args.extend_from_slice(extra);
    assert_ok("certify again", &cx.ig(&args));
}

pub fn attacks(cx: &mut Ctx) {
    let dir = cx.sb.path().join("closure");
    std::fs::create_dir_all(&dir).unwrap();
    let hook = Hook::new(&dir);
    let image = cx.image.clone();
    let volume = cx.sb.mnt.clone();
    let scratch = |n: &str| scratch_backup(&volume, n);

    // Native code: a program built against a library of its own, and an evil library.
    std::fs::write(dir.join("evil.c"), EVIL_C).unwrap();
    std::fs::write(dir.join("good.c"), GOOD_LIB_C).unwrap();
    std::fs::write(dir.join("prog.c"), PROG_C).unwrap();
    let define = format!("-DHOOK_CONF=\"{}\"", hook.conf.display());
    let evil = dir.join("evil.so");
    gcc(&[
        "-shared",
        "-fPIC",
        &define,
        "-o",
        &s(&evil),
        &s(&dir.join("evil.c")),
    ]);
    let libdir = dir.join("lib");
    std::fs::create_dir_all(&libdir).unwrap();
    let libfoo = libdir.join("libfoo.so");
    gcc(&[
        "-shared",
        "-fPIC",
        "-o",
        &s(&libfoo),
        &s(&dir.join("good.c")),
    ]);
    let evil_foo = dir.join("libfoo-evil.so");
    gcc(&[
        "-shared",
        "-fPIC",
        &define,
        "-o",
        &s(&evil_foo),
        &s(&dir.join("evil.c")),
    ]);
    let prog = dir.join("cert-prog");
    gcc(&[
        "-o",
        &s(&prog),
        &s(&dir.join("prog.c")),
        &format!("-L{}", libdir.display()),
        "-lfoo",
        "-ldl",
        &format!("-Wl,-rpath,{}", libdir.display()),
    ]);
    recertify(cx, &prog, &[]);
    let run_prog =
        |args: &[&Path]| outcome_of_tool(&output_fresh(clean(Command::new(&prog).args(args))));
    let o = run_prog(&[&scratch("c1")]);
    cx.record(
        "control: certified program with its own library",
        &["succeeded"],
        o,
    );

    // 1. /etc/ld.so.preload naming a library whose constructor deletes a backup.
    hook.aim(&image);
    std::fs::write("/etc/ld.so.preload", format!("{}\n", evil.display())).unwrap();
    let _ = run_prog(&[Path::new("/nonexistent")]);
    cx.record(
        "/etc/ld.so.preload into a certified program",
        &["EPERM"],
        hook.outcome(),
    );
    let o = denial_names(cx, "/etc/ld.so.preload");
    cx.record("  ... and the 320 names /etc/ld.so.preload", &["logged"], o);
    std::fs::remove_file("/etc/ld.so.preload").unwrap();
    hook.disarm();
    recertify(cx, &prog, &[]);
    let o = run_prog(&[&scratch("c2")]);
    cx.record("  ... certified again: works", &["succeeded"], o);

    // 2. The program's own library replaced by a modified copy.
    std::fs::copy(&evil_foo, &libfoo).unwrap();
    hook.aim(&image);
    let _ = run_prog(&[&image]);
    cx.record(
        "library of a certified program modified",
        &["EPERM"],
        hook.outcome(),
    );
    let o = denial_names(cx, &s(&libfoo));
    cx.record("  ... and the 320 names the library", &["logged"], o);
    hook.disarm();
    recertify(cx, &prog, &[]);
    let o = run_prog(&[&scratch("c3")]);
    cx.record("  ... certified again: works", &["succeeded"], o);
    // Back to the good library, by rename this time (a new inode).
    let tmp = libdir.join("libfoo.so.new");
    gcc(&["-shared", "-fPIC", "-o", &s(&tmp), &s(&dir.join("good.c"))]);
    std::fs::rename(&tmp, &libfoo).unwrap();
    let o = run_prog(&[&scratch("c4")]);
    cx.record("library replaced by rename", &["EPERM"], o);
    recertify(cx, &prog, &[]);

    // 3. Written through another hard link (the library's folder sees nothing).
    let link = dir.join("libfoo-link.so");
    std::fs::hard_link(&libfoo, &link).unwrap();
    std::fs::OpenOptions::new()
        .append(true)
        .open(&link)
        .and_then(|mut f| std::io::Write::write_all(&mut f, b"\0"))
        .unwrap();
    let o = run_prog(&[&scratch("c5")]);
    cx.record("library written through another hard link", &["EPERM"], o);
    std::fs::remove_file(&link).unwrap();
    recertify(cx, &prog, &[]);

    // 4. Patched through a shared mapping, which raises no inotify event while the writer
    // keeps it open: the comparison made for each new process finds it.
    let mut writer = patch_through_a_shared_mapping(&libfoo);
    let o = run_prog(&[&scratch("c6")]);
    cx.record("library patched through a shared mapping", &["EPERM"], o);
    let o = denial_names(cx, &format!("{} was modified", libfoo.display()));
    cx.record(
        "  ... found by comparing for the new process",
        &["logged"],
        o,
    );
    let _ = writer.kill();
    let _ = writer.wait();
    recertify(cx, &prog, &[]);
    let o = run_prog(&[&scratch("c7")]);
    cx.record("  ... certified again: works", &["succeeded"], o);

    // 4b. The same with the library's folder an overlay over tmpfs (a live system's root, a
    // container's): the library is written in the upper layer, whose times such a write
    // leaves as they were. Copied up before it is certified, as any file ever written there.
    let ram = dir.join("lib-ram");
    std::fs::create_dir_all(&ram).unwrap();
    assert_ok(
        "tmpfs for the library's overlay",
        &sh(&format!(
            "mount -t tmpfs -o size=8m none '{}'",
            ram.display()
        )),
    );
    assert_ok(
        "overlay over the library's folder",
        &sh(&format!(
            "mkdir -p '{0}/upper' '{0}/work' && mount -t overlay overlay -o \
             lowerdir='{1}',upperdir='{0}/upper',workdir='{0}/work' '{1}'",
            ram.display(),
            libdir.display()
        )),
    );
    drop(
        std::fs::OpenOptions::new()
            .write(true)
            .open(&libfoo)
            .unwrap(),
    );
    recertify(cx, &prog, &[]);
    let o = run_prog(&[&scratch("c6b")]);
    cx.record(
        "control: library on an overlay over tmpfs, certified there",
        &["succeeded"],
        o,
    );
    let mut writer = patch_through_a_shared_mapping(&libfoo);
    let o = run_prog(&[&scratch("c6c")]);
    cx.record(
        "library on an overlay over tmpfs patched through a shared mapping",
        &["EPERM"],
        o,
    );
    let _ = writer.kill();
    let _ = writer.wait();
    let _ = sh(&format!(
        "umount '{}' && umount '{}'",
        libdir.display(),
        ram.display()
    ));
    recertify(cx, &prog, &[]);

    // 5. A library loaded late, after a first checked request: the next request sees it.
    hook.aim(&image);
    let first = scratch("c8");
    let _ = output_fresh(clean(
        Command::new(&prog)
            .arg(scratch("c9"))
            .arg(&evil)
            .arg(&first),
    ));
    cx.record(
        "library loaded after a first request (dlopen)",
        &["EPERM"],
        hook.outcome(),
    );
    let o = denial_names(cx, &s(&evil));
    cx.record("  ... and the 320 names the library", &["logged"], o);
    hook.disarm();

    // 5b. While an administrator's `certify --learn` job runs, the same program started by
    // someone else (not a descendant of the job) loads a library: refused, and not learned.
    let job = format!(
        "sleep 1.5; exec {} {}",
        prog.display(),
        scratch("learn-job").display()
    );
    let learning = clean(
        Command::new(crate::common::exe())
            .args(cx.sb.global_args())
            .args([
                "certify",
                prog.to_str().unwrap(),
                "--learn",
                "--",
                "/bin/sh",
                "-c",
                &job,
            ]),
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .expect("certify --learn");
    std::thread::sleep(std::time::Duration::from_millis(500));
    hook.aim(&image);
    let _ = output_fresh(clean(Command::new(&prog).arg(scratch("c11")).arg(&evil)));
    cx.record(
        "library loaded by another process during certify --learn",
        &["EPERM"],
        hook.outcome(),
    );
    hook.disarm();
    let learn_out = learning.wait_with_output().expect("certify --learn");
    let listing = cx.ig(&["certified", "--json"]);
    let evil_learned = String::from_utf8_lossy(&listing.stdout).contains(&s(&evil));
    cx.record(
        "  ... and it was not learned",
        &["not learned"],
        Outcome::Note(match (learn_out.status.success(), evil_learned) {
            (true, false) => "not learned".into(),
            (ok, learned) => format!("learn ok: {ok}, learned: {learned}: {}", stderr(&learn_out)),
        }),
    );

    // 6. The loader's environment, named or not.
    for (var, value) in [
        ("LD_PRELOAD", s(&evil)),
        ("LD_LIBRARY_PATH", s(&dir)),
        ("GCONV_PATH", s(&dir)),
        ("LD_SOMETHING_NEW", "1".to_string()),
    ] {
        hook.aim(&image);
        let o = outcome_of_tool(&output_fresh(
            clean(&mut Command::new(&prog))
                .env(var, &value)
                .arg(scratch(&format!("env-{var}"))),
        ));
        cx.record(&format!("{var} into a certified program"), &["EPERM"], o);
        hook.disarm();
    }

    // The probe there is certified borg rewriting its repository's config, which holds the
    // key: only inside a maintenance window (see the key-material rows).
    let volume = s(&cx.sb.mnt);
    assert_ok(
        "maintenance window",
        &cx.ig(&["maintenance", &volume, "--minutes", "30"]),
    );
    python_hooks(cx, &dir, &hook);
    assert_ok(
        "maintenance window closed",
        &cx.ig(&["maintenance", &volume, "--close"]),
    );
    perl_script(cx, &dir);
}

/// certified borg, run as a backup job would run it (Python writing byte code: certification
/// compiled what a restored module left stale, so a first run changes nothing).
fn borg_cmd(cx: &Ctx, args: &[&str]) -> Command {
    let mut c = Command::new("/usr/bin/borg");
    clean(&mut c)
        .args(args)
        .env("HOME", "/root")
        .env("BORG_BASE_DIR", cx.sb.path().join("borg-home"))
        .env("BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK", "yes")
        .env("BORG_RELOCATED_REPO_ACCESS_IS_OK", "yes")
        .stdin(Stdio::null());
    c
}

/// A write to the borg repository by borg itself: its configuration file, rewritten.
fn borg_config(cx: &Ctx, env: &[(&str, &str)]) -> Outcome {
    let repo = s(&cx.sb.mnt.join("borg-repo"));
    let mut c = borg_cmd(cx, &["config", &repo, "additional_free_space", "0"]);
    for (k, v) in env {
        c.env(k, v);
    }
    outcome_of_tool(&c.output().expect("borg"))
}

/// Certified borg (a Python script) and the ways into its interpreter.
fn python_hooks(cx: &mut Ctx, dir: &Path, hook: &Hook) {
    let image = cx.image.clone();
    let borg_version = |cx: &Ctx| {
        let _ = borg_cmd(cx, &["--version"]).output().expect("borg");
    };
    // /etc/ld.so.preload (above) changed what every dynamically linked program loads: borg
    // too lost its certification then, and needs certifying again.
    let listing = cx.ig(&["certified", "--json"]);
    let programs: serde_json::Value = serde_json::from_slice(&listing.stdout).unwrap_or_default();
    let borg_state = programs
        .as_array()
        .and_then(|a| a.iter().find(|p| p["path"] == "/usr/bin/borg"))
        .map(|p| {
            (
                p["intact"].as_bool(),
                p["change"]["path"].as_str().map(String::from),
            )
        });
    cx.record(
        "  ... borg lost its certification to /etc/ld.so.preload too",
        &["not intact: /etc/ld.so.preload"],
        Outcome::Note(match borg_state {
            Some((Some(false), Some(p))) => format!("not intact: {p}"),
            other => format!("{other:?}"),
        }),
    );
    recertify(cx, Path::new("/usr/bin/borg"), &[]);
    let o = borg_config(cx, &[]);
    cx.record(
        "control: certified borg rewrites its repository's config",
        &["succeeded"],
        o,
    );
    let site = PathBuf::from("/root/.local/lib/python3.11/site-packages");
    let dist = PathBuf::from("/usr/lib/python3/dist-packages");
    let module = dist.join("borg/__init__.py");
    let original = std::fs::read(&module).unwrap();
    // (technique, where the hook goes, what the 320 names)
    let places: Vec<(&str, PathBuf, String)> = vec![
        (
            "usercustomize.py in root's user site folder",
            site.join("usercustomize.py"),
            "/root/.local".into(),
        ),
        (
            ".pth file in a system site folder",
            dist.join("zz-evil.pth"),
            s(&dist.join("zz-evil.pth")),
        ),
        (
            "edited module of certified borg",
            module.clone(),
            s(&module),
        ),
    ];
    for (i, (what, place, named)) in places.into_iter().enumerate() {
        hook.aim(&image);
        std::fs::create_dir_all(place.parent().unwrap()).unwrap();
        let code = hook.python();
        if place.extension().is_some_and(|e| e == "pth") {
            // A .pth file runs its lines that start with `import`.
            std::fs::write(&place, format!("import os, sys; exec({code:?})\n")).unwrap();
        } else if place == module {
            let mut m = original.clone();
            m.extend_from_slice(b"\n");
            m.extend_from_slice(code.as_bytes());
            std::fs::write(&place, m).unwrap();
        } else {
            std::fs::write(&place, &code).unwrap();
        }
        borg_version(cx);
        cx.record(
            &format!("{what}, then borg --version"),
            &["EPERM"],
            hook.outcome(),
        );
        let o = denial_names(cx, &named);
        cx.record(&format!("  ... and the 320 names {named}"), &["logged"], o);
        // Certified again with the hook in place (on purpose): the hook may now delete.
        hook.aim(&scratch_backup(&cx.sb.mnt, &format!("py-{i}")));
        recertify(cx, Path::new("/usr/bin/borg"), &[]);
        borg_version(cx);
        cx.record(
            "  ... certified again: works",
            &["succeeded"],
            hook.outcome(),
        );
        hook.disarm();
        if place == module {
            std::fs::write(&place, &original).unwrap();
        } else if place.starts_with("/root/.local") {
            std::fs::remove_dir_all("/root/.local").unwrap();
        } else {
            std::fs::remove_file(&place).unwrap();
        }
        recertify(cx, Path::new("/usr/bin/borg"), &[]);
    }
    // The module restored (its byte code now older than it) and borg certified again: its
    // first runs write byte code, which must not undo the certification.
    let twice = [borg_config(cx, &[]), borg_config(cx, &[])];
    let listing = cx.ig(&["certified", "--json"]);
    let intact = String::from_utf8_lossy(&listing.stdout).contains("\"intact\": true");
    cx.record(
        "control: borg with its module restored, certified again, writes twice and stays intact",
        &["succeeded"],
        match twice {
            [Outcome::Succeeded, Outcome::Succeeded] if intact => Outcome::Succeeded,
            [a, b] => Outcome::Note(format!("{a}, {b}, intact: {intact}")),
        },
    );

    // The interpreter's environment: each variable alone makes borg uncertified, whether the
    // interpreter would run code from it now (PYTHONPATH, HOME) or only when interactive.
    let pydir = dir.join("pyhooks");
    std::fs::create_dir_all(&pydir).unwrap();
    std::fs::write(pydir.join("sitecustomize.py"), hook.python()).unwrap();
    let startup = pydir.join("startup.py");
    std::fs::write(&startup, hook.python()).unwrap();
    let evil_home = dir.join("home");
    let evil_site = evil_home.join(".local/lib/python3.11/site-packages");
    std::fs::create_dir_all(&evil_site).unwrap();
    std::fs::write(evil_site.join("usercustomize.py"), hook.python()).unwrap();
    for (what, var, value) in [
        (
            "PYTHONPATH with a sitecustomize.py",
            "PYTHONPATH",
            s(&pydir),
        ),
        ("PYTHONSTARTUP", "PYTHONSTARTUP", s(&startup)),
        ("PYTHONHOME", "PYTHONHOME", "/usr".to_string()),
        ("PYTHONSOMETHINGNEW", "PYTHONSOMETHINGNEW", "1".to_string()),
        ("HOME with a usercustomize.py", "HOME", s(&evil_home)),
    ] {
        let o = borg_config(cx, &[(var, &value)]);
        cx.record(&format!("{what} into certified borg"), &["EPERM"], o);
    }
    let o = denial_names(cx, "HOME=");
    cx.record("  ... and the 320 names HOME", &["logged"], o);

    // A virtual environment's name for the interpreter (argv[0]): Python takes its library
    // from the pyvenv.cfg beside that name.
    let venv = dir.join("venv");
    let vsite = venv.join("lib/python3.11/site-packages");
    std::fs::create_dir_all(&vsite).unwrap();
    std::fs::create_dir_all(venv.join("bin")).unwrap();
    std::fs::write(
        venv.join("pyvenv.cfg"),
        "home = /usr/bin\ninclude-system-site-packages = true\n",
    )
    .unwrap();
    let _ = std::os::unix::fs::symlink("/usr/bin/python3", venv.join("bin/python3"));
    std::fs::write(
        vsite.join("zz-evil.pth"),
        format!("import os, sys; exec({:?})\n", hook.python()),
    )
    .unwrap();
    hook.aim(&image);
    let exec = format!(
        "import os; os.execv('/usr/bin/python3', ['{}', '/usr/bin/borg', '--version'])",
        venv.join("bin/python3").display()
    );
    let _ = clean(Command::new("/usr/bin/python3").args(["-c", &exec]))
        .env("HOME", "/root")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output();
    cx.record(
        "borg started under a virtual environment's argv[0]",
        &["EPERM"],
        hook.outcome(),
    );
    let o = denial_names(cx, "interpreter was started as");
    cx.record(
        "  ... and the 320 names the interpreter's name",
        &["logged"],
        o,
    );
    hook.disarm();

    // A mount over borg's package folder (a copy with one module changed).
    let fake = dir.join("fake-borg");
    let cp = Command::new("cp")
        .arg("-a")
        .arg(dist.join("borg"))
        .arg(&fake)
        .status()
        .unwrap();
    assert!(cp.success());
    let mut m = original.clone();
    m.extend_from_slice(b"\n");
    m.extend_from_slice(hook.python().as_bytes());
    std::fs::write(fake.join("__init__.py"), m).unwrap();
    let bound = Command::new("mount")
        .arg("--bind")
        .arg(&fake)
        .arg(dist.join("borg"))
        .status()
        .unwrap();
    assert!(bound.success());
    hook.aim(&image);
    borg_version(cx);
    cx.record(
        "bind mount over borg's package, then borg",
        &["EPERM"],
        hook.outcome(),
    );
    let o = denial_names(cx, "dist-packages/borg/__init__.py was");
    cx.record("  ... and the 320 names the covered module", &["logged"], o);
    hook.disarm();
    let _ = Command::new("umount").arg(dist.join("borg")).status();
    recertify(cx, Path::new("/usr/bin/borg"), &[]);
    let o = borg_config(cx, &[]);
    cx.record(
        "  ... certified again: borg rewrites its config",
        &["succeeded"],
        o,
    );
    let listing = cx.ig(&["certified", "--json"]);
    let intact = String::from_utf8_lossy(&listing.stdout).contains("\"intact\": true");
    cx.record(
        "certified --json: borg's closure intact again",
        &["intact"],
        Outcome::Note(if intact { "intact" } else { "not intact" }.into()),
    );
}

/// A certified Perl script and perl's environment.
fn perl_script(cx: &mut Ctx, dir: &Path) {
    let script = dir.join("cert-truncate.pl");
    std::fs::write(
        &script,
        "#!/usr/bin/perl\ntruncate($ARGV[0], 0) or die \"truncate: $!\\n\";\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    recertify(cx, &script, &[]);
    let evil = dir.join("perl5");
    std::fs::create_dir_all(&evil).unwrap();
    std::fs::write(evil.join("Evil.pm"), "package Evil;\n1;\n").unwrap();
    let run = |env: &[(&str, String)], target: &Path| {
        let mut c = Command::new(&script);
        clean(&mut c).arg(target);
        for (k, v) in env {
            c.env(k, v);
        }
        outcome_of_tool(&output_fresh(&mut c))
    };
    let o = run(&[], &scratch_backup(&cx.sb.mnt, "perl"));
    cx.record("control: certified Perl script", &["succeeded"], o);
    let image = cx.image.clone();
    for (var, value) in [
        ("PERL5LIB", s(&evil)),
        ("PERL5OPT", "-Mstrict".to_string()),
        ("PERLLIB", s(&evil)),
        ("PERL5DB", "BEGIN { }".to_string()),
    ] {
        let o = run(&[(var, value)], &image);
        cx.record(
            &format!("{var} into a certified Perl script"),
            &["EPERM"],
            o,
        );
    }
    let o = denial_names(cx, "PERL5DB");
    cx.record("  ... and the 320 names the variable", &["logged"], o);
}
