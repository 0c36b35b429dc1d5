//! Real backup programs on a protected volume: certified restic and borg do everything
//! (init, backup/create, forget --prune/prune+compact, check); the same binaries uncertified
//! are refused when they would modify the repository.

mod common;

use std::path::Path;

use common::*;

#[test]
fn restic_certified_works_and_uncertified_cannot_prune() {
    let sb = protected(256);
    let repo = sb.mnt.join("restic-repo");
    let restic_bin = Path::new("/usr/bin/restic");
    certify(&sb, restic_bin, false);
    assert_ok("restic init", &restic(&sb, &repo, &["init"]));
    let src = source_tree(&sb, 1);
    assert_ok(
        "restic backup 1",
        &restic(&sb, &repo, &["backup", "--quiet", src.to_str().unwrap()]),
    );
    let src = source_tree(&sb, 2);
    assert_ok(
        "restic backup 2",
        &restic(&sb, &repo, &["backup", "--quiet", src.to_str().unwrap()]),
    );
    assert_ok(
        "restic forget --prune",
        &restic(&sb, &repo, &["forget", "--keep-last", "1", "--prune"]),
    );
    assert_ok("restic check", &restic(&sb, &repo, &["check"]));
    let src = source_tree(&sb, 3);
    assert_ok(
        "restic backup 3",
        &restic(&sb, &repo, &["backup", "--quiet", src.to_str().unwrap()]),
    );

    // The same binary, uncertified (restic retries the refused deletions with backoff for
    // about 45 s before it gives up).
    let out = sb.imageguard(&["uncertify", "/usr/bin/restic"]).unwrap();
    assert_ok("uncertify", &out);
    let before = hashes(&repo);
    let out = restic(&sb, &repo, &["forget", "--keep-last", "1", "--prune"]);
    assert!(
        !out.status.success(),
        "uncertified prune succeeded: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        stderr(&out).contains("operation not permitted")
            || stderr(&out).contains("Operation not permitted"),
        "{}",
        stderr(&out)
    );
    let after = hashes(&repo);
    for (p, h) in &before {
        if !p.starts_with(repo.join("locks")) {
            assert_eq!(after.get(p), Some(h), "{} changed or vanished", p.display());
        }
    }
    assert!(events(&sb)
        .iter()
        .any(|e| e.id == 320 && e.exe.as_deref() == Some("/usr/bin/restic")));
    // Reading (with its non-exclusive lock) still works for the uncertified binary.
    assert_ok(
        "uncertified restic snapshots",
        &restic(&sb, &repo, &["snapshots"]),
    );
    assert_ok(
        "uncertified restic check --read-data",
        &restic(&sb, &repo, &["check", "--read-data"]),
    );
}

#[test]
fn borg_certified_works_and_uncertified_cannot_prune() {
    let sb = protected(256);
    let repo = sb.mnt.join("borg-repo");
    let r = repo.to_str().unwrap();
    certify(&sb, Path::new("/usr/bin/borg"), false);
    assert_ok("borg init", &borg(&sb, &["init", "-e", "none", r]));
    // Small segments: borg wants free space for a whole segment (500 MB by default) to prune.
    assert_ok(
        "borg config",
        &borg(&sb, &["config", r, "max_segment_size", "8388608"]),
    );
    let src = source_tree(&sb, 1);
    assert_ok(
        "borg create 1",
        &borg(
            &sb,
            &["create", &format!("{r}::one"), src.to_str().unwrap()],
        ),
    );
    let src = source_tree(&sb, 2);
    assert_ok(
        "borg create 2",
        &borg(
            &sb,
            &["create", &format!("{r}::two"), src.to_str().unwrap()],
        ),
    );
    assert_ok("borg prune", &borg(&sb, &["prune", "--keep-last", "1", r]));
    assert_ok("borg compact", &borg(&sb, &["compact", r]));
    assert_ok("borg check", &borg(&sb, &["check", r]));
    let src = source_tree(&sb, 3);
    assert_ok(
        "borg create 3",
        &borg(
            &sb,
            &["create", &format!("{r}::three"), src.to_str().unwrap()],
        ),
    );

    assert_ok(
        "uncertify",
        &sb.imageguard(&["uncertify", "/usr/bin/borg"]).unwrap(),
    );
    // Restores and verification stay open to everyone: borg takes its lock (made in a
    // temporary folder in the repository, then renamed) for reading too.
    assert_ok("uncertified borg list", &borg(&sb, &["list", r]));
    assert_ok(
        "uncertified borg extract --dry-run",
        &borg(&sb, &["extract", "--dry-run", &format!("{r}::three")]),
    );
    let before = hashes(&repo);
    let prune = borg(&sb, &["prune", "--keep-last", "1", r]);
    let compact = borg(&sb, &["compact", r]);
    assert!(
        !(prune.status.success() && compact.status.success()),
        "uncertified prune+compact succeeded"
    );
    let after = hashes(&repo);
    for (p, h) in &before {
        if !p.to_string_lossy().contains("lock") {
            assert_eq!(after.get(p), Some(h), "{} changed or vanished", p.display());
        }
    }
    assert!(events(&sb)
        .iter()
        .any(|e| e.id == 320 && e.exe.as_deref().is_some_and(|x| x.contains("python"))));
    // A certified borg still finds a healthy repository.
    certify(&sb, Path::new("/usr/bin/borg"), false);
    assert_ok("borg check after the attempt", &borg(&sb, &["check", r]));
    assert_ok("borg list", &borg(&sb, &["list", r]));
}

/// rsnapshot, as Debian ships it (a Perl script running `cp -al`, `rm -rf` and rsync as
/// separate processes), with `retain daily 2` and its `snapshot_root` on a guarded volume:
/// its configuration is a saved definition, so everything in the snapshot root is a backup.
/// Certified with its helpers, four daily runs rotate cleanly (daily.0 and daily.1, hard links
/// shared, no error); the same cp, rm and mv run by hand are refused, and the refusal says
/// they are rsnapshot's helpers.
#[test]
fn rsnapshot_rotates_with_its_helpers_and_the_same_tools_by_hand_are_refused() {
    let sb = protected(128);
    let root = sb.mnt.join("rsnapshot");
    let src = source_tree(&sb, 1);
    std::fs::write(src.join("constant.dat"), vec![7u8; 50_000]).unwrap();
    let etc = sb.path().join("etc");
    std::fs::create_dir_all(&etc).unwrap();
    let conf = etc.join("rsnapshot.conf");
    std::fs::write(
        &conf,
        format!(
            "config_version\t1.2\n\
             snapshot_root\t{root}/\n\
             cmd_cp\t/bin/cp\n\
             cmd_rm\t/bin/rm\n\
             cmd_rsync\t/usr/bin/rsync\n\
             retain\tdaily\t2\n\
             verbose\t2\n\
             lockfile\t{lock}\n\
             backup\t{src}/\tlocalhost/\n",
            root = root.display(),
            lock = sb.path().join("rsnapshot.pid").display(),
            src = src.display()
        ),
    )
    .unwrap();

    // Certified alone, rsnapshot's helpers are offered (no terminal: a note).
    let out = sb.imageguard(&["certify", "/usr/bin/rsnapshot"]).unwrap();
    assert_ok("certify rsnapshot", &out);
    assert!(
        stderr(&out).contains("cp, rm, rsync") && stderr(&out).contains("--helpers"),
        "{}",
        stderr(&out)
    );
    let out = sb
        .imageguard(&["certify", "--helpers", "/usr/bin/rsnapshot"])
        .unwrap();
    assert_ok("certify --helpers rsnapshot", &out);
    let listed =
        String::from_utf8_lossy(&sb.imageguard(&["certified"]).unwrap().stdout).to_string();
    for helper in ["/usr/bin/cp", "/usr/bin/rm", "/usr/bin/rsync"] {
        assert!(
            listed
                .lines()
                .any(|l| l.starts_with(helper) && l.contains("helper of /usr/bin/rsnapshot")),
            "{helper} not a helper of rsnapshot: {listed}"
        );
    }

    // The service reads the new rsnapshot.conf: its snapshot root is a backup destination
    // (nothing uncertified may then add to it, nor change what is in it).
    std::fs::create_dir_all(&root).unwrap();
    let probe = root.join("probe");
    let start = std::time::Instant::now();
    while std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(&probe)
        .is_ok()
    {
        assert!(
            start.elapsed().as_secs() < 5,
            "the snapshot root did not become a backup destination: {}",
            sb.service_log()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }

    // rsync --relative: the source's whole path under localhost/.
    let in_snapshot = |snapshot: &str, file: &str| {
        root.join(snapshot)
            .join("localhost")
            .join(src.strip_prefix("/").unwrap())
            .join(file)
    };
    for generation in 1..=4 {
        let src = source_tree(&sb, generation);
        // A day apart, as daily runs are (rsync's quick check compares size and time).
        assert_ok(
            "touch",
            &sh(&format!(
                "touch -d @{} {}/file-*.dat",
                1_700_000_000 + generation * 86_400,
                src.display()
            )),
        );
        let out = clean(std::process::Command::new("/usr/bin/rsnapshot").args([
            "-c",
            conf.to_str().unwrap(),
            "daily",
        ]))
        .output()
        .unwrap();
        assert!(
            out.status.success() && !stderr(&out).contains("ERROR"),
            "rsnapshot daily run {generation}: {}\n{}",
            stderr(&out),
            String::from_utf8_lossy(&out.stdout)
        );
        assert!(
            std::fs::read(in_snapshot("daily.0", "file-3.dat")).unwrap()
                == std::fs::read(src.join("file-3.dat")).unwrap(),
            "run {generation}: daily.0 does not hold this run's files"
        );
    }
    let names: std::collections::BTreeSet<String> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "probe")
        .collect();
    assert_eq!(
        names,
        ["daily.0", "daily.1"]
            .into_iter()
            .map(String::from)
            .collect(),
        "rotation"
    );
    use std::os::unix::fs::MetadataExt;
    let ino = |s: &str| {
        std::fs::metadata(in_snapshot(s, "constant.dat"))
            .unwrap()
            .ino()
    };
    assert_eq!(
        ino("daily.0"),
        ino("daily.1"),
        "unchanged files are not hard links"
    );

    // The same tools by hand.
    let r = root.display();
    let before = hashes(&root);
    assert_eperm(
        "cp -al of a snapshot",
        &sh(&format!("cp -al {r}/daily.0 {r}/daily.x")),
    );
    assert_eperm("rm -rf of a snapshot", &sh(&format!("rm -rf {r}/daily.1")));
    assert_eperm(
        "mv of a snapshot",
        &sh(&format!("mv {r}/daily.0 {r}/daily.9")),
    );
    assert_eperm(
        "rsync --delete into a snapshot",
        &sh(&format!(
            "rsync -a --delete {}/ {r}/daily.1/localhost/",
            sb.path().join("etc").display()
        )),
    );
    let after = hashes(&root);
    for (p, h) in &before {
        assert_eq!(after.get(p), Some(h), "{} changed or vanished", p.display());
    }
    assert!(
        events(&sb)
            .iter()
            .any(|e| e.id == 320 && e.message.contains("helper of /usr/bin/rsnapshot")),
        "no denial says the hand-run tool is rsnapshot's helper"
    );
}
