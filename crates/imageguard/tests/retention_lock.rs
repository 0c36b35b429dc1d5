//! The retention lock (issue 10): with a 14-day lock on the volume, a certified program may
//! not empty, delete or rename away a fresh backup, but may still write new ones and append;
//! `status` shows the lock and what it holds; the service's clock moved 15 days (its saved
//! state edited while it is stopped: the clock source's override) releases them; the files'
//! own times never do.

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
    let mut sb = Sandbox::new(&exe(), 64).expect("sandbox");
    std::fs::create_dir_all(sb.mnt.join("images")).unwrap();
    write_pattern(&sb.mnt.join("images/old.mrimg"), 100_000, 1);
    let config = sb.path().join("imageguard.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replacen(
            "[retention]\n",
            &format!("[retention]\n\"{}\" = {days}\n", sb.mnt.display()),
            1,
        ),
    )
    .unwrap();
    sb.start_service().expect("service");
    assert_ok(
        "protect",
        &sb.imageguard(&["protect", &sb.mnt.to_string_lossy()])
            .unwrap(),
    );
    sb
}

/// Move the service's clock forward by `days` (stopped, its saved state edited, started).
fn pass_days(sb: &mut Sandbox, days: u64) {
    sb.stop_service().unwrap();
    let f = sb.path().join("state/clock.json");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&f).unwrap()).unwrap();
    let elapsed = v["elapsed_secs"].as_u64().unwrap();
    v["elapsed_secs"] = (elapsed + days * 86_400).into();
    std::fs::write(&f, serde_json::to_vec(&v).unwrap()).unwrap();
    sb.start_service().unwrap();
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
