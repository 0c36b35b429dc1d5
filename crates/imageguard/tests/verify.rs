//! `imageguard verify` (issue 11, item 2): PASS on a guarded volume, with the child's refusal
//! logged as 310; FAIL and exit 1 where the guard is not there for the caller (unmounted in its
//! mount namespace), and for a path that is not protected.

mod common;

use std::process::Command;

use common::*;

fn verify_in(sb: &imageguard::sandbox::Sandbox, prefix: &str, args: &str) -> std::process::Output {
    let global: Vec<String> = sb
        .global_args()
        .iter()
        .map(|a| format!("'{}'", a.to_string_lossy()))
        .collect();
    let script = format!(
        "{prefix} '{}' {} verify {args}",
        exe().display(),
        global.join(" ")
    );
    Command::new("sh").args(["-c", &script]).output().unwrap()
}

#[test]
fn verify_passes_on_a_guarded_volume_and_fails_where_the_guard_is_gone() {
    let sb = protected(64);
    let m = sb.mnt.to_string_lossy().to_string();

    let out = sb.imageguard(&["verify"]).unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{text}{}", stderr(&out));
    assert!(
        !text.contains("FAIL") && text.matches("PASS").count() >= 8,
        "{text}"
    );
    println!("{text}");
    let json = sb.imageguard(&["verify", "--json", &m]).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v[0]["pass"], true, "{v}");
    // The child's refusal is a 310; the verification file is gone again.
    assert!(events(&sb).iter().any(|e| e.id == 310
        && e.message.contains("creating verification file")
        && e.file
            .as_deref()
            .is_some_and(|f| f.ends_with(".imageguard-verify"))));
    assert!(!sb.mnt.join(".imageguard-verify").exists());

    // Run by a job in a mount namespace where the guard was unmounted: FAIL, exit 1.
    let out = verify_in(
        &sb,
        &format!("unshare -m sh -c 'umount -l {m} && exec \"$0\" \"$@\"'"),
        &m,
    );
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(1), "{text}{}", stderr(&out));
    assert!(
        text.contains("FAIL (went through: nothing guards this path)"),
        "{text}"
    );
    println!("{text}");
    // Nothing of it is left on the host's volume either.
    assert!(!sb.mnt.join(".imageguard-verify").exists());

    // A folder that is not protected.
    let out = sb
        .imageguard(&["verify", &sb.path().to_string_lossy()])
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("not a protected volume"));
}
