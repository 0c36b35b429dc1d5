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
    let st: serde_json::Value =
        serde_json::from_slice(&sb.imageguard(&["status", "--json"]).unwrap().stdout).unwrap();
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
    let st: serde_json::Value =
        serde_json::from_slice(&sb.imageguard(&["status", "--json"]).unwrap().stdout).unwrap();
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
