//! Attacks through a certified program's helpers (issue 8): a helper counts as certified only
//! while its parent is a live certified process of the program it helps. A small certified
//! program (`runner`: fork, exec its arguments, wait) and a helper certified with
//! `--helper-of runner` (`slow-rm`: wait, then unlink a backup and write what happened to a
//! file) are turned against the backups: by hand, orphaned, under an uncertified shell, under
//! another certified program, as a copy, with LD_PRELOAD, and after the program lost its
//! certification.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::common::*;
use crate::suite::{scratch_backup, Ctx, Outcome};

const RUNNER_C: &str = r#"
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
int main(int argc, char **argv) {
    int orphan = argc > 1 && strcmp(argv[1], "--orphan") == 0;
    char **cmd = argv + 1 + orphan;
    pid_t p = fork();
    if (p == 0) { execv(cmd[0], cmd); _exit(127); }
    if (orphan) return 0;
    int st;
    waitpid(p, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 1;
}
"#;

const SLOW_RM_C: &str = r#"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
int main(int argc, char **argv) {
    if (argc < 4) return 2;
    usleep(atoi(argv[1]) * 1000);
    int r = unlink(argv[2]);
    int e = errno;
    FILE *f = fopen(argv[3], "w");
    if (f) { if (r == 0) fprintf(f, "ok\n"); else fprintf(f, "errno %d\n", e); fclose(f); }
    return r == 0 ? 0 : 1;
}
"#;

fn gcc(src: &Path, out: &Path) {
    let o = Command::new("gcc")
        .arg("-o")
        .arg(out)
        .arg(src)
        .output()
        .expect("gcc");
    assert!(o.status.success(), "gcc {}: {}", src.display(), stderr(&o));
}

/// What `slow-rm` wrote to `result` (waiting up to 5 s for it).
fn result_of(result: &Path) -> Outcome {
    for _ in 0..100 {
        if let Ok(s) = std::fs::read_to_string(result) {
            let s = s.trim();
            if s == "ok" {
                return Outcome::Succeeded;
            }
            if let Some(e) = s.strip_prefix("errno ").and_then(|e| e.parse().ok()) {
                return Outcome::Errno(e);
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Outcome::Failed("the helper reported nothing".into())
}

pub fn attacks(cx: &mut Ctx) {
    let dir = cx.sb.path().join("helpers");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("runner.c"), RUNNER_C).unwrap();
    std::fs::write(dir.join("slow-rm.c"), SLOW_RM_C).unwrap();
    let runner = dir.join("runner");
    let other = dir.join("other-runner");
    let helper = dir.join("slow-rm");
    gcc(&dir.join("runner.c"), &runner);
    gcc(&dir.join("runner.c"), &other);
    gcc(&dir.join("slow-rm.c"), &helper);
    let copy = dir.join("slow-rm-copy");
    std::fs::copy(&helper, &copy).unwrap();
    let (runner_s, helper_s) = (runner.display().to_string(), helper.display().to_string());
    assert_ok("certify runner", &cx.ig(&["certify", &runner_s]));
    assert_ok(
        "certify other-runner",
        &cx.ig(&["certify", &other.display().to_string()]),
    );
    assert_ok(
        "certify slow-rm as runner's helper",
        &cx.ig(&["certify", "--helper-of", &runner_s, &helper_s]),
    );
    let volume = cx.sb.mnt.clone();
    let mut n = 0;
    // Run `prefix... slow-rm DELAY BACKUP RESULT` with `env`; what slow-rm saw.
    let mut attempt = |prefix: &[&str], delay: &str, env: &[(&str, &str)], helper: &Path| {
        n += 1;
        let backup = scratch_backup(&volume, &format!("helper-{n}"));
        let result = dir.join(format!("result-{n}"));
        let mut cmd = Command::new(prefix[0]);
        cmd.args(&prefix[1..])
            .arg(helper)
            .arg(delay)
            .arg(&backup)
            .arg(&result);
        clean(&mut cmd).envs(env.iter().copied());
        let _ = output_fresh(&mut cmd);
        result_of(&result)
    };

    let o = attempt(&[&runner_s], "0", &[], &helper);
    cx.record(
        "control: helper run by its certified program",
        &["succeeded"],
        o,
    );
    let o = attempt(&["/bin/sh", "-c", "exec \"$0\" \"$@\""], "0", &[], &helper);
    cx.record("helper run by hand (a shell)", &["EPERM"], o);
    let named = events(&cx.sb)
        .iter()
        .rev()
        .any(|e| e.id == 320 && e.message.contains(&format!("helper of {runner_s}")));
    cx.record(
        "  ... and the 320 says whose helper it is",
        &["logged"],
        Outcome::Note(if named { "logged" } else { "not logged" }.into()),
    );
    let o = attempt(&[&runner_s, "--orphan"], "600", &[], &helper);
    cx.record(
        "helper orphaned (its program exits first, it is re-parented)",
        &["EPERM"],
        o,
    );
    let o = attempt(
        &[&runner_s, "/bin/sh", "-c", "\"$0\" \"$@\"; true"],
        "0",
        &[],
        &helper,
    );
    cx.record(
        "helper under an uncertified shell its program started",
        &["EPERM"],
        o,
    );
    let other_s = other.display().to_string();
    let o = attempt(&[&other_s], "0", &[], &helper);
    cx.record("helper run by another certified program", &["EPERM"], o);
    let o = attempt(&[&runner_s], "0", &[], &copy);
    cx.record("a copy of the helper run by its program", &["EPERM"], o);
    let o = attempt(
        &[&runner_s],
        "0",
        &[("LD_PRELOAD", "/nonexistent/evil.so")],
        &helper,
    );
    cx.record(
        "LD_PRELOAD through the program into its helper",
        &["EPERM"],
        o,
    );
    assert_ok("uncertify runner", &cx.ig(&["uncertify", &runner_s]));
    let o = attempt(&[&runner_s], "0", &[], &helper);
    cx.record("helper of a program no longer certified", &["EPERM"], o);
    assert_ok("certify runner again", &cx.ig(&["certify", &runner_s]));
    let o = attempt(&[&runner_s], "0", &[], &helper);
    cx.record("  ... certified again: works", &["succeeded"], o);
}
