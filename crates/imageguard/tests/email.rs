//! Email alerts (issue 11, item 3) against a real SMTP server (aiosmtpd from Debian's
//! python3-aiosmtpd, storing what it receives in a maildir): `settings email test` sends one;
//! a storm of 100 000 denials makes at most one mail per interval, their counts adding up to
//! the storm; with the server stopped or hanging the guard refuses at the same rate, and what
//! could not be sent arrives, counted, once the server is back.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use imageguard::sandbox::Sandbox;

const INTERVAL: u64 = 2;

/// The tests measure rates and storms: one at a time (their storms would disturb each other).
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A process killed when dropped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for_port(port: u16) {
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "server on {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// aiosmtpd on `port`, storing every message in `maildir`.
fn smtp_server(port: u16, maildir: &Path) -> Server {
    // Debian's interpreter: python3-aiosmtpd is installed for it.
    let child = Command::new("/usr/bin/python3")
        .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")])
        .args(["-c", "aiosmtpd.handlers.Mailbox"])
        .arg(maildir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("/usr/bin/python3 -m aiosmtpd (apt-get install python3-aiosmtpd)");
    wait_for_port(port);
    Server(child)
}

/// A server that accepts connections and never says a word.
fn hanging_server(port: u16) -> Server {
    let child = Command::new("python3")
        .args([
            "-c",
            &format!(
                "import socket, time\ns = socket.socket()\ns.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\ns.bind(('127.0.0.1', {port}))\ns.listen()\nheld = []\nwhile True:\n    c, _ = s.accept()\n    held.append(c)\n"
            ),
        ])
        .spawn()
        .unwrap();
    wait_for_port(port);
    Server(child)
}

/// Every message received so far (its whole text).
fn mails(maildir: &Path) -> Vec<String> {
    let mut out = vec![];
    for sub in ["new", "cur"] {
        if let Ok(d) = std::fs::read_dir(maildir.join(sub)) {
            for e in d.flatten() {
                out.push(std::fs::read_to_string(e.path()).unwrap_or_default());
            }
        }
    }
    out
}

/// The 320 count a summary mail reports.
fn denials_in(mail: &str) -> u64 {
    mail.lines()
        .find_map(|l| l.trim().strip_prefix("320 EVT_MIG_BLOCKED_FILE_ACCESS: "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

/// `n` refused deletes of `file`; the refusals counted and the time they took.
fn storm(file: &Path, n: u32) -> (u64, Duration) {
    let start = Instant::now();
    let out = sh(&format!(
        "python3 -c 'import os\nn = 0\nfor i in range({n}):\n    try:\n        os.unlink(\"{}\")\n    except PermissionError:\n        n += 1\nprint(n)'",
        file.display()
    ));
    assert_ok("storm", &out);
    (
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap(),
        start.elapsed(),
    )
}

fn sandbox_mailing_to(port: u16) -> (Sandbox, PathBuf) {
    let mut sb = Sandbox::new(&exe(), 64).expect("sandbox");
    sb.edit_config(|t| {
        t.replace(
            "enabled = false\nserver = \"\"",
            "enabled = true\nserver = \"127.0.0.1\"",
        )
        .replace("port = 587", &format!("port = {port}"))
        .replace("security = \"starttls\"", "security = \"none\"")
        .replace("from = \"\"", "from = \"imageguard@localhost\"")
        .replace("to = []", "to = [\"admin@localhost\"]")
        .replace("events = [320, 500, 510, 520]", "events = [320]")
        .replace("interval = 300", &format!("interval = {INTERVAL}"))
        .replace("timeout = 20", "timeout = 2")
    })
    .unwrap();
    sb.start_service().expect("service");
    let m = sb.mnt.to_string_lossy().to_string();
    assert_ok("protect", &sb.imageguard(&["protect", &m]).unwrap());
    let image = sb.mnt.join("a/x.mrimg");
    std::fs::create_dir_all(image.parent().unwrap()).unwrap();
    std::fs::write(&image, b"backup").unwrap();
    (sb, image)
}

/// Wait until the mails report `total` refusals (or time out).
fn wait_for_total(maildir: &Path, total: u64, within: Duration) -> Vec<String> {
    let start = Instant::now();
    loop {
        let m = mails(maildir);
        let counted: u64 = m.iter().map(|x| denials_in(x)).sum();
        if counted >= total || start.elapsed() > within {
            return m;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_storm_is_summarised_at_most_once_per_interval_and_counted() {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let port = free_port();
    let tmp = tempfile::tempdir().unwrap();
    let maildir = tmp.path().join("maildir");
    let _server = smtp_server(port, &maildir);
    let (sb, image) = sandbox_mailing_to(port);

    let out = sb.imageguard(&["settings", "email", "test"]).unwrap();
    assert_ok("settings email test", &out);
    let test_mail = mails(&maildir);
    assert_eq!(test_mail.len(), 1);
    assert!(test_mail[0].contains("test mail"), "{}", test_mail[0]);

    let (refused, took) = storm(&image, 100_000);
    assert_eq!(refused, 100_000);
    let all = wait_for_total(&maildir, refused, Duration::from_secs(4 * INTERVAL + 10));
    let summaries: Vec<&String> = all.iter().filter(|m| !m.contains("test mail")).collect();
    let counted: u64 = summaries.iter().map(|m| denials_in(m)).sum();
    assert_eq!(counted, refused, "the mails' counts add up to the storm");
    let most = took.as_secs() / INTERVAL + 2;
    assert!(
        (summaries.len() as u64) <= most,
        "{} mails for a storm of {:?} at one per {INTERVAL} s",
        summaries.len(),
        took
    );
    assert!(
        summaries[0].contains("Subject: imageguard on "),
        "{}",
        summaries[0]
    );
}

#[test]
fn a_stopped_or_hanging_server_does_not_slow_the_guard_and_loses_nothing() {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let port = free_port();
    let tmp = tempfile::tempdir().unwrap();
    let maildir = tmp.path().join("maildir");
    let server = smtp_server(port, &maildir);
    let (_sb, image) = sandbox_mailing_to(port);

    // The three conditions in turn, four rounds (two CPUs serve the storm, the guard and the
    // mail server alike; interleaving spreads the machine's own ups and downs): each
    // condition's best rate counts.
    let rate = |(n, d): (u64, Duration)| (n, n as f64 / d.as_secs_f64());
    let mut server = Some(server);
    let (mut total, mut up, mut stopped, mut hanging) = (0u64, 0f64, 0f64, 0f64);
    for _ in 0..4 {
        let (n, r) = rate(storm(&image, 15_000));
        total += n;
        up = up.max(r);
        drop(server.take());
        let (n, r) = rate(storm(&image, 15_000));
        total += n;
        stopped = stopped.max(r);
        let hang = hanging_server(port);
        let (n, r) = rate(storm(&image, 15_000));
        total += n;
        hanging = hanging.max(r);
        drop(hang);
        std::thread::sleep(Duration::from_millis(200));
        server = Some(smtp_server(port, &maildir));
    }
    eprintln!("denials/s: server up {up:.0}, stopped {stopped:.0}, hanging {hanging:.0}");
    assert!(
        stopped > 0.75 * up && hanging > 0.75 * up,
        "{up} {stopped} {hanging}"
    );

    // Back: what could not be sent arrives, counted.
    let all = wait_for_total(&maildir, total, Duration::from_secs(30));
    let counted: u64 = all.iter().map(|m| denials_in(m)).sum();
    assert_eq!(counted, total, "{} mails", all.len());
    drop(server);
}

/// A self-signed certificate for `localhost` (openssl), as a private mail server would have.
fn certificate(dir: &Path) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let out = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args([
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost",
        ])
        .args(["-addext", "basicConstraints=critical,CA:FALSE", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl");
    assert_ok("openssl req", &out);
    (cert, key)
}

#[test]
fn starttls_is_required_and_the_server_certificate_checked() {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let (cert, key) = certificate(tmp.path());
    let maildir = tmp.path().join("maildir");
    let port = free_port();
    // aiosmtpd with a certificate requires STARTTLS before any mail.
    let child = Command::new("/usr/bin/python3")
        .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")])
        .arg("--tlscert")
        .arg(&cert)
        .arg("--tlskey")
        .arg(&key)
        .args(["-c", "aiosmtpd.handlers.Mailbox"])
        .arg(&maildir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("/usr/bin/python3 -m aiosmtpd");
    wait_for_port(port);
    let _server = Server(child);
    let mut sb = Sandbox::new(&exe(), 64).expect("sandbox");
    let ca = cert.display().to_string();
    sb.edit_config(|t| {
        t.replace(
            "enabled = false\nserver = \"\"",
            "enabled = true\nserver = \"localhost\"",
        )
        .replace("port = 587", &format!("port = {port}"))
        .replace("from = \"\"", "from = \"imageguard@localhost\"")
        .replace("to = []", "to = [\"admin@localhost\"]")
        .replace(
            "# ca_file = \"/etc/imageguard/mail-ca.pem\"",
            &format!("ca_file = \"{ca}\""),
        )
    })
    .unwrap();
    sb.start_service().expect("service");
    let out = sb.imageguard(&["settings", "email", "test"]).unwrap();
    assert_ok("settings email test over STARTTLS", &out);
    assert_eq!(mails(&maildir).len(), 1);

    // Without the private CA the server's certificate is not trusted: nothing is sent.
    sb.stop_service().unwrap();
    sb.edit_config(|t| t.replace(&format!("ca_file = \"{ca}\""), ""))
        .unwrap();
    sb.start_service().expect("service");
    let out = sb.imageguard(&["settings", "email", "test"]).unwrap();
    assert!(
        !out.status.success(),
        "a certificate nobody vouches for was accepted"
    );
    assert!(
        stderr(&out).to_lowercase().contains("certificate"),
        "{}",
        stderr(&out)
    );
    assert_eq!(mails(&maildir).len(), 1);
}
