//! No event lost (issue 11, item 7): denials logged the moment before the service is killed
//! with `SIGKILL` are in `imageguard events` after the restart, a storm's count exactly.

mod common;

use common::*;

#[test]
fn denials_right_before_a_sigkill_are_kept() {
    let mut sb = protected(64);
    let storm = sb.mnt.join("storm/s.mrimg");
    let few = sb.mnt.join("few/f.mrimg");
    for f in [&storm, &few] {
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        write_pattern(f, 4096, 5);
    }

    // A storm of refused deletes, counted by the attacker itself.
    let out = sh(&format!(
        "python3 -c 'import os\nn = 0\nfor i in range(20000):\n    try:\n        os.unlink(\"{}\")\n    except PermissionError:\n        n += 1\nprint(n)'",
        storm.display()
    ));
    assert_ok("the storm", &out);
    let refused: u64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    assert_eq!(refused, 20_000);

    // A few distinct denials, and the service killed at once.
    let f = few.display();
    assert_eperm("rm", &sh(&format!("rm -f '{f}'")));
    assert_eperm("truncate", &sh(&format!("truncate -s 0 '{f}'")));
    assert_eperm("mv", &sh(&format!("mv '{f}' '{f}.x'")));
    sb.kill_service();

    sb.start_service().expect("service after SIGKILL");
    let evs = events(&sb);
    let f = few.to_string_lossy();
    for op in ["delete", "open-write", "rename"] {
        assert!(
            evs.iter().any(|e| e.id == 320
                && e.file.as_deref() == Some(&*f)
                && e.operation.as_deref() == Some(op)),
            "the {op} refused just before the SIGKILL is missing"
        );
    }
    let s = storm.to_string_lossy();
    let counted: u64 = evs
        .iter()
        .filter(|e| e.id == 320 && e.file.as_deref() == Some(&*s))
        .map(|e| e.count)
        .sum();
    assert_eq!(counted, refused, "the storm's count after the SIGKILL");
}
