//! The admin lock (issue 11, item 5): with a passphrase set, every protecting command without
//! it (or with a wrong one) is refused and logged; with it, it goes through; a hand-edited
//! configuration (patterns emptied) or certified list (a program swapped in) is refused at the
//! next start, the last good copy in use and the edited file kept aside.

mod common;

use common::*;

#[test]
fn protecting_commands_need_the_passphrase_and_hand_edits_are_refused() {
    let mut sb = protected(64);
    let m = sb.mnt.to_string_lossy().to_string();
    let secret = sb.path().join("secret");
    std::fs::write(&secret, "correct horse battery staple\n").unwrap();
    let wrong = sb.path().join("wrong");
    std::fs::write(&wrong, "incorrect horse\n").unwrap();
    let program = sb.path().join("bin/tool");
    std::fs::create_dir_all(program.parent().unwrap()).unwrap();
    std::fs::copy("/bin/true", &program).unwrap();
    let p = program.to_string_lossy().to_string();
    let s = secret.to_string_lossy().to_string();
    let w = wrong.to_string_lossy().to_string();

    let out = sb
        .imageguard(&["lock", "set", "--new-passphrase-file", &s])
        .unwrap();
    assert_ok("lock set", &out);
    let st: serde_json::Value = status(&sb);
    assert_eq!(st["admin_lock"], true);

    // Without the passphrase (no terminal here), and with a wrong one: refused, logged.
    let attempts: &[&[&str]] = &[
        &["off"],
        &["unprotect", &m],
        &["eject", &m],
        &["maintenance", &m],
        &["certify", "--force", &p],
        &["uncertify", "/usr/bin/restic"],
        &["settings", "sync_tools.allow", "on"],
        &["lock", "clear"],
        &["lock", "set", "--new-passphrase-file", &w],
    ];
    for args in attempts {
        let out = sb.imageguard(args).unwrap();
        assert!(!out.status.success(), "{args:?} went through");
        assert!(
            stderr(&out).contains("the admin lock is set"),
            "{args:?}: {}",
            stderr(&out)
        );
        let mut with_wrong = vec!["--passphrase-file", &w];
        with_wrong.extend_from_slice(args);
        let out = sb.imageguard(&with_wrong).unwrap();
        assert!(
            !out.status.success(),
            "{args:?} went through a wrong passphrase"
        );
        assert!(
            stderr(&out).contains("passphrase is wrong"),
            "{}",
            stderr(&out)
        );
    }
    let refusals = events(&sb)
        .iter()
        .filter(|e| e.id == 320 && e.message.contains("refused by the admin lock"))
        .count();
    assert!(refusals >= attempts.len() * 2, "{refusals} refusals logged");
    let st: serde_json::Value = status(&sb);
    assert_eq!(st["protection"], "on");
    assert_eq!(st["volumes"].as_array().unwrap().len(), 1);

    // With it: through.
    let out = sb
        .imageguard(&["--passphrase-file", &s, "certify", "--force", &p])
        .unwrap();
    assert_ok("certify with the passphrase", &out);
    let out = sb
        .imageguard(&[
            "--passphrase-file",
            &s,
            "settings",
            "sync_tools.allow",
            "on",
        ])
        .unwrap();
    assert_ok("settings with the passphrase", &out);

    // Hand edits while the service is stopped: the patterns emptied, the certified program
    // swapped for rm. Both refused at the start, the last good copies in use.
    sb.stop_service().unwrap();
    sb.edit_config(|t| {
        t.lines()
            .map(|l| {
                if l.starts_with("patterns = ") {
                    "patterns = []"
                } else {
                    l
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
    })
    .unwrap();
    let list = sb.path().join("state/certified.json");
    let text = std::fs::read_to_string(&list).unwrap();
    assert!(text.contains(&p));
    std::fs::write(&list, text.replace(&p, "/usr/bin/rm")).unwrap();
    // Offline certify without the passphrase: refused too.
    let out = sb
        .imageguard(&["certify", "--force", "/usr/bin/ls"])
        .unwrap();
    assert!(!out.status.success(), "offline certify went through");
    sb.start_service().unwrap();
    let evs = events(&sb);
    for f in ["imageguard.toml", "certified.json"] {
        assert!(
            evs.iter().any(|e| e.id == 320
                && e.message
                    .contains("changed outside imageguard while the admin lock is set")
                && e.file.as_deref().is_some_and(|x| x.ends_with(f))),
            "no refusal of the edited {f}"
        );
    }
    let patterns = sb.imageguard(&["settings", "protection.patterns"]).unwrap();
    assert!(
        String::from_utf8_lossy(&patterns.stdout).contains("*.mrimg"),
        "{}",
        String::from_utf8_lossy(&patterns.stdout)
    );
    let certified =
        String::from_utf8_lossy(&sb.imageguard(&["certified"]).unwrap().stdout).to_string();
    assert!(
        certified.contains(&p) && !certified.contains("/usr/bin/rm"),
        "{certified}"
    );
    // The uncertified rm is still refused on backups.
    let image = sb.mnt.join("a/x.mrimg");
    std::fs::create_dir_all(image.parent().unwrap()).unwrap();
    std::fs::write(&image, b"b").unwrap();
    assert_eperm("rm", &sh(&format!("/usr/bin/rm -f '{}'", image.display())));
    let kept: Vec<_> = std::fs::read_dir(sb.path().join("state"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".refused-"))
        .collect();
    assert!(!kept.is_empty(), "the edited file is kept for the admin");

    // Cleared with the passphrase: off needs nothing any more.
    assert_ok(
        "lock clear",
        &sb.imageguard(&["--passphrase-file", &s, "lock", "clear"])
            .unwrap(),
    );
    assert_ok("off", &sb.imageguard(&["off"]).unwrap());
}

/// With the admin lock set (and no retention lock), a plain SIGTERM of the service (what
/// `systemctl stop` sends, and what ransomware can send) gives nothing back: the volume stays
/// closed until the service starts again, which takes it over. `imageguard stop` needs the
/// passphrase, and with it gives the volume back and ends the service with the status the
/// unit does not restart (10).
#[test]
fn a_stop_without_the_passphrase_leaves_volumes_closed() {
    let mut sb = protected(64);
    let image = sb.mnt.join("images/a.mrimg");
    std::fs::create_dir_all(image.parent().unwrap()).unwrap();
    write_pattern(&image, 100_000, 7);
    let before = hashes(&sb.mnt);
    let s = set_admin_lock(&sb, "secret", "correct horse battery staple");
    let rm = || sh(&format!("rm -f '{}'", image.display()));

    // SIGTERM: the volume is not given back. The guard is dead: nothing gets through.
    sb.stop_service().unwrap();
    assert_eq!(fstype_at(&sb.mnt).as_deref(), Some("fuse.imageguard"));
    let o = rm();
    assert!(
        !o.status.success() && stderr(&o).contains("not connected"),
        "rm after SIGTERM: {}",
        stderr(&o)
    );
    assert!(sb
        .service_log()
        .contains("the admin lock is set and the stop did not come"));
    let out = sb.imageguard(&["stop"]).unwrap();
    assert_eq!(out.status.code(), Some(3), "stop without a service");

    // The next start takes it over; still protected.
    sb.start_service().unwrap();
    assert_eperm("rm after the restart", &rm());
    assert!(events(&sb)
        .iter()
        .any(|e| e.id == 200 && e.message.contains("did not come with its passphrase")));

    // `stop` without the passphrase (no terminal to ask on): refused, and the service runs on.
    let out = sb.imageguard(&["stop"]).unwrap();
    assert!(
        !out.status.success(),
        "stop went through without the passphrase"
    );
    assert!(
        stderr(&out).contains("the admin lock is set"),
        "{}",
        stderr(&out)
    );
    assert_ok("status", &sb.imageguard(&["status"]).unwrap());

    // With it: the volume is given back and the service ends with 10.
    let out = sb.imageguard(&["--passphrase-file", &s, "stop"]).unwrap();
    assert_ok("stop with the passphrase", &out);
    let status = sb.wait_service(std::time::Duration::from_secs(30)).unwrap();
    assert_eq!(status.code(), Some(10), "{}", sb.service_log());
    assert_eq!(fstype_at(&sb.mnt).as_deref(), Some("ext4"));
    assert_eq!(hashes(&sb.mnt), before, "the backups changed");
    assert_ok("rm once given back", &rm());
}
