//! Attacks through the sync tools (issue 9): rsync and rclone are added as sync tools and the
//! setting is on (the suite's configuration allows them from the start; nothing is a sync tool
//! until this part adds them). `sync-dest` is a backup destination of a saved definition (an
//! own `[[definition]]`), written before protection like the rest of the volume; the offsite
//! copies the control rows prune live under `scratch/`, outside the suite's byte check. The
//! attacker controls the whole command line, the environment, the folders and the namespaces.

use std::path::Path;
use std::process::Command;

use imageguard::sandbox::Sandbox;

use crate::common::*;
use crate::suite::{outcome_of_tool, Ctx, Outcome};

const FILES: &[&str] = &["a.mrimg", "b.mrimg", "c.mrimg"];

/// Before the service starts: allow sync tools, name `sync-dest` as a definition's
/// destination, and fill it.
pub fn prepare(sb: &Sandbox) {
    let dest = sb.mnt.join("sync-dest");
    std::fs::create_dir_all(&dest).unwrap();
    for (i, f) in FILES.iter().enumerate() {
        write_pattern(&dest.join(f), 40_000, 20 + i as u8);
    }
    sb.edit_config(|t| t.replace("allow = false", "allow = true"))
        .unwrap();
    sb.add_definition("sync attacks", &dest).unwrap();
}

fn tool(program: &str, args: &[&str]) -> Outcome {
    let mut cmd = Command::new(program);
    cmd.args(args).env("RCLONE_CONFIG", "/dev/null");
    outcome_of_tool(&clean(&mut cmd).output().expect(program))
}

fn slash(p: &Path) -> String {
    format!("{}/", p.display())
}

pub fn attacks(cx: &mut Ctx) {
    let dest = cx.sb.mnt.join("sync-dest");
    for f in FILES {
        cx.watch(&dest.join(f));
    }
    for (dialect, program) in [("rsync", "/usr/bin/rsync"), ("rclone", "/usr/bin/rclone")] {
        assert_ok(
            "certify --sync-tool",
            &cx.ig(&["certify", "--sync-tool", dialect, program]),
        );
    }
    let scratch = cx.sb.mnt.join("scratch");
    let offsite = scratch.join("sync-off");
    let archive = scratch.join("sync-archive");
    std::fs::create_dir_all(&archive).unwrap();
    let outside = cx.sb.path().join("sync-outside");
    let empty = outside.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    write_pattern(&outside.join("old.mrimg"), 5000, 9);
    std::fs::create_dir_all(outside.join("stale")).unwrap();
    write_pattern(&outside.join("a.mrimg"), 40_000, 99);
    let (d, o) = (slash(&dest), slash(&offsite));
    // A backup only the offsite copy has (a new name each time, copied there by the sync tool
    // itself): an allowed mirror from the destination would prune it.
    let mut n = 0;
    let mut stale = |offsite: &Path| -> std::path::PathBuf {
        n += 1;
        let f = outside.join("stale").join(format!("stale-{n}.mrimg"));
        write_pattern(&f, 3000, n as u8);
        let r = tool("rsync", &["-a", &f.display().to_string(), &slash(offsite)]);
        assert_eq!(r, Outcome::Succeeded, "copying a stale backup offsite");
        offsite.join(f.file_name().unwrap())
    };

    // Controls: what the rules allow, in scratch (outside the byte check).
    let r = tool("rsync", &["-a", &d, &o]);
    cx.record(
        "control: a sync tool copies a destination offsite",
        &["succeeded"],
        r,
    );
    let r = tool(
        "rsync",
        &["-a", &outside.join("old.mrimg").display().to_string(), &o],
    );
    cx.record(
        "control: a sync tool copies a backup into its target",
        &["succeeded"],
        r,
    );
    let r = tool("rsync", &["-a", "--delete", &d, &o]);
    let pruned = !offsite.join("old.mrimg").exists();
    cx.record(
        "control: a mirror from a destination prunes the offsite copy",
        &["succeeded, pruned"],
        Outcome::Note(format!("{r}, {}", if pruned { "pruned" } else { "kept" })),
    );

    // Head-on.
    let r = tool("rsync", &["-a", "--delete", &slash(&empty), &d]);
    cx.record(
        "rsync --delete from an empty folder onto a destination",
        &["EPERM"],
        r,
    );
    let partial = scratch.join("sync-partial");
    let r = tool(
        "rsync",
        &[
            "-a",
            &dest.join("a.mrimg").display().to_string(),
            &slash(&partial),
        ],
    );
    assert_eq!(r, Outcome::Succeeded, "a partial offsite copy");
    let r = tool("rsync", &["-a", "--delete", &slash(&partial), &d]);
    cx.record(
        "rsync mirror of an offsite copy (lacking two backups) into the destination",
        &["EPERM"],
        r,
    );
    let r = tool(
        "rsync",
        &[
            "-tI",
            "--inplace",
            &outside.join("a.mrimg").display().to_string(),
            &d,
        ],
    );
    cx.record(
        "rsync --inplace over a backup in the destination",
        &["EPERM"],
        r,
    );
    let r = tool(
        "rsync",
        &["-rtI", &outside.join("a.mrimg").display().to_string(), &d],
    );
    cx.record(
        "rsync temp-file-then-rename over a backup in the destination",
        &["EPERM"],
        r,
    );
    let r = tool(
        "rsync",
        &[
            "-a",
            "--remove-source-files",
            &d,
            &slash(&outside.join("moved")),
        ],
    );
    cx.record(
        "rsync move out of the destination to an unprotected folder",
        &["EPERM"],
        r,
    );
    let r = tool(
        "rsync",
        &["-a", "--remove-source-files", &d, &slash(&archive)],
    );
    cx.record(
        "rsync move out of the destination to a plain protected folder (then overwrite there)",
        &["EPERM"],
        r,
    );
    let r = tool(
        "rsync",
        &[
            "-a",
            "--delete",
            &format!("--backup-dir={}", scratch.join("bk").display()),
            &slash(&empty),
            &d,
        ],
    );
    cx.record(
        "rsync --delete --backup-dir: the destination's files renamed away",
        &["EPERM"],
        r,
    );
    let r = tool("rclone", &["delete", &dest.display().to_string()]);
    cx.record(
        "rclone delete of the destination (never a transfer)",
        &["EPERM"],
        r,
    );
    let r = tool("rclone", &["purge", &dest.display().to_string()]);
    cx.record("rclone purge of the destination", &["EPERM"], r);
    let r = tool(
        "rclone",
        &[
            "sync",
            &empty.display().to_string(),
            &dest.display().to_string(),
        ],
    );
    cx.record(
        "rclone sync from an empty folder onto the destination",
        &["EPERM"],
        r,
    );
    let r = tool(
        "rclone",
        &[
            "move",
            &dest.display().to_string(),
            &outside.join("rmoved").display().to_string(),
        ],
    );
    cx.record(
        "rclone move of the destination to an unprotected folder",
        &["EPERM"],
        r,
    );

    // Through what the rules trust: the command line, the folders, the process.
    stale(&offsite);
    let r = tool(
        "rsync",
        &["-a", "--remove-sent-files", &o, &slash(&archive)],
    );
    cx.record(
        "rsync's old alias --remove-sent-files (a move the table does not list)",
        &["EPERM"],
        r,
    );
    let list = outside.join("list");
    std::fs::write(&list, "a.mrimg\n").unwrap();
    let r = tool(
        "rsync",
        &[
            "-a",
            "--remove-source-files",
            &format!("--files-from={}", list.display()),
            &o,
            &slash(&archive),
        ],
    );
    cx.record(
        "rsync --files-from, a move to a protected folder (what it moves is not on its command line)",
        &["EPERM"],
        r,
    );
    let r = outcome_of_tool(
        &clean(
            Command::new("rsync")
                .args(["-a", "--delete", "../sync-outside/empty/", "sync-dest/"])
                .current_dir(&cx.sb.mnt),
        )
        .output()
        .unwrap(),
    );
    cx.record(
        "rsync with relative folders (its working folder moves)",
        &["EPERM"],
        r,
    );
    std::fs::create_dir_all(outside.join("bent")).unwrap();
    let link = scratch.join("bent-link");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(outside.join("bent"), &link).unwrap();
    let r = tool("rsync", &["-a", "--remove-source-files", &o, &slash(&link)]);
    cx.record(
        "rsync move to a symlink on the volume that leads off it",
        &["EPERM"],
        r,
    );
    let r = tool(
        "rclone",
        &[
            "sync",
            "--rc",
            &empty.display().to_string(),
            &dest.display().to_string(),
        ],
    );
    cx.record(
        "rclone --rc (remote control: commands from elsewhere)",
        &["EPERM"],
        r,
    );
    stale(&offsite);
    let r = outcome_of_tool(
        &clean(Command::new("rsync").args(["-a", "--delete", &d, &o]))
            .env("LD_PRELOAD", "/nonexistent/evil.so")
            .output()
            .unwrap(),
    );
    cx.record(
        "LD_PRELOAD into the sync tool (an allowed mirror)",
        &["EPERM"],
        r,
    );
    stale(&offsite);
    let r = tool("unshare", &["-m", "rsync", "-a", "--delete", &d, &o]);
    cx.record(
        "the sync tool in a mount namespace of its own (an allowed mirror)",
        &["EPERM"],
        r,
    );
    let copy = cx.sb.path().join("bin/rsync-copy");
    std::fs::create_dir_all(copy.parent().unwrap()).unwrap();
    std::fs::copy("/usr/bin/rsync", &copy).unwrap();
    let r = outcome_of_tool(&output_fresh(clean(Command::new(&copy).args([
        "-a",
        "--delete",
        &slash(&empty),
        &o,
    ]))));
    cx.record("a copy of the sync tool", &["EPERM"], r);
    let here = cx.sb.path().join("bin/here-shell");
    std::fs::write(&here, "#!/bin/sh\nshift\nexec \"$@\"\n").unwrap();
    std::fs::set_permissions(&here, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    stale(&offsite);
    let r = tool(
        "rsync",
        &[
            "-a",
            "--delete",
            "-e",
            &here.display().to_string(),
            &d,
            &format!("elsewhere:{o}"),
        ],
    );
    cx.record(
        "rsync --server pushed with --delete from another machine (an allowed mirror locally)",
        &["EPERM"],
        r,
    );
    let before = std::fs::metadata(dest.join("a.mrimg")).map(|m| {
        use std::os::unix::fs::MetadataExt;
        m.nlink()
    });
    let _ = tool(
        "rsync",
        &[
            "-a",
            &format!("--link-dest={}", dest.display()),
            &slash(&dest),
            &slash(&scratch.join("linked")),
        ],
    );
    let after = std::fs::metadata(dest.join("a.mrimg")).map(|m| {
        use std::os::unix::fs::MetadataExt;
        m.nlink()
    });
    cx.record(
        "rsync --link-dest: hard links to the destination's files (to write through later)",
        &["no link made"],
        Outcome::Note(
            if before.ok() == after.ok() {
                "no link made"
            } else {
                "linked"
            }
            .into(),
        ),
    );
}
