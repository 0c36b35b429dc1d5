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
