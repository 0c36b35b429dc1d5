//! Attacks on the retention lock (issue 10): `locked/` carries a 14-day lock (the suite's own
//! `[retention]`, set before the service starts), with images written before protection and a
//! borg repository the certified borg writes during the suite, so everything there is young.
//! The attacker is root with certified programs at hand (copies of rm, mv, cp, truncate,
//! touch, ln certified with --force: what "certified" buys is exactly what the lock must
//! withstand), the control socket, the configuration, the service's process and its clock.

use std::path::{Path, PathBuf};
use std::process::Command;

use imageguard::sandbox::Sandbox;

use crate::common::*;
use crate::suite::{certified_copy, outcome_of_tool, Ctx, Outcome};

const IMAGES: &[&str] = &["l1.mrimg", "l2.mrimg", "l3.mrimg"];
const DAYS: u32 = 14;

/// Before the service starts: the lock on `locked/`, and its images.
pub fn prepare(sb: &Sandbox) {
    let dir = sb.mnt.join("locked");
    std::fs::create_dir_all(&dir).unwrap();
    for (i, f) in IMAGES.iter().enumerate() {
        write_pattern(&dir.join(f), 30_000, 40 + i as u8);
    }
    sb.add_retention_lock(&dir, DAYS).unwrap();
}

fn run(program: &Path, args: &[&str]) -> Outcome {
    outcome_of_tool(&clean(Command::new(program).args(args)).output().unwrap())
}

/// Restart the suite's service (its volume stays closed in between: a lock is in force), with
/// `wrapper` around it.
fn restart(cx: &mut Ctx, wrapper: &[&str]) {
    if let Err(e) = cx.sb.stop_service() {
        let log = cx.sb.service_log();
        let tail: Vec<&str> = log.lines().rev().take(40).collect();
        panic!(
            "stopping the service: {e}; its log ends:\n{}",
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }
    cx.sb
        .start_service_under(wrapper)
        .expect("starting the service again");
}

pub fn attacks(cx: &mut Ctx) {
    let dir = cx.sb.mnt.join("locked");
    let img: Vec<PathBuf> = IMAGES.iter().map(|f| dir.join(f)).collect();
    for p in &img {
        cx.watch(p);
    }
    let s = |p: &Path| p.to_string_lossy().to_string();
    let (i0, i1) = (s(&img[0]), s(&img[1]));
    let rm = certified_copy(&cx.sb, "/bin/rm", "lock-rm", true);
    let mv = certified_copy(&cx.sb, "/bin/mv", "lock-mv", true);
    let cp = certified_copy(&cx.sb, "/bin/cp", "lock-cp", true);
    let ln = certified_copy(&cx.sb, "/bin/ln", "lock-ln", true);
    let truncate = certified_copy(&cx.sb, "/usr/bin/truncate", "lock-truncate", true);
    let touch = certified_copy(&cx.sb, "/usr/bin/touch", "lock-touch", true);

    // Head-on, with certified programs.
    let o = run(&rm, &["-f", &i0]);
    cx.record("lock: certified rm of a young image", &["EPERM"], o);
    let o = run(&truncate, &["-s", "0", &i0]);
    cx.record("lock: certified truncate -s 0", &["EPERM"], o);
    let o = run(&cp, &["/dev/null", &i0]);
    cx.record("lock: certified cp /dev/null over it", &["EPERM"], o);
    let o = run(&mv, &[&i0, &s(&cx.sb.mnt.join("scratch"))]);
    cx.record("lock: certified mv to another folder", &["EPERM"], o);
    let o = run(&mv, &[&i0, &format!("{i0}.old")]);
    cx.record("lock: certified mv to a non-backup name", &["EPERM"], o);
    let o = run(&mv, &[&i1, &i0]);
    cx.record(
        "lock: certified mv of one young image over another",
        &["EPERM"],
        o,
    );
    let o = match run(&touch, &["-d", "2000-01-01", &i0]) {
        Outcome::Succeeded => run(&rm, &["-f", &i0]),
        other => other,
    };
    cx.record("lock: certified touch -d 2000, then rm", &["EPERM"], o);
    let alias = dir.join("alias.mrimg");
    let o = match run(&ln, &[&i0, &s(&alias)]) {
        Outcome::Succeeded => run(&rm, &["-f", &i0]),
        other => other,
    };
    cx.record(
        "lock: certified hard link, then rm of the original",
        &["EPERM"],
        o,
    );
    let o = run(&truncate, &["-s", "0", &s(&alias)]);
    cx.record(
        "lock: certified truncate through the hard link",
        &["EPERM"],
        o,
    );

    let o = run(&mv, &[&s(&dir), &format!("{}.moved", dir.display())]);
    cx.record(
        "lock: certified mv of the lock's own folder, in place (the lock is by path)",
        &["EPERM"],
        o,
    );

    // A young borg repository: its segments, the log's commits.
    let repo = dir.join("borg");
    let r = s(&repo);
    assert_ok(
        "borg init (locked)",
        &borg(&cx.sb, &["init", "-e", "none", &r]),
    );
    // Segments of 8 MiB (borg keeps one segment's worth free for compact): a rewrite of its
    // config that keeps the key, allowed under the lock.
    assert_ok(
        "borg config max_segment_size (locked)",
        &borg(&cx.sb, &["config", &r, "max_segment_size", "8388608"]),
    );
    let src = source_tree(&cx.sb, 7);
    for a in ["l1", "l2"] {
        assert_ok(
            "borg create (locked)",
            &borg(
                &cx.sb,
                &["create", &format!("{r}::{a}"), src.to_str().unwrap()],
            ),
        );
    }
    let segs = hashes(&repo.join("data"));
    for p in segs.keys() {
        cx.watch(p);
    }
    let number = |p: &Path| p.file_name()?.to_str()?.parse::<u64>().ok();
    let newest = segs.keys().max_by_key(|p| number(p)).unwrap().clone();
    let oldest = segs.keys().min_by_key(|p| number(p)).unwrap().clone();
    let o = run(
        &mv,
        &[
            &s(&newest),
            &format!("{}/x", newest.parent().unwrap().display()),
        ],
    );
    cx.record(
        "lock: certified mv of borg's newest segment (its commit) to a name borg does not read",
        &["EPERM"],
        o,
    );
    let o = run(&rm, &["-f", &s(&oldest)]);
    cx.record(
        "lock: certified rm of a committed borg segment",
        &["EPERM"],
        o,
    );
    let data = repo.join("data");
    let o = run(&mv, &[&s(&data.join("0")), &s(&data.join("old"))]);
    cx.record("lock: certified mv of borg's segment folder", &["EPERM"], o);
    let o = outcome_of_tool(
        &clean(
            Command::new("borg")
                .args(["delete", &r])
                .env("BORG_BASE_DIR", cx.sb.path().join("borg-home"))
                .env("BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK", "yes")
                .env("BORG_DELETE_I_KNOW_WHAT_I_AM_DOING", "YES"),
        )
        .output()
        .unwrap(),
    );
    cx.record("lock: certified borg delete REPO", &["EPERM"], o);
    let o = match outcome_of_tool(&borg(&cx.sb, &["prune", "--keep-last", "1", &r])) {
        Outcome::Succeeded => outcome_of_tool(&borg(&cx.sb, &["compact", "--threshold", "0", &r])),
        other => other,
    };
    cx.record(
        "lock: certified borg prune + compact (prune only records)",
        &["EPERM"],
        o,
    );

    // The admin's own commands, by the attacker.
    let o = match outcome_of_tool(&cx.ig(&["off"])) {
        Outcome::Succeeded => {
            let rm_off = cx.shell(&format!("rm -f '{i0}'"));
            let append = cx.attack(&["append", &s(&newest)]);
            Outcome::Note(format!("rm {rm_off}, append to a segment {append}"))
        }
        other => other,
    };
    cx.record(
        "lock: imageguard off, then rm and an append to borg's newest segment",
        &["rm EPERM, append to a segment EPERM"],
        o,
    );
    assert_ok("on", &cx.ig(&["on"]));
    let m = s(&cx.sb.mnt);
    let o = match outcome_of_tool(&cx.ig(&["unprotect", &m])) {
        Outcome::Succeeded => cx.shell(&format!("rm -f '{i0}'")),
        other => other,
    };
    cx.record("lock: imageguard unprotect, then rm", &["EPERM"], o);
    assert_ok("protect again", &cx.ig(&["protect", &m]));

    // The service stopped: closed, not given back.
    cx.sb.stop_service().expect("stopping the service");
    let o = cx.shell(&format!("rm -f '{i0}'"));
    cx.sb.start_service().expect("starting the service again");
    cx.record("lock: service stopped (SIGTERM), then rm", &["ENOTCONN"], o);

    // The configuration: the lock removed and the service restarted.
    let line = Sandbox::retention_line(&dir, DAYS);
    cx.sb.edit_config(|t| t.replacen(&line, "", 1)).unwrap();
    restart(cx, &[]);
    let o = run(&rm, &["-f", &i0]);
    cx.record(
        "lock: removed from the configuration, service restarted, certified rm",
        &["EPERM"],
        o,
    );
    cx.sb.add_retention_lock(&dir, DAYS).unwrap();

    // The clock: a service restarted in a time namespace whose boot clock is 30 days ahead.
    restart(cx, BOOT_CLOCK_30_DAYS_ON);
    let offsets = cx
        .sb
        .service_pid()
        .and_then(|pid| std::fs::read_to_string(format!("/proc/{pid}/timens_offsets")).ok())
        .unwrap_or_default();
    assert!(
        offsets.contains("2592000"),
        "the service is not in the time namespace: {offsets:?}"
    );
    let o = run(&rm, &["-f", &i0]);
    cx.record(
        "lock: service restarted with its boot clock 30 days ahead (time namespace), rm",
        &["EPERM"],
        o,
    );
    restart(cx, &[]);

    // The state files the ages come from, edited by hand while the service is stopped, with
    // the admin lock set (issue 17: inputs outside the seal): the service's clock 400 days
    // on, every first-seen date at zero. Refused at the start, the last good copies in use.
    let s = set_admin_lock(&cx.sb, "retention-secret", "retention passphrase");
    if let Err(e) = cx.sb.stop_service() {
        // The kernel shield refuses every signal to the service while the admin lock is set:
        // it stops through its own door, the attacker having stolen the passphrase too.
        assert!(
            e.to_string().contains("refused"),
            "stopping the service: {e}"
        );
        assert_ok(
            "stop with the passphrase",
            &cx.ig(&["--passphrase-file", &s, "stop"]),
        );
        cx.sb
            .wait_service(std::time::Duration::from_secs(60))
            .expect("the service stopped with the passphrase");
    }
    // With the kernel shield the edits themselves are refused (the retention lock keeps its
    // volumes closed, and the admin lock's files the service's, while it is stopped).
    let edited = (|| -> std::io::Result<()> {
        let state = cx.sb.path().join("state");
        let clock = state.join("clock.json");
        let text = std::fs::read_to_string(&clock)?;
        let v: serde_json::Value = serde_json::from_str(&text)?;
        let later = v["elapsed_secs"].as_u64().unwrap_or_default() + 400 * 86_400;
        std::fs::write(
            &clock,
            text.replace(
                &format!("\"elapsed_secs\":{}", v["elapsed_secs"]),
                &format!("\"elapsed_secs\":{later}"),
            ),
        )?;
        for e in std::fs::read_dir(state.join("ages"))?.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "jsonl") {
                let zeroed: String = std::fs::read_to_string(&p)?
                    .lines()
                    .filter_map(|l| serde_json::from_str::<(String, u64)>(l).ok())
                    .map(|(h, _)| format!("[\"{h}\",0]\n"))
                    .collect();
                std::fs::write(&p, zeroed)?;
            }
        }
        Ok(())
    })();
    cx.sb.start_service().expect("starting the service again");
    let by_kernel = edited.is_err();
    let o = match edited {
        Ok(()) => run(&rm, &["-f", &i0]),
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => Outcome::Errno(libc::EPERM),
        Err(e) => panic!("editing the state files: {e}"),
    };
    cx.record(
        "lock + admin lock: the service's clock 400 days on and the first-seen dates zeroed by hand, restarted, certified rm",
        &["EPERM"],
        o,
    );
    let refused = events(&cx.sb)
        .iter()
        .rev()
        .take(500)
        .filter(|e| {
            e.id == 320
                && (e.message.contains("changed outside imageguard")
                    || (by_kernel && e.message.contains("state are the service's alone")))
        })
        .count();
    cx.record(
        "the hand-edited clock and dates are refused and logged",
        &["refused"],
        // Refused at the start (both), or the first edit refused by the kernel shield.
        Outcome::Note(if refused >= 2 || (by_kernel && refused >= 1) {
            "refused".into()
        } else {
            format!("{refused} refused")
        }),
    );
    assert_ok(
        "lock clear",
        &cx.ig(&["--passphrase-file", &s, "lock", "clear"]),
    );
}
