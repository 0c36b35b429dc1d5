//! The retention lock (issue 10): with a 14-day lock on the volume, a certified program may
//! not empty, delete or rename away a fresh backup, but may still write new ones and append;
//! `status` shows the lock and what it holds; the service's clock moved 15 days (its saved
//! state edited while it is stopped: the clock source's override) releases them; the files'
//! own times never do. `imageguard off`, `unprotect`, a service stop and a lock removed from
//! the configuration release nothing before the lock's period has passed.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use imageguard::sandbox::Sandbox;

fn certified_run(program: &Path, args: &[&str]) -> std::process::Output {
    output_fresh(clean(Command::new(program).args(args)))
}

/// The sandbox with a `days` lock on its volume, started and protecting it.
fn locked(days: u32) -> Sandbox {
    locked_of(days, 64)
}

/// [`locked`] on a volume of `mib` MiB.
fn locked_of(days: u32, mib: u64) -> Sandbox {
    let mut sb = Sandbox::new(&exe(), mib).expect("sandbox");
    std::fs::create_dir_all(sb.mnt.join("images")).unwrap();
    write_pattern(&sb.mnt.join("images/old.mrimg"), 100_000, 1);
    sb.add_retention_lock(&sb.mnt, days).unwrap();
    sb.start_service().expect("service");
    assert_ok(
        "protect",
        &sb.imageguard(&["protect", &sb.mnt.to_string_lossy()])
            .unwrap(),
    );
    sb
}

/// Move the service's clock forward by `days` (stopped, its saved state edited, started).
fn advance_clock(sb: &mut Sandbox, days: u64) {
    sb.stop_service().unwrap();
    let f = sb.path().join("state/clock.json");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&f).unwrap()).unwrap();
    let elapsed = v["elapsed_secs"].as_u64().unwrap();
    v["elapsed_secs"] = (elapsed + days * 86_400).into();
    std::fs::write(&f, serde_json::to_vec(&v).unwrap()).unwrap();
    sb.start_service().unwrap();
}

/// [`advance_clock`], and the volume protected (again, if the lock did not keep it).
fn pass_days(sb: &mut Sandbox, days: u64) {
    advance_clock(sb, days);
    assert_ok(
        "protect again",
        &sb.imageguard(&["protect", &sb.mnt.to_string_lossy()])
            .unwrap(),
    );
}

#[test]
fn young_backups_are_held_even_against_certified_programs() {
    let mut sb = locked(14);
    let cp = sb.path().join("bin/cp");
    let rm = sb.path().join("bin/rm");
    let mv = sb.path().join("bin/mv");
    let touch = sb.path().join("bin/touch");
    std::fs::create_dir_all(cp.parent().unwrap()).unwrap();
    for (from, to) in [
        ("/bin/cp", &cp),
        ("/bin/rm", &rm),
        ("/bin/mv", &mv),
        ("/usr/bin/touch", &touch),
    ] {
        std::fs::copy(from, to).unwrap();
        certify(&sb, to, true);
    }
    let image = sb.mnt.join("images/old.mrimg");
    let i = image.to_string_lossy().to_string();
    let before = std::fs::read(&image).unwrap();

    let status = String::from_utf8_lossy(&sb.imageguard(&["status"]).unwrap().stdout).to_string();
    assert!(
        status.contains("retention lock:  14 days; 1 files younger than that"),
        "{status}"
    );

    // A certified cp /dev/null over it, rm, mv away: held, logged naming the lock.
    assert_eperm(
        "certified cp /dev/null IMAGE",
        &certified_run(&cp, &["/dev/null", &i]),
    );
    assert_eperm("certified rm IMAGE", &certified_run(&rm, &["-f", &i]));
    assert_eperm(
        "certified mv IMAGE away",
        &certified_run(&mv, &[&i, &format!("{i}.old")]),
    );
    assert_eq!(std::fs::read(&image).unwrap(), before, "every byte intact");
    assert!(events(&sb)
        .iter()
        .any(|e| e.id == 320 && e.message.contains("held by the 14-day retention lock")));

    // Its own times (a certified touch -d may set them) do not make it old.
    assert_ok(
        "certified touch -d 2020-01-01",
        &certified_run(&touch, &["-d", "2020-01-01", &i]),
    );
    assert_eperm("certified rm after touch", &certified_run(&rm, &["-f", &i]));

    // New backups and appends stay allowed to the certified program.
    let new = sb.mnt.join("images/new.mrimg");
    assert_ok(
        "certified cp of a new backup",
        &certified_run(&cp, &[&i, &new.to_string_lossy()]),
    );

    // 13 days later: still held; a copy made now is 2 days old when the first is 15 days old
    // and released.
    pass_days(&mut sb, 13);
    assert_eperm("certified rm at 13 days", &certified_run(&rm, &["-f", &i]));
    let later = sb.mnt.join("images/later.mrimg");
    assert_ok(
        "certified cp at 13 days",
        &certified_run(&cp, &[&i, &later.to_string_lossy()]),
    );
    pass_days(&mut sb, 2);
    assert_ok("certified rm at 15 days", &certified_run(&rm, &["-f", &i]));
    assert!(!image.exists());
    assert_eperm(
        "certified rm of the copy 2 days old",
        &certified_run(&rm, &["-f", &later.to_string_lossy()]),
    );
    let status = String::from_utf8_lossy(&sb.imageguard(&["status"]).unwrap().stdout).to_string();
    assert!(
        status.contains("retention lock:  14 days; 1 files younger than that"),
        "{status}"
    );
}

/// restic under a 14-day lock: backups go on (new packs, temporary files moved into place);
/// a certified `restic forget --keep-last 1 --prune` on fresh snapshots deletes nothing and the
/// repository checks clean; 15 days on, the same command prunes and it still checks clean.
#[test]
fn restic_keeps_backing_up_and_prunes_only_what_the_lock_released() {
    let mut sb = locked(14);
    certify(&sb, Path::new("/usr/bin/restic"), false);
    let repo = sb.mnt.join("restic-repo");
    assert_ok("restic init", &restic(&sb, &repo, &["init"]));
    for generation in 1..=2 {
        let src = source_tree(&sb, generation);
        assert_ok(
            "restic backup under the lock",
            &restic(&sb, &repo, &["backup", "--quiet", src.to_str().unwrap()]),
        );
    }
    let snapshots = |sb: &Sandbox| {
        let out = restic(sb, &repo, &["snapshots", "--json"]);
        assert_ok("restic snapshots", &out);
        serde_json::from_slice::<serde_json::Value>(&out.stdout)
            .unwrap()
            .as_array()
            .map_or(0, Vec::len)
    };
    assert_eq!(snapshots(&sb), 2);
    let out = restic(&sb, &repo, &["forget", "--keep-last", "1", "--prune"]);
    assert!(
        !out.status.success(),
        "forget --prune went through the lock"
    );
    assert_eq!(snapshots(&sb), 2, "a young snapshot was forgotten");
    assert_ok("restic check", &restic(&sb, &repo, &["check"]));
    assert!(events(&sb)
        .iter()
        .any(|e| e.id == 320 && e.message.contains("retention lock")));

    pass_days(&mut sb, 15);
    assert_ok(
        "restic forget --prune after 15 days",
        &restic(&sb, &repo, &["forget", "--keep-last", "1", "--prune"]),
    );
    assert_eq!(snapshots(&sb), 1);
    assert_ok(
        "restic check",
        &restic(&sb, &repo, &["check", "--read-data"]),
    );
}

/// Whether the volume is guarded, only by its lock.
fn lock_only(sb: &Sandbox) -> Option<bool> {
    status(sb)["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["mount_point"] == sb.mnt.to_string_lossy().as_ref())
        .map(|v| v["lock_only"].as_bool().unwrap())
}

#[test]
fn off_unprotect_stop_and_a_removed_lock_release_nothing_young() {
    let mut sb = locked(14);
    let image = sb.mnt.join("images/old.mrimg");
    let i = image.to_string_lossy().to_string();
    let before = std::fs::read(&image).unwrap();
    std::fs::write(sb.mnt.join("notes.txt"), "ordinary").unwrap();
    let held_by_ransomware = |what: &str| {
        assert_eperm(&format!("rm {what}"), &sh(&format!("rm -f '{i}'")));
        assert_eperm(
            &format!("truncate {what}"),
            &sh(&format!("truncate -s 0 '{i}'")),
        );
        assert_eperm(
            &format!("mv away {what}"),
            &sh(&format!("mv '{i}' '{i}.x'")),
        );
        assert_eq!(std::fs::read(&image).unwrap(), before, "intact {what}");
    };

    // `imageguard off`: the guard stays, only the lock refusing.
    let off = sb.imageguard(&["off"]).unwrap();
    assert_ok("off", &off);
    assert!(
        String::from_utf8_lossy(&off.stdout).contains("retention lock is in force"),
        "{}",
        String::from_utf8_lossy(&off.stdout)
    );
    assert_eq!(lock_only(&sb), Some(true));
    held_by_ransomware("after off");
    assert!(events(&sb).iter().any(|e| e.id == 320
        && e.message
            .contains("protection is off on this volume, but held by the 14-day retention lock")));
    // What the lock does not hold is open, as protection off means: ordinary files, new
    // backups (which the lock then holds).
    assert_ok(
        "ordinary file",
        &sh(&format!(
            "echo more >> '{}'",
            sb.mnt.join("notes.txt").display()
        )),
    );
    let fresh = sb.mnt.join("images/made-while-off.mrimg");
    assert_ok(
        "a new backup while off",
        &sh(&format!("echo new > '{}'", fresh.display())),
    );
    assert_eperm(
        "rm of the backup made while off",
        &sh(&format!("rm -f '{}'", fresh.display())),
    );
    let text = String::from_utf8_lossy(&sb.imageguard(&["status"]).unwrap().stdout).to_string();
    assert!(
        text.contains("protection off on 1 volume(s) where a retention lock"),
        "{text}"
    );
    assert_ok("on", &sb.imageguard(&["on"]).unwrap());
    assert_eq!(lock_only(&sb), Some(false));

    // `unprotect`: the same.
    let un = sb
        .imageguard(&["unprotect", &sb.mnt.to_string_lossy()])
        .unwrap();
    assert_ok("unprotect", &un);
    assert_eq!(lock_only(&sb), Some(true));
    held_by_ransomware("after unprotect");

    // A service stop does not give it back: closed (reads too) until it starts again.
    sb.stop_service().unwrap();
    assert!(
        std::fs::read(&image).is_err(),
        "a locked volume stays closed while the service is stopped"
    );
    let rm = sh(&format!("rm -f '{i}'"));
    assert!(
        !rm.status.success() && stderr(&rm).contains("not connected"),
        "rm while stopped: {}",
        stderr(&rm)
    );
    sb.start_service().unwrap();
    assert_eq!(
        lock_only(&sb),
        Some(true),
        "still held by the lock after a restart"
    );
    assert_eq!(std::fs::read(&image).unwrap(), before, "reads work again");
    held_by_ransomware("after a restart");

    // The lock removed from the configuration: in force for 14 more days.
    let config = sb.path().join("imageguard.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    let line = format!("\"{}\" = 14\n", sb.mnt.display());
    assert!(text.contains(&line));
    std::fs::write(&config, text.replacen(&line, "", 1)).unwrap();
    advance_clock(&mut sb, 0);
    let st = status(&sb);
    let locks = st["retention_locks"].as_array().unwrap();
    assert!(
        locks.len() == 1 && locks[0]["days"] == 14 && locks[0]["until"].is_string(),
        "{st}"
    );
    held_by_ransomware("with the lock removed from the configuration");
    assert!(events(&sb).iter().any(|e| e.id == 340
        && e.message
            .contains("removed in the configuration: the 14 days stay in force until")));

    // 13 days on: still held. 15: the lock has ended and the volume, unprotected, is given back.
    advance_clock(&mut sb, 13);
    held_by_ransomware("13 days after the lock was removed");
    advance_clock(&mut sb, 2);
    assert_eq!(lock_only(&sb), None, "given back");
    assert!(status(&sb)["retention_locks"]
        .as_array()
        .unwrap()
        .is_empty());
    assert_ok("rm once the lock has ended", &sh(&format!("rm -f '{i}'")));
}

/// Every segment file of a borg repository and its hash.
fn segments(repo: &Path) -> std::collections::BTreeMap<std::path::PathBuf, String> {
    hashes(&repo.join("data"))
}

/// borg under a 14-day lock, as ransomware holding the job's passphrase would run it
/// (certified): `borg delete REPO` deletes nothing; `borg prune` only records its deletions in
/// new segments, and the `borg compact` that would erase them is refused, every segment byte
/// intact, so the pruned archives come back from a copy by borg's documented rollback. Backups
/// go on; an interrupted run's uncommitted segment is rolled back by borg as usual; 15 days on,
/// compact frees the space and `borg check --verify-data` passes.
#[test]
fn borg_keeps_backing_up_and_compacts_only_what_the_lock_released() {
    // borg keeps a whole segment's worth (500 MB) free for compaction.
    let mut sb = locked_of(14, 1024);
    certify(&sb, Path::new("/usr/bin/borg"), false);
    let repo = sb.mnt.join("borg-repo");
    let r = repo.to_string_lossy().to_string();
    let archives = |sb: &Sandbox| -> Vec<String> {
        let out = borg(sb, &["list", "--short", &r]);
        assert_ok("borg list", &out);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect()
    };
    assert_ok("borg init", &borg(&sb, &["init", "-e", "none", &r]));
    for g in 1..=3 {
        let src = source_tree(&sb, g);
        assert_ok(
            "borg create under the lock",
            &borg(
                &sb,
                &["create", &format!("{r}::a{g}"), src.to_str().unwrap()],
            ),
        );
    }
    let before = segments(&repo);
    let last_before = before
        .keys()
        .filter_map(|p| p.file_name()?.to_str()?.parse::<u64>().ok())
        .max()
        .unwrap();

    // `borg delete REPO`: its first step (erase config) is refused; nothing is deleted.
    let del = clean(Command::new("borg").args(["delete", &r]))
        .env("BORG_BASE_DIR", sb.path().join("borg-home"))
        .env("BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK", "yes")
        .env("BORG_DELETE_I_KNOW_WHAT_I_AM_DOING", "YES")
        .output()
        .unwrap();
    assert!(!del.status.success(), "borg delete REPO went through");
    assert_eq!(segments(&repo), before, "borg delete REPO changed segments");
    assert_eq!(archives(&sb), ["a1", "a2", "a3"]);

    // prune records its deletions; compact, which would erase them, is refused.
    assert_ok(
        "borg prune (it only records deletions)",
        &borg(&sb, &["prune", "--keep-last", "1", &r]),
    );
    assert_eq!(archives(&sb), ["a3"]);
    let compact = borg(&sb, &["compact", "--threshold", "0", &r]);
    assert!(
        !compact.status.success(),
        "borg compact went through the lock"
    );
    assert!(
        stderr(&compact).contains("Operation not permitted"),
        "{}",
        stderr(&compact)
    );
    let now = segments(&repo);
    for (p, h) in &before {
        assert_eq!(now.get(p), Some(h), "{} changed", p.display());
    }
    assert!(events(&sb).iter().any(|e| e.id == 320
        && e.message.contains("held by the 14-day retention lock")
        && e.file
            .as_deref()
            .is_some_and(|f| f.contains("borg-repo/data/"))));
    assert_ok(
        "borg check after the refused compact",
        &borg(&sb, &["check", &r]),
    );

    // What prune took away comes back from a copy, by borg's rollback: the transactions after
    // the last one before it removed, with the indexes.
    let copy = sb.path().join("recovered");
    assert_ok(
        "copy the repository",
        &sh(&format!("cp -a '{r}' '{}'", copy.display())),
    );
    for entry in walk(&copy) {
        let name = entry.file_name().unwrap().to_string_lossy().to_string();
        let later_segment = entry
            .parent()
            .and_then(|d| d.parent())
            .is_some_and(|d| d.ends_with("data"))
            && name.parse::<u64>().is_ok_and(|n| n > last_before);
        let index = ["index.", "hints.", "integrity."]
            .iter()
            .any(|p| name.starts_with(p));
        if later_segment || index {
            std::fs::remove_file(&entry).unwrap();
        }
    }
    let restored = clean(Command::new("borg").args(["list", "--short", copy.to_str().unwrap()]))
        .env("BORG_BASE_DIR", sb.path().join("borg-home-recovery"))
        .env("BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK", "yes")
        .env("BORG_RELOCATED_REPO_ACCESS_IS_OK", "yes")
        .output()
        .unwrap();
    assert_ok("borg list of the rolled-back copy", &restored);
    assert_eq!(
        String::from_utf8_lossy(&restored.stdout)
            .lines()
            .collect::<Vec<_>>(),
        ["a1", "a2", "a3"],
        "the pruned archives are back"
    );

    // Backups go on.
    let src = source_tree(&sb, 4);
    assert_ok(
        "borg create after the refused compact",
        &borg(&sb, &["create", &format!("{r}::a4"), src.to_str().unwrap()]),
    );

    // An interrupted run leaves a segment written after the last commit; borg's next run rolls
    // it back (deletes it) as it always does, lock or not. A copy of a segment without a
    // commit, placed after the last one, stands for it.
    let segs = segments(&repo);
    let numbered = |p: &Path| p.file_name()?.to_str()?.parse::<u64>().ok();
    let last = segs.keys().filter_map(|p| numbered(p)).max().unwrap();
    let dir = segs.keys().next().unwrap().parent().unwrap().to_path_buf();
    let put_only = segs
        .keys()
        .find(|p| {
            let b = std::fs::read(p).unwrap();
            b.len() > 100 && !b.ends_with(&imageguard_policy::borg_log::commit_entry())
        })
        .expect("a segment without a commit");
    let dangling = dir.join((last + 1).to_string());
    let cp = sb.path().join("bin/cp");
    std::fs::create_dir_all(cp.parent().unwrap()).unwrap();
    std::fs::copy("/bin/cp", &cp).unwrap();
    certify(&sb, &cp, true);
    assert_ok(
        "certified cp of an uncommitted segment",
        &certified_run(
            &cp,
            &[put_only.to_str().unwrap(), dangling.to_str().unwrap()],
        ),
    );
    let src = source_tree(&sb, 5);
    assert_ok(
        "borg create after an interrupted run",
        &borg(&sb, &["create", &format!("{r}::a5"), src.to_str().unwrap()]),
    );
    assert_ne!(
        std::fs::read(&dangling).ok(),
        std::fs::read(put_only).ok(),
        "the uncommitted segment was rolled back"
    );
    assert_ok("borg check", &borg(&sb, &["check", &r]));
    assert_eq!(archives(&sb), ["a3", "a4", "a5"]);

    // 15 days on: compact frees what prune marked.
    pass_days(&mut sb, 15);
    let segments_before = segments(&repo).len();
    assert_ok(
        "borg compact after 15 days",
        &borg(&sb, &["compact", "--threshold", "0", &r]),
    );
    assert!(
        segments(&repo).len() < segments_before,
        "compact freed nothing"
    );
    assert_ok(
        "borg check --verify-data",
        &borg(&sb, &["check", "--verify-data", &r]),
    );
    assert_eq!(archives(&sb), ["a3", "a4", "a5"]);
}

/// Every file under `dir`.
fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![];
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// `imageguard definitions` shows the lock on each destination and how many files it holds.
#[test]
fn definitions_show_the_lock_and_what_it_holds() {
    let mut sb = Sandbox::new(&exe(), 64).expect("sandbox");
    let dest = sb.mnt.join("images");
    std::fs::create_dir_all(&dest).unwrap();
    write_pattern(&dest.join("a.mrimg"), 10_000, 1);
    write_pattern(&dest.join("b.mrimg"), 10_000, 2);
    sb.add_retention_lock(&dest, 14).unwrap();
    sb.add_definition("nightly", &dest).unwrap();
    sb.start_service().expect("service");
    let out = sb.imageguard(&["definitions", "--json"]).unwrap();
    assert_ok("definitions --json", &out);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let d = &v["destinations"][0];
    assert_eq!(d["protected"], true, "{v}");
    assert_eq!(d["lock_days"], 14, "{v}");
    assert_eq!(d["locked_files"], 2, "{v}");
    let text = sb.imageguard(&["definitions"]).unwrap();
    assert!(
        String::from_utf8_lossy(&text.stdout).contains("14 days (2 files held)"),
        "{}",
        String::from_utf8_lossy(&text.stdout)
    );
}

/// Folders under a lock: a young snapshot folder renamed within its own folder (rsnapshot's
/// rotation, daily.0 to daily.1) keeps its lock and goes through; moved elsewhere, or when it is
/// a lock's own folder, it is held (the lock is by path).
#[test]
fn snapshot_folders_rotate_in_place_but_do_not_leave_their_lock() {
    let mut sb = Sandbox::new(&exe(), 64).expect("sandbox");
    let root = sb.mnt.join("snapshots");
    for d in ["daily.0", "keep/inner"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    write_pattern(&root.join("daily.0/disk.mrimg"), 10_000, 1);
    write_pattern(&root.join("keep/inner/disk.mrimg"), 10_000, 2);
    std::fs::create_dir_all(sb.mnt.join("elsewhere")).unwrap();
    sb.add_retention_lock(&sb.mnt, 14).unwrap();
    sb.add_retention_lock(&root.join("keep/inner"), 30).unwrap();
    sb.start_service().expect("service");
    assert_ok(
        "protect",
        &sb.imageguard(&["protect", &sb.mnt.to_string_lossy()])
            .unwrap(),
    );
    let mv = sb.path().join("bin/mv");
    std::fs::create_dir_all(mv.parent().unwrap()).unwrap();
    std::fs::copy("/bin/mv", &mv).unwrap();
    certify(&sb, &mv, true);
    let p = |r: &str| root.join(r).to_string_lossy().to_string();
    assert_ok(
        "certified mv daily.0 daily.1 (rotation in place)",
        &certified_run(&mv, &[&p("daily.0"), &p("daily.1")]),
    );
    assert!(root.join("daily.1/disk.mrimg").exists());
    assert_eperm(
        "certified mv of a young snapshot folder to another folder",
        &certified_run(
            &mv,
            &[
                &p("daily.1"),
                &sb.mnt.join("elsewhere/daily.1").to_string_lossy(),
            ],
        ),
    );
    assert_eperm(
        "certified mv of a folder holding a longer lock's folder, in place",
        &certified_run(&mv, &[&p("keep"), &p("kept")]),
    );
    assert_eperm(
        "certified mv of a longer lock's own folder, in place",
        &certified_run(&mv, &[&p("keep/inner"), &p("keep/outer")]),
    );
}
