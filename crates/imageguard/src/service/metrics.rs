//! Metrics in Prometheus' text format (`imageguard metrics`, and served where `[metrics]
//! listen` says: a loopback TCP address or a Unix socket): the service is up, its protected
//! volumes, refusals by operation and volume and events by id (both read from the event store,
//! so they match `imageguard events`), and how long the guard's decisions take.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write};
use std::sync::Arc;

use anyhow::{Context, Result};
use imageguard_eventstore::EventDb;
use imageguard_gate::latency::LatencySnapshot;
use imageguard_policy::EventKind;

use super::Service;

/// A label value, escaped as the text format wants it.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// The text exposition of everything measured now.
pub fn render(
    volumes: &[(String, bool)],
    denials: &[(String, String, u64)],
    events: &[(u32, u64)],
    latency: &LatencySnapshot,
) -> String {
    let mut out = String::new();
    header(
        &mut out,
        "imageguard_up",
        "gauge",
        "Whether the imageguard service is running.",
    );
    out.push_str("imageguard_up 1\n");
    header(
        &mut out,
        "imageguard_protected_volumes",
        "gauge",
        "Volumes (or folders) protected now.",
    );
    let _ = writeln!(out, "imageguard_protected_volumes {}", volumes.len());
    header(
        &mut out,
        "imageguard_guard_running",
        "gauge",
        "Whether the guard of a protected volume answers (1) or not (0).",
    );
    for (mp, running) in volumes {
        let _ = writeln!(
            out,
            "imageguard_guard_running{{volume=\"{}\"}} {}",
            label(mp),
            u8::from(*running)
        );
    }
    header(
        &mut out,
        "imageguard_denials_total",
        "counter",
        "Refused operations on backup files (event 320), by operation and volume.",
    );
    for (op, volume, n) in denials {
        let _ = writeln!(
            out,
            "imageguard_denials_total{{operation=\"{}\",volume=\"{}\"}} {n}",
            label(op),
            label(volume)
        );
    }
    header(
        &mut out,
        "imageguard_events_total",
        "counter",
        "Events logged, by id.",
    );
    for (id, n) in events {
        let name = EventKind::from_id(*id).map_or("unknown", |k| k.name());
        let _ = writeln!(
            out,
            "imageguard_events_total{{id=\"{id}\",name=\"{name}\"}} {n}"
        );
    }
    header(
        &mut out,
        "imageguard_guard_decision_seconds",
        "histogram",
        "Time from a request on a backup file reaching the guard's gate to its verdict.",
    );
    for (bound_us, n) in &latency.cumulative {
        let _ = writeln!(
            out,
            "imageguard_guard_decision_seconds_bucket{{le=\"{}\"}} {n}",
            *bound_us as f64 / 1e6
        );
    }
    let _ = writeln!(
        out,
        "imageguard_guard_decision_seconds_bucket{{le=\"+Inf\"}} {}",
        latency.count
    );
    let _ = writeln!(
        out,
        "imageguard_guard_decision_seconds_sum {}",
        latency.sum_ns as f64 / 1e9
    );
    let _ = writeln!(
        out,
        "imageguard_guard_decision_seconds_count {}",
        latency.count
    );
    out
}

impl Service {
    /// The metrics now.
    pub(super) fn metrics(&self) -> String {
        self.log.flush_within(std::time::Duration::from_millis(500));
        let (volumes, mut latency) = {
            let inner = self.inner.lock();
            let volumes: Vec<(String, bool)> = inner
                .volumes
                .values()
                .map(|v| {
                    (
                        v.info.mount_point.display().to_string(),
                        v.guard.is_running(),
                    )
                })
                .collect();
            let snaps: Vec<LatencySnapshot> = inner
                .volumes
                .values()
                .map(|v| v.shared.gate.counters.latency.snapshot())
                .collect();
            (volumes, snaps)
        };
        // The guards' histograms, summed (a volume's ends with its guard).
        let total = latency.drain(..).fold(
            LatencySnapshot {
                cumulative: imageguard_gate::latency::BOUNDS_US
                    .iter()
                    .map(|&b| (b, 0))
                    .collect(),
                count: 0,
                sum_ns: 0,
            },
            |mut acc, s| {
                for (a, b) in acc.cumulative.iter_mut().zip(&s.cumulative) {
                    a.1 += b.1;
                }
                acc.count += s.count;
                acc.sum_ns += s.sum_ns;
                acc
            },
        );
        let db = EventDb::open_read_only(self.log.db_path());
        let denials = db
            .as_ref()
            .ok()
            .and_then(|d| d.denials().ok())
            .unwrap_or_default();
        let events = db
            .as_ref()
            .ok()
            .and_then(|d| d.counts().ok())
            .unwrap_or_default();
        render(&volumes, &denials, &events, &total)
    }
}

/// Serve the metrics at `listen` (`127.0.0.1:PORT`, `[::1]:PORT`, or `unix:PATH`) on a thread
/// of its own: one HTTP/1.0 answer per connection, to `GET /metrics` (anything else: 404).
pub fn serve(service: Arc<Service>, listen: &str) -> Result<()> {
    if let Some(path) = listen.strip_prefix("unix:") {
        let _ = std::fs::remove_file(path);
        let l = std::os::unix::net::UnixListener::bind(path)
            .with_context(|| format!("metrics: listening on {path}"))?;
        return spawn(service, move || l.accept().map(|(c, _)| c));
    }
    let addr: std::net::SocketAddr = listen
        .parse()
        .with_context(|| format!("metrics: {listen:?} is not ADDRESS:PORT or unix:PATH"))?;
    if !addr.ip().is_loopback() {
        anyhow::bail!(
            "metrics: {addr} is not a loopback address (the metrics name protected folders): \
             use 127.0.0.1 or a Unix socket, and let the local Prometheus agent forward them"
        );
    }
    let l = std::net::TcpListener::bind(addr)
        .with_context(|| format!("metrics: listening on {addr}"))?;
    spawn(service, move || l.accept().map(|(c, _)| c))
}

/// Answer the connections `accept` takes, on a thread of their own.
fn spawn<S: std::io::Read + Write>(
    service: Arc<Service>,
    mut accept: impl FnMut() -> std::io::Result<S> + Send + 'static,
) -> Result<()> {
    std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || loop {
            match accept() {
                Ok(c) => answer(&service, c),
                // Out of descriptors, say: try again in a moment rather than spin.
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(100)),
            }
        })?;
    Ok(())
}

fn answer<S: std::io::Read + Write>(service: &Service, stream: S) {
    let mut reader = BufReader::new(stream);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    // The rest of the request's head.
    let mut line = String::new();
    while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
        line.clear();
    }
    let mut parts = request_line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let (status, body) = if method == "GET" && (target == "/metrics" || target == "/") {
        ("200 OK", service.metrics())
    } else {
        ("404 Not Found", "not found: GET /metrics\n".to_string())
    };
    let mut stream = reader.into_inner();
    let _ = write!(
        stream,
        "HTTP/1.0 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_escaped_and_histograms_end_with_inf() {
        let text = render(
            &[("/mnt/a \"b\"".into(), true)],
            &[("delete".into(), "/mnt/a \"b\"".into(), 3)],
            &[(320, 3), (100, 1)],
            &LatencySnapshot {
                cumulative: vec![(5, 1), (10, 2)],
                count: 3,
                sum_ns: 1_500,
            },
        );
        assert!(text.contains(
            "imageguard_denials_total{operation=\"delete\",volume=\"/mnt/a \\\"b\\\"\"} 3"
        ));
        assert!(text.contains(
            "imageguard_events_total{id=\"320\",name=\"EVT_MIG_BLOCKED_FILE_ACCESS\"} 3"
        ));
        assert!(text.contains("imageguard_guard_decision_seconds_bucket{le=\"0.00001\"} 2"));
        assert!(text.contains("imageguard_guard_decision_seconds_bucket{le=\"+Inf\"} 3"));
        assert!(text.contains("imageguard_guard_decision_seconds_count 3"));
    }
}
