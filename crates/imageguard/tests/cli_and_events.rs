//! The command line and the event log end to end: JSON listings, filters, exit codes, the
//! peer-credential check on the control socket, and delivery to the systemd journal socket.

mod common;

use std::os::unix::net::UnixDatagram;
use std::process::Command;

use common::*;

#[test]
fn status_events_certified_and_journal() {
    assert_eq!(unsafe { libc::geteuid() }, 0, "run as root");
    let mut sb = imageguard::sandbox::Sandbox::new(&exe(), 64).unwrap();
    // Exit code 3 while the service is down.
    assert_eq!(sb.imageguard(&["status"]).unwrap().status.code(), Some(3));
    let journal = UnixDatagram::bind(sb.path().join("journal.sock")).unwrap();
    journal
        .set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    sb.start_service().unwrap();
    let mnt = sb.mnt.to_string_lossy().to_string();
    assert_ok("protect", &sb.imageguard(&["protect", &mnt]).unwrap());
    write_pattern(&sb.mnt.join("x.mrimg"), 100, 1);
    for _ in 0..10 {
        assert_eperm("rm", &sh(&format!("rm -f {mnt}/x.mrimg")));
    }
    // One process repeating the same refused operation: identical repeats.
    let storm = format!(
        "import os\nn = 0\nfor _ in range(40):\n    try:\n        os.unlink('{mnt}/x.mrimg')\n    except PermissionError:\n        n += 1\nassert n == 40, n"
    );
    assert_ok(
        "storm",
        &clean(&mut Command::new("python3"))
            .arg("-c")
            .arg(&storm)
            .output()
            .unwrap(),
    );

    let st = sb.imageguard(&["status", "--json"]).unwrap();
    assert_ok("status", &st);
    let v: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
    assert_eq!(v["protection"], "on");
    let vol = &v["volumes"][0];
    assert_eq!(vol["mount_point"], mnt.as_str());
    assert_eq!(vol["fstype"], "ext4");
    assert_eq!(vol["location"], "local");
    assert!(vol["uuid"].as_str().is_some_and(|u| u.len() == 36), "{vol}");
    assert!(vol["device"].as_str().unwrap().starts_with("/dev/loop"));
    assert_eq!(vol["files_protected"], 1);
    assert_eq!(vol["denied"], 50);
    assert_eq!(vol["passthrough"], true);

    // Events: JSON lines, the storm coalesced into one counted row, filters.
    let ev = sb.imageguard(&["events", "--json", "--id", "320"]).unwrap();
    assert_ok("events", &ev);
    let rows: Vec<serde_json::Value> = String::from_utf8_lossy(&ev.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let total: u64 = rows.iter().map(|r| r["count"].as_u64().unwrap()).sum();
    assert_eq!(total, 50);
    assert!(
        rows.len() < 50,
        "repeats were not coalesced: {} rows",
        rows.len()
    );
    assert!(rows
        .iter()
        .all(|r| r["id"] == 320 && r["severity"] == "warning"));
    let all = sb.imageguard(&["events", "--json"]).unwrap();
    let ids: Vec<u64> = String::from_utf8_lossy(&all.stdout)
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["id"]
                .as_u64()
                .unwrap()
        })
        .collect();
    for id in [100, 330, 110, 300, 320] {
        assert!(ids.contains(&id), "event {id} missing: {ids:?}");
    }
    let future = sb
        .imageguard(&["events", "--json", "--since", "2999-01-01"])
        .unwrap();
    assert!(future.stdout.is_empty());
    assert_eq!(
        sb.imageguard(&["events", "--since", "someday"])
            .unwrap()
            .status
            .code(),
        Some(2)
    );

    // The journal got the same events with their MESSAGE_IDs and priorities.
    let mut buf = vec![0u8; 65536];
    let mut seen = String::new();
    while let Ok(n) = journal.recv(&mut buf) {
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        if seen.contains("IMAGEGUARD_EVENT_ID=320") {
            break;
        }
    }
    assert!(
        seen.contains("IMAGEGUARD_EVENT_ID=320") && seen.contains("PRIORITY=4"),
        "{seen}"
    );
    assert!(seen.contains(&format!(
        "MESSAGE_ID={}",
        imageguard_policy::EventKind::BlockedFileAccess.journal_message_id()
    )));

    // Certified list as JSON; interpreters refused without --force.
    let restic = std::path::Path::new("/usr/bin/restic");
    certify(&sb, restic, false);
    let c = sb.imageguard(&["certified", "--json"]).unwrap();
    let list: serde_json::Value = serde_json::from_slice(&c.stdout).unwrap();
    assert_eq!(list[0]["path"], "/usr/bin/restic");
    assert_eq!(list[0]["sha256"].as_str().unwrap().len(), 64);
    // ... with its closure (every file with role, identity and hash) and whether it is intact.
    assert_eq!(list[0]["intact"], true, "{}", list[0]["change"]);
    let files = list[0]["closure"]["files"].as_array().unwrap();
    assert!(files.iter().any(|f| f["role"] == "program"));
    let libc = files
        .iter()
        .find(|f| {
            f["path"]
                .as_str()
                .is_some_and(|p| p.ends_with("/libc.so.6"))
        })
        .expect("restic (Debian's, cgo) maps libc");
    assert_eq!(libc["role"], "library");
    assert_eq!(libc["sha256"].as_str().unwrap().len(), 64);
    assert!(libc["identity"]["ino"].as_u64().is_some());
    let human = sb.imageguard(&["certified"]).unwrap();
    assert!(String::from_utf8_lossy(&human.stdout).contains("intact"));
    // status says whether root could write into a certified process's memory unseen.
    let st: serde_json::Value = status(&sb);
    let warns = st["warnings"].as_array().unwrap();
    let yama_closed = std::fs::read_to_string("/proc/sys/kernel/yama/ptrace_scope")
        .is_ok_and(|s| s.trim() == "3");
    assert_eq!(
        warns
            .iter()
            .any(|w| w.as_str().unwrap().contains("/proc/PID/mem")),
        !yama_closed,
        "{warns:?}"
    );
    assert_eq!(st["certified_broken"], 0);
    // protect refuses a system volume and a file in one line that says what to do instead.
    for (target, says) in [
        (
            "/".to_string(),
            "is a system volume: protect the folder your backups are in",
        ),
        (
            sb.path()
                .join("imageguard.toml")
                .to_string_lossy()
                .into_owned(),
            "is a file: protect the folder that holds it",
        ),
    ] {
        let o = sb.imageguard(&["protect", &target]).unwrap();
        assert_eq!(o.status.code(), Some(1));
        let err = stderr(&o);
        assert!(err.contains(says), "{err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
    let refused = sb.imageguard(&["certify", "/bin/bash"]).unwrap();
    assert_eq!(refused.status.code(), Some(1));
    assert!(stderr(&refused).contains("--force"), "{}", stderr(&refused));

    // Only root may change anything; anyone may read.
    std::fs::set_permissions(
        sb.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let as_nobody = |args: &str| {
        let mut cmd = Command::new("setpriv");
        cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(exe())
            .args(sb.global_args());
        cmd.args(args.split(' ')).output().unwrap()
    };
    let denied = as_nobody(&format!("unprotect {mnt}"));
    assert_eq!(denied.status.code(), Some(4), "{}", stderr(&denied));
    assert!(stderr(&denied).contains("only root"), "{}", stderr(&denied));
    assert_ok("status as nobody", &as_nobody("status"));

    // Off and on: 340 then 330/300 again; off leaves the volume to the host.
    assert_ok("off", &sb.imageguard(&["off"]).unwrap());
    assert_ok(
        "writable when off",
        &sh(&format!("echo ok >> {mnt}/x.mrimg")),
    );
    assert_ok("on", &sb.imageguard(&["on"]).unwrap());
    assert_eperm("protected again", &sh(&format!("rm -f {mnt}/x.mrimg")));
    let evs = events(&sb);
    assert!(evs.iter().any(|e| e.id == 340));
    sb.stop_service().unwrap();
    assert!(events(&sb).iter().any(|e| e.id == 200));
}
