//! `imageguard settings` (issue 11, item 6): set through the running service, written back to
//! the configuration file with the admin's comments, applied live where it can; a bad value is
//! refused and changes nothing; an invalid configuration is one clear error and the service
//! refuses to start on it.

mod common;

use common::*;
use imageguard::sandbox::Sandbox;

#[test]
fn settings_are_written_with_comments_and_applied_live() {
    let mut sb = Sandbox::new(&exe(), 64).expect("sandbox");
    sb.edit_config(|t| format!("# kept: the admin's own note\n{t}"))
        .unwrap();
    sb.start_service().expect("service");
    assert_eq!(status(&sb)["sync_tools_allowed"], false);

    let out = sb
        .imageguard(&["settings", "sync_tools.allow", "on"])
        .unwrap();
    assert_ok("settings sync_tools.allow on", &out);
    assert!(String::from_utf8_lossy(&out.stdout).contains("sync_tools.allow = true (applied)"));
    assert_eq!(status(&sb)["sync_tools_allowed"], true, "applied live");
    let out = sb
        .imageguard(&["settings", "protection.auto_protect_backup_drives", "off"])
        .unwrap();
    assert_ok("auto-protect off", &out);
    assert_eq!(status(&sb)["auto_protect_backup_drives"], false);
    let text = std::fs::read_to_string(sb.config_file()).unwrap();
    assert!(text.starts_with("# kept: the admin's own note\n"), "{text}");
    assert!(text.contains("# Allow the sync tools added with"), "{text}");
    assert!(text.contains("allow = true") && text.contains("auto_protect_backup_drives = false"));

    // Not live: written, and said so.
    let out = sb.imageguard(&["settings", "guard.threads", "4"]).unwrap();
    assert_ok("guard.threads", &out);
    assert!(String::from_utf8_lossy(&out.stdout).contains("at the next start"));
    let shown = sb.imageguard(&["settings", "guard.threads"]).unwrap();
    assert_eq!(String::from_utf8_lossy(&shown.stdout).trim(), "4");

    // A bad value: refused, nothing written.
    let before = std::fs::read_to_string(sb.config_file()).unwrap();
    let out = sb
        .imageguard(&["settings", "guard.passthrough", "maybe"])
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("expected true or false"),
        "{}",
        stderr(&out)
    );
    let out = sb
        .imageguard(&["settings", "protection.patterns", "["])
        .unwrap();
    assert!(!out.status.success());
    assert_eq!(std::fs::read_to_string(sb.config_file()).unwrap(), before);

    // The list, as JSON.
    let all: serde_json::Value =
        serde_json::from_slice(&sb.imageguard(&["settings", "--json"]).unwrap().stdout).unwrap();
    assert!(all
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["key"] == "sync_tools.allow" && s["value"] == "true" && s["live"] == true));

    // Written for the next start too.
    sb.stop_service().unwrap();
    sb.start_service().unwrap();
    assert_eq!(status(&sb)["sync_tools_allowed"], true);
}

#[test]
fn an_invalid_configuration_is_one_clear_error_and_the_service_refuses_it() {
    let mut sb = Sandbox::new(&exe(), 64).expect("sandbox");
    sb.edit_config(|t| t.replace("stopped_timeout = 10", "stopped_timeout = \"ten\""))
        .unwrap();
    let line = std::fs::read_to_string(sb.config_file())
        .unwrap()
        .lines()
        .position(|l| l.starts_with("stopped_timeout"))
        .unwrap()
        + 1;
    let err = format!(
        "{:#}",
        sb.start_service()
            .expect_err("started on a bad configuration")
    );
    let expected = format!(
        "{}:{line}: [guard] stopped_timeout: invalid type: string \"ten\", expected",
        sb.config_file().display()
    );
    assert!(err.contains(&expected), "{err}");
    // The command line says the same, in one line.
    let out = sb.imageguard(&["settings"]).unwrap();
    assert!(!out.status.success());
    let e = stderr(&out);
    assert_eq!(e.trim().lines().count(), 1, "{e}");
    assert!(e.contains(&expected), "{e}");
}
