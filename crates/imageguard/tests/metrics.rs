//! Metrics (issue 11, item 4): `imageguard metrics` and the configured loopback listener serve
//! Prometheus' text format that `promtool check metrics` accepts, and the counters match the
//! event store.

mod common;

use std::io::{Read, Write};
use std::process::{Command, Stdio};

use common::*;
use imageguard::sandbox::Sandbox;

fn promtool_accepts(text: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (apt-get install prometheus)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        stderr(&out)
    );
}

/// The value of the sample `name{labels}` (labels as written), or of `name` alone.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

#[test]
fn metrics_pass_promtool_and_match_the_event_store() {
    let mut sb = Sandbox::new(&exe(), 64).expect("sandbox");
    let port = free_port();
    sb.edit_config(|t| t.replace("listen = \"\"", &format!("listen = \"127.0.0.1:{port}\"")))
        .unwrap();
    sb.start_service().expect("service");
    let m = sb.mnt.to_string_lossy().to_string();
    assert_ok("protect", &sb.imageguard(&["protect", &m]).unwrap());
    let image = sb.mnt.join("a/x.mrimg");
    std::fs::create_dir_all(image.parent().unwrap()).unwrap();
    std::fs::write(&image, b"backup").unwrap();
    let i = image.display();
    for _ in 0..3 {
        assert_eperm("rm", &sh(&format!("rm -f '{i}'")));
    }
    assert_eperm("truncate", &sh(&format!("truncate -s 0 '{i}'")));

    let out = sb.imageguard(&["metrics"]).unwrap();
    assert_ok("imageguard metrics", &out);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    promtool_accepts(&text);
    assert_eq!(sample(&text, "imageguard_up"), Some(1.0));
    assert_eq!(sample(&text, "imageguard_protected_volumes"), Some(1.0));
    assert_eq!(
        sample(
            &text,
            &format!("imageguard_denials_total{{operation=\"delete\",volume=\"{m}\"}}")
        ),
        Some(3.0),
        "{text}"
    );
    // Every counter matches the event store.
    let evs = events(&sb);
    let stored_320: u64 = evs.iter().filter(|e| e.id == 320).map(|e| e.count).sum();
    let denials: f64 = text
        .lines()
        .filter(|l| l.starts_with("imageguard_denials_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(denials as u64, stored_320);
    assert_eq!(
        sample(
            &text,
            "imageguard_events_total{id=\"320\",name=\"EVT_MIG_BLOCKED_FILE_ACCESS\"}"
        ),
        Some(stored_320 as f64)
    );
    let decisions = sample(&text, "imageguard_guard_decision_seconds_count").unwrap();
    assert!(decisions >= 4.0, "{text}");

    // Served on the configured loopback port, to Prometheus' GET.
    let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nAccept: text/plain\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    c.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.0 200 OK"), "{head}");
    assert!(head.contains("text/plain; version=0.0.4"), "{head}");
    promtool_accepts(body);
    assert_eq!(sample(body, "imageguard_up"), Some(1.0));
}

#[test]
fn a_metrics_address_off_the_machine_is_refused_at_start() {
    let mut sb = Sandbox::new(&exe(), 64).expect("sandbox");
    sb.edit_config(|t| t.replace("listen = \"\"", "listen = \"0.0.0.0:9755\""))
        .unwrap();
    let err = sb.start_service().expect_err("the service started");
    assert!(
        format!("{err:#}").contains("not a loopback address"),
        "{err:#}"
    );
}
