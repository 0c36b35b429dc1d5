//! What the service trusts from other programs' files (issue 17, items 1 and 2).
//!
//! Definitions are other programs' files, some in users' homes. A user without root (bob,
//! uid 1000, home in the sandbox) whose backups sit in `bob-mirror/` on the protected volume,
//! a folder no definition names, writes a borgmatic file in his home naming an empty folder,
//! then mirrors that folder over `bob-mirror/` with rsync (a sync tool, sync tools allowed):
//! refused, since only a definition an administrator approved lets a sync tool delete, and the
//! refusal names the definition. The same with the admin lock set, and by root with a system
//! definition. A user's definition naming a folder outside his home protects nothing, nor
//! does one naming a folder in memory (tmpfs). Controls: an approved definition's destination
//! mirrored to an archive prunes it; edited after approval, it prunes no more until approved
//! again.
//!
//! Then, on a volume of its own without a retention lock: with the admin lock set, a plain
//! SIGTERM of the service gives nothing back (the volume stays closed until the service starts
//! again), and `imageguard stop` without the passphrase is refused.

use std::path::{Path, PathBuf};
use std::process::Command;

use imageguard::sandbox::Sandbox;

use crate::common::*;
use crate::suite::{outcome_of_tool, Ctx, Outcome};

const BOB: u32 = 1000;
const MIRRORED: &[&str] = &["a.mrimg", "b.mrimg", "c.mrimg"];

fn home(sb: &Sandbox) -> PathBuf {
    sb.path().join("home/bob")
}

/// Before the service starts: bob in the sandbox's password database, his home, his backups
/// on the volume; a folder of backups an approved definition will name, and its archive.
pub fn prepare(sb: &Sandbox) {
    let h = home(sb);
    std::fs::create_dir_all(h.join("empty")).unwrap();
    let etc = sb.path().join("etc");
    std::fs::create_dir_all(etc.join("borgmatic.d")).unwrap();
    std::fs::write(
        etc.join("passwd"),
        format!(
            "root:x:0:0:root:/root:/bin/bash\nbob:x:{BOB}:{BOB}:Bob:{}:/bin/sh\n",
            h.display()
        ),
    )
    .unwrap();
    let mirror = sb.mnt.join("bob-mirror");
    std::fs::create_dir_all(&mirror).unwrap();
    for (i, f) in MIRRORED.iter().enumerate() {
        write_pattern(&mirror.join(f), 20_000, 60 + i as u8);
    }
    let vetted = sb.mnt.join("vetted-dest");
    std::fs::create_dir_all(&vetted).unwrap();
    write_pattern(&vetted.join("v1.mrimg"), 20_000, 70);
    std::fs::create_dir_all(sb.mnt.join("scratch/vetted-archive")).unwrap();
    // bob may reach his home and write his backups' folder; the sandbox is traversable.
    assert_ok(
        "bob's files",
        &sh(&format!(
            "chmod 0755 '{}' '{}/home' && chown -R {BOB}:{BOB} '{}' '{}'",
            sb.path().display(),
            sb.path().display(),
            h.display(),
            mirror.display()
        )),
    );
}

fn as_bob(sb: &Sandbox, script: &str) -> Outcome {
    outcome_of_tool(
        &clean(Command::new("setpriv").args([
            "--reuid",
            &BOB.to_string(),
            "--regid",
            &BOB.to_string(),
            "--clear-groups",
            "env",
            &format!("HOME={}", home(sb).display()),
            "sh",
            "-c",
            script,
        ]))
        .output()
        .unwrap(),
    )
}

fn names(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |d| d.count())
}

/// The service has read the definitions again (it follows their folders within a second).
fn settle() {
    std::thread::sleep(std::time::Duration::from_millis(1500));
}

pub fn attacks(cx: &mut Ctx) {
    // rsync is a sync tool here (the sync-tools group adds it too; this group runs alone as
    // well).
    assert_ok(
        "certify --sync-tool rsync",
        &cx.ig(&["certify", "--sync-tool", "rsync", "/usr/bin/rsync"]),
    );
    let m = cx.sb.mnt.clone();
    let mirror = m.join("bob-mirror");
    for f in MIRRORED {
        cx.watch(&mirror.join(f));
    }
    cx.watch(&m.join("vetted-dest/v1.mrimg"));
    let h = home(&cx.sb);
    let empty = h.join("empty");
    let mirror_cmd = format!(
        "rsync -a --delete {}/ {}/",
        empty.display(),
        mirror.display()
    );

    // Control: bob's plain rm of his own backups is refused.
    let o = as_bob(&cx.sb, &format!("rm -f {}/a.mrimg", mirror.display()));
    cx.record("non-root user: rm of his backups (control)", &["EPERM"], o);

    // bob's own definition names his empty folder; his mirror would prune bob-mirror/.
    let bob_def = h.join(".config/borgmatic/config.yaml");
    let o = as_bob(
        &cx.sb,
        &format!(
            "mkdir -p {0}/.config/borgmatic && printf 'source_directories:\\n    - /etc\\n\
             repositories:\\n    - path: {1}\\n      label: x\\n' > {2}",
            h.display(),
            empty.display(),
            bob_def.display()
        ),
    );
    assert_eq!(o, Outcome::Succeeded, "bob's definition");
    settle();
    let listed: serde_json::Value =
        serde_json::from_slice(&cx.ig(&["definitions", "--json"]).stdout).unwrap_or_default();
    let not_approved = listed["destinations"].as_array().is_some_and(|d| {
        d.iter().any(|d| {
            d["folder"].as_str() == Some(&*empty.to_string_lossy())
                && d["approval"] == "not-approved"
        })
    });
    cx.record(
        "a user's fresh definition is listed, not approved",
        &["not approved"],
        Outcome::Note(if not_approved { "not approved" } else { "?" }.into()),
    );
    let o = as_bob(&cx.sb, &mirror_cmd);
    cx.record(
        "non-root user: own definition, then rsync --delete of its empty destination over his backups",
        &["EPERM"],
        o,
    );
    let named = events(&cx.sb).iter().rev().take(200).any(|e| {
        e.id == 320
            && e.message.contains("not approved")
            && e.message.contains(&*bob_def.to_string_lossy())
    });
    cx.record(
        "the refusal names the unapproved definition",
        &["named"],
        Outcome::Note(if named { "named" } else { "not named" }.into()),
    );
    let left = names(&mirror);
    cx.record(
        "bob-mirror/ after the mirror",
        &["3 backups"],
        Outcome::Note(format!("{left} backups")),
    );

    // The same with the admin lock set.
    let s = set_admin_lock(&cx.sb, "suite-secret", "suite passphrase");
    let o = as_bob(&cx.sb, &mirror_cmd);
    cx.record(
        "non-root user, admin lock set: own definition, then rsync --delete over his backups",
        &["EPERM"],
        o,
    );
    // Root writes a system definition naming an empty folder: no approval, no prune.
    let root_empty = cx.sb.path().join("root-empty");
    std::fs::create_dir_all(&root_empty).unwrap();
    let sys_def = cx.sb.path().join("etc/borgmatic.d/evil-mirror.yaml");
    std::fs::write(
        &sys_def,
        format!("repositories:\n  - {}\n", root_empty.display()),
    )
    .unwrap();
    settle();
    let o = outcome_of_tool(&sh(&format!(
        "rsync -a --delete {}/ {}/",
        root_empty.display(),
        mirror.display()
    )));
    cx.record(
        "root, admin lock set: a system definition, then rsync --delete of its destination",
        &["EPERM"],
        o,
    );
    let o = outcome_of_tool(&cx.ig(&["definitions", "approve", &sys_def.to_string_lossy()]));
    cx.record(
        "root, admin lock set: definitions approve without the passphrase",
        &["failed: imageguard: the admin lock is set*"],
        o,
    );
    let _ = std::fs::remove_file(&sys_def);
    assert_ok(
        "lock clear",
        &cx.ig(&["--passphrase-file", &s, "lock", "clear"]),
    );

    // bob's definitions protect only inside his home: one naming a folder elsewhere (with
    // backups in it) protects nothing; one in memory neither.
    let elsewhere = cx.sb.path().join("not-bobs");
    std::fs::create_dir_all(&elsewhere).unwrap();
    write_pattern(&elsewhere.join("x.mrimg"), 1000, 1);
    let before = cx.volume_count();
    let o = as_bob(
        &cx.sb,
        &format!(
            "printf 'repositories:\\n    - {}\\n' > {}",
            elsewhere.display(),
            bob_def.display()
        ),
    );
    assert_eq!(o, Outcome::Succeeded, "bob's second definition");
    settle();
    cx.record(
        "non-root user's definition naming a folder outside his home",
        &["nothing protected"],
        Outcome::Note(match cx.volume_count() - before {
            0 => "nothing protected".into(),
            n => format!("{n} more protected"),
        }),
    );
    let json: serde_json::Value =
        serde_json::from_slice(&cx.ig(&["definitions", "--json"]).stdout).unwrap_or_default();
    let confined = json["destinations"].as_array().is_some_and(|d| {
        d.iter().any(|d| {
            d["folder"].as_str() == Some(&*elsewhere.to_string_lossy())
                && d["confined"].as_str().is_some()
        })
    });
    cx.record(
        "definitions says why (confined to his home)",
        &["confined"],
        Outcome::Note(if confined { "confined" } else { "not said" }.into()),
    );
    let ram = cx.sb.path().join("ram");
    std::fs::create_dir_all(&ram).unwrap();
    assert_ok(
        "mount tmpfs",
        &sh(&format!(
            "mount -t tmpfs -o size=4m none '{}'",
            ram.display()
        )),
    );
    write_pattern(&ram.join("y.mrimg"), 1000, 2);
    let ram_def = cx.sb.path().join("etc/borgmatic.d/ram.yaml");
    std::fs::write(&ram_def, format!("repositories:\n  - {}\n", ram.display())).unwrap();
    let before = cx.volume_count();
    settle();
    let after = cx.volume_count();
    let _ = std::fs::remove_file(&ram_def);
    settle();
    let _ = sh(&format!("umount -l '{}'", ram.display()));
    cx.record(
        "definition naming a folder in memory (tmpfs)",
        &["nothing protected"],
        Outcome::Note(match after.saturating_sub(before) {
            0 => "nothing protected".into(),
            n => format!("{n} more protected"),
        }),
    );
    let _ = std::fs::remove_file(&bob_def);

    // Controls: an approved definition's destination mirrored to an archive prunes it; edited
    // after approval, it prunes no more until approved again.
    let dest = m.join("vetted-dest");
    let archive = m.join("scratch/vetted-archive");
    let def = cx.sb.path().join("etc/borgmatic.d/vetted.yaml");
    let write_def = |extra: &str| {
        std::fs::write(
            &def,
            format!("repositories:\n  - {}\n{extra}", dest.display()),
        )
        .unwrap()
    };
    write_def("");
    settle();
    let defs = def.display().to_string();
    let o = outcome_of_tool(&cx.ig(&["definitions", "approve", &defs]));
    cx.record(
        "definitions approve (root, no admin lock)",
        &["succeeded"],
        o,
    );
    let stale_dir = cx.sb.path().join("stale-src");
    std::fs::create_dir_all(&stale_dir).unwrap();
    let mut n = 0;
    let mut stale = || -> PathBuf {
        n += 1;
        let f = stale_dir.join(format!("stale-{n}.mrimg"));
        write_pattern(&f, 3000, n as u8);
        let o = outcome_of_tool(&sh(&format!(
            "rsync -a {} {}/",
            f.display(),
            archive.display()
        )));
        assert_eq!(
            o,
            Outcome::Succeeded,
            "copying a stale backup into the archive"
        );
        archive.join(f.file_name().unwrap())
    };
    let mirror_vetted = || {
        outcome_of_tool(&sh(&format!(
            "rsync -a --delete {}/ {}/",
            dest.display(),
            archive.display()
        )))
    };
    let first = stale();
    let o = mirror_vetted();
    cx.record(
        "control: an approved definition's destination mirrored to an archive",
        &["succeeded"],
        o,
    );
    cx.record(
        "control: the archive's stale backup is pruned",
        &["pruned"],
        Outcome::Note(if first.exists() { "kept" } else { "pruned" }.into()),
    );
    write_def("  - /srv/another-repo\n");
    settle();
    let second = stale();
    let o = mirror_vetted();
    cx.record(
        "the definition edited after approval: its mirror",
        &["EPERM"],
        o,
    );
    cx.record(
        "the definition edited after approval: the stale backup",
        &["kept"],
        Outcome::Note(if second.exists() { "kept" } else { "pruned" }.into()),
    );
    let o = outcome_of_tool(&cx.ig(&["definitions", "approve", &defs]));
    cx.record("definitions approve again", &["succeeded"], o);
    let o = mirror_vetted();
    cx.record("control: approved again, its mirror", &["succeeded"], o);
    cx.record(
        "control: approved again, the stale backup is pruned",
        &["pruned"],
        Outcome::Note(if second.exists() { "kept" } else { "pruned" }.into()),
    );
    let _ = std::fs::remove_file(&def);

    stop_without_passphrase(cx);
}

/// Item 2, on a volume of its own without a retention lock.
fn stop_without_passphrase(cx: &mut Ctx) {
    let mut sb = Sandbox::new(&exe(), 64).expect("sandbox");
    let image = sb.mnt.join("images/d.mrimg");
    std::fs::create_dir_all(image.parent().unwrap()).unwrap();
    write_pattern(&image, 50_000, 3);
    let before = hashes(&sb.mnt);
    sb.start_service().expect("service");
    assert_ok(
        "protect",
        &sb.imageguard(&["protect", &sb.mnt.to_string_lossy()])
            .unwrap(),
    );
    let s = set_admin_lock(&sb, "secret", "another passphrase");
    let rm = || outcome_of_tool(&sh(&format!("rm -f '{}'", image.display())));
    // `kill -TERM <service>`, as ransomware would (what systemctl stop sends): the service ends
    // and leaves the volume closed; with the kernel shield the signal itself is refused.
    let signal_refused = match sb.stop_service() {
        Ok(()) => {
            let o = rm();
            cx.record(
                "admin lock, no retention lock: SIGTERM the service, then rm a backup",
                &["ENOTCONN", "SIGTERM refused, rm EPERM"],
                o,
            );
            sb.start_service().expect("service again");
            false
        }
        Err(_) => {
            let o = rm();
            cx.record(
                "admin lock, no retention lock: SIGTERM the service, then rm a backup",
                &["ENOTCONN", "SIGTERM refused, rm EPERM"],
                Outcome::Note(format!("SIGTERM refused, rm {o}")),
            );
            true
        }
    };
    let o = rm();
    cx.record(
        "admin lock: the service (restarted, or never stopped) holds the volume, rm",
        &["EPERM"],
        o,
    );
    let o = outcome_of_tool(&sb.imageguard(&["stop"]).unwrap());
    cx.record(
        "admin lock: imageguard stop without the passphrase",
        &["failed: imageguard: the admin lock is set*"],
        o,
    );
    let evs = events(&sb);
    let closed_stop = if signal_refused {
        // The kernel shield's refusal of the signal.
        evs.iter()
            .any(|e| e.id == 320 && e.message.contains("signal 15 to the service"))
    } else {
        evs.iter()
            .any(|e| e.id == 200 && e.message.contains("did not come with its passphrase"))
    };
    let logged = closed_stop
        && evs
            .iter()
            .any(|e| e.id == 320 && e.message.contains("`imageguard stop` refused"));
    cx.record(
        "admin lock: the closed stop and the refused stop are logged",
        &["logged"],
        Outcome::Note(if logged { "logged" } else { "not logged" }.into()),
    );
    // Given back with the passphrase, every byte as it was.
    assert_ok(
        "stop with the passphrase",
        &sb.imageguard(&["--passphrase-file", &s, "stop"]).unwrap(),
    );
    let _ = sb.wait_service(std::time::Duration::from_secs(30));
    let intact = hashes(&sb.mnt) == before;
    cx.record(
        "admin lock: the other volume's backups",
        &["intact"],
        Outcome::Note(if intact { "intact" } else { "CHANGED" }.into()),
    );
}
