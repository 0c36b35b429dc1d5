//! The console (issue 11, item 1) driven under tmux in an 80x24 terminal against a running
//! service: toggling a setting changes the service's state, a fresh 320 appears in the Events
//! tab, the Volumes tab shows the guarded volume, and a non-root user sees but cannot change.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::*;
use imageguard::sandbox::Sandbox;

/// tmux on a server of the session's own, its socket in the test's sandbox: tests running
/// side by side must not share one server (the last session ending ends the server, and a
/// session started on it at that moment is lost with it), nor touch anything outside their
/// temp dirs.
fn tmux(socket: &Path, args: &[&str]) -> Output {
    Command::new("tmux")
        .arg("-S")
        .arg(socket)
        .args(args)
        .output()
        .expect("tmux")
}

/// The tmux session on its own server, both killed when dropped.
struct Session {
    socket: PathBuf,
    name: String,
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = tmux(&self.socket, &["kill-server"]);
    }
}

impl Session {
    fn start(sb: &Sandbox, name: &str, command: &str) -> Session {
        let socket = sb.path().join(format!("{name}.tmux"));
        let out = tmux(
            &socket,
            &[
                "new-session",
                "-d",
                "-s",
                name,
                "-x",
                "80",
                "-y",
                "24",
                command,
            ],
        );
        assert_ok("tmux new-session", &out);
        Session {
            socket,
            name: name.to_string(),
        }
    }

    fn alive(&self) -> bool {
        tmux(&self.socket, &["has-session", "-t", &self.name])
            .status
            .success()
    }

    fn pane(&self) -> String {
        String::from_utf8_lossy(
            &tmux(&self.socket, &["capture-pane", "-p", "-t", &self.name]).stdout,
        )
        .to_string()
    }

    fn keys(&self, keys: &[&str]) {
        for k in keys {
            assert_ok(
                "tmux send-keys",
                &tmux(&self.socket, &["send-keys", "-t", &self.name, k]),
            );
            std::thread::sleep(Duration::from_millis(150));
        }
    }

    /// Wait until the screen shows every one of `texts`.
    fn wait_for(&self, texts: &[&str]) -> String {
        let start = Instant::now();
        loop {
            let p = self.pane();
            if texts.iter().all(|t| p.contains(t)) {
                return p;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "the console never showed {texts:?}:\n{p}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn wait_until(what: &str, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < Duration::from_secs(10), "{what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_console_shows_and_changes_the_service_and_is_read_only_for_others() {
    let sb = protected(64);
    let args: Vec<String> = sb
        .global_args()
        .iter()
        .map(|a| format!("'{}'", a.to_string_lossy()))
        .collect();
    let console = format!("'{}' {} tui", exe().display(), args.join(" "));
    let name = format!("imageguard-tui-{}", std::process::id());
    let s = Session::start(&sb, &name, &console);
    s.wait_for(&["1 Settings", "4 Events", "Allow sync tools", "guard on"]);

    // "Allow sync tools": the fourth row, toggled with space; applied at once.
    assert_eq!(status(&sb)["sync_tools_allowed"], false);
    s.keys(&["Down", "Down", "Down", "Space"]);
    wait_until("the console did not turn sync tools on", || {
        status(&sb)["sync_tools_allowed"] == true
    });
    s.wait_for(&["sync_tools.allow = true (applied)"]);

    // A fresh denial appears in the Events tab.
    let image = sb.mnt.join("a/x.mrimg");
    std::fs::create_dir_all(image.parent().unwrap()).unwrap();
    std::fs::write(&image, b"backup").unwrap();
    assert_eperm("rm", &sh(&format!("rm -f '{}'", image.display())));
    s.keys(&["4"]);
    s.wait_for(&["Denials per hour", "320", "BLOCKED_FILE_ACC", "warning"]);
    // Filtered to 320 with `i`.
    s.keys(&["i"]);
    s.wait_for(&["Events: id 320"]);

    // The volume, guarded.
    s.keys(&["2"]);
    s.wait_for(&["Protected volumes", "guarded"]);
    s.keys(&["q"]);
    wait_until("q did not end the console", || !s.alive());

    // Another user: sees, cannot change.
    use std::os::unix::fs::PermissionsExt;
    for d in [sb.path().to_path_buf(), sb.path().join("run")] {
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let other = format!(
        "runuser -u nobody -- '{}' --socket '{}' tui",
        exe().display(),
        sb.socket().display()
    );
    let s2 = Session::start(&sb, &format!("{name}-nobody"), &other);
    s2.wait_for(&["(read-only)", "Allow sync tools"]);
    s2.keys(&["Down", "Down", "Down", "Space"]);
    s2.wait_for(&["read-only: only root may change imageguard"]);
    assert_eq!(
        status(&sb)["sync_tools_allowed"],
        true,
        "nobody changed a setting"
    );
    s2.keys(&["4"]);
    s2.wait_for(&["320"]);
    // Ended with `q`, as the first: a console whose terminal goes away (tmux's session
    // killed) under runuser is left running.
    s2.keys(&["q"]);
    wait_until("q did not end the read-only console", || !s2.alive());
}

/// Processes whose command line contains `needle`.
fn pids_with(needle: &str) -> Vec<u32> {
    let mut pids = vec![];
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains(needle) {
            pids.push(pid);
        }
    }
    pids
}

/// Killed when dropped: the consoles a failing test leaves behind.
struct Consoles(String);

impl Drop for Consoles {
    fn drop(&mut self) {
        for pid in pids_with(&self.0) {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
    }
}

#[test]
fn a_console_whose_terminal_goes_away_ends() {
    let sb = protected(16);
    use std::os::unix::fs::PermissionsExt;
    for d in [sb.path().to_path_buf(), sb.path().join("run")] {
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let socket = sb.socket().display().to_string();
    let _leftovers = Consoles(socket.clone());
    let name = format!("imageguard-tui-hup-{}", std::process::id());
    // Root's console and, under runuser, another user's (the one that was left spinning).
    let root = format!("'{}' --socket '{socket}' tui", exe().display());
    let other = format!("runuser -u nobody -- {root}");
    let s1 = Session::start(&sb, &name, &root);
    let s2 = Session::start(&sb, &format!("{name}-nobody"), &other);
    s1.wait_for(&["Allow sync tools"]);
    s2.wait_for(&["(read-only)"]);
    // A console process: ours, alive (a zombie has no exe link).
    let is_console = |p: &u32| {
        std::fs::read_link(format!("/proc/{p}/exe"))
            .map(|e| e == exe())
            .unwrap_or(false)
    };
    let consoles: Vec<u32> = pids_with(&socket).into_iter().filter(is_console).collect();
    assert_eq!(consoles.len(), 2, "two consoles running: {consoles:?}");
    drop(s1);
    drop(s2);
    wait_until(
        &format!(
            "a console outlived its terminal: {:?}",
            consoles
                .iter()
                .filter(|p| is_console(p))
                .collect::<Vec<_>>()
        ),
        || !consoles.iter().any(is_console),
    );
}
