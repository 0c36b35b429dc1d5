//! Sync tools under the reference's rules, with the real rsync and rclone on a guarded loop
//! volume: a backup destination of a saved definition (`dest`, from an own `[[definition]]`)
//! and an offsite copy (`offsite`, protected, not a destination) on it, an unprotected folder
//! beside the sandbox. rsync and rclone are added as sync tools, not certified.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::servers;
use common::*;
use imageguard::sandbox::Sandbox;

fn run(program: &str, args: &[&str]) -> Output {
    clean(
        Command::new(program)
            .args(args)
            .env("RCLONE_CONFIG", "/dev/null"),
    )
    .output()
    .expect(program)
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    v.sort();
    v
}

fn write(path: &Path, seed: u8) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    write_pattern(path, 64 * 1024, seed);
}

/// `dir` with a trailing slash: rsync's "the folder's contents".
fn slash(dir: &Path) -> String {
    format!("{}/", dir.display())
}

/// rsync over a backup file in the destination folder, in place: refused and logged.
fn overwrite_in_destination_is_refused(sb: &Sandbox, dest: &Path) {
    let newer = sb.path().join("newer");
    write(&newer.join("a.mrimg"), 9);
    // -I: always transfer (a same-sized file written in the same second would be skipped).
    let out = run(
        "rsync",
        &["-rtI", "--inplace", &slash(&newer), &slash(dest)],
    );
    assert!(
        !out.status.success(),
        "overwrite in a destination must fail"
    );
    assert!(refused_for(
        sb,
        &dest.join("a.mrimg"),
        "never overwrites backup files"
    ));
}

/// Mirroring the destination to the offsite copy (leaving out `notes.txt`) prunes the
/// backup file only the offsite copy had.
fn mirror_to_offsite_prunes(dest: &Path, offsite: &Path) {
    let out = run(
        "rsync",
        &[
            "-a",
            "--delete",
            "--exclude",
            "notes.txt",
            &slash(dest),
            &slash(offsite),
        ],
    );
    assert!(out.status.success(), "mirror to offsite: {}", stderr(&out));
    assert!(!offsite.join("old.mrimg").exists(), "old.mrimg pruned");
}

/// A 320 whose text names `rule` for `file`.
fn refused_for(sb: &Sandbox, file: &Path, rule: &str) -> bool {
    let f = file.to_string_lossy();
    events(sb)
        .iter()
        .any(|e| e.id == 320 && e.file.as_deref() == Some(&*f) && e.message.contains(rule))
}

fn rules_320s(sb: &Sandbox) -> Vec<String> {
    events(sb)
        .into_iter()
        .filter(|e| e.id == 320)
        .map(|e| format!("{:?} {}", e.file, e.message))
        .collect()
}

struct Setup {
    sb: Sandbox,
    dest: PathBuf,
    offsite: PathBuf,
    plain: PathBuf,
}

/// The sandbox with the sync setting `allow`, a definition backing up to `mnt/dest`, rsync and
/// rclone added as sync tools.
fn setup(allow: bool) -> Setup {
    setup_with(allow, true)
}

/// [`setup`], with automatic protection of backup drives on or off.
fn setup_with(allow: bool, auto_protect: bool) -> Setup {
    let mut sb = Sandbox::new(&exe(), 96).expect("sandbox");
    let mnt = sb.mnt.clone();
    let dest = mnt.join("dest");
    let offsite = mnt.join("offsite");
    let plain = sb.path().join("plain");
    std::fs::create_dir_all(&plain).unwrap();
    for n in ["a", "b"] {
        write(&dest.join(format!("{n}.mrimg")), 1);
        write(&offsite.join(format!("{n}.mrimg")), 1);
    }
    write(&offsite.join("old.mrimg"), 2);
    write(&dest.join("x.mrimg"), 3);
    write(&dest.join("y.mrimg"), 4);
    // A file only the destination keeps (every file in a destination is a backup): the
    // mirrors to the offsite copy leave it out, so a mirror back into the destination would
    // delete it.
    write(&dest.join("notes.txt"), 5);
    let config = sb.path().join("imageguard.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    let text = text
        .replace("allow = false", &format!("allow = {allow}"))
        .replace(
            "auto_protect_backup_drives = true",
            &format!("auto_protect_backup_drives = {auto_protect}"),
        );
    std::fs::write(
        &config,
        format!(
            "{text}\n[[definition]]\nname = \"images\"\nprogram = \"image-backup\"\ndestinations = [\"{}\"]\n",
            dest.display()
        ),
    )
    .unwrap();
    sb.start_service().expect("service");
    let out = sb.imageguard(&["protect", &mnt.to_string_lossy()]).unwrap();
    assert!(out.status.success(), "protect: {}", stderr(&out));
    for (dialect, program) in [("rsync", "/usr/bin/rsync"), ("rclone", "/usr/bin/rclone")] {
        let out = sb
            .imageguard(&["certify", "--sync-tool", dialect, program])
            .unwrap();
        assert!(
            out.status.success(),
            "certify --sync-tool: {}",
            stderr(&out)
        );
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("as a sync tool"),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    // The definition's destination reaches the rules (remembered at start, refreshed every
    // watchdog round).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let st = sb.imageguard(&["definitions", "--json"]).unwrap();
        if String::from_utf8_lossy(&st.stdout).contains(&*dest.to_string_lossy()) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "definition not found");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    std::thread::sleep(std::time::Duration::from_millis(600));
    Setup {
        sb,
        dest,
        offsite,
        plain,
    }
}

#[test]
fn rsync_under_the_sync_rules() {
    let Setup {
        sb,
        dest,
        offsite,
        plain,
    } = setup(true);
    let d = slash(&dest);
    let o = slash(&offsite);
    let before = hashes(&dest);

    // Mirroring the backup destination to the offsite copy prunes old backup files there.
    mirror_to_offsite_prunes(&dest, &offsite);
    assert_eq!(
        names(&offsite),
        ["a.mrimg", "b.mrimg", "x.mrimg", "y.mrimg"],
        "old.mrimg pruned"
    );

    // A mirror of the offsite copy into the backup destination deletes nothing and logs 320.
    let extra = dest.join("notes.txt");
    let out = run("rsync", &["-a", "--delete", &o, &d]);
    assert!(
        !out.status.success(),
        "a mirror into a destination must fail"
    );
    assert!(extra.exists(), "notes.txt deleted from the destination");
    assert!(
        refused_for(&sb, &extra, "its source is a backup destination"),
        "{:#?}",
        rules_320s(&sb)
    );

    // Ransomware: rsync --delete from an empty folder onto the destination deletes nothing.
    let empty = sb.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let out = run("rsync", &["-a", "--delete", &slash(&empty), &d]);
    assert!(!out.status.success());
    assert!(names(&dest).contains(&"a.mrimg".to_string()));
    assert!(names(&dest).contains(&"x.mrimg".to_string()));

    // A move from the protected volume to an unprotected folder copies and leaves the
    // sources in place.
    let out = run(
        "rsync",
        &["-a", "--remove-source-files", &o, &slash(&plain)],
    );
    assert!(!out.status.success(), "the move's deletes must fail");
    assert_eq!(names(&plain), names(&offsite), "copied");
    assert!(offsite.join("a.mrimg").exists(), "source left in place");
    assert!(
        refused_for(
            &sb,
            &offsite.join("a.mrimg"),
            "only when its target is on a protected volume"
        ),
        "{:#?}",
        rules_320s(&sb)
    );

    // An overwrite of a backup file in the destination folder is refused.
    overwrite_in_destination_is_refused(&sb, &dest);
    let newer = sb.path().join("newer");

    // The same overwrite in the offsite copy is allowed.
    let out = run("rsync", &["-rtI", &slash(&newer), &o]);
    assert!(out.status.success(), "overwrite offsite: {}", stderr(&out));
    assert_eq!(
        std::fs::read(offsite.join("a.mrimg")).unwrap(),
        std::fs::read(newer.join("a.mrimg")).unwrap()
    );

    // A move between two folders of protected volumes deletes its sources.
    let archive = sb.mnt.join("archive");
    std::fs::create_dir_all(&archive).unwrap();
    let out = run(
        "rsync",
        &["-a", "--remove-source-files", &o, &slash(&archive)],
    );
    assert!(out.status.success(), "move to protected: {}", stderr(&out));
    assert!(!offsite.join("b.mrimg").exists() && archive.join("b.mrimg").exists());

    // A move out of the destination into that plain protected folder is refused
    // (imageguard's own condition).
    let out = run(
        "rsync",
        &["-a", "--remove-source-files", &d, &slash(&archive)],
    );
    assert!(!out.status.success());
    assert!(dest.join("b.mrimg").exists());

    // Not a sync tool: the same rsync by another name (a copy) is an ordinary program.
    let copy = sb.path().join("rsync-copy");
    std::fs::copy("/usr/bin/rsync", &copy).unwrap();
    let out = run(
        copy.to_str().unwrap(),
        &["-a", "--delete", &slash(&empty), &slash(&archive)],
    );
    assert!(!out.status.success());
    assert!(archive.join("b.mrimg").exists());

    let status = sb.imageguard(&["status"]).unwrap();
    let status = String::from_utf8_lossy(&status.stdout);
    assert!(
        status.contains("sync tools: 2 (allowed by the sync rules"),
        "{status}"
    );
    assert!(
        status.contains("sync tools' changes allowed by the rules:"),
        "{status}"
    );

    // Every original byte of the destination is still there.
    let after = hashes(&dest);
    for (f, h) in &before {
        assert_eq!(after.get(f), Some(h), "{} changed", f.display());
    }
}

#[test]
fn rclone_under_the_sync_rules() {
    let Setup {
        sb,
        dest,
        offsite,
        plain,
    } = setup(true);
    let ds = dest.to_string_lossy().to_string();
    let os = offsite.to_string_lossy().to_string();

    // sync = mirror: from the destination, old backup files in the offsite copy are pruned.
    let out = run("rclone", &["sync", "--exclude", "notes.txt", &ds, &os]);
    assert!(out.status.success(), "rclone sync: {}", stderr(&out));
    assert_eq!(
        names(&offsite),
        ["a.mrimg", "b.mrimg", "x.mrimg", "y.mrimg"]
    );

    // Into the destination: nothing deleted.
    let only_here = dest.join("notes.txt");
    let out = run("rclone", &["sync", &os, &ds]);
    assert!(
        !out.status.success(),
        "rclone sync into a destination must fail"
    );
    assert!(only_here.exists());
    assert!(
        refused_for(&sb, &only_here, "its source is a backup destination"),
        "{:#?}\n{}",
        rules_320s(&sb),
        stderr(&out)
    );

    // delete / purge are never transfers: refused like any uncertified program.
    let out = run("rclone", &["delete", &os]);
    assert!(!out.status.success());
    assert!(offsite.join("a.mrimg").exists());
    assert!(refused_for(
        &sb,
        &offsite.join("a.mrimg"),
        "is not a sync, copy or move"
    ));

    // move to an unprotected folder: copied, the sources stay.
    let ps = plain.join("moved").to_string_lossy().to_string();
    let out = run("rclone", &["move", &os, &ps]);
    assert!(!out.status.success());
    assert!(offsite.join("a.mrimg").exists());
    assert!(plain.join("moved/a.mrimg").exists());

    // move within the protected volume (rclone renames): allowed.
    let archive = sb.mnt.join("archive").to_string_lossy().to_string();
    let out = run("rclone", &["move", &os, &archive]);
    assert!(
        out.status.success(),
        "rclone move: {}\n{:#?}",
        stderr(&out),
        rules_320s(&sb)
    );
    assert!(!offsite.join("a.mrimg").exists());
    assert!(sb.mnt.join("archive/a.mrimg").exists());
}

#[test]
fn sync_tools_not_allowed_are_refused_like_any_program() {
    let Setup {
        sb, dest, offsite, ..
    } = setup(false);
    let out = run(
        "rsync",
        &["-a", "--delete", &slash(&dest), &slash(&offsite)],
    );
    assert!(!out.status.success());
    assert!(offsite.join("old.mrimg").exists());
    assert!(refused_for(
        &sb,
        &offsite.join("old.mrimg"),
        "sync tools are not allowed"
    ));
}

/// A guarded volume shared by a real Samba server: what another machine does through the
/// share (smbclient here) is done by smbd, never a sync tool: deleting, renaming and
/// overwriting backup files are refused and logged; reading works.
#[test]
fn a_samba_share_of_a_guarded_volume() {
    let Setup { sb, offsite, .. } = setup(true);
    let samba = servers::Samba::share(&sb.path().join("samba"), &sb.mnt);
    let local = sb.path().join("client");
    std::fs::create_dir_all(&local).unwrap();
    let before = hashes(&sb.mnt);

    let get = samba.client("cd offsite; get a.mrimg", &local);
    assert!(get.status.success(), "read over smb: {}", stderr(&get));
    assert_eq!(
        std::fs::read(local.join("a.mrimg")).unwrap(),
        std::fs::read(offsite.join("a.mrimg")).unwrap()
    );
    std::fs::write(local.join("a.mrimg"), b"encrypted").unwrap();
    for (what, commands) in [
        ("delete", "cd offsite; del a.mrimg"),
        ("rename", "cd offsite; rename a.mrimg a.mrimg.locked"),
        ("overwrite", "cd offsite; put a.mrimg"),
    ] {
        let out = samba.client(commands, &local);
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
        assert!(
            text.contains("NT_STATUS_ACCESS_DENIED")
                || text.contains("NT_STATUS_MEDIA_WRITE_PROTECTED"),
            "{what} over smb was not refused: {text}"
        );
    }
    assert_eq!(hashes(&sb.mnt), before, "every byte intact");
    let f = offsite.join("a.mrimg").to_string_lossy().into_owned();
    let by_smbd: Vec<_> = events(&sb)
        .into_iter()
        .filter(|e| e.id == 320 && e.file.as_deref() == Some(&*f))
        .filter(|e| e.exe.as_deref().is_some_and(|x| x.ends_with("/smbd")))
        .filter_map(|e| e.operation)
        .collect();
    for op in ["delete", "rename"] {
        assert!(
            by_smbd.iter().any(|o| o == op),
            "no 320 for smbd's {op}: {by_smbd:?}"
        );
    }
    assert!(
        refused_for(
            &sb,
            &offsite.join("a.mrimg"),
            "smbd serves this volume to another machine"
        ),
        "{:#?}",
        rules_320s(&sb)
    );
    // A file server is never a sync tool.
    let out = sb
        .imageguard(&["certify", "--sync-tool", "rsync", "/usr/sbin/smbd"])
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("is a file server (smbd)"),
        "{}",
        stderr(&out)
    );
    assert!(
        by_smbd.iter().any(|o| o == "open-write" || o == "truncate"),
        "no 320 for smbd's overwrite: {by_smbd:?}"
    );
}

/// A folder of another machine mounted here with sshfs (a real sshd on localhost) and
/// protected here: a network volume. A mirror from a backup destination into it, which the
/// rules allow on a local volume, deletes nothing there.
#[test]
fn an_sshfs_mount_protected_here_counts_as_network() {
    let Setup { sb, dest, .. } = setup(true);
    let ssh = servers::Ssh::start(&sb.path().join("ssh"));
    let remote = sb.path().join("remote");
    std::fs::create_dir_all(&remote).unwrap();
    write(&remote.join("a.mrimg"), 1);
    write(&remote.join("old.mrimg"), 2);
    let net = sb.path().join("net");
    let mount = ssh.sshfs(&remote, &net);
    let out = sb.imageguard(&["protect", &net.to_string_lossy()]).unwrap();
    assert!(out.status.success(), "protect sshfs: {}", stderr(&out));
    let status = sb.imageguard(&["status"]).unwrap();
    assert!(
        String::from_utf8_lossy(&status.stdout).contains("network"),
        "{}",
        String::from_utf8_lossy(&status.stdout)
    );

    let out = run(
        "rsync",
        &[
            "-rt",
            "--delete",
            "--exclude",
            "notes.txt",
            &slash(&dest),
            &slash(&net),
        ],
    );
    assert!(!out.status.success(), "the mirror's deletes must fail");
    assert!(
        remote.join("old.mrimg").exists(),
        "deleted over the network"
    );
    assert!(
        refused_for(&sb, &net.join("old.mrimg"), "reached over the network"),
        "{:#?}",
        rules_320s(&sb)
    );
    // New files still arrive (a copy is not a delete).
    assert!(remote.join("x.mrimg").exists());
    let out = sb
        .imageguard(&["unprotect", &net.to_string_lossy()])
        .unwrap();
    assert!(out.status.success(), "unprotect: {}", stderr(&out));
    drop(mount);
}

/// The receiving end of a remote transfer: another machine pushes with `rsync --delete` over
/// ssh; here `rsync --server` (a sync tool) cannot name its source and the volume is served
/// over the network: nothing is deleted. Through a stand-in remote shell that runs the server
/// here (in the service's namespace, so the served rule itself answers), and through the real
/// sshd.
#[test]
fn rsync_server_deletes_nothing_for_another_machine() {
    let Setup {
        sb, dest, offsite, ..
    } = setup(true);
    let d = slash(&dest);
    let o = slash(&offsite);

    // The local rehearsal of sshd: `-e` runs the server side right here.
    let shell = sb.path().join("here-shell");
    std::fs::write(&shell, "#!/bin/sh\nshift\nexec \"$@\"\n").unwrap();
    std::fs::set_permissions(&shell, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    // A push of the destination with --delete through the remote shell `rsh` to `to`.
    let push = |rsh: &str, to: String| {
        run(
            "rsync",
            &[
                "-a",
                "--delete",
                "--exclude",
                "notes.txt",
                "-e",
                rsh,
                &d,
                &to,
            ],
        )
    };
    let out = push(shell.to_str().unwrap(), format!("otherhost:{o}"));
    assert!(!out.status.success(), "the served deletes must fail");
    assert!(offsite.join("old.mrimg").exists());
    assert!(
        refused_for(
            &sb,
            &offsite.join("old.mrimg"),
            "it serves this volume to another machine"
        ),
        "{:#?}",
        rules_320s(&sb)
    );

    // The same push through the real sshd.
    let ssh = servers::Ssh::start(&sb.path().join("ssh"));
    let out = push(&ssh.ssh_command(), format!("root@127.0.0.1:{o}"));
    assert!(
        !out.status.success(),
        "the deletes over ssh must fail: {}",
        stderr(&out)
    );
    assert!(offsite.join("old.mrimg").exists());
}

/// Automatic protection off: the saved definitions are still read, and the sync rules still
/// know their destinations (an overwrite there is refused, a mirror from there prunes).
#[test]
fn without_automatic_protection_the_definitions_still_name_the_destinations() {
    let Setup {
        sb, dest, offsite, ..
    } = setup_with(true, false);
    overwrite_in_destination_is_refused(&sb, &dest);
    mirror_to_offsite_prunes(&dest, &offsite);
}

/// Only an approved definition lets a sync tool delete (issue 17): a borgmatic file naming a
/// second folder of backups (`vetted`) makes it a destination at once, but its mirror prunes
/// nothing until `definitions approve`; then it prunes; the definition edited (another
/// repository added) prunes no more until approved again; the refusals name the definition.
#[test]
fn only_approved_definitions_let_a_mirror_prune() {
    let Setup { sb, offsite, .. } = setup(true);
    let vetted = sb.mnt.join("vetted");
    let archive = sb.mnt.join("archive");
    // The sync tool copies backups into two new folders.
    for dir in [&vetted, &archive] {
        let out = run("rsync", &["-a", &slash(&offsite), &slash(dir)]);
        assert!(out.status.success(), "copy: {}", stderr(&out));
    }
    let def = sb.path().join("etc/borgmatic.d/vetted.yaml");
    std::fs::create_dir_all(def.parent().unwrap()).unwrap();
    let write_def = |extra: &str| {
        std::fs::write(
            &def,
            format!("repositories:\n  - {}\n{extra}", vetted.display()),
        )
        .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(1200));
    };
    let stale = |n: u8| {
        let src = sb.path().join(format!("stale-{n}.mrimg"));
        write(&src, n);
        let out = run("rsync", &["-a", &src.to_string_lossy(), &slash(&archive)]);
        assert!(out.status.success(), "stale copy: {}", stderr(&out));
        archive.join(format!("stale-{n}.mrimg"))
    };
    let mirror = || {
        run(
            "rsync",
            &["-a", "--delete", &slash(&vetted), &slash(&archive)],
        )
    };
    let defs = def.to_string_lossy().to_string();
    let standing = || -> String {
        let v: serde_json::Value =
            serde_json::from_slice(&sb.imageguard(&["definitions", "--json"]).unwrap().stdout)
                .unwrap();
        v["destinations"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["file"].as_str() == Some(&*defs))
            .map(|d| d["approval"].as_str().unwrap_or("").to_string())
            .unwrap_or_default()
    };

    write_def("");
    assert_eq!(standing(), "not-approved");
    let s1 = stale(11);
    assert!(
        !mirror().status.success(),
        "a mirror of an unapproved destination"
    );
    assert!(s1.exists(), "pruned by an unapproved definition");
    assert!(
        refused_for(&sb, &s1, "not approved"),
        "no 320 naming the definition: {:?}",
        rules_320s(&sb)
    );
    assert!(
        events(&sb)
            .iter()
            .any(|e| e.id == 320 && e.message.contains(&*defs)),
        "the definition is not named"
    );

    assert_ok(
        "approve",
        &sb.imageguard(&["definitions", "approve", &defs]).unwrap(),
    );
    assert_eq!(standing(), "approved");
    assert!(events(&sb)
        .iter()
        .any(|e| e.id == 340 && e.message.contains("approved")));
    let out = mirror();
    assert!(out.status.success(), "approved mirror: {}", stderr(&out));
    assert!(!s1.exists(), "not pruned once approved");

    write_def("  - /srv/another-repo\n");
    assert_eq!(standing(), "changed");
    let s2 = stale(12);
    assert!(
        !mirror().status.success(),
        "a mirror of an edited definition"
    );
    assert!(
        s2.exists(),
        "pruned by an edited definition: {}",
        sb.service_log()
    );

    assert_ok(
        "approve again",
        &sb.imageguard(&["definitions", "approve", &defs]).unwrap(),
    );
    assert!(mirror().status.success(), "approved again");
    assert!(!s2.exists(), "not pruned once approved again");

    // Withdrawn: refused again.
    assert_ok(
        "revoke",
        &sb.imageguard(&["definitions", "revoke", &defs]).unwrap(),
    );
    let s3 = stale(13);
    assert!(
        !mirror().status.success(),
        "a mirror after the approval was withdrawn"
    );
    assert!(s3.exists());
}
