//! Junk added to a repository (issue 17, item 3): nothing of a repository is changed or
//! deleted, but one new file in restic's `index/` or `snapshots/` stops every `restic
//! restore` ("invalid data returned"), and a forged index or pack beside the real ones could
//! lead a legitimate `prune` astray. New entries of a repository are its backup program's
//! alone: created, renamed or linked in by anyone else (root, a non-root user who may write
//! the folder), they are refused. The lock files readers make stay open, and uncertified
//! restic and borg still list and restore.
//!
//! For the non-root rows the repositories' folders are made world-writable before
//! protection, so that the kernel's own permission check lets the user through to the guard.

use std::path::Path;
use std::process::Command;

use imageguard::sandbox::Sandbox;

use crate::common::*;
use crate::suite::{as_nobody, outcome_of_tool, sandbox_copy, Ctx, Outcome};

/// restic's and borg's folders the attacker adds to.
const RESTIC_DIRS: &[&str] = &["", "index", "snapshots", "keys", "data", "data/00"];
const BORG_DIRS: &[&str] = &["", "data", "data/0"];

/// Before protection: the folders world-writable (only the guard stands in the way).
pub fn prepare(sb: &Sandbox) {
    use std::os::unix::fs::PermissionsExt;
    let dirs = RESTIC_DIRS
        .iter()
        .map(|d| sb.mnt.join("restic-repo").join(d))
        .chain(BORG_DIRS.iter().map(|d| sb.mnt.join("borg-repo").join(d)));
    for d in dirs {
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o777)).unwrap();
    }
}

/// The highest-numbered segment of a borg repository (`data/0/N`), and N.
fn last_segment(repo: &Path) -> u64 {
    std::fs::read_dir(repo.join("data/0"))
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u64>().ok())
        .max()
        .expect("a borg segment")
}

pub fn attacks(cx: &mut Ctx) {
    let restic_repo = cx.sb.mnt.join("restic-repo");
    let borg_repo = cx.sb.mnt.join("borg-repo");
    let r = |rel: &str| restic_repo.join(rel).display().to_string();
    let next = last_segment(&borg_repo) + 1;
    let b = |rel: String| borg_repo.join(rel).display().to_string();
    let junk_id = format!("{}aa", "0".repeat(62));
    let targets: Vec<(String, String)> = vec![
        ("restic index/".into(), r(&format!("index/{junk_id}"))),
        (
            "restic snapshots/".into(),
            r(&format!("snapshots/{junk_id}")),
        ),
        ("restic data/00/".into(), r(&format!("data/00/00{junk_id}"))),
        ("restic keys/".into(), r(&format!("keys/{junk_id}"))),
        ("next to restic's config".into(), r("config.new")),
        ("borg segment".into(), b(format!("data/0/{next}"))),
        ("borg index".into(), b(format!("index.{next}"))),
        ("borg hints".into(), b(format!("hints.{next}"))),
    ];
    for (what, path) in &targets {
        cx.record(
            &format!("root: create a junk file in a repository: {what}"),
            &["EPERM"],
            cx.shell(&format!("echo junk > {path}")),
        );
        cx.record(
            &format!("non-root user: create a junk file in a repository: {what}"),
            &["EPERM"],
            cx.shell(&as_nobody(&format!("echo junk > {path}"))),
        );
    }
    let made: Vec<&str> = targets
        .iter()
        .filter(|(_, p)| Path::new(p).exists())
        .map(|(w, _)| w.as_str())
        .collect();
    cx.record(
        "no junk file is there",
        &["none"],
        Outcome::Note(if made.is_empty() {
            "none".into()
        } else {
            made.join(", ")
        }),
    );

    // Other ways to put an entry there: a folder, a symlink, a rename and a hard link from
    // elsewhere on the volume, a copy from outside it.
    let spare = cx.sb.mnt.join("scratch/junk-index");
    std::fs::write(&spare, b"junk").unwrap();
    let spare = spare.display().to_string();
    let index = |n: &str| r(&format!("index/{n}{}", &junk_id[n.len()..]));
    let other_ways = [
        ("mkdir in restic data/", format!("mkdir {}", r("data/zz"))),
        (
            "symlink in restic snapshots/",
            format!("ln -s /etc/passwd {}", r(&format!("snapshots/{junk_id}"))),
        ),
        (
            "rename a file of the volume into restic index/",
            format!("mv {spare} {}", index("11")),
        ),
        (
            "hard link a file of the volume into restic index/",
            format!("ln {spare} {}", index("22")),
        ),
        (
            "copy a file from outside the volume into restic index/",
            format!("cp /etc/passwd {}", index("33")),
        ),
        (
            "rename into borg's repository as a segment",
            format!("mv {spare} {}", b(format!("data/0/{}", next + 1))),
        ),
    ];
    for (what, script) in &other_ways {
        cx.record(&format!("root: {what}"), &["EPERM"], cx.shell(script));
    }
    cx.record(
        "non-root user: mkdir in restic index/",
        &["EPERM"],
        cx.shell(&as_nobody(&format!("mkdir {}", index("44")))),
    );

    // Readers: an uncertified restic and borg still take their locks, list and restore.
    let restic = sandbox_copy(&cx.sb, "/usr/bin/restic", "uncertified-restic");
    let python = sandbox_copy(&cx.sb, "/usr/bin/python3", "uncertified-python3");
    let (restic_cache, borg_home) = (
        cx.sb.path().join("restic-cache-reader"),
        cx.sb.path().join("borg-home-reader"),
    );
    let restic_run = |args: &[&str]| {
        outcome_of_tool(
            &clean(Command::new(&restic).args(args))
                .env("RESTIC_PASSWORD", "test")
                .env("RESTIC_REPOSITORY", &restic_repo)
                .env("RESTIC_CACHE_DIR", &restic_cache)
                .output()
                .unwrap(),
        )
    };
    let target = cx.sb.path().join("restore-uncertified");
    let o = restic_run(&["snapshots"]);
    cx.record(
        "uncertified restic snapshots (takes a lock)",
        &["succeeded"],
        o,
    );
    let o = restic_run(&[
        "restore",
        "latest",
        "--target",
        &target.display().to_string(),
    ]);
    cx.record("uncertified restic restore latest", &["succeeded"], o);
    let restored = std::fs::read_dir(&target).map_or(0, |d| d.count());
    cx.record(
        "uncertified restic restore: files restored",
        &["restored"],
        Outcome::Note(if restored > 0 { "restored" } else { "nothing" }.into()),
    );
    let borg_run = |args: &[&str], dir: &Path| {
        outcome_of_tool(
            &clean(Command::new(&python).arg("/usr/bin/borg").args(args))
                .current_dir(dir)
                .env("BORG_BASE_DIR", &borg_home)
                .env("BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK", "yes")
                .env("BORG_RELOCATED_REPO_ACCESS_IS_OK", "yes")
                .output()
                .unwrap(),
        )
    };
    let repo = borg_repo.display().to_string();
    let o = borg_run(&["list", &repo], cx.sb.path());
    cx.record("uncertified borg list (takes a lock)", &["succeeded"], o);
    let into = cx.sb.path().join("extract-uncertified");
    std::fs::create_dir_all(&into).unwrap();
    let o = borg_run(&["extract", &format!("{repo}::one")], &into);
    cx.record("uncertified borg extract", &["succeeded"], o);
    let extracted = std::fs::read_dir(&into).map_or(0, |d| d.count());
    cx.record(
        "uncertified borg extract: files extracted",
        &["extracted"],
        Outcome::Note(
            if extracted > 0 {
                "extracted"
            } else {
                "nothing"
            }
            .into(),
        ),
    );
}
