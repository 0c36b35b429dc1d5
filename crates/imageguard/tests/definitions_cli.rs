//! `imageguard definitions`: the definitions found where the configuration says, each
//! destination resolved to the volume holding it (the sandbox's protected volume), remote ones
//! marked remote, an absent drive marked absent, a broken file reported with its line.

mod common;

use common::drive::Drive;
use common::*;

#[test]
fn definitions_are_found_resolved_and_problems_reported() {
    let sb = protected(64);
    let etc = sb.path().join("etc");
    std::fs::create_dir_all(etc.join("borgmatic.d")).unwrap();
    std::fs::create_dir_all(sb.mnt.join("borg-repo")).unwrap();
    std::fs::write(
        etc.join("borgmatic.d/usb.yaml"),
        format!(
            "repositories:\n  - path: {}/borg-repo\n    label: usb\n  - path: ssh://backup@nas/./host\n",
            sb.mnt.display()
        ),
    )
    .unwrap();
    std::fs::write(
        etc.join("borgmatic.d/broken.yaml"),
        "repositories:\n  - [\n",
    )
    .unwrap();
    std::fs::write(
        etc.join("rsnapshot.conf"),
        "snapshot_root\t/nonexistent/unplugged/\n",
    )
    .unwrap();
    std::fs::write(etc.join("passwd"), "").unwrap();
    // (The sandbox's configuration looks for definitions under its own etc/.)
    // And imageguard's own table, for a script no module reads.
    let config = sb.path().join("imageguard.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&format!(
        "\n[[definition]]\nname = \"images\"\nprogram = \"image-backup.sh\"\ndestinations = [\"{}/images\"]\n",
        sb.mnt.display()
    ));
    std::fs::write(&config, text).unwrap();
    let out = sb.imageguard(&["definitions", "--json"]).unwrap();
    assert_ok("definitions --json", &out);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let dests = v["destinations"].as_array().unwrap();
    let find = |needle: &str| {
        dests
            .iter()
            .find(|d| d["destination"].as_str().unwrap().contains(needle))
            .unwrap_or_else(|| panic!("{needle} in {dests:?}"))
    };
    let usb = find("borg-repo");
    assert_eq!(usb["program"], "borgmatic");
    assert_eq!(usb["name"], "usb");
    assert_eq!(usb["location"], "local");
    assert_eq!(usb["present"], true);
    assert_eq!(usb["protected"], true);
    assert_eq!(usb["mount_point"], sb.mnt.to_string_lossy().as_ref());
    assert_eq!(find("ssh://")["location"], "remote");
    let own = find("/images");
    assert_eq!(own["program"], "imageguard");
    assert_eq!(own["name"], "images (image-backup.sh)");
    assert_eq!(own["protected"], true);
    let unplugged = find("unplugged");
    assert_eq!(unplugged["program"], "rsnapshot");
    assert_eq!(unplugged["present"], false);
    assert_eq!(unplugged["protected"], false);
    let problems = v["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0]["file"]
        .as_str()
        .unwrap()
        .ends_with("broken.yaml"));
    assert!(problems[0]["line"].as_u64().is_some());

    // The table for people, problems on stderr with file and line.
    let human = sb.imageguard(&["definitions"]).unwrap();
    assert_ok("definitions", &human);
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(
        text.contains("borgmatic") && text.contains("remote"),
        "{text}"
    );
    assert!(
        stderr(&human).contains("broken.yaml:"),
        "{}",
        stderr(&human)
    );
}

/// "Automatically protect local backup drives": at start, the drive a borgmatic definition backs
/// up to is protected (300 naming the definition, no 330), a destination on a system volume as a
/// folder; unprotected by hand, it is protected again at the next start.
#[test]
fn backup_drives_are_protected_at_start_even_after_unprotect() {
    let mut sb = imageguard::sandbox::Sandbox::new(&exe(), 64).unwrap();
    let etc = sb.path().join("etc");
    std::fs::create_dir_all(etc.join("borgmatic.d")).unwrap();
    std::fs::write(etc.join("passwd"), "").unwrap();
    let on_system = sb.path().join("system-volume-backups");
    std::fs::create_dir_all(&on_system).unwrap();
    // (An empty folder on a system volume is not guarded: it may be a drive's mount point.)
    std::fs::write(on_system.join("first.mrimg"), b"image").unwrap();
    let def = etc.join("borgmatic.d/jobs.yaml");
    std::fs::write(
        &def,
        format!(
            "repositories:\n  - path: {}/borg-repo\n    label: usb\n  - path: {}\n    label: local\n  - path: ssh://backup@nas/./host\n",
            sb.mnt.display(),
            on_system.display()
        ),
    )
    .unwrap();
    sb.start_service().unwrap();
    let mounts = |s: &serde_json::Value| -> Vec<(String, String)> {
        s["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| {
                (
                    v["mount_point"].as_str().unwrap().to_string(),
                    v["mode"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    };
    let mnt = sb.mnt.to_string_lossy().to_string();
    let got = mounts(&status(&sb));
    assert!(got.contains(&(mnt.clone(), "hidden".into())), "{got:?}");
    assert!(
        got.contains(&(on_system.to_string_lossy().to_string(), "folder".into())),
        "{got:?}"
    );
    assert_eq!(
        got.len(),
        2,
        "the remote repository is not protected: {got:?}"
    );
    write_pattern(&sb.mnt.join("x.mrimg"), 10, 1);
    let evs = events(&sb);
    assert!(
        evs.iter().any(|e| e.id == 300
            && e.mount_point.as_deref() == Some(mnt.as_str())
            && e.message.contains(&*def.to_string_lossy())),
        "{evs:?}"
    );
    assert!(!evs.iter().any(|e| e.id == 330));
    // status says why each is protected, and that the folder is a system volume's.
    let st = status(&sb);
    let reason = |mp: &str| {
        st["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["mount_point"] == mp)
            .and_then(|v| v["reason"].as_str().map(str::to_string))
            .unwrap_or_default()
    };
    assert!(reason(&mnt).contains("jobs.yaml"), "{st}");
    assert!(
        reason(&on_system.to_string_lossy()).contains("on a system volume: this folder only"),
        "{st}"
    );
    // The guard unmounted behind the service's back is mounted again (510), for the same reason.
    assert_ok("umount -l the guard", &sh(&format!("umount -l {mnt}")));
    let t0 = std::time::Instant::now();
    let healed = loop {
        let st = status(&sb);
        let v = st["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["mount_point"] == mnt.as_str())
            .cloned();
        if let Some(v) =
            v.filter(|v| v["guard_running"] == true && events(&sb).iter().any(|e| e.id == 510))
        {
            break Some(v);
        }
        if t0.elapsed() > std::time::Duration::from_secs(6) {
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let healed = healed.expect("the guard was not mounted again");
    assert!(
        healed["reason"]
            .as_str()
            .unwrap_or("")
            .contains("jobs.yaml"),
        "{healed}"
    );
    // Turned off by hand, then the service restarts: protected again.
    assert_ok("unprotect", &sb.imageguard(&["unprotect", &mnt]).unwrap());
    assert!(!mounts(&status(&sb)).iter().any(|(m, _)| *m == mnt));
    sb.stop_service().unwrap();
    sb.start_service().unwrap();
    assert!(mounts(&status(&sb)).iter().any(|(m, _)| *m == mnt));
    assert_eperm(
        "rm of a backup on the drive",
        &sh(&format!("rm -f {mnt}/x.mrimg")),
    );
}

/// Wait up to `secs` for `cond`; how long it took.
fn within(secs: f64, mut cond: impl FnMut() -> bool) -> Option<std::time::Duration> {
    let t = std::time::Instant::now();
    while t.elapsed().as_secs_f64() < secs {
        if cond() {
            return Some(t.elapsed());
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    None
}

/// While the service runs: a new definition file protects its drive, and a drive plugged in
/// (mounted) that a definition backs up to is protected, each within 2 s; a drive unprotected
/// by hand is left alone until the service starts again.
#[test]
fn new_definitions_and_drives_plugged_in_are_protected_within_two_seconds() {
    let tmp = tempfile::Builder::new()
        .prefix("imageguard-usb-")
        .tempdir()
        .unwrap();
    let usb = Drive::format(&tmp.path().join("usb.img"), &tmp.path().join("usb"));
    let mut sb = imageguard::sandbox::Sandbox::new(&exe(), 64).unwrap();
    let etc = sb.path().join("etc");
    std::fs::create_dir_all(etc.join("borgmatic.d")).unwrap();
    std::fs::write(etc.join("passwd"), "").unwrap();
    sb.start_service().unwrap();
    let protected = |sb: &imageguard::sandbox::Sandbox, mp: &std::path::Path| {
        let s: serde_json::Value =
            serde_json::from_slice(&sb.imageguard(&["status", "--json"]).unwrap().stdout)
                .unwrap_or_default();
        s["volumes"].as_array().is_some_and(|v| {
            v.iter()
                .any(|v| v["mount_point"].as_str() == Some(&*mp.to_string_lossy()))
        })
    };
    assert!(!protected(&sb, &sb.mnt));

    // A new definition.
    let def = etc.join("borgmatic.d/new.yaml");
    std::fs::write(
        &def,
        format!(
            "repositories:\n  - {}/borg\n  - {}\n",
            sb.mnt.display(),
            usb.mount_point.display()
        ),
    )
    .unwrap();
    let took = within(2.0, || protected(&sb, &sb.mnt));
    assert!(
        took.is_some(),
        "not protected within 2 s of the new definition"
    );
    eprintln!("new definition: protected after {took:?}");
    assert!(events(&sb)
        .iter()
        .any(|e| e.id == 300 && e.message.contains("new.yaml")));

    // A drive plugged in (the destination is its mount point itself: while the drive is away
    // that is an empty folder of the system volume, which is not guarded, or the drive's own
    // mount would be refused).
    assert!(!protected(&sb, &usb.mount_point));
    usb.plug_in();
    let took = within(2.0, || protected(&sb, &usb.mount_point));
    assert!(
        took.is_some(),
        "the plugged-in drive was not protected within 2 s"
    );
    eprintln!("drive plugged in: protected after {took:?}");

    // Ejected: nothing of the drive stays mounted, in the host or in the service's keeper
    // namespace; plugged in again, it is protected again.
    let usb_mp = usb.mount_point.to_string_lossy().to_string();
    assert_ok("eject", &sb.imageguard(&["eject", &usb_mp]).unwrap());
    let keeper = sb.path().join("run/keeper.mntns");
    let keeper_mounts = std::process::Command::new("nsenter")
        .arg(format!("--mount={}", keeper.display()))
        .args(["cat", "/proc/self/mountinfo"])
        .output()
        .unwrap();
    assert_ok("nsenter into the keeper", &keeper_mounts);
    let dev = usb.device.clone();
    let host_mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    for (view, table) in [
        ("host", host_mounts),
        (
            "keeper",
            String::from_utf8_lossy(&keeper_mounts.stdout).into_owned(),
        ),
    ] {
        assert!(
            !table.contains(&format!(" {dev} ")),
            "{dev} still mounted in the {view}: {table}"
        );
    }
    assert!(events(&sb)
        .iter()
        .any(|e| e.id == 340 && e.message.contains("usb")));
    usb.plug_in();
    assert!(
        within(2.0, || protected(&sb, &usb.mount_point)).is_some(),
        "not protected again when plugged in after eject"
    );
    // Ejected and plugged in at another mount point: known by its UUID, protected there.
    assert_ok("eject", &sb.imageguard(&["eject", &usb_mp]).unwrap());
    usb.plug_in_at(&usb.elsewhere);
    assert!(
        within(2.0, || protected(&sb, &usb.elsewhere)).is_some(),
        "the drive mounted elsewhere was not protected within 2 s"
    );
    assert!(events(&sb)
        .iter()
        .any(|e| e.id == 300 && e.message.contains("mounted elsewhere")));

    // Unprotected by hand: a later change does not protect it again (until a restart).
    let mnt = sb.mnt.to_string_lossy().to_string();
    assert_ok("unprotect", &sb.imageguard(&["unprotect", &mnt]).unwrap());
    std::fs::write(&def, std::fs::read_to_string(&def).unwrap() + "\n").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1200));
    assert!(!protected(&sb, &sb.mnt), "protected again before a restart");
    sb.stop_service().unwrap();
    sb.start_service().unwrap();
    assert!(protected(&sb, &sb.mnt));
}

fn status_json(sb: &imageguard::sandbox::Sandbox) -> serde_json::Value {
    serde_json::from_slice(&sb.imageguard(&["status", "--json"]).unwrap().stdout)
        .unwrap_or_default()
}

fn listed(
    status: &serde_json::Value,
    list: &str,
    mp: &std::path::Path,
) -> Option<serde_json::Value> {
    status[list]
        .as_array()?
        .iter()
        .find(|v| v["mount_point"].as_str() == Some(&*mp.to_string_lossy()))
        .cloned()
}

/// A drive pulled out without eject (its loop device detached while protected): the service
/// lets its guard and hidden mount go, so nothing hangs and the device really goes; `status`
/// shows it absent, not failed; plugged in again it is protected again. A drive the user
/// protected that is not plugged in when the service starts is absent too, its empty mount
/// point not guarded, and protected the moment it is mounted.
#[test]
fn a_drive_pulled_out_is_absent_and_protected_again_when_it_comes_back() {
    let tmp = tempfile::Builder::new()
        .prefix("imageguard-unplug-")
        .tempdir()
        .unwrap();
    let mut usb = Drive::format(&tmp.path().join("usb.img"), &tmp.path().join("usb"));
    let mut sb = imageguard::sandbox::Sandbox::new(&exe(), 64).unwrap();
    let etc = sb.path().join("etc");
    std::fs::create_dir_all(etc.join("borgmatic.d")).unwrap();
    std::fs::write(
        etc.join("borgmatic.d/usb.yaml"),
        format!("repositories:\n  - {}/borg\n", usb.mount_point.display()),
    )
    .unwrap();
    usb.plug_in();
    std::fs::write(usb.mount_point.join("x.mrimg"), b"backup").unwrap();
    sb.start_service().unwrap();
    let mp = usb.mount_point.clone();
    assert!(
        listed(&status_json(&sb), "volumes", &mp).is_some(),
        "not protected at start"
    );

    // A process keeps its working folder on the drive while it is pulled out.
    let mut busy = std::process::Command::new("sleep")
        .arg("60")
        .current_dir(&mp)
        .spawn()
        .unwrap();
    usb.pull_out();
    let took = within(2.0, || listed(&status_json(&sb), "absent", &mp).is_some());
    let _ = busy.kill();
    let _ = busy.wait();
    assert!(
        took.is_some(),
        "not shown absent within 2 s: {}",
        status_json(&sb)
    );
    eprintln!("pulled out: absent after {took:?}");
    let s = status_json(&sb);
    assert!(
        listed(&s, "volumes", &mp).is_none(),
        "still listed as protected: {s}"
    );
    let absent = listed(&s, "absent", &mp).unwrap();
    assert!(
        absent["why"].as_str().unwrap().contains("losetup -d"),
        "{absent}"
    );
    assert!(
        absent["reason"].as_str().unwrap().contains("usb.yaml"),
        "{absent}"
    );
    let text = String::from_utf8_lossy(&sb.imageguard(&["status"]).unwrap().stdout).to_string();
    assert!(text.contains("absent:"), "{text}");
    assert!(events(&sb)
        .iter()
        .any(|e| e.id == 510 && e.message.contains("losetup -d")));
    // Nothing holds the device any more: it detaches (once the service has let the guard
    // and the hidden mount go, which the event above precedes).
    assert!(
        within(10.0, || !usb.attached()).is_some(),
        "{} is still attached: something still holds its file system",
        usb.device
    );

    // Plugged in again.
    usb.reattach();
    usb.plug_in();
    let took = within(2.0, || listed(&status_json(&sb), "volumes", &mp).is_some());
    assert!(took.is_some(), "not protected again within 2 s");
    eprintln!("plugged in again: protected after {took:?}");
    assert!(listed(&status_json(&sb), "absent", &mp).is_none());
    assert_eperm(
        "rm of a backup on the drive",
        &sh(&format!("rm -f {}/x.mrimg", mp.display())),
    );

    // The user's own protection of a drive: not plugged in when the service starts.
    std::fs::remove_file(etc.join("borgmatic.d/usb.yaml")).unwrap();
    let mp_s = mp.to_string_lossy().to_string();
    assert_ok("eject", &sb.imageguard(&["eject", &mp_s]).unwrap());
    usb.plug_in();
    assert_ok("protect", &sb.imageguard(&["protect", &mp_s]).unwrap());
    sb.stop_service().unwrap();
    assert_ok("umount", &sh(&format!("umount {}", mp.display())));
    sb.start_service().unwrap();
    let s = status_json(&sb);
    let absent = listed(&s, "absent", &mp).unwrap_or_else(|| panic!("not absent: {s}"));
    assert!(
        absent["why"].as_str().unwrap().contains("not plugged in"),
        "{absent}"
    );
    assert!(
        listed(&s, "volumes", &mp).is_none(),
        "the empty mount point is guarded: {s}"
    );
    usb.plug_in();
    assert!(
        within(2.0, || listed(&status_json(&sb), "volumes", &mp).is_some()).is_some(),
        "not protected when plugged in after the start"
    );
    assert_eperm(
        "rm of a backup on the drive",
        &sh(&format!("rm -f {}/x.mrimg", mp.display())),
    );
}
