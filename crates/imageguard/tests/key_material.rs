//! Key material is never released by age (issue 10, item 5): with restic and borg certified,
//! `restic key passwd`, `restic key remove` and `borg key change-passphrase` run by whoever can
//! read the job's password are refused and logged, and the owner's password still opens the
//! repository; inside a maintenance window opened with imageguard they work.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::*;
use imageguard::sandbox::Sandbox;

fn restic_with(sb: &Sandbox, repo: &Path, password: &str, args: &[&str]) -> Output {
    clean(Command::new("restic").args(args))
        .env("RESTIC_PASSWORD", password)
        .env("RESTIC_REPOSITORY", repo)
        .env("RESTIC_CACHE_DIR", sb.path().join("restic-cache"))
        .output()
        .expect("restic")
}

fn borg_with(sb: &Sandbox, passphrase: &str, new: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = Command::new("borg");
    cmd.args(args)
        .env("BORG_BASE_DIR", sb.path().join("borg-home"))
        .env("BORG_PASSPHRASE", passphrase)
        .env("BORG_RELOCATED_REPO_ACCESS_IS_OK", "yes");
    if let Some(n) = new {
        cmd.env("BORG_NEW_PASSPHRASE", n);
    }
    clean(&mut cmd).output().expect("borg")
}

fn key_ids(sb: &Sandbox, repo: &Path, password: &str) -> Vec<String> {
    let out = restic_with(sb, repo, password, &["key", "list", "--json"]);
    assert_ok("restic key list", &out);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|k| k["id"].as_str().unwrap().to_string())
        .collect()
}

fn held_320(sb: &Sandbox) -> bool {
    events(sb)
        .iter()
        .any(|e| e.id == 320 && e.message.contains("is only ever added to"))
}

#[test]
fn restic_keys_are_only_added_to_outside_a_maintenance_window() {
    let sb = protected(128);
    certify(&sb, Path::new("/usr/bin/restic"), false);
    let repo = sb.mnt.join("restic-repo");
    assert_ok("restic init", &restic_with(&sb, &repo, "owner", &["init"]));
    let src = source_tree(&sb, 1);
    assert_ok(
        "restic backup",
        &restic_with(
            &sb,
            &repo,
            "owner",
            &["backup", "--quiet", src.to_str().unwrap()],
        ),
    );
    let pw = sb.path().join("new-password");
    std::fs::write(&pw, "ransom").unwrap();
    let pw = pw.to_string_lossy().to_string();
    let before = hashes(&repo.join("keys"));

    // key passwd: writes a new key, then removes the owner's: the removal is refused.
    let out = restic_with(
        &sb,
        &repo,
        "owner",
        &["key", "passwd", "--new-password-file", &pw],
    );
    assert!(!out.status.success(), "restic key passwd went through");
    assert!(held_320(&sb), "no 320 for the key");
    assert_ok(
        "the owner's password still opens the repository",
        &restic_with(&sb, &repo, "owner", &["snapshots"]),
    );
    for (f, h) in &before {
        assert_eq!(
            hashes(&repo.join("keys")).get(f),
            Some(h),
            "{} changed",
            f.display()
        );
    }

    // key remove of the owner's key, with a key added meanwhile: refused.
    let owner_keys = key_ids(&sb, &repo, "owner");
    let out = restic_with(&sb, &repo, "ransom", &["key", "remove", &owner_keys[0]]);
    assert!(!out.status.success(), "restic key remove went through");
    assert_ok(
        "the owner's password still opens the repository",
        &restic_with(&sb, &repo, "owner", &["snapshots"]),
    );

    // Inside a maintenance window the owner changes the password.
    let mnt = sb.mnt.to_string_lossy().to_string();
    assert_ok(
        "maintenance",
        &sb.imageguard(&["maintenance", &mnt, "--minutes", "5"])
            .unwrap(),
    );
    let status = sb.imageguard(&["status"]).unwrap();
    assert!(
        String::from_utf8_lossy(&status.stdout).contains("maintenance window open"),
        "{}",
        String::from_utf8_lossy(&status.stdout)
    );
    let newer = sb.path().join("owner-2");
    std::fs::write(&newer, "owner-2").unwrap();
    assert_ok(
        "restic key passwd in a window",
        &restic_with(
            &sb,
            &repo,
            "owner",
            &[
                "key",
                "passwd",
                "--new-password-file",
                &newer.to_string_lossy(),
            ],
        ),
    );
    assert_ok(
        "close",
        &sb.imageguard(&["maintenance", &mnt, "--close"]).unwrap(),
    );
    assert_ok(
        "the new password opens it",
        &restic_with(&sb, &repo, "owner-2", &["snapshots"]),
    );
    assert!(!restic_with(&sb, &repo, "owner", &["snapshots"])
        .status
        .success());
    assert_ok(
        "restic check",
        &restic_with(&sb, &repo, "owner-2", &["check"]),
    );
}

#[test]
fn borg_change_passphrase_is_refused_outside_a_maintenance_window() {
    let sb = protected(128);
    certify(&sb, Path::new("/usr/bin/borg"), false);
    let repo = sb.mnt.join("borg-repo");
    let r = repo.to_string_lossy().to_string();
    assert_ok(
        "borg init",
        &borg_with(&sb, "owner", None, &["init", "-e", "repokey", &r]),
    );
    let src = source_tree(&sb, 1);
    assert_ok(
        "borg create",
        &borg_with(
            &sb,
            "owner",
            None,
            &["create", &format!("{r}::one"), src.to_str().unwrap()],
        ),
    );
    let config = repo.join("config");
    let before = std::fs::read(&config).unwrap();
    let out = borg_with(
        &sb,
        "owner",
        Some("ransom"),
        &["key", "change-passphrase", &r],
    );
    assert!(
        !out.status.success(),
        "borg key change-passphrase went through"
    );
    assert!(held_320(&sb), "no 320 for the key");
    assert_eq!(std::fs::read(&config).unwrap(), before, "config rewritten");
    assert_ok(
        "the owner's passphrase still opens it",
        &borg_with(&sb, "owner", None, &["list", &r]),
    );

    let mnt = sb.mnt.to_string_lossy().to_string();
    assert_ok(
        "maintenance",
        &sb.imageguard(&["maintenance", &mnt]).unwrap(),
    );
    assert_ok(
        "borg key change-passphrase in a window",
        &borg_with(
            &sb,
            "owner",
            Some("owner-2"),
            &["key", "change-passphrase", &r],
        ),
    );
    assert_ok(
        "the new passphrase opens it",
        &borg_with(&sb, "owner-2", None, &["list", &r]),
    );
    assert_ok(
        "borg check",
        &borg_with(&sb, "owner-2", None, &["check", &r]),
    );
}
